"""liveness.process_alive, the dead-owner rule's question on this host, at its edges: pids that name no single
process, a process of another user, the signal it sends (none), and how it reads the state from /proc."""

import contextlib
import io
import signal
import subprocess

import pytest

from mbgd.runtime import liveness
from mbgd.runtime.liveness import process_alive


def every_signal_default() -> None:
    """In the child: no signal ignored, whatever this process inherited (nohup ignores SIGHUP)."""
    for number in signal.valid_signals():
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_DFL)


def test_asking_sends_no_signal() -> None:
    # kill(pid, 0) only asks; a real signal (SIGHUP, 1, say) would end this child, which ignores none
    child = subprocess.Popen(["sleep", "30"], preexec_fn=every_signal_default)
    try:
        assert process_alive(child.pid)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.3)
        assert child.returncode is None
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("pid", [0, -1])
def test_pids_that_name_a_group_or_every_process_are_not_alive(pid: int) -> None:
    # kill(0, 0) and kill(-1, 0) succeed (this process group, every process): they must never be asked
    assert process_alive(pid) is False


def test_pid_1_is_alive() -> None:
    assert process_alive(1) is True  # init, in this pid namespace: always there


def test_a_process_of_another_user_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(liveness.os, "kill", refused)
    assert process_alive(4242) is True


def stat_file(text: str | None):
    def fake_open(path: str, *args, **kwargs):
        assert path == "/proc/4242/stat"
        if text is None:
            raise FileNotFoundError(path)
        return io.StringIO(text)

    return fake_open


@pytest.mark.parametrize(
    ("stat", "alive"),
    [
        ("4242 (sleep) S 1 4242 4242 0 -1", True),
        ("4242 (sleep) Z 1 4242 4242 0 -1", False),
        # a command holding ") Z" : the state is the field after the last ")", here S
        ("4242 (a) Z) S 1 4242 4242 0 -1", True),
        ("4242 (a) S) Z 1 4242 4242 0 -1", False),
        (None, True),  # no /proc (not Linux): kill's answer stands
    ],
)
def test_the_state_is_read_after_the_last_parenthesis(
    monkeypatch: pytest.MonkeyPatch, stat: str | None, alive: bool
) -> None:
    monkeypatch.setattr(liveness.os, "kill", lambda pid, signal: None)  # the process exists
    monkeypatch.setattr(liveness, "open", stat_file(stat), raising=False)
    assert process_alive(4242) is alive


def test_owner_gone_asks_the_process_on_this_host_and_the_heartbeat_elsewhere() -> None:
    def never_called() -> bool:
        raise AssertionError("a local owner is judged by its pid")

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert liveness.owner_gone(liveness.HOST, str(child.pid), heartbeat_stale=never_called) is False
    finally:
        child.kill()
        child.wait()
    assert liveness.owner_gone(liveness.HOST, child.pid, heartbeat_stale=never_called) is True
    assert liveness.owner_gone("elsewhere", child.pid, heartbeat_stale=lambda: True) is True
    assert liveness.owner_gone(None, 1, heartbeat_stale=lambda: False) is False
