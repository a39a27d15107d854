"""The speed-ups of issue 15 changed no result: a small sweep and a small scaling give, to the last digit,
what the code before them gave (tests/data/unchanged_results.json, made by commit 2cd1f9d with these
commands), with their longest computations in this process or in the compute worker's."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mbgd import compute_worker
from mbgd.cli import main

pytestmark = pytest.mark.slow
EXPECTED = json.loads((Path(__file__).parent / "data" / "unchanged_results.json").read_text())
SWEEP = ["sweep", "--batch-sizes", "1,10", "--n-trials", "12", "--population", "4", "--seeds", "3"]
SWEEP += ["--scan", "32", "--tuning-cost-seeds", "3", "--name", "gold"]
SCALING = ["scaling", "--output-dir", "out", "--batch-sizes", "1,10", "--n-trials", "4", "--population", "2"]
SCALING += ["--seeds", "2", "--scan", "16", "--name", "gold"]


def printed(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith(("run ", "open the"))]


@pytest.fixture(params=["here", "in the compute worker", "in a compute worker killed at its first call"])
def where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The small commands run their tuning costs and scans here (too few trials for a worker), or, with the
    threshold lowered, in mbgd.compute_worker's process, which must then answer every call it was handed (the
    command waits for each instead of taking back those not begun); or in one killed (kill -9) as soon as it
    is handed its first call, so that this process makes them all."""
    killing = request.param.startswith("in a compute worker killed")
    started: list[compute_worker.ComputeWorker] = []
    calls = {"handed over": 0, "answered there": 0}
    original_init, original_answer = (
        compute_worker.ComputeWorker.__init__,
        compute_worker.ComputeWorker.answer,
    )
    original_submit = compute_worker.ComputeWorker.submit

    def init(self, **kwargs) -> None:
        original_init(self, **kwargs)
        started.append(self)

    def submit(self, function, *args, **kwargs):
        pending = original_submit(self, function, *args, **kwargs)
        if killing and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)  # still importing: it cannot have answered
        return pending

    def answer(self, number: int):
        calls["handed over"] += 1
        while not killing and self.pid is not None and not self.has_answered(number):
            time.sleep(0.005)
        answered, value = original_answer(self, number)
        calls["answered there"] += answered
        return answered, value

    if request.param != "here":
        monkeypatch.setattr("mbgd.cli.WORKER_FROM_TRIALS", 1)
        monkeypatch.setattr(compute_worker.ComputeWorker, "__init__", init)
        monkeypatch.setattr(compute_worker.ComputeWorker, "answer", answer)
        monkeypatch.setattr(compute_worker.ComputeWorker, "submit", submit)
    yield request.param
    if request.param != "here":
        assert [w for w in started if w.started]
        assert calls["handed over"] > 0
        assert calls["answered there"] == (0 if killing else calls["handed over"])


def test_a_sweep_s_summary_metrics_trials_and_lines_are_unchanged(
    tracking_store: str, tmp_path: Path, where: str
) -> None:
    result = CliRunner().invoke(main, SWEEP)
    assert result.exit_code == 0, result.output
    assert printed(result.output) == EXPECTED["sweep_lines"]
    client = MlflowClient(tracking_store)
    (sweep_run,) = [r for r in client.search_runs(["0"]) if r.info.run_name == "sweep-gold"]
    summary = Path(client.download_artifacts(sweep_run.info.run_id, "summary.json", str(tmp_path)))
    assert json.loads(summary.read_text()) == EXPECTED["sweep_summary"]
    assert sweep_run.data.metrics == EXPECTED["sweep_metrics"]
    trials = sorted(
        [
            r.data.params.get("study_name"),
            int(r.data.params["trial"]),
            r.data.params["lr"],
            r.data.metrics["objective"],
        ]
        for r in client.search_runs(["0"], max_results=1000)
        if "trial" in r.data.params
    )
    assert trials == EXPECTED["trial_runs"]


def test_a_scaling_s_summary_and_lines_are_unchanged(tracking_store: str, where: str) -> None:
    result = CliRunner().invoke(main, SCALING)
    assert result.exit_code == 0, result.output
    assert printed(result.output) == EXPECTED["scaling_lines"]
    assert json.loads(Path("out", "scaling.json").read_text()) == EXPECTED["scaling_summary"]
