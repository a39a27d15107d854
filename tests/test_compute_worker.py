"""The compute worker: calls answered by a second process, and the same answer here whatever happens to it."""

import operator
import os
import signal
import subprocess
import sys
import time

import pytest

from mbgd.runtime.compute_worker import ComputeWorker, open_worker

QUICK = ()  # no modules to import before the first call: these tests call the standard library


def worker() -> ComputeWorker:
    started = ComputeWorker(start=True, warm=QUICK)
    assert started.pid is not None
    return started


def wait_until(condition) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the worker did not get there"
        time.sleep(0.02)


def answered(*pending) -> None:
    wait_until(lambda: all(p.ready() for p in pending))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_calls_are_answered_by_the_worker_process_in_any_order() -> None:
    # (it begins the newest call first: the command asks for results oldest first, and takes back those the
    # worker has not begun, so that the two meet in the middle)
    with open_worker(start=False) as unused:
        assert unused.pid is None
    started = worker()
    try:
        pid, total, power = (
            started.submit(os.getpid),
            started.submit(sum, [1, 2, 3]),
            started.submit(pow, 2, exp=10),
        )
        answered(pid, total, power)
        assert power.result() == 1024  # taken before the others: theirs wait, kept
        assert total.result() == 6
        assert pid.result() == started.pid != os.getpid()
    finally:
        started.close()


def test_the_worker_computes_with_one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # (it shares the cores with the command: mbgd.runtime.processes.one_torch_thread), whatever the command's
    # setting; this process on two threads, so that the call run here instead would answer 2
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    threads_here = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with open_worker(start=True) as started:
            threads = started.submit(torch.get_num_threads)
            answered(threads)
            assert threads.result() == 1
    finally:
        torch.set_num_threads(threads_here)


def test_without_a_worker_each_call_runs_here_when_its_result_is_asked_for() -> None:
    calls: list[int] = []
    here = ComputeWorker(start=False)
    pending = here.submit(calls.append, 1)
    assert calls == []
    assert pending.result() is None
    assert calls == [1]
    assert here.submit(os.getpid).result() == os.getpid()


def test_a_call_the_worker_cannot_load_or_that_fails_there_runs_here() -> None:
    def local(value: int) -> int:  # not importable by the worker: it answers that it could not
        return value + 1

    started = worker()
    try:
        unloadable, failing, pid = (
            started.submit(local, 1),
            started.submit(operator.truediv, 1, 0),
            started.submit(os.getpid),
        )
        answered(unloadable, failing, pid)
        assert unloadable.result() == 2
        with pytest.raises(ZeroDivisionError):  # raised there, then here: the caller meets the real error
            failing.result()
        assert pid.result() == started.pid  # the worker went on
    finally:
        started.close()


def test_a_killed_worker_s_calls_run_here() -> None:
    started = worker()
    try:
        answered(started.submit(sum, []))  # the worker is up and idle
        slow = started.submit(time.sleep, 2)
        wait_until(slow.begun)  # so not taken back: waited for until the worker dies
        pid = started.submit(os.getpid)  # waiting behind the sleep
        os.kill(started.pid, signal.SIGKILL)
        began = time.monotonic()
        assert slow.result() is None  # run here: the whole sleep
        assert time.monotonic() - began >= 1.9
        assert pid.result() == os.getpid()
        assert started.submit(os.getpid).result() == os.getpid()  # and every later call
    finally:
        started.close()


def test_the_worker_ignores_ctrl_c_and_ends_with_its_calls_pipe() -> None:
    started = worker()
    pid = started.pid
    first = started.submit(sum, [2, 3])
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    second = started.submit(os.getpid)
    answered(first, second)
    assert first.result() == 5
    assert second.result() == pid
    started.close()
    assert not alive(pid)


