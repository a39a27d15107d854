"""Scale-out and faults with real processes: several workers on one study (sqlite here, PostgreSQL and an
MLflow server in CI), kill -9 of a worker or of the whole sweep followed by a rerun, and SIGINT/SIGTERM."""

import collections
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STATE = optuna.trial.TrialState


def sweep_command(*args: str) -> list[str]:
    return [str(BIN / "mbgd"), "sweep", "--seeds", "1", *args]


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A command in its own process group, so that a test can signal it and all its workers."""
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str]):
    """start(command); its process group killed on the way out should it still run (a wait that failed)."""
    process = start(command, env)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def stop_with(process: subprocess.Popen, sig) -> str:
    """Send the signal and wait for the command to end; returns its stderr."""
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    return stderr


def states(storage: str, study_name: str) -> collections.Counter:
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return collections.Counter()
    return collections.Counter(t.state for t in study.get_trials(deepcopy=False))


def wait_for(condition, *, timeout_s: float = 240, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def worker_pids(parent_pid: int) -> list[int]:
    """The sweep's worker processes (multiprocessing's spawned children, not its resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and "spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def just_started(storage: str) -> list[optuna.trial.FrozenTrial]:
    """The study's RUNNING trials that started under half a second ago. A trial of the fixture's 400 epochs
    trains for over a second, so a kill or signal sent now finds it in flight, never in the gap between a told
    population and the next ask (where a test that only saw RUNNING trials a moment before was flaky)."""
    study = optuna.load_study(study_name="faults-b1", storage=storage)
    now = datetime.datetime.now()  # Optuna stores naive local start times
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(STATE.RUNNING,))
        if (now - t.datetime_start).total_seconds() < 0.5
    ]


def training_worker(storage: str, pids: list[int]) -> int | None:
    """A worker pid whose trials of the study have just started, if any."""
    holders = {t.user_attrs.get("worker", {}).get("pid") for t in just_started(storage)}
    return next((pid for pid in pids if pid in holders), None)


def running_runs(client: MlflowClient, experiment_ids: list[str]) -> list[str]:
    return [
        r.info.run_name
        for r in client.search_runs(experiment_ids, max_results=1000)
        if r.info.status == "RUNNING"
    ]


