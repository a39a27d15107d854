"""How several workers share one Optuna study: reserving budget, telling trials, failing the trials of workers
that are gone. Every function takes the storage that mbgd.studies.storage.open_storage returned beside the
study (the RDB storage itself, not the cache Optuna puts before it: its reads see other processes' latest
writes); what Optuna keeps private is reached through mbgd.studies.optuna_internals.

Why the budget is exact. Every change that moves budget between workers (creating a trial, claiming an
enqueued one, failing an abandoned one, telling one) is made under the study's lock (mbgd.studies.lock), which
the database or the kernel grants to one process at a time and releases when that process dies: on sqlite an
flock on a file beside the database (sqlite's own locks are fcntl locks on the database file, which flock
leaves alone), on PostgreSQL a transaction-level advisory lock, on MySQL GET_LOCK. Under it a worker counts
the trials that hold budget (finished, RUNNING, and enqueued ones with an lr) and creates only what is left,
so no trial is made just to be failed.

Optuna's own writes are not enough on sqlite: set_trial_state_values reads the state and then writes, and
pysqlite begins a transaction only at the write (sqlite has no SELECT ... FOR UPDATE), so a COMPLETE write
could land on a trial another worker had just failed, and two workers could both claim one enqueued trial.
Under the lock the state read before a tell is still the state when it is written.

The rule every worker checks after creating trials, which holds even for trials made without the lock (another
program on the study): a trial runs only if fewer than n_trials trials that hold budget have a smaller number.
The storage numbers trials in order of creation, a FAIL trial never comes back, and a finished one never
leaves its state; so the set of budget-holding trials below a given trial only shrinks after the check, and at
the end the budget-holding trials, the highest-numbered one included, are at most n_trials.

No live trial is failed: on this host a trial is failed only when its worker process is gone; a trial from
another host only when its heartbeat is older than GRACE_PERIOD_S, which outlasts the longest storage stall
measured (see GRACE_PERIOD_S). A worker whose trial was failed all the same says so in one line and asks
again.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import optuna

from mbgd.runtime import liveness
from mbgd.runtime.liveness import HOST, owner_gone
from mbgd.studies import lock as study_locks
from mbgd.studies import optuna_internals
from mbgd.studies.optuna_internals import TrialWrite

STATE = optuna.trial.TrialState
FINISHED_STATES = (STATE.COMPLETE, STATE.PRUNED)
HEARTBEAT_INTERVAL_S = 5  # a running trial's heartbeat is recorded this often
BUSY_TIMEOUT_S = 60  # how long a sqlite write waits for the database before "database is locked"
# A heartbeat write blocked by a busy sqlite database fails after BUSY_TIMEOUT_S; the beat after it comes one
# interval later. So a live worker's heartbeat can be BUSY_TIMEOUT_S + 2 intervals old, plus the longest stall
# measured under load (benchmarks/storage_stall.py, 8 workers x population 4 on 2 cores at load 7: a live
# trial's heartbeat at most 1.6 s old, the study's lock waited for at most 2.7 s); the rest is margin. Only
# trials of other hosts are judged by it: on this host, by the process itself.
GRACE_PERIOD_S = 90
WORKER_ATTR = "worker"  # {"host", "pid"} of the process that runs the trial
LOSSES_ATTR = "epoch_losses"  # the full-dataset loss per epoch, so that a rerun can write a lost trial run

log = logging.getLogger("mbgd")
Storage = optuna.storages.BaseStorage


@dataclass
class AskedTrial:
    """A RUNNING trial of the study, created with its learning rate; its number is known once read back."""

    trial_id: int
    lr: float
    number: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What to tell a trial: COMPLETE with its value, PRUNED or FAIL, and the user attributes to set first."""

    trial: AskedTrial
    state: optuna.trial.TrialState
    value: float | None = None
    user_attrs: dict = field(default_factory=dict)


def study_id_of(storage: Storage, study: optuna.Study) -> int:
    return storage.get_study_id_from_name(study.study_name)


def enqueued_lr(trial: optuna.trial.FrozenTrial) -> float | None:
    """The lr a WAITING trial was enqueued with (Study.enqueue_trial keeps it as a fixed param), if any."""
    lr = trial.params.get("lr", trial.system_attrs.get("fixed_params", {}).get("lr"))
    return None if lr is None else float(lr)


