"""A store that fails, before or during a command, ends it with one line that names the store and says what to
do, exit code 1, no traceback, and no MLflow run or Optuna trial left RUNNING where the store still takes
writes (issue 26): every command that opens a store, against each store error a test can make without a
server. The unreachable tracking server and unusable sqlite path are tests/test_tracking_store.py's."""

from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner, Result
from mlflow import MlflowClient

from checks import free_port, http_server, run_mbgd
from mbgd.cli.main import main
from mbgd.tracking import runs as tracking

# One study of batch size 10, two trials: each command as small as it goes.
SMALL_STUDY = ("--batch-sizes", "10", "--n-trials", "2", "--population", "2", "--seeds", "1", "--epochs", "2")
SMALL = {
    "train": ("--epochs", "1", "--compare-with", ""),
    "sweep": (*SMALL_STUDY, "--scan", "8", "--tuning-cost-seeds", "0"),
    "report": (*SMALL_STUDY, "--scan", "8", "--tuning-cost-seeds", "0", "--output-dir", "results"),
    "scaling": (*SMALL_STUDY, "--scan", "8", "--order", "fixed", "--targets", "clean", "--output-dir", ""),
    "ui": (),
    "dashboard": (),
}
COMMANDS = ["train", "sweep", "report", "scaling"]
STUDY_COMMANDS = ["sweep", "report", "scaling"]
GARBAGE = b"this is not a database\n" * 200
SECRET = "s3cret"
AGAIN = "check it and run the command again, or"


def invoke(command: str, *args: str) -> Result:
    return CliRunner().invoke(main, [command, *SMALL[command], *args])


