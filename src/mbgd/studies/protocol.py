"""How several workers share one Optuna study: reserving budget, telling trials, failing the trials of workers
that are gone. The one module that relies on Optuna's storage internals (the RDB storage behind the cache, its
engine and its heartbeats).

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
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import optuna

from mbgd.runtime import liveness
from mbgd.runtime.liveness import HOST, owner_gone
from mbgd.studies import lock as study_locks

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


def rdb_backend(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """The storage behind Optuna's cache: reads from it see other processes' latest writes."""
    return getattr(storage, "_backend", storage)


@contextlib.contextmanager
def study_lock(storage: optuna.storages.BaseStorage, study_id: int) -> Iterator[None]:
    """Hold the study's lock (mbgd.studies.lock, on the storage's database): one process at a time, across
    machines where the database is shared; released when the block ends or the process dies."""
    with study_locks.held(getattr(rdb_backend(storage), "engine", None), study_id):
        yield


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


def within_budget(trials: Sequence[optuna.trial.FrozenTrial], n_trials: int) -> set[int]:
    """The trial ids that may run: the first n_trials budget-holding trials by number (ties by id)."""
    holding = sorted((t.number, t._trial_id) for t in trials if holds_budget(t))
    return {trial_id for _, trial_id in holding[:n_trials]}


def reserve(
    study: optuna.Study,
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
    storage = study._storage
    backend = rdb_backend(storage)
    owner = {"host": HOST, "pid": os.getpid()}
    first = len(taken)
    with study_lock(storage, study._study_id):
        trials = backend.get_all_trials(study._study_id, deepcopy=False)
        failed = set(_fail_abandoned(backend, study._study_id, trials))
        trials = [t for t in trials if t._trial_id not in failed]
        done = sum(t.state in FINISHED_STATES for t in trials)
        free = n_trials - sum(holds_budget(t) for t in trials)
        for trial in trials:
            lr = enqueued_lr(trial) if trial.state == STATE.WAITING else None
            if len(taken) - first >= wanted or lr is None:
                continue
            if backend.set_trial_state_values(trial._trial_id, state=STATE.RUNNING):
                taken.append(AskedTrial(trial._trial_id, lr, trial.number))
                backend.set_trial_param(
                    trial._trial_id, "lr", distribution.to_internal_repr(lr), distribution
                )
                backend.set_trial_user_attr(trial._trial_id, WORKER_ATTR, owner)
                record_heartbeat(backend, trial._trial_id)
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
        taken.extend(map(AskedTrial, create_running_trials(backend, study._study_id, templates), lrs))
        trials = backend.get_all_trials(study._study_id, deepcopy=False)
        numbers = {t._trial_id: t.number for t in trials}
        within = within_budget(trials, n_trials)
        for trial in taken[first:]:
            trial.number = numbers[trial.trial_id]
            if trial.trial_id not in within:  # only if a program that ignores the lock made trials meanwhile
                backend.set_trial_user_attr(trial.trial_id, "fail_reason", "beyond the budget; not run")
                backend.set_trial_state_values(trial.trial_id, state=STATE.FAIL)
        taken[first:] = [t for t in taken[first:] if t.trial_id in within]
    return done


def _fail_abandoned(backend, study_id: int, trials: Sequence[optuna.trial.FrozenTrial]) -> list[int]:
    """Fail the RUNNING trials whose worker is gone (call under the study's lock); returns their ids.

    On this host: its process is gone (a live process's trial is never failed, however long the storage keeps
    it waiting). Another host's: its heartbeat is older than GRACE_PERIOD_S. A trial without an owner (not
    made by mbgd): once it is older than the grace period.
    """
    now = datetime.datetime.now()
    stale: set[int] | None = None

    def heartbeat_stopped(trial_id: int) -> bool:
        nonlocal stale
        if stale is None:
            stale = set(backend._get_stale_trial_ids(study_id)) if has_heartbeats(backend) else set()
        return trial_id in stale

    failed = []
    for trial in trials:
        if trial.state != STATE.RUNNING:
            continue
        worker = trial.user_attrs.get(WORKER_ATTR)
        reason = None
        if worker and owner_gone(
            worker["host"], worker["pid"], heartbeat_stale=lambda t=trial._trial_id: heartbeat_stopped(t)
        ):
            reason = "its worker process died" if worker["host"] == HOST else "its worker's heartbeat stopped"
        elif not worker and (now - (trial.datetime_start or now)).total_seconds() > GRACE_PERIOD_S:
            reason = "its worker died before taking it"
        if reason is None:
            continue
        with contextlib.suppress(
            optuna.exceptions.UpdateFinishedTrialError
        ):  # a program without the lock did
            backend.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            if backend.set_trial_state_values(trial._trial_id, state=STATE.FAIL):
                failed.append(trial._trial_id)
    return failed


def create_running_trials(backend, study_id: int, templates: Sequence[optuna.trial.FrozenTrial]) -> list[int]:
    """Make the RUNNING trials of `templates` (params, owner) with their first heartbeats (at once: a trial
    with none is never found stale); returns their ids in the order the storage numbered them.

    On a database in one transaction, with the rows the storage's own create_new_trial writes: the trials
    (numbered after the trials before them, as it numbers them, under the same lock of the study's row), their
    params (the distribution checked against the study's, as it checks each), attributes and heartbeats. Its
    own step costs a flush and four queries per trial, most of what asking a population cost. Elsewhere, and
    for templates with values or reports (never asked for here), one by one.
    """
    if not isinstance(backend, optuna.storages.RDBStorage) or any(
        t.values or t.intermediate_values for t in templates
    ):
        trial_ids = [backend.create_new_trial(study_id, template_trial=t) for t in templates]
        for trial_id in trial_ids:
            record_heartbeat(backend, trial_id)
        return trial_ids
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func

    with _create_scoped_session(backend.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        trials = [
            models.TrialModel(
                study_id=study_id,
                number=None,
                state=template.state,
                datetime_start=template.datetime_start,
                datetime_complete=template.datetime_complete,
            )
            for template in templates
        ]
        session.add_all(trials)
        session.flush()
        # Counted after the insert, as the storage counts: on sqlite the row lock above is no lock, and a
        # program without the study's lock may add a trial until this transaction's first write.
        first_id = min(trial.trial_id for trial in trials)
        trials_before = (
            session.query(func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id, models.TrialModel.trial_id < first_id)
            .scalar()
        )
        for i, trial in enumerate(trials):
            trial.number = trials_before + i
        for name in {name for template in templates for name in template.params}:
            _check_distributions(session, models, study_id, name, templates)
        for trial, template in zip(trials, templates, strict=True):
            session.add_all(
                models.TrialParamModel(
                    trial_id=trial.trial_id,
                    param_name=name,
                    param_value=template.distributions[name].to_internal_repr(value),
                    distribution_json=optuna.distributions.distribution_to_json(template.distributions[name]),
                )
                for name, value in template.params.items()
            )
            for model, attrs in (
                (models.TrialUserAttributeModel, template.user_attrs),
                (models.TrialSystemAttributeModel, template.system_attrs),
            ):
                session.add_all(
                    model(trial_id=trial.trial_id, key=key, value_json=json.dumps(value))
                    for key, value in attrs.items()
                )
        if has_heartbeats(backend):
            session.add_all(models.TrialHeartbeatModel(trial_id=trial.trial_id) for trial in trials)
        trial_ids = [trial.trial_id for trial in trials]
    return trial_ids


def _check_distributions(session, models, study_id: int, name: str, templates) -> None:
    """Raise as the storage does when a template's distribution of param `name` is not compatible with the
    one the study's trials have (the first found) or, for a new param, with the first template's."""
    previous = (
        session.query(models.TrialParamModel)
        .join(models.TrialModel)
        .filter(models.TrialModel.study_id == study_id)
        .filter(models.TrialParamModel.param_name == name)
        .first()
    )
    given = [template.distributions[name] for template in templates if name in template.params]
    first = optuna.distributions.json_to_distribution(previous.distribution_json) if previous else given[0]
    for distribution in given:
        optuna.distributions.check_distribution_compatibility(first, distribution)


def tell(study: optuna.Study, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Tell each trial its outcome under the study's lock, if it is still RUNNING; returns those told.

    A trial found finished was failed by another worker while this one trained it (its heartbeat looked
    stale): one line says so, and its budget is asked again like any failed trial's.
    """
    backend = rdb_backend(study._storage)
    with study_lock(study._storage, study._study_id):
        running = {
            t._trial_id: t
            for t in backend.get_all_trials(study._study_id, deepcopy=False, states=(STATE.RUNNING,))
        }
        told = []
        for outcome in outcomes:
            if outcome.trial.trial_id in running:
                told.append(outcome)
            else:
                _say_failed_meanwhile(study, backend, outcome.trial.trial_id)
        if isinstance(backend, optuna.storages.RDBStorage):
            try:
                _tell_together(backend, told, running)
                return told
            # a program without the lock finished one, or wrote one of the attributes meanwhile
            except (optuna.exceptions.UpdateFinishedTrialError, optuna.exceptions.StorageInternalError):
                pass
        return [o for o in told if _tell_one(study, backend, o, running[o.trial.trial_id])]


def _tell_together(backend: optuna.storages.RDBStorage, outcomes: Sequence[Outcome], running: dict) -> None:
    """The outcomes written in one transaction (all or none), the rows set_trial_user_attr and
    set_trial_state_values write for each."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        trial_ids = [outcome.trial.trial_id for outcome in outcomes]

        def rows_of(model, *, for_update: bool = False):
            query = session.query(model).filter(model.trial_id.in_(trial_ids))
            return query.with_for_update() if for_update else query

        # three reads for the population, where the storage's own calls read each row on its own
        trials = {trial.trial_id: trial for trial in rows_of(models.TrialModel, for_update=True)}
        attrs = {(a.trial_id, a.key): a for a in rows_of(models.TrialUserAttributeModel)}
        values = {(v.trial_id, v.objective): v for v in rows_of(models.TrialValueModel)}
        for outcome in outcomes:
            trial_id = outcome.trial.trial_id
            trial = trials.get(trial_id) or models.TrialModel.find_or_raise_by_id(trial_id, session)
            backend.check_trial_is_updatable(trial_id, trial.state)
            for key, value in outcome.user_attrs.items():
                if (trial_id, key) in attrs:
                    attrs[trial_id, key].value_json = json.dumps(value)
                else:
                    session.add(
                        models.TrialUserAttributeModel(
                            trial_id=trial_id, key=key, value_json=json.dumps(value)
                        )
                    )
            for objective, value in enumerate(_values(outcome, running[trial_id]) or ()):
                stored, value_type = models.TrialValueModel.value_to_stored_repr(value)
                if (trial_id, objective) in values:
                    values[trial_id, objective].value = stored
                    values[trial_id, objective].value_type = value_type
                else:
                    session.add(
                        models.TrialValueModel(
                            trial_id=trial_id, objective=objective, value=stored, value_type=value_type
                        )
                    )
            trial.state = outcome.state
            trial.datetime_complete = datetime.datetime.now()


def _write_outcome(backend, outcome: Outcome, stored: optuna.trial.FrozenTrial) -> None:
    trial_id = outcome.trial.trial_id
    for key, value in outcome.user_attrs.items():
        backend.set_trial_user_attr(trial_id, key, value)
    backend.set_trial_state_values(trial_id, state=outcome.state, values=_values(outcome, stored))


def _tell_one(study: optuna.Study, backend, outcome: Outcome, stored: optuna.trial.FrozenTrial) -> bool:
    """One outcome on its own; False (and one line) if the trial was finished meanwhile."""
    try:
        _write_outcome(backend, outcome, stored)
    except optuna.exceptions.UpdateFinishedTrialError:
        _say_failed_meanwhile(study, backend, outcome.trial.trial_id)
        return False
    return True


def _say_failed_meanwhile(study: optuna.Study, backend, trial_id: int) -> None:
    stored = backend.get_trial(trial_id)
    reason = stored.user_attrs.get("fail_reason", "")
    log.warning(
        "mbgd: trial %s of %s was failed while this worker ran it%s; its budget is asked again",
        stored.number,
        study.study_name,
        f" ({reason})" if reason else "",
    )


def fail_unfinished(study: optuna.Study, trials: Sequence[AskedTrial]) -> None:
    """Fail this process's trials still RUNNING (interrupted between ask and tell); those already told stay as
    told. Besides `trials`, any RUNNING trial of the study this process owns: a stop that lands after the
    storage committed a new trial but before reserve recorded it leaves one that only its owner names."""
    trial_ids = [trial.trial_id for trial in trials]
    mine = {"host": HOST, "pid": os.getpid()}
    with contextlib.suppress(Exception):  # best effort: the storage may be what the stop interrupted
        running = rdb_backend(study._storage).get_all_trials(
            study._study_id, deepcopy=False, states=(STATE.RUNNING,)
        )
        trial_ids += [t._trial_id for t in running if t.user_attrs.get(WORKER_ATTR) == mine]
    for trial_id in dict.fromkeys(trial_ids):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            study._storage.set_trial_state_values(trial_id, state=STATE.FAIL)


def fail_abandoned(storage: optuna.storages.BaseStorage, study_name: str) -> None:
    """Fail the study's RUNNING trials whose worker is gone, as the next reserve would (the sweep does this
    once its workers have ended, so that a worker stopped mid-write leaves no trial RUNNING).
    No such study: nothing to do."""
    backend = rdb_backend(storage)
    try:
        study_id = backend.get_study_id_from_name(study_name)
    except KeyError:
        return
    with study_lock(storage, study_id):
        _fail_abandoned(backend, study_id, backend.get_all_trials(study_id, deepcopy=False))


def _values(outcome: Outcome, stored: optuna.trial.FrozenTrial) -> list[float] | None:
    """COMPLETE: the value; PRUNED: the last reported intermediate value if finite (as Study.tell records
    it)."""
    if outcome.state == STATE.COMPLETE:
        return [outcome.value]
    if outcome.state == STATE.PRUNED and stored.last_step is not None:
        last = stored.intermediate_values[stored.last_step]
        return [last] if math.isfinite(last) else None
    return None


def has_heartbeats(storage: optuna.storages.BaseStorage) -> bool:
    backend = rdb_backend(storage)
    return (
        isinstance(backend, optuna.storages._heartbeat.BaseHeartbeat)
        and backend.get_heartbeat_interval() is not None
    )


def record_heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    if has_heartbeats(storage):
        rdb_backend(storage).record_heartbeat(trial_id)


@contextlib.contextmanager
def heartbeats(study: optuna.Study, trial_ids: Sequence[int]) -> Iterator[None]:
    """Record the trials' heartbeats every HEARTBEAT_INTERVAL_S while the block runs (RDB storages only)."""
    storage = study._storage
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
