"""A stop signal that arrives while mbgd writes to MLflow is handled once the write has ended: the write is
whole, and the run's KILLED mark that follows does not wait on a transaction the stop left open."""

import os
import signal

import pytest
from mlflow.entities import Metric, RunStatus

from mbgd import tracking


def stop_inside(store, method: str, signum: int) -> None:
    """The store's `method` receives `signum` the moment it is called, before it writes."""
    write = getattr(store, method)

    def interrupted_write(*args, **kwargs):
        os.kill(os.getpid(), signum)
        return write(*args, **kwargs)

    setattr(store, method, interrupted_write)


def test_ctrl_c_inside_log_batch_lands_after_the_values_are_written(tracking_store: str) -> None:
    client = tracking.client()
    run_id = client.create_run(tracking.DEFAULT_EXPERIMENT_ID).info.run_id
    stop_inside(client._tracking_client.store, "log_batch", signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        client.log_batch(run_id, metrics=[Metric("loss", 0.25, 0, 3)])

    assert client.get_run(run_id).data.metrics == {"loss": 0.25}


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
