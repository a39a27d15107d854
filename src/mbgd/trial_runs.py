"""Trials' child runs, written by a helper process while the sweep's process trains on.

A trial's run costs MLflow a create, one log_batch and an end: about 25 ms on sqlite, more than a population
member costs to train. So a long sweep hands the runs of each told population to a helper process and asks,
trains and tells the next population meanwhile; on a machine with a second core the writing is then off the
sweep's path. The helper writes everything it is handed, in order, even when the sweep's process is killed,
and ends when the sweep closes the pipe; if the helper dies, the sweep writes the runs it had not confirmed
itself.

Imports neither MLflow nor torch at the top: a command starts the helper first, and the helper, which imports
only MLflow, is ready while the command is still importing its own libraries.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from mbgd.errors import say

# as in mlflow.utils.mlflow_tags; named here so as not to import MLflow
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
# From this many trials on, a command starts the helper: its start costs a second or two of imports (on the
# other core, while the command imports its own libraries), against about 25 ms per run written here.
HELPER_FROM_TRIALS = 48


@dataclass(frozen=True)
class TrialRun:
    """One trial's child run, complete: built by the sweep, written by whichever process writes it."""

    study_name: str
    number: int
    experiment_id: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    losses: list[float]  # the `loss` series, one per epoch
    results: dict[str, float]  # scalar metrics
    status: str  # what the run ends as: FINISHED, KILLED (pruned) or FAILED

    @property
    def key(self) -> tuple[str, int]:
        return self.study_name, self.number


def write(client, run: TrialRun) -> str:
    from mbgd import tracking

    return tracking.log_finished_run(
        client,
        run.experiment_id,
        run.name,
        tags=run.tags,
        params=run.params,
        metrics=[*tracking.series("loss", run.losses), *tracking.scalars(run.results)],
        status=run.status,
    )


def write_once(client, run: TrialRun) -> str:
    """Write the run unless a process that died wrote it already: a finished run of this trial under the same
    parent is kept; one it left unfinished (killed between create and end) is deleted and written anew."""
    parent = run.tags[MLFLOW_PARENT_RUN_ID]
    found = client.search_runs(
        [run.experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' and attributes.run_name = '{run.name}'",
    )
    kept = None
    for existing in found:
        if (
            kept is None
            and existing.info.status == run.status
            and existing.data.params.get("trial") == str(run.number)
        ):
            kept = existing.info.run_id
        else:
            if existing.info.status == "RUNNING":
                client.set_terminated(existing.info.run_id, "KILLED")
            client.delete_run(existing.info.run_id)
    return kept or write(client, run)


def runs_by_trial(client, experiment_id: str, study_name: str) -> dict[int, list]:
    """The experiment's runs of the study's trials (found by their params, under any parent), by trial
    number."""
    found: dict[int, list] = {}
    page_token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"params.study_name = '{study_name}'",
            max_results=1000,
            page_token=page_token,
        )
        for run in page:
            if "trial" in run.data.params:
                found.setdefault(int(run.data.params["trial"]), []).append(run)
        page_token = page.token
        if not page_token:
            return found


