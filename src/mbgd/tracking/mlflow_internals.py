"""MLflow's private names, all in this one module: its SQL store's tables, written many runs in one
transaction, and a new sqlite store copied from MLflow's own empty one instead of its migrations.

Both are used only on the MLflow versions the tests verify them on (VERIFIED_VERSIONS:
tests/test_tracking_rows.py compares these rows field for field with runs the client writes, on sqlite and
PostgreSQL; tests/test_store_template.py the copied store with MLflow's own). On any other version, or with
MBGD_PUBLIC_API=1 in the environment, `fast_paths()` is False: runs and metrics go through MlflowClient's
calls and MLflow makes a new store with its migrations, with the same results (tests/test_unchanged_results.py
runs both paths).

Runs written together. MLflow's client writes a finished run in three calls (create, log_batch, end), and its
SQL store makes each of them several sessions and commits: about 12 ms of CPU per run on sqlite, more than a
population member costs to train, and the bulk of what a sweep's or a scaling's trial runs cost. Here a batch
of runs is one transaction of plain inserts into the same tables (runs, tags, params, metrics,
latest_metrics), with the values MLflow's store would write: the same run name tag, artifact location, user,
sanitized NaN and infinite metrics and latest metric per key. A batch is written whole or not at all, and
never seen RUNNING. Only MLflow's own SqlAlchemyStore (sqlite, PostgreSQL, MySQL, ...) is written to this way;
any other store (a tracking server, a workspace-aware subclass) gets the client's calls.

A new store. MLflow makes a new sqlite store by running its whole migration history (about a hundred alembic
scripts): over a second each time a folder gets its first store, which is what a new user's first `mbgd train`
waits for. The copy is MLflow's own work: once per MLflow version, MLflow makes a store in a temporary folder,
whose Default experiment is then removed, and the file is kept in the user's cache folder. Opening a copy,
MLflow finds its tables at the current revision and adds the Default experiment as it does to a new store
(with the copy's own artifact location and time), so the store is the one MLflow would have made. Anything
unusual (an unwritable cache, a file system without hard links, a store that already exists, even empty)
leaves the store to MLflow.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import mlflow
from mlflow.entities import LifecycleStage, Metric, Param, SourceType
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
from mlflow.utils.time import get_current_time_millis
from mlflow.utils.uri import append_to_uri_path
from mlflow.utils.validation import _validate_batch_log_data
from sqlalchemy import insert

from mbgd.runtime.processes import signals_deferred
from mbgd.tracking.records import FinishedRun

VERIFIED_VERSIONS = ("3.17.2", "3.18.0")
PUBLIC_API_ENV = "MBGD_PUBLIC_API"  # "1": the public path whatever the version (make bench measures both)


def fast_paths() -> bool:
    """Whether this MLflow is one the private paths below were verified on, and they are not turned off."""
    return os.environ.get(PUBLIC_API_ENV, "") != "1" and mlflow.__version__ in VERIFIED_VERSIONS


def registry_engines(mlflow_client) -> list | None:
    """The SQLAlchemy engines of the client's model registry store, to dispose at exit ([] for a registry
    without any); None where the fast paths are off (MLflow's public API does not show them)."""
    if not fast_paths():
        return None
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistrySqlStore

    store = mlflow_client._get_registry_client().store
    return [store.engine] if isinstance(store, RegistrySqlStore) else []


def sql_store(mlflow_client) -> SqlAlchemyStore | None:
    """The client's store when it is MLflow's plain SQL store and the fast paths are on, else None."""
    store = mlflow_client._tracking_client.store if fast_paths() else None
    return store if type(store) is SqlAlchemyStore else None


def insert_finished_runs(store: SqlAlchemyStore, runs: Sequence[FinishedRun]) -> list[str]:
    """Write `runs` in one transaction; returns their ids, in order. Raises MLflow's own error for a value
    its log_batch refuses, or for an experiment that is not active, before anything is written."""
    experiments = {}
    for experiment_id in {run.experiment_id for run in runs}:
        experiment = store.get_experiment(experiment_id)
        store._check_experiment_is_active(experiment)
        experiments[experiment_id] = experiment
    # A run made finished ends when made; each starts a millisecond after the one before it, so that the UI,
    # which sorts by start time, lists them in order (through the client they are about 12 ms apart).
    now = get_current_time_millis()
    rows: dict[type, list[dict]] = {
        table: [] for table in (SqlRun, SqlTag, SqlParam, SqlMetric, SqlLatestMetric)
    }
    run_ids = []
    for i, run in enumerate(runs):
        run_id = run.run_id or uuid.uuid4().hex
        run_ids.append(run_id)
        tags = {**run.tags, MLFLOW_RUN_NAME: run.name}
        metrics, params, _ = _validate_batch_log_data(  # as log_batch validates (create_run does not)
            [Metric(m.key, float(m.value), m.timestamp, m.step) for m in run.metrics],
            [Param(key, str(value)) for key, value in run.params.items()],
            [],
        )
        rows[SqlRun].append(
            {
                "run_uuid": run_id,
                "name": run.name,
                "artifact_uri": append_to_uri_path(
                    experiments[run.experiment_id].artifact_location,
                    run_id,
                    SqlAlchemyStore.ARTIFACTS_FOLDER_NAME,
                ),
                "experiment_id": int(run.experiment_id),
                "source_type": SourceType.to_string(SourceType.UNKNOWN),
                "source_name": "",
                "entry_point_name": "",
                "user_id": tags.get(MLFLOW_USER, "unknown"),
                "status": run.status,
                "start_time": now - (len(runs) - 1 - i),
                "end_time": now,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": LifecycleStage.ACTIVE,
            }
        )
        rows[SqlTag] += [{"run_uuid": run_id, "key": key, "value": str(value)} for key, value in tags.items()]
        rows[SqlParam] += [{"run_uuid": run_id, "key": p.key, "value": p.value} for p in params]
        metric_rows, latest = _metric_rows(store, run_id, metrics)
        rows[SqlMetric] += metric_rows
        rows[SqlLatestMetric] += latest.values()
    with signals_deferred(), store.ManagedSessionMaker(read_only=False) as session:
        for table, table_rows in rows.items():
            if table_rows:
                session.execute(insert(table), table_rows)
    return run_ids


def insert_metrics(store: SqlAlchemyStore, run_id: str, metrics: Sequence[Metric]) -> None:
    """Log `metrics` on the active run `run_id` in one transaction, as the store's log_batch logs them (its
    validation, its sanitized values, its latest value per key, against those the run has). A metric the run
    already has with the same values makes the store raise an MlflowException caused by an IntegrityError:
    the caller then logs through the client, whose store skips it."""
    metrics, _, _ = _validate_batch_log_data(
        [Metric(m.key, float(m.value), m.timestamp, m.step) for m in metrics], [], []
    )
    if not metrics:
        return
    metric_rows, latest = _metric_rows(store, run_id, metrics)
    with signals_deferred(), store.ManagedSessionMaker(read_only=False) as session:
        store._check_run_is_active(store._get_run(run_uuid=run_id, session=session))
        session.execute(insert(SqlMetric), metric_rows)
        logged = (
            session.query(SqlLatestMetric)
            .filter(SqlLatestMetric.run_uuid == run_id, SqlLatestMetric.key.in_(sorted(latest)))
            .order_by(SqlLatestMetric.key)
            .with_for_update()
            .all()
        )
        for before in logged:
            row = latest.pop(before.key)
            if _order(row) > (before.step, before.timestamp, before.value):
                before.value, before.step = row["value"], row["step"]
                before.timestamp, before.is_nan = row["timestamp"], row["is_nan"]
        if latest:
            session.execute(insert(SqlLatestMetric), list(latest.values()))


def _metric_rows(store: SqlAlchemyStore, run_id: str, metrics: Sequence[Metric]) -> tuple[list[dict], dict]:
    """The metrics' rows, a metric given twice with the same values once (as MLflow drops it), values
    sanitized as the store sanitizes them (NaN: 0 and is_nan; ±inf: the largest finite float); and each key's
    latest row, MLflow's greatest (step, timestamp, value), compared sanitized."""
    rows, latest = [], {}
    for metric in dict.fromkeys(metrics):
        is_nan, value = store.sanitize_metric_value(metric.value)
        row = {
            "run_uuid": run_id,
            "key": metric.key,
            "value": value,
            "timestamp": metric.timestamp,
            "step": metric.step,
            "is_nan": is_nan,
        }
        rows.append(row)
        if metric.key not in latest or _order(row) > _order(latest[metric.key]):
            latest[metric.key] = row
    return rows, latest


def _order(row: Mapping) -> tuple:
    return row["step"], row["timestamp"], row["value"]


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mbgd"


def template_path() -> Path:
    """Where this MLflow version's empty store is kept (made on first use)."""
    return cache_folder() / f"mlflow-{version('mlflow')}-empty-store.db"


def create_from_template(path: str) -> bool:
    """Create the sqlite store at `path` as a copy of the template, if no file is there; returns whether it
    did. Another process that creates the store meanwhile wins (the copy appears whole, or not at all)."""
    if not fast_paths() or not path or path == ":memory:" or os.path.exists(path):
        return False
    folder = os.path.dirname(os.path.abspath(path))
    try:
        template = template_path()
        if not template.exists():
            make_template(template)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mbgd-store-", delete=False) as partial:
            pass
        try:
            shutil.copyfile(template, partial.name)
            os.chmod(partial.name, 0o666 & ~_umask())  # as a file MLflow creates (a temporary file is 0600)
            os.link(partial.name, path)  # fails if the store exists by now
        finally:
            os.unlink(partial.name)
    except Exception:  # an optimisation only: MLflow makes the store, as it always did
        return False
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_template(template: Path) -> None:
    """MLflow's new store, made in a temporary folder beside `template`, without its Default experiment."""
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent, prefix="making-") as folder:
        database = os.path.join(folder, "mlflow.db")
        store = SqlAlchemyStore(f"sqlite:///{database}", os.path.join(folder, "mlruns"))
        store.engine.dispose()
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("DELETE FROM experiments")
            connection.commit()
        os.replace(database, template)  # whole, or not at all, for another process making it too
