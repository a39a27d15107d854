"""The tracking layer's core: runs and their lifecycle, params, batched metrics, figures, artifacts, inputs.

mbgd calls MLflow only through the tracking layer: this module, store.py (which store, and whether it can be
used), mlflow_internals.py (a new sqlite store without MLflow's migrations, many finished runs in one
transaction), models.py (models and the registry), ui_links.py (links into the UI) and ui_views.py (the UI's
saved views). Everything goes through an explicit `MlflowClient` and run ids (never the fluent API's active
run), so it works the same under `mlflow run` (which hands us its run in MLFLOW_RUN_ID) and from worker
threads.
"""

from __future__ import annotations

import functools
import os
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import MappingProxyType

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_BRANCH,
    MLFLOW_GIT_COMMIT,
    MLFLOW_GIT_REPO_URL,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    MLFLOW_RUN_NOTE,
)

from mbgd.runtime import liveness
from mbgd.runtime.errors import Interrupted
from mbgd.runtime.liveness import HOST
from mbgd.runtime.processes import collect_at_exit, dispose_at_exit, signals_deferred
from mbgd.runtime.sqlite_settings import sqlite_path, sync_file_at_checkpoints, use_write_ahead_log
from mbgd.tracking.records import (
    MAX_ITEMS_PER_CALL,
    MAX_METRICS_PER_CALL,
    MAX_PARAMS_PER_CALL,
    FinishedRun,
    RunRef,
)
from mbgd.tracking.store import tracking_uri

DEFAULT_EXPERIMENT_ID = "0"  # MLflow's "Default" experiment, where `mlflow run .` puts runs too
HOST_TAG, PID_TAG, HEARTBEAT_TAG = "mbgd.host", "mbgd.pid", "mbgd.heartbeat"
RUN_HEARTBEAT_S = 30
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # MLflow's SQL store's
ORPHAN_AFTER_S = 120  # a run of another host with no heartbeat for this long is taken for dead


def client() -> MlflowClient:
    """A client on MLFLOW_TRACKING_URI when set, else MLflow's default store (./mlflow.db, ./mlruns).

    A new sqlite store is a copy of MLflow's empty tables (mbgd.tracking.mlflow_internals). A sqlite store is
    switched to a write-ahead log (a setting kept in the file): one disk sync per commit instead of several,
    and readers such as `mbgd ui` no longer block the writers; this process's connections to it sync at
    checkpoints only (mbgd.runtime.sqlite_settings), as the Optuna storage's do.
    """
    uri = tracking_uri()
    path = sqlite_path(uri)
    if path is not None:
        from mbgd.tracking import mlflow_internals

        mlflow_internals.create_from_template(path)  # a new store without MLflow's migrations
        use_write_ahead_log(path, timeout_s=60)
        sync_file_at_checkpoints(path)
    mlflow_client = MlflowClient()
    store = _sql_store(mlflow_client)
    if store is not None:
        for engine in (store.engine, store.read_engine):
            if engine is not None:
                dispose_at_exit(engine)
    elif _on_a_database(mlflow_client):  # the public path names no engine: the interpreter closes them
        collect_at_exit()
    return mlflow_client


def experiment_id_for(mlflow_client: MlflowClient, name: str = "") -> str:
    """The id of the experiment named `name`, else MLFLOW_EXPERIMENT_NAME, else Default; created if
    missing."""
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME", "")
    if not name:
        return os.environ.get("MLFLOW_EXPERIMENT_ID", DEFAULT_EXPERIMENT_ID)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name)
    except MlflowException as error:
        # Another worker created it between our look-up and create: use theirs.
        experiment = (
            mlflow_client.get_experiment_by_name(name)
            if error.error_code == "RESOURCE_ALREADY_EXISTS"
            else None
        )
        if experiment is None:
            raise
        return experiment.experiment_id


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

    An adopted run is renamed and tagged but left for `mlflow run` to finish, as it expects to; the source,
    user and git tags `mlflow run` gave it are kept. A run ended KILLED is listed in the interruption's
    `killed_run_ids`, so that the command can say whether it left any.
    """
    all_tags = {MLFLOW_RUN_NAME: run_name, **liveness_tags(), **(tags or {})}
    if parent is not None:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent.run_id
    if adopt_run_id:
        run = mlflow_client.get_run(adopt_run_id)
        ref = RunRef(adopt_run_id, run.info.experiment_id)
        provenance = {k: v for k, v in provenance_tags().items() if k not in run.data.tags}
        all_tags = {**provenance, **all_tags}
        mlflow_client.log_batch(adopt_run_id, tags=[RunTag(k, str(v)) for k, v in all_tags.items()])
    else:
        experiment_id = parent.experiment_id if parent else experiment_id_for(mlflow_client, experiment_name)
        run = mlflow_client.create_run(
            experiment_id, tags={**provenance_tags(), **all_tags}, run_name=run_name
        )
        ref = RunRef(run.info.run_id, experiment_id)
    try:
        with heartbeat(mlflow_client, ref.run_id):
            yield ref
    except (KeyboardInterrupt, Interrupted) as error:
        mlflow_client.set_terminated(ref.run_id, RunStatus.to_string(RunStatus.KILLED))
        _note_killed(error, ref.run_id)
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
    returns its id. Three calls, the fewest MLflow allows (a sweep makes one per trial); a stop signal is
    handled after the third, so the run is whole."""
    all_tags = {**provenance_tags(), **tags, **liveness_tags()}
    with signals_deferred():
        run_id = mlflow_client.create_run(experiment_id, tags=all_tags, run_name=run_name).info.run_id
        try:
            log_values(mlflow_client, run_id, params=params, metrics=metrics)
        except BaseException as error:  # a write failed: the run may lack values, and says so
            mlflow_client.set_terminated(run_id, RunStatus.to_string(RunStatus.KILLED))
            _note_killed(error, run_id)
            raise
        mlflow_client.set_terminated(run_id, status)
    return run_id


