"""The multi-worker protocol in one process: a worker stalled past the grace period keeps its trials, a trial
failed under its worker is retried without a crash, budgets stay exact, and a told trial can be rebuilt."""

import contextlib
import datetime
import logging
import math
import os
import sqlite3
import subprocess
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from checks import small_sweep, storage_of
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import load_data
from mbgd.studies import lock as study_lock
from mbgd.studies import optuna_internals, protocol, sweep
from mbgd.studies.storage import open_storage, open_study
from mbgd.studies.sweep import add_finished_trials, lr_distribution, run_study

TUTORIAL = TrainConfig()
DATA = load_data(TUTORIAL.data, TUTORIAL.seed)
STATE = optuna.trial.TrialState
LR = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)


def another_workers_look(config: SweepConfig) -> int:
    """What another worker does before it asks: fail the abandoned trials and count (taking nothing)."""
    study = open_study(config, 10, open_storage(config.storage))
    return protocol.reserve(
        study, storage_of(study), config.n_trials, 0, lr_distribution(config), lambda count: [], []
    )


def stalled_once(monkeypatch: pytest.MonkeyPatch, during_stall) -> None:
    """The first population's training blocks for 2.5 s (no heartbeat meanwhile) and runs `during_stall`."""
    fit = sweep.fit_population
    stalls = []

    def stalled_fit(*args, **kwargs):
        if not stalls:
            stalls.append(time.monotonic())
            time.sleep(2.5)
            during_stall()
        return fit(*args, **kwargs)

    monkeypatch.setattr("mbgd.studies.sweep.fit_population", stalled_fit)


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1 s grace period and no heartbeat after a trial's first: any stall outlasts it."""
    monkeypatch.setattr(protocol, "GRACE_PERIOD_S", 1)
    monkeypatch.setattr(protocol, "HEARTBEAT_INTERVAL_S", 3600)


def test_a_local_worker_stalled_past_the_grace_period_keeps_its_trials(
    tmp_path: Path, monkeypatch, impatient
) -> None:
    config = small_sweep(tmp_path, seeds=1)
    stalled_once(monkeypatch, lambda: another_workers_look(config))
    study = run_study(config, DATA, 10, open_storage(config.storage))
    states = [t.state for t in study.trials]
    # its process was alive: nothing failed, nothing asked beyond the budget
    assert states == [STATE.COMPLETE] * 5


def test_a_trial_failed_under_its_worker_is_retried_and_the_worker_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, impatient, caplog: pytest.LogCaptureFixture
) -> None:
    config = small_sweep(tmp_path, seeds=1)
    here = protocol.HOST
    # the worker's trials look remote: judged by heartbeat
    monkeypatch.setattr(protocol, "HOST", "another-host")

    def look_from_here() -> None:
        monkeypatch.setattr(protocol, "HOST", here)
        another_workers_look(config)  # finds the stalled trials' heartbeats stale and fails them
        monkeypatch.setattr(protocol, "HOST", "another-host")

    stalled_once(monkeypatch, look_from_here)
    with caplog.at_level(logging.WARNING, logger="mbgd"):
        study = run_study(config, DATA, 10, open_storage(config.storage))
    states = [t.state for t in study.trials]
    assert states.count(STATE.COMPLETE) == 5
    assert states[:2] == [STATE.FAIL, STATE.FAIL]
    # The public path fails them through Optuna's fail_stale_trials, which leaves no reason.
    reason = "its worker's heartbeat stopped" if optuna_internals.fast_paths() else None
    assert {t.user_attrs.get("fail_reason") for t in study.trials[:2]} == {reason}
    lost = [r.getMessage() for r in caplog.records if "was failed while this worker ran it" in r.getMessage()]
    assert len(lost) == 2, caplog.text


def test_every_told_trial_stores_what_its_run_needs(tmp_path: Path) -> None:
    config = small_sweep(tmp_path, seeds=1)
    study = run_study(config, DATA, 10, open_storage(config.storage))
    trial = study.trials[0]
    record = sweep.stored_record(trial, 10)
    assert record.number == trial.number
    assert record.lr == trial.params["lr"]
    assert record.value == trial.value
    assert record.state == "COMPLETE"
    assert len(record.history.epoch_losses) == config.train.epochs + 1


