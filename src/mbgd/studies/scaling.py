"""Batch-size scaling: parameter updates to a target loss vs batch size, each batch size at its tuned lr.

For every batch order (the tutorial's fixed order, reshuffled) and regime (noise-free training targets:
interpolation; noisy ones), an Optuna study per batch size tunes the lr for the objective `updates_to` (the
sweep's machinery: storage, resume, population trials); the best lr is then re-trained over the seeds,
counting updates, samples and epochs to the target and measuring the gradient noise scale along the way.
Beside the measurement: the interpolation theory's critical batch size m* and step eta*(m) (Ma, Bassily &
Belkin 2018) and the simple noise scale B_simple (McCandlish et al. 2018).

Pure of MLflow: trials are reported through `on_trials`, progress through `progress`, results returned;
scaling.json's numbers are mbgd.reports.scaling_summary's.
In scaling, every loss is the one on the targets the model trains on (the tutorial's recorded loss, on the
noisy Y, could never reach a target set on the noise-free line).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import optuna
import torch

from mbgd.core import noise_scale, nqm, objectives, theory
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import RegressionData, load_data
from mbgd.core.nqm import Prediction
from mbgd.core.scaling_config import REGIMES, ScalingConfig, resolve_lr_range
from mbgd.core.scan import LrScan, relative_regret, run_scan
from mbgd.core.train import DTYPES, History, fit_each, full_dataset_loss
from mbgd.studies import storage as studies
from mbgd.studies import sweep

ORDER_KEYS = {"fixed": "fixed_order", "shuffled": "shuffled"}  # scaling.json's names of the batch orders
ProgressLine = Callable[[str], None]  # one line per finished study


@dataclass(frozen=True)
class SeedRun:
    """One seed at a batch size's best lr: when its training loss first reached the target."""

    seed: int
    target: float  # the training loss to reach (each seed draws its own noise, hence its own optimum)
    updates: int | None  # from this update on the loss stays at or below the target; None: never, or diverged
    first_touch: int | None  # the update at which the loss first touched the target, whatever came after
    samples: int | None
    epochs: float | None  # samples / samples per epoch
    noise_scales: list[float]  # B_simple at the start and after every update
    history: History

    @property
    def noise_scale_at_target(self) -> float:
        return self.noise_scales[self.updates] if self.updates is not None else math.nan


@dataclass(frozen=True)
class ScalingPoint:
    """One batch size of one (order, regime): its tuned lr and its seeds at that lr."""

    batch_size: int
    best_lr: float
    best_value: float
    eta_star: float  # the interpolation theory's step for this batch size
    runs: list[SeedRun]
    lr_scan: LrScan | None = None  # the study's dense scan (None with --scan 0)
    worst_value: float = math.inf  # what a trial scores that never reaches the target within the budget
    predicted: Prediction | None = None  # the noisy quadratic model's (mbgd.core.nqm); None: not exact here

    @property
    def tuned_regret(self) -> float:
        """The tuned best's updates relative to the scan's best (0: as good; negative: the refinement did
        better)."""
        if self.lr_scan is None:
            return math.nan
        return relative_regret("updates_to", self.best_value, self.lr_scan.best_value)

    def stat(self, name: str) -> tuple[float, float]:
        """Mean and population sd over the seeds that reached the target; nan when none did."""
        values = [
            getattr(run, name)
            for run in self.runs
            if run.updates is not None and getattr(run, name) is not None
        ]
        if not values:
            return math.nan, math.nan
        return statistics.fmean(values), statistics.pstdev(values)

    @property
    def reached(self) -> int:
        return sum(run.updates is not None for run in self.runs)

    @property
    def noise_scale_at_target(self) -> float:
        return self.stat("noise_scale_at_target")[0]


