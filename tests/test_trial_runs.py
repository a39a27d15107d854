"""Trial runs written by the helper process: every run once, with its values, whatever happens to either
process."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from mbgd.pipelines.trial_run_writer import TrialRunWriter
from mbgd.pipelines.trial_runs import TrialRun, write_once
from mbgd.runtime.processes import signals_deferred

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}


def trial_runs(experiment_id: str, parent_id: str, numbers: range, study: str = "s-b1") -> list[TrialRun]:
    return [
        TrialRun(
            study_name=study,
            number=n,
            experiment_id=experiment_id,
            name=f"b1-trial{n}",
            tags={MLFLOW_PARENT_RUN_ID: parent_id, "optuna.state": "PRUNED" if n % 3 == 2 else "COMPLETE"},
            params={"lr": str(0.01 * (n + 1)), "batch_size": "1", "trial": str(n), "study_name": study},
            losses=[100.0 / (epoch + 1) + n for epoch in range(5)],
            results={"objective": float(n) / 10, "trial": float(n)},
            status=STATUS["PRUNED" if n % 3 == 2 else "COMPLETE"],
        )
        for n in numbers
    ]


def check_written(client: MlflowClient, runs: list[TrialRun], run_ids: dict | None = None) -> None:
    """Each run exactly once, ended with its status, with its params and loss series."""
    found = client.search_runs(
        [runs[0].experiment_id], filter_string="params.study_name = 's-b1'", max_results=1000
    )
    by_trial = {}
    for run in found:
        assert run.data.params["trial"] not in by_trial, f"trial {run.data.params['trial']} written twice"
        by_trial[run.data.params["trial"]] = run
    assert set(by_trial) == {str(run.number) for run in runs}
    for expected in runs:
        run = by_trial[str(expected.number)]
        assert run.info.status == expected.status
        assert run.data.params["lr"] == expected.params["lr"]
        assert run.data.tags[MLFLOW_PARENT_RUN_ID] == expected.tags[MLFLOW_PARENT_RUN_ID]
        assert run.data.metrics["objective"] == pytest.approx(expected.results["objective"])
        losses = [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
        ]
        assert losses == pytest.approx(expected.losses)
        if run_ids is not None:
            assert run_ids[expected.key] == run.info.run_id


@pytest.fixture
def parent(tracking_store: str) -> tuple[MlflowClient, str, str]:
    client = MlflowClient(tracking_store)
    run = client.create_run("0", run_name="sweep")
    return client, "0", run.info.run_id


@pytest.mark.parametrize("helper", [False, True], ids=["written-here", "written-by-helper"])
def test_every_run_submitted_is_written_once_and_confirmed(parent, helper: bool) -> None:
    client, experiment_id, parent_id = parent
    runs = trial_runs(experiment_id, parent_id, range(8))
    writer = TrialRunWriter(helper=helper)
    assert (writer.helper_pid is not None) == helper
    writer.submit(runs[:5])
    writer.submit(runs[5:])
    run_ids = writer.flush()
    assert len(run_ids) == 8
    check_written(client, runs, run_ids)
    writer.close()
    assert writer.helper_pid is None


@pytest.mark.parametrize("confirmed_first", [True, False], ids=["after-a-flush", "while-writing"])
def test_runs_a_killed_helper_did_not_confirm_are_written_here(parent, capsys, confirmed_first: bool) -> None:
    client, experiment_id, parent_id = parent
    runs = trial_runs(experiment_id, parent_id, range(9))
    writer = TrialRunWriter(helper=True)
    writer.submit(runs[:4])
    if confirmed_first:
        writer.flush()
    else:  # killed with runs in its hands, maybe in the middle of one
        time.sleep(1.5)
    os.kill(writer.helper_pid, signal.SIGKILL)
    writer._process.join(30)
    writer.submit(runs[4:7])
    writer.submit(runs[7:])
    run_ids = writer.close()
    check_written(client, runs, run_ids)
    assert "the trial-run writer process ended (killed by SIGKILL)" in capsys.readouterr().err


def test_write_once_keeps_a_finished_run_and_replaces_a_half_written_one(parent) -> None:
    client, experiment_id, parent_id = parent
    finished, half_written = trial_runs(experiment_id, parent_id, range(2))
    kept = write_once(client, finished)
    # a writer killed between creating a run and ending it leaves it RUNNING without values
    partial = client.create_run(experiment_id, tags=half_written.tags, run_name=half_written.name).info.run_id
    assert write_once(client, finished) == kept
    replacement = write_once(client, half_written)
    assert replacement != partial
    assert client.get_run(partial).info.lifecycle_stage == "deleted"
    assert client.get_run(partial).info.status == "KILLED"
    check_written(client, [finished, half_written], {finished.key: kept, half_written.key: replacement})


def test_a_signal_during_a_hand_over_is_handled_after_it() -> None:
    reached = []

    def hand_over() -> None:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            reached.append("the end of the block")

    with pytest.raises(KeyboardInterrupt):
        hand_over()
    assert reached == ["the end of the block"]


SWEEP_PROCESS = """
import os, signal, sys, time
from mbgd.pipelines.trial_run_writer import TrialRunWriter
sys.path.insert(0, {tests!r})
from test_trial_runs import trial_runs