def backfill(client, runs: Sequence[TrialRun], existing: dict[int, list]) -> dict[tuple[str, int], str]:
    """Write each run whose trial has no run of its status among `existing` (runs_by_trial): a process killed
    between telling a trial and writing its run left it without one. Such a trial's other runs (one ended
    KILLED before it was finished) are deleted; returns the written runs' ids by (study name, trial
    number)."""
    written = {}
    for run in runs:
        present = existing.get(run.number, [])
        if any(r.info.status == run.status for r in present):
            continue
        for leftover in present:
            client.delete_run(leftover.info.run_id)
        written[run.key] = write_once(client, run)
    return written


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM received while the block runs are handled when it ends, as they would have been."""
    if threading.current_thread() is not threading.main_thread():  # handlers run in the main thread only
        yield
        return
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            if callable(previous[signum]):
                previous[signum](signum, None)
            elif previous[signum] == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


@contextmanager
def signals_blocked_for_children() -> Iterator[None]:
    """A child started in the block starts with SIGINT and SIGTERM blocked (it inherits this thread's
    mask)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class TrialRunWriter:
    """Writes trial runs, through a helper process when `helper` is set, else in this process.

    The helper uses the tracking store this process would (MLFLOW_TRACKING_URI, else ./mlflow.db), so a
    command can start it before it imports MLflow itself. `flush` returns, by (study name, trial number), the
    ids of the runs written so far, once every run submitted is written.
    """

    def __init__(self, *, helper: bool) -> None:
        self.run_ids: dict[tuple[str, int], str] = {}
        self._client = None
        self._unconfirmed: dict[tuple[str, int], TrialRun] = {}
        self._process = self._connection = None
        if helper:
            context = multiprocessing.get_context(
                "spawn"
            )  # not fork: this process has threads and open databases
            self._connection, helper_end = context.Pipe()
            self._process = context.Process(target=_helper_main, args=(helper_end,), name="mbgd-trial-runs")
            with signals_blocked_for_children():  # until the helper ignores them: see _helper_main
                self._process.start()
            # ours closed, the helper sees end-of-file when this process ends, however it ends
            helper_end.close()

    @property
    def helper_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, runs: Sequence[TrialRun]) -> None:
        if self._process is not None:
            # Unconfirmed before they are sent: whatever stops the sending, close() writes what the helper did
            # not.
            self._unconfirmed.update((run.key, run) for run in runs)
            try:
                with (
                    signals_deferred()
                ):  # a message is in the pipe whole or not at all (it may wait for room there)
                    self._connection.send(list(runs))
            except OSError:  # the helper is gone
                self._take_over()
            else:
                self._collect(until_confirmed=False)
            return
        for run in runs:
            self.run_ids[run.key] = write(self.client(), run)

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
            from mbgd import tracking

            self._client = tracking.client()
        return self._client

    def _collect(self, *, until_confirmed: bool) -> None:
        """Take the helper's confirmations: those waiting, or all until nothing is unconfirmed or the helper
        ends."""
        while self._connection.poll() if not until_confirmed else self._unconfirmed:
            try:
                confirmed = self._connection.recv()
            except (EOFError, OSError):
                return
            for study_name, number, run_id in confirmed:
                self.run_ids[(study_name, number)] = run_id
                self._unconfirmed.pop((study_name, number), None)

    def _take_over(self) -> None:
        """Let the helper end (it does once it has written all it received and the pipe is closed or broken),
        then write here what it did not confirm (write_once: not twice, and no half-written run left)."""
        with suppress(OSError), signals_deferred():
            self._connection.send(None)
        self._collect(until_confirmed=True)
        self._process.join()
        code = self._process.exitcode
        self._connection.close()
        self._process = self._connection = None
        if code != 0:
            say(
                f"mbgd: the trial-run writer process ended ({_describe_exit(code)}); this process writes the "
                f"trial runs from now on, {len(self._unconfirmed)} it had not confirmed first"
            )
        for key, run in list(self._unconfirmed.items()):
            self.run_ids[key] = write_once(self.client(), run)
            del self._unconfirmed[key]


@contextmanager
def trial_run_writer(*, expected_trials: int) -> Iterator[TrialRunWriter]:
    """A writer for about `expected_trials` trials (a helper process from HELPER_FROM_TRIALS on), closed,
    every run written, when the block ends, however it ends."""
    writer = TrialRunWriter(helper=expected_trials >= HELPER_FROM_TRIALS)
    try:
        yield writer
    finally:
        writer.close()


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _helper_main(connection) -> None:
    # Ctrl-C and a SIGTERM to the process group reach the helper too: it ignores them and ends when the
    # sweep's process, which handles them, closes the pipe; until then it writes what it was handed.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by the sweep while it started us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    from mbgd import tracking

    client = None
    while True:
        try:
            runs = connection.recv()
        except (EOFError, OSError):
            return
        if runs is None:
            return
        # The client is made once the sweep has its run, so the store exists: a fresh sqlite store's tables
        # are created by the first client to use it, and two processes creating them at once collide.
        client = client or tracking.client()
        try:
            confirmed = [(run.study_name, run.number, write(client, run)) for run in runs]
        except Exception as error:  # the sweep's process takes over and meets the error itself
            say(f"mbgd: the trial-run writer process stopped: {error}")
            sys.exit(1)
        with suppress(OSError):  # the sweep's process is gone: keep writing what is in the pipe
            connection.send(confirmed)