def holds_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Finished, RUNNING, or enqueued with an lr (a worker will run it): everything but FAIL and foreign
    WAITING."""
    if trial.state == STATE.WAITING:
        return enqueued_lr(trial) is not None
    return trial.state != STATE.FAIL


def within_budget(trials: Sequence[tuple[int, optuna.trial.FrozenTrial]], n_trials: int) -> set[int]:
    """The trial ids that may run, of (id, trial) pairs: the first n_trials budget-holding trials by number
    (ties by id)."""
    holding = sorted((trial.number, trial_id) for trial_id, trial in trials if holds_budget(trial))
    return {trial_id for _, trial_id in holding[:n_trials]}


def trials_with_ids(storage: Storage, study_id: int, **states) -> list[tuple[int, optuna.trial.FrozenTrial]]:
    """The study's trials, each with its storage id: (id, trial) pairs in number order."""
    trials = storage.get_all_trials(study_id, deepcopy=False, **states)
    return list(zip(optuna_internals.trial_ids(storage, study_id, trials), trials, strict=True))


def reserve(
    study: optuna.Study,
    storage: Storage,
    n_trials: int,
    wanted: int,
    distribution: optuna.distributions.FloatDistribution,
    propose: Callable[[int], list[float]],
    taken: list[AskedTrial],
) -> int:
    """Under the study's lock: fail the trials whose worker is gone, then take up to `wanted` trials of the
    budget no other worker holds, enqueued ones first (as Study.ask runs them), then new ones with
    `propose(k)`'s lrs. Each is appended to `taken` as soon as it is RUNNING (an interruption can then fail
    it). Returns the finished trials counted."""
    study_id = study_id_of(storage, study)
    owner = {"host": HOST, "pid": os.getpid()}
    first = len(taken)
    with study_locks.held_for(storage, study_id):
        trials = trials_with_ids(storage, study_id)
        failed = set(_fail_abandoned(study, storage, study_id, trials))
        trials = [(trial_id, t) for trial_id, t in trials if trial_id not in failed]
        done = sum(t.state in FINISHED_STATES for _, t in trials)
        free = n_trials - sum(holds_budget(t) for _, t in trials)
        for trial_id, trial in trials:
            lr = enqueued_lr(trial) if trial.state == STATE.WAITING else None
            if len(taken) - first >= wanted or lr is None:
                continue
            if storage.set_trial_state_values(trial_id, state=STATE.RUNNING):
                taken.append(AskedTrial(trial_id, lr, trial.number))
                storage.set_trial_param(trial_id, "lr", distribution.to_internal_repr(lr), distribution)
                storage.set_trial_user_attr(trial_id, WORKER_ATTR, owner)
                record_heartbeat(storage, trial_id)
        new = min(wanted - (len(taken) - first), free)
        if new <= 0:
            return done
        lrs = propose(new)
        templates = [
            optuna.trial.create_trial(
                state=STATE.RUNNING,
                params={"lr": lr},
                distributions={"lr": distribution},
                user_attrs={WORKER_ATTR: owner},
            )
            for lr in lrs
        ]
        taken.extend(map(AskedTrial, create_running_trials(storage, study_id, templates), lrs))
        trials = trials_with_ids(storage, study_id)
        numbers = {trial_id: t.number for trial_id, t in trials}
        within = within_budget(trials, n_trials)
        for trial in taken[first:]:
            trial.number = numbers[trial.trial_id]
            if trial.trial_id not in within:  # only if a program that ignores the lock made trials meanwhile
                storage.set_trial_user_attr(trial.trial_id, "fail_reason", "beyond the budget; not run")
                storage.set_trial_state_values(trial.trial_id, state=STATE.FAIL)
        taken[first:] = [t for t in taken[first:] if t.trial_id in within]
    return done


