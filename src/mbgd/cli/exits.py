"""How a command ends when something stops it: errors become one-line click errors, signals exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from mbgd.core.config import ConfigError
from mbgd.runtime.errors import Interrupted, WorkerError, sigterm_interrupts
from mbgd.runtime.processes import quiet_database_cleanup_after_a_stop, redeliver_lost_stops
from mbgd.tracking.store import StoreUnavailable


def user_errors(command: Callable) -> Callable:
    """Config errors become one-line usage errors (exit 2), failed workers a one-line error (exit 1);
    SIGINT and SIGTERM end the command with exit 130 and 143."""

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

    return wrapper


def _killed_runs_note(error: BaseException) -> str:
    """What an interruption did to the MLflow runs: tracking.run_scope lists on the exception those it marked
    KILLED."""
    if getattr(error, "killed_run_ids", None):
        return "the active MLflow runs were marked KILLED"
    return "no MLflow run was in progress"
