"""`mbgd train`'s two halves: training in a child process forked at the start, MLflow in the command's own."""

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from mbgd.core.config import DataSpec, TrainConfig, TrainRun
from mbgd.core.data import load_data
from mbgd.core.train import fit
from mbgd.pipelines import train as pipeline_train
from mbgd.runtime.errors import WorkerError

TRAIN_RUN = TrainRun(TrainConfig(epochs=3, batch_size=20), compare_with=(1, 10))


def test_the_child_s_results_are_what_training_here_gives() -> None:
    child = pipeline_train.TrainInChild(TRAIN_RUN)
    try:
        record, results = child.data(), child.results()
    finally:
        child.close()
    data = load_data(DataSpec(), TRAIN_RUN.train.seed)
    assert record.n == 100
    assert record.x.tolist() == data.x.tolist()
    assert list(results.histories) == [20, 1, 10]
    for batch_size, history in results.histories.items():
        alone = fit(TRAIN_RUN.train.with_batch_size(batch_size), data)
        assert (history.epoch_losses, history.batch_losses, history.w, history.b) == (
            alone.epoch_losses,
            alone.batch_losses,
            alone.w,
            alone.b,
        )
        assert results.loss_curves[batch_size].startswith(b"\x89PNG")
    assert results.comparison.startswith(b"\x89PNG")


def test_a_child_that_dies_is_a_one_line_error_and_the_run_ends_failed(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_train, "compute_train", lambda train_run, data: os._exit(3))
    with pytest.raises(WorkerError, match=r"the training process ended \(exit code 3\) before it sent"):
        pipeline_train.tracked_train(TRAIN_RUN, compute=pipeline_train.TrainInChild(TRAIN_RUN))
    (run,) = MlflowClient(tracking_store).search_runs(["0"])
    assert (run.info.run_name, run.info.status) == ("mini-batch-b20", "FAILED")


def test_an_error_in_the_child_is_raised_here_before_any_run(tracking_store: str) -> None:
    from mbgd.core.config import ConfigError

    bad = TrainRun(TrainConfig(epochs=3, data=DataSpec(csv="missing.csv")), compare_with=())
    with pytest.raises(ConfigError, match="does not exist"):
        pipeline_train.tracked_train(bad, compute=pipeline_train.TrainInChild(bad))
    assert MlflowClient(tracking_store).search_runs(["0"]) == []


def test_the_command_s_own_process_never_imports_torch_or_matplotlib(tracking_store: str) -> None:
    code = (
        "import sys\n"
        "from mbgd.cli.main import main\n"
        "main(['train', '--epochs', '2'], standalone_mode=False)\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'mlflow') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "['mlflow']"
    runs = MlflowClient(tracking_store).search_runs(["0"])
    assert sorted(r.info.run_name for r in runs) == ["mini-batch-b10", "mini-batch-b20", "sgd-b1"]


def test_without_fork_the_command_trains_in_its_own_process(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    compute = pipeline_train.start_training(TRAIN_RUN)
    assert isinstance(compute, pipeline_train.TrainInProcess)
    outcome = pipeline_train.tracked_train(TRAIN_RUN, compute=compute)
    data = load_data(DataSpec(), TRAIN_RUN.train.seed)
    assert outcome.histories[1].epoch_losses == fit(TRAIN_RUN.train.with_batch_size(1), data).epoch_losses
    assert len(MlflowClient(tracking_store).search_runs(["0"])) == 3
