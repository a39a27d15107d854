"""The one module that talks to MLflow: runs and their lifecycle, params, batched metrics, figures, inputs.

Everything goes through an explicit `MlflowClient` and run ids (never the fluent API's active run), so it
works the same under `mlflow run` (which hands us its run in MLFLOW_RUN_ID) and from worker threads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_RUN_NOTE

from mbgd import liveness
from mbgd.liveness import HOST, process_alive

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mbgd.data import RegressionData
    from mbgd.train import History

# MLflow's limits for one log_batch call.
MAX_METRICS_PER_CALL = 1000
MAX_PARAMS_PER_CALL = 100
MAX_ITEMS_PER_CALL = 1000
DEFAULT_EXPERIMENT_ID = "0"
HOST_TAG, PID_TAG, HEARTBEAT_TAG = "mbgd.host", "mbgd.pid", "mbgd.heartbeat"
RUN_HEARTBEAT_S = 30
ORPHAN_AFTER_S = 120  # a run of another host with no heartbeat for this long is taken for dead  # MLflow's "Default" experiment, where `mlflow run .` puts runs too


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that runs end KILLED on the way out."""


@dataclass(frozen=True)
class RunRef:
    run_id: str
    experiment_id: str


def client() -> MlflowClient:
    """A client on MLFLOW_TRACKING_URI when set, else MLflow's default store (./mlflow.db, ./mlruns).

    A sqlite store is switched to a write-ahead log (a setting kept in the file): one disk sync per commit
    instead of several, and readers such as `mbgd ui` no longer block the writers.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    if uri.startswith("sqlite:///"):
        _use_write_ahead_log(uri[len("sqlite:///") :])
    return MlflowClient()


def _use_write_ahead_log(path: str) -> None:
    import sqlite3
    from contextlib import closing

    if not path or path == ":memory:" or not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        return
    with suppress(sqlite3.Error), closing(sqlite3.connect(path, timeout=60)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def experiment_id_for(mlflow_client: MlflowClient, name: str = "") -> str:
    """The id of the experiment named `name`, else MLFLOW_EXPERIMENT_NAME, else Default; created if missing."""
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME", "")
    if not name:
        return os.environ.get("MLFLOW_EXPERIMENT_ID", DEFAULT_EXPERIMENT_ID)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(name)


def run_id_from_mlflow_run() -> str:
    """The run `mlflow run` created for this process, or ''."""
    return os.environ.get("MLFLOW_RUN_ID", "")


@contextmanager
def run_scope(
    mlflow_client: MlflowClient,
    *,
    experiment_name: str = "",
    run_name: str,
    parent: RunRef | None = None,
    tags: Mapping[str, str] | None = None,
    adopt_run_id: str = "",
) -> Iterator[RunRef]:
    """Create a run (or adopt the one `mlflow run` made) and end it FINISHED, FAILED or KILLED.

    An adopted run is renamed and tagged but left for `mlflow run` to finish, as it expects to.
    """
    all_tags = {MLFLOW_RUN_NAME: run_name, **liveness_tags(), **(tags or {})}
    if parent is not None:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent.run_id
    if adopt_run_id:
        run = mlflow_client.get_run(adopt_run_id)
        ref = RunRef(adopt_run_id, run.info.experiment_id)
        mlflow_client.log_batch(adopt_run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
    else:
        experiment_id = parent.experiment_id if parent else experiment_id_for(mlflow_client, experiment_name)
        run = mlflow_client.create_run(experiment_id, tags=all_tags, run_name=run_name)
        ref = RunRef(run.info.run_id, experiment_id)
    try:
        with heartbeat(mlflow_client, ref.run_id):
            yield ref
    except (KeyboardInterrupt, Interrupted):
        mlflow_client.set_terminated(ref.run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow_client.set_terminated(ref.run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    if not adopt_run_id:
        mlflow_client.set_terminated(ref.run_id, RunStatus.to_string(RunStatus.FINISHED))


def log_finished_run(
    mlflow_client: MlflowClient,
    experiment_id: str,
    run_name: str,
    *,
    tags: Mapping[str, str],
    params: Mapping[str, object],
    metrics: Sequence[Metric],
    status: str,
) -> str:
    """A run that is complete when made: create it, log everything in one log_batch, end it with `status`;
    returns its id. Three calls, the fewest MLflow allows (a sweep makes one per trial)."""
    run_id = mlflow_client.create_run(experiment_id, tags={**tags, **liveness_tags()}, run_name=run_name).info.run_id
    try:
        log_values(mlflow_client, run_id, params=params, metrics=metrics)
    except BaseException:  # interrupted while logging: the run may lack values, and says so
        mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
        raise
    mlflow_client.set_terminated(run_id, status)
    return run_id


def liveness_tags() -> dict[str, str]:
    """Who runs a run, and when it was last seen alive: how a later command tells an orphan from a live run."""
    return {HOST_TAG: HOST, PID_TAG: str(os.getpid()), HEARTBEAT_TAG: str(int(time.time()))}


@contextmanager
def heartbeat(mlflow_client: MlflowClient, run_id: str) -> Iterator[None]:
    """Refresh the run's heartbeat tag every RUN_HEARTBEAT_S while it is active."""
    with liveness.heartbeat(
        lambda: mlflow_client.set_tag(run_id, HEARTBEAT_TAG, str(int(time.time()))), RUN_HEARTBEAT_S, now=False
    ):
        yield


