"""The tracking store is checked once, before any work: an unreachable or unusable store is a one-line
error."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from checks import GUARD_S, free_port, http_server, run_mbgd, run_ok, store_at_revision
from mbgd.cli.exits import user_errors
from mbgd.tracking import runs as tracking
from mbgd.tracking.store import StoreUnavailable, check

BIN = Path(sys.executable).parent
COMMANDS = ["train", "sweep", "scaling", "report"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unreachable_server_is_one_line_naming_it_and_exit_1_before_any_work(
    command: str, tmp_path: Path
) -> None:
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"  # nothing listens there
    result = run_mbgd(command, uri, tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""  # nothing trained, nothing printed
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: cannot use the MLflow tracking store {uri.replace('s3cret', '***')} ")
    assert "s3cret" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no local store, results or Optuna storage made meanwhile


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unusable_sqlite_path_is_one_line_and_exit_1(command: str, tmp_path: Path) -> None:
    result = run_mbgd(command, "sqlite:////proc/nope/mlflow.db", tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "Error: cannot use the MLflow tracking store sqlite:////proc/nope/mlflow.db (MLFLOW_TRACKING_URI): "
        "[Errno 2] No such file or directory: '/proc/nope'; check the path, or set MLFLOW_TRACKING_URI to "
        "another store"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [200, 401, 403])
def test_a_server_that_answers_health_is_reachable(status: int) -> None:
    with http_server(status) as url:
        check(url)


@pytest.mark.parametrize("status", [404, 502])
def test_a_server_without_mlflow_behind_it_is_unavailable(status: int) -> None:
    with http_server(status) as url, pytest.raises(StoreUnavailable, match=f"answered HTTP {status}"):
        check(url)


def test_ctrl_c_while_the_server_does_not_answer_claims_no_killed_runs(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(GUARD_S)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        process = subprocess.Popen(
            [str(BIN / "mbgd"), "train"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connection, _ = silent.accept()  # mbgd is probing the server now
        with connection:
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=GUARD_S)
    assert process.returncode == 130
    assert stdout == ""
    assert stderr.splitlines()[-1] == "mbgd: interrupted; no MLflow run was in progress"
    assert "KILLED" not in stderr


@click.command()
@click.option("--open-run", is_flag=True)
@user_errors
def interrupted(open_run: bool) -> None:
    if open_run:
        with tracking.run_scope(tracking.client(), run_name="interrupted"):
            raise KeyboardInterrupt
    raise KeyboardInterrupt


def test_ctrl_c_says_runs_were_marked_killed_only_when_there_were(tracking_store: str) -> None:
    without = CliRunner().invoke(interrupted, [])
    assert without.exit_code == 130
    assert without.output.strip() == "mbgd: interrupted; no MLflow run was in progress"
    assert MlflowClient(tracking_store).search_runs(["0"]) == []

    with_run = CliRunner().invoke(interrupted, ["--open-run"])
    assert with_run.exit_code == 130
    assert with_run.output.strip() == "mbgd: interrupted; the active MLflow runs were marked KILLED"
    (run,) = MlflowClient(tracking_store).search_runs(["0"])
    assert run.info.status == "KILLED"


def test_mlflow_prints_no_view_run_lines_against_a_server(
    mlflow_server_uri: str, mlflow_experiment: str, tmp_path: Path
) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server_uri}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        env.pop(name, None)
    result = run_ok(
        [
            str(BIN / "mbgd"),
            "train",
            "--epochs",
            "1",
            "--compare-with",
            "1",
            "--experiment",
            mlflow_experiment,
        ],
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert "batch size     1" in result.stdout  # it ran, with a child run
    assert "View run" not in result.stdout + result.stderr
    assert "View experiment" not in result.stdout + result.stderr


def test_a_store_migrated_by_mlflow_3_18_is_one_line_naming_both_versions(tracking_store: str) -> None:
    from importlib.metadata import version

    check(tracking_store)  # the store this MLflow made: usable
    store_at_revision(tracking_store, "f4a9b2c7d1e6")  # MLflow 3.18.0's newest migration
    with pytest.raises(StoreUnavailable) as raised:
        check(tracking_store)
    message = str(raised.value)
    assert (
        f"migrated by MLflow 3.18 or newer (schema revision f4a9b2c7d1e6), which MLflow {version('mlflow')}"
        in (message)
    )
    assert "run mbgd with mlflow>=3.18, or set MLFLOW_TRACKING_URI to another store" in message
    assert "\n" not in message


def test_a_store_at_a_revision_no_mlflow_release_here_knows_is_said_to_be_newer(
    tracking_store: str, tmp_path: Path
) -> None:
    import sqlite3
    from contextlib import closing

    path = store_at_revision(tracking_store, "0123456789ab")
    result = run_mbgd("train", tracking_store, tmp_path)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "it was migrated by a newer MLflow (schema revision 0123456789ab)" in result.stderr
    with closing(sqlite3.connect(path)) as db:  # left as it was: no run, the revision kept
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("0123456789ab",)