def store_error(result: Result, start: str, end: str) -> str:
    """Exit 1, no exception escaped the command (so no traceback), and standard error ending in one `Error:`
    line that starts with `start` and ends with `end` (what to do); returns that line."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    line = result.stderr.splitlines()[-1]
    assert line.startswith(f"Error: {start}"), line
    assert line.endswith(end), line
    return line


def runs_by_status(tracking_store: str) -> dict[str, int]:
    """How many runs the tracking store holds in each status, over every experiment."""
    client = MlflowClient(tracking_store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    counts: dict[str, int] = {}
    for run in client.search_runs(experiments, max_results=1000):
        counts[run.info.status] = counts.get(run.info.status, 0) + 1
    return counts


def running_trials(storage: Path) -> int:
    """The RUNNING trials of every study in the sqlite storage (none without the file)."""
    if not storage.exists():
        return 0
    opened = optuna.storages.RDBStorage(f"sqlite:///{storage}")
    try:
        return sum(
            len(opened.get_all_trials(study._study_id, states=(optuna.trial.TrialState.RUNNING,)))
            for study in opened.get_all_studies()
        )
    finally:
        opened.engine.dispose()


@pytest.mark.parametrize("command", [*COMMANDS, "ui"])
def test_a_tracking_store_that_is_not_a_database_is_one_line_before_any_work(
    tracking_store: str, command: str
) -> None:
    path = Path(tracking_store.removeprefix("sqlite:///"))
    path.write_bytes(GARBAGE)
    result = invoke(command)
    store_error(
        result,
        f"cannot use the MLflow tracking store {tracking_store} (MLFLOW_TRACKING_URI): "
        f"{path} is not a SQLite database (file is not a database)",
        "; move the file aside to start a new one, or set MLFLOW_TRACKING_URI to another store",
    )
    assert path.read_bytes() == GARBAGE  # left as it was


def test_mbgd_on_a_tracking_store_that_is_not_a_database_says_one_line_at_once(tmp_path: Path) -> None:
    # the console script: MLflow would retry the file for a minute, logging each retry, then print a traceback
    (tmp_path / "mlflow.db").write_bytes(GARBAGE)
    result = run_mbgd("train", f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, *SMALL["train"])
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.splitlines()
    assert "is not a SQLite database" in line
    assert result.stdout == ""


@pytest.mark.parametrize("command", [*STUDY_COMMANDS, "dashboard"])
def test_an_optuna_storage_that_is_not_a_database_is_one_line_and_exit_1_before_any_run(
    tracking_store: str, tmp_path: Path, command: str, optuna_dashboard: list
) -> None:
    storage = tmp_path / "optuna.db"  # the default storage, beside the tracking store
    storage.write_bytes(GARBAGE)
    result = invoke(command)
    store_error(
        result,
        f"cannot use the Optuna storage sqlite:///{storage} (--storage): {storage} is not a SQLite database",
        "; move the file aside to start a new one, or give another --storage",
    )
    assert runs_by_status(tracking_store) == {}
    assert optuna_dashboard == []  # not served


@pytest.mark.parametrize("command", [*STUDY_COMMANDS, "dashboard"])
def test_an_unreachable_optuna_storage_is_one_line_without_its_password_and_exit_1_before_any_run(
    tracking_store: str, command: str, optuna_dashboard: list
) -> None:
    port = free_port()  # nothing listens there
    result = invoke(command, "--storage", f"postgresql+psycopg2://alice:{SECRET}@127.0.0.1:{port}/optuna")
    store_error(
        result,
        f"cannot use the Optuna storage postgresql+psycopg2://alice:***@127.0.0.1:{port}/optuna "
        "(--storage): ",
        "; check that it is running and reachable, or give another --storage",
    )
    assert SECRET not in result.output
    assert runs_by_status(tracking_store) == {}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_artifact_location_that_cannot_be_written_is_one_line_and_leaves_nothing_running(
    tracking_store: str, tmp_path: Path, command: str
) -> None:
    blocker = tmp_path / "a-file"  # where the artifacts' folder should be: no one can make folders in it
    blocker.write_text("")
    MlflowClient(tracking_store).create_experiment("blocked", artifact_location=str(blocker / "artifacts"))
    result = invoke(command, "--experiment", "blocked")
    line = store_error(
        result,
        f"the MLflow artifact store {blocker}",
        f"; {AGAIN} use another --experiment",
    )
    assert "(the experiment's artifact location) failed: [Errno 20] Not a directory" in line
    statuses = runs_by_status(tracking_store)
    assert statuses.get("FAILED"), statuses
    assert "RUNNING" not in statuses
    assert running_trials(tmp_path / "optuna.db") == 0


@pytest.mark.parametrize("command", ["sweep", "report"])
def test_an_unreachable_model_registry_is_one_line_before_any_run(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    registry = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry)
    result = invoke(command, "--register-model", "line")
    store_error(
        result,
        f"cannot use the MLflow model registry {registry} (MLFLOW_REGISTRY_URI): ",
        "; check that it is running and reachable, or set MLFLOW_REGISTRY_URI to another one",
    )
    assert runs_by_status(tracking_store) == {}


@pytest.mark.parametrize("command", ["sweep", "report"])
def test_a_model_registry_that_fails_while_registering_is_one_line_and_leaves_nothing_running(
    tracking_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    with http_server(200) as registry:  # answers GET /health, refuses MLflow's calls
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry)
        result = invoke(command, "--register-model", "line")
    store_error(
        result,
        f"the MLflow model registry {registry} (MLFLOW_REGISTRY_URI) failed: API request to endpoint ",
        f"; {AGAIN} set MLFLOW_REGISTRY_URI to another one",
    )
    statuses = runs_by_status(tracking_store)
    assert statuses.get("FAILED"), statuses  # the sweep's run (and the report's); the trials' are FINISHED
    assert "RUNNING" not in statuses
    assert running_trials(tmp_path / "optuna.db") == 0


@pytest.mark.parametrize("command", COMMANDS)
def test_a_tracking_server_that_fails_its_calls_is_one_line_and_leaves_no_trial_running(
    tracking_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    with http_server(200) as server:  # answers GET /health, refuses MLflow's calls
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
        result = invoke(command)
    store_error(
        result,
        f"the MLflow tracking store {server} (MLFLOW_TRACKING_URI) failed: API request to endpoint ",
        f"; {AGAIN} set MLFLOW_TRACKING_URI to another store",
    )
    assert running_trials(tmp_path / "optuna.db") == 0


def corrupt_once(monkeypatch: pytest.MonkeyPatch, path: Path, *, when_params_have: str = "") -> None:
    """Overwrite the sqlite file with garbage at the command's first logging of values (with params that have
    the key `when_params_have`, when given): a store that breaks in the middle of the command."""
    real_log_values = tracking.log_values
    done = []

    def log_values(client, run_id, *, params=None, **kwargs):
        if not done and (not when_params_have or when_params_have in (params or {})):
            done.append(path)
            path.write_bytes(GARBAGE)
            for leftover in path.parent.glob(f"{path.name}-*"):  # the write-ahead log and its index
                leftover.unlink()
        return real_log_values(client, run_id, params=params, **kwargs)

    monkeypatch.setattr(tracking, "log_values", log_values)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_tracking_store_that_breaks_during_the_command_is_one_line(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    corrupt_once(monkeypatch, Path(tracking_store.removeprefix("sqlite:///")))
    result = invoke(command)
    store_error(
        result,
        f"the MLflow tracking store {tracking_store} (MLFLOW_TRACKING_URI) failed: (sqlite3.DatabaseError) ",
        f"; {AGAIN} set MLFLOW_TRACKING_URI to another store",
    )


@pytest.mark.parametrize("command", STUDY_COMMANDS)
def test_an_optuna_storage_that_breaks_during_the_command_is_one_line_and_its_run_failed(
    tracking_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    storage = tmp_path / "optuna.db"
    corrupt_once(monkeypatch, storage, when_params_have="storage")  # once the studies' run has its params
    result = invoke(command)
    store_error(
        result,
        f"the Optuna storage sqlite:///{storage} (--storage) failed: (sqlite3.DatabaseError) ",
        f"; {AGAIN} give another --storage",
    )
    statuses = runs_by_status(tracking_store)
    assert statuses.get("FAILED"), statuses
    assert "RUNNING" not in statuses


def test_an_error_of_mbgd_s_own_making_is_not_blamed_on_the_store(tracking_store: str) -> None:
    """A param logged again with another value is refused by MLflow (INVALID_PARAMETER_VALUE): a bug of the
    caller's, which keeps its traceback rather than read as a failing store; a full temporary folder
    neither."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from mbgd.cli.exits import store_failure

    client = tracking.client()
    run_id = client.create_run("0").info.run_id
    tracking.log_values(client, run_id, params={"lr": "0.1"}, metrics=[])
    with pytest.raises(MlflowException, match="Changing param values is not allowed") as refused:
        tracking.log_values(client, run_id, params={"lr": "0.2"}, metrics=[])
    assert store_failure(refused.value, "") is None
    full = OSError(28, "No space left on device", str(Path(tempfile.gettempdir()) / "mbgd-figure-x"))
    assert store_failure(full, "") is None
