"""A study's lock: one process at a time, across machines where the database is shared, released when the
block ends or the process dies (mbgd.studies.protocol takes it around every change that moves budget).

On a sqlite file an flock on a file beside the database (sqlite's own locks are fcntl locks on the database
file, which flock leaves alone), on PostgreSQL a transaction-level advisory lock, on MySQL GET_LOCK; a storage
without a database (in memory) is one process's, and a thread lock does; on any other database (or a
storage without one, such as a journal file) it is an error: mbgd takes no lock it cannot hold across
processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from mbgd.core.config import ConfigError

LOCK_NAMESPACE = 0x6D626764  # "mbgd": PostgreSQL advisory locks are keyed (namespace, study id)
LOCAL_LOCK = threading.Lock()  # storages with no lock of their own (in memory): one process only


@contextlib.contextmanager
def held_for(storage, study_id: int) -> Iterator[None]:
    """Hold the study's lock (mbgd.studies.lock, on the storage's database): one process at a time, across
    machines where the database is shared; released when the block ends or the process dies. An in-memory
    storage is one process's, and a thread lock does; any other storage has no lock mbgd can take across
    processes, which is an error."""
    import optuna

    if isinstance(storage, optuna.storages.RDBStorage):
        engine = storage.engine
    elif isinstance(storage, optuna.storages.InMemoryStorage):
        engine = None
    else:
        raise ConfigError(
            f"mbgd's workers share a study only on a database or in memory, not on {type(storage).__name__}"
        )
    with held(engine, study_id):
        yield


@contextlib.contextmanager
def held(engine, study_id: int) -> Iterator[None]:
    """Hold study `study_id`'s lock on the SQLAlchemy `engine` of its storage (None: no database)."""
    import sqlalchemy

    dialect = engine.dialect.name if engine is not None else ""
    if dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        with file_lock(f"{engine.url.database}.lock"):
            yield
    elif dialect == "postgresql":
        with engine.connect() as connection:  # the lock ends with this transaction, whatever ends it
            connection.execute(
                sqlalchemy.text("SELECT pg_advisory_xact_lock(:namespace, :study)"),
                {"namespace": LOCK_NAMESPACE, "study": study_id},
            )
            try:
                yield
            finally:
                connection.rollback()
    elif dialect == "mysql":
        name = {"name": f"mbgd-study-{study_id}"}
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT GET_LOCK(:name, -1)"), name)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), name)
    elif engine is None or dialect == "sqlite":  # no database, or sqlite in memory: this process's alone
        with LOCAL_LOCK:
            yield
    else:
        raise ConfigError(f"mbgd cannot lock a study across processes on a {dialect} database")


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    import fcntl

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock
