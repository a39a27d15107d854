"""Pruning: the pruner for --pruner and the epochs at which trials report their objective so far.

Hyperband's rungs (epochs 1, 3, 9, ...) are where a trial reports and may be stopped; the median pruner
compares trials at the same epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
import torch

from mbgd.core.objectives import intermediate_value
from mbgd.core.train import EpochHook

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