def _fail_abandoned(
    study: optuna.Study | None,
    storage: Storage,
    study_id: int,
    trials: Sequence[tuple[int, optuna.trial.FrozenTrial]],
) -> list[int]:
    """Fail the RUNNING trials whose worker is gone (call under the study's lock); returns their ids.

    On this host: its process is gone (a live process's trial is never failed, however long the storage keeps
    it waiting). Another host's: its heartbeat is older than GRACE_PERIOD_S. A trial without an owner (not
    made by mbgd): once it is older than the grace period. Where Optuna's reading of stale heartbeats is not
    verified (mbgd.studies.optuna_internals), Optuna's own fail_stale_trials fails the trials whose heartbeat
    is older than the grace period, of this host's live processes too.
    """
    now = datetime.datetime.now()
    stale: set[int] | None = None

    def heartbeat_stopped(trial_id: int) -> bool:
        nonlocal stale
        if stale is None:
            stale = (has_heartbeats(storage) and optuna_internals.stale_trial_ids(storage, study_id)) or set()
        return trial_id in stale

    failed = []
    if has_heartbeats(storage) and not optuna_internals.fast_paths():
        failed = _fail_stale_publicly(study, storage, study_id, trials)
        trials = [(trial_id, t) for trial_id, t in trials if trial_id not in failed]
    for trial_id, trial in trials:
        if trial.state != STATE.RUNNING:
            continue
        worker = trial.user_attrs.get(WORKER_ATTR)
        reason = None
        if worker and owner_gone(
            worker["host"], worker["pid"], heartbeat_stale=lambda t=trial_id: heartbeat_stopped(t)
        ):
            reason = "its worker process died" if worker["host"] == HOST else "its worker's heartbeat stopped"
        elif not worker and (now - (trial.datetime_start or now)).total_seconds() > GRACE_PERIOD_S:
            reason = "its worker died before taking it"
        if reason is None:
            continue
        with contextlib.suppress(
            optuna.exceptions.UpdateFinishedTrialError
        ):  # a program without the lock did
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            if storage.set_trial_state_values(trial_id, state=STATE.FAIL):
                failed.append(trial_id)
    return failed


def _fail_stale_publicly(
    study: optuna.Study | None, storage: Storage, study_id: int, trials: Sequence[tuple[int, object]]
) -> list[int]:
    """The public path's heartbeat rule: Optuna's own fail_stale_trials, after a heartbeat recorded for each
    RUNNING trial of a live process of this host (so that, as on the fast path, no live local trial is failed,
    however long its process was silent). Returns the ids of the trials it failed (with no fail_reason: a
    finished trial takes no attribute)."""
    running = [(trial_id, t) for trial_id, t in trials if t.state == STATE.RUNNING]
    if not running:
        return []
    for trial_id, trial in running:
        worker = trial.user_attrs.get(WORKER_ATTR)
        if worker and worker["host"] == HOST and liveness.process_alive(int(worker["pid"])):
            record_heartbeat(storage, trial_id)
    study = study or optuna.load_study(study_name=storage.get_study_name_from_id(study_id), storage=storage)
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return [trial_id for trial_id, _ in running if storage.get_trial(trial_id).state == STATE.FAIL]


def create_running_trials(
    storage: Storage, study_id: int, templates: Sequence[optuna.trial.FrozenTrial]
) -> list[int]:
    """Make the RUNNING trials of `templates` (params, owner) with their first heartbeats (at once: a trial
    with none is never found stale); returns their ids in the order the storage numbered them.

    On a database, where mbgd.studies.optuna_internals is verified, in one transaction with the rows the
    storage's own create_new_trial writes; elsewhere, and for templates with values or reports (never asked
    for here), one by one through create_new_trial.
    """
    if (
        isinstance(storage, optuna.storages.RDBStorage)
        and optuna_internals.fast_paths()
        and not any(t.values or t.intermediate_values for t in templates)
    ):
        return optuna_internals.create_trials(
            storage, study_id, templates, heartbeats=has_heartbeats(storage)
        )
    trial_ids = [storage.create_new_trial(study_id, template_trial=t) for t in templates]
    for trial_id in trial_ids:
        record_heartbeat(storage, trial_id)
    return trial_ids


