"""The exceptions mbgd raises across layers; light to import, so the command line can name them at
start-up."""

from __future__ import annotations


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that runs end KILLED on the way out."""


class WorkerError(RuntimeError):
    """Workers ended before the studies were finished."""