def test_a_reservation_takes_only_the_budget_no_one_holds(tmp_path: Path) -> None:
    """Two workers asking for more than is left take exactly what is left, and create nothing to be failed."""
    config = replace(small_sweep(tmp_path, seeds=1), n_trials=7)
    first = open_study(config, 10, open_storage(config.storage))
    second = open_study(config, 10, open_storage(config.storage))
    lrs = lambda count: [0.01] * count  # noqa: E731
    taken_first, taken_second = [], []
    protocol.reserve(first, storage_of(first), config.n_trials, 4, lr_distribution(config), lrs, taken_first)
    protocol.reserve(
        second, storage_of(second), config.n_trials, 4, lr_distribution(config), lrs, taken_second
    )
    assert (len(taken_first), len(taken_second)) == (4, 3)
    assert sorted(t.number for t in taken_first + taken_second) == list(range(7))


def test_a_worker_that_ended_but_was_not_reaped_counts_as_dead() -> None:
    import subprocess
    import time

    from mbgd.runtime.liveness import process_alive

    child = subprocess.Popen(["sleep", "30"])
    assert process_alive(child.pid)
    child.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the kernel makes it a zombie: ended, not yet reaped by us
        with open(f"/proc/{child.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)


# --- study_lock, per database: the statements sent, checked on a recording engine ---------------------


class RecordingEngine:
    """An engine of the given dialect whose connections record what is executed and whether rolled back."""

    def __init__(self, dialect: str, database: str | None = None) -> None:
        from types import SimpleNamespace

        self.dialect = SimpleNamespace(name=dialect)
        self.url = SimpleNamespace(database=database)
        self.log: list = []

    @contextlib.contextmanager
    def connect(self):
        from types import SimpleNamespace

        self.log.append("connect")
        try:
            yield SimpleNamespace(
                execute=lambda text, params: self.log.append((str(text), params)),
                rollback=lambda: self.log.append("rollback"),
            )
        finally:
            self.log.append("close")


def storage_on(engine: RecordingEngine) -> optuna.storages.RDBStorage:
    """An RDB storage whose engine is `engine` (made without a database)."""
    storage = object.__new__(optuna.storages.RDBStorage)
    storage.engine = engine
    return storage


def seen_inside_then_raise(engine: RecordingEngine, seen: list) -> None:
    """Hold study 7's lock, note what the engine was sent by then, and leave the block by an exception."""
    with study_lock.held_for(storage_on(engine), 7):
        seen.extend(engine.log)
        raise KeyError  # whatever ends the block ends the lock


def test_postgresql_lock_is_a_transaction_advisory_lock_keyed_mbgd_and_the_study() -> None:
    engine, seen = RecordingEngine("postgresql"), []
    with pytest.raises(KeyError):
        seen_inside_then_raise(engine, seen)
    lock = ("SELECT pg_advisory_xact_lock(:namespace, :study)", {"namespace": 0x6D626764, "study": 7})
    assert seen == ["connect", lock]
    assert engine.log == [*seen, "rollback", "close"]
    assert int.from_bytes(b"mbgd", "big") == 0x6D626764


def test_mysql_lock_is_a_named_lock_released_when_the_block_ends() -> None:
    engine, seen = RecordingEngine("mysql"), []
    with pytest.raises(KeyError):
        seen_inside_then_raise(engine, seen)
    assert seen == ["connect", ("SELECT GET_LOCK(:name, -1)", {"name": "mbgd-study-7"})]
    assert engine.log == [*seen, ("SELECT RELEASE_LOCK(:name)", {"name": "mbgd-study-7"}), "close"]


def test_sqlite_file_lock_is_an_exclusive_flock_beside_the_database(tmp_path: Path) -> None:
    import fcntl

    database = str(tmp_path / "s.db")
    engine = RecordingEngine("sqlite", database)
    with study_lock.held_for(storage_on(engine), 7):
        with open(f"{database}.lock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert not study_lock.LOCAL_LOCK.locked()
    with open(f"{database}.lock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    assert engine.log == []
    assert (tmp_path / "s.db.lock").stat().st_mode & 0o777 == 0o644 & ~_umask()


def test_every_step_that_moves_budget_waits_for_the_study_s_lock(tmp_path: Path) -> None:
    """reserve, tell and fail_abandoned on a sqlite study block while another process holds the lock file."""
    import fcntl
    import threading

    config = small_sweep(tmp_path, seeds=1)
    storage = open_storage(config.storage)
    study = open_study(config, 10, storage)
    taken: list[protocol.AskedTrial] = []
    protocol.reserve(
        study, storage_of(study), 5, 1, lr_distribution(config), lambda count: [0.01] * count, taken
    )
    steps = {
        "reserve": lambda: protocol.reserve(
            study, storage_of(study), 5, 1, lr_distribution(config), lambda n: [0.02] * n, []
        ),
        "tell": lambda: protocol.tell(
            study, storage_of(study), [protocol.Outcome(taken[0], STATE.COMPLETE, 1.0)]
        ),
        "fail_abandoned": lambda: protocol.fail_abandoned(storage, study.study_name),
    }
    for name, step in steps.items():
        with open(f"{tmp_path / 'optuna.db'}.lock") as holder:  # another open file: flock sees another owner
            fcntl.flock(holder, fcntl.LOCK_EX)
            thread = threading.Thread(target=step, daemon=True)
            thread.start()
            thread.join(0.5)
            assert thread.is_alive(), f"{name} went ahead without the lock"
        thread.join(30)  # closing the file released the lock
        assert not thread.is_alive(), name
    assert [t.state for t in study.trials] == [STATE.COMPLETE, STATE.RUNNING]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("database", [None, "", ":memory:"])
def test_sqlite_in_memory_and_storages_without_a_database_take_the_process_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database
) -> None:
    monkeypatch.chdir(tmp_path)
    for storage in (storage_on(RecordingEngine("sqlite", database)), optuna.storages.InMemoryStorage()):
        with study_lock.held_for(storage, 7):
            assert study_lock.LOCAL_LOCK.locked()
        assert not study_lock.LOCAL_LOCK.locked()
    assert list(tmp_path.iterdir()) == []  # no lock file


# --- tell and fail_unfinished, on an in-memory study -------------------------------------------------


def asked(study: optuna.Study, lr: float = 0.01) -> tuple[protocol.AskedTrial, optuna.trial.Trial]:
    trial = study.ask({"lr": LR})
    return protocol.AskedTrial(trial._trial_id, lr, trial.number), trial


def test_tell_records_each_outcome_and_skips_trials_failed_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    study = optuna.create_study(study_name="told")
    (done, _), (pruned, reported), (nan_pruned, nan_reported), (silent, _), (failed, _) = [
        asked(study) for _ in range(5)
    ]
    (quiet_failed, _) = asked(study)
    reported.report(3.0, 1)
    reported.report(2.0, 4)  # the last step's value: 2.0
    nan_reported.report(float("nan"), 2)
    storage = study._storage
    storage.set_trial_user_attr(failed.trial_id, "fail_reason", "its worker process died")
    storage.set_trial_state_values(failed.trial_id, state=STATE.FAIL)
    storage.set_trial_state_values(quiet_failed.trial_id, state=STATE.FAIL)
    outcomes = [
        protocol.Outcome(done, STATE.COMPLETE, 1.5, {"epoch_losses": [3.0, 1.5]}),
        protocol.Outcome(pruned, STATE.PRUNED),
        protocol.Outcome(nan_pruned, STATE.PRUNED),
        protocol.Outcome(silent, STATE.PRUNED),
        protocol.Outcome(failed, STATE.COMPLETE, 9.0),
        protocol.Outcome(quiet_failed, STATE.COMPLETE, 9.0),
    ]
    with caplog.at_level(logging.WARNING, logger="mbgd"):
        assert protocol.tell(study, storage_of(study), outcomes) == outcomes[:4]
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [STATE.COMPLETE] + [STATE.PRUNED] * 3 + [STATE.FAIL] * 2
    assert [t.values for t in trials] == [[1.5], [2.0], None, None, None, None]
    assert trials[0].user_attrs == {"epoch_losses": [3.0, 1.5]}
    assert trials[4].user_attrs == {"fail_reason": "its worker process died"}  # not overwritten
    assert [r.getMessage() for r in caplog.records if r.name == "mbgd"] == [
        "mbgd: trial 4 of told was failed while this worker ran it (its worker process died); its budget is "
        "asked again",
        "mbgd: trial 5 of told was failed while this worker ran it; its budget is asked again",
    ]


def test_fail_unfinished_fails_only_the_trials_still_running() -> None:
    study = optuna.create_study()
    (running, _), (told, _) = asked(study), asked(study)
    study._storage.set_trial_state_values(told.trial_id, state=STATE.COMPLETE, values=[1.0])
    protocol.fail_unfinished(study, storage_of(study), [running, told])
    assert [(t.state, t.values) for t in study.trials] == [(STATE.FAIL, None), (STATE.COMPLETE, [1.0])]


def owned_trial(study: optuna.Study, host: str, pid: int) -> int:
    """A RUNNING trial created as reserve creates one: owner in its user attributes from the start."""
    return running_trial(study, {"host": host, "pid": pid})


def running_trial(study: optuna.Study, owner: dict | None, started_s_ago: float = 0.0) -> int:
    template = optuna.trial.create_trial(
        state=STATE.RUNNING,
        params={"lr": 0.01},
        distributions={"lr": LR},
        user_attrs={protocol.WORKER_ATTR: owner} if owner else {},
    )
    template.datetime_start = datetime.datetime.now() - datetime.timedelta(seconds=started_s_ago)
    return study._storage.create_new_trial(study._study_id, template_trial=template)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_fail_unfinished_also_fails_this_process_s_unrecorded_trials_and_no_one_else_s() -> None:
    study = optuna.create_study()
    unrecorded = owned_trial(study, protocol.HOST, os.getpid())  # committed, then the stop: not in the list
    elsewhere = owned_trial(study, "another-host", os.getpid())
    other_process = owned_trial(study, protocol.HOST, os.getppid())
    protocol.fail_unfinished(study, storage_of(study), [])
    states = {t._trial_id: t.state for t in study.trials}
    assert states == {unrecorded: STATE.FAIL, elsewhere: STATE.RUNNING, other_process: STATE.RUNNING}


def test_fail_unfinished_still_fails_the_asked_trials_when_the_storage_cannot_be_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = optuna.create_study()
    (running, _), (also_running, _) = asked(study), asked(study)

    def unreadable(*args, **kwargs):
        raise RuntimeError("database is locked")  # what a stop inside a storage call can leave

    monkeypatch.setattr(study._storage, "get_all_trials", unreadable)
    protocol.fail_unfinished(study, storage_of(study), [running, also_running])
    monkeypatch.undo()
    assert [t.state for t in study.trials] == [STATE.FAIL, STATE.FAIL]


def test_a_stop_right_after_a_new_trial_is_committed_leaves_no_trial_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = small_sweep(tmp_path, seeds=1)
    storage = open_storage(config.storage)
    create = protocol.create_running_trials

    def committed_then_stopped(*args, **kwargs):
        create(*args, **kwargs)
        raise KeyboardInterrupt  # as a signal handler would, before reserve records the trials

    monkeypatch.setattr(protocol, "create_running_trials", committed_then_stopped)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, DATA, 10, storage)
    trials = open_study(config, 10, open_storage(config.storage)).trials
    assert len(trials) == config.population
    assert {t.state for t in trials} == {STATE.FAIL}


def test_fail_abandoned_fails_the_trials_of_dead_local_workers_only(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    study = optuna.create_study(study_name="abandoned", storage=storage)
    gone = owned_trial(study, protocol.HOST, dead_pid())
    alive = owned_trial(study, protocol.HOST, 1)
    protocol.fail_abandoned(storage, "abandoned")
    protocol.fail_abandoned(storage, "no-such-study")  # nothing to do, and no study created
    states = {t._trial_id: t.state for t in optuna.load_study(study_name="abandoned", storage=storage).trials}
    assert states == {gone: STATE.FAIL, alive: STATE.RUNNING}
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["abandoned"]


def test_only_rdb_storages_with_an_interval_have_heartbeats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert not protocol.has_heartbeats(optuna.storages.InMemoryStorage())
    assert not protocol.has_heartbeats(optuna.storages.RDBStorage(url))
    with warnings.catch_warnings():  # heartbeats are experimental in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        beating = optuna.storages.RDBStorage(url, heartbeat_interval=60)
    assert protocol.has_heartbeats(beating)


# --- reserve at its edges: which abandoned trials it fails and why, the budget they free, and the enqueued
# trials it claims (how many, which, with a heartbeat) -----------------------------------------------------


def look(study: optuna.Study, n_trials: int = 10, wanted: int = 0, taken: list | None = None) -> int:
    """What a worker's reserve does; new trials get lr 0.02."""
    return protocol.reserve(
        study,
        storage_of(study),
        n_trials,
        wanted,
        LR,
        lambda count: [0.02] * count,
        [] if taken is None else taken,
    )


def fail_reasons(study: optuna.Study) -> list[tuple[STATE, str | None]]:
    return [(t.state, t.user_attrs.get("fail_reason")) for t in study.get_trials(deepcopy=False)]


def test_abandoned_trials_are_failed_with_their_reason_and_live_ones_kept() -> None:
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.01}, distributions={"lr": LR}, value=1.0))
    running_trial(study, {"host": protocol.HOST, "pid": dead_pid()})
    running_trial(study, {"host": protocol.HOST, "pid": os.getpid()})
    running_trial(study, {"host": "another-host", "pid": 1})  # judged by heartbeat: none on this storage
    running_trial(study, None, started_s_ago=protocol.GRACE_PERIOD_S + 30)
    running_trial(study, None, started_s_ago=protocol.GRACE_PERIOD_S - 30)
    look(study)
    assert fail_reasons(study) == [
        (STATE.COMPLETE, None),
        (STATE.FAIL, "its worker process died"),
        (STATE.RUNNING, None),
        (STATE.RUNNING, None),
        (STATE.FAIL, "its worker died before taking it"),
        (STATE.RUNNING, None),
    ]


