"""Real end-to-end runs: `mlflow run` under the local and virtualenv env managers, and `mbgd ui`."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def mlflow_run(tracking_store: str, *args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": tracking_store,
    }
    return subprocess.run(
        [str(BIN / "mlflow"), "run", str(PROJECT_ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def runs_by_name(client: MlflowClient):
    return {run.info.run_name: run for run in client.search_runs(["0"])}


def test_mlflow_run_local_reproduces_the_tutorial_run(tracking_store: str) -> None:
    result = mlflow_run(tracking_store, "--env-manager", "local", "-P", "batch_size=20", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_store)
    runs = runs_by_name(client)
    assert set(runs) == {"mini-batch-b20", "sgd-b1", "mini-batch-b10"}
    parent = runs["mini-batch-b20"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["batch_size"] == "20"
    assert len(client.get_metric_history(parent.info.run_id, "batch_loss")) == 100
    loss = client.get_metric_history(parent.info.run_id, "loss")
    assert [m.step for m in loss] == list(range(21))
    assert loss[1].value == pytest.approx(153.1, rel=5e-4)
    assert {"comparison.png", "loss_curve.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.params["batch_size"]) for r in children) == [1, 10]
    assert all(r.info.status == "FINISHED" for r in children)


def test_mlflow_run_virtualenv_builds_its_env_from_conda_yaml(tracking_store: str) -> None:
    result = mlflow_run(
        tracking_store, "--env-manager", "virtualenv", "-P", "batch_size=20", "-P", "epochs=3", timeout=1200
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_store)
    parent = runs_by_name(client)["mini-batch-b20"]
    assert parent.info.status == "FINISHED"
    assert len(client.get_metric_history(parent.info.run_id, "batch_loss")) == 5 * 3
    assert "comparison.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_serves_the_store_on_localhost_and_prints_the_runs_link(tracking_store: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "mbgd"), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        assert (
            first_line.strip()
            == f"runs: http://127.0.0.1:{port}/#/experiments/0/runs?workflowType=machine_learning"
        )
        deadline = time.monotonic() + 180  # MLflow's server start is slow on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "mbgd ui did not start within 180 s"
                time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
