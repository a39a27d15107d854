"""The longest storage stall a worker meets: `mbgd sweep --workers 8 --population 4` on sqlite, with every
Optuna storage call, every wait for the study's lock and every gap between a trial's heartbeats timed in each
worker.

    .venv/bin/python benchmarks/storage_stall.py [--workers 8] [--population 4] [--n-trials 48] [--epochs 20]

What protocol.GRACE_PERIOD_S is set from: a live trial's heartbeat must never look older than it.
The timing wrappers are installed at import, so that the sweep's spawned workers, which import this file as
their main module, time their calls too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import optuna

from mbgd.studies import lock as study_lock
from mbgd.studies import optuna_internals, protocol

LONGEST: dict[str, float] = {}
LAST_BEAT: dict[int, float] = {}


def note(name: str, seconds: float) -> None:
    if seconds > LONGEST.get(name, 0.0):
        LONGEST[name] = seconds
        folder = os.environ.get("MBGD_STALL_DIR")
        if folder:
            Path(folder, f"{os.getpid()}.json").write_text(json.dumps(LONGEST))


def timed(owner, name: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            note(name, time.monotonic() - start)

    setattr(owner, name, wrapper)


for method in (
    "create_new_trial",
    "get_all_trials",
    "get_trial",
    "set_trial_state_values",
    "set_trial_user_attr",
    "set_trial_param",
    "record_heartbeat",
    "_get_stale_trial_ids",
):
    timed(optuna.storages.RDBStorage, method)

_record_heartbeat = optuna.storages.RDBStorage.record_heartbeat


def beat_and_time_the_gap(self, trial_id: int) -> None:
    _record_heartbeat(self, trial_id)
    now = time.monotonic()
    if trial_id in LAST_BEAT:
        note("heartbeat gap (interval included)", now - LAST_BEAT[trial_id])
    LAST_BEAT[trial_id] = now


optuna.storages.RDBStorage.record_heartbeat = beat_and_time_the_gap
_create_running_trials = protocol.create_running_trials
_tell_together = optuna_internals.tell_together


def create_and_note_the_first_beats(backend, study_id: int, templates) -> list[int]:
    trial_ids = _create_running_trials(backend, study_id, templates)  # with their first heartbeats
    now = time.monotonic()
    LAST_BEAT.update(dict.fromkeys(trial_ids, now))
    return trial_ids


def tell_and_time_the_age(backend, writes) -> None:
    _tell_together(backend, writes)
    now = time.monotonic()
    for write in writes:  # the oldest a live trial's heartbeat got before its tell
        if write.trial_id in LAST_BEAT:
            note("heartbeat age at the tell", now - LAST_BEAT.pop(write.trial_id))


protocol.create_running_trials = create_and_note_the_first_beats
optuna_internals.tell_together = tell_and_time_the_age
timed(protocol, "create_running_trials")
timed(optuna_internals, "tell_together")
_file_lock = study_lock.file_lock


@contextlib.contextmanager
def timed_lock(path: str):
    start = time.monotonic()
    with _file_lock(path):
        note("study lock wait", time.monotonic() - start)
        held = time.monotonic()
        try:
            yield
        finally:
            note("study lock held", time.monotonic() - held)


study_lock.file_lock = timed_lock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="8")
    parser.add_argument("--population", default="4")
    parser.add_argument("--n-trials", default="48")
    parser.add_argument("--epochs", default="20")
    options = parser.parse_args()
    from mbgd.cli.main import main as mbgd

    with tempfile.TemporaryDirectory() as folder:
        stalls = Path(folder, "stalls")
        stalls.mkdir()
        os.environ.update(MBGD_STALL_DIR=str(stalls), MLFLOW_TRACKING_URI=f"sqlite:///{folder}/mlflow.db")
        os.chdir(folder)
        start = time.monotonic()
        with contextlib.suppress(SystemExit):
            mbgd(
                [
                    "sweep",
                    "--workers",
                    options.workers,
                    "--population",
                    options.population,
                    "--batch-sizes",
                    "1,10,20",
                    "--n-trials",
                    options.n_trials,
                    "--epochs",
                    options.epochs,
                    "--seeds",
                    "1",
                    "--scan",
                    "16",
                    "--tuning-cost-seeds",
                    "0",
                    "--name",
                    "stall",
                ]
            )
        elapsed = time.monotonic() - start
        longest: dict[str, float] = {}
        for file in stalls.glob("*.json"):
            for name, seconds in json.loads(file.read_text()).items():
                longest[name] = max(longest.get(name, 0.0), seconds)
    print(
        f"{options.workers} workers x population {options.population}, {elapsed:.0f} s, load "
        f"{os.getloadavg()[0]:.1f}"
    )
    for name, seconds in sorted(longest.items(), key=lambda item: -item[1]):
        print(f"  longest {name}: {seconds:.3f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
