"""What one training recorded (History), what the runs record of its data (DataRecord) and what kind of
descent a batch size makes: plain data, without torch, so that the tracking side of a command can hold results
made in another process."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy

    from mbgd.core.data import RegressionData

__all__ = ["DataRecord", "History", "descent_kind"]


@dataclass
class History:
    """What one training recorded."""

    lr: float
    batch_size: int
    updates_per_epoch: int
    samples_per_epoch: int
    # Full-dataset loss on the recorded targets before each epoch's updates, plus one after the last epoch
    # (epochs + 1 values, fewer when training diverged).
    epoch_losses: list[float] = field(default_factory=list)
    # The same on the targets the model trains on (equal to epoch_losses unless they differ, as in the
    # tutorial).
    train_losses: list[float] = field(default_factory=list)
    batch_losses: list[float] = field(default_factory=list)  # one per update
    # Recorded only when asked (record_updates): after every update, the full-dataset loss on the training
    # targets and the parameters (w..., b). What "updates until the loss reaches a target" is counted on.
    update_losses: list[float] = field(default_factory=list)
    update_params: list[list[float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # wall clock at each epoch_losses point
    started_at: float = math.nan  # when training began (time.time()): where epoch_seconds count from
    w: list[float] = field(default_factory=list)
    b: float = math.nan
    diverged: bool = False
    diverged_reason: str = ""
    stopped_epoch: int | None = None  # set when a stop rule (e.g. a pruner) ended training early

    @property
    def final_loss(self) -> float:
        return self.epoch_losses[-1] if self.epoch_losses and not self.diverged else math.inf

    @property
    def updates(self) -> int:
        return (
            len(self.batch_losses)
            if self.batch_losses
            else self.updates_per_epoch * (len(self.epoch_losses) - 1)
        )

    @property
    def train_seconds(self) -> float:
        return self.epoch_seconds[-1] if self.epoch_seconds else 0.0


def descent_kind(batch_size: int, n: int) -> str:
    """sgd (one sample per update), full-batch (all at once) or mini-batch (in between); runs carry it as
    their "regime" tag."""
    if batch_size >= n:
        return "full-batch"
    return "sgd" if batch_size == 1 else "mini-batch"


@dataclass(frozen=True)
class DataRecord:
    """What the runs record of the data, without torch (the attribute names of
    mbgd.core.data.RegressionData)."""

    x: numpy.ndarray  # (n, d), float32
    y_train: numpy.ndarray  # (n,)
    feature_names: tuple[str, ...]
    target_name: str
    name: str
    source: str

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    @classmethod
    def of(cls, data: RegressionData) -> DataRecord:
        return cls(
            x=data.x.numpy(),
            y_train=data.y_train.numpy(),
            feature_names=data.feature_names,
            target_name=data.target_name,
            name=data.name,
            source=data.source,
        )
