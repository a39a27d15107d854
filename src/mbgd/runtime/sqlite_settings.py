"""The sqlite settings both stores share (Optuna's storage and MLflow's tracking store) when their URL is a
file.

A write-ahead log (a setting kept in the file) means one disk sync per commit instead of several, and readers
such as `mbgd ui` no longer block the writers; synchronous=NORMAL saves one more sync per commit.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> str | None:
    """The file of a sqlite URL, or None for any other URL."""
    return url[len(SQLITE_PREFIX) :] if url.startswith(SQLITE_PREFIX) else None


def use_write_ahead_log(path: str, *, timeout_s: float) -> None:
    """Switch the sqlite file to a write-ahead log; nothing for an in-memory database or a missing folder (the
    store's own error then names the path)."""
    if not path or path == ":memory:" or not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        return
    with suppress(sqlite3.Error), closing(sqlite3.connect(path, timeout=timeout_s)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def sync_at_checkpoints(engine) -> None:
    """synchronous=NORMAL on every connection of this SQLAlchemy engine: with a write-ahead log, commits
    survive a killed process and only a power cut can lose the last ones; it saves a disk sync per commit, and
    a sweep commits thousands of times (ask, suggest, tell, attributes)."""
    import sqlalchemy

    def on_connect(connection, record) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections made before the listener existed


_SYNCED_FILES: set[str] = set()


def sync_file_at_checkpoints(path: str) -> None:
    """synchronous=NORMAL (as sync_at_checkpoints) on every SQLAlchemy connection this process opens from now
    on to the sqlite file `path`, whoever makes the engine: MLflow's tracking store, which writes three times
    per trial run."""
    import sqlalchemy

    target = os.path.realpath(path)
    if target in _SYNCED_FILES:
        return
    _SYNCED_FILES.add(target)

    def on_connect(connection, record) -> None:
        if not isinstance(connection, sqlite3.Connection):
            return
        files = [row[2] for row in connection.execute("PRAGMA database_list")]
        if any(file and os.path.realpath(file) == target for file in files):
            connection.execute("PRAGMA synchronous=NORMAL")

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", on_connect)
