"""How mbgd's processes start and end: the collector held while the libraries import, then what they made
frozen, and an end that skips the interpreter's last collections but closes every database connection."""

import gc
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbgd.runtime.compute_worker import ComputeWorker

BIN = Path(sys.executable).parent

HELD_THEN_FROZEN = """
import atexit, gc
frozen = {}
atexit.register(lambda: print("frozen again at exit", gc.get_freeze_count() > frozen["imports"], flush=True))
from mbgd.runtime.processes import dispose_at_exit, end_without_collecting, hold_collection_while_importing
from mbgd.runtime.processes import imports_done
end_without_collecting()
hold_collection_while_importing()
print("held", gc.isenabled())
import sqlalchemy
engine = sqlalchemy.create_engine("sqlite:///store.db")
dispose_at_exit(engine)
with engine.begin() as connection:
    connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    connection.exec_driver_sql("CREATE TABLE t (x)")
    connection.exec_driver_sql("INSERT INTO t VALUES (42)")
imports_done()
frozen["imports"] = gc.get_freeze_count()
print("imported", gc.isenabled(), frozen["imports"] > 0)
made_since = [[i] for i in range(1000)]  # tracked objects made after the imports, frozen at exit
cycle = [engine]
cycle.append(cycle)  # at exit the engine is held by a cycle only, which no collection frees now
del engine
"""


def test_the_collector_is_held_while_importing_then_frozen_and_engines_closed_at_exit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", HELD_THEN_FROZEN], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["held False", "imported True True", "frozen again at exit True"]
    # the engine's connection was closed (disposed) before the freeze: sqlite folded its log into the file
    assert not (tmp_path / "store.db-wal").exists()
    with sqlite3.connect(tmp_path / "store.db") as db:
        assert db.execute("SELECT x FROM t").fetchall() == [(42,)]
    db.close()


def test_imports_done_does_nothing_where_the_collector_was_not_held(tmp_path: Path) -> None:
    code = "import gc\nfrom mbgd.runtime.processes import imports_done\n"
    code += "imports_done()\nprint(gc.isenabled(), gc.get_freeze_count())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["True", "0"]
    assert gc.isenabled()  # and this process (a test's) is never held


def test_the_compute_worker_froze_its_imports_and_collects_again() -> None:
    started = ComputeWorker(start=True, warm=("json",))
    try:
        pid, enabled, frozen = (started.submit(f) for f in (os.getpid, gc.isenabled, gc.get_freeze_count))
        deadline = time.monotonic() + 60
        while not all(p.ready() for p in (pid, enabled, frozen)):  # else taken back, and run here
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert pid.result() == started.pid
        assert enabled.result() is True
        assert frozen.result() > 0
    finally:
        started.close()


@pytest.mark.slow
def test_a_sweep_command_ends_with_its_stores_whole_and_no_write_ahead_log_beside_them(
    tmp_path: Path,
) -> None:
    # the console script (mbgd.cli.main:run), a fresh folder: MLflow's store and Optuna's storage, both sqlite
    # with a write-ahead log, their engines disposed at exit (the trial-run helper and the compute worker end
    # without closing theirs: the command's are the last)
    small = ["--batch-sizes", "1,10", "--n-trials", "48", "--population", "8", "--scan", "8", "--seeds", "2"]
    result = subprocess.run(
        # with the model registry too: its store's connections are closed at exit as the tracking store's
        [str(BIN / "mbgd"), "sweep", *small, "--tuning-cost-seeds", "2", "--register-model", "mbgd-line"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        # MBGD_PUBLIC_API passed on: .ci/newest.sh runs this on the public path too
        env={
            "PATH": str(BIN),
            "HOME": str(tmp_path),
            "MBGD_PUBLIC_API": os.environ.get("MBGD_PUBLIC_API", ""),
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("*.db*")) == ["mlflow.db", "optuna.db", "optuna.db.lock"]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        statuses = db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        versions = db.execute("SELECT name, version FROM model_versions ORDER BY version").fetchall()
    db.close()
    assert statuses == [("FINISHED", 2 * 48 + 1 + 2)]  # the trials, the sweep's run, the two best models
    assert versions == [("mbgd-line", 1), ("mbgd-line", 2)]  # in mlflow.db itself, not left in a -wal
