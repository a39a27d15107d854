"""Links into the MLflow UI as the commands print them: the runs, one run, the chart view; never with
credentials. Imports
nothing heavy: the commands print these links at their end.
"""

from __future__ import annotations


def ui_base(tracking_uri: str) -> str:
    """The UI's address for a tracking URI, without credentials: a printed link must not hold a password.

    A tracking server is its own UI (user and password dropped, the browser asks for them); any other store is
    served by `mbgd ui` on its default address.
    """
    from urllib.parse import urlsplit, urlunsplit

    if not tracking_uri.startswith(("http://", "https://")):
        return "http://127.0.0.1:5000"
    parts = urlsplit(tracking_uri)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def runs_link(tracking_uri: str, experiment_id: str, run_id: str = "") -> str:
    """A UI link that opens on the runs, or on one run, in the model-training layout.

    Without `workflowType=machine_learning` MLflow 3's UI opens an experiment on its GenAI overview and a run
    in the GenAI layout (unless the browser remembers otherwise).
    """
    runs = f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs"
    return (
        f"{runs}/{run_id}?workflowType=machine_learning"
        if run_id
        else f"{runs}?workflowType=machine_learning"
    )


def charts_link(server: str, experiment_id: str, view_key: str = "") -> str:
    """The runs link in the UI's chart view: every run's metrics side by side, or a saved view's charts.

    A saved view cannot carry the chart mode itself; the link does.
    """
    link = f"{runs_link(server, experiment_id)}&compareRunsMode=CHART"
    return f"{link}&viewStateShareKey={view_key}" if view_key else link
