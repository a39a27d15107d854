"""Finished runs written many in one transaction (mbgd.tracking.mlflow_internals): the same runs MLflow's
client writes, field for field, on sqlite and PostgreSQL; whole or not at all; through the client on a
tracking server."""

import math
from dataclasses import replace

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mbgd.tracking import mlflow_internals as tracking_rows
from mbgd.tracking import runs as tracking
from mbgd.tracking.records import FinishedRun

HEARTBEAT = tracking.HEARTBEAT_TAG  # seconds since the epoch when written: may differ by one between the two


def finished_runs(experiment_id: str, parent_id: str, *, count: int = 6) -> list[FinishedRun]:
    """Runs like a population's trial runs, with what MLflow's store sanitizes: NaN, ±inf, a metric logged
    twice with the same values, a later step logged before an earlier one."""
    runs = []
    for i in range(count):
        losses = [10.0 / (step + 1) + i for step in range(7)]
        if i == 1:
            losses[-1] = math.inf
        if i == 2:
            losses[3:] = [math.nan] * 4
        if i == 3:
            losses[-1] = -math.inf
        metrics = [Metric("loss", loss, 1_700_000_000_000 + i, step) for step, loss in enumerate(losses)]
        metrics += [Metric("objective", 0.5 * i, 1_700_000_000_000, 0), Metric("trial", float(i), 1, 0)]
        if i == 4:
            metrics += [metrics[0], Metric("late", 2.0, 5, 9), Metric("late", 1.0, 5, 3)]
        runs.append(
            FinishedRun(
                experiment_id=experiment_id,
                name=f"b1-trial{i}-lr{0.01 * i:.3g}",
                tags={
                    "mlflow.parentRunId": parent_id,
                    "optuna.state": "COMPLETE",
                    "diverged": str(i in (1, 3)),
                },
                params={"lr": repr(0.01 * i), "batch_size": 1, "trial": str(i)},
                metrics=metrics,
                status=("FINISHED", "KILLED", "FAILED")[i % 3],
            )
        )
    return runs


def as_written(client: MlflowClient, run_id: str) -> dict:
    """Everything MLflow holds of a run, its own id replaced, with the full history of every metric."""
    run = client.get_run(run_id)
    info = run.info
    return {
        "status": info.status,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "artifact_uri": info.artifact_uri.replace(run_id, "<id>"),
        "times": (info.start_time is not None, info.end_time is not None),
        "tags": {k: v for k, v in run.data.tags.items() if k != HEARTBEAT},
        "params": run.data.params,
        "metrics": {key: repr(value) for key, value in run.data.metrics.items()},  # each key's latest value
        "history": {
            key: sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, key))
            for key in run.data.metrics
        },
        "inputs": run.inputs.dataset_inputs,
    }


def write_both_ways(client: MlflowClient) -> tuple[list[str], list[str], list[FinishedRun]]:
    experiment_id = tracking.experiment_id_for(client, "rows")
    parent = client.create_run(experiment_id).info.run_id
    runs = finished_runs(experiment_id, parent)
    one_by_one = [
        tracking.log_finished_run(
            client, r.experiment_id, r.name, tags=r.tags, params=r.params, metrics=r.metrics, status=r.status
        )
        for r in runs
    ]
    return one_by_one, tracking.log_finished_runs(client, runs), runs


def assert_same_runs(client: MlflowClient, one_by_one: list[str], together: list[str]) -> None:
    assert len(together) == len(one_by_one) == len(set(together))
    for expected, written in zip(one_by_one, together, strict=True):
        assert as_written(client, written) == as_written(client, expected)


def test_runs_written_together_equal_runs_written_by_mlflows_client(tracking_store: str) -> None:
    client = tracking.client()
    assert tracking_rows.sql_store(client) is not None  # else this would compare the client with itself
    one_by_one, together, runs = write_both_ways(client)
    assert_same_runs(client, one_by_one, together)
    written = as_written(client, together[2])
    assert written["history"]["loss"][3][2] == "nan"  # checks that the comparison saw the sanitized values
    assert as_written(client, together[1])["metrics"]["loss"] == repr(
        1.7976931348623157e308
    )  # as MLflow keeps inf
    assert as_written(client, together[4])["metrics"]["late"] == "2.0"  # the latest step, not the last logged
    # started one after another (the UI sorts by start time), ended after they started
    infos = [client.get_run(run_id).info for run_id in together]
    assert [i.start_time for i in infos] == sorted({i.start_time for i in infos})
    assert all(i.start_time <= i.end_time for i in infos)
    # and MLflow finds them as it finds its own
    found = client.search_runs(
        [runs[0].experiment_id], "params.trial = '5' and attributes.status = 'FAILED'", max_results=10
    )
    assert sorted(r.info.run_id for r in found) == sorted([one_by_one[5], together[5]])


