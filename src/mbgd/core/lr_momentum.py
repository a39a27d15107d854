"""Two-dimensional searches: the learning rate and the heavy-ball momentum together.

A dense lr x momentum grid, trained as populations in which every member has its own lr and coefficient
(mbgd.core.optimizers), is the reference a tuned (lr, momentum) is checked against, as the 1-D scan is for
the lr alone (mbgd.core.scan). Its momentum-0 row is plain SGD's lr scan (heavy ball with a zero coefficient
is SGD to the bit), so one grid answers both what tuning the momentum gains and how close a tuner gets.
The tuning cost counts the trials multivariate TPE needs, without the grid, to come within 5% of the optimum
in 2-D, and a 1-D TPE over the lr alone at momentum 0 for comparison.

Pure: returns tables and numbers. Imports neither mlflow nor matplotlib.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mbgd.core import objectives
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import RegressionData
from mbgd.core.scan import SCAN_CHUNK, WITHIN, relative_regret, study_value
from mbgd.core.train import fit_population

MOMENTUM_MAX = 0.99  # the largest coefficient searched: 1 - mu = 0.01 averages some 100 gradients
GRID_MOMENTA = 34  # rows of the grid: 0, 0.03, ..., 0.99
CSV_HEADER = "momentum,lr,objective"


def momentum_grid(count: int, momentum_max: float = MOMENTUM_MAX) -> list[float]:
    """`count` evenly spaced coefficients from 0 to momentum_max, both included (0 alone when count is 1)."""
    if count == 1:
        return [0.0]
    return [momentum_max * i / (count - 1) for i in range(count)]


@dataclass(frozen=True)
class LrMomentumGrid:
    """Every (momentum, lr) pair of the grid with its objective value: values[i][j] is momenta[i], lrs[j]."""

    lrs: list[float]
    momenta: list[float]
    values: list[list[float]]
    worst: float  # the value of a run that never reached the target or diverged

    def row_best(self, row: int) -> int:
        """The lr index of the row's lowest value; among equal ones the middle of the first run of them."""
        first, last = self._best_run(row)
        return (first + last) // 2

    def _best_run(self, row: int) -> tuple[int, int]:
        """The first and last lr index of the row's first run of consecutive lrs sharing its lowest value."""
        values = self.values[row]
        best = min(values)
        first = last = values.index(best)
        while last + 1 < len(values) and values[last + 1] == best:
            last += 1
        return first, last

    @property
    def best_cell(self) -> tuple[int, int]:
        """(momentum index, lr index) of the lowest value: among equal ones the smallest momentum, and in its
        row the middle of the first run (the simplest rule, then the most robust lr)."""
        best = min(min(row) for row in self.values)
        row = next(i for i, values in enumerate(self.values) if best in values)
        return row, self.row_best(row)

    @property
    def best_value(self) -> float:
        row, column = self.best_cell
        return self.values[row][column]

    @property
    def best_lr(self) -> float:
        return self.lrs[self.best_cell[1]]

    @property
    def best_momentum(self) -> float:
        return self.momenta[self.best_cell[0]]

    @property
    def reached(self) -> bool:
        return self.best_value < self.worst

    @property
    def at_edge(self) -> list[str]:
        """The ends of the searched box the best cell lies on (lr_min, lr_max, momentum_max): the optimum
        may lie beyond them. Momentum 0 is not an edge: heavy ball is defined for coefficients >= 0."""
        if not self.reached:
            return []
        row, column = self.best_cell
        edges = []
        if column == 0:
            edges.append("lr_min")
        if column == len(self.lrs) - 1 and len(self.lrs) > 1:
            edges.append("lr_max")
        if row == len(self.momenta) - 1 and len(self.momenta) > 1:
            edges.append("momentum_max")
        return edges

    def refinement_box(self, steps: int = 1) -> tuple[tuple[float, float], tuple[float, float]]:
        """The momentum rows `steps` either side of the best cell's, and the lrs from `steps` grid points
        below to `steps` above the run of best lrs of each of those rows that reached the target (clipped to
        the grid): the valley of
        heavy ball runs diagonally (its steady step is lr / (1 - mu)), so a neighbouring row's best lr is
        not the best row's."""
        row, _ = self.best_cell
        rows = range(max(row - steps, 0), min(row + steps, len(self.momenta) - 1) + 1)
        # a row no lr of which reached the target has no valley to follow (its "best run" is all of it)
        runs = [self._best_run(r) for r in rows if r == row or min(self.values[r]) < self.worst]
        lr_low = self.lrs[max(min(first for first, _ in runs) - steps, 0)]
        lr_high = self.lrs[min(max(last for _, last in runs) + steps, len(self.lrs) - 1)]
        return (lr_low, lr_high), (self.momenta[rows[0]], self.momenta[rows[-1]])

    def to_csv(self) -> str:
        rows = [CSV_HEADER]
        for mu, values in zip(self.momenta, self.values, strict=True):
            rows += [f"{mu!r},{lr!r},{value!r}" for lr, value in zip(self.lrs, values, strict=True)]
        return "\n".join(rows) + "\n"


