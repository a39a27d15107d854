"""Checks several test modules make in the same words."""

from click.testing import Result
from mlflow import MlflowClient


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

    from mbgd.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return MlflowClient(tracking_store).search_runs(["0"], max_results=max_results)
