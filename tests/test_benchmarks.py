"""The benchmark harness measures what it says: P2s's mbgd side runs its own studies after P2's (every store
in a folder of its own, so mbgd's default Optuna storage beside it is its own too)."""

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_p2s_after_p2_runs_its_own_studies(tmp_path: Path) -> None:
    # p2_sweep.mbgd_study_phase raises when the studies it is about to time hold trials already (it would time
    # a resume and a back-fill); with one folder for every store, P2s met P2's finished studies of its names
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--only", "P2,P2S"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "P2s sweep study phase, strong peer vs mbgd" in result.stdout
    assert "already holds trials" not in result.stdout + result.stderr
