"""The multi-worker budget under races interleaved by hand: two workers' reservations, tells and failures
against one sqlite storage, in one process and in a fixed order, so that every interleaving the test claims is
the one it ran.

The expected counts are the budget arithmetic written out here (n_trials minus what is held), never read from
mbgd.studies.protocol.
"""

from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from checks import storage_of
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.studies import protocol
from mbgd.studies.storage import open_storage, open_study
from mbgd.studies.sweep import lr_distribution

STATE = optuna.trial.TrialState
N_TRIALS = 7


@pytest.fixture
def config(tmp_path: Path) -> SweepConfig:
    return SweepConfig(
        train=replace(TrainConfig(), epochs=3),
        n_trials=N_TRIALS,
        population=4,
        seeds=1,
        batch_sizes=(10,),
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )


def worker(config: SweepConfig) -> optuna.Study:
    """A worker's own view of the study: its own storage object on the shared file, as a separate process
    has."""
    return open_study(config, 10, open_storage(config.storage))


def reserve(study: optuna.Study, config: SweepConfig, wanted: int, propose=None) -> list[protocol.AskedTrial]:
    taken: list[protocol.AskedTrial] = []
    protocol.reserve(
        study,
        storage_of(study),
        N_TRIALS,
        wanted,
        lr_distribution(config),
        propose or (lambda k: [0.01] * k),
        taken,
    )
    return taken


def tell_complete(study: optuna.Study, trials: list[protocol.AskedTrial]) -> None:
    outcomes = [protocol.Outcome(t, STATE.COMPLETE, 1.0) for t in trials]
    assert len(protocol.tell(study, storage_of(study), outcomes)) == len(trials)


def states(config: SweepConfig) -> list[STATE]:
    return [t.state for t in worker(config).trials]


def test_interleaved_workers_complete_exactly_n_trials_and_create_none_to_fail(config: SweepConfig) -> None:
    a, b = worker(config), worker(config)
    a1 = reserve(a, config, 4)  # A holds 4 of 7
    b1 = reserve(b, config, 4)  # B may take only 7 - 4 = 3
    assert (len(a1), len(b1)) == (4, 3)
    assert reserve(a, config, 4) == []  # nothing left while both hold theirs
    tell_complete(a, a1)
    assert reserve(a, config, 4) == []  # told trials still hold budget: 4 complete + 3 running = 7
    # B is interrupted: its trials end FAIL and give their budget back, to whoever asks first.
    for trial in b1:
        b._storage.set_trial_state_values(trial.trial_id, state=STATE.FAIL)
    a2 = reserve(a, config, 4)
    assert len(a2) == 3  # 7 - 4 complete
    assert reserve(b, config, 4) == []
    tell_complete(a, a2)
    final = states(config)
    assert final.count(STATE.COMPLETE) == N_TRIALS
    assert final.count(STATE.FAIL) == 3  # only B's interrupted ones: no trial was created just to be failed
    assert len(final) == N_TRIALS + 3


def test_trials_made_meanwhile_without_the_lock_push_this_workers_excess_to_fail(config: SweepConfig) -> None:
    """A program that ignores the lock creates trials between this worker's count and its creation: the rule
    'a trial runs only if fewer than n_trials budget-holding trials have a smaller number' fails the
    excess."""
    a, outsider = worker(config), worker(config)
    backend = storage_of(outsider)

    def propose_while_another_program_creates(count: int) -> list[float]:
        for _ in range(3):  # three RUNNING trials, numbered before the ones A is about to create
            backend.create_new_trial(
                outsider._study_id,
                optuna.trial.create_trial(
                    state=STATE.RUNNING,
                    params={"lr": 0.02},
                    distributions={"lr": lr_distribution(config)},
                ),
            )
        return [0.01] * count

    taken = reserve(a, config, 6, propose_while_another_program_creates)
    # A counted 7 free and made 6 (numbers 3..8); the outsider's 3 (0..2) come first, so 7 - 3 = 4 of A's run.
    assert sorted(t.number for t in taken) == [3, 4, 5, 6]
    trials = worker(config).trials
    assert [t.number for t in trials if t.state == STATE.FAIL] == [7, 8]
    assert {t.user_attrs["fail_reason"] for t in trials if t.state == STATE.FAIL} == {
        "beyond the budget; not run"
    }
    assert sum(t.state != STATE.FAIL for t in trials) == N_TRIALS


def test_the_budget_holders_are_the_first_n_trials_by_number() -> None:
    """within_budget on frozen trials: finished, RUNNING and enqueued-with-an-lr trials hold budget, FAIL and
    a WAITING trial without an lr do not; the first n_trials holders by number may run."""
    dist = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)

    def trial(number: int, state: STATE, params: dict | None = None, system_attrs: dict | None = None):
        frozen = optuna.trial.create_trial(
            state=state,
            params=params or {},
            distributions={"lr": dist} if params else {},
            value=1.0 if state == STATE.COMPLETE else None,
            system_attrs=system_attrs or {},
        )
        frozen.number = number
        return 100 + number, frozen

    trials = [
        trial(0, STATE.COMPLETE, {"lr": 0.1}),
        trial(1, STATE.FAIL, {"lr": 0.1}),
        trial(2, STATE.PRUNED, {"lr": 0.1}),
        trial(3, STATE.WAITING),  # enqueued without an lr: no worker of ours runs it
        trial(4, STATE.WAITING, system_attrs={"fixed_params": {"lr": 0.05}}),
        trial(5, STATE.RUNNING, {"lr": 0.1}),
        trial(6, STATE.RUNNING, {"lr": 0.1}),
    ]
    assert [protocol.holds_budget(t) for _, t in trials] == [True, False, True, False, True, True, True]
    assert protocol.within_budget(trials, 3) == {100, 102, 104}
    assert protocol.within_budget(trials, 5) == {100, 102, 104, 105, 106}
    assert protocol.within_budget(trials, 9) == {100, 102, 104, 105, 106}
    assert protocol.enqueued_lr(trials[4][1]) == 0.05
    assert protocol.enqueued_lr(trials[3][1]) is None


def test_an_enqueued_trial_is_claimed_by_one_worker_only(config: SweepConfig) -> None:
    a, b = worker(config), worker(config)
    a.enqueue_trial({"lr": 0.05})
    a1 = reserve(a, config, 1)
    b1 = reserve(b, config, 7)
    assert [t.lr for t in a1] == [0.05]
    assert a1[0].number == 0
    assert len(b1) == N_TRIALS - 1
    assert 0.05 not in [t.lr for t in b1]
