"""lr x momentum at each batch size (`mbgd lr-momentum`): what tuning heavy ball's coefficient with the lr
gains over plain SGD at its own tuned lr, and how close a two-dimensional tuner gets to the exhaustive answer.

For every batch order and regime (as `mbgd scaling`) and batch size: the dense lr x momentum grid
(mbgd.core.lr_momentum); an Optuna study `<name>-<order>-<regime>-b<B>` whose multivariate TPE refines the
grid's best cell (enqueued first, then the box one grid step around it); the tuned (lr, momentum) and plain
SGD's best lr (the grid's momentum-0 row) each re-trained over the seeds, counting updates to the target; and
with tuning-cost seeds, the trials a search without the grid needs in 2-D and, over the lr alone, in 1-D.

One process per study: the refinement asks and tells without the sweep's multi-worker protocol; the grids and
the tuning-cost searches, pure computations, go to the compute worker when there is one. Pure of MLflow:
results returned, progress through `progress`.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import optuna

from mbgd.core import lr_momentum
from mbgd.core.config import SweepConfig
from mbgd.core.data import RegressionData, load_data
from mbgd.core.lr_momentum import LrMomentumGrid
from mbgd.core.scaling_config import REGIMES, LrMomentumConfig
from mbgd.core.scan import lr_grid, relative_regret
from mbgd.studies import lock as study_locks
from mbgd.studies import storage as studies
from mbgd.studies.scaling import OrderAndRegime, SeedRun, seed_runs, training_view

STATE = optuna.trial.TrialState


@dataclass(frozen=True)
class LrMomentumPoint:
    """One batch size of one (order, regime)."""

    batch_size: int
    grid: LrMomentumGrid
    tuned_lr: float
    tuned_momentum: float
    tuned_value: float
    runs: list[SeedRun]  # the tuned (lr, momentum) over the seeds
    sgd_runs: list[SeedRun]  # plain SGD at the grid's momentum-0 best lr over the seeds
    trials_to_5pct_2d: list[int | None] | None = None  # per sampler seed; None: not measured
    trials_to_5pct_1d: list[int | None] | None = None

    @property
    def sgd_lr(self) -> float:
        return self.grid.lrs[self.grid.row_best(0)]

    @property
    def sgd_value(self) -> float:
        return self.grid.values[0][self.grid.row_best(0)]

    @property
    def tuned_regret(self) -> float:
        """The tuned best relative to the grid's best (0: as good; negative: the refinement did better)."""
        return relative_regret("updates_to", self.tuned_value, self.grid.best_value)

    @property
    def reached(self) -> bool:
        return self.tuned_value < self.grid.worst


def updates_stat(runs: Sequence[SeedRun]) -> tuple[float, float, int]:
    """Mean and population sd of the updates to the target over the seeds that reached it (nan when none
    did), and how many did."""
    reached = [run.updates for run in runs if run.updates is not None]
    if not reached:
        return math.nan, math.nan, 0
    return statistics.fmean(reached), statistics.pstdev(reached), len(reached)


@dataclass(frozen=True)
class LrMomentumCurve(OrderAndRegime):
    order: str
    targets: str
    study_config: SweepConfig
    points: list[LrMomentumPoint]


@dataclass(frozen=True)
class LrMomentumResult:
    config: LrMomentumConfig
    curves: list[LrMomentumCurve]


def open_studies(config: LrMomentumConfig, storage) -> list[optuna.Study]:
    """Create or check every study first: mismatched settings fail before anything is trained or logged."""
    scaling = config.scaling
    return [
        open_point_study(config, scaling.study_config(order, targets), batch_size, storage)
        for order in scaling.orders
        for targets in scaling.targets
        for batch_size in scaling.sweep.batch_sizes
    ]


def open_point_study(config: LrMomentumConfig, study_config: SweepConfig, batch_size: int, storage):
    return studies.open_study(
        study_config,
        batch_size,
        storage,
        sampler=lr_momentum.multivariate_tpe(study_config.sampler_seed + batch_size),
        searched={"momentum": "tuned", "momentum_max": config.momentum_max, "momenta": config.momenta},
    )


