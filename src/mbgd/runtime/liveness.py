"""Whether the process that owns a trial or a run is still alive: how a rerun tells orphans from live work."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator

HOST = socket.gethostname()


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists on this host and has not ended.

    A process that ended but was not yet reaped by its parent (a zombie: a killed worker whose sweep has not
    called wait on it) still answers kill(pid, 0); it is dead all the same, and its trials must be retried.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return not _zombie(pid)


def owner_gone(host: str | None, pid: int | str, *, heartbeat_stale: Callable[[], bool]) -> bool:
    """The dead-owner rule, for a trial or a run owned by the process `pid` on `host`: on this host, the
    process has ended (a live one is never taken for dead, however long it is silent); on another host, whose
    processes cannot be asked, its heartbeat is stale."""
    if host == HOST:
        return not process_alive(int(pid))
    return heartbeat_stale()


def _zombie(pid: int) -> bool:
    """Whether the process has ended and waits to be reaped (Linux's /proc; False where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # "pid (command) state ...": the command may hold spaces and ")"; the state follows the last ")"
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def heartbeat(beat: Callable[[], None], interval_s: float, *, now: bool) -> Iterator[None]:
    """Call `beat` every interval_s seconds in a background thread while the block runs (first at once when
    `now`). A failing beat is skipped: a missed heartbeat only brings the deadline for declaring us dead
    closer."""
    stop = threading.Event()

    def loop() -> None:
        if now:
            with contextlib.suppress(Exception):
                beat()
        while not stop.wait(interval_s):
            with contextlib.suppress(Exception):
                beat()

    thread = threading.Thread(target=loop, name="mbgd-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
