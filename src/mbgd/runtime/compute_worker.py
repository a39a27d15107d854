"""A second process for pure computations (no store, no MLflow, nothing written): a command hands it calls
early and takes their results when it needs them, so that this machine's second core works meanwhile.

Whatever happens to the process, a call's result is the one this process would compute: a call it did not
answer (it died, was killed, or the call raised there) runs here instead, with the same arguments, and so
does one it had not begun when its result is wanted (taken back: the command would otherwise wait while the
worker is busy); while the command waits for a call the worker has begun, it takes back and makes the oldest
call not begun (the one the worker would begin last). A call is a module-level function and its arguments,
pickled; one with more data than MAX_CALL_BYTES runs here. A call submitted ahead (submit_ahead) is made for
what it leaves in the worker's process: it is never taken back, and nothing runs without a worker.

The process is `python -m mbgd.runtime.compute_worker` (not multiprocessing's spawn, so that it is not
mistaken for the trial-run helper or a sweep worker): it ignores Ctrl-C and SIGTERM like the helper, ends when
its calls' pipe closes, and is killed when this process dies (processes.die_with_parent).
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

WORKER_FROM_TRIALS = 48  # a command with fewer trials does not start one (it would wait for its imports)
NICENESS = 10
RESULTS_PIPE_BYTES = 1 << 20  # Linux's default most for an unprivileged process
MAX_CALL_BYTES = 16 << 20  # a call with more data than this runs here (the data would cost more to copy)
# What the worker imports before its first call, while the command imports its own modules (scan_plots brings
# matplotlib: the worker draws figures too).
WARM_MODULES = ("torch", "optuna", "mbgd.studies.storage", "mbgd.core.scan", "mbgd.studies.sweep_summary")
WARM_MODULES += ("mbgd.reports.scan_plots",)


class Pending:
    """A call handed to the worker (or kept to run here); `result()` waits for it."""

    def __init__(self, worker: ComputeWorker | None, number: int, function: Callable, args, kwargs) -> None:
        self._worker = worker
        self._number = number
        self._call = (function, args, kwargs)
        self._done = False
        self._value: Any = None

    def run_here(self) -> None:
        """This call runs here when its result is asked for (the worker never got it)."""
        self._worker = None

    def run_now(self) -> None:
        """Run the call here now (taken back from the worker while this process waits for another); an error
        is left for result() to meet."""
        self._worker = None
        function, args, kwargs = self._call
        try:
            value = function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - result() runs it again and raises it
            return
        self._value, self._done, self._call = value, True, None

    def begun(self) -> bool:
        """Whether the worker has begun the call: result() will wait for it rather than take it back."""
        return self._worker is not None and self._worker.has_begun(self._number)

    def ready(self) -> bool:
        """Whether the worker has answered the call: result() no longer waits on it."""
        return self._done or self._worker is None or self._worker.has_answered(self._number)

    def result(self) -> Any:
        if not self._done:
            answered, value = self._worker.answer(self._number) if self._worker else (False, None)
            if not answered:
                function, args, kwargs = self._call
                value = function(*args, **kwargs)
            self._value, self._done, self._call = value, True, None
        return self._value


class ComputeWorker:
    """The worker process when `start` is set (and the platform has fork-free pipes: POSIX), else none:
    every call then runs here, when its result is asked for."""

    def __init__(self, *, start: bool, warm: Sequence[str] = WARM_MODULES) -> None:
        self._process: subprocess.Popen | None = None
        self._calls = self._results = None
        self._answers: dict[int, tuple[bool, Any]] = {}
        self._unanswered: set[int] = set()  # calls handed over, neither answered nor taken back
        self._begun: set[int] = set()  # calls the worker said it began
        self._wanted: dict[int, Pending] = {}  # calls handed over whose results will be asked for
        self._submitted = 0
        self._held: list[tuple[int, bytes, Pending | None]] = []  # submitted, not handed over yet
        self._holding = False  # inside together()
        if start and os.name == "posix":
            self._start(warm)
        self._started = self._process is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def started(self) -> bool:
        """Whether a worker process was started (it may have ended since)."""
        return self._started

    def submit(self, function: Callable, *args: Any, **kwargs: Any) -> Pending:
        return self._submit(function, args, kwargs, wanted=True)

    def submit_ahead(self, function: Callable, *args: Any, **kwargs: Any) -> None:
        """A call made for what it leaves in the worker's process (scan.search_tpe_ahead): nothing without a
        worker, and never taken back to run here."""
        self._submit(function, args, kwargs, wanted=False)

    def _submit(self, function: Callable, args, kwargs, *, wanted: bool) -> Pending:
        number = self._submitted
        self._submitted += 1
        payload = None
        if self._process is not None:
            try:
                payload = _pickled((function, args, kwargs))
            except Exception:  # noqa: BLE001 - not picklable: this call runs here
                payload = None
        pending = Pending(self if payload is not None else None, number, function, args, kwargs)
        if payload is not None:
            self._held.append((number, payload, pending if wanted else None))
            if not self._holding:
                self._hand_over()
        return pending

    @contextmanager
    def together(self) -> Iterator[None]:
        """The calls submitted in the block are handed over when it ends, all at once: the worker sees them
        all before it begins one, and begins the last first (handed over one by one, an idle worker begins
        the first at once)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            self._hand_over()

    def _hand_over(self) -> None:
        held, self._held = self._held, []
        if not held:
            return
        if self._process is not None:
            try:
                self._calls.send(("calls", [(number, payload) for number, payload, _ in held]))
                self._unanswered.update(number for number, _, _ in held)
                self._wanted.update((number, pending) for number, _, pending in held if pending is not None)
                return
            except (OSError, ValueError):  # the worker is gone: these calls and the next run here
                self._stop()
        for _, _, pending in held:
            if pending is not None:
                pending.run_here()

    def answer(self, number: int) -> tuple[bool, Any]:
        """(True, value) once the worker has answered call `number`; (False, None) if it never will: it died,
        the call failed there, or the worker had not begun it yet, in which case it is taken back (the caller,
        which would otherwise wait, runs it)."""
        if any(held == number for held, _, _ in self._held):  # wanted before it was handed over
            self._held = [call for call in self._held if call[0] != number]
            return False, None
        self._wanted.pop(number, None)
        self._receive(wait=False)
        while number not in self._answers and self._process is not None:
            if number not in self._begun:
                self._take_back(number)
                break
            if not self._run_one_here():
                self._receive(wait=True)
        ok, value = self._answers.pop(number, (False, None))
        return (True, value) if ok else (False, None)

    def _run_one_here(self) -> bool:
        """While the worker makes a call this process waits for, the oldest call it has not begun (the one it
        would begin last) is taken back and made here; False if there is none."""
        waiting = [n for n in self._wanted if n in self._unanswered and n not in self._begun]
        if not waiting:
            return False
        pending = self._wanted.pop(min(waiting))
        self._take_back(min(waiting))
        pending.run_now()
        self._receive(wait=False)
        return True

    def has_answered(self, number: int) -> bool:
        self._receive(wait=False)
        return number in self._answers

    def has_begun(self, number: int) -> bool:
        self._receive(wait=False)
        return number in self._begun

    def _receive(self, *, wait: bool) -> None:
        """The worker's messages so far (and, with `wait`, at least one): calls begun and calls answered."""
        while self._process is not None and (wait or self._results.poll()):
            wait = False
            try:
                message = self._results.recv()
            except (EOFError, OSError):
                self._stop()
                return
            if message[0] == "begun":
                self._begun.add(message[1])
            elif message[1] in self._unanswered:  # an answer to a call taken back is not wanted
                self._answers[message[1]] = message[2:]
                self._unanswered.discard(message[1])
                self._wanted.pop(message[1], None)

    def _take_back(self, number: int) -> None:
        self._unanswered.discard(number)
        try:
            self._calls.send(("skip", number))
        except (OSError, ValueError):
            self._stop()

    def close(self) -> None:
        """End the worker at once, whatever it is doing (importing, a call taken back as it began it, a call
        submitted ahead): it writes nothing, and no result it could still give is wanted."""
        if self._process is not None:
            self._stop(kill=True)

    def _start(self, warm: Sequence[str]) -> None:
        from mbgd.runtime.processes import signals_blocked_for_children

        calls_in, calls_out = os.pipe()
        results_in, results_out = os.pipe()
        # Room for the figures the worker draws (a few hundred kB) while the command does not read them yet:
        # a result the pipe cannot hold keeps the worker waiting until the command wants a result (Linux;
        # 64 kB elsewhere).
        with contextlib.suppress(AttributeError, OSError):
            import fcntl

            fcntl.fcntl(results_out, fcntl.F_SETPIPE_SZ, RESULTS_PIPE_BYTES)
        try:
            # blocked until it ignores them: a Ctrl-C now must not kill it half-started
            with signals_blocked_for_children():
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "mbgd.runtime.compute_worker",
                        str(os.getpid()),
                        str(calls_in),
                        str(results_out),
                    ]
                    + list(warm),
                    pass_fds=(calls_in, results_out),
                    stdin=subprocess.DEVNULL,
                    # this process's import path, so that the worker runs this very mbgd (as multiprocessing's
                    # spawn does): a path added at run time (a test runner's) is not in the environment; torch
                    # on one thread (mbgd.runtime.processes.one_torch_thread: the worker shares the cores)
                    env={
                        **os.environ,
                        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
                        "OMP_NUM_THREADS": "1",
                    },
                )
        except OSError:
            os.close(calls_out)
            os.close(results_in)
            return
        finally:
            os.close(calls_in)
            os.close(results_out)
        self._calls = Connection(calls_out, readable=False)
        self._results = Connection(results_in, writable=False)

    def _stop(self, *, kill: bool = False) -> None:
        process, self._process = self._process, None
        if kill:
            process.kill()
        for connection in (self._calls, self._results):
            connection.close()  # the worker sees its calls end and exits
        self._calls = self._results = None
        process.wait()