def refine(
    study_config: SweepConfig, data: RegressionData, batch_size: int, grid: LrMomentumGrid, study, storage
) -> tuple[float, float, float]:
    """The study's trials up to n_trials: the grid's best cell (unless a finished or waiting trial has it),
    then multivariate TPE within grid.refinement_box(). Returns the best trial's (lr, momentum, value); among
    equal values the first (the grid's cell before a TPE trial that ties it).

    Under the study's lock (mbgd.studies.lock): a second process on the same study waits, then finds the
    trials done. So a RUNNING trial found under it is a killed command's and is failed; on any error the
    trials asked are failed, never left RUNNING."""
    with study_locks.held_for(storage, storage.get_study_id_from_name(study.study_name)):
        for trial in study.get_trials(deepcopy=False, states=(STATE.RUNNING,)):
            study.tell(trial.number, state=STATE.FAIL)
        best_cell = {"lr": grid.best_lr, "momentum": grid.best_momentum}
        held = study.get_trials(deepcopy=False, states=(STATE.COMPLETE, STATE.WAITING))
        if not any(
            studies.same_setting(t.system_attrs.get("fixed_params", t.params), best_cell) for t in held
        ):
            study.enqueue_trial(best_cell)
        _ask_and_tell(study_config, data, batch_size, grid, study)
    complete = study.get_trials(deepcopy=False, states=(STATE.COMPLETE,))
    best = min(complete, key=lambda t: (t.value, t.number))
    return float(best.params["lr"]), float(best.params["momentum"]), float(best.value)


def _ask_and_tell(study_config, data, batch_size, grid, study) -> None:
    (lr_low, lr_high), (mu_low, mu_high) = grid.refinement_box()
    remaining = study_config.n_trials - len(study.get_trials(deepcopy=False, states=(STATE.COMPLETE,)))
    while remaining > 0:
        with warnings.catch_warnings():  # mbgd's storages record heartbeats, which Optuna ties to optimize()
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            asked = [study.ask() for _ in range(min(study_config.population, remaining))]
        try:
            pairs = [
                (
                    trial.suggest_float("lr", lr_low, lr_high, log=True),
                    trial.suggest_float("momentum", mu_low, mu_high),
                )
                for trial in asked
            ]
            values = lr_momentum.train_pairs(study_config, data, batch_size, pairs)
        except BaseException:
            for trial in asked:
                study.tell(trial, state=STATE.FAIL)
            raise
        for trial, value in zip(asked, values, strict=True):
            study.tell(trial, value)
        remaining -= len(asked)


def start_point(
    config: LrMomentumConfig,
    study_config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    storage,
    *,
    grid: LrMomentumGrid | None = None,
    worker=None,
) -> tuple[LrMomentumPoint, dict]:
    """One batch size: the point without its tuning cost, and the tuning cost's searches, handed to `worker`
    (mbgd.runtime.compute_worker; without one they run when with_tuning_cost asks for them). `grid` when it is
    made already; without one it is made here."""
    from mbgd.runtime.compute_worker import or_here

    if grid is None:
        grid = lr_momentum.scan_lr_momentum(study_config, data, batch_size, *grid_axes(config, study_config))
    study = open_point_study(config, study_config, batch_size, storage)
    lr, mu, value = refine(study_config, data, batch_size, grid, study, storage)
    tuned = replace(study_config, train=replace(study_config.train, optimizer="momentum", momentum=mu))
    sgd = replace(study_config, train=replace(study_config.train, optimizer="sgd"))
    point = LrMomentumPoint(
        batch_size=batch_size,
        grid=grid,
        tuned_lr=lr,
        tuned_momentum=mu,
        tuned_value=value,
        runs=seed_runs(tuned, batch_size, lr),
        sgd_runs=[],
    )
    point = replace(point, sgd_runs=seed_runs(sgd, batch_size, point.sgd_lr))
    seeds = study_config.tuning_cost_seeds
    if not seeds or not grid.reached:  # no optimum to come within 5% of
        return point, {}
    worker = or_here(worker)
    cost = {"seeds": seeds, "max_trials": config.tuning_cost_max_trials}
    search = lr_momentum.tpe_trials_to_within
    optimum = min(value, grid.best_value)
    return point, {
        "trials_to_5pct_2d": worker.submit(
            search, study_config, data, batch_size, optimum, momentum_max=config.momentum_max, **cost
        ),
        "trials_to_5pct_1d": worker.submit(
            search, study_config, data, batch_size, point.sgd_value, momentum_max=None, **cost
        ),
    }