def tell(study: optuna.Study, storage: Storage, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Tell each trial its outcome under the study's lock, if it is still RUNNING; returns those told.

    A trial found finished was failed by another worker while this one trained it (its heartbeat looked
    stale): one line says so, and its budget is asked again like any failed trial's. On a database, where
    mbgd.studies.optuna_internals is verified, the outcomes are written in one transaction.
    """
    study_id = study_id_of(storage, study)
    with study_locks.held_for(storage, study_id):
        running = dict(trials_with_ids(storage, study_id, states=(STATE.RUNNING,)))
        told = []
        for outcome in outcomes:
            if outcome.trial.trial_id in running:
                told.append(outcome)
            else:
                _say_failed_meanwhile(study, storage, outcome.trial.trial_id)
        if isinstance(storage, optuna.storages.RDBStorage) and optuna_internals.fast_paths():
            try:
                optuna_internals.tell_together(
                    storage, [_write_of(o, running[o.trial.trial_id]) for o in told]
                )
                return told
            # a program without the lock finished one, or wrote one of the attributes meanwhile
            except (optuna.exceptions.UpdateFinishedTrialError, optuna.exceptions.StorageInternalError):
                pass
        return [o for o in told if _tell_one(study, storage, o, running[o.trial.trial_id])]


def _write_of(outcome: Outcome, stored: optuna.trial.FrozenTrial) -> TrialWrite:
    return TrialWrite(outcome.trial.trial_id, outcome.state, _values(outcome, stored), outcome.user_attrs)


def _write_outcome(storage: Storage, outcome: Outcome, stored: optuna.trial.FrozenTrial) -> None:
    trial_id = outcome.trial.trial_id
    for key, value in outcome.user_attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    storage.set_trial_state_values(trial_id, state=outcome.state, values=_values(outcome, stored))


def _tell_one(
    study: optuna.Study, storage: Storage, outcome: Outcome, stored: optuna.trial.FrozenTrial
) -> bool:
    """One outcome on its own; False (and one line) if the trial was finished meanwhile."""
    try:
        _write_outcome(storage, outcome, stored)
    except optuna.exceptions.UpdateFinishedTrialError:
        _say_failed_meanwhile(study, storage, outcome.trial.trial_id)
        return False
    return True


def _say_failed_meanwhile(study: optuna.Study, storage: Storage, trial_id: int) -> None:
    stored = storage.get_trial(trial_id)
    reason = stored.user_attrs.get("fail_reason", "")
    log.warning(
        "mbgd: trial %s of %s was failed while this worker ran it%s; its budget is asked again",
        stored.number,
        study.study_name,
        f" ({reason})" if reason else "",
    )


def fail_unfinished(study: optuna.Study, storage: Storage, trials: Sequence[AskedTrial]) -> None:
    """Fail this process's trials still RUNNING (interrupted between ask and tell); those already told stay as
    told. Besides `trials`, any RUNNING trial of the study this process owns: a stop that lands after the
    storage committed a new trial but before reserve recorded it leaves one that only its owner names."""
    trial_ids = [trial.trial_id for trial in trials]
    mine = {"host": HOST, "pid": os.getpid()}
    with contextlib.suppress(Exception):  # best effort: the storage may be what the stop interrupted
        running = trials_with_ids(storage, study_id_of(storage, study), states=(STATE.RUNNING,))
        trial_ids += [trial_id for trial_id, t in running if t.user_attrs.get(WORKER_ATTR) == mine]
    for trial_id in dict.fromkeys(trial_ids):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            storage.set_trial_state_values(trial_id, state=STATE.FAIL)


def fail_abandoned(storage: Storage, study_name: str) -> None:
    """Fail the study's RUNNING trials whose worker is gone, as the next reserve would (the sweep does this
    once its workers have ended, so that a worker stopped mid-write leaves no trial RUNNING).
    No such study: nothing to do."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return
    with study_locks.held_for(storage, study_id):
        _fail_abandoned(None, storage, study_id, trials_with_ids(storage, study_id))


def _values(outcome: Outcome, stored: optuna.trial.FrozenTrial) -> list[float] | None:
    """COMPLETE: the value; PRUNED: the last reported intermediate value if finite (as Study.tell records
    it)."""
    if outcome.state == STATE.COMPLETE:
        return [outcome.value]
    if outcome.state == STATE.PRUNED and stored.last_step is not None:
        last = stored.intermediate_values[stored.last_step]
        return [last] if math.isfinite(last) else None
    return None


def has_heartbeats(storage: Storage) -> bool:
    return isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() is not None


def record_heartbeat(storage: Storage, trial_id: int) -> None:
    if has_heartbeats(storage):
        storage.record_heartbeat(trial_id)


@contextlib.contextmanager
def heartbeats(storage: Storage, trial_ids: Sequence[int]) -> Iterator[None]:
    """Record the trials' heartbeats every HEARTBEAT_INTERVAL_S while the block runs (RDB storages only)."""
    if not has_heartbeats(storage):
        yield
        return

    def beat() -> None:
        for trial_id in trial_ids:
            record_heartbeat(storage, trial_id)

    with liveness.heartbeat(
        beat, HEARTBEAT_INTERVAL_S, now=False
    ):  # the first is recorded when a trial is made
        yield