def log_finished_runs(mlflow_client: MlflowClient, runs: Sequence[FinishedRun]) -> list[str]:
    """Several runs complete when made, as log_finished_run makes each; returns their ids, in order. On
    MLflow's SQL store, all of them in one transaction (mbgd.tracking.mlflow_internals: about a fifteenth of
    the CPU of three client calls per run), written whole or not at all, each with its `run_id` if it has one
    (new_run_ids); on any other store, one after another, with the ids MLflow gives them."""
    store = _sql_store(mlflow_client)
    if store is not None:
        from mbgd.tracking import mlflow_internals

        made_by, alive = provenance_tags(), liveness_tags()
        return mlflow_internals.insert_finished_runs(
            store, [replace(run, tags={**made_by, **run.tags, **alive}) for run in runs]
        )
    return [
        log_finished_run(
            mlflow_client,
            run.experiment_id,
            run.name,
            tags=run.tags,
            params=run.params,
            metrics=run.metrics,
            status=run.status,
        )
        for run in runs
    ]


def new_run_ids(mlflow_client: MlflowClient, count: int) -> list[str] | None:
    """Ids (uuid4 hex, as MLflow's) chosen now for `count` runs log_finished_runs writes later; None where
    MLflow chooses a run's id (a tracking server, or the public API: mbgd.tracking.mlflow_internals)."""
    chosen = _sql_store(mlflow_client) is not None
    return [uuid.uuid4().hex for _ in range(count)] if chosen else None


def _on_a_database(mlflow_client: MlflowClient) -> bool:
    return urllib.parse.urlparse(mlflow_client.tracking_uri).scheme.split("+")[0] in DATABASE_SCHEMES


def _sql_store(mlflow_client: MlflowClient):
    """The client's store when it is MLflow's plain SQL store and mbgd.tracking.mlflow_internals may write to
    it (imported only then: a tracking server's users do not import it), else None."""
    if not _on_a_database(mlflow_client):
        return None
    from mbgd.tracking import mlflow_internals

    return mlflow_internals.sql_store(mlflow_client)


def _note_killed(error: BaseException, run_id: str) -> None:
    error.killed_run_ids = [*getattr(error, "killed_run_ids", []), run_id]


@functools.cache
def provenance_tags() -> Mapping[str, str]:
    """What made a run: the source, user and git tags `mlflow.start_run` would set (MLflow's context
    registry), and the versions of mbgd, torch, MLflow and Optuna (`mbgd.version`, `mbgd.torch_version`, ...).

    Resolved once per process: git is not free. MLflow looks for git beside the command's main file; a console
    script in an ignored .venv has none, so the commit is then the one mbgd's own source is checked out at.
    """
    from importlib.metadata import PackageNotFoundError, version

    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url

    import mbgd

    tags = dict(resolve_tags())
    if MLFLOW_GIT_COMMIT not in tags:
        source = os.path.dirname(os.path.abspath(mbgd.__file__))
        found = {
            MLFLOW_GIT_COMMIT: get_git_commit(source),
            MLFLOW_GIT_BRANCH: get_git_branch(source),
            MLFLOW_GIT_REPO_URL: get_git_repo_url(source),
        }
        if found[MLFLOW_GIT_COMMIT]:
            tags.update({key: value for key, value in found.items() if value})
    try:
        tags["mbgd.version"] = version("mbgd")
    except PackageNotFoundError:  # run from the source tree (`mlflow run` with a conda or virtualenv env)
        tags["mbgd.version"] = mbgd.__version__
    for package in ("torch", "mlflow", "optuna"):
        tags[f"mbgd.{package}_version"] = version(package)
    return MappingProxyType(tags)


def liveness_tags() -> dict[str, str]:
    """Who runs a run, and when it was last seen alive: how a later command tells an orphan from a live
    run."""
    return {HOST_TAG: HOST, PID_TAG: str(os.getpid()), HEARTBEAT_TAG: str(int(time.time()))}