def test_the_budget_of_failed_abandoned_trials_is_free_at_once() -> None:
    study = optuna.create_study()
    running_trial(study, {"host": protocol.HOST, "pid": dead_pid()})
    taken: list[protocol.AskedTrial] = []
    look(study, n_trials=2, wanted=2, taken=taken)
    assert [t.number for t in taken] == [1, 2]


def test_enqueued_trials_are_claimed_in_order_up_to_what_is_wanted() -> None:
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.01}, distributions={"lr": LR}, value=1.0))
    for lr in (0.05, 0.06, 0.07):
        study.enqueue_trial({"lr": lr})
    already = protocol.AskedTrial(trial_id=-1, lr=0.5)  # a caller's list that holds a trial already
    taken = [already]
    look(study, wanted=2, taken=taken)
    assert [(t.lr, t.number) for t in taken] == [(0.5, None), (0.05, 1), (0.06, 2)]
    assert [t.state for t in study.trials] == [STATE.COMPLETE, STATE.RUNNING, STATE.RUNNING, STATE.WAITING]
    look(study, wanted=2, taken=taken)  # the last enqueued one, then one new
    assert [(t.lr, t.number) for t in taken[3:]] == [(0.07, 3), (0.02, 4)]


def test_a_claimed_enqueued_trial_has_a_heartbeat_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="h")
    study.enqueue_trial({"lr": 0.05})
    taken: list[protocol.AskedTrial] = []
    look(study, wanted=2, taken=taken)
    with sqlite3.connect(tmp_path / "h.db") as db:
        beating = {row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")}
    db.close()
    assert len(taken) == 2
    assert beating == {t.trial_id for t in taken}


@pytest.mark.parametrize("wanted", [0, -1])
def test_nothing_wanted_creates_nothing(wanted: int) -> None:
    study = optuna.create_study()
    assert look(study, wanted=wanted) == 0
    assert study.trials == []


def population_templates(lrs, owner) -> list[optuna.trial.FrozenTrial]:
    return [
        optuna.trial.create_trial(
            state=STATE.RUNNING, params={"lr": lr}, distributions={"lr": LR}, user_attrs={"worker": owner}
        )
        for lr in lrs
    ]


def comparable(trial: optuna.trial.FrozenTrial) -> tuple:
    return (
        trial.number,
        trial.state,
        trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.system_attrs,
        trial.values,
        trial.intermediate_values,
        trial.datetime_complete is not None,
    )


def heartbeat_trial_ids(backend: optuna.storages.RDBStorage) -> set[int]:
    with contextlib.closing(backend.engine.connect()) as db:
        return {trial_id for (trial_id,) in db.exec_driver_sql("SELECT trial_id FROM trial_heartbeats")}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    return request.getfixturevalue("fresh_postgres_url")


def test_a_population_made_and_told_in_one_transaction_is_what_optuna_s_calls_one_by_one_make(
    database_url: str,
) -> None:
    backend = open_storage(database_url)
    owner = {"host": protocol.HOST, "pid": os.getpid()}
    lrs = [0.001, 0.01, 0.1]
    int_lr = optuna.distributions.IntDistribution(1, 10)
    together = optuna.create_study(study_name="together", storage=backend)
    alone = optuna.create_study(study_name="alone", storage=backend)
    optuna.trial.Trial(alone, backend.create_new_trial(alone._study_id))  # numbers go on from a trial
    backend.set_trial_state_values(alone.trials[0]._trial_id, STATE.FAIL)
    optuna.trial.Trial(together, backend.create_new_trial(together._study_id))
    backend.set_trial_state_values(together.trials[0]._trial_id, STATE.FAIL)

    made = protocol.create_running_trials(backend, together._study_id, population_templates(lrs, owner))
    one_by_one = []
    for template in population_templates(lrs, owner):
        one_by_one.append(backend.create_new_trial(alone._study_id, template_trial=template))
        backend.record_heartbeat(one_by_one[-1])
    assert [backend.get_trial(i).number for i in made] == [1, 2, 3]
    assert [comparable(backend.get_trial(i)) for i in made] == [
        comparable(backend.get_trial(i)) for i in one_by_one
    ]
    assert set(made) | set(one_by_one) <= heartbeat_trial_ids(backend)
    assert all(backend.get_trial(i).datetime_start is not None for i in made)
    with pytest.raises(ValueError, match="Cannot set different distribution kind"):  # as Optuna refuses it
        protocol.create_running_trials(
            backend,
            together._study_id,
            [optuna.trial.create_trial(state=STATE.RUNNING, params={"lr": 1}, distributions={"lr": int_lr})],
        )
    assert len(backend.get_all_trials(together._study_id)) == 4  # and nothing of it written

    def outcomes(trial_ids) -> list[protocol.Outcome]:
        backend.set_trial_intermediate_value(trial_ids[1], 3, 0.25)  # the pruned one reported
        backend.set_trial_user_attr(trial_ids[2], "diverged", False)  # an attribute the tell overwrites
        asked_trials = [protocol.AskedTrial(i, lr) for i, lr in zip(trial_ids, lrs, strict=True)]
        return [
            protocol.Outcome(asked_trials[0], STATE.COMPLETE, 1.5, {"epoch_losses": [3.0, 2.0]}),
            protocol.Outcome(asked_trials[1], STATE.PRUNED, None, {"pruned_at_epoch": 3}),
            protocol.Outcome(asked_trials[2], STATE.COMPLETE, 0.5, {"diverged": True}),
        ]

    assert len(protocol.tell(together, storage_of(together), outcomes(made))) == 3
    for outcome in outcomes(one_by_one):
        protocol._write_outcome(backend, outcome, backend.get_trial(outcome.trial.trial_id))
    told = [comparable(backend.get_trial(i)) for i in made]
    assert told == [comparable(backend.get_trial(i)) for i in one_by_one]
    assert [t[1] for t in told] == [STATE.COMPLETE, STATE.PRUNED, STATE.COMPLETE]
    assert [t[6] for t in told] == [[1.5], [0.25], [0.5]]


def test_a_trial_another_program_makes_while_a_population_is_made_is_numbered_before_it(
    tmp_path: Path,
) -> None:
    """On sqlite, where the study's row lock is no lock (on PostgreSQL the other program waits for it)."""
    from sqlalchemy import event

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    backend = open_storage(url)
    another_program = open_storage(url)  # its own engine, without the lock
    study = optuna.create_study(study_name="s", storage=backend)
    made_meanwhile = []

    def just_before_the_first_insert(conn, cursor, statement, *args) -> None:
        if statement.startswith("INSERT INTO trials") and not made_meanwhile:
            made_meanwhile.append(another_program.create_new_trial(study._study_id))

    event.listen(backend.engine, "before_cursor_execute", just_before_the_first_insert)
    made = protocol.create_running_trials(
        backend, study._study_id, population_templates([0.1, 0.2, 0.3], {"host": "h", "pid": 1})
    )
    event.remove(backend.engine, "before_cursor_execute", just_before_the_first_insert)
    numbers = {t._trial_id: t.number for t in backend.get_all_trials(study._study_id)}
    assert numbers[made_meanwhile[0]] == 0
    assert [numbers[trial_id] for trial_id in made] == [1, 2, 3]


def test_a_trial_another_program_finished_meanwhile_leaves_the_rest_of_the_population_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="s", storage=backend)
    owner = {"host": protocol.HOST, "pid": os.getpid()}
    templates = population_templates([0.1, 0.2], owner)
    trial_ids = protocol.create_running_trials(backend, study._study_id, templates)
    before = backend.get_all_trials(study._study_id, deepcopy=False, states=(STATE.RUNNING,))
    backend.set_trial_state_values(trial_ids[0], STATE.FAIL)  # a program without the lock, after the read
    monkeypatch.setattr(backend, "get_all_trials", lambda *args, **kwargs: before)
    outcomes = [protocol.Outcome(protocol.AskedTrial(i, 0.1), STATE.COMPLETE, 1.0) for i in trial_ids]
    with caplog.at_level(logging.WARNING, logger="mbgd"):
        told = protocol.tell(study, storage_of(study), outcomes)
    monkeypatch.undo()
    assert [o.trial.trial_id for o in told] == [trial_ids[1]]
    assert [t.state for t in study.trials] == [STATE.FAIL, STATE.COMPLETE]
    assert "trial 0 of s was failed while this worker ran it" in caplog.text