if __name__ == "__main__":
    writer = TrialRunWriter(helper=True)
    writer.submit(trial_runs("0", {parent_id!r}, range(12)))
    while writer.batches_handed_over < 1:  # in the helper's pipe (submit hands over from a thread)
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_runs_handed_to_the_helper_are_written_after_the_sweep_is_killed(parent, tmp_path: Path) -> None:
    client, experiment_id, parent_id = parent
    script = tmp_path / "killed_sweep.py"
    script.write_text(
        textwrap.dedent(SWEEP_PROCESS.format(tests=str(Path(__file__).parent), parent_id=parent_id))
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = client.search_runs(
            [experiment_id], filter_string="params.study_name = 's-b1'", max_results=100
        )
        if len(finished) == 12 and all(r.info.status != "RUNNING" for r in finished):
            break
        time.sleep(0.5)
    check_written(client, trial_runs(experiment_id, parent_id, range(12)))


def test_a_rerun_writes_the_run_of_a_told_trial_that_has_none(tracking_store: str) -> None:
    """A process killed between telling a trial and writing its run: the rerun writes it from the trial's
    values."""
    import optuna
    from click.testing import CliRunner

    from mbgd.cli.main import main

    args = [
        "sweep",
        "--batch-sizes",
        "10",
        "--n-trials",
        "4",
        "--population",
        "2",
        "--seeds",
        "1",
        "--epochs",
        "3",
        "--scan",
        "16",
        "--tuning-cost-seeds",
        "0",
        "--name",
        "fill",
    ]
    assert CliRunner().invoke(main, args).exit_code == 0
    client = MlflowClient(tracking_store)
    trial_filter = "params.study_name = 'fill-b10' and params.trial != ''"  # not the best-b10 run beside them
    by_trial = {int(r.data.params["trial"]): r for r in client.search_runs(["0"], trial_filter)}
    lost = by_trial[2]
    told = optuna.load_study(study_name="fill-b10", storage="sqlite:///optuna.db").trials
    assert {t.number: t.user_attrs["mlflow_run_id"] for t in told} == {
        n: r.info.run_id for n, r in by_trial.items()
    }
    client.delete_run(lost.info.run_id)

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    found = client.search_runs(["0"], trial_filter, max_results=100)
    assert sorted(int(r.data.params["trial"]) for r in found) == [0, 1, 2, 3]
    assert {r.info.status for r in found} == {"FINISHED"}
    (refilled,) = [r for r in found if r.data.params["trial"] == "2"]
    sweeps = {r.info.run_name: r for r in client.search_runs(["0"], "attributes.run_name = 'sweep-fill'")}
    assert (
        refilled.info.run_id != lost.info.run_id
    )  # the id trial 2 points at is the deleted run's, kept by MLflow
    assert refilled.info.run_name == lost.info.run_name
    assert refilled.data.params == lost.data.params
    assert refilled.data.metrics == lost.data.metrics
    assert [m.value for m in client.get_metric_history(refilled.info.run_id, "loss")] == [
        m.value for m in client.get_metric_history(lost.info.run_id, "loss")
    ]
    # the rerun's sweep run
    assert refilled.data.tags["mlflow.parentRunId"] != lost.data.tags["mlflow.parentRunId"]
    assert len(sweeps) == 1
    study = optuna.load_study(study_name="fill-b10", storage="sqlite:///optuna.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4


def test_a_scaling_rerun_writes_the_run_of_a_told_trial_that_has_none(tracking_store: str) -> None:
    """The same for mbgd scaling, whose trial runs carry their study's order and regime in their names."""
    from click.testing import CliRunner

    from mbgd.cli.main import main

    args = [
        *("scaling", "--batch-sizes", "10", "--n-trials", "3", "--population", "3", "--seeds", "1"),
        *("--epochs", "5", "--scan", "16", "--order", "fixed", "--targets", "clean", "--name", "fill"),
    ]
    assert CliRunner().invoke(main, args).exit_code == 0
    client = MlflowClient(tracking_store)
    trial_filter = "params.study_name = 'fill-fixed-interpolation-b10' and params.trial != ''"
    lost = {int(r.data.params["trial"]): r for r in client.search_runs(["0"], trial_filter)}[1]
    client.delete_run(lost.info.run_id)

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    found = client.search_runs(["0"], trial_filter, max_results=100)
    assert sorted(int(r.data.params["trial"]) for r in found) == [0, 1, 2]
    (refilled,) = [r for r in found if r.data.params["trial"] == "1"]
    assert (
        refilled.info.run_id != lost.info.run_id
    )  # the id trial 2 points at is the deleted run's, kept by MLflow
    assert refilled.info.run_name == lost.info.run_name
    assert lost.info.run_name.startswith("fixed-interpolation-b10-trial1-")
    assert refilled.data.params == lost.data.params
    assert refilled.data.metrics == lost.data.metrics
    assert refilled.info.status == "FINISHED"


TINY_SWEEP = "sweep --batch-sizes 1,10 --n-trials 4 --population 2 --seeds 1 --epochs 3 --scan 16".split()


def trials_and_their_runs(client: MlflowClient) -> list[tuple]:
    """(study, trial number, the trial's mlflow_run_id, its run's study_name and trial params, parent)."""
    import optuna

    rows = []
    for batch_size in (1, 10):
        study = optuna.load_study(study_name=f"runs-b{batch_size}", storage="sqlite:///optuna.db")
        for trial in study.trials:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            rows.append(
                (
                    study.study_name,
                    trial.number,
                    run.data.params["study_name"],
                    int(run.data.params["trial"]),
                    run.info.lifecycle_stage,
                    run.data.tags[MLFLOW_PARENT_RUN_ID],
                )
            )
    return rows


@pytest.mark.parametrize("public", [False, True], ids=["fast-path", "public-api"])
def test_each_trial_points_at_its_mlflow_run(tracking_store: str, monkeypatch, public: bool) -> None:
    from click.testing import CliRunner

    from mbgd.cli.main import main

    if public:  # MLflow chooses the ids: the runs are written before their trials are told
        monkeypatch.setenv("MBGD_PUBLIC_API", "1")
    result = CliRunner().invoke(main, [*TINY_SWEEP, "--tuning-cost-seeds", "0", "--name", "runs"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_store)
    (sweep,) = client.search_runs(["0"], "attributes.run_name = 'sweep-runs'")
    rows = trials_and_their_runs(client)
    assert rows == [(s, n, s, n, "active", sweep.info.run_id) for s, n, *_ in rows]
    assert len(rows) == 8
    trial_runs = client.search_runs(["0"], "params.trial != ''", max_results=100)
    assert len(trial_runs) == 8  # and no other: none written twice


def test_a_trial_whose_run_was_never_handed_over_gets_it_back_filled_under_the_id_it_points_at(
    tracking_store: str, monkeypatch
) -> None:
    from click.testing import CliRunner

    from mbgd.cli.main import main
    from mbgd.pipelines import trial_run_writer

    # as if the process writing them had died: no trial run is written until the sweep back-fills them
    monkeypatch.setattr(trial_run_writer.TrialRunWriter, "submit", lambda self, runs: None)
    result = CliRunner().invoke(main, [*TINY_SWEEP, "--tuning-cost-seeds", "0", "--name", "runs"])
    assert result.exit_code == 0, result.output
    rows = trials_and_their_runs(MlflowClient(tracking_store))
    assert len(rows) == 8
    assert all(row[0] == row[2] and row[1] == row[3] and row[4] == "active" for row in rows)


def test_on_the_public_api_a_run_written_before_the_tell_of_a_trial_not_told_is_deleted(
    parent, monkeypatch
) -> None:
    from mbgd.core.history import History
    from mbgd.pipelines.trial_runs import OnTrialRuns
    from mbgd.studies.sweep import TrialRecord
    from mbgd.tracking.records import RunRef

    monkeypatch.setenv("MBGD_PUBLIC_API", "1")
    client, experiment_id, parent_id = parent
    handed_over = []
    on_trials = OnTrialRuns(
        handed_over.extend, RunRef(parent_id, experiment_id), client, n=100, dtype="float32"
    )
    records = [
        TrialRecord(
            n, 0.1, 1.0, "COMPLETE", History(lr=0.1, batch_size=1, updates_per_epoch=1, samples_per_epoch=1)
        )
        for n in (0, 1)
    ]
    ids = on_trials.run_ids(1, "s-b1", records)
    assert [client.get_run(i).data.params["trial"] for i in ids] == ["0", "1"]
    on_trials(1, "s-b1", records[1:])  # trial 0 was failed by another worker meanwhile: not told
    assert handed_over == []  # written already
    assert [client.get_run(i).info.lifecycle_stage for i in ids] == ["deleted", "active"]


def test_on_the_public_api_runs_written_for_a_population_whose_tell_never_came_are_deleted(
    parent, monkeypatch, tmp_path: Path
) -> None:
    import optuna

    from checks import small_sweep
    from mbgd.core.data import load_data
    from mbgd.pipelines.trial_runs import OnTrialRuns
    from mbgd.studies import protocol
    from mbgd.studies.storage import open_storage
    from mbgd.studies.sweep import run_study
    from mbgd.tracking.records import RunRef

    monkeypatch.setenv("MBGD_PUBLIC_API", "1")
    client, experiment_id, parent_id = parent

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C between writing the runs and telling their trials

    monkeypatch.setattr(protocol, "tell", stopped)
    config = small_sweep(tmp_path)
    on_trials = OnTrialRuns(
        lambda runs: None, RunRef(parent_id, experiment_id), client, n=100, dtype="float32"
    )
    with pytest.raises(KeyboardInterrupt):
        run_study(
            config,
            load_data(config.train.data, config.train.seed),
            10,
            open_storage(config.storage),
            on_trials=on_trials,
        )
    written = client.search_runs([experiment_id], "params.trial != ''", run_view_type=3)  # active or deleted
    assert len(written) == config.population  # they were written before the tell...
    assert {r.info.lifecycle_stage for r in written} == {"deleted"}  # ...and deleted when it did not come
    study = optuna.load_study(study_name="mbgd-sweep-b10", storage=config.storage)
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.FAIL}
