"""The saved view of a comparison: the MLflow UI's envelope, one log-scale `loss` chart, the comparison's
runs."""

import json

from click.testing import CliRunner
from mlflow import MlflowClient

from mbgd.cli.main import main
from mbgd.tracking.ui_views import (
    VIEW_TAG_PREFIX,
    comparison_view,
    comparison_view_key,
    latest_comparison_view_key,
)

PARENT = "0123456789abcdef0123456789abcdef"
OTHER_METRICS = ("batch_loss", "loss", "final_loss", "compare/loss_b1", "w", "b")


def view_state(tag_value: str) -> dict:
    envelope = json.loads(tag_value)
    assert isinstance(envelope["name"], str)
    assert isinstance(envelope["createdAt"], int)
    assert isinstance(envelope["updatedAt"], int)
    return json.loads(envelope["state"])


def test_comparison_view_is_one_log_scale_chart_of_loss_for_the_comparison_runs() -> None:
    state = view_state(comparison_view(PARENT, ["mini-batch-b20", "sgd-b1"], OTHER_METRICS, now_ms=1))
    assert PARENT in state["searchFilter"]
    assert state["searchFilter"] == f"tags.comparison = '{PARENT}'"
    shown = [chart for chart in state["compareRunCharts"] if not chart["deleted"]]
    (chart,) = shown
    assert chart["type"] == "LINE"
    assert chart["metricKey"] == "loss"
    assert chart["selectedMetricKeys"] == ["loss"]
    assert chart["scaleType"] == "log"
    (section,) = state["compareRunSections"]
    assert chart["metricSectionId"] == section["uuid"]


def test_every_other_metric_has_a_deleted_chart_so_the_ui_adds_none() -> None:
    state = view_state(comparison_view(PARENT, ["mini-batch-b20"], OTHER_METRICS, now_ms=1))
    deleted = {chart["metricKey"] for chart in state["compareRunCharts"] if chart["deleted"]}
    assert deleted == set(OTHER_METRICS) - {"loss"}


def test_comparison_runs_are_listed_flat_by_run_name() -> None:
    # Children of a collapsed parent are not drawn: a sort other than start time lists them all.
    state = view_state(comparison_view(PARENT, [], (), now_ms=1))
    assert state["orderByKey"] == "tags.`mlflow.runName`"


def test_latest_comparison_view_is_the_newest_one_mbgd_wrote() -> None:
    tags = {
        VIEW_TAG_PREFIX + comparison_view_key("old"): comparison_view("old", [], (), now_ms=1),
        VIEW_TAG_PREFIX + comparison_view_key("new"): comparison_view("new", [], (), now_ms=2),
        VIEW_TAG_PREFIX + comparison_view_key("broken"): "not json",
        VIEW_TAG_PREFIX + "someone-elses-view": comparison_view("other", [], (), now_ms=3),
        "note": "x",
    }
    assert latest_comparison_view_key(tags) == comparison_view_key("new")
    assert latest_comparison_view_key({}) == ""


def test_train_tags_the_compared_runs_saves_their_view_and_prints_its_link(tracking_store: str) -> None:
    result = CliRunner().invoke(main, ["train", "--epochs", "1", "--compare-with", "1,10"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_store)
    runs = client.search_runs(["0"])
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    parent_id = parent.info.run_id
    assert {run.data.tags["comparison"] for run in runs} == {parent_id}
    assert len(runs) == 3
    key = comparison_view_key(parent_id)
    state = view_state(client.get_experiment("0").tags[VIEW_TAG_PREFIX + key])
    assert {"batch_loss", "compare/loss_b1", "final_loss"} <= {
        chart["metricKey"] for chart in state["compareRunCharts"] if chart["deleted"]
    }
    assert (
        f"comparison: http://127.0.0.1:5000/#/experiments/0/runs?workflowType=machine_learning"
        f"&compareRunsMode=CHART&viewStateShareKey={key}"
    ) in result.output.splitlines()
    # The view's search finds exactly the comparison's runs.
    assert len(client.search_runs(["0"], filter_string=state["searchFilter"])) == 3


def test_train_without_a_comparison_prints_no_comparison_link(tracking_store: str) -> None:
    result = CliRunner().invoke(main, ["train", "--epochs", "1", "--compare-with", ""])
    assert result.exit_code == 0, result.output
    assert "comparison:" not in result.output
    assert not [
        tag
        for tag in MlflowClient(tracking_store).get_experiment("0").tags
        if tag.startswith(VIEW_TAG_PREFIX)
    ]
