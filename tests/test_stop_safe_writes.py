"""A stop signal that arrives while mbgd writes a trial's run is handled once the run is written whole: no
half-written run, and no KILLED mark waiting on a transaction the stop left open."""

import os
import signal

import pytest
from mlflow.entities import Metric, RunStatus

from mbgd.tracking import runs as tracking


def stop_inside(store, method: str, signum: int) -> None:
    """The store's `method` receives `signum` the moment it is called, before it writes."""
    write = getattr(store, method)

    def interrupted_write(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return write(*args, **kwargs)

    setattr(store, method, interrupted_write)


def test_a_stop_inside_a_trials_run_lands_once_the_run_is_whole_and_finished(tracking_store: str) -> None:
    client = tracking.client()
    stop_inside(client._tracking_client.store, "log_batch", signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        tracking.log_finished_run(
            client,
            tracking.DEFAULT_EXPERIMENT_ID,
            "trial-7",
            tags={},
            params={"lr": "0.1"},
            metrics=[Metric("loss", 0.5, 0, 1)],
            status=RunStatus.to_string(RunStatus.FINISHED),
        )

    (run,) = client.search_runs([tracking.DEFAULT_EXPERIMENT_ID])
    assert run.data.params == {"lr": "0.1"}
    assert run.data.metrics == {"loss": 0.5}
    assert run.info.status == "FINISHED"  # the stop lands once the run is whole
