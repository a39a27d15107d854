"""Workers stopped by a signal stop their sweep: it ends as interrupted (exit 130 or 143), not as failed."""

from types import SimpleNamespace

import pytest

from mbgd.pipelines.workers import raise_if_stopped_by_a_signal
from mbgd.runtime.errors import Interrupted


def exited(*codes: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(exitcode=code) for code in codes]


def test_a_worker_ended_by_ctrl_c_interrupts_the_sweep() -> None:
    with pytest.raises(KeyboardInterrupt):
        raise_if_stopped_by_a_signal(exited(0, 130, -9))


def test_a_worker_ended_by_sigterm_stops_the_sweep_as_sigterm() -> None:
    with pytest.raises(Interrupted, match="^SIGTERM$"):
        raise_if_stopped_by_a_signal(exited(0, 143, 1))


@pytest.mark.parametrize("codes", [(0, 0), (0, 1), (-9, 0), (1, -15)])
def test_workers_that_failed_or_were_killed_leave_the_sweep_to_report_them(codes: tuple[int, ...]) -> None:
    raise_if_stopped_by_a_signal(exited(*codes))  # no exception: the sweep raises WorkerError itself


def test_the_sweep_fails_the_trials_its_ended_workers_left_running(
    tmp_path, tracking_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed between creating a trial and recording it cannot fail it; the sweep does, once its
    workers have ended (here they end at once, killed, before the studies are finished)."""
    import subprocess

    import optuna

    from checks import small_sweep
    from mbgd.pipelines import workers
    from mbgd.runtime.errors import WorkerError
    from mbgd.studies import protocol
    from mbgd.studies.storage import open_storage, open_study
    from mbgd.tracking.records import RunRef

    config = small_sweep(tmp_path, workers=2)
    study = open_study(config, 10, open_storage(config.storage))
    dead = subprocess.Popen(["true"])
    dead.wait()
    template = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        params={"lr": 0.01},
        distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)},
        user_attrs={protocol.WORKER_ATTR: {"host": protocol.HOST, "pid": dead.pid}},
    )
    study._storage.create_new_trial(study._study_id, template_trial=template)

    class KilledAtOnce:
        def __init__(self, **kwargs) -> None:
            self.name, self.exitcode = kwargs["name"], -9

        def start(self) -> None: ...

        def is_alive(self) -> bool:
            return False

        def join(self, timeout: float | None = None) -> None: ...

    spawn = SimpleNamespace(Process=KilledAtOnce)
    monkeypatch.setattr(workers.multiprocessing, "get_context", lambda method: spawn)
    with pytest.raises(WorkerError, match="exited with signal SIGKILL"):
        workers.run_in_workers(config, config.storage, RunRef("no-run", "0"))
    states = [t.state for t in open_study(config, 10, open_storage(config.storage)).trials]
    assert states == [optuna.trial.TrialState.FAIL]
