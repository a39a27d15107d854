"""The process plumbing shared by the worker processes and the trial-run helper: the stop signals, how a
stop is deferred or blocked around a critical step, how a process's exit is described to the user, how
the processes share the cores (one torch thread each), and how a process ends without a long teardown."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mbgd.runtime.errors import Interrupted, raise_interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_ENGINES: weakref.WeakSet = weakref.WeakSet()  # the engines of the stores this process opened
_SET_UP: set[str] = set()  # what this process has set up: "teardown", "collection held"


def describe_exit(code: int | None, *, signal_word: str = "signal", code_word: str = "code") -> str:
    """A process's exit code in words: "signal SIGKILL" when a signal ended it, else "code 1" (the words
    before the name and the number are the caller's)."""
    if code is not None and code < 0:
        return f"{signal_word} {signal.Signals(-code).name}"
    return f"{code_word} {code}"


def die_with_parent(parent_pid: int) -> None:
    """This process is sent SIGKILL when its parent ends (Linux's PR_SET_PDEATHSIG; elsewhere nothing), and
    ends now if the parent already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def one_torch_thread() -> None:
    """torch computes on one thread in this process and in every process started from it from now on (the
    compute worker, sweep workers: they inherit OMP_NUM_THREADS, which torch reads as it is imported). These
    processes share the cores; with two torch threads each, the threads waited for each other, spinning, for
    cores the other process held (measured: a dense scan in the niced compute worker took 4.9 s, against
    0.06 s alone; `mbgd scaling` 27.5-29.5 s instead of 20.9-21.3 s).

    Training computes the same bits on one thread as on several: its reductions run per model and data row
    (tests/test_train.py). Whole-tensor reductions and BLAS products on large data (the Hessian's x^T x from
    about 50,000 rows, a mean over some 200,000 values) can round differently with the thread count, as they
    already did between machines with different numbers of cores; on one thread they no longer depend on the
    machine.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def hold_collection_while_importing() -> None:
    """Python's cyclic garbage collector is off in this process until imports_done(); for a process's entry
    point (the mbgd command, the compute worker, the trial-run helper, a sweep worker).

    torch, MLflow, Optuna and matplotlib leave over half a million objects as they import, and every full
    collection walks all of those made so far: six of them took 0.81 s of a `mbgd sweep` before its studies
    began (docs/performance.md). Imports make little garbage: of the 545,000 objects that importing those
    four leaves with the collector off, 10,000 are garbage, frozen with the rest (once, not a growth).
    """
    gc.disable()
    _SET_UP.add("collection held")


def imports_done() -> None:
    """The libraries are imported: what they made is frozen (gc.freeze: no collection walks it again) and the
    collector is back on. Nothing unless hold_collection_while_importing held it (a test's process, say)."""
    if "collection held" in _SET_UP:
        _SET_UP.discard("collection held")
        gc.freeze()
        gc.enable()


def end_without_collecting() -> None:
    """When this process exits, after the exit handlers registered after this call (atexit runs the newest
    first: call it before MLflow, Optuna or torch are imported, whose handlers may still write): the
    SQLAlchemy engines of the stores it opened (dispose_at_exit) are disposed, then Python's garbage collector
    is frozen.

    The interpreter's teardown then still runs every other exit handler, clears every module, frees what
    reference counting frees (closing the files and connections it held) and flushes the standard streams,
    but skips its full collections over the objects torch, MLflow and Optuna leave: about 1 s of every
    command's end on this machine (docs/performance.md). What it no longer frees are objects held in
    reference cycles only, whose finalisers Python never promised to run at exit; the database connections
    among them are the reason the engines are disposed first (a sqlite store otherwise keeps its write-ahead
    log beside the file, and a PostgreSQL server sees the connection drop).
    """
    if "teardown" not in _SET_UP:
        _SET_UP.add("teardown")
        atexit.register(_dispose_engines_and_freeze)


