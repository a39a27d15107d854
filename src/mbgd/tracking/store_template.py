"""A new sqlite tracking store as a copy of the tables MLflow creates, instead of MLflow's own migrations.

MLflow makes a new sqlite store by running its whole migration history (about a hundred alembic scripts): over
a second each time a folder gets its first store, which is what a new user's first `mbgd train` waits for. The
copy is MLflow's own work: once per MLflow version, MLflow makes a store in a temporary folder, whose Default
experiment is then removed, and the file is kept in the user's cache folder. Opening a copy, MLflow finds its
tables at the current revision and adds the Default experiment as it does to a new store (with the copy's own
artifact location and time), so the store is the one MLflow would have made. Part of the tracking layer.

Anything unusual (an unwritable cache, a file system without hard links, a store that already exists, even
empty) leaves the store to MLflow, as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from importlib.metadata import version
from pathlib import Path


def cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mbgd"


def template_path() -> Path:
    """Where this MLflow version's empty store is kept (made on first use)."""
    return cache_folder() / f"mlflow-{version('mlflow')}-empty-store.db"


def create_from_template(path: str) -> bool:
    """Create the sqlite store at `path` as a copy of the template, if no file is there; returns whether it
    did. Another process that creates the store meanwhile wins (the copy appears whole, or not at all)."""
    if not path or path == ":memory:" or os.path.exists(path):
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
            os.link(partial.name, path)  # fails if the store exists by now
        finally:
            os.unlink(partial.name)
    except Exception:  # an optimisation only: MLflow makes the store, as it always did
        return False
    return True


def make_template(template: Path) -> None:
    """MLflow's new store, made in a temporary folder beside `template`, without its Default experiment."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=template.parent, prefix="making-") as folder:
        database = os.path.join(folder, "mlflow.db")
        store = SqlAlchemyStore(f"sqlite:///{database}", os.path.join(folder, "mlruns"))
        store.engine.dispose()
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("DELETE FROM experiments")
            connection.commit()
        os.replace(database, template)  # whole, or not at all, for another process making it too