@dataclass(frozen=True)
class CriticalBatchFit:
    """updates(B) = s_min + e_min / B (McCandlish et al. eq. 2.11): perfect scaling well below
    b_crit = e_min / s_min, no gain well above it; at b_crit a batch needs twice the fewest updates and twice
    the fewest samples."""

    s_min: float
    e_min: float

    @property
    def critical_batch_size(self) -> float:
        if self.s_min <= 0:
            return math.inf
        return self.e_min / self.s_min

    def updates(self, batch_size: float) -> float:
        return self.s_min + self.e_min / batch_size


class OrderAndRegime:
    """The names of a curve's batch order and regime, for a dataclass with `order` (fixed or shuffled) and
    `targets` (clean or noisy)."""

    order: str
    targets: str

    @property
    def regime(self) -> str:
        return REGIMES[self.targets]

    @property
    def order_key(self) -> str:
        return ORDER_KEYS[self.order]


@dataclass(frozen=True)
class ScalingCurve(OrderAndRegime):
    """The grid of one batch order and one regime."""

    order: str  # fixed or shuffled
    targets: str  # clean or noisy
    study_config: SweepConfig
    points: list[ScalingPoint]
    fit: CriticalBatchFit

    def study_name(self, batch_size: int) -> str:
        return self.study_config.study_name(batch_size)


@dataclass(frozen=True)
class ScalingTheory:
    """The interpolation theory for the data at hand (the loss's factor 2 included)."""

    critical_batch_size: float  # m* = beta / lambda_1
    beta: float  # the largest per-sample Hessian trace, 2 (|x_i|^2 + 1)
    lambda_1: float  # the full-data Hessian's largest eigenvalue
    eta_star: dict[int, float]  # eta*(m) per batch size of the grid
    contraction: dict[int, float]  # g*(m) per batch size: the bound on the per-update contraction


def training_view(data: RegressionData) -> RegressionData:
    """The data with the recorded loss measured on the training targets."""
    return replace(data, y_eval=data.y_train)


def scaling_theory(x: torch.Tensor, batch_sizes: Sequence[int]) -> ScalingTheory:
    etas = noise_scale.optimal_lr_interpolation(x, list(batch_sizes))
    rates = noise_scale.interpolation_contraction(x, list(batch_sizes))
    critical = noise_scale.critical_batch_size(x)
    eta_1 = float(noise_scale.optimal_lr_interpolation(x, 1))
    return ScalingTheory(
        critical_batch_size=critical,
        beta=1.0 / eta_1,  # eta*(1) = 1 / beta
        lambda_1=1.0 / eta_1 / critical,
        eta_star={b: float(e) for b, e in zip(batch_sizes, etas, strict=True)},
        contraction={b: float(g) for b, g in zip(batch_sizes, rates, strict=True)},
    )


def initial_training_loss(config: TrainConfig, data: RegressionData) -> float:
    """The training loss at the initial parameters, in the training's precision (History.train_losses[0])."""
    dtype = DTYPES[config.dtype]
    w = torch.full((1, data.n_features), config.init_w, dtype=dtype)
    b = torch.full((1,), config.init_b, dtype=dtype)
    return float(full_dataset_loss(w, b, data.x.to(dtype), data.y_train.to(dtype))[0])


def run_to_target(
    config: TrainConfig, data: RegressionData, history: History, target_ratio: float
) -> SeedRun:
    """The seed's training of the config's lr for the whole budget, every update recorded: the updates from
    which the training loss stays at or below the target (and its first touch), and the samples and epochs
    they used."""
    target = objectives.updates_target(
        initial_training_loss(config, data), theory.least_squares_loss(data.x, data.y_train), target_ratio
    )
    updates = objectives.updates_to_target(history, target)
    start = [[config.init_w] * data.n_features + [config.init_b]]
    noise_scales = noise_scale.gradient_noise_scale_path(
        data.x, data.y_train, start + history.update_params
    ).tolist()
    samples = None if updates is None else objectives.samples_seen(history, updates)
    return SeedRun(
        seed=config.seed,
        target=target,
        updates=updates,
        first_touch=objectives.first_touch_updates(history, target),
        samples=samples,
        epochs=None if samples is None else samples / history.samples_per_epoch,
        noise_scales=noise_scales,
        history=history,
    )


def seed_runs(study_config: SweepConfig, batch_size: int, lr: float) -> list[SeedRun]:
    """The batch size at its best lr over the seeds: each draws its own noise and, shuffled, its own order
    (trained together by mbgd.core.train.fit_each, with the numbers of one seed at a time)."""
    configs = [
        replace(study_config.train, batch_size=batch_size, lr=lr, seed=study_config.train.seed + offset)
        for offset in range(study_config.seeds)
    ]
    datasets = [training_view(load_data(config.data, config.seed)) for config in configs]
    histories = fit_each(configs, datasets, record_updates=True)
    return [
        run_to_target(config, data, history, study_config.target_ratio)
        for config, data, history in zip(configs, datasets, histories, strict=True)
    ]


def fit_critical_batch(batch_sizes: Sequence[int], updates: Sequence[float]) -> CriticalBatchFit:
    """Least squares of updates(B) = s_min + e_min / B in relative error (each point weighs 1 / its updates),
    both coefficients kept >= 0; points that are nan (never reached) are left out."""
    pairs = [(b, u) for b, u in zip(batch_sizes, updates, strict=True) if math.isfinite(u) and u > 0]
    if not pairs:
        return CriticalBatchFit(math.nan, math.nan)
    design = torch.tensor([[1.0 / u, 1.0 / (b * u)] for b, u in pairs], dtype=torch.float64)
    ones = torch.ones(len(pairs), 1, dtype=torch.float64)
    if len(pairs) >= 2:
        s_min, e_min = torch.linalg.lstsq(design, ones).solution.flatten().tolist()
        if s_min >= 0 and e_min >= 0:
            return CriticalBatchFit(s_min, e_min)
    # One coefficient alone: a constant (no gain from larger batches) or 1 / B (perfect scaling throughout).
    fits = []
    for column in (0, 1):
        coefficient = max(float(torch.linalg.lstsq(design[:, column : column + 1], ones).solution), 0.0)
        residual = float(((design[:, column] * coefficient - 1) ** 2).sum())
        fits.append((residual, column, coefficient))
    _, column, coefficient = min(fits)
    return CriticalBatchFit(coefficient, 0.0) if column == 0 else CriticalBatchFit(0.0, coefficient)


@dataclass(frozen=True)
class ScalingResult:
    config: ScalingConfig
    data: RegressionData  # the data of the run's seed, as loaded
    theory: ScalingTheory
    curves: list[ScalingCurve]