def _pickled(call: tuple) -> bytes | None:
    """The call as bytes (plain pickle: tensors go by value, not by shared memory; unpickled by the worker's
    loop, which answers a call it cannot load), or None when it is too big to be worth the copy."""
    payload = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    return payload if len(payload) <= MAX_CALL_BYTES else None


def or_here(worker: ComputeWorker | None) -> ComputeWorker:
    """`worker`, or, without one, a ComputeWorker that runs every call here (when its result is asked for)."""
    return worker if worker is not None else ComputeWorker(start=False)


@contextmanager
def open_worker(*, start: bool) -> Iterator[ComputeWorker]:
    worker = ComputeWorker(start=start)
    try:
        yield worker
    finally:
        worker.close()


def _serve(parent_pid: int, calls: Connection, results: Connection, warm: Sequence[str]) -> None:
    """The worker's loop: calls read as they come (a sender never waits on a busy worker), each said begun,
    then answered, in turn, but for those the command took back first; the process ends, without tearing down
    its interpreter, when the calls' pipe closes."""
    import importlib
    import warnings

    from mbgd.runtime.processes import (
        STOP_SIGNALS,
        die_with_parent,
        hold_collection_while_importing,
        ignore_stops,
        imports_done,
    )

    ignore_stops()  # the command's process handles them, and ends this one
    if hasattr(signal, "pthread_sigmask"):  # blocked by the command while it started us
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    die_with_parent(parent_pid)
    # Behind the command's own process for the CPU: this one should use what that one leaves idle (while
    # the command waits for a result, it leaves all of it).
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    # Calls waiting, newest last. The command takes results (and back calls) from the oldest on, so this
    # process begins the newest: the two meet in the middle, and no work is done twice or waited for in turn.
    inbox: collections.deque = collections.deque()
    skipped: set[int] = set()  # calls the command took back before we began them
    arrived = threading.Condition()
    ended = False

    def read() -> None:
        nonlocal ended
        while True:
            try:
                message = calls.recv()
            except (EOFError, OSError):
                message = None
            with arrived:
                if message is None:
                    ended = True
                elif message[0] == "skip":
                    skipped.add(message[1])
                else:
                    inbox.extend(message[1])
                arrived.notify()
            if message is None:
                return

    def next_call() -> tuple | None:
        with arrived:
            while True:
                while not inbox and not ended:
                    arrived.wait()
                if not inbox:
                    return None
                call = inbox.pop()
                if call[0] not in skipped:
                    return call

    threading.Thread(target=read, name="mbgd-compute-calls", daemon=True).start()
    hold_collection_while_importing()
    for module in warm:
        importlib.import_module(module)
    imports_done()
    # As quiet as the command's process (mbgd.studies.storage): no experimental notes.
    if "optuna" in sys.modules:
        from optuna.exceptions import ExperimentalWarning

        warnings.simplefilter("ignore", ExperimentalWarning)
    while (call := next_call()) is not None:
        number, payload = call
        try:
            results.send(("begun", number))
            try:
                function, args, kwargs = pickle.loads(payload)
                answer = ("answer", number, True, function(*args, **kwargs))
            except BaseException:  # not importable here, or it raised: the caller runs it (meets the error)
                answer = ("answer", number, False, None)
            results.send(answer)
        except OSError:
            break
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _serve(
        int(sys.argv[1]),
        Connection(int(sys.argv[2]), writable=False),
        Connection(int(sys.argv[3]), readable=False),
        sys.argv[4:],
    )
