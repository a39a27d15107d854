"""`make soak`: the fault scenarios of README's "Faults lose nothing", each run N times with a random moment,
and one line per scenario with its pass count.

    .venv/bin/python benchmarks/soak.py --rounds 20

A round passes when the sweep ends as it should (exit code 0, or 130/143 for a signal) and, after a rerun
where the fault stopped the sweep, every guarantee holds (tests/test_scale_out.py's guarantees_broken):
exactly `--n-trials` COMPLETE trials per batch size, none RUNNING, exactly one FINISHED child run per
COMPLETE trial and no RUNNING run. Small on purpose (5 epochs, --scan 16, --tuning-cost-seeds 0, --seeds 1).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mbgd.pipelines import trial_run_writer
from test_scale_out import guarantees_broken, start, states, sweep_command, wait_for, worker_pids  # noqa: E402

BATCH_SIZES = (1, 10)
N_TRIALS = 16
SMALL = ("--epochs", "5", "--scan", "16", "--tuning-cost-seeds", "0", "--name", "soak")


def command(workers: int, population: int, batch_sizes=BATCH_SIZES, n_trials: int = N_TRIALS) -> list[str]:
    return sweep_command(
        "--workers",
        str(workers),
        "--population",
        str(population),
        "--batch-sizes",
        ",".join(map(str, batch_sizes)),
        "--n-trials",
        str(n_trials),
        *SMALL,
    )


def complete(storage: str, batch_sizes) -> int:
    import optuna

    return sum(states(storage, f"soak-b{b}")[optuna.trial.TrialState.COMPLETE] for b in batch_sizes)


def at_a_random_moment(storage: str, batch_sizes, n_trials: int, rng: random.Random) -> None:
    """Once a random number of the sweep's trials are COMPLETE, and a random fraction of a second later."""
    target = rng.randrange(len(batch_sizes) * n_trials)
    wait_for(lambda: complete(storage, batch_sizes) >= target, timeout_s=300, what=f"{target} trials")
    time.sleep(rng.uniform(0, 1))


def kill_a_worker(folder: Path, env: dict, rng: random.Random) -> list[str]:
    storage = f"sqlite:///{folder / 'optuna.db'}"
    process = start(command(8, 4), env)
    try:
        at_a_random_moment(storage, BATCH_SIZES, N_TRIALS, rng)
        pids = []
        wait_for(lambda: pids.extend(worker_pids(process.pid)) or pids, what="the workers")
        os.kill(rng.choice(pids), signal.SIGKILL)
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return expect(process.returncode, 0, stderr) or guarantees_broken(
        storage, env["MLFLOW_TRACKING_URI"], "soak", BATCH_SIZES, N_TRIALS, faults=True
    )


def kill_the_helper(folder: Path, env: dict, rng: random.Random) -> list[str]:
    storage = f"sqlite:///{folder / 'optuna.db'}"
    # one process writes its trial runs through the helper from here on
    n_trials = trial_run_writer.HELPER_FROM_TRIALS
    process = start(command(1, 4, (1,), n_trials), env)
    try:
        wait_for(lambda: worker_pids(process.pid), what="the helper")
        (helper,) = worker_pids(process.pid)
        at_a_random_moment(storage, (1,), n_trials, rng)
        os.kill(helper, signal.SIGKILL)
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return expect(process.returncode, 0, stderr) or guarantees_broken(
        storage, env["MLFLOW_TRACKING_URI"], "soak", (1,), n_trials, faults=True
    )


def stop_and_rerun(sig: signal.Signals, code: int, *, to_group: bool):
    def scenario(folder: Path, env: dict, rng: random.Random) -> list[str]:
        storage = f"sqlite:///{folder / 'optuna.db'}"
        process = start(command(8, 4), env)
        try:
            at_a_random_moment(storage, BATCH_SIZES, N_TRIALS, rng)
            if to_group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
            _, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        # kill -9 of the group ends the sweep at once; it may also have finished just before the signal
        broken = [] if sig == signal.SIGKILL else expect(process.returncode, code, stderr, finished_ok=True)
        rerun = subprocess.run(
            command(8, 4), env=env, capture_output=True, text=True, timeout=600, check=False
        )
        return [  # all of them: a stop that ends untidily may still leave the rerun exact
            *broken,
            *expect(rerun.returncode, 0, rerun.stderr),
            *guarantees_broken(
                storage, env["MLFLOW_TRACKING_URI"], "soak", BATCH_SIZES, N_TRIALS, faults=True
            ),
        ]

    return scenario


def expect(code: int, wanted: int, stderr: str, *, finished_ok: bool = False) -> list[str]:
    if code == wanted or (finished_ok and code == 0):
        return [] if "Traceback" not in stderr else [f"a traceback: {stderr[-4000:]}"]
    return [f"exit code {code}, not {wanted}: {stderr[-4000:]}"]


FAILED_ROUNDS = Path(tempfile.gettempdir(), "mbgd-soak-failed")

SCENARIOS = {
    "kill -9 of one worker (8 workers x population 4)": kill_a_worker,
    "kill -9 of the trial-run helper (1 process, 48 trials)": kill_the_helper,
    "kill -9 of the whole sweep, then a rerun": stop_and_rerun(signal.SIGKILL, -9, to_group=True),
    "SIGINT to the process group (Ctrl-C), then a rerun": stop_and_rerun(signal.SIGINT, 130, to_group=True),
    "SIGTERM to the sweep, then a rerun": stop_and_rerun(signal.SIGTERM, 143, to_group=False),
}


def empty_store(folder: Path) -> Path:
    from mlflow import MlflowClient

    path = folder / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # migrations once; each round copies the result
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run only the scenarios whose name contains this")
    options = parser.parse_args()
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory() as root:
        template = empty_store(Path(root))
        started = time.monotonic()
        for name, scenario in SCENARIOS.items():
            if options.only not in name:
                continue
            passed, failures, began = 0, [], time.monotonic()
            for round_number in range(options.rounds):
                folder = Path(root, f"{list(SCENARIOS).index(name)}-{round_number}")
                folder.mkdir()
                shutil.copy(template, folder / "mlflow.db")
                with sqlite3.connect(folder / "mlflow.db") as db:
                    db.execute(
                        "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                        (str(folder / "mlruns" / "0"),),
                    )
                db.close()
                env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
                cwd = os.getcwd()
                os.chdir(folder)
                try:
                    broken = scenario(folder, env, rng)
                except Exception as error:  # a round that times out fails; the others still run
                    broken = [f"{type(error).__name__}: {error}"]
                finally:
                    os.chdir(cwd)
                if broken:  # its folder (stores, databases) kept for a post-mortem
                    kept = shutil.copytree(folder, Path(FAILED_ROUNDS, f"{started:.0f}-{folder.name}"))
                    failures.append(f"round {round_number + 1} (kept in {kept}): {' | '.join(broken)}")
                else:
                    passed += 1
                    shutil.rmtree(folder)
            print(f"{name}: {passed}/{options.rounds} passed ({time.monotonic() - began:.0f} s)", flush=True)
            for failure in failures:
                print(f"    {failure[:12000]}", flush=True)
        print(f"soak: {time.monotonic() - started:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
