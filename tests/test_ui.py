"""`mbgd ui --open` and `mbgd dashboard`, without starting the real servers."""

import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from mbgd.cli import main as cli
from mbgd.cli import servers as cli_servers
from mbgd.tracking.ui_links import charts_link, runs_link


def test_links_open_on_the_training_runs_and_their_charts() -> None:
    assert (
        runs_link("http://127.0.0.1:5000", "7")
        == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert charts_link("http://127.0.0.1:5000", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning&compareRunsMode=CHART"
    )
    assert runs_link("sqlite:///mlflow.db", "3", "abc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_open_waits_for_the_server_then_opens_the_link(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda link: opened.append(link) or False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        cli_servers.open_when_up(f"{base}/#/experiments/0/runs", base, timeout_s=10)
    finally:
        server.shutdown()
    assert opened == [f"{base}/#/experiments/0/runs"]
    assert "no browser found" in capsys.readouterr().err


def test_dashboard_without_optuna_dashboard_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    result = CliRunner().invoke(cli.main, ["dashboard"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: optuna-dashboard is not installed: pip install 'mbgd[dashboard]' "
        "(or optuna-dashboard==0.21.0)"
    )


def test_dashboard_serves_the_sweep_storage(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls = []
    fake = types.ModuleType("optuna_dashboard")
    fake.run_server = lambda storage, host, port: calls.append((storage, host, port))
    monkeypatch.setitem(sys.modules, "optuna_dashboard", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = CliRunner().invoke(cli.main, ["dashboard", "--port", "8099"])
    assert result.exit_code == 0, result.output
    assert f"sqlite:///{tmp_path / 'optuna.db'}" in result.output
    ((storage, host, port),) = calls
    assert (host, port) == ("127.0.0.1", 8099)
    assert storage.get_all_studies() == []


def test_dashboard_refuses_an_unusable_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna_dashboard", types.ModuleType("optuna_dashboard"))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    result = CliRunner().invoke(cli.main, ["dashboard", "--storage", "nosuchdb://x"])
    assert result.exit_code == 2
    assert "cannot open Optuna storage" in result.output
