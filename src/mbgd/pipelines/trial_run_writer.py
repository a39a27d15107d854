"""The writer of a sweep's trial runs: in a helper process while the sweep's process trains on, or in this
one.

A long sweep hands the runs of each told population to a helper process and asks, trains and tells the next
population meanwhile; on a machine with a second core the writing is then off the sweep's path. The sweep
never waits for the helper until it needs the runs (a thread hands them over as the helper takes them). The
helper writes everything handed over, in order, even when the sweep's process is killed (what a kill -9
catches still queued in the sweep's process, a rerun back-fills from the told trials), and ends when the sweep
closes the pipe; if the helper dies, the sweep writes the runs it had not confirmed itself.

Imports neither MLflow nor torch at the top: a command starts the helper first, and the helper, which imports
only MLflow, is ready while the command is still importing its own libraries.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

from mbgd.pipelines.trial_runs import TrialRun, write_all, write_once
from mbgd.runtime.errors import say
from mbgd.runtime.processes import STOP_SIGNALS, describe_exit, signals_blocked_for_children

# From this many trials on, a command starts the helper: its start costs a second or two of imports (on the
# other core, while the command imports its own libraries), against about 25 ms per run written here through
# a tracking server's client, about 1 ms on MLflow's SQL store (mbgd.tracking.mlflow_internals), where it was
# kept because writing in the command instead measured no faster (sweep 8.96-9.36 s against 9.38-10.09 s,
# scaling 33.1 s against 32.2 s, interleaved, in process against with the helper).
HELPER_FROM_TRIALS = 48


class TrialRunWriter:
    """Writes trial runs, through a helper process when `helper` is set, else in this process.

    The helper uses the tracking store this process would (MLFLOW_TRACKING_URI, else ./mlflow.db), so a
    command can start it before it imports MLflow itself. `submit` never waits for the helper: a thread here
    hands the runs over as the helper takes them, so that the studies go on while it writes (and the caller's
    analysis after them). `flush` returns, by (study name, trial number), the ids of the runs written so far,
    once every run submitted is written.
    """

    def __init__(self, *, helper: bool) -> None:
        self.run_ids: dict[tuple[str, int], str] = {}
        self._client = None
        self._unconfirmed: dict[tuple[str, int], TrialRun] = {}
        self._process = self._runs_out = self._confirmations = self._sender = None
        self.batches_handed_over = 0  # submitted batches whole in the helper's pipe: written even if we die
        if helper:
            context = multiprocessing.get_context(
                "spawn"
            )  # not fork: this process has threads and open databases
            runs_in, self._runs_out = context.Pipe(duplex=False)
            self._confirmations, confirmations_out = context.Pipe(duplex=False)
            self._process = context.Process(
                target=_helper_main, args=(runs_in, confirmations_out), name="mbgd-trial-runs"
            )
            with signals_blocked_for_children():  # until the helper ignores them: see _helper_main
                self._process.start()
            # ours closed: each end sees end-of-file when the other process ends, however it ends
            runs_in.close()
            confirmations_out.close()
            self._outbox: queue.SimpleQueue = queue.SimpleQueue()
            self._sender = threading.Thread(target=self._send_all, name="mbgd-trial-run-sender", daemon=True)
            self._sender.start()

    @property
    def helper_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, runs: Sequence[TrialRun]) -> None:
        if self._process is not None:
            # Unconfirmed before they are handed over: whatever stops the sending, close() writes what the
            # helper did not.
            self._unconfirmed.update((run.key, run) for run in runs)
            if self._sender.is_alive():
                self._outbox.put(list(runs))
                self._collect(until_confirmed=False)
            else:  # the helper is gone
                self._take_over()
            return
        self.run_ids.update(zip((run.key for run in runs), write_all(self.client(), runs), strict=True))

    def flush(self) -> dict[tuple[str, int], str]:
        """Wait until every run submitted is written; returns run_ids."""
        if self._process is not None:
            self._collect(until_confirmed=True)
            if self._unconfirmed:
                self._take_over()
        return self.run_ids

    def close(self) -> dict[tuple[str, int], str]:
        """Flush, then end the helper."""
        if self._process is not None:
            self._take_over()
        return self.run_ids

    def client(self):
        if self._client is None:
            from mbgd.tracking import runs as tracking

            self._client = tracking.client()
        return self._client

    def _send_all(self) -> None:
        """The sender thread: each submitted batch, whole, into the helper's pipe (a write waits there for
        room, never the studies); ends after the None that _take_over puts, or when the helper is gone."""
        while True:
            runs = self._outbox.get()
            try:
                self._runs_out.send(runs)
            except OSError:
                return
            if runs is None:
                return
            self.batches_handed_over += 1

    def _collect(self, *, until_confirmed: bool) -> None:
        """Take the helper's confirmations: those waiting, or all until nothing is unconfirmed or the helper
        ends."""
        while self._confirmations.poll() if not until_confirmed else self._unconfirmed:
            try:
                confirmed = self._confirmations.recv()
            except (EOFError, OSError):
                return
            for study_name, number, run_id in confirmed:
                self.run_ids[(study_name, number)] = run_id
                self._unconfirmed.pop((study_name, number), None)

    def _take_over(self) -> None:
        """Let the helper end (it does once it has written all it received and the pipe is closed or broken),
        then write here what it did not confirm (write_once: not twice, and no half-written run left)."""
        self._outbox.put(None)
        self._sender.join()
        self._collect(until_confirmed=True)
        self._process.join()
        code = self._process.exitcode
        self._runs_out.close()
        self._confirmations.close()
        self._process = self._runs_out = self._confirmations = self._sender = None
        if code != 0:
            ended = describe_exit(code, signal_word="killed by", code_word="exit code")
            say(
                f"mbgd: the trial-run writer process ended ({ended}); this process writes the "
                f"trial runs from now on, {len(self._unconfirmed)} it had not confirmed first"
            )
        for key, run in list(self._unconfirmed.items()):
            self.run_ids[key] = write_once(self.client(), run)
            del self._unconfirmed[key]


@contextmanager
def open_writer(*, trials: int, workers: int = 1) -> Iterator[TrialRunWriter]:
    """The writer of a sweep's trial runs, closed, every run written, when the block ends, however it ends.

    The one place that decides whether it starts the helper process: when this process writes at least
    HELPER_FROM_TRIALS runs, the `trials` of a one-worker sweep (several workers write their own runs).
    """
    written_here = trials if workers == 1 else 0
    writer = TrialRunWriter(helper=written_here >= HELPER_FROM_TRIALS)
    try:
        yield writer
    finally:
        writer.close()


def _helper_main(runs_in, confirmations_out) -> None:
    # Ctrl-C and a SIGTERM to the process group reach the helper too: it ignores them and ends when the
    # sweep's process, which handles them, closes the pipe; until then it writes what it was handed.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by the sweep while it started us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    from mbgd.runtime.processes import hold_collection_while_importing, imports_done

    hold_collection_while_importing()
    from mbgd.tracking import runs as tracking

    imports_done()
    client = None
    while True:
        try:
            runs = runs_in.recv()
        except (EOFError, OSError):
            runs = None
        if runs is None:
            # Every run handed over is committed: end now, without tearing down the interpreter (MLflow's and
            # SQLAlchemy's modules take about half a second, which the sweep would wait for).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        # The client is made once the sweep has its run, so the store exists: a fresh sqlite store's tables
        # are created by the first client to use it, and two processes creating them at once collide.
        client = client or tracking.client()
        try:
            confirmed = [
                (run.study_name, run.number, run_id)
                for run, run_id in zip(runs, write_all(client, runs), strict=True)
            ]
        except Exception as error:  # the sweep's process takes over and meets the error itself
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            say(f"mbgd: the trial-run writer process stopped: {first_line}")
            sys.exit(1)
        with suppress(OSError):  # the sweep's process is gone: keep writing what is in the pipe
            confirmations_out.send(confirmed)