def measure_scaling(
    config: ScalingConfig,
    storage: optuna.storages.BaseStorage,
    *,
    on_trials: sweep.OnTrials | None = None,
    on_scan: Callable[[LrScan], None] | None = None,
    progress: ProgressLine | None = None,
    worker=None,
    on_curve: Callable[[ScalingCurve], None] | None = None,
) -> ScalingResult:
    """Every (order, regime): the lr study of each batch size, then its best lr over the seeds; `on_curve` is
    called with each (order, regime)'s curve as soon as it is measured.

    The dense scans, which need no study, are all handed to `worker` (mbgd.runtime.compute_worker) first and
    taken as each study starts; without one they run here.
    """
    from mbgd.runtime.compute_worker import or_here

    base_data = load_data(config.sweep.train.data, config.sweep.train.seed)
    config = resolve_lr_range(config, base_data)
    worker = or_here(worker)
    grid = {
        (order, targets): config.study_config(order, targets)
        for order in config.orders
        for targets in config.targets
    }
    datasets = {key: training_view(load_data(c.train.data, c.train.seed)) for key, c in grid.items()}
    scans = {
        (key, batch_size): worker.submit(run_scan, study_config, datasets[key], batch_size)
        for key, study_config in grid.items()
        if study_config.scan
        for batch_size in study_config.batch_sizes
    }
    # taken once every study is done (the worker computes them after the scans); the model draws batches
    # with replacement, so one prediction per regime serves both orders
    by_regime = {
        targets: (key, c) for key, c in grid.items() for targets in [key[1]] if nqm.predicts(c.train)
    }
    predictions = {
        targets: worker.submit(
            nqm.predict_scaling,
            c.train,
            datasets[key],
            c.batch_sizes,
            (c.lr_min, c.lr_max),
            c.target_ratio,
        )
        for targets, (key, c) in by_regime.items()
    }
    curves = []
    for (order, targets), study_config in grid.items():
        data = datasets[(order, targets)]
        etas = scaling_theory(data.x, study_config.batch_sizes).eta_star
        points = []
        for batch_size in study_config.batch_sizes:
            lr_scan = None
            if study_config.scan:
                lr_scan = scans[((order, targets), batch_size)].result()
                # no companion scan studies: forty of them would add a fifth to the command's time
                sweep.prepare_refinement(
                    studies.open_study(study_config, batch_size, storage),
                    storage,
                    lr_scan,
                    with_scan_study=False,
                )
                if on_scan:
                    on_scan(lr_scan)
            study = sweep.run_study(study_config, data, batch_size, storage, on_trials=on_trials)
            best_lr = float(study.best_trial.params["lr"])
            point = ScalingPoint(
                batch_size=batch_size,
                best_lr=best_lr,
                best_value=float(study.best_value),
                eta_star=etas[batch_size],
                runs=seed_runs(study_config, batch_size, best_lr),
                lr_scan=lr_scan,
                worst_value=objectives.worst_value(
                    "updates_to",
                    study_config.train.epochs,
                    updates_per_epoch(data.n, batch_size, study_config.train),
                ),
            )
            points.append(point)
            if progress:
                progress(progress_line(order, targets, point))
        fit = fit_critical_batch([p.batch_size for p in points], [p.stat("updates")[0] for p in points])
        curves.append(ScalingCurve(order, targets, study_config, points, fit))
        if on_curve:
            on_curve(curves[-1])
    predicted = {targets: future.result() for targets, future in predictions.items()}
    curves = [
        replace(c, points=[replace(p, predicted=predicted[c.targets][p.batch_size]) for p in c.points])
        if c.targets in predicted
        else c
        for c in curves
    ]
    return ScalingResult(config, base_data, scaling_theory(base_data.x, config.sweep.batch_sizes), curves)


def updates_per_epoch(n: int, batch_size: int, config: TrainConfig) -> int:
    return n // batch_size if config.drop_last else math.ceil(n / batch_size)


def progress_line(order: str, targets: str, point: ScalingPoint) -> str:
    """One finished study, as `mbgd scaling` prints it; a scan whose best lr is an end of the range says
    so."""
    updates, _ = point.stat("updates")
    reached = f"{updates:.4g} updates to target" if point.reached else "never reached the target"
    best = (
        f"best lr {point.best_lr:.4g}" if point.best_value < point.worst_value else "no lr reached the target"
    )
    line = (
        f"{order:>8} {REGIMES[targets]:>13} batch size {point.batch_size:>4}: {best}, "
        f"{reached} ({point.reached}/{len(point.runs)} seeds reached it)"
    )
    if point.lr_scan is not None and not point.lr_scan.reached:
        line += "; no lr of the scan stayed at the target within the budget"
    elif point.lr_scan is not None and point.lr_scan.at_edge:
        line += f"; the scan's best lr is at {point.lr_scan.at_edge}: the optimum may lie outside the range"
    return line


def open_studies(config: ScalingConfig, storage: optuna.storages.BaseStorage) -> int:
    """Create or check every study first: mismatched settings fail before anything is trained or logged.
    Returns the trials still to run in all of them."""
    return sum(
        studies.remaining_trials(config.study_config(order, targets), storage)
        for order in config.orders
        for targets in config.targets
    )
