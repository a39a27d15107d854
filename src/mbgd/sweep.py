"""Optuna studies of the learning rate, one per batch size, trained as populations; then the seeds.

Pure of MLflow: what a sweep trains is reported through the `on_trials` and `progress` callbacks, and
`summarize` returns plain numbers for the tracking layer to log.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import optuna
import torch

from mbgd import protocol, theory
from mbgd.config import ConfigError, SweepConfig, TrainConfig, redact
from mbgd.data import RegressionData, load_data
from mbgd.objectives import epochs_to_floor, intermediate_value, noise_floor, objective_floor, objective_value
from mbgd.protocol import FINISHED_STATES, AskedTrial
from mbgd.sqlite_settings import sqlite_path, sync_at_checkpoints, use_write_ahead_log
from mbgd.train import EpochHook, History, fit_population

WAIT_POLL_S = 1.0  # how often a worker with nothing to ask checks whether other workers' trials ended
SETTINGS_ATTR = "mbgd_settings"
REFINEMENT_ATTR = "mbgd_refinement"  # the lr range a scanned study's trials sample, and the scan's best

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class TrialRecord:
    """One told trial, for the tracking layer."""

    number: int
    lr: float
    value: float
    state: str
    history: History


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


OnTrials = Callable[[int, str, list[TrialRecord]], None]  # (batch size, study name, records)
Progress = Callable[[int, int, int], None]  # (batch size, COMPLETE trials, n_trials)


def default_storage() -> str:
    """sqlite optuna.db beside a sqlite tracking store, else in the working directory."""
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        folder = os.path.dirname(tracking_uri[len(prefix) :])
        return prefix + os.path.join(folder, "optuna.db") if folder else prefix + "optuna.db"
    return prefix + "optuna.db"


def study_settings(config: SweepConfig, batch_size: int) -> dict[str, object]:
    """What a study's values depend on: resuming it under other settings would mix incomparable trials."""
    return {
        "objective": config.objective,
        "lr_min": config.lr_min,
        "lr_max": config.lr_max,
        **config.train.with_batch_size(batch_size).as_params(),
        "lr": "tuned",
        **({"target_ratio": config.target_ratio} if config.objective == "updates_to" else {}),
    }


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for the URL, or a ConfigError a user can act on.

    Every URL is an RDB storage (sqlite, PostgreSQL, MySQL) with heartbeats, so a trial whose process died is
    failed and its budget retried. sqlite gets a write-ahead log and a busy timeout (protocol.BUSY_TIMEOUT_S):
    several local workers then share one file without "database is locked".
    """
    try:
        engine_kwargs = {}
        path = sqlite_path(url)
        if path is not None:
            use_write_ahead_log(path, timeout_s=protocol.BUSY_TIMEOUT_S)
            engine_kwargs = {"connect_args": {"timeout": protocol.BUSY_TIMEOUT_S}}
        with warnings.catch_warnings():  # heartbeats have been "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=protocol.HEARTBEAT_INTERVAL_S,
                grace_period=protocol.GRACE_PERIOD_S,
            )
        if path is not None:
            sync_at_checkpoints(storage.engine)
        return optuna.storages.get_storage(storage)
    except Exception as error:  # storages raise ValueError, ImportError or SQLAlchemy errors for bad URLs
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot open Optuna storage {redact(url)!r}: {first_line}") from None


def open_study(config: SweepConfig, batch_size: int, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the batch size's study, or resume it when its settings match."""
    study = optuna.create_study(
        study_name=config.study_name(batch_size),
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=config.sampler_seed + batch_size, constant_liar=True),
        pruner=make_pruner(config.pruner, config.train.epochs),
        direction="minimize",
        load_if_exists=True,
    )
    settings = study_settings(config, batch_size)
    existing = study.user_attrs.get(SETTINGS_ATTR)
    if existing is None:
        study.set_user_attr(SETTINGS_ATTR, settings)
    elif existing != settings:
        changed = sorted(key for key in settings if existing.get(key) != settings[key])
        raise ConfigError(
            f"study {study.study_name} exists with other settings ({', '.join(changed)}); "
            "use another --name or the same settings"
        )
    return study


def remaining_trials(config: SweepConfig, storage: optuna.storages.BaseStorage) -> int:
    """Open (create or check) every batch size's study; returns the trials they still need to reach
    n_trials."""
    return sum(
        max(0, config.n_trials - finished_count(open_study(config, b, storage))) for b in config.batch_sizes
    )