def momentum_config(config: SweepConfig, batch_size: int) -> TrainConfig:
    """The training of one batch size with heavy ball (its coefficient set per member)."""
    return replace(config.train.with_batch_size(batch_size), optimizer="momentum")


def train_pairs(
    config: SweepConfig, data: RegressionData, batch_size: int, pairs: Sequence[tuple[float, float]]
) -> list[float]:
    """The objective value of each (lr, momentum) pair, trained as populations of at most SCAN_CHUNK."""
    train_config = momentum_config(config, batch_size)
    floor = objectives.objective_floor(config.objective, data)
    values = []
    for start in range(0, len(pairs), SCAN_CHUNK):
        chunk = pairs[start : start + SCAN_CHUNK]
        histories = fit_population(
            train_config,
            data,
            [lr for lr, _ in chunk],
            momenta=[mu for _, mu in chunk],
            record_updates=config.objective == "updates_to",
            keep_update_params=False,
        )
        values += [study_value(config, history, floor) for history in histories]
    return values


def scan_lr_momentum(
    config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    lrs: Sequence[float],
    momenta: Sequence[float],
) -> LrMomentumGrid:
    """Train every (momentum, lr) pair of the grid for the study's budget and score it."""
    pairs = [(lr, mu) for mu in momenta for lr in lrs]
    flat = train_pairs(config, data, batch_size, pairs)
    width = len(lrs)
    train_config = momentum_config(config, batch_size)
    updates_per_epoch = data.n // batch_size if train_config.drop_last else math.ceil(data.n / batch_size)
    return LrMomentumGrid(
        lrs=[float(lr) for lr in lrs],
        momenta=[float(mu) for mu in momenta],
        values=[flat[i * width : (i + 1) * width] for i in range(len(momenta))],
        worst=objectives.worst_value(config.objective, train_config.epochs, updates_per_epoch),
    )


def multivariate_tpe(seed: int):
    """TPE modelling lr and momentum jointly (Optuna's multivariate=True, experimental: its warning is
    silenced), with constant liar for the trials asked at once."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True)


def tpe_trials_to_within(
    config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    optimum: float,
    *,
    momentum_max: float | None,
    seeds: int,
    max_trials: int,
) -> list[int | None]:
    """Per sampler seed (sampler_seed + batch size + 0 .. seeds - 1), the 1-based number of the first trial of
    a study without the grid that is within 5% of `optimum`; None if none of max_trials is.

    With momentum_max, multivariate TPE over lr (log) in [lr_min, lr_max] and momentum in [0, momentum_max];
    with None, over the lr alone at momentum 0 (plain SGD). `population` trials are asked at once, and the
    populations of all seeds still searching train together.
    """
    import optuna

    studies = [
        optuna.create_study(
            direction="minimize", sampler=multivariate_tpe(config.sampler_seed + batch_size + s)
        )
        for s in range(seeds)
    ]
    firsts: list[int | None] = [None] * seeds
    told = [0] * seeds
    while True:
        searching = [s for s in range(seeds) if firsts[s] is None and told[s] < max_trials]
        if not searching:
            return firsts
        asked = []
        for s in searching:
            for _ in range(min(config.population, max_trials - told[s])):
                trial = studies[s].ask()
                lr = trial.suggest_float("lr", config.lr_min, config.lr_max, log=True)
                mu = 0.0 if momentum_max is None else trial.suggest_float("momentum", 0.0, momentum_max)
                asked.append((s, trial, lr, mu))
        values = train_pairs(config, data, batch_size, [(lr, mu) for _, _, lr, mu in asked])
        for (s, trial, _, _), value in zip(asked, values, strict=True):
            studies[s].tell(trial, value)
            told[s] += 1
            if firsts[s] is None and relative_regret(config.objective, value, optimum) <= WITHIN:
                firsts[s] = told[s]
