"""The speed-ups of issue 15 changed no result: a small sweep and a small scaling give, to the last digit,
what the code before them gave (tests/data/unchanged_results.json, made by commit 2cd1f9d with these
commands)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mbgd.cli import main

pytestmark = pytest.mark.slow
EXPECTED = json.loads((Path(__file__).parent / "data" / "unchanged_results.json").read_text())
SWEEP = ["sweep", "--batch-sizes", "1,10", "--n-trials", "12", "--population", "4", "--seeds", "3"]
SWEEP += ["--scan", "32", "--tuning-cost-seeds", "3", "--name", "gold"]
SCALING = ["scaling", "--output-dir", "out", "--batch-sizes", "1,10", "--n-trials", "4", "--population", "2"]
SCALING += ["--seeds", "2", "--scan", "16", "--name", "gold"]


def printed(output: str) -> list[str]:
    return [line for line in output.splitlines() if not line.startswith(("run ", "open the"))]


def test_a_sweep_s_summary_metrics_trials_and_lines_are_unchanged(
    tracking_store: str, tmp_path: Path
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


def test_a_scaling_s_summary_and_lines_are_unchanged(tracking_store: str) -> None:
    result = CliRunner().invoke(main, SCALING)
    assert result.exit_code == 0, result.output
    assert printed(result.output) == EXPECTED["scaling_lines"]
    assert json.loads(Path("out", "scaling.json").read_text()) == EXPECTED["scaling_summary"]
