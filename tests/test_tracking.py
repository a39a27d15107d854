"""The tracking layer: what made each run, the fitted models (and the sweep's and scaling's best-lr models,
registered), CSV datasets, experiments made by several workers."""

import getpass
import json
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.data.pandas_dataset  # noqa: F401  imported here: the warnings check below is about the call alone
import mlflow.pyfunc
import optuna
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

import mbgd
from mbgd.cli.main import main
from mbgd.core.config import DataSpec, TrainConfig
from mbgd.core.data import load_data
from mbgd.core.train import fit
from mbgd.tracking import models as tracking_models
from mbgd.tracking import runs as tracking

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TWO_FEATURES = PROJECT_ROOT / "tests" / "data" / "two_features.csv"


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def runs_by_name(tracking_store: str) -> dict:
    client = MlflowClient(tracking_store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {run.info.run_name: run for run in client.search_runs(experiments, max_results=1000)}


def is_a_commit_of_this_repository(commit: str) -> bool:
    """HEAD or one of its ancestors (others may commit while the tests run)."""
    check = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, "HEAD"], cwd=PROJECT_ROOT, check=False
    )
    return len(commit) == 40 and check.returncode == 0


def assert_provenance(run) -> None:
    tags = run.data.tags
    assert tags["mlflow.user"] == getpass.getuser()
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == sys.argv[0]  # the main file of the process, pytest's here
    assert is_a_commit_of_this_repository(tags["mlflow.source.git.commit"])
    assert tags["mbgd.version"] == mbgd.__version__
    assert tags["mbgd.torch_version"] == torch.__version__
    assert tags["mbgd.mlflow_version"] == mlflow.__version__
    assert tags["mbgd.optuna_version"] == optuna.__version__


def test_train_run_and_its_child_carry_source_user_git_and_version_tags(tracking_store: str) -> None:
    invoke("train", "--epochs", "1", "--compare-with", "1")
    runs = runs_by_name(tracking_store)
    assert set(runs) == {"mini-batch-b20", "sgd-b1"}
    for run in runs.values():
        assert_provenance(run)


