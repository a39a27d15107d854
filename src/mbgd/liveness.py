"""Whether the process that owns a trial or a run is still alive: how a rerun tells orphans from live work."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
