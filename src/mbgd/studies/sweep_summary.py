"""Seeds, analysis and summary of a finished sweep: each batch size's best lr (and the tutorial's fixed lr)
re-trained over the seeds, the epoch-map theory beside it, what tuning cost, and summary.json's numbers.

Pure of MLflow: `summarize` returns plain numbers for the tracking layer to log.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import optuna

from mbgd.core import theory
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import RegressionData, load_data
from mbgd.core.objectives import epochs_to_floor, noise_floor, objective_floor, objective_value
from mbgd.core.train import History, fit_each


@dataclass(frozen=True)
class SeedRuns:
    """One learning rate of one batch size re-trained over the seeds."""

    lr: float
    histories: list[History]
    floors: list[float]  # each seed's noise floor (its own noise draw)
    objective_values: list[float]
    epochs_to_floor: list[int]

    @property
    def objective_mean(self) -> float:
        return statistics.fmean(self.objective_values)


def retrain_over_seeds(
    config: SweepConfig, batch_size: int, lr: float, *, dtype: str | None = None
) -> SeedRuns:
    """The batch size at one lr over config.seeds seeds (each draws its own noise and, shuffled, order)."""
    (runs,) = retrain_lrs_over_seeds(config, batch_size, [lr], dtype=dtype)
    return runs


def retrain_lrs_over_seeds(
    config: SweepConfig, batch_size: int, lrs: Sequence[float], *, dtype: str | None = None
) -> list[SeedRuns]:
    """Each lr of the batch size over config.seeds seeds, all trained together (mbgd.core.train.fit_each:
    every seed on its own noise draw and, shuffled, in its own order; the same numbers as one seed at a
    time)."""
    seed_configs: list[TrainConfig] = [
        replace(
            config.train,
            batch_size=batch_size,
            lr=lr,
            seed=config.train.seed + offset,
            dtype=dtype or config.train.dtype,
        )
        for lr in lrs
        for offset in range(config.seeds)
    ]
    datasets = {seed: load_data(config.train.data, seed) for seed in {c.seed for c in seed_configs}}
    histories = fit_each(
        seed_configs,
        [datasets[c.seed] for c in seed_configs],
        record_batch_loss=False,
        record_updates=config.objective == "updates_to",
    )
    seeds = [datasets[config.train.seed + offset] for offset in range(config.seeds)]
    floors = [noise_floor(data) for data in seeds]
    objective_floors = [objective_floor(config.objective, data) for data in seeds]
    epochs = config.train.epochs
    runs = []
    for start, lr in zip(range(0, len(histories), config.seeds), lrs, strict=True):
        lr_histories = histories[start : start + config.seeds]
        runs.append(
            SeedRuns(
                lr=lr,
                histories=lr_histories,
                floors=list(floors),
                objective_values=[
                    objective_value(
                        config.objective, h, epochs=epochs, floor=f, target_ratio=config.target_ratio
                    )
                    for h, f in zip(lr_histories, objective_floors, strict=True)
                ],
                epochs_to_floor=[
                    epochs + 1 if h.diverged else epochs_to_floor(h.epoch_losses, f, epochs)
                    for h, f in zip(lr_histories, floors, strict=True)
                ],
            )
        )
    return runs


@dataclass(frozen=True)
class BatchSizeResult:
    batch_size: int
    best_lr: float
    best_value: float
    best_trial_number: int
    tuned: SeedRuns
    fixed: SeedRuns  # the tutorial's comparison: config.train.lr for every batch size
    fixed_other_dtype: SeedRuns  # the same in the other precision
    theory: dict[str, float]
    trials: list[tuple[float, float, bool]]  # (lr, value, diverged) of every COMPLETE trial
    pruned_trials: int
    lr_scan: object | None = None  # mbgd.core.scan.LrScan of the study (None with --scan 0)
    trials_to_5pct_by_seed: list[int | None] | None = None  # TPE without the scan, per sampler seed

    @property
    def scan_summary(self) -> dict:
        """scan_best_lr, scan_best_value, scan_at_edge, tuned_regret (the tuned best relative to the
        scan's)."""
        from mbgd.core.scan import relative_regret

        scan = self.lr_scan
        if scan is None:
            return {"scan_best_lr": None, "scan_best_value": None, "scan_at_edge": None, "tuned_regret": None}
        return {
            "scan_best_lr": scan.best_lr,
            "scan_best_value": scan.best_value,
            "scan_at_edge": scan.at_edge or None,
            "tuned_regret": relative_regret(scan.objective, self.best_value, scan.best_value),
        }


def measure_tuning_cost(
    config: SweepConfig, batch_size: int, study: optuna.Study, data: RegressionData, lr_scan, worker=None
):
    """How many TPE trials without the scan reach 5% of the batch size's optimum (scan.tpe_trials_to_within),
    handed to `worker` (mbgd.runtime.compute_worker: most of a sweep's analysis, measured while the rest goes
    on); returns its Pending, None when not measured (tuning_cost_seeds 0). Without a worker it runs here."""
    from mbgd.core import scan
    from mbgd.runtime.compute_worker import or_here

    if not config.tuning_cost_seeds:
        return None
    worker = or_here(worker)
    optimum = tuning_optimum(study, lr_scan)
    return worker.submit(
        scan.tpe_trials_to_within,
        config,
        data,
        batch_size,
        optimum,
        seeds=config.tuning_cost_seeds,
    )


def tuning_optimum(study: optuna.Study, lr_scan=None) -> float:
    """The best value known for the batch size: the study's best, or the scan's when better."""
    best = float(study.best_trial.value)
    return min(best, lr_scan.best_value) if lr_scan is not None else best


def analyse_batch_size(
    config: SweepConfig, batch_size: int, study: optuna.Study, data: RegressionData, lr_scan=None
) -> BatchSizeResult:
    """Best trial, its seeds, the fixed-lr seeds in both precisions, the epoch-map theory and the scan's
    best; how many TPE trials without the scan reach 5% of the optimum comes after (with_tuning_cost)."""
    best = study.best_trial
    best_lr = float(best.params["lr"])
    other_dtype = "float64" if config.train.dtype == "float32" else "float32"
    epoch_theory = theory.epoch_map_theory(data.x, batch_size)
    theory_values = {
        f"theory_{key}": value for key, value in epoch_theory.as_dict().items() if key != "batch_size"
    }
    theory_values["theory_stable_intervals"] = [
        list(pair) for pair in theory.stable_intervals(data.x, batch_size)
    ]
    theory_values["spectral_radius_at_best_lr"] = float(theory.spectral_radius(data.x, batch_size, best_lr))
    theory_values["spectral_radius_at_fixed_lr"] = float(
        theory.spectral_radius(data.x, batch_size, config.train.lr)
    )
    theory_values["transient_at_fixed_lr"] = theory.max_transient_amplification(
        data.x, batch_size, config.train.lr
    )
    trials = [
        (float(t.params["lr"]), float(t.value), bool(t.user_attrs.get("diverged", False)))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ]
    tuned, fixed = retrain_lrs_over_seeds(config, batch_size, [best_lr, config.train.lr])
    fixed_other_dtype = retrain_over_seeds(config, batch_size, config.train.lr, dtype=other_dtype)
    return BatchSizeResult(
        batch_size=batch_size,
        best_lr=best_lr,
        best_value=float(best.value),
        best_trial_number=best.number,
        tuned=tuned,
        fixed=fixed,
        fixed_other_dtype=fixed_other_dtype,
        theory=theory_values,
        trials=trials,
        pruned_trials=len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))),
        lr_scan=lr_scan,
    )