def finished_count(study: optuna.Study) -> int:
    """Trials that count against --n-trials: COMPLETE ones, and PRUNED ones when a pruner is on."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


PRUNING_FACTOR = 3  # Hyperband's reduction factor, and the spacing of the epochs where pruners decide


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner for --pruner; trials report their intermediate objective at the decision epochs."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=epochs, reduction_factor=PRUNING_FACTOR
        )
    return optuna.pruners.NopPruner()


def decision_epochs(epochs: int) -> list[int]:
    """Epochs 1, 3, 9, 27, ... below `epochs`: Hyperband's rungs, where a trial reports and may be pruned.

    Every report and every pruning decision is a round trip to the storage (about 4 and 20 ms on sqlite, far
    more than an epoch of training), so trials report where a pruner can act, not after every epoch; the
    median pruner compares trials at the same epochs.
    """
    steps, step = [], 1
    while step < epochs:
        steps.append(step)
        step *= PRUNING_FACTOR
    return steps


def pruning_hook(objective: str, trials: Sequence[optuna.trial.Trial], epochs: int) -> EpochHook:
    """At each decision epoch, report each member's objective so far to its trial and stop the pruned ones."""
    losses_so_far: list[list[float]] = [[] for _ in trials]
    decisions = set(decision_epochs(epochs))

    def on_epoch(epoch: int, losses: torch.Tensor) -> torch.Tensor:
        stop = torch.zeros(len(trials), dtype=torch.bool)
        for i, trial in enumerate(trials):
            loss = float(losses[i])
            if math.isnan(loss):
                continue
            losses_so_far[i].append(loss)
            if epoch in decisions:
                trial.report(intermediate_value(objective, losses_so_far[i]), epoch)
                stop[i] = bool(trial.should_prune())
        return stop

    return on_epoch


def run_study(
    config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    storage: optuna.storages.BaseStorage,
    *,
    on_trials: OnTrials | None = None,
    progress: Progress | None = None,
) -> optuna.Study:
    """Ask, train and tell populations of trials until the study has n_trials finished ones.

    Safe with any number of workers (processes or machines) on one storage: a worker takes only budget no
    other worker holds (mbgd.protocol says why that is exact) and waits while others finish theirs. A trial
    whose worker died is failed (same host: its process is gone; another host: its heartbeat stopped) and its
    budget asked again.
    """
    study = open_study(config, batch_size, storage)
    train_config = config.train.with_batch_size(batch_size)
    floor = objective_floor(config.objective, data)
    distribution = trial_distribution(study, config)
    while True:
        trials: list[AskedTrial] = []
        try:
            done = protocol.reserve(
                study,
                config.n_trials,
                config.population,
                distribution,
                lambda count: propose_lrs(study, count, distribution),
                trials,
            )
            if progress:
                progress(batch_size, done, config.n_trials)
            if trials:
                records = train_population(config, train_config, data, study, trials, floor)
        except BaseException:  # interrupted anywhere between ask and tell: nothing of ours stays RUNNING
            fail_unfinished(study, trials)
            raise
        if not trials:
            if done >= config.n_trials:
                return study
            # the rest of the budget is with other workers: wait in case one of them dies
            time.sleep(WAIT_POLL_S)
            continue
        if on_trials:
            on_trials(batch_size, study.study_name, records)


def fail_unfinished(study: optuna.Study, trials: Sequence[AskedTrial]) -> None:
    for trial in trials:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            study._storage.set_trial_state_values(trial.trial_id, state=optuna.trial.TrialState.FAIL)


def lr_distribution(config: SweepConfig) -> optuna.distributions.FloatDistribution:
    return optuna.distributions.FloatDistribution(config.lr_min, config.lr_max, log=True)


def trial_distribution(study: optuna.Study, config: SweepConfig) -> optuna.distributions.FloatDistribution:
    """Where the study's trials sample the lr: the range its scan narrowed it to, else [lr_min, lr_max]."""
    refinement = study.user_attrs.get(REFINEMENT_ATTR)
    if not refinement:
        return lr_distribution(config)
    return optuna.distributions.FloatDistribution(refinement["lr_min"], refinement["lr_max"], log=True)


