"""A trial's child run end to end: what it holds (TrialRun, from a told trial), how it is written once and
backfilled, how it is found again, and the writer that writes a sweep's trial runs, in a helper process
while the sweep's process trains on.

A trial's run costs MLflow a create, one log_batch and an end: about 12 ms of CPU on sqlite, more than a
population member costs to train; a population's runs written in one transaction (mbgd.tracking_rows) cost
about a millisecond each. So a long sweep hands the runs of each told population to a helper process and asks,
trains and tells the next population meanwhile; on a machine with a second core the writing is then off the
sweep's path. The sweep never waits for the helper until it needs the runs (a thread hands them over as the
helper takes them). The helper writes everything handed over, in order, even when the sweep's process is
killed (what a kill -9 catches still queued in the sweep's process, a rerun back-fills from the told trials),
and ends when the sweep closes the pipe; if the helper dies, the sweep writes the runs it had not confirmed
itself. Every MLflow call goes through the tracking layer (mbgd.tracking).

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from mbgd.errors import say
from mbgd.processes import STOP_SIGNALS, describe_exit, signals_blocked_for_children

# as in mlflow.utils.mlflow_tags; named here so as not to import MLflow
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
# From this many trials on, a command starts the helper: its start costs a second or two of imports (on the
# other core, while the command imports its own libraries), against about 25 ms per run written here through
# a tracking server's client, about 1 ms on MLflow's SQL store (tracking_rows), where it was kept because
# writing in the command instead measured no faster (sweep 8.96-9.36 s against 9.38-10.09 s, scaling 33.1 s
# against 32.2 s, interleaved, in process against with the helper).
HELPER_FROM_TRIALS = 48
TRIAL_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # by Optuna state


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


def from_told_trial(
    parent, batch_size: int, study_name: str, record, *, n: int, dtype: str, label: str = ""
) -> TrialRun:
    """One told trial (a sweep.TrialRecord) as a child run of `parent`: lr, batch size, trial and study as
    params, the `loss` per epoch, `objective`, `trial` and `diverged`; it ends with the status of its Optuna
    state (pruned: KILLED).

    `label` prefixes the run's name where one parent holds several studies per batch size (mbgd scaling)."""
    from mbgd.history import descent_kind

    return TrialRun(
        study_name=study_name,
        number=record.number,
        experiment_id=parent.experiment_id,
        name=f"{label}b{batch_size}-trial{record.number}-lr{record.lr:.3g}",
        tags={
            MLFLOW_PARENT_RUN_ID: parent.run_id,
            "optuna.state": record.state,
            "regime": descent_kind(batch_size, n),
            "dtype": dtype,
            "diverged": str(record.history.diverged).lower(),
        },
        params={
            "lr": repr(record.lr),
            "batch_size": str(batch_size),
            "trial": str(record.number),
            "study_name": study_name,
        },
        losses=list(record.history.epoch_losses),
        results={
            "objective": record.value,
            "trial": record.number,
            "diverged": float(record.history.diverged),
        },
        status=TRIAL_RUN_STATUS[record.state],
    )


def on_told_trials(
    hand_over: Callable[[list[TrialRun]], object],
    parent,
    *,
    n: int,
    dtype: str,
    label_of: Callable[[str], str] = lambda study_name: "",
) -> Callable:
    """A study's `on_trials` callback: the runs of each population of told trials, as children of `parent`,
    handed to `hand_over` (a writer's submit); `label_of` gives a study's label (from_told_trial)."""

    def on_trials(batch_size: int, study_name: str, records) -> None:
        label = label_of(study_name)
        hand_over(
            [
                from_told_trial(parent, batch_size, study_name, r, n=n, dtype=dtype, label=label)
                for r in records
            ]
        )

    return on_trials


def write(client, run: TrialRun) -> str:
    (run_id,) = write_all(client, [run])
    return run_id


