"""The exceptions raised across the layers; light to import, so the command line can name them at
start-up."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that runs end KILLED on the way out."""


STOPS_RECEIVED: list[str] = []  # the stop signals this process has raised as Interrupted


def raise_interrupted(signum: int, frame: Any) -> None:
    """A signal handler: the signal becomes Interrupted, named after it."""
    STOPS_RECEIVED.append(signal.Signals(signum).name)
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Interrupted inside the block; the previous handler is back after it."""
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class WorkerError(RuntimeError):
    """Workers ended before the studies were finished."""


def say(message: str) -> None:
    """One line for the user on standard error from library code: the one place below the command line that
    speaks to the user directly (what went wrong in a helper or worker process that the command survived)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
