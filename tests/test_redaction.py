"""Passwords never reach MLflow params, tags, errors or printed output: every path that writes a storage or
tracking URL out, checked without any server (README, "Many workers, many machines")."""

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from mbgd.cli import main as cli
from mbgd.core.config import ConfigError, SweepConfig, TrainConfig, redact
from mbgd.core.data import load_data
from mbgd.pipelines import sweep as pipeline_sweep
from mbgd.studies import storage as studies
from mbgd.tracking import runs as tracking
from mbgd.tracking import ui_links
from mbgd.tracking.store import StoreUnavailable, check

SECRET = "s3cret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg2://mbgd:s3cret@dbhost/optuna", "postgresql+psycopg2://mbgd:***@dbhost/optuna"),
        (
            "postgresql+psycopg2://mbgd:s3cret@dbhost:5433/optuna",
            "postgresql+psycopg2://mbgd:***@dbhost:5433/optuna",
        ),
        (
            "https://alice:s3cret@mlflow.example.org:8443/x?y=1",
            "https://alice:***@mlflow.example.org:8443/x?y=1",
        ),
        ("mysql://u:p@ss:w0rd@db/optuna", "mysql://u:***@db/optuna"),  # an @ inside the password
        ("postgresql://u:s3cret@[::1]:5432/optuna", "postgresql://u:***@[::1]:5432/optuna"),
        ("postgresql://u:s3cret@DBHost/optuna", "postgresql://u:***@DBHost/optuna"),  # the host as written
    ],
)
def test_redact_replaces_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///optuna.db",
        "sqlite:////abs/optuna.db",
        "http://127.0.0.1:5000",
        "http://token@host:5000",
        "postgresql://mbgd@dbhost/optuna",
        "not a url",
        "",
    ],
)
def test_redact_leaves_urls_without_a_password_as_they_are(url: str) -> None:
    assert redact(url) == url


def test_an_optuna_storage_that_cannot_open_is_an_error_without_its_password() -> None:
    with pytest.raises(ConfigError) as error:
        studies.open_storage(f"mysql+nodriver://alice:{SECRET}@127.0.0.1/optuna")
    assert SECRET not in str(error.value)
    assert "mysql+nodriver://alice:***@127.0.0.1/optuna" in str(error.value)


def test_an_unreachable_tracking_database_is_an_error_without_its_password() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(StoreUnavailable) as error:
        check(f"postgresql://alice:{SECRET}@127.0.0.1:{port}/mlflow")
    assert SECRET not in str(error.value)
    assert f"postgresql://alice:***@127.0.0.1:{port}/mlflow (MLFLOW_TRACKING_URI)" in str(error.value)


def test_the_sweeps_storage_param_carries_no_password(tracking_store: str, tmp_path, monkeypatch) -> None:
    """The sweep's params name its storage with the password as ***: the storage is a local file standing in
    for the PostgreSQL URL the user gave; the sweep stops once its params are logged."""
    secret_url = f"postgresql+psycopg2://mbgd:{SECRET}@dbhost/optuna"
    real_open = studies.open_storage
    monkeypatch.setattr(studies, "open_storage", lambda url: real_open(f"sqlite:///{tmp_path / 'optuna.db'}"))
    monkeypatch.setattr("mbgd.tracking.store.check", lambda url, store: None)  # no server to probe either
    logged = []
    real_log_values = tracking.log_values

    class Logged(Exception):
        pass

    def log_values(client, run_id, params=None, **kwargs):
        if params and "storage" in params:
            logged.append(params)
            raise Logged
        return real_log_values(client, run_id, params=params, **kwargs)

    monkeypatch.setattr(tracking, "log_values", log_values)
    config = SweepConfig(
        train=TrainConfig(epochs=2), n_trials=1, seeds=1, batch_sizes=(10,), storage=secret_url
    )
    with pytest.raises(Logged):
        pipeline_sweep.tracked_sweep(config, load_data(config.train.data, config.train.seed))
    assert logged[0]["storage"] == "postgresql+psycopg2://mbgd:***@dbhost/optuna"
    everything = MlflowClient(tracking_store).search_runs(["0"])
    assert all(SECRET not in str(r.data.params) + str(r.data.tags) for r in everything)


def test_mbgd_ui_on_a_server_names_it_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://alice:{SECRET}@mlflow.example.org:8443/")
    result = CliRunner().invoke(cli.main, ["ui"])
    assert result.exit_code == 2
    assert "open https://mlflow.example.org:8443 in a browser" in result.output
    assert SECRET not in result.output
    assert "alice" not in result.output


def test_mbgd_dashboard_prints_its_storage_without_the_password(
    monkeypatch: pytest.MonkeyPatch, optuna_dashboard: list
) -> None:
    monkeypatch.setattr(studies, "open_storage", lambda url: object())
    monkeypatch.setattr("mbgd.cli.servers.check", lambda url, store: None)  # no server to probe either
    storage = f"postgresql+psycopg2://mbgd:{SECRET}@dbhost/optuna"
    result = CliRunner().invoke(cli.main, ["dashboard", "--storage", storage])
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == "optuna-dashboard on postgresql+psycopg2://mbgd:***@dbhost/optuna: http://127.0.0.1:8080/\n"
    )
    assert optuna_dashboard == [("127.0.0.1", 8080)]


@pytest.mark.parametrize(
    ("uri", "base"),
    [
        (
            f"https://alice:{SECRET}@mlflow.example.org:8443/tracking/",
            "https://mlflow.example.org:8443/tracking",
        ),
        (f"http://alice:{SECRET}@127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "http://127.0.0.1:5000"),  # served by mbgd ui on its default address
        ("file:///tmp/mlruns", "http://127.0.0.1:5000"),
    ],
)
def test_printed_links_never_carry_credentials(uri: str, base: str) -> None:
    assert ui_links.ui_base(uri) == base
    link = ui_links.runs_link(uri, "3", "abc")
    assert link == f"{base}/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert SECRET not in ui_links.charts_link(uri, "3", "key")