@contextmanager
def heartbeat(mlflow_client: MlflowClient, run_id: str) -> Iterator[None]:
    """Refresh the run's heartbeat tag every RUN_HEARTBEAT_S while it is active."""
    with liveness.heartbeat(
        lambda: mlflow_client.set_tag(run_id, HEARTBEAT_TAG, str(int(time.time()))),
        RUN_HEARTBEAT_S,
        now=False,
    ):
        yield


def end_orphaned_runs(mlflow_client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs whose mbgd process is gone (this host: its process is dead; another host:
    no heartbeat for ORPHAN_AFTER_S), e.g. after a `kill -9`. Runs mbgd did not make are left alone."""
    orphans = []
    now = time.time()
    for run in mlflow_client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        if PID_TAG not in tags:
            continue
        if liveness.owner_gone(
            tags.get(HOST_TAG),
            tags[PID_TAG],
            heartbeat_stale=lambda tags=tags: now - float(tags.get(HEARTBEAT_TAG, 0)) > ORPHAN_AFTER_S,
        ):
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
    """Log everything in as few log_batch calls as MLflow's limits allow; returns the number of calls. On
    MLflow's SQL store the metrics are one transaction whatever their number (mbgd.tracking.mlflow_internals;
    a best-lr run's per-update losses are thousands), unless the run already has one of them.

    On the run `mlflow run` made, the params it logged already keep its values (see
    params_not_logged_by_mlflow_run).
    """
    if params and run_id == run_id_from_mlflow_run():
        params = params_not_logged_by_mlflow_run(mlflow_client, run_id, params)
    pending_params = [Param(k, str(v)) for k, v in (params or {}).items()]
    pending_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    pending_metrics = list(metrics)
    in_rows = []
    if pending_metrics and _sql_store(mlflow_client) is not None:
        in_rows, pending_metrics = pending_metrics, []
    calls = _log_batches(mlflow_client, run_id, pending_params, pending_tags, pending_metrics)
    if in_rows:
        from sqlalchemy.exc import IntegrityError

        from mbgd.tracking import mlflow_internals

        try:
            mlflow_internals.insert_metrics(_sql_store(mlflow_client), run_id, in_rows)
            calls += 1
        except MlflowException as error:
            if not isinstance(error.__cause__, IntegrityError):
                raise
            calls += _log_batches(mlflow_client, run_id, [], [], in_rows)  # MLflow's store skips what it has
    return calls


def _log_batches(
    mlflow_client: MlflowClient, run_id: str, params: list[Param], tags: list[RunTag], metrics: list[Metric]
) -> int:
    """log_batch calls within MLflow's limits; returns their number (one when there is nothing to log)."""
    calls = 0
    while params or tags or metrics or calls == 0:
        batch_params, params = params[:MAX_PARAMS_PER_CALL], params[MAX_PARAMS_PER_CALL:]
        room = MAX_ITEMS_PER_CALL - len(batch_params)
        batch_tags, tags = tags[:room], tags[room:]
        room = min(MAX_METRICS_PER_CALL, room - len(batch_tags))
        batch_metrics, metrics = metrics[:room], metrics[room:]
        if batch_params or batch_tags or batch_metrics:
            mlflow_client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)
        calls += 1
    return calls


def params_not_logged_by_mlflow_run(
    mlflow_client: MlflowClient, run_id: str, params: Mapping[str, object]
) -> dict[str, object]:
    """The params the run lacks. `mlflow run` logs each entry point parameter on the run it makes as typed
    (`-P lr=1e-3` gives "1e-3", `-P compare_with=""` gives "''"), and MLflow refuses a second value for a key:
    mbgd's own spelling of the same value ("0.001", "") is not logged."""
    logged = mlflow_client.get_run(run_id).data.params
    return {key: value for key, value in params.items() if key not in logged}


def search_runs(mlflow_client: MlflowClient, experiment_id: str, filter_string: str, **page) -> list[Run]:
    """One page of the experiment's runs matching `filter_string` (`page`: max_results, page_token, ...)."""
    return mlflow_client.search_runs([experiment_id], filter_string=filter_string, **page)


def all_runs(mlflow_client: MlflowClient, experiment_id: str, filter_string: str) -> Iterator[Run]:
    """Every run of the experiment that matches `filter_string`, page after page."""
    page_token = None
    while True:
        page = search_runs(
            mlflow_client, experiment_id, filter_string, max_results=1000, page_token=page_token
        )
        yield from page
        page_token = page.token
        if not page_token:
            return


def delete_run(mlflow_client: MlflowClient, run: Run, *, end_running: bool = False) -> None:
    """Delete the run; with `end_running`, one still RUNNING (its process was killed) is ended KILLED
    first."""
    if end_running and run.info.status == "RUNNING":
        mlflow_client.set_terminated(run.info.run_id, "KILLED")
    mlflow_client.delete_run(run.info.run_id)


def describe(mlflow_client: MlflowClient, run_id: str, markdown: str) -> None:
    """The run's description, shown on its overview page in the MLflow UI."""
    mlflow_client.set_tag(run_id, MLFLOW_RUN_NOTE, markdown)