def test_a_storage_or_database_without_a_cross_process_lock_is_an_error_not_a_thread_lock(
    tmp_path: Path,
) -> None:
    from mbgd.core.config import ConfigError

    with pytest.raises(ConfigError, match="cannot lock a study across processes on a mssql database"):
        with study_lock.held_for(storage_on(RecordingEngine("mssql")), 7):
            pass
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log"))
    )
    with pytest.raises(ConfigError, match="not on JournalStorage"):
        with study_lock.held_for(journal, 7):
            pass
    assert not study_lock.LOCAL_LOCK.locked()


def test_finished_trials_added_in_one_transaction_are_what_study_add_trials_makes(database_url: str) -> None:
    backend = open_storage(database_url)
    together = optuna.create_study(study_name="together", storage=backend)
    alone = optuna.create_study(study_name="alone", storage=backend)
    for study in (together, alone):  # numbers go on from a trial
        backend.set_trial_state_values(backend.create_new_trial(study._study_id), STATE.FAIL)
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)

    def templates() -> list[optuna.trial.FrozenTrial]:
        return [
            optuna.trial.create_trial(
                params={"lr": value}, distributions={"lr": lr}, value=loss, user_attrs={"diverged": diverged}
            )
            for value, loss, diverged in ((1e-4, 2.5, False), (0.1, 0.25, False), (1.0, math.inf, True))
        ]

    add_finished_trials(backend, together, templates())
    alone.add_trials(templates())
    made = [comparable(t) for t in together.trials[1:]]
    assert made == [comparable(t) for t in alone.trials[1:]]
    assert [t[0] for t in made] == [1, 2, 3]
    assert [t[6] for t in made] == [[2.5], [0.25], [math.inf]]
    assert together.best_trial.params == {"lr": 0.1}
