"""`mbgd sweep --workers N`: N local processes on the same studies, each asking and telling against the shared
storage and logging its trials as child runs of the sweep's run (through its own MlflowClient)."""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from typing import Any

from mbgd.core.config import SweepConfig
from mbgd.runtime.errors import Interrupted, WorkerError, say
from mbgd.runtime.processes import (
    describe_exit,
    end_without_collecting,
    hold_collection_while_importing,
    ignore_stops,
    imports_done,
    quiet_database_cleanup_after_a_stop,
    raise_interrupted_once,
    redeliver_lost_stops,
)
from mbgd.tracking.records import RunRef

POLL_S = 1.0
STOP_TIMEOUT_S = 30.0


def run_in_workers(config: SweepConfig, storage_url: str, sweep_run: RunRef, *, progress=None) -> None:
    """Start config.workers processes, follow the studies' progress, and stop them all on the way out.

    A worker that dies (kill -9) leaves its trials to the others, which fail and retry them; the sweep fails
    only when the studies are not finished once every worker has ended.
    """
    from mbgd.studies import protocol
    from mbgd.studies import storage as studies
    from mbgd.tracking import runs as tracking

    context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch or sqlite state is forked
    processes = [
        context.Process(target=worker_main, args=(config, storage_url, sweep_run, i), name=f"mbgd-worker-{i}")
        for i in range(config.workers)
    ]
    for process in processes:
        process.start()
    storage = studies.open_storage(storage_url)
    try:
        # is_alive reaps a process that ended: ask every one, not only up to the first alive (any() would stop
        # there), or a killed worker stays a zombie whose pid still looks alive to the others.
        # Opened once: each study's cache then re-reads only its unfinished trials at every poll.
        watched = {b: studies.open_study(config, b, storage) for b in config.batch_sizes} if progress else {}
        while any([process.is_alive() for process in processes]):
            for batch_size, study in watched.items():
                progress(batch_size, studies.finished_count(study), config.n_trials)
            time.sleep(POLL_S)
    finally:
        stop(processes)
        # A worker stopped (or killed) between creating a trial and recording it could not fail it itself.
        for batch_size in config.batch_sizes:
            protocol.fail_abandoned(storage, config.study_name(batch_size))
        # A worker stopped between creating a trial's run and ending it leaves that run RUNNING; its process
        # is gone now, so this marks it KILLED.
        tracking.end_orphaned_runs(tracking.client(), sweep_run.experiment_id)
    finished = {b: studies.finished_count(studies.open_study(config, b, storage)) for b in config.batch_sizes}
    unfinished = {b: n for b, n in finished.items() if n < config.n_trials}
    failed = [f"{p.name} exited with {describe_exit(p.exitcode)}" for p in processes if p.exitcode != 0]
    if unfinished:
        raise_if_stopped_by_a_signal(processes)
        counts = ", ".join(f"batch size {b}: {n} of {config.n_trials}" for b, n in unfinished.items())
        raise WorkerError(f"the studies are unfinished ({counts}): {'; '.join(failed) or 'no worker error'}")
    for message in failed:
        say(f"mbgd: {message}; the other workers finished its trials")


def raise_if_stopped_by_a_signal(processes: list[Any]) -> None:
    """Workers that exited on Ctrl-C (130) or SIGTERM (143) stopped the sweep too: it ends as interrupted,
    not as failed, even when the signal reached only the workers or this process has not handled its own
    yet (`make soak` saw the sweep end with "the studies are unfinished" after a Ctrl-C to the group)."""
    codes = {process.exitcode for process in processes}
    if 130 in codes:
        raise KeyboardInterrupt
    if 143 in codes:
        raise Interrupted("SIGTERM")


def stop(processes: list[Any]) -> None:
    """SIGTERM the workers still running (their in-flight trials end FAIL), then wait; SIGKILL stragglers."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def worker_main(config: SweepConfig, storage_url: str, sweep_run: RunRef, index: int) -> None:
    """One worker: every batch size's study in turn, each told trial logged as a child run of the sweep's
    run."""
    end_without_collecting()
    hold_collection_while_importing()
    signal.signal(signal.SIGTERM, raise_interrupted_once)
    signal.signal(signal.SIGINT, raise_interrupted_once)
    redeliver_lost_stops(handler=raise_interrupted_once)
    quiet_database_cleanup_after_a_stop()
    try:
        from mbgd.core.data import load_data
        from mbgd.pipelines import trial_runs
        from mbgd.studies import storage as studies
        from mbgd.studies import sweep
        from mbgd.tracking import runs as tracking

        data = load_data(config.train.data, config.train.seed)
        storage = studies.open_storage(storage_url)
        client = tracking.client()
        imports_done()

        on_trials = trial_runs.OnTrialRuns(
            lambda runs: trial_runs.write_all(client, runs),
            sweep_run,
            client,
            n=data.n,
            dtype=config.train.dtype,
        )
        for batch_size in config.batch_sizes:
            sweep.run_study(config, data, batch_size, storage, on_trials=on_trials)
        ignore_stops()  # done: the sweep's SIGTERM must not land in the interpreter's shutdown
    except KeyboardInterrupt:
        sys.exit(130)
    except Interrupted as stop:
        sys.exit(130 if str(stop) == "SIGINT" else 143)
