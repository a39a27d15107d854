"""What a run is made of before it is written: plain values the tracking layer and its MLflow adapter
share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow.entities import Metric

if TYPE_CHECKING:
    pass


# MLflow's limits for one log_batch call.
MAX_METRICS_PER_CALL = 1000
MAX_PARAMS_PER_CALL = 100
MAX_ITEMS_PER_CALL = 1000


@dataclass(frozen=True)
class FinishedRun:
    """A run complete when made: what tracking.log_finished_run takes."""

    experiment_id: str
    name: str
    tags: Mapping[str, str]  # the run's own: tracking.log_finished_runs adds provenance and liveness
    params: Mapping[str, object]
    metrics: Sequence[Metric]
    status: str  # FINISHED, KILLED or FAILED
    run_id: str = (
        ""  # the id to write it with (tracking.runs.new_run_id), where the store takes one; "": MLflow's
    )


@dataclass(frozen=True)
class RunRef:
    run_id: str
    experiment_id: str