def test_a_call_the_worker_has_not_begun_is_taken_back_and_run_here() -> None:
    started = worker()
    try:
        answered(started.submit(sum, []))
        busy = started.submit(time.sleep, 3)
        wait_until(busy.begun)
        waiting = started.submit(os.getpid)  # behind it
        began = time.monotonic()
        assert waiting.result() == os.getpid()  # here, at once: not after the worker's sleep
        assert time.monotonic() - began < 2
        after = started.submit(os.getpid)
        answered(busy, after)
        assert after.result() == started.pid  # the worker skipped the call taken back, and went on
        assert busy.result() is None
    finally:
        started.close()


def test_closing_with_calls_unanswered_kills_the_worker_at_once() -> None:
    started = worker()
    pid = started.pid
    started.submit(time.sleep, 30)
    began = time.monotonic()
    started.close()
    assert time.monotonic() - began < 10
    assert not alive(pid)


def test_closing_a_worker_that_is_still_importing_ends_it_at_once(tmp_path, monkeypatch) -> None:
    """A command refused before it hands the worker a call does not wait for the worker's imports."""
    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(30)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the worker gets this process's import path
    started = ComputeWorker(start=True, warm=("slow_to_import",))
    pid = started.pid
    time.sleep(0.5)  # in its imports
    began = time.monotonic()
    started.close()
    assert time.monotonic() - began < 10
    assert not alive(pid)


def test_the_worker_dies_with_the_process_that_started_it() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from mbgd.runtime.compute_worker import ComputeWorker\n"
            "w = ComputeWorker(start=True, warm=())\n"
            "print(w.submit(sum, [1]).result() and w.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    finally:
        parent.kill()


def test_calls_handed_over_together_are_begun_last_first_even_by_an_idle_worker() -> None:
    # one by one, an idle worker begins the first call as it arrives; together it sees them all first
    started = worker()
    try:
        answered(started.submit(sum, []))  # imported and idle
        with started.together():
            first = started.submit(time.monotonic)
            time.sleep(0.3)  # handed over one by one, `first` would have begun by now
            second = started.submit(time.monotonic)
            time.sleep(0.3)
            last = started.submit(time.monotonic)
        answered(first, second, last)
        assert last.result() < second.result() < first.result()
    finally:
        started.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pipe is enlarged on Linux only")
def test_a_result_bigger_than_a_plain_pipe_does_not_hold_the_worker_until_it_is_read() -> None:
    # a figure is a few hundred kB; a plain pipe holds 64 kB, and the command reads results only when it
    # wants one: the worker makes the next call meanwhile
    started = worker()
    try:
        answered(started.submit(sum, []))
        with started.together():
            after = started.submit(time.monotonic)  # begun second
            big = started.submit(bytes, 600_000)  # begun first
        time.sleep(1.0)
        reading = time.monotonic()
        assert len(big.result()) == 600_000
        assert after.result() < reading  # begun before this process read the big result
    finally:
        started.close()


def test_waiting_for_a_begun_call_this_process_makes_the_oldest_call_not_begun() -> None:
    # the worker begins the newest call first: while this process waits for it, it makes the oldest itself
    started = worker()
    try:
        answered(started.submit(sum, []))
        with started.together():
            oldest = started.submit(os.getpid)
            middle = started.submit(os.getpid)
            busy = started.submit(time.sleep, 1.0)
        wait_until(busy.begun)
        assert busy.result() is None
        assert oldest.result() == os.getpid()  # made here during the wait
        assert middle.result() in (os.getpid(), started.pid)  # here too, or by the worker after its sleep
    finally:
        started.close()


def test_a_call_submitted_ahead_is_made_by_the_worker_only(tmp_path) -> None:
    ComputeWorker(start=False).submit_ahead(os.mkdir, str(tmp_path / "here"))
    assert not (tmp_path / "here").exists()
    started = worker()
    try:
        started.submit_ahead(os.mkdir, str(tmp_path / "there"))
        wait_until((tmp_path / "there").exists)
    finally:
        started.close()
