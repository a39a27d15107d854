"""Dense learning-rate scans: N log-spaced lrs over a study's range, trained as populations.

The lr is one number and training is vectorised, so a dense scan costs little and cannot miss what a handful
of sampled trials can: in the tutorial's fixed order the updates-to-target objective is needle-shaped in the
lr (a 1.5% change can double it). Every lr study starts with one; its best points seed the Optuna refinement,
and the scan is the reference the tuned result is checked against (`tuned_regret`).

Pure: returns tables and numbers; the tracking layer writes them (lr_scan/<study>.csv). The one state kept is
a process's tuning-cost searches begun ahead (search_tpe_ahead), until their count is taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mbgd.core import objectives
from mbgd.core.config import SweepConfig
from mbgd.core.data import RegressionData
from mbgd.core.train import fit_population

# Models trained in one vectorised pass. At batch size 1 and 30 epochs a member's per-update losses are 3000
# floats, so 512 members keep a few MB of Python floats; larger scans run in several passes.
SCAN_CHUNK = 512
# The Optuna refinement searches between the best scan point's neighbours (one grid step either side).
REFINE_STEPS = 1
CSV_HEADER = "lr,objective,first_touch,diverged"


@dataclass(frozen=True)
class LrScan:
    """One study's scan: per lr, the objective, the first touch of the target (updates_to only) and
    divergence."""

    study_name: str
    objective: str
    lrs: list[float]
    values: list[float]
    first_touch: list[int | None]  # updates_to: updates until the loss first touched the target; else None
    diverged: list[bool]
    worst: float  # the value of a run that never reached the target or diverged

    @property
    def best_index(self) -> int:
        """The lowest value; among equal ones the middle of the first run of them (the most robust lr)."""
        first, last = self._best_run()
        return (first + last) // 2

    def _best_run(self) -> tuple[int, int]:
        """The first and last index of the first run of consecutive lrs that share the lowest value."""
        best = min(self.values)
        first = last = self.values.index(best)
        while last + 1 < len(self.values) and self.values[last + 1] == best:
            last += 1
        return first, last

    @property
    def best_lr(self) -> float:
        return self.lrs[self.best_index]

    @property
    def best_value(self) -> float:
        return self.values[self.best_index]

    @property
    def reached(self) -> bool:
        """Whether any lr did better than the worst value (for updates_to: reached and stayed at the
        target)."""
        return self.best_value < self.worst

    @property
    def at_edge(self) -> str:
        """ "lr_min" or "lr_max" when the best lr is the range's first or last point (the optimum may lie
        beyond it: widen the range), else ""."""
        if not self.reached or len(self.lrs) < 2:
            return ""
        index = self.best_index
        return "lr_min" if index == 0 else "lr_max" if index == len(self.lrs) - 1 else ""

    def refinement_range(self, steps: int = REFINE_STEPS) -> tuple[float, float]:
        """The lrs between the best point's neighbours `steps` grid points away (clipped to the scan's
        range)."""
        first, last = self._best_run()
        low = self.lrs[max(first - steps, 0)]
        high = self.lrs[min(last + steps, len(self.lrs) - 1)]
        return low, high

    def to_csv(self) -> str:
        rows = [CSV_HEADER]
        for lr, value, touch, diverged in zip(
            self.lrs, self.values, self.first_touch, self.diverged, strict=True
        ):
            rows.append(f"{lr!r},{value!r},{'' if touch is None else touch},{int(diverged)}")
        return "\n".join(rows) + "\n"


def lr_grid(lr_min: float, lr_max: float, count: int) -> list[float]:
    """`count` log-spaced lrs from lr_min to lr_max, both ends included (float64)."""
    if count == 1:
        return [math.sqrt(lr_min * lr_max)]
    step = (math.log(lr_max) - math.log(lr_min)) / (count - 1)
    grid = [math.exp(math.log(lr_min) + i * step) for i in range(count)]
    grid[0], grid[-1] = lr_min, lr_max
    return grid


def study_value(config: SweepConfig, history, floor: float) -> float:
    """A trained history's value under the study's objective (its epochs, floor and target ratio)."""
    return objectives.objective_value(
        config.objective,
        history,
        epochs=config.train.epochs,
        floor=floor,
        target_ratio=config.target_ratio,
    )


def scan_lrs(config: SweepConfig, data: RegressionData, batch_size: int, lrs: Sequence[float]) -> LrScan:
    """Train every lr for the study's budget and score it with the study's objective."""
    train_config = config.train.with_batch_size(batch_size)
    floor = objectives.objective_floor(config.objective, data)
    counting = config.objective == "updates_to"
    values: list[float] = []
    first_touch: list[int | None] = []
    diverged: list[bool] = []
    worst = 0.0
    for start in range(0, len(lrs), SCAN_CHUNK):
        chunk = list(lrs[start : start + SCAN_CHUNK])
        histories = fit_population(
            train_config, data, chunk, record_updates=counting, keep_update_params=False
        )
        for history in histories:
            values.append(study_value(config, history, floor))
            worst = objectives.worst_value(config.objective, train_config.epochs, history.updates_per_epoch)
            diverged.append(objectives.ended_diverged(history))
            if counting:
                target = objectives.updates_target(history.train_losses[0], floor, config.target_ratio)
                first_touch.append(objectives.first_touch_updates(history, target))
            else:
                first_touch.append(None)
    return LrScan(
        study_name=config.study_name(batch_size),
        objective=config.objective,
        lrs=[float(lr) for lr in lrs],
        values=values,
        first_touch=first_touch,
        diverged=diverged,
        worst=worst,
    )


def run_scan(config: SweepConfig, data: RegressionData, batch_size: int) -> LrScan:
    """The study's scan: config.scan log-spaced lrs over [lr_min, lr_max]."""
    return scan_lrs(config, data, batch_size, lr_grid(config.lr_min, config.lr_max, config.scan))


