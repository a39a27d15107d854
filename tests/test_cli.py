"""The command line: tracked runs, presets, bad input, and a light start-up path."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from checks import assert_one_line_usage_error_and_no_run
from mbgd.cli.main import main

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def all_runs(client: MlflowClient):
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


def test_train_logs_the_run_its_children_figures_and_dataset(tracking_store: str) -> None:
    result = invoke("train", "--epochs", "3", "--compare-with", "1,10,20")
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_store)
    runs = {run.info.run_name: run for run in all_runs(client)}
    assert set(runs) == {"mini-batch-b20", "sgd-b1", "mini-batch-b10"}
    parent = runs["mini-batch-b20"]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["batch_size"] == "20"
    assert parent.data.params["lr"] == "0.1"
    assert parent.data.params["n_points"] == "100"
    assert parent.data.params["targets"] == "clean"
    assert parent.data.tags["regime"] == "mini-batch"
    assert parent.data.tags["dtype"] == "float32"
    assert "compared with 1 (sgd), 10 (mini-batch)" in parent.data.tags["mlflow.note.content"]
    assert len(client.get_metric_history(parent.info.run_id, "batch_loss")) == 5 * 3
    assert [m.step for m in client.get_metric_history(parent.info.run_id, "loss")] == [0, 1, 2, 3]
    assert parent.data.metrics["diverged"] == 0
    assert {"final_loss", "w", "b", "train_seconds", "compare/loss_b1", "compare/loss_b10"} <= set(
        parent.data.metrics
    )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"loss_curve.png", "comparison.png"} <= artifacts
    assert parent.inputs.dataset_inputs[0].dataset.name == "synthetic-line-n100"
    for name in ("sgd-b1", "mini-batch-b10"):
        child = runs[name]
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "loss_curve.png" in {a.path for a in client.list_artifacts(child.info.run_id)}
    assert len(client.get_metric_history(runs["sgd-b1"].info.run_id, "batch_loss")) == 100 * 3
    assert "batch size    20: final loss" in result.output
    assert f"#/experiments/0/runs/{parent.info.run_id}" in result.output


def test_compare_with_nothing_makes_no_child_runs(tracking_store: str) -> None:
    result = invoke("train", "--epochs", "1", "--compare-with", "", "--experiment", "solo")
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_store)
    (run,) = all_runs(client)
    assert client.get_experiment(run.info.experiment_id).name == "solo"
    assert "comparison.png" not in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_batch_larger_than_the_data_is_one_full_batch_and_noted(tracking_store: str) -> None:
    result = invoke("train", "--epochs", "2", "--batch-size", "500", "--compare-with", "")
    assert result.exit_code == 0, result.output
    (run,) = all_runs(MlflowClient(tracking_store))
    assert run.info.run_name == "full-batch-b500"
    assert "exceeds the 100 samples" in run.data.tags["note"]


def test_experiment_name_from_the_environment_is_honoured(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    assert invoke("train", "--epochs", "1", "--compare-with", "").exit_code == 0
    (run,) = all_runs(MlflowClient(tracking_store))
    assert MlflowClient(tracking_store).get_experiment(run.info.experiment_id).name == "from-env"


def test_preset_is_applied_and_command_line_overrides_it(tracking_store: str, tmp_path: Path) -> None:
    preset = tmp_path / "preset.toml"
    preset.write_text('epochs = 2\ndtype = "float64"\nlr = 0.05\ncompare_with = []\n')
    assert invoke("train", "--config", str(preset), "--dtype", "float32").exit_code == 0
    (run,) = all_runs(MlflowClient(tracking_store))
    assert run.data.params["epochs"] == "2"
    assert run.data.params["lr"] == "0.05"
    assert run.data.params["dtype"] == "float32"


def test_shipped_presets_load() -> None:
    from mbgd.core.config import build_train_run, load_preset

    presets = sorted((PROJECT_ROOT / "experiments").glob("*.toml"))
    assert presets
    for preset in presets:
        build_train_run(load_preset(preset))


def csv_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


BAD_INPUTS = [
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--batch-size", "-1"], "batch_size must be >= 1"),
    (["--batch-size", "abc"], "'abc' is not a valid integer"),
    (["--lr", "-1"], "lr must be a finite number > 0"),
    (["--lr", "0"], "lr must be a finite number > 0"),
    (["--lr", "nan"], "lr must be a finite number > 0"),
    (["--lr", "inf"], "lr must be a finite number > 0"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--dtype", "float16"], "'float16' is not one of"),
    (["--compare-with", "1,x"], "compare_with must be comma-separated integers"),
    (["--compare-with", "0"], "compare_with batch sizes must be >= 1"),
    (["--data", "{tmp}/missing.csv"], "does not exist"),
    (["--data", "{empty}"], "no data rows"),
    (["--data", "{text}"], "not numeric"),
    (["--data", "{good}", "--target", "z"], "no column 'z'"),
    (["--config", "{tmp}/missing.toml"], "does not exist"),
    (["--config", "{unknown_key}"], "unknown keys: learning_rate"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_a_one_line_usage_error_and_creates_no_run(
    tracking_store: str, tmp_path: Path, args: list[str], message: str
) -> None:
    unknown_key = tmp_path / "unknown.toml"
    unknown_key.write_text("learning_rate = 0.1\n")
    paths = {
        "tmp": str(tmp_path),
        "empty": csv_file(tmp_path, "empty.csv", ""),
        "text": csv_file(tmp_path, "text.csv", "x,y\n1,two\n"),
        "good": str(PROJECT_ROOT / "tests" / "data" / "two_features.csv"),
        "unknown_key": str(unknown_key),
    }
    result = invoke("train", *[arg.format(**paths) for arg in args])
    assert_one_line_usage_error_and_no_run(result, message, tracking_store)


def bad_study_inputs() -> list[tuple[str, list[str], str]]:
    """(command, arguments, what the error says), from tests/data/bad_study_inputs.txt."""
    text = (Path(__file__).parent / "data" / "bad_study_inputs.txt").read_text()
    rows = [line.split(" | ") for line in text.splitlines() if line and not line.startswith("#")]
    return [(command, shlex.split(args), message) for command, args, message in rows]


BAD_STUDY_INPUTS = bad_study_inputs()


@pytest.mark.parametrize(("command", "args", "message"), BAD_STUDY_INPUTS)
def test_bad_study_input_is_a_one_line_usage_error_and_creates_no_run(
    tracking_store: str, command: str, args: list[str], message: str
) -> None:
    result = invoke(command, *args)
    assert_one_line_usage_error_and_no_run(result, message, tracking_store)


def test_help_does_not_import_torch_or_mlflow() -> None:
    code = (
        "import sys\n"
        "from mbgd.cli.main import main\n"
        "for args in (['--help'], ['train', '--help'], ['ui', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'mlflow', 'optuna', 'matplotlib') if m in sys.modules))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "[]"