def prepare_refinement(study: optuna.Study, lr_scan) -> None:
    """Make a new study refine its scan (mbgd.scan.LrScan): record the narrowed range the trials sample
    (between the best scan point's neighbours) and enqueue the best scan lr as the first trial. A study that
    already has trials or a range keeps them (a resumed study goes on as it began)."""
    if study.user_attrs.get(REFINEMENT_ATTR) is not None or study.get_trials(deepcopy=False):
        return
    low, high = lr_scan.refinement_range()
    study.set_user_attr(
        REFINEMENT_ATTR,
        {
            "lr_min": low,
            "lr_max": high,
            "scan_points": len(lr_scan.lrs),
            "scan_best_lr": lr_scan.best_lr,
            "scan_best_value": lr_scan.best_value,
        },
    )
    study.enqueue_trial({"lr": lr_scan.best_lr})


def propose_lrs(
    study: optuna.Study, count: int, distribution: optuna.distributions.FloatDistribution
) -> list[float]:
    """The study's sampler's next `count` learning rates, proposed on an in-memory copy of the study.

    The same proposals as asking `count` trials of the study and then suggesting each one's lr (other workers'
    running trials included, and with TPE's constant liar the earlier proposals too), without the storage
    round trips: on a database every ask and suggest re-reads every running trial, so a population of K costs
    K^2 reads.
    """
    mirror = optuna.create_study(direction="minimize", sampler=study.sampler)
    # WAITING trials (enqueued) are claimed as they are (claim_waiting), not proposed again
    mirror.add_trials(
        t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING
    )
    proposals = [mirror.ask() for _ in range(count)]
    return [trial.suggest_float("lr", distribution.low, distribution.high, log=True) for trial in proposals]


def ask_within_budget(
    study: optuna.Study,
    config: SweepConfig,
    wanted: int,
    asked: list[AskedTrial] | None = None,
    *,
    distribution: optuna.distributions.FloatDistribution | None = None,
) -> list[AskedTrial]:
    """Take up to `wanted` RUNNING trials of the budget no other worker holds (enqueued ones first, then new
    ones with the sampler's learning rates, each created in one storage write with its owner's attributes),
    each appended to `asked` at once so that an interruption can fail it; [] when other workers hold the
    rest."""
    trials = asked if asked is not None else []
    distribution = distribution or lr_distribution(config)
    first = len(trials)
    protocol.reserve(
        study,
        config.n_trials,
        wanted,
        distribution,
        lambda count: propose_lrs(study, count, distribution),
        trials,
    )
    return trials[first:]


def train_population(
    config, train_config, data, study, trials: Sequence[AskedTrial], floor
) -> list[TrialRecord]:
    """Train the trials' learning rates together, then tell each its value or its pruning (heartbeats on until
    they are told); returns the records of those told (protocol.tell: a trial another worker failed meanwhile
    is not)."""
    on_epoch = None
    if config.pruner != "none":  # reports and pruning decisions go through Optuna's Trial
        on_epoch = pruning_hook(
            config.objective, [optuna.trial.Trial(study, t.trial_id) for t in trials], train_config.epochs
        )
    try:
        with protocol.heartbeats(study._storage, [t.trial_id for t in trials]):
            histories = fit_population(
                train_config,
                data,
                [t.lr for t in trials],
                on_epoch=on_epoch,
                record_updates=config.objective == "updates_to",
            )
            outcomes = {}
            for trial, history in zip(trials, histories, strict=True):
                outcome, record = trial_outcome(config, train_config.epochs, floor, trial, history)
                outcomes[trial.trial_id] = (outcome, record)
            told = protocol.tell(study, [outcome for outcome, _ in outcomes.values()])
    except BaseException:
        fail_unfinished(study, trials)
        raise
    return [outcomes[outcome.trial.trial_id][1] for outcome in told]


def trial_outcome(config: SweepConfig, epochs: int, floor: float, trial: AskedTrial, history: History):
    """What to tell the trial (protocol.Outcome) and its record: COMPLETE with its objective, PRUNED, or FAIL
    (a non-finite value; no objective has one today). Its per-epoch losses go with it, so that a rerun can
    write its run should this process die before it does (stored_record)."""
    value = objective_value(
        config.objective, history, epochs=epochs, floor=floor, target_ratio=config.target_ratio
    )
    attrs: dict = {protocol.LOSSES_ATTR: list(history.epoch_losses)}
    if history.diverged:  # set only where they say something: one storage write each
        attrs |= {"diverged": True, "diverged_reason": history.diverged_reason}
    if history.stopped_epoch is not None and not history.diverged:
        value = intermediate_value(config.objective, history.epoch_losses)
        attrs["pruned_at_epoch"] = history.stopped_epoch
        state = optuna.trial.TrialState.PRUNED
    elif math.isfinite(value):
        state = optuna.trial.TrialState.COMPLETE
    else:
        state = optuna.trial.TrialState.FAIL
    outcome = protocol.Outcome(
        trial, state, value if state == optuna.trial.TrialState.COMPLETE else None, attrs
    )
    return outcome, TrialRecord(trial.number, history.lr, value, state.name, history)