def relative_regret(objective: str, value: float, reference: float) -> float:
    """How much worse `value` is than `reference`, as a fraction: for auc (a mean of log10 losses) the ratio
    of the geometric-mean losses minus 1; for the others value / reference - 1. Negative: better than the
    reference."""
    if objective == "auc":
        return 10 ** (value - reference) - 1
    if reference == 0:
        return 0.0 if value == 0 else math.inf
    return value / reference - 1


WITHIN = 0.05  # "within 5% of the optimum" (relative_regret)
TUNING_COST_MAX_TRIALS = 256  # four times the sweep's default budget: a seed that needs more counts as never


def tpe_trials_to_within(
    config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    optimum: float,
    *,
    seeds: int,
    max_trials: int = TUNING_COST_MAX_TRIALS,
) -> list[int | None]:
    """How many TPE trials a study without the scan needs before one is within 5% of `optimum`: per sampler
    seed (sampler_seed + batch size + 0 .. seeds - 1; the first is the sweep's own), the 1-based number of the
    first such trial, None if none of max_trials is.

    Each seed is a study as the sweep runs one without a scan (in memory: the count, not the storage, is
    measured): TPE with constant liar over [lr_min, lr_max], `population` trials asked at once. The
    populations of all seeds still searching train together in one vectorised pass. A search this process
    began ahead (search_tpe_ahead) goes on from where it stopped.
    """
    key = _search_key(config, data, batch_size, seeds, max_trials)
    search = _SEARCHES_AHEAD.pop(key, None) or TpeSearch(config, data, batch_size, seeds, max_trials)
    _COUNTED.add(key)
    search.advance(optimum)
    return search.counts(optimum)


