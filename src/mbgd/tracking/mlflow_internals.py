"""Finished runs written many in one transaction, as the rows MLflow's own SQL store writes: the tracking
layer's one module on MLflow's store internals.

MLflow's client writes a finished run in three calls (create, log_batch, end), and its SQL store makes each
of them several sessions and commits: about 12 ms of CPU per run on sqlite, more than a population member
costs to train, and the bulk of what a sweep's or a scaling's trial runs cost. Here a batch of runs is one
transaction of plain inserts into the same tables (runs, tags, params, metrics, latest_metrics), with the
values MLflow's store would write: the same run name tag, artifact location, user, sanitized NaN and
infinite metrics and latest metric per key (tests/test_tracking_rows.py compares every field with runs
written through the client). A batch is written whole or not at all, and never seen RUNNING.

Only MLflow's own SqlAlchemyStore (sqlite, PostgreSQL, MySQL, ...) is written to this way; any other store (a
tracking server, a workspace-aware subclass) gets the client's three calls per run, as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

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


def sql_store(store) -> SqlAlchemyStore | None:
    """`store` (a client's) when it is MLflow's plain SQL store, else None."""
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
        run_id = uuid.uuid4().hex
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