def stored_record(trial: optuna.trial.FrozenTrial, batch_size: int) -> TrialRecord | None:
    """A told trial's record rebuilt from what it stored (trial_outcome): enough for its child run; None for a
    trial told by an mbgd that did not store its losses."""
    losses = trial.user_attrs.get(protocol.LOSSES_ATTR)
    if losses is None:
        return None
    lr = float(trial.params["lr"])
    history = History(
        lr=lr,
        batch_size=batch_size,
        updates_per_epoch=0,
        samples_per_epoch=0,
        epoch_losses=list(losses),
        diverged=bool(trial.user_attrs.get("diverged", False)),
    )
    value = trial.value if trial.value is not None else math.nan
    return TrialRecord(trial.number, lr, float(value), trial.state.name, history)


def retrain_over_seeds(
    config: SweepConfig, batch_size: int, lr: float, *, dtype: str | None = None
) -> SeedRuns:
    """The batch size at one lr over config.seeds seeds (each draws its own noise and, shuffled, order)."""
    histories, floors, objective_floors = [], [], []
    for offset in range(config.seeds):
        seed_config: TrainConfig = replace(
            config.train,
            batch_size=batch_size,
            lr=lr,
            seed=config.train.seed + offset,
            dtype=dtype or config.train.dtype,
        )
        data = load_data(seed_config.data, seed_config.seed)
        histories.extend(
            fit_population(
                seed_config,
                data,
                [lr],
                record_batch_loss=False,
                record_updates=config.objective == "updates_to",
            )
        )
        floors.append(noise_floor(data))
        objective_floors.append(objective_floor(config.objective, data))
    epochs = config.train.epochs
    return SeedRuns(
        lr=lr,
        histories=histories,
        floors=floors,
        objective_values=[
            objective_value(config.objective, h, epochs=epochs, floor=f, target_ratio=config.target_ratio)
            for h, f in zip(histories, objective_floors, strict=True)
        ],
        epochs_to_floor=[
            epochs + 1 if h.diverged else epochs_to_floor(h.epoch_losses, f, epochs)
            for h, f in zip(histories, floors, strict=True)
        ],
    )


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
    lr_scan: object | None = None  # mbgd.scan.LrScan of the study (None with --scan 0)
    trials_to_5pct_by_seed: list[int | None] | None = None  # TPE without the scan, per sampler seed

    @property
    def scan_summary(self) -> dict:
        """scan_best_lr, scan_best_value, scan_at_edge, tuned_regret (the tuned best relative to the
        scan's)."""
        from mbgd.scan import relative_regret

        scan = self.lr_scan
        if scan is None:
            return {"scan_best_lr": None, "scan_best_value": None, "scan_at_edge": None, "tuned_regret": None}
        return {
            "scan_best_lr": scan.best_lr,
            "scan_best_value": scan.best_value,
            "scan_at_edge": scan.at_edge or None,
            "tuned_regret": relative_regret(scan.objective, self.best_value, scan.best_value),
        }


def analyse_batch_size(
    config: SweepConfig, study: optuna.Study, data: RegressionData, lr_scan=None
) -> BatchSizeResult:
    """Best trial, its seeds, the fixed-lr seeds in both precisions, the epoch-map theory, and what tuning
    costs: the scan's best and how many TPE trials without the scan reach 5% of the optimum."""
    from mbgd import scan

    batch_size = int(study.study_name.rsplit("-b", 1)[1])
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
    optimum = min(float(best.value), lr_scan.best_value) if lr_scan is not None else float(best.value)
    cost = None
    if config.tuning_cost_seeds:
        cost = scan.tpe_trials_to_within(config, data, batch_size, optimum, seeds=config.tuning_cost_seeds)
    return BatchSizeResult(
        batch_size=batch_size,
        best_lr=best_lr,
        best_value=float(best.value),
        best_trial_number=best.number,
        tuned=retrain_over_seeds(config, batch_size, best_lr),
        fixed=retrain_over_seeds(config, batch_size, config.train.lr),
        fixed_other_dtype=retrain_over_seeds(config, batch_size, config.train.lr, dtype=other_dtype),
        theory=theory_values,
        trials=trials,
        pruned_trials=len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))),
        lr_scan=lr_scan,
        trials_to_5pct_by_seed=cost,
    )


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
