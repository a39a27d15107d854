"""Metrics made from results: a series per step, scalars, a training's history; MLflow Metric objects,
nothing logged here."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mlflow.entities import Metric

if TYPE_CHECKING:
    from mbgd.core.train import History


def series(
    key: str, values: Sequence[float], *, first_step: int = 0, timestamp: int | None = None
) -> list[Metric]:
    """A metric history: values at steps first_step, first_step + 1, ..."""
    timestamp = timestamp if timestamp is not None else int(time.time() * 1000)
    return [Metric(key, float(v), timestamp, first_step + i) for i, v in enumerate(values)]


def scalars(values: Mapping[str, float], *, step: int = 0) -> list[Metric]:
    timestamp = int(time.time() * 1000)
    return [Metric(key, float(value), timestamp, step) for key, value in values.items()]


def epoch_timestamps(history: History) -> list[int] | None:
    """When each `loss` point was recorded (ms since the Unix epoch): training's start plus its epoch_seconds;
    None for a history that does not know when it started."""
    if math.isnan(history.started_at) or len(history.epoch_seconds) != len(history.epoch_losses):
        return None
    return [int((history.started_at + seconds) * 1000) for seconds in history.epoch_seconds]


def history_metrics(history: History, *, weight_names: Sequence[str]) -> list[Metric]:
    """`batch_loss` per update, `loss` per epoch and the run's scalar results. Each loss is stamped with when
    its epoch ended (an update's with its epoch's end), so that MLflow's time axes show the training; the
    scalars with when they are logged."""
    results = {
        "final_loss": history.final_loss,
        "train_seconds": history.train_seconds,
        "diverged": float(history.diverged),
    }
    if not history.diverged:
        if len(history.w) == 1:
            results["w"] = history.w[0]
        else:
            results.update({f"w_{name}": value for name, value in zip(weight_names, history.w, strict=True)})
        results["b"] = history.b
    ends = epoch_timestamps(history)
    if ends is None:
        losses = [*series("batch_loss", history.batch_losses), *series("loss", history.epoch_losses)]
    else:
        per_epoch = max(history.updates_per_epoch, 1)
        last = len(ends) - 1
        losses = [
            *(
                Metric("batch_loss", float(v), ends[min(i // per_epoch + 1, last)], i)
                for i, v in enumerate(history.batch_losses)
            ),
            *(
                Metric("loss", float(v), end, i)
                for i, (v, end) in enumerate(zip(history.epoch_losses, ends, strict=True))
            ),
        ]
    return [*losses, *scalars(results)]


def model_metrics(metrics: Sequence[Metric]) -> list[Metric]:
    """The points of a run's metrics that describe its model: its scalar results, not the loss curves."""
    return [m for m in metrics if m.key not in ("batch_loss", "loss")]