def test_three_workers_on_postgres_and_an_mlflow_server(
    fresh_postgres_url: str, mlflow_server_uri: str, mlflow_experiment: str, tmp_path: Path
) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server_uri}
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    args = sweep_command(
        "--workers",
        "3",
        "--batch-sizes",
        "1,10",
        "--n-trials",
        "12",
        "--population",
        "2",
        "--epochs",
        "5",
        "--lr-max",
        "0.05",  # no trial diverges, so every loss curve has all 6 points
        "--storage",
        fresh_postgres_url,
        "--experiment",
        mlflow_experiment,
        "--name",
        "scale",
    )
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "worker" not in result.stderr, result.stderr[-3000:]
    password = fresh_postgres_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in result.stdout + result.stderr

    pids = set()
    for batch_size in (1, 10):
        study = optuna.load_study(study_name=f"scale-b{batch_size}", storage=fresh_postgres_url)
        trials = study.get_trials(deepcopy=False)
        assert sum(t.state == STATE.COMPLETE for t in trials) == 12
        assert not [t for t in trials if t.state == STATE.RUNNING]
        pids |= {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) >= 2, "the trials should come from several workers"

    client = MlflowClient(mlflow_server_uri)  # the REST API of the server
    experiment = client.get_experiment_by_name(mlflow_experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    (parent,) = [r for r in runs if r.info.run_name == "sweep-scale"]
    assert parent.info.status == "FINISHED"
    assert password not in str(parent.data.params) + str(parent.data.tags)
    assert parent.data.params["storage"].startswith("postgresql+psycopg2://mbgd:***@")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trial_runs = [
        r for r in children if "trial" in r.data.params
    ]  # beside them: a best-b<B> run per batch size
    assert sorted((r.data.params["study_name"], int(r.data.params["trial"])) for r in trial_runs) == sorted(
        (f"scale-b{b}", t.number)
        for b in (1, 10)
        for t in optuna.load_study(study_name=f"scale-b{b}", storage=fresh_postgres_url).trials
        if t.state == STATE.COMPLETE
    )
    for run in trial_runs:
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == list(range(6))


@pytest.fixture
def local_sweep(tracking_store: str, tmp_path: Path):
    """A sweep long enough to be interrupted, on the embedded stores of a temporary folder."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = sweep_command(
        "--batch-sizes",
        "1",
        "--n-trials",
        "40",
        "--population",
        "2",
        "--epochs",
        "400",
        "--name",
        "faults",
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_store}
    return args, env, storage


def test_kill_9_of_one_worker_loses_nothing_and_the_rerun_adds_no_trial(local_sweep) -> None:
    args, env, storage = local_sweep
    process = start([*args, "--workers", "3"], env)
    try:
        wait_for(lambda: states(storage, "faults-b1")[STATE.COMPLETE] >= 4, what="the first trials")
        wait_for(lambda: len(worker_pids(process.pid)) == 3, what="three workers")
        # Kill a worker while it trains, so that it leaves trials in flight.
        victim: list[int] = []
        wait_for(
            lambda: victim.append(training_worker(storage, worker_pids(process.pid)) or 0) or victim[-1],
            what="a worker with trials in flight",
        )
        os.kill(victim[-1], signal.SIGKILL)
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr[-3000:]
    assert "exited with signal SIGKILL; the other workers finished its trials" in stderr
    counts = states(storage, "faults-b1")
    assert counts[STATE.COMPLETE] == 40
    assert counts[STATE.RUNNING] == 0
    study = optuna.load_study(study_name="faults-b1", storage=storage)
    failed = [t for t in study.trials if t.state == STATE.FAIL]
    assert (
        failed
    )  # the killed worker's trials (failed by pid or, if it came first, by Optuna's heartbeat check)

    rerun = subprocess.run(
        [*args, "--workers", "3"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert states(storage, "faults-b1") == counts
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert running_runs(client, ["0"]) == []


def test_kill_9_of_the_whole_sweep_then_a_rerun_finishes_it_and_ends_the_orphans(local_sweep) -> None:
    args, env, storage = local_sweep
    process = start([*args, "--workers", "2"], env)
    try:
        wait_for(lambda: states(storage, "faults-b1")[STATE.COMPLETE] >= 4, what="the first trials")
        wait_for(lambda: just_started(storage), what="a trial just started")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = states(storage, "faults-b1")
    assert before[STATE.RUNNING] >= 1
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert "sweep-faults" in running_runs(client, ["0"])  # (a trial's run being logged may be RUNNING too)

    rerun = subprocess.run(
        [*args, "--workers", "2"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = states(storage, "faults-b1")
    assert after[STATE.COMPLETE] == 40
    assert after[STATE.RUNNING] == 0
    assert after[STATE.FAIL] >= before[STATE.RUNNING]  # the killed trials, failed and their budget retried
    runs = {r.info.run_id: r for r in client.search_runs(["0"], max_results=1000)}
    sweeps = sorted(
        (r.info.start_time, r.info.status) for r in runs.values() if r.info.run_name == "sweep-faults"
    )
    assert [status for _, status in sweeps] == ["KILLED", "FINISHED"]
    assert running_runs(client, ["0"]) == []


@pytest.mark.parametrize(("sig", "code", "workers"), [(signal.SIGTERM, 143, "2"), (signal.SIGINT, 130, "1")])
def test_a_signal_to_the_sweep_ends_its_runs_killed_and_its_trials_failed(
    local_sweep, sig, code, workers
) -> None:
    args, env, storage = local_sweep
    with running([*args, "--workers", workers], env) as process:
        wait_for(lambda: states(storage, "faults-b1")[STATE.COMPLETE] >= 2, what="the first trials")
        wait_for(lambda: just_started(storage), what="a trial just started")
        stderr = stop_with(process, sig)
    assert process.returncode == code, stderr[-3000:]
    message = [line for line in stderr.splitlines() if line.startswith("mbgd:")]
    assert len(message) == 1, stderr[-3000:]
    assert "marked KILLED" in message[0], stderr[-3000:]
    assert "Traceback" not in stderr
    counts = states(storage, "faults-b1")
    assert counts[STATE.RUNNING] == 0
    assert counts[STATE.FAIL] >= 1
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    (sweep_run,) = [r for r in client.search_runs(["0"]) if r.info.run_name == "sweep-faults"]
    assert sweep_run.info.status == "KILLED"
    assert running_runs(client, ["0"]) == []


@pytest.mark.parametrize("to_group", [False, True], ids=["to-the-sweep", "ctrl-c-to-the-group"])
def test_ctrl_c_with_the_trial_run_helper_leaves_every_written_trial_run_once(
    tracking_store, tmp_path, to_group
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    # 48 trials: the sweep writes its trial runs through the helper process
    # (mbgd.pipelines.trial_run_writer.HELPER_FROM_TRIALS)
    args = sweep_command(
        "--batch-sizes", "1", "--n-trials", "48", "--population", "2", "--epochs", "40", "--name", "helper"
    )
    process = start(args, {**os.environ, "MLFLOW_TRACKING_URI": tracking_store})
    try:
        wait_for(lambda: states(storage, "helper-b1")[STATE.COMPLETE] >= 6, what="the first trials")
        (helper,) = worker_pids(process.pid)
        if to_group:  # a terminal's Ctrl-C reaches the helper too, which goes on writing what it was handed
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert "trial-run writer" not in stderr, stderr[-3000:]
    wait_for(
        lambda: (
            not Path(f"/proc/{helper}").exists() or "Z" in Path(f"/proc/{helper}/stat").read_text().split()[2]
        ),
        timeout_s=30,
        what="the helper to end",
    )
    study = optuna.load_study(study_name="helper-b1", storage=storage)
    told = {t.number for t in study.trials if t.state == STATE.COMPLETE}
    client = MlflowClient(tracking_store)
    assert running_runs(client, ["0"]) == []
    trial_numbers = [
        int(r.data.params["trial"])
        for r in client.search_runs(["0"], max_results=1000)
        if "trial" in r.data.params
    ]
    assert len(trial_numbers) == len(set(trial_numbers))  # none twice
    assert set(trial_numbers) <= told
    assert len(trial_numbers) >= len(told) - 2  # all but, at most, the population told as the signal came


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_train_ends_its_runs_killed(tracking_store: str, sig, code) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_store}
    train = [str(BIN / "mbgd"), "train", "--batch-size", "1", "--epochs", "100000", "--compare-with", ""]
    with running(train, env) as process:
        client = MlflowClient(tracking_store)
        wait_for(lambda: running_runs(client, ["0"]) == ["sgd-b1"], what="the training run")
        time.sleep(1)
        stderr = stop_with(process, sig)
    assert process.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    (run,) = client.search_runs(["0"])
    assert run.info.status == "KILLED"


def guarantees_broken(
    storage: str, tracking_uri: str, name: str, batch_sizes, n_trials: int, *, faults: bool
) -> list[str]:
    """What breaks the sweep's guarantees, [] if nothing: per batch size exactly n_trials COMPLETE trials,
    none RUNNING or enqueued, no FAIL trial unless a fault made it; exactly one FINISHED child run per
    COMPLETE trial, none for another trial, and no RUNNING run."""
    broken = []
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(["0"], max_results=5000)
    if running := [r.info.run_name for r in runs if r.info.status == "RUNNING"]:
        broken.append(f"RUNNING runs {running}")
    for batch_size in batch_sizes:
        study_name = f"{name}-b{batch_size}"
        counts = states(storage, study_name)
        if counts[STATE.COMPLETE] != n_trials or counts[STATE.RUNNING] or counts[STATE.WAITING]:
            broken.append(f"{study_name}: {dict((s.name, n) for s, n in counts.items())}")
        if counts[STATE.FAIL] and not faults:
            broken.append(f"{study_name}: {counts[STATE.FAIL]} FAIL trials without a fault")
        complete = {
            t.number
            for t in optuna.load_study(study_name=study_name, storage=storage).trials
            if t.state == STATE.COMPLETE
        }
        finished = collections.Counter(
            int(r.data.params["trial"])
            for r in runs
            if r.data.params.get("study_name") == study_name
            and "trial" in r.data.params
            and r.info.status == "FINISHED"
        )
        if set(finished) != complete or any(n != 1 for n in finished.values()):
            missing, twice = sorted(complete - set(finished)), sorted(k for k, n in finished.items() if n > 1)
            broken.append(
                f"{study_name}: runs missing {missing}, twice {twice}, extra "
                f"{sorted(set(finished) - complete)}"
            )
    return broken


def test_eight_workers_of_population_four_end_at_exactly_n_trials_with_one_run_each(
    tracking_store: str, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = sweep_command(
        "--workers",
        "8",
        "--population",
        "4",
        "--batch-sizes",
        "1,10",
        "--n-trials",
        "24",
        "--epochs",
        "5",
        "--scan",
        "16",
        "--tuning-cost-seeds",
        "0",
        "--name",
        "exact",
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_store}
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "worker" not in result.stderr, result.stderr[-3000:]
    assert guarantees_broken(storage, tracking_store, "exact", (1, 10), 24, faults=False) == []
    study = optuna.load_study(study_name="exact-b1", storage=storage)
    assert len({t.user_attrs["worker"]["pid"] for t in study.trials}) >= 2, (
        "the trials should come from several workers"
    )
