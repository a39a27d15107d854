"""Every link mbgd prints: the model-training layout, and never the credentials of the tracking URI."""

import subprocess
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mbgd.cli import main as cli
from mbgd.cli import servers as cli_servers
from mbgd.pipelines.train import TrainOutcome
from mbgd.tracking.ui_links import charts_link, runs_link, ui_base
from mbgd.tracking.ui_views import VIEW_TAG_PREFIX, comparison_view, comparison_view_key

SECRET_URI = "https://alice:s3cret@mlflow.example.org:8443/tracking/"
SERVER = "https://mlflow.example.org:8443/tracking"
RUN = "0123456789abcdef0123456789abcdef"


def test_links_drop_the_user_and_password_of_the_tracking_uri() -> None:
    assert ui_base(SECRET_URI) == SERVER
    assert ui_base("http://token@127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert ui_base("http://mlflow.example.org:5000/?token=abc") == "http://mlflow.example.org:5000"
    assert (
        runs_link(SECRET_URI, "7", RUN)
        == f"{SERVER}/#/experiments/7/runs/{RUN}?workflowType=machine_learning"
    )
    assert charts_link(SECRET_URI, "7", "v") == (
        f"{SERVER}/#/experiments/7/runs?workflowType=machine_learning&compareRunsMode=CHART&viewStateShareKey=v"
    )


def test_a_run_link_opens_in_the_model_training_layout() -> None:
    assert runs_link("sqlite:///mlflow.db", "0", RUN).endswith(f"/runs/{RUN}?workflowType=machine_learning")


def fake(outcome):
    return lambda *args, **kwargs: outcome


def invoke(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_URI)
    # The server in the URI does not exist: the commands' up-front check of the store is skipped.
    monkeypatch.setattr(cli, "require_tracking_store", lambda: SECRET_URI, raising=False)
    result = CliRunner().invoke(cli.main, list(args))
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "alice" not in result.output
    return result.output


def test_train_prints_its_run_and_comparison_links_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("mbgd.pipelines.train.tracked_train", fake(TrainOutcome(RUN, "7", {}, {10: "child"})))
    lines = invoke(monkeypatch, "train", "--epochs", "1").splitlines()
    assert f"run {RUN}: {SERVER}/#/experiments/7/runs/{RUN}?workflowType=machine_learning" in lines
    assert f"comparison: {charts_link(SERVER, '7', comparison_view_key(RUN))}" in lines


SWEEP_SUMMARY = {"by_batch_size": {}, "ranking_fixed_lr": "", "ranking_tuned": ""}
SCALING_SUMMARY = {"critical_batch_size_theory": 1.0, "noise_scale_at_target": None, "measured": {}}


@pytest.mark.parametrize(
    ("command", "tracked", "summary"),
    [
        ("sweep", "tracked_sweep", SWEEP_SUMMARY),
        ("report", "tracked_report", SWEEP_SUMMARY),
        ("scaling", "tracked_scaling", SCALING_SUMMARY),
    ],
)
def test_studies_print_their_run_link_without_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path, command: str, tracked: str, summary: dict
) -> None:
    monkeypatch.chdir(tmp_path)
    outcome = SimpleNamespace(run_id=RUN, experiment_id="7", summary=summary, registered_versions={})
    monkeypatch.setattr(f"mbgd.pipelines.{command}.{tracked}", fake(outcome))
    lines = invoke(monkeypatch, command, "--n-trials", "1").splitlines()
    assert f"run {RUN}: {SERVER}/#/experiments/7/runs/{RUN}?workflowType=machine_learning" in lines


def test_ui_on_a_tracking_server_names_it_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SECRET_URI)
    result = CliRunner().invoke(cli.main, ["ui"])
    assert result.exit_code == 2
    assert SERVER in result.output
    assert "s3cret" not in result.output


class NoServer:
    """Stands in for the `mlflow ui` process: the links are printed before it starts."""

    pid = -1

    def __init__(self, *args, **kwargs) -> None:
        pass

    def wait(self, *args) -> int:
        return 0


def test_ui_prints_the_runs_the_charts_and_the_latest_comparison(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowClient(tracking_store)
    for run_id, created in (("older", 1), (RUN, 2)):
        view = comparison_view(run_id, [], (), now_ms=created)
        client.set_experiment_tag("0", VIEW_TAG_PREFIX + comparison_view_key(run_id), view)
    monkeypatch.setattr(subprocess, "Popen", NoServer)
    monkeypatch.setattr(cli_servers, "stop_process_group", lambda process: None)
    result = CliRunner().invoke(cli.main, ["ui", "--port", "5123"])
    assert result.exit_code == 0, result.output
    base = "http://127.0.0.1:5123/#/experiments/0/runs?workflowType=machine_learning"
    assert result.output.splitlines()[:3] == [
        f"runs: {base}",
        f"charts: {base}&compareRunsMode=CHART",
        f"comparison: {base}&compareRunsMode=CHART&viewStateShareKey={comparison_view_key(RUN)}",
    ]
