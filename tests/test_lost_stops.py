"""A stop raised by a signal handler inside a finaliser (where Python can only print it and go on) is sent
again a moment later instead of being lost."""

import signal
import sys
import time

import pytest

from mbgd.runtime import processes
from mbgd.runtime.errors import Interrupted


class RaisesWhenCollected:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "signum"), [(KeyboardInterrupt(), signal.SIGINT), (Interrupted("SIGTERM"), signal.SIGTERM)]
)
def test_a_stop_lost_in_a_finaliser_is_delivered_again(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, signum: int
) -> None:
    received = []
    previous = signal.getsignal(signum)
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)  # what Python would print
    processes.redeliver_lost_stops(handler=lambda number, frame: received.append(number))
    try:
        RaisesWhenCollected(error)  # collected at once: its stop is raised where it cannot propagate
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signum, previous)
    assert received == [signum]


def test_other_lost_exceptions_go_to_the_previous_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: seen.append(type(unraisable.exc_value)))
    processes.redeliver_lost_stops()
    RaisesWhenCollected(ValueError("not a stop"))
    assert seen == [ValueError]


def test_database_cleanup_errors_print_until_the_process_is_stopped(capfd: pytest.CaptureFixture) -> None:
    import logging

    from mbgd.runtime import errors

    errors.STOPS_RECEIVED.clear()  # another test's stop, raised in this process
    sqlalchemy_log = logging.getLogger("sqlalchemy")
    for installed in [h for h in sqlalchemy_log.handlers if getattr(h, "mbgd_quiet_after_a_stop", False)]:
        sqlalchemy_log.removeHandler(installed)  # a command run by an earlier test: it writes to its stderr
    handler = processes.quiet_database_cleanup_after_a_stop()
    assert processes.quiet_database_cleanup_after_a_stop() is handler  # once per process
    pool = logging.getLogger("sqlalchemy.pool.impl.QueuePool")
    try:
        pool.error("before any stop")
        with pytest.raises(errors.Interrupted):
            errors.raise_interrupted(signal.SIGTERM, None)  # the handler a command and a worker stop with
        pool.error("Error closing cursor")
    finally:
        errors.STOPS_RECEIVED.clear()
        logging.getLogger("sqlalchemy").removeHandler(handler)
    printed = capfd.readouterr().err
    assert "before any stop" in printed
    assert "Error closing cursor" not in printed
