"""Metrics made from results: a series per step, scalars, a training's history; MLflow Metric objects,
nothing logged here."""

from __future__ import annotations

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


def history_metrics(history: History, *, weight_names: Sequence[str]) -> list[Metric]:
    """`batch_loss` per update, `loss` per epoch and the run's scalar results."""
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
    return [
        *series("batch_loss", history.batch_losses),
        *series("loss", history.epoch_losses),
        *scalars(results),
    ]