def test_a_refused_value_writes_none_of_the_runs(tracking_store: str) -> None:
    client = tracking.client()
    experiment_id = tracking.experiment_id_for(client, "rows")
    runs = finished_runs(experiment_id, "parent", count=4)
    runs[3] = replace(runs[3], metrics=[Metric("../loss", 1.0, 0, 0)])  # a name MLflow refuses
    with pytest.raises(MlflowException, match="loss"):
        tracking.log_finished_runs(client, runs)
    assert client.search_runs([experiment_id]) == []


def test_a_deleted_experiment_is_refused_as_mlflow_refuses_it(tracking_store: str) -> None:
    client = tracking.client()
    experiment_id = tracking.experiment_id_for(client, "rows")
    client.delete_experiment(experiment_id)
    with pytest.raises(MlflowException) as by_client:
        client.create_run(experiment_id)
    with pytest.raises(MlflowException) as together:
        tracking.log_finished_runs(client, finished_runs(experiment_id, "parent", count=2))
    assert str(together.value) == str(by_client.value)


@pytest.mark.slow
def test_runs_written_together_on_postgresql_equal_the_clients(
    fresh_postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_postgres_url)
    client = tracking.client()
    assert tracking_rows.sql_store(client) is not None
    one_by_one, together, _ = write_both_ways(client)
    assert_same_runs(client, one_by_one, together)


@pytest.mark.slow
def test_a_tracking_server_gets_the_clients_calls(
    mlflow_server_uri: str, mlflow_experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server_uri)
    client = tracking.client()
    assert tracking_rows.sql_store(client) is None
    experiment_id = tracking.experiment_id_for(client, mlflow_experiment)
    runs = finished_runs(experiment_id, "parent", count=3)
    written = tracking.log_finished_runs(client, runs)
    assert [client.get_run(run_id).info.status for run_id in written] == ["FINISHED", "KILLED", "FAILED"]
    assert [client.get_run(run_id).data.params["trial"] for run_id in written] == ["0", "1", "2"]


def metrics_logged_later() -> list[Metric]:
    """Metrics for a run that has some already: later and earlier steps of its keys, a new key, NaN."""
    return [
        *(Metric("loss", 5.0 - step, 1_700_000_000_500, step) for step in range(3, 12)),
        Metric("objective", -1.0, 1, 0),  # older than the run's: not its latest
        Metric("late", math.nan, 7, 20),
        Metric("fresh", 3.0, 7, 0),
    ]


def test_metrics_logged_together_on_a_run_equal_the_clients_log_batch(tracking_store: str) -> None:
    client = tracking.client()
    experiment_id = tracking.experiment_id_for(client, "rows")
    first = finished_runs(experiment_id, "parent", count=5)[4].metrics  # with a metric given twice
    run_ids = [client.create_run(experiment_id, run_name="same").info.run_id for _ in range(2)]
    for run_id in run_ids:
        client.log_batch(run_id, metrics=list(first))
    client.log_batch(run_ids[0], metrics=metrics_logged_later())
    assert tracking.log_values(client, run_ids[1], metrics=metrics_logged_later(), params={"p": 1}) == 2
    by_client, together = as_written(client, run_ids[0]), as_written(client, run_ids[1])
    assert together["params"] == {"p": "1"}
    del together["params"]
    del by_client["params"]
    assert together == by_client
    assert together["metrics"]["loss"] == "-6.0"  # step 11, logged later, is the latest
    assert together["metrics"]["objective"] == repr(0.5 * 4)  # the run's first value (finished_runs) stays
    assert together["metrics"]["late"] == "nan"


def test_metrics_a_run_has_already_are_left_to_mlflow(tracking_store: str) -> None:
    client = tracking.client()
    run_id = client.create_run(tracking.experiment_id_for(client, "rows")).info.run_id
    # without the NaN: MLflow 3.17's store recurses without end on a batch with a NaN and a metric it has
    metrics = [m for m in metrics_logged_later() if not math.isnan(m.value)]
    tracking.log_values(client, run_id, metrics=metrics[:3])
    tracking.log_values(client, run_id, metrics=metrics)  # three of them again: MLflow's store skips them
    assert len(client.get_metric_history(run_id, "loss")) == 9


def test_metrics_on_an_ended_run_are_refused_as_mlflow_refuses_them(tracking_store: str) -> None:
    client = tracking.client()
    run_id = client.create_run(tracking.experiment_id_for(client, "rows")).info.run_id
    client.set_terminated(run_id)
    client.delete_run(run_id)
    with pytest.raises(MlflowException) as by_client:
        client.log_batch(run_id, metrics=metrics_logged_later())
    with pytest.raises(MlflowException) as together:
        tracking.log_values(client, run_id, metrics=metrics_logged_later())
    assert str(together.value) == str(by_client.value)


def test_the_public_path_and_an_unverified_mlflow_write_through_the_client(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = tracking.client()
    assert tracking_rows.sql_store(client) is not None
    monkeypatch.setenv("MBGD_PUBLIC_API", "1")
    assert tracking_rows.sql_store(client) is None
    monkeypatch.delenv("MBGD_PUBLIC_API")
    monkeypatch.setattr(tracking_rows.mlflow, "__version__", "3.99.0")
    assert tracking_rows.sql_store(client) is None
