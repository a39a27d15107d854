"""Trial runs as README describes them: `loss` at step = epoch, 0..epochs; and a writer that takes over from a
dead helper leaves one run per trial, whatever the helper had written before it died. Deterministic: the dead
helper is a stand-in, not a process killed at a hoped-for moment."""

import queue
import threading
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient

from mbgd.core.train import History
from mbgd.pipelines import trial_run_writer
from mbgd.pipelines.trial_run_writer import TrialRunWriter
from mbgd.pipelines.trial_runs import from_told_trial, write
from mbgd.studies.sweep import TrialRecord
from test_trial_runs import check_written, trial_runs


@pytest.fixture
def parent(tracking_store: str) -> tuple[MlflowClient, str, str]:
    client = MlflowClient(tracking_store)
    return client, "0", client.create_run("0", run_name="sweep").info.run_id


def loss_history(client: MlflowClient, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))


def test_a_trial_runs_loss_is_logged_at_steps_0_to_epochs(parent) -> None:
    client, experiment_id, parent_id = parent
    epochs = 3
    losses = [599.0, 153.0, 37.5, 9.3]  # before each of 3 epochs, and after the last: epochs + 1 values
    history = History(lr=0.1, batch_size=20, updates_per_epoch=5, samples_per_epoch=100, epoch_losses=losses)
    record = TrialRecord(number=2, lr=0.1, value=1.5, state="COMPLETE", history=history)
    trial_run = from_told_trial(
        SimpleNamespace(experiment_id=experiment_id, run_id=parent_id),
        20,
        "s-b20",
        record,
        n=100,
        dtype="float32",
    )
    run_id = write(client, trial_run)
    assert loss_history(client, run_id) == list(zip(range(epochs + 1), losses, strict=True))
    run = client.get_run(run_id)
    assert run.info.run_name == "b20-trial2-lr0.1"
    assert run.data.params == {"lr": "0.1", "batch_size": "20", "trial": "2", "study_name": "s-b20"}
    assert run.data.metrics["objective"] == 1.5
    assert run.data.metrics["trial"] == 2
    assert run.data.metrics["diverged"] == 0
    assert run.data.tags["optuna.state"] == "COMPLETE"
    assert run.data.tags["regime"] == "mini-batch"
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize(
    ("state", "status"), [("COMPLETE", "FINISHED"), ("PRUNED", "KILLED"), ("FAIL", "FAILED")]
)
def test_a_trial_runs_status_follows_its_optuna_state(state: str, status: str) -> None:
    history = History(
        lr=0.01, batch_size=1, updates_per_epoch=100, samples_per_epoch=100, epoch_losses=[1.0, 0.5]
    )
    record = TrialRecord(number=0, lr=0.01, value=0.5, state=state, history=history)
    parent = SimpleNamespace(experiment_id="0", run_id="p")
    assert from_told_trial(parent, 1, "s-b1", record, n=100, dtype="float32").status == status


class DeadHelper:
    """What the writer sees of a helper killed by SIGKILL: a broken pipe and exit code -9."""

    pid = 12345
    exitcode = -9

    def join(self, timeout=None) -> None:
        pass


class BrokenPipe:
    def send(self, message) -> None:
        raise BrokenPipeError

    def poll(self) -> bool:
        return False

    def recv(self):
        raise EOFError

    def close(self) -> None:
        pass


def with_a_dead_helper(writer: TrialRunWriter) -> TrialRunWriter:
    """The writer as it is once its helper was killed: both pipes broken, its sender thread running."""
    writer._process, writer._runs_out, writer._confirmations = DeadHelper(), BrokenPipe(), BrokenPipe()
    writer._outbox = queue.SimpleQueue()
    writer._sender = threading.Thread(target=writer._send_all, daemon=True)
    writer._sender.start()
    return writer


def test_taking_over_from_a_dead_helper_leaves_one_run_per_trial(parent, capsys) -> None:
    client, experiment_id, parent_id = parent
    finished, half_written, unwritten = trial_runs(experiment_id, parent_id, range(3))
    write(client, finished)  # the helper wrote it, then died before confirming
    partial = client.create_run(experiment_id, tags=half_written.tags, run_name=half_written.name).info.run_id
    writer = with_a_dead_helper(TrialRunWriter(helper=False))
    writer._unconfirmed = {run.key: run for run in (finished, half_written, unwritten)}

    run_ids = writer.close()

    check_written(client, [finished, half_written, unwritten], run_ids)  # each trial once: no duplicate
    assert client.get_run(partial).info.lifecycle_stage == "deleted"
    assert writer._unconfirmed == {}
    assert writer.helper_pid is None
    assert (
        "the trial-run writer process ended (killed by SIGKILL); this process writes the trial runs from now "
        "on, 3 it had not confirmed first" in capsys.readouterr().err
    )


def test_a_submit_to_a_dead_helper_is_written_here_once(parent, capsys) -> None:
    client, experiment_id, parent_id = parent
    runs_ = trial_runs(experiment_id, parent_id, range(4))
    write(client, runs_[0])  # written by the helper, unconfirmed when it died
    writer = with_a_dead_helper(TrialRunWriter(helper=False))
    writer._unconfirmed = {runs_[0].key: runs_[0]}
    writer.submit(runs_[1:3])  # the pipe is broken: take over
    writer.submit(runs_[3:])  # from now on written here
    check_written(client, runs_, writer.close())
    assert "killed by SIGKILL" in capsys.readouterr().err


def test_helper_threshold_is_48_trials() -> None:
    assert trial_run_writer.HELPER_FROM_TRIALS == 48  # README: "from 48 trials on"
