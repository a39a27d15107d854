"""What a trial minimises, and the targets and floors it counts to: pure functions of a training's History.

auc, final and epochs_to score the recorded full-dataset loss (the tutorial's, on the noisy targets) against
the noise floor; updates_to counts parameter updates on the training loss against a target (mbgd scaling).
Imports neither Optuna nor MLflow.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch

from mbgd.core import theory
from mbgd.core.data import RegressionData
from mbgd.core.train import History

# Where a trial lands when training diverged: worse than any finite run can score. auc is a mean of log10
# losses, and float32's largest finite value is about 10^38.5.
WORST_VALUE = {"auc": 40.0, "final": 1e40}
FLOOR_TOLERANCE = 0.05  # "reached the noise floor" = within 5% of the least-squares loss


def worst_value(objective: str, epochs: int, updates_per_epoch: int = 1) -> float:
    if objective == "updates_to":
        return float(epochs * updates_per_epoch + 1)  # one update more than the training has
    return float(epochs + 1) if objective == "epochs_to" else WORST_VALUE[objective]


def noise_floor(data: RegressionData) -> float:
    """The loss the noise alone leaves: the generating line's MSE on the recorded targets (about 0.155 in the
    tutorial), or for a CSV, which has no known line, the least-squares fit's MSE.

    The generating line, not the least-squares one, because the tutorial trains on the noise-free targets and
    so converges to the generating line, whose loss can sit more than 5% above the least-squares minimum.
    """
    if data.y_line is not None:
        return float(((data.y_eval.double() - data.y_line.double()) ** 2).mean())
    x = torch.cat([data.x.double(), torch.ones(data.n, 1, dtype=torch.float64)], dim=1)
    y = data.y_eval.double()
    solution = torch.linalg.lstsq(x, y.unsqueeze(1)).solution.squeeze(1)
    return float(((x @ solution - y) ** 2).mean())


def epochs_to_floor(losses: Sequence[float], floor: float, epochs: int) -> int:
    """The first epoch whose full-dataset loss is within 5% of the floor; epochs + 1 if none is."""
    for epoch, loss in enumerate(losses):
        if loss <= floor * (1 + FLOOR_TOLERANCE):
            return epoch
    return epochs + 1


def updates_target(initial_loss: float, optimum: float, ratio: float) -> float:
    """The training loss updates_to counts updates to: ratio x the initial loss, or within 5% of the
    least-squares optimum's loss when that is higher (noisy targets: no model gets below the optimum)."""
    return max(ratio * initial_loss, (1 + FLOOR_TOLERANCE) * optimum)


def training_loss_path(history: History) -> list[float]:
    """The full-dataset training loss at the start and after every update (record_updates=True)."""
    return [history.train_losses[0], *history.update_losses] if history.train_losses else []


def ended_diverged(history: History) -> bool:
    """Diverged: the loss became non-finite, or the run ended above the training loss it started from (a
    float32 loss that climbs to 1e33 is still finite, and is no less a failure)."""
    if history.diverged or not history.train_losses:
        return True
    path = training_loss_path(history) if history.update_losses else history.train_losses
    return not math.isfinite(path[-1]) or path[-1] > path[0]


def updates_to_target(history: History, target: float) -> int | None:
    """Updates from which the training loss stays at or below the target until the end of the budget: 0 if it
    never leaves it, None if the run ends above it or diverged (ended_diverged).

    Counted on the full-dataset training loss after every update (fit_population(record_updates=True)), the
    last, partial batch of an epoch included as the update it is. A run that touches the target and climbs
    away again has not reached it: first_touch_updates counts that touch.
    """
    path = training_loss_path(history)
    if ended_diverged(history) or not path or path[-1] > target:
        return None
    above = [index for index, loss in enumerate(path) if loss > target]
    return above[-1] + 1 if above else 0


def first_touch_updates(history: History, target: float) -> int | None:
    """Updates until the training loss first falls to the target, whatever it does afterwards: 0 if it starts
    there, None if never (diverged runs count up to their last finite loss)."""
    for update, loss in enumerate(training_loss_path(history)):
        if loss <= target:
            return update
    return None


def samples_seen(history: History, updates: int) -> int:
    """Samples the first `updates` updates used: whole epochs, then full batches (the partial one ends an
    epoch)."""
    epochs, rest = divmod(updates, history.updates_per_epoch)
    return epochs * history.samples_per_epoch + rest * history.batch_size


def objective_floor(objective: str, data: RegressionData) -> float:
    """The floor an objective is measured against: for updates_to the least-squares loss on the training
    targets; for the others the noise floor of the recorded loss."""
    if objective == "updates_to":
        return theory.least_squares_loss(data.x, data.y_train)
    return noise_floor(data)


def objective_value(
    objective: str, history: History, *, epochs: int, floor: float, target_ratio: float = 1e-4
) -> float:
    """auc: mean log10 full-dataset loss over the epochs; final: the last loss; epochs_to: epochs to the
    floor; updates_to: updates until the training loss reaches updates_target (the worst value if never)."""
    worst = worst_value(objective, epochs, history.updates_per_epoch)
    if history.diverged:
        return worst
    if objective == "updates_to":
        updates = updates_to_target(history, updates_target(history.train_losses[0], floor, target_ratio))
        return worst if updates is None else float(updates)
    if objective == "auc":
        return min(statistics.fmean(math.log10(max(loss, 1e-300)) for loss in history.epoch_losses), worst)
    if objective == "final":
        return min(history.epoch_losses[-1], worst)
    return float(epochs_to_floor(history.epoch_losses, floor, epochs))


def intermediate_value(objective: str, losses: Sequence[float]) -> float:
    """The objective so far, from the full-dataset losses up to this epoch: auc's running mean of log10
    losses; for final and epochs_to, the current loss (lower is closer to the floor)."""
    if objective == "auc":
        return statistics.fmean(math.log10(max(loss, 1e-300)) for loss in losses)
    return losses[-1]
