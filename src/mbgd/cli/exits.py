"""How a command ends when something stops it: errors become one-line click errors, signals exit codes.

A store that fails in the middle of a command (MLflow's tracking store, registry or artifact store, Optuna's
storage) ends it with one line that names the store, found from where the error was raised; the runs it had
open were marked FAILED on the way out (mbgd.tracking.runs.run_scope), its asked trials FAIL
(mbgd.studies.sweep), where the store still took the write.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from mbgd.core.config import ConfigError, redact
from mbgd.runtime.errors import Interrupted, WorkerError, sigterm_interrupts
from mbgd.runtime.processes import quiet_database_cleanup_after_a_stop, redeliver_lost_stops
from mbgd.tracking.store import (
    ARTIFACT_STORE,
    MODEL_REGISTRY,
    OPTUNA_STORAGE,
    TRACKING_STORE,
    StoreUnavailable,
    registry_uri,
    tracking_uri,
)


def user_errors(command: Callable) -> Callable:
    """Config errors become one-line usage errors (exit 2), failed workers and stores a one-line error (exit
    1); SIGINT and SIGTERM end the command with exit 130 and 143."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        redeliver_lost_stops()
        quiet_database_cleanup_after_a_stop()
        with sigterm_interrupts():
            try:
                return command(*args, **kwargs)
            except ConfigError as error:
                raise click.UsageError(str(error)) from None
            except StoreUnavailable as error:
                raise click.ClickException(str(error)) from None
            except KeyboardInterrupt as error:
                click.echo(f"mbgd: interrupted; {_killed_runs_note(error)}", err=True)
                sys.exit(130)
            except WorkerError as error:
                raise click.ClickException(str(error)) from None
            except Interrupted as error:
                click.echo(f"mbgd: stopped by {error}; {_killed_runs_note(error)}", err=True)
                sys.exit(143)
            except Exception as error:
                failure = store_failure(error, kwargs.get("storage") or "")
                if failure is None:
                    raise
                raise click.ClickException(failure) from None

    return wrapper


def _killed_runs_note(error: BaseException) -> str:
    """What an interruption did to the MLflow runs: tracking.run_scope lists on the exception those it marked
    KILLED."""
    if getattr(error, "killed_run_ids", None):
        return "the active MLflow runs were marked KILLED"
    return "no MLflow run was in progress"


def store_failure(error: Exception, storage: str) -> str | None:
    """The one line of an error a store raised (`storage`: the command's --storage), or None for any other
    error. The store is the one whose library raised it (_library)."""
    if not isinstance(error, _store_error_types()):
        return None
    modules = []
    frame = error.__traceback__
    while frame is not None:
        modules.append(frame.tb_frame.f_globals.get("__name__", ""))
        frame = frame.tb_next
    if _not_the_store(error, modules):
        return None
    library = _library(modules)
    if library is None:
        return None
    if library == "optuna":
        if not storage:
            from mbgd.studies.storage import default_storage

            storage = default_storage()
        return OPTUNA_STORAGE.failed(storage, _reason(error))
    if any(m.startswith(_REGISTRY_MODULES) for m in modules):
        return MODEL_REGISTRY.failed(registry_uri(), _reason(error))
    if any(m.startswith("mlflow.store.artifact") for m in modules):
        location = getattr(error, "filename", None) or ""
        return ARTIFACT_STORE.failed(os.fsdecode(location), _reason(error))
    return TRACKING_STORE.failed(tracking_uri(), _reason(error))


_OPTUNA = ("optuna.", "mbgd.studies.")
_MLFLOW = ("mlflow.", "mbgd.tracking.")
_NEITHER = "mbgd.runtime.sqlite_settings"  # sets up both stores' connections: whose, the callers say
_REGISTRY_MODULES = ("mlflow.store.model_registry", "mlflow.tracking._model_registry")


def _library(modules: list[str]) -> str | None:
    """'optuna' or 'mlflow': whose code, or mbgd's layer over it, is the innermost of mbgd's and theirs in the
    traceback's `modules`; None when mbgd's other code is (a broken pipe to the compute worker is no store's
    error)."""
    for module in reversed(modules):
        if module.startswith(_OPTUNA):
            return "optuna"
        if module.startswith(_MLFLOW):
            return "mlflow"
        if module.startswith("mbgd.") and module != _NEITHER:
            return None
    return None


# MLflow's answer to a request the caller got wrong (a param logged again with another value): mbgd's bug, not
# the store's failure, so it keeps its traceback
CALLER_ERROR_CODES = {"INVALID_PARAMETER_VALUE"}


def _not_the_store(error: Exception, modules: list[str]) -> bool:
    """A caller's error MLflow refused, or a temporary file of mbgd's or MLflow's (a full /tmp) that no
    artifact store was writing."""
    import tempfile

    if getattr(error, "error_code", None) in CALLER_ERROR_CODES:
        return True
    filename = getattr(error, "filename", None)
    if not isinstance(error, OSError) or not filename:
        return False
    temporary = os.fsdecode(filename).startswith(tempfile.gettempdir() + os.sep)
    return temporary and not any(m.startswith("mlflow.store.artifact") for m in modules)


def _store_error_types() -> tuple[type, ...]:
    """What a store raises when it fails: its library's errors (of the libraries this process imported), the
    database driver's and the file system's."""
    import sqlite3

    types: list[type] = [OSError, sqlite3.Error]
    if "mlflow" in sys.modules:
        from mlflow.exceptions import MlflowException

        types.append(MlflowException)
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import SQLAlchemyError

        types.append(SQLAlchemyError)
    if "optuna" in sys.modules:
        from optuna.exceptions import StorageInternalError

        types.append(StorageInternalError)
    return tuple(types)


def _reason(error: BaseException) -> str:
    """The error's first line, any password in it shown as ***; Optuna's "an exception is raised during the
    commit" gives the database's own error instead."""
    if type(error).__name__ == "StorageInternalError" and error.__cause__ is not None:
        error = error.__cause__
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(error).__name__
    return " ".join(redact(word) for word in text.split(" "))
