"""Trials' child runs, written by a helper process while the sweep's process trains on.

A trial's run costs MLflow a create, one log_batch and an end: about 25 ms on sqlite, more than a population
member costs to train. So a long sweep hands the runs of each told population to a helper process and asks,
trains and tells the next population meanwhile; on a machine with a second core the writing is then off the
sweep's path. The helper writes everything it is handed, in order, even when the sweep's process is killed, and
ends when the sweep closes the pipe; if the helper dies, the sweep writes the runs it had not confirmed itself.

Imports neither MLflow nor torch at the top: a command starts the helper first, and the helper, which imports
only MLflow, is ready while the command is still importing its own libraries.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

# From this many trials on, a command starts the helper: its start costs a second or two of imports (on the other
# core, while the command imports its own libraries), against about 25 ms per run written here.
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
        client, run.experiment_id, run.name, tags=run.tags, params=run.params,
        metrics=[*tracking.series("loss", run.losses), *tracking.scalars(run.results)], status=run.status,
    )


class TrialRunWriter:
    """Writes trial runs, through a helper process when `helper` is set, else in this process.

    The helper uses the tracking store this process would (MLFLOW_TRACKING_URI, else ./mlflow.db), so a command
    can start it before it imports MLflow itself. `flush` returns, by (study name, trial number), the ids of the
    runs written so far, once every run submitted is written.
    """

    def __init__(self, *, helper: bool) -> None:
        self.run_ids: dict[tuple[str, int], str] = {}
        self._client = None
        self._unconfirmed: dict[tuple[str, int], TrialRun] = {}
        self._process = self._connection = None
        if helper:
            context = multiprocessing.get_context("spawn")  # not fork: this process has threads and open databases
            self._connection, helper_end = context.Pipe()
            self._process = context.Process(target=_helper_main, args=(helper_end,), name="mbgd-trial-runs")
            self._process.start()
            helper_end.close()  # ours closed, the helper sees end-of-file when this process ends, however it ends

    @property
    def helper_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, runs: Sequence[TrialRun]) -> None:
        if self._process is not None:
            try:
                self._connection.send(list(runs))
            except OSError:  # the helper is gone
                self._take_over()
            else:
                self._unconfirmed.update((run.key, run) for run in runs)
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
        """Take the helper's confirmations: those waiting, or all until nothing is unconfirmed or the helper ends."""
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
        then write here what it did not confirm: a run it wrote without confirming is found by its params rather
        than written twice."""
        with suppress(OSError):
            self._connection.send(None)
        self._collect(until_confirmed=True)
        self._process.join()
        code = self._process.exitcode
        self._connection.close()
        self._process = self._connection = None
        if code != 0:
            print(
                f"mbgd: the trial-run writer process ended ({_describe_exit(code)}); this process writes the "
                f"trial runs from now on, {len(self._unconfirmed)} it had not confirmed first",
                file=sys.stderr,
            )
        from mbgd import tracking

        for key, run in list(self._unconfirmed.items()):
            found = tracking.find_trial_run(self.client(), run.experiment_id, run.study_name, run.number)
            self.run_ids[key] = found or write(self.client(), run)
            del self._unconfirmed[key]


@contextmanager
def trial_run_writer(*, expected_trials: int) -> Iterator[TrialRunWriter]:
    """A writer for about `expected_trials` trials (a helper process from HELPER_FROM_TRIALS on), closed, every
    run written, when the block ends, however it ends."""
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
            print(f"mbgd: the trial-run writer process stopped: {error}", file=sys.stderr)
            sys.exit(1)
        with suppress(OSError):  # the sweep's process is gone: keep writing what is in the pipe
            connection.send(confirmed)