def write_all(client, runs: Sequence[TrialRun]) -> list[str]:
    """Write the runs (a told population's), in one transaction where the store allows; returns their ids."""
    from mbgd import tracking
    from mbgd.tracking import FinishedRun

    return tracking.log_finished_runs(
        client,
        [
            FinishedRun(
                experiment_id=run.experiment_id,
                name=run.name,
                tags=run.tags,
                params=run.params,
                metrics=[*tracking.series("loss", run.losses), *tracking.scalars(run.results)],
                status=run.status,
            )
            for run in runs
        ],
    )


def write_once(client, run: TrialRun) -> str:
    """Write the run unless a process that died wrote it already: a finished run of this trial under the same
    parent is kept; one it left unfinished (killed between create and end) is deleted and written anew."""
    from mbgd import tracking

    parent = run.tags[MLFLOW_PARENT_RUN_ID]
    found = tracking.search_runs(
        client,
        run.experiment_id,
        f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' and attributes.run_name = '{run.name}'",
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
            tracking.delete_run(client, existing, end_running=True)
    return kept or write(client, run)


def runs_by_trial(client, experiment_id: str, study_name: str) -> dict[int, list]:
    """The experiment's runs of the study's trials (found by their params, under any parent), by trial
    number."""
    from mbgd import tracking

    found: dict[int, list] = {}
    for run in tracking.all_runs(client, experiment_id, f"params.study_name = '{study_name}'"):
        if "trial" in run.data.params:
            found.setdefault(int(run.data.params["trial"]), []).append(run)
    return found


def find(client, experiment_id: str, study_name: str, trial: int) -> str | None:
    """The id of the trial's run logged by an earlier sweep process (found by its params)."""
    from mbgd import tracking

    runs = tracking.search_runs(
        client,
        experiment_id,
        f"params.study_name = '{study_name}' and params.trial = '{trial}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def backfill(client, runs: Sequence[TrialRun], existing: dict[int, list]) -> dict[tuple[str, int], str]:
    """Write each run whose trial has no run of its status among `existing` (runs_by_trial): a process killed
    between telling a trial and writing its run left it without one. Such a trial's other runs (one ended
    KILLED before it was finished) are deleted; returns the written runs' ids by (study name, trial
    number)."""
    from mbgd import tracking

    written = {}
    for run in runs:
        present = existing.get(run.number, [])
        if any(r.info.status == run.status for r in present):
            continue
        for leftover in present:
            tracking.delete_run(client, leftover)
        written[run.key] = write_once(client, run)
    return written


def backfill_studies(
    client,
    parent,
    studies,
    *,
    n: int,
    dtype: str,
    label_of: Callable[[str], str] = lambda study_name: "",
    known: Mapping[tuple[str, int], str] | None = None,
) -> dict[tuple[str, int], str]:
    """Write, as children of `parent` (the command's run), the run of every finished trial that has none in
    the experiment (its process was killed between telling the trial and writing the run: a worker, or an
    earlier sweep or scaling), rebuilt from what the trial stored when told (sweep.stored_record); `studies`
    are (batch size, study) pairs, `label_of` as in on_told_trials; returns their ids by (study name,
    trial). The trials in `known` (by (study name, trial): runs this process wrote) have theirs: a study with
    no other finished trial is not searched."""
    from mbgd import protocol, sweep

    written = {}
    for batch_size, study in studies:
        records = [
            sweep.stored_record(t, batch_size)
            for t in study.get_trials(deepcopy=False, states=protocol.FINISHED_STATES)
        ]
        label = label_of(study.study_name)
        runs = [
            from_told_trial(parent, batch_size, study.study_name, record, n=n, dtype=dtype, label=label)
            for record in records
            if record is not None
        ]
        runs = [run for run in runs if run.key not in (known or {})]
        if not runs:
            continue
        existing = runs_by_trial(client, parent.experiment_id, study.study_name)
        written |= backfill(client, runs, existing)
    return written


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
            from mbgd import tracking

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
    from mbgd.processes import hold_collection_while_importing, imports_done

    hold_collection_while_importing()
    from mbgd import tracking

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
            say(f"mbgd: the trial-run writer process stopped: {error}")
            sys.exit(1)
        with suppress(OSError):  # the sweep's process is gone: keep writing what is in the pipe
            confirmations_out.send(confirmed)