def search_tpe_ahead(
    config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    *,
    seeds: int,
    max_trials: int = TUNING_COST_MAX_TRIALS,
) -> None:
    """Begin the batch size's tpe_trials_to_within before its optimum is known, kept in this process for the
    count: the seeds search together until one has a trial within 5% of the scan's best (made again here as
    the bound: a fraction of the search). The optimum is never above the scan's best, so until then every
    seed searches as it will when the optimum is known (TpeSearch.advance). Nothing once the count was taken
    (in the compute worker a call submitted later is begun first)."""
    key = _search_key(config, data, batch_size, seeds, max_trials)
    if key in _COUNTED:
        return
    search = _SEARCHES_AHEAD.pop(key, None) or TpeSearch(config, data, batch_size, seeds, max_trials)
    search.advance(run_scan(config, data, batch_size).best_value, ahead=True)
    _SEARCHES_AHEAD[key] = search


_SEARCHES_AHEAD: dict[tuple, TpeSearch] = {}  # searches search_tpe_ahead began, until their count is taken
_COUNTED: set[tuple] = set()  # searches whose count was taken: one begun ahead after that is not wanted


def _search_key(config: SweepConfig, data: RegressionData, batch_size: int, seeds: int, max_trials: int):
    import hashlib

    digest = hashlib.sha256()
    for tensor in (data.x, data.y_train, data.y_eval):
        digest.update(tensor.contiguous().numpy().tobytes())
    return (config, batch_size, seeds, max_trials, data.n, data.n_features, digest.hexdigest())


class TpeSearch:
    """tpe_trials_to_within's studies with every value told so far, advanced in steps: each seed asks, trains
    and tells exactly what one uninterrupted search would (its sampler and trials are its own, and a
    population's members train independently of each other), so a count taken after any steps is the
    uninterrupted search's."""

    def __init__(
        self, config: SweepConfig, data: RegressionData, batch_size: int, seeds: int, max_trials: int
    ) -> None:
        import optuna

        self.config, self.data, self.max_trials = config, data, max_trials
        self.train_config = config.train.with_batch_size(batch_size)
        self.floor = objectives.objective_floor(config.objective, data)
        self.studies = [
            optuna.create_study(
                direction="minimize",
                sampler=optuna.samplers.TPESampler(
                    seed=config.sampler_seed + batch_size + s, constant_liar=True
                ),
            )
            for s in range(seeds)
        ]
        self.values: list[list[float]] = [[] for _ in range(seeds)]  # each seed's values, by trial number

    def first_within(self, seed: int, reference: float) -> int | None:
        """The 1-based number of the seed's first trial within 5% of `reference` so far; None if none is."""
        for number, value in enumerate(self.values[seed]):
            if relative_regret(self.config.objective, value, reference) <= WITHIN:
                return number + 1
        return None

    def counts(self, reference: float) -> list[int | None]:
        return [self.first_within(s, reference) for s in range(len(self.studies))]

    def advance(self, reference: float, *, ahead: bool = False) -> None:
        """Search on until every seed has a trial within 5% of `reference` or has made max_trials.

        `ahead` (a bound above the optimum, not the optimum): only while no seed has such a trial. The seeds
        still searching train together, and how a population's losses are summed can depend on how many
        rows train with it (train.full_dataset_loss); while none is within the bound, none is within the
        optimum either, so every seed short of max_trials searches, with or without the optimum known.
        """
        config = self.config
        counting = config.objective == "updates_to"
        while True:
            open_seeds = [s for s in range(len(self.studies)) if len(self.values[s]) < self.max_trials]
            searching = [s for s in open_seeds if self.first_within(s, reference) is None]
            if not searching or (ahead and searching != open_seeds):
                return
            asked = []
            for s in searching:
                count = min(config.population, self.max_trials - len(self.values[s]))
                for trial in [self.studies[s].ask() for _ in range(count)]:
                    asked.append(
                        (s, trial, trial.suggest_float("lr", config.lr_min, config.lr_max, log=True))
                    )
            histories = fit_population(
                self.train_config,
                self.data,
                [lr for _, _, lr in asked],
                record_updates=counting,
                keep_update_params=False,
            )
            for (s, trial, _), history in zip(asked, histories, strict=True):
                value = study_value(config, history, self.floor)
                self.studies[s].tell(trial, value)
                self.values[s].append(value)