def end_orphaned_runs(mlflow_client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs whose mbgd process is gone (this host: its process is dead; another host:
    no heartbeat for ORPHAN_AFTER_S), e.g. after a `kill -9`. Runs mbgd did not make are left alone."""
    orphans = []
    now = time.time()
    for run in mlflow_client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if PID_TAG not in tags:
            continue
        if tags.get(HOST_TAG) == HOST:
            gone = not process_alive(int(tags[PID_TAG]))
        else:
            gone = now - float(tags.get(HEARTBEAT_TAG, 0)) > ORPHAN_AFTER_S
        if gone:
            mlflow_client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
            orphans.append(run.info.run_id)
    return orphans


def log_values(
    mlflow_client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, object] | None = None,
    metrics: Iterable[Metric] = (),
    tags: Mapping[str, str] | None = None,
) -> int:
    """Log everything in as few log_batch calls as MLflow's limits allow; returns the number of calls."""
    pending_params = [Param(k, str(v)) for k, v in (params or {}).items()]
    pending_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    pending_metrics = list(metrics)
    calls = 0
    while pending_params or pending_tags or pending_metrics or calls == 0:
        batch_params, pending_params = pending_params[:MAX_PARAMS_PER_CALL], pending_params[MAX_PARAMS_PER_CALL:]
        room = MAX_ITEMS_PER_CALL - len(batch_params)
        batch_tags, pending_tags = pending_tags[:room], pending_tags[room:]
        room = min(MAX_METRICS_PER_CALL, room - len(batch_tags))
        batch_metrics, pending_metrics = pending_metrics[:room], pending_metrics[room:]
        if batch_params or batch_tags or batch_metrics:
            mlflow_client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)
        calls += 1
    return calls


def series(key: str, values: Sequence[float], *, first_step: int = 0, timestamp: int | None = None) -> list[Metric]:
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
    return [*series("batch_loss", history.batch_losses), *series("loss", history.epoch_losses), *scalars(results)]


def log_figure(mlflow_client: MlflowClient, run_id: str, figure: Figure, artifact_file: str) -> None:
    mlflow_client.log_figure(run_id, figure, artifact_file)


def log_dataset(mlflow_client: MlflowClient, run_id: str, data: RegressionData) -> None:
    """Record the training data as the run's input (MLflow's Datasets panel)."""
    import mlflow.data

    features = data.x.numpy()
    targets = data.y_train.numpy()
    if data.source.startswith("synthetic"):
        dataset = mlflow.data.from_numpy(features, targets=targets, name=data.name)
    else:
        dataset = mlflow.data.from_numpy(features, targets=targets, name=data.name, source=data.source)
    entity = dataset._to_mlflow_entity()
    mlflow_client.log_inputs(run_id, [DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])])


def describe(mlflow_client: MlflowClient, run_id: str, markdown: str) -> None:
    """The run's description, shown on its overview page in the MLflow UI."""
    mlflow_client.set_tag(run_id, MLFLOW_RUN_NOTE, markdown)


def ui_base(tracking_uri: str) -> str:
    """The UI's address for a tracking URI, without credentials: a printed link must not hold a password.

    A tracking server is its own UI (user and password dropped, the browser asks for them); any other store is
    served by `mbgd ui` on its default address.
    """
    from urllib.parse import urlsplit, urlunsplit

    if not tracking_uri.startswith(("http://", "https://")):
        return "http://127.0.0.1:5000"
    parts = urlsplit(tracking_uri)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def runs_link(tracking_uri: str, experiment_id: str, run_id: str = "") -> str:
    """A UI link that opens on the runs, or on one run, in the model-training layout.

    Without `workflowType=machine_learning` MLflow 3's UI opens an experiment on its GenAI overview and a run in
    the GenAI layout (unless the browser remembers otherwise).
    """
    runs = f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs"
    return f"{runs}/{run_id}?workflowType=machine_learning" if run_id else f"{runs}?workflowType=machine_learning"


def charts_link(server: str, experiment_id: str, view_key: str = "") -> str:
    """The runs link in the UI's chart view: every run's metrics side by side, or a saved view's charts.

    A saved view cannot carry the chart mode itself; the link does.
    """
    link = f"{runs_link(server, experiment_id)}&compareRunsMode=CHART"
    return f"{link}&viewStateShareKey={view_key}" if view_key else link


def find_trial_run(mlflow_client: MlflowClient, experiment_id: str, study_name: str, trial: int) -> str | None:
    """The child run of a trial logged by an earlier sweep process (found by its params)."""
    runs = mlflow_client.search_runs(
        [experiment_id],
        filter_string=f"params.study_name = '{study_name}' and params.trial = '{trial}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
