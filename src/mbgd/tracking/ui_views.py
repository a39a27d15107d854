"""Saved views of the MLflow UI: a batch-size comparison as one log-scale chart of the compared runs' loss.

MLflow 3.17's UI keeps chart layouts in the browser (localStorage), which a project cannot write; what it
reads from the store is the experiment's saved views, experiment tags `mlflow.sharedViewState.<key>` that a
link opens with `viewStateShareKey=<key>` (the link must add `compareRunsMode=CHART`: a view cannot carry it).
The state format is the UI's internal one (read from MLflow's TypeScript sources), undocumented: MLflow is
pinned and a browser test (tests/test_browser.py) checks that the view renders.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping

COMPARISON_TAG = "comparison"  # on the parent and its compared runs: the parent's run id
VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # the UI's prefix for saved views
COMPARISON_VIEW_PREFIX = "mbgd-comparison-"
COMPARED_METRIC = "loss"  # the full-dataset loss per epoch, logged by every run of a comparison
SECTION_ID = "mbgd-comparison"
CHART_ID = "mbgd-comparison-loss"


def comparison_view_key(parent_run_id: str) -> str:
    """The saved view's key: one per comparison, so a printed link keeps showing its own runs."""
    return f"{COMPARISON_VIEW_PREFIX}{parent_run_id}"


def comparison_filter(parent_run_id: str) -> str:
    """The runs-page search that selects a comparison's runs, the parent included."""
    return f"tags.{COMPARISON_TAG} = '{parent_run_id}'"


def comparison_view_state(parent_run_id: str, other_metric_keys: Iterable[str]) -> dict:
    """The page state: the comparison's runs, listed flat, and one large log-scale chart of their `loss`.

    Sorting by run name lists the compared runs flat (the UI nests children under a collapsed parent, and
    charts draw visible rows only). Every other metric gets a deleted chart: the UI adds a chart for each
    metric key that has none, deleted ones included, so this keeps the default charts off the page.
    `isAccordionReordered` stops the UI re-sorting sections on the assumption that the last two are its own
    "Model metrics" and "System metrics".
    """
    loss_chart = {
        "uuid": CHART_ID,
        "type": "LINE",
        "metricSectionId": SECTION_ID,
        "metricKey": COMPARED_METRIC,
        "selectedMetricKeys": [COMPARED_METRIC],
        "scaleType": "log",
        "xAxisKey": "step",
        "xAxisScaleType": "linear",
        "selectedXAxisMetricKey": "",
        "lineSmoothness": 0,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
        "runsCountToCompare": 10,
        "deleted": False,
        "isGenerated": False,
    }
    hidden = [
        {
            "uuid": f"mbgd-hidden-{key}",
            "type": "LINE",
            "metricSectionId": SECTION_ID,
            "metricKey": key,
            "deleted": True,
            "isGenerated": True,
        }
        for key in sorted(set(other_metric_keys) - {COMPARED_METRIC})
    ]
    section = {
        "uuid": SECTION_ID,
        # The section's header says what the chart shows: the runs page titles a chart by its metric key only.
        "name": f"{COMPARED_METRIC} per epoch by batch size, log scale",
        "display": True,
        "isReordered": True,
        "deleted": False,
        "isGenerated": False,
        "columns": 1,  # one chart across the page, not a third of it
        "cardHeight": 520,
    }
    return {
        # search facets
        "searchFilter": comparison_filter(parent_run_id),
        "orderByKey": "tags.`mlflow.runName`",
        "orderByAsc": True,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        # page layout
        "runsHiddenMode": "SHOW_ALL",
        "groupBy": None,
        "hideEmptyCharts": True,
        "isAccordionReordered": True,
        "compareRunSections": [section],
        "compareRunCharts": [loss_chart, *hidden],
    }


def comparison_view(
    parent_run_id: str,
    run_names: Iterable[str],
    other_metric_keys: Iterable[str],
    *,
    now_ms: int | None = None,
) -> str:
    """The experiment tag's value: the UI's saved-view envelope around the page state (plain JSON)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    name = f"mbgd: {COMPARED_METRIC} of {', '.join(run_names)} (run {parent_run_id[:8]})"
    state = json.dumps(comparison_view_state(parent_run_id, other_metric_keys), separators=(",", ":"))
    return json.dumps({"name": name, "createdAt": now_ms, "updatedAt": now_ms, "state": state})


def latest_comparison_view_key(experiment_tags: Mapping[str, str]) -> str:
    """The key of the experiment's most recently created comparison view, or '' when there is none."""
    created = {}
    for tag, value in experiment_tags.items():
        if tag.startswith(VIEW_TAG_PREFIX + COMPARISON_VIEW_PREFIX):
            try:
                created[tag[len(VIEW_TAG_PREFIX) :]] = float(json.loads(value)["createdAt"])
            except (ValueError, KeyError, TypeError):
                continue  # not a view mbgd wrote: someone else's tag under the same prefix
    return max(created, key=created.__getitem__, default="")


def save_comparison_view(mlflow_client, parent_run_id: str) -> str:
    """Tag a comparison's runs (the parent and its children) and save its view; returns the view's key."""
    parent = mlflow_client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    children = mlflow_client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000
    )
    runs = [parent, *sorted(children, key=lambda run: run.info.run_name)]
    for run in runs:
        mlflow_client.set_tag(run.info.run_id, COMPARISON_TAG, parent_run_id)
    metric_keys = {key for run in runs for key in run.data.metrics}
    key = comparison_view_key(parent_run_id)
    view = comparison_view(parent_run_id, [run.info.run_name for run in runs], metric_keys)
    mlflow_client.set_experiment_tag(experiment_id, VIEW_TAG_PREFIX + key, view)
    return key
