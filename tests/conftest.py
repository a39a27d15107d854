import importlib.machinery
import shutil
import sqlite3
import sys
import types
from pathlib import Path

import pytest

from services import fresh_postgres_url, mlflow_experiment, mlflow_server_uri, postgres_url  # noqa: F401

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def empty_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its tables already created (migrations take seconds; copying, none)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store_template: Path) -> str:
    """A fresh tracking store in a temporary working directory; returns its URI."""
    shutil.copy(empty_store_template, tmp_path / "mlflow.db")
    # The template's Default experiment points at the template's folder; point it at this test's.
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(tmp_path / "mlruns" / "0"),),
        )
    db.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    return uri


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def optuna_dashboard(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """A stand-in for optuna-dashboard (the extra `mbgd[dashboard]`, which the tests do not install), so that
    `mbgd dashboard` runs; returns the (host, port) pairs it was asked to serve on."""
    served = []
    fake = types.ModuleType("optuna_dashboard")
    fake.__spec__ = importlib.machinery.ModuleSpec("optuna_dashboard", None)
    fake.run_server = lambda storage, host, port: served.append((host, port))
    monkeypatch.setitem(sys.modules, "optuna_dashboard", fake)
    return served
