"""Workers stopped by a signal stop their sweep: it ends as interrupted (exit 130 or 143), not as failed."""

from types import SimpleNamespace

import pytest

from mbgd.errors import Interrupted
from mbgd.workers import raise_if_stopped_by_a_signal


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
