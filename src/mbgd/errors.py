"""The exceptions mbgd raises across layers; light to import, so the command line can name them at
start-up."""

from __future__ import annotations

import sys


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that runs end KILLED on the way out."""


class WorkerError(RuntimeError):
    """Workers ended before the studies were finished."""


def say(message: str) -> None:
    """One line for the user on standard error from library code: the one place below the command line that
    speaks to the user directly (what went wrong in a helper or worker process that the command survived)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
