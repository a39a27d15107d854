"""A new sqlite tracking store made from the cached template is the store MLflow itself makes."""

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mbgd.tracking import mlflow_internals as store_template
from mbgd.tracking import runs as tracking


def contents(path: Path) -> dict:
    """Schema, and every table's rows with the Default experiment's times left out."""
    with closing(sqlite3.connect(path)) as db:
        # Each statement's lines sorted: MLflow itself orders a table's constraints differently from one
        # process to the next (they come from a set, and Python's string hashing is seeded per process).
        schema = sorted(
            (kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
            for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master")
            if not name.startswith("sqlite_")
        )
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {table: sorted(map(repr, db.execute(f'SELECT * FROM "{table}"'))) for table in tables}
        rows["experiments"] = sorted(
            db.execute(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, workspace FROM experiments"
            )
        )
    return {"schema": schema, "rows": rows}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mbgd"


def test_a_store_from_the_template_is_the_one_mlflow_makes(tmp_path: Path, cache: Path, monkeypatch) -> None:
    mlflow_made, templated = tmp_path / "mlflow-made", tmp_path / "templated"
    for folder in (mlflow_made, templated):
        folder.mkdir()
    monkeypatch.chdir(mlflow_made)
    MlflowClient(f"sqlite:///{mlflow_made / 'mlflow.db'}").search_experiments()

    monkeypatch.chdir(templated)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{templated / 'mlflow.db'}")
    assert store_template.create_from_template(str(templated / "mlflow.db"))
    assert store_template.template_path().parent == cache
    umask = os.umask(0)
    os.umask(umask)
    assert (templated / "mlflow.db").stat().st_mode & 0o777 == 0o666 & ~umask  # as MLflow's own file
    tracking.client().search_experiments()  # MLflow opens the copy and adds its Default experiment

    reference, copy = contents(mlflow_made / "mlflow.db"), contents(templated / "mlflow.db")
    assert copy["schema"] == reference["schema"]
    assert copy["rows"]["experiments"] == [
        (0, "Default", str(templated / "mlruns" / "0"), "active", "default")
    ]
    assert reference["rows"]["experiments"] == [
        (0, "Default", str(mlflow_made / "mlruns" / "0"), "active", "default")
    ]
    del copy["rows"]["experiments"], reference["rows"]["experiments"]
    assert copy["rows"] == reference["rows"]  # alembic's revision, the default workspace, nothing else


def test_a_store_that_exists_even_empty_is_left_alone(tmp_path: Path, cache: Path) -> None:
    existing = tmp_path / "mlflow.db"
    existing.touch()
    assert not store_template.create_from_template(str(existing))
    assert existing.stat().st_size == 0
    assert not cache.exists()  # nothing was made for it


def test_an_unwritable_cache_leaves_the_store_to_mlflow(tmp_path: Path, monkeypatch) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.chdir(tmp_path)
    assert not store_template.create_from_template(str(tmp_path / "mlflow.db"))
    assert not (tmp_path / "mlflow.db").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]  # no partial copy left behind
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_the_public_path_leaves_a_new_store_to_mlflow(tmp_path: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv("MBGD_PUBLIC_API", "1")
    monkeypatch.chdir(tmp_path)
    assert not store_template.create_from_template(str(tmp_path / "mlflow.db"))
    assert not (tmp_path / "mlflow.db").exists()
    assert not cache.exists()
