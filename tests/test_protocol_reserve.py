"""protocol.reserve at its edges, on in-memory and sqlite studies: which abandoned trials it fails and why,
the budget they free, and the enqueued trials it claims (how many, which, with a heartbeat)."""

import datetime
import os
import sqlite3
import subprocess
from pathlib import Path

import optuna
import pytest

from mbgd import protocol
from mbgd.studies import open_storage

STATE = optuna.trial.TrialState
LR = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)


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


def look(study: optuna.Study, n_trials: int = 10, wanted: int = 0, taken: list | None = None) -> int:
    """What a worker's reserve does; new trials get lr 0.02."""
    return protocol.reserve(
        study, n_trials, wanted, LR, lambda count: [0.02] * count, [] if taken is None else taken
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
