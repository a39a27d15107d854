"""Checks several test modules make in the same words, and the small configs, commands and stand-in servers
they share."""

import http.server
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path

from click.testing import Result
from mlflow import MlflowClient

from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import load_data
from mbgd.core.train import History

GUARD_S = 60  # a guard against a hang only: a command that cannot use its store fails at once
TUTORIAL = TrainConfig()
TUTORIAL_DATA = load_data(TUTORIAL.data, TUTORIAL.seed)  # the tutorial's 100 points


def assert_one_line_usage_error_and_no_run(result: Result, message: str, tracking_store: str) -> None:
    """Exit 2, one `Error:` line holding `message`, no traceback, and no MLflow run in any experiment."""
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.output
    assert message in error_lines[0]
    assert "Traceback" not in result.output
    client = MlflowClient(tracking_store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert client.search_runs(experiments) == []


def runs_after(args: list[str], tracking_store: str, max_results: int = 500) -> list:
    """Run an mbgd command that must succeed; return the runs of MLflow's Default experiment."""
    from click.testing import CliRunner

    from mbgd.cli.main import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return MlflowClient(tracking_store).search_runs(["0"], max_results=max_results)


def run_ok(
    command: list[str], *, env: dict[str, str], timeout: float, cwd=None
) -> subprocess.CompletedProcess:
    """Run a command that must succeed (exit 0, else the tail of its stderr); returns its result."""
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def small_sweep(tmp_path: Path, **changes) -> SweepConfig:
    """A sweep of batch size 10 that runs in seconds (3 epochs, 5 trials in pairs, 2 seeds), its studies in a
    sqlite file under tmp_path; `changes` replace any of its settings."""
    base = SweepConfig(
        train=replace(TrainConfig(), epochs=3),
        n_trials=5,
        population=2,
        seeds=2,
        batch_sizes=(10,),
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )
    return replace(base, **changes)


def history(
    train=(), updates=(), epochs=(), *, diverged=False, batch_size=30, per_epoch=4, samples=100
) -> History:
    """A History with the given losses (train: full-dataset loss per epoch on the training targets; updates:
    per update; epochs: on the evaluation targets), lr 0.1."""
    return History(
        lr=0.1,
        batch_size=batch_size,
        updates_per_epoch=per_epoch,
        samples_per_epoch=samples,
        epoch_losses=list(epochs),
        train_losses=list(train),
        update_losses=list(updates),
        diverged=diverged,
    )


def storage_of(study):
    """The storage a study was opened on, behind the cache Optuna puts before an RDB storage (what
    mbgd.studies.protocol is handed beside the study; tests may read Optuna's private names)."""
    storage = study._storage
    return getattr(storage, "_backend", storage)


def run_mbgd(command: str, tracking_uri: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The `mbgd` console script on the tracking store `tracking_uri`, run in `cwd`; may fail."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env.pop("MLFLOW_RUN_ID", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "mbgd"), command, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD_S,
        check=False,
    )


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(status: int) -> Iterator[str]:
    """A local HTTP server that answers every GET with `status` (and every POST 501); yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def store_at_revision(tracking_store: str, revision: str) -> Path:
    """The test's store, as if the given MLflow schema revision had migrated it."""
    path = Path(tracking_store.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        db.commit()
    return path