def with_tuning_cost(point: LrMomentumPoint, searches: dict) -> LrMomentumPoint:
    return replace(point, **{field: search.result() for field, search in searches.items()})


def grid_axes(config: LrMomentumConfig, study_config: SweepConfig) -> tuple[list[float], list[float]]:
    """The grid's lrs and momenta."""
    return (
        lr_grid(study_config.lr_min, study_config.lr_max, study_config.scan),
        lr_momentum.momentum_grid(config.momenta, config.momentum_max),
    )


def measure_lr_momentum(
    config: LrMomentumConfig, storage, *, progress: Callable[[str], None] | None = None, worker=None
) -> LrMomentumResult:
    """Every (order, regime) and batch size; `config` has its lr range resolved (resolve_lr_range).

    The grids, which need no study, are all handed to `worker` (mbgd.runtime.compute_worker) first and taken
    as each batch size starts, and each batch size's tuning-cost searches as its study is refined; without a
    worker they run here."""
    from mbgd.runtime.compute_worker import or_here

    worker = or_here(worker)
    scaling = config.scaling
    keys = [(order, targets) for order in scaling.orders for targets in scaling.targets]
    configs = {key: scaling.study_config(*key) for key in keys}
    datasets = {key: training_view(load_data(c.train.data, c.train.seed)) for key, c in configs.items()}
    batch_sizes = scaling.sweep.batch_sizes
    grids = {
        (key, b): worker.submit(lr_momentum.scan_lr_momentum, c, datasets[key], b, *grid_axes(config, c))
        for key, c in configs.items()
        for b in batch_sizes
    }
    started = {}
    for key in keys:
        for b in batch_sizes:
            point, searches = start_point(
                config, configs[key], datasets[key], b, storage, grid=grids[key, b].result(), worker=worker
            )
            started[key, b] = point, searches
            if progress:
                progress(progress_line(*key, point))
    curves = [
        LrMomentumCurve(*key, configs[key], [with_tuning_cost(*started[key, b]) for b in batch_sizes])
        for key in keys
    ]
    return LrMomentumResult(config, curves)


def progress_line(order: str, targets: str, point: LrMomentumPoint) -> str:
    tuned, _, tuned_reached = updates_stat(point.runs)
    sgd, _, sgd_reached = updates_stat(point.sgd_runs)
    seeds = len(point.runs)

    def said(mean: float, reached: int) -> str:
        return f"{mean:.4g} updates ({reached}/{seeds} seeds)" if reached else f"never (0/{seeds} seeds)"

    best = f"lr {point.tuned_lr:.4g} momentum {point.tuned_momentum:.3g}: {said(tuned, tuned_reached)}"
    if not point.reached:
        best = "no lr and momentum of the grid reached the target"
    line = f"{order:>8} {REGIMES[targets]:>13} batch size {point.batch_size:>4}: {best}; "
    if point.sgd_value < point.grid.worst:
        line += f"SGD lr {point.sgd_lr:.4g}: {said(sgd, sgd_reached)}"
    else:
        line += "no lr of SGD reached the target"
    if point.grid.at_edge:
        line += f"; the grid's best is at {', '.join(point.grid.at_edge)}: the optimum may lie outside"
    return line