def test_sweep_trial_runs_carry_source_user_git_and_version_tags(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the helper process writes the trial runs
    monkeypatch.setattr("mbgd.pipelines.trial_run_writer.HELPER_FROM_TRIALS", 1)
    invoke(
        "sweep",
        "--batch-sizes",
        "1",
        "--n-trials",
        "2",
        "--population",
        "2",
        "--seeds",
        "1",
        "--epochs",
        "2",
        "--name",
        "prov",
    )
    runs = runs_by_name(tracking_store)
    trials = [run for run in runs.values() if "trial" in run.data.params]
    assert len(trials) == 2
    for run in [runs["sweep-prov"], *trials]:
        assert_provenance(run)


def test_provenance_is_resolved_once_per_process(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking.context import registry

    calls = []
    resolve = registry.resolve_tags
    monkeypatch.setattr(registry, "resolve_tags", lambda *args: calls.append(1) or resolve(*args))
    tracking.provenance_tags.cache_clear()
    client = tracking.client()
    with tracking.run_scope(client, run_name="one") as one:
        with tracking.run_scope(client, run_name="two", parent=one):
            pass
    tracking.log_finished_run(
        client, one.experiment_id, "three", tags={}, params={}, metrics=[], status="FINISHED"
    )
    assert len(calls) == 1
    assert all("mlflow.source.name" in run.data.tags for run in runs_by_name(tracking_store).values())


def test_an_experiment_another_worker_creates_meanwhile_is_used(tracking_store: str) -> None:
    client = tracking.client()
    other_worker = MlflowClient(tracking_store)
    look_up = client.get_experiment_by_name
    created = []

    def first_look_up_misses(name: str):
        if not created:  # the other worker creates it between this look-up and our create
            created.append(other_worker.create_experiment(name))
            return None
        return look_up(name)

    client.get_experiment_by_name = first_look_up_misses
    assert tracking.experiment_id_for(client, "shared") == created[0]


def test_csv_dataset_is_logged_with_its_column_names_and_no_source_warning(tracking_store: str) -> None:
    data = load_data(DataSpec(csv=str(TWO_FEATURES)), seed=0)
    client = tracking.client()
    run_id = client.create_run("0").info.run_id
    with warnings.catch_warnings():
        # e.g. "The specified dataset source can be interpreted in multiple ways"
        warnings.simplefilter("error")
        tracking_models.log_dataset(client, run_id, data)
    (dataset_input,) = client.get_run(run_id).inputs.dataset_inputs
    dataset = dataset_input.dataset
    columns = json.loads(dataset.schema)["mlflow_colspec"]
    assert [column["name"] for column in columns] == ["a", "b", "y"]
    assert dataset.source_type == "local"
    assert json.loads(dataset.source) == {"uri": str(TWO_FEATURES)}
    assert json.loads(dataset.profile)["num_rows"] == len(TWO_FEATURES.read_text().splitlines()) - 1


def test_train_and_compared_runs_log_models_that_predict_w_x_plus_b(tracking_store: str) -> None:
    invoke(
        "train",
        "--data",
        str(TWO_FEATURES),
        "--lr",
        "0.01",
        "--epochs",
        "3",
        "--batch-size",
        "2",
        "--compare-with",
        "1",
    )
    runs = runs_by_name(tracking_store)
    assert len(runs) == 2
    # columns taken by name, not position
    inputs = pd.DataFrame({"b": [1.0, -2.5, 0.0], "a": [3.0, 0.5, 0.0]})
    for run in runs.values():
        metrics = run.data.metrics
        expected = [
            a * metrics["w_a"] + b * metrics["w_b"] + metrics["b"]
            for a, b in zip(inputs["a"], inputs["b"], strict=True)
        ]
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
        assert list(model.predict(inputs)) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert [spec.name for spec in model.metadata.get_input_schema().inputs] == ["a", "b"]
        assert list(model.input_example.columns) == ["a", "b"]
        folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model"))
        pins = [f"{name}=={version(name)}" for name in ("mlflow", "numpy", "pandas")]
        assert (folder / "requirements.txt").read_text().split() == pins


def test_a_diverged_run_logs_no_model(tracking_store: str) -> None:
    invoke("train", "--lr", "1000", "--epochs", "3", "--compare-with", "")
    (run,) = runs_by_name(tracking_store).values()
    assert run.data.metrics["diverged"] == 1
    assert logged_models_of(run.info.run_id) == []


def logged_models_of(run_id: str) -> list:
    """The LoggedModels whose source is the run, found as an MLflow user would."""
    return mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")


def test_a_run_s_model_is_a_logged_model_with_the_run_s_params_and_results(tracking_store: str) -> None:
    invoke("train", "--epochs", "2", "--compare-with", "")
    (run,) = runs_by_name(tracking_store).values()
    (model,) = logged_models_of(run.info.run_id)
    assert (model.name, str(model.status)) == ("model", "READY")
    assert model.params == run.data.params
    linked = {m.key: m.value for m in model.metrics}
    assert linked == {k: run.data.metrics[k] for k in ("final_loss", "train_seconds", "diverged", "w", "b")}
    assert all(m.run_id == run.info.run_id for m in model.metrics)
    assert [
        o.model_id for o in MlflowClient(tracking_store).get_run(run.info.run_id).outputs.model_outputs
    ] == [model.model_id]
    assert mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model").model_id == model.model_id
    assert mlflow.models.get_model_info(f"models:/{model.model_id}").run_id == run.info.run_id


def test_registered_versions_come_from_the_run_and_load(tracking_store: str) -> None:
    client = tracking.client()
    run_id = client.create_run("0").info.run_id
    model_uri = tracking_models.log_model(client, run_id, [2.0], -1.0, ["x"])
    assert model_uri == f"models:/{logged_models_of(run_id)[0].model_id}"
    first = tracking_models.register_model(client, model_uri, "line", tags={"batch_size": "20"})
    second = tracking_models.register_model(client, model_uri, "line")
    assert (str(first.version), str(second.version)) == ("1", "2")
    assert first.run_id == run_id
    assert client.get_model_version("line", "1").tags == {"batch_size": "20"}
    model = mlflow.pyfunc.load_model("models:/line/2")
    assert list(model.predict(pd.DataFrame({"x": [0.0, 3.0]}))) == [-1.0, 5.0]


@pytest.mark.slow
def test_mlflow_models_predict_serves_the_logged_model(tracking_store: str, tmp_path: Path) -> None:
    invoke("train", "--epochs", "2", "--compare-with", "")
    (run,) = runs_by_name(tracking_store).values()
    (tmp_path / "in.csv").write_text("x\n1.5\n-2\n")
    result = subprocess.run(
        [
            str(BIN / "mlflow"),
            "models",
            "predict",
            "-m",
            f"runs:/{run.info.run_id}/model",
            "-i",
            "in.csv",
            "-t",
            "csv",
            "-o",
            "out.json",
            "--env-manager",
            "local",
        ],
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_store},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    w, b = run.data.metrics["w"], run.data.metrics["b"]
    predictions = json.loads((tmp_path / "out.json").read_text())["predictions"]
    assert predictions == pytest.approx([1.5 * w + b, -2 * w + b], rel=1e-12)


TINY_STUDY = tuple("--batch-sizes 1,2 --n-trials 2 --population 2 --seeds 1 --epochs 2 --scan 8".split())
TINY_SWEEP = (*TINY_STUDY, "--tuning-cost-seeds", "0")
INPUTS = pd.DataFrame({"x": [-5.0, 0.3, 4.9]})


def independently_fitted_prediction(**train) -> list[float]:
    """w·x + b on INPUTS with the w and b of mbgd.core.train.fit at the tutorial's settings changed by
    `train`."""
    config = replace(TrainConfig(), **train)
    history = fit(config, load_data(config.data, config.seed))
    return [x * history.w[0] + history.b for x in INPUTS["x"]]


def test_sweep_logs_each_batch_sizes_best_lr_model_that_predicts_like_an_independent_fit(
    tracking_store: str,
) -> None:
    invoke("sweep", *TINY_SWEEP, "--name", "models")
    runs = runs_by_name(tracking_store)
    sweep_run = runs["sweep-models"]
    assert len(runs) == 1 + 2 * 2 + 2  # the sweep, its trials, a best-b<B> run per batch size
    listed = mlflow.search_logged_models(
        output_format="list"
    )  # the experiment's models, as a user lists them
    assert sorted(m.source_run_id for m in listed) == sorted(runs[f"best-b{b}"].info.run_id for b in (1, 2))
    for batch_size in (1, 2):
        best = runs[f"best-b{batch_size}"]
        assert best.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
        assert best.info.status == "FINISHED"
        lr = float(best.data.params["lr"])
        assert lr == sweep_run.data.metrics[f"best_lr_b{batch_size}"]
        assert (best.data.params["batch_size"], best.data.params["seed"]) == (str(batch_size), "42")
        model_uri = sweep_run.data.tags[f"best_model_b{batch_size}"]
        assert model_uri == f"models:/{logged_models_of(best.info.run_id)[0].model_id}"
        expected = independently_fitted_prediction(batch_size=batch_size, lr=lr, epochs=2)
        assert list(mlflow.pyfunc.load_model(model_uri).predict(INPUTS)) == pytest.approx(
            expected, rel=1e-12, abs=1e-12
        )


def test_register_model_makes_one_version_per_batch_size_tagged_with_what_made_it(
    tracking_store: str,
) -> None:
    result = invoke("sweep", *TINY_SWEEP, "--name", "reg", "--register-model", "line")
    runs = runs_by_name(tracking_store)
    versions = {
        v.tags["batch_size"]: v for v in MlflowClient(tracking_store).search_model_versions("name = 'line'")
    }
    assert set(versions) == {"1", "2"}
    printed = [line for line in result.output.splitlines() if line.startswith("registered ")]
    assert len(printed) == 2
    for batch_size, model_version in versions.items():
        best = runs[f"best-b{batch_size}"]
        assert model_version.run_id == best.info.run_id
        assert model_version.source == f"models:/{logged_models_of(best.info.run_id)[0].model_id}"
        assert model_version.tags == {
            "batch_size": batch_size,
            "lr": best.data.params["lr"],
            "seed": "42",
            "objective": "auc",
            "study_name": f"reg-b{batch_size}",
        }
        assert float(model_version.tags["lr"]) == runs["sweep-reg"].data.metrics[f"best_lr_b{batch_size}"]
        uri = f"models:/line/{model_version.version}"
        assert runs["sweep-reg"].data.tags[f"registered_model_b{batch_size}"] == uri
        line = f"registered line version {model_version.version}: batch size {batch_size}, lr "
        assert any(printed_line.startswith(line) for printed_line in printed)
        assert len(mlflow.pyfunc.load_model(uri).predict(INPUTS)) == 3


def test_registered_versions_carry_aliases_and_a_rerun_moves_them_instead_of_adding_versions(
    tracking_store: str,
) -> None:
    invoke("sweep", *TINY_SWEEP, "--name", "reg", "--register-model", "line")
    client = MlflowClient(tracking_store)
    versions = {v.tags["batch_size"]: v.version for v in client.search_model_versions("name = 'line'")}
    assert {b: client.get_model_version_by_alias("line", f"b{b}").version for b in versions} == versions
    sweep = runs_by_name(tracking_store)["sweep-reg"].data.metrics
    lowest = min(versions, key=lambda b: sweep[f"best_value_b{b}"])
    assert client.get_model_version_by_alias("line", "best").version == versions[lowest]
    model = client.get_registered_model("line")
    assert f"@best, the batch size whose tuned objective is lowest (b{lowest})" in model.description
    assert len(mlflow.pyfunc.load_model("models:/line@b2").predict(INPUTS)) == 3

    result = invoke("sweep", *TINY_SWEEP, "--name", "reg", "--register-model", "line")  # the same sweep again
    assert "registered line version" in result.output
    again = {v.tags["batch_size"]: v.version for v in client.search_model_versions("name = 'line'")}
    assert again == versions  # no version beside the same model
    assert client.get_model_version_by_alias("line", "b1").version == versions["1"]


@pytest.mark.parametrize("command", ["sweep", "report"])
@pytest.mark.parametrize("name", ["a/b", "x:y", " ", "../up"])
def test_a_bad_register_model_name_is_a_one_line_usage_error_before_any_run(
    tracking_store: str, command: str, name: str
) -> None:
    result = CliRunner().invoke(main, [command, "--register-model", name])
    assert result.exit_code == 2, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "register_model" in error_lines[0]
    assert MlflowClient(tracking_store).search_runs(["0"]) == []


def test_scaling_logs_each_best_lr_model_that_predicts_like_an_independent_fit(tracking_store: str) -> None:
    invoke(
        "scaling",
        *TINY_STUDY,
        "--name",
        "sc",
        "--output-dir",
        "",
    )
    runs = runs_by_name(tracking_store)
    parent = runs["scaling-sc"]
    client = MlflowClient(tracking_store)
    for order in (
        "fixed",
        "shuffled",
    ):  # noise-free targets: every batch size reaches the target within 2 epochs
        assert {f"{order}-interpolation-best-b1", f"{order}-interpolation-best-b2"} <= set(runs)
    for order in ("fixed", "shuffled"):
        for targets, regime in (("clean", "interpolation"), ("noisy", "noisy")):
            key = f"{order}-{regime}"
            best_lrs = {
                m.step: m.value for m in client.get_metric_history(parent.info.run_id, f"best_lr/{key}")
            }
            # A study in which no lr reached the target has no best lr (no metric), and so no best model.
            assert {name for name in runs if name.startswith(f"{key}-best-b")} == {
                f"{key}-best-b{b}" for b in best_lrs
            }
            assert {tag for tag in parent.data.tags if tag.startswith(f"best_model/{key}/")} == {
                f"best_model/{key}/b{b}" for b in best_lrs
            }
            for batch_size in best_lrs:
                best = runs[f"{key}-best-b{batch_size}"]
                assert best.data.tags["mlflow.parentRunId"] == parent.info.run_id
                lr = float(best.data.params["lr"])
                assert lr == best_lrs[batch_size]
                model_uri = parent.data.tags[f"best_model/{key}/b{batch_size}"]
                assert model_uri == f"models:/{logged_models_of(best.info.run_id)[0].model_id}"
                expected = independently_fitted_prediction(
                    batch_size=batch_size,
                    lr=lr,
                    epochs=2,
                    shuffle=order == "shuffled",
                    data=DataSpec(targets=targets),
                )
                predicted = mlflow.pyfunc.load_model(model_uri).predict(INPUTS)
                assert list(predicted) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_sqlite_tracking_store_syncs_at_checkpoints_and_other_files_keep_their_setting(
    tracking_store: str, tmp_path: Path
) -> None:
    import sqlalchemy

    def synchronous(path: Path) -> int:
        engine = sqlalchemy.create_engine(f"sqlite:///{path}")
        with engine.connect() as connection:
            value = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        engine.dispose()
        return value

    tracking.client()
    assert synchronous(tmp_path / "mlflow.db") == 1  # NORMAL: with a write-ahead log, a sync per checkpoint
    assert synchronous(tmp_path / "other.db") == 2  # FULL, sqlite's default: not the store, not touched


@pytest.mark.parametrize("target_name", ["y", "price"])
def test_a_logged_model_s_signature_names_the_features_and_the_target(
    tracking_store: str, target_name
) -> None:
    from mbgd.tracking import models

    client = MlflowClient(tracking_store)
    run_id = client.create_run("0").info.run_id
    uri = models.log_model(client, run_id, [2.0, -1.0], 0.5, ("x", "z"), target_name=target_name)
    signature = mlflow.models.get_model_info(uri).signature
    assert signature.inputs.input_names() == ["x", "z"]
    assert signature.outputs.input_names() == [target_name]
    predicted = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame([[1.0, 3.0]], columns=["x", "z"]))
    assert [float(v) for v in predicted] == [2.0 * 1.0 - 1.0 * 3.0 + 0.5]


def test_each_loss_is_stamped_with_when_its_epoch_ended() -> None:
    from mbgd.core.history import History
    from mbgd.tracking.metric_values import history_metrics

    history = History(lr=0.1, batch_size=2, updates_per_epoch=2, samples_per_epoch=4)
    history.epoch_losses, history.epoch_seconds = [4.0, 2.0, 1.0], [0.0, 0.5, 1.25]
    history.batch_losses = [3.0, 2.5, 1.5, 1.2]  # two updates in each of the two epochs
    history.started_at, history.w, history.b = 1_000.0, [1.0], 0.5
    stamped = {(m.key, m.step): m.timestamp for m in history_metrics(history, weight_names=["x"])}
    assert [stamped["loss", i] for i in range(3)] == [1_000_000, 1_000_500, 1_001_250]
    assert [stamped["batch_loss", i] for i in range(4)] == [1_000_500, 1_000_500, 1_001_250, 1_001_250]


def test_a_trained_run_s_losses_are_stamped_within_its_training(tracking_store: str) -> None:
    invoke("train", "--epochs", "5", "--compare-with", "")
    client = MlflowClient(tracking_store)
    (run,) = client.search_runs(["0"])
    stamps = [
        m.timestamp for m in sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
    ]
    assert len(stamps) == 6
    assert stamps == sorted(stamps)
    assert run.info.start_time - 5_000 <= stamps[0] <= stamps[-1] <= run.info.end_time