def dispose_at_exit(engine) -> None:
    """The SQLAlchemy engine of a store this process opened (MLflow's, Optuna's) is disposed at its exit,
    when it ends without collecting (end_without_collecting).

    Named by the code that opens the store, not found through an engine event: a connection event listener
    puts every statement of every engine on SQLAlchemy's slower path (Optuna's ask and tell took 20% longer).
    """
    _ENGINES.add(engine)


def collect_at_exit() -> None:
    """This process opened a store whose engines it cannot name (MLflow's public API does not show them): at
    exit everything is collected, frozen objects included, which closes their connections (a sqlite store
    keeps no write-ahead log beside it)."""
    _SET_UP.add("collect at exit")


def _dispose_engines_and_freeze() -> None:
    for engine in list(_ENGINES):
        with contextlib.suppress(Exception):  # a server gone by now: its connections are gone too
            engine.dispose()
    if "collect at exit" in _SET_UP:  # what imports_done froze too: the unnamed engines are among it
        gc.unfreeze()
        gc.collect()
    else:
        gc.freeze()


def raise_interrupted_once(signum: int, frame: Any) -> None:
    """A worker's signal handler: the signal raised as Interrupted, once.

    One stop is enough: a second (Ctrl-C reaches every worker, then the sweep SIGTERMs them) must not land in
    the clean-up the first started, where it could only be printed as an ignored exception.
    """
    ignore_stops()
    raise_interrupted(signum, frame)


def redeliver_lost_stops(*, handler: Any = None) -> None:
    """A stop that a signal handler raised inside a finaliser or a weakref callback, where Python can only
    print it as an ignored exception and go on, is sent again a moment later instead (once per process).

    The handler runs wherever the main thread is, garbage collection included (`make soak` saw a worker's
    SIGTERM lost that way: printed, then the worker ran on until it was killed). `handler`, when given, is
    installed again first (a worker's stop handler ignores further stops once it has run).
    """
    if getattr(sys.unraisablehook, "redelivers_stops", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        error = unraisable.exc_value
        if isinstance(error, KeyboardInterrupt):
            signum = signal.SIGINT
        elif isinstance(error, Interrupted) and str(error) in signal.Signals.__members__:
            signum = signal.Signals[str(error)]
        else:
            previous(unraisable)
            return
        if handler is not None:
            signal.signal(signum, handler)
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()

    hook.redelivers_stops = True
    sys.unraisablehook = hook


def quiet_database_cleanup_after_a_stop():
    """A stop raised inside a database read leaves SQLAlchemy a cursor it cannot close, which it logs with a
    traceback (`make soak` saw "Error closing cursor" from a worker that Ctrl-C stopped, and from a sweep that
    SIGTERM stopped): a consequence of the stop, which the command reports in one line. From the moment this
    process has raised a stop signal as Interrupted (mbgd.runtime.errors.raise_interrupted: SIGTERM in a
    command, SIGINT and SIGTERM in a worker), SQLAlchemy's log records are dropped; before that they print as
    Python's last-resort handler would print them. Installed once per process; returns the handler."""
    import logging

    from mbgd.runtime.errors import STOPS_RECEIVED

    logger = logging.getLogger("sqlalchemy")
    for handler in logger.handlers:
        if getattr(handler, "mbgd_quiet_after_a_stop", False):
            return handler
    handler = logging.StreamHandler()  # stderr, "%(message)s", like logging.lastResort
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: not STOPS_RECEIVED)
    handler.mbgd_quiet_after_a_stop = True
    logger.addHandler(handler)
    return handler


def ignore_stops() -> None:
    """SIGINT and SIGTERM do nothing from now on."""
    # A Python no-op, not SIG_IGN: a signal already received when the handler changes would raise OSError
    # ("ignored due to race condition") under SIG_IGN.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, lambda signum, frame: None)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM received while the block runs are handled when it ends, as they would have been."""
    if threading.current_thread() is not threading.main_thread():  # handlers run in the main thread only
        yield
        return
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            if callable(previous[signum]):
                previous[signum](signum, None)
            elif previous[signum] == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


@contextmanager
def signals_blocked_for_children() -> Iterator[None]:
    """A child started in the block starts with SIGINT and SIGTERM blocked (it inherits this thread's
    mask)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
