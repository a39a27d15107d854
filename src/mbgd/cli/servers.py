"""The commands that serve a UI, `mbgd ui` and `mbgd dashboard`, and the helpers that start and stop their
servers."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from mbgd.cli.exits import user_errors
from mbgd.cli.options import STORAGE, options_from
from mbgd.runtime.errors import Interrupted, sigterm_interrupts
from mbgd.runtime.processes import imports_done
from mbgd.tracking.store import OPTUNA_STORAGE, check, tracking_uri


@click.command()
@options_from(
    (
        "--host",
        None,
        "Address to bind; other machines need 0.0.0.0 (and authentication).",
        {"default": "127.0.0.1", "show_default": True},
    ),
    ("--port", int, "Port to serve on.", {"default": 5000, "show_default": True}),
    (
        "--experiment",
        str,
        "Experiment to link to. [default: $MLFLOW_EXPERIMENT_NAME, else Default]",
        {"default": ""},
    ),
    ("--open open_browser", None, "Open the runs link in a browser once the UI is up.", {"is_flag": True}),
)
@user_errors
def ui(host: str, port: int, experiment: str, open_browser: bool) -> None:
    """Start the MLflow UI on the project's tracking store and print links to the runs and their charts."""
    import subprocess

    imports_done()  # it runs until stopped: the collector back on (mbgd.runtime.processes)

    store = tracking_uri()
    from mbgd.tracking.runs import client, experiment_id_for
    from mbgd.tracking.ui_links import charts_link, runs_link, ui_base

    if store.startswith("http"):
        raise click.UsageError(f"MLFLOW_TRACKING_URI is a server already: open {ui_base(store)} in a browser")
    check(store)
    from mbgd.tracking.ui_views import latest_comparison_view_key

    os.environ["MLFLOW_TRACKING_URI"] = store
    mlflow_client = client()
    experiment_id = (
        experiment_id_for(mlflow_client, experiment)
        if experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        else "0"
    )
    view = latest_comparison_view_key(mlflow_client.get_experiment(experiment_id).tags)
    server = f"http://{host}:{port}"
    link = runs_link(server, experiment_id)
    click.echo(f"runs: {link}")
    click.echo(f"charts: {charts_link(server, experiment_id)}")
    if view:
        click.echo(f"comparison: {charts_link(server, experiment_id, view)}")
    sys.stdout.flush()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        store,
        "--host",
        host,
        "--port",
        str(port),
    ]
    # The server gets its own process group: MLflow starts worker processes that a plain terminate() of the
    # server would leave running.
    process = subprocess.Popen(command, start_new_session=True)
    try:
        with sigterm_interrupts():
            if open_browser:
                open_when_up(link, server)
            process.wait()
    except KeyboardInterrupt:
        pass
    except Interrupted:
        raise SystemExit(143) from None
    finally:
        stop_process_group(process)


def stop_process_group(process: Any, timeout_s: float = 10.0) -> None:
    """SIGTERM a process and everything it started, SIGKILL what is left after the timeout."""
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def open_when_up(link: str, server: str, timeout_s: float = 60.0) -> None:
    """Open the link in the user's browser once the server answers /health; say so when no browser exists."""
    import time
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    if not webbrowser.open(link):
        click.echo("no browser found here: open the runs link above in one", err=True)


@click.command()
@options_from(
    STORAGE,
    ("--host", None, "Address to bind.", {"default": "127.0.0.1", "show_default": True}),
    ("--port", int, "Port to serve on.", {"default": 8080, "show_default": True}),
)
@user_errors
def dashboard(storage: str | None, host: str, port: int) -> None:
    """Open optuna-dashboard on the sweep's studies (pip install 'mbgd[dashboard]')."""
    import importlib.util

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise click.ClickException(
            "optuna-dashboard is not installed: pip install 'mbgd[dashboard]' (or optuna-dashboard==0.21.0)"
        )
    from mbgd.core.config import redact
    from mbgd.studies.storage import default_storage, open_storage

    url = storage or default_storage()
    check(url, OPTUNA_STORAGE)
    opened = open_storage(url)
    from optuna_dashboard import run_server

    imports_done()  # it serves until stopped: the collector back on (mbgd.runtime.processes)
    click.echo(f"optuna-dashboard on {redact(url)}: http://{host}:{port}/")
    run_server(opened, host=host, port=port)