def with_tuning_cost(result: BatchSizeResult, trials_to_5pct) -> BatchSizeResult:
    """The result with how many TPE trials without the scan reach 5% of the optimum, per sampler seed
    (`trials_to_5pct`: measure_tuning_cost's Pending, whose result is waited for; None: not measured)."""
    if trials_to_5pct is None:
        return result
    return replace(result, trials_to_5pct_by_seed=trials_to_5pct.result())


def median_trials(found: Sequence[int | None]) -> int | None:
    """The lower median of per-seed trial counts, a seed that never got there (None) ranking above any count;
    None when the median is such a seed."""
    ranked = sorted(found, key=lambda n: math.inf if n is None else n)
    return ranked[(len(ranked) - 1) // 2] if ranked else None


def ranking(results: Sequence[BatchSizeResult], pick: Callable[[BatchSizeResult], SeedRuns]) -> list[int]:
    """Batch sizes, best first, by the objective's mean over the seeds (ties: the smaller batch first)."""
    return [r.batch_size for r in sorted(results, key=lambda r: (pick(r).objective_mean, r.batch_size))]


def fitted_exponent(batch_sizes: Sequence[int], lrs: Sequence[float]) -> tuple[float, float]:
    """Slope of log(best lr) against log(batch size) by least squares, and its standard error (the residuals'
    spread over n - 2 degrees of freedom); nan with fewer than two (slope) or three (error) batch sizes."""
    if len(batch_sizes) < 2:
        return math.nan, math.nan
    xs = [math.log(b) for b in batch_sizes]
    ys = [math.log(lr) for lr in lrs]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / sxx
    if len(xs) < 3:
        return slope, math.nan
    residuals = sum((y - y_mean - slope * (x - x_mean)) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, math.sqrt(residuals / (len(xs) - 2) / sxx)


def summarize(config: SweepConfig, results: Sequence[BatchSizeResult]) -> dict:
    """summary.json's content: per batch size, the rankings, and the precision check."""
    other_dtype = "float64" if config.train.dtype == "float32" else "float32"
    ranking_fixed = ranking(results, lambda r: r.fixed)
    ranking_other = ranking(results, lambda r: r.fixed_other_dtype)
    by_batch_size = {}
    for r in results:
        by_batch_size[str(r.batch_size)] = {
            "best_lr": r.best_lr,
            "best_value": r.best_value,
            "best_trial": r.best_trial_number,
            "objective_mean_tuned": r.tuned.objective_mean,
            "objective_mean_fixed_lr": r.fixed.objective_mean,
            "epochs_to_floor_mean": statistics.fmean(r.tuned.epochs_to_floor),
            "epochs_to_floor_sd": statistics.pstdev(r.tuned.epochs_to_floor),
            "epochs_to_floor_fixed_lr_mean": statistics.fmean(r.fixed.epochs_to_floor),
            "final_loss_tuned_mean": statistics.fmean(h.final_loss for h in r.tuned.histories),
            "final_loss_fixed_lr_mean": statistics.fmean(h.final_loss for h in r.fixed.histories),
            "diverged_trials": sum(1 for _, _, diverged in r.trials if diverged),
            "complete_trials": len(r.trials),
            "pruned_trials": r.pruned_trials,
            **r.scan_summary,
            "trials_to_5pct": None
            if r.trials_to_5pct_by_seed is None
            else median_trials(r.trials_to_5pct_by_seed),
            "trials_to_5pct_by_seed": r.trials_to_5pct_by_seed,
            **r.theory,
        }
    return {
        "name": config.name,
        "objective": config.objective,
        "pruner": config.pruner,
        "n_trials": config.n_trials,
        "scan": config.scan,
        "tuning_cost_seeds": config.tuning_cost_seeds,
        "lr_range": [config.lr_min, config.lr_max],
        "fixed_lr": config.train.lr,
        "epochs": config.train.epochs,
        "dtype": config.train.dtype,
        "shuffle": config.train.shuffle,
        "targets": config.train.data.targets,
        "seeds": [config.train.seed + i for i in range(config.seeds)],
        "noise_floor": results[0].tuned.floors[0] if results else None,  # the first seed's
        "by_batch_size": by_batch_size,
        "ranking_fixed_lr": ranking_fixed,
        "ranking_tuned": ranking(results, lambda r: r.tuned),
        "ranking_fixed_lr_by_dtype": {config.train.dtype: ranking_fixed, other_dtype: ranking_other},
        "ranking_fixed_lr_depends_on_precision": ranking_fixed != ranking_other,
        **dict(
            zip(
                ("best_lr_exponent", "best_lr_exponent_se"),
                [  # JSON has no nan: None where there are too few batch sizes
                    v if math.isfinite(v) else None
                    for v in fitted_exponent([r.batch_size for r in results], [r.best_lr for r in results])
                ],
                strict=True,
            )
        ),
    }
