"""A real browser on `mbgd ui`: the printed links open on the runs and their charts, not the GenAI overview."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_end_to_end import free_port

BIN = Path(sys.executable).parent
# The UI is a single-page app: virtual time runs its fetches and renders before the DOM is dumped or shot
# (pending network requests pause virtual time, so 10 s of it is ample and costs seconds, not ten of them).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000")
# What only the GenAI side of MLflow 3.17's UI shows: its experiment overview and its side navigation.
GENAI_MARKERS = ("<title>Overview - Experiment", "Token Usage", "Observability")

pytestmark = pytest.mark.slow


def chromium_or_skip() -> str:
    """Debian's chromium; CI (CI=true) must have it, elsewhere the test is skipped without it."""
    chromium = shutil.which("chromium")
    if chromium:
        return chromium
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail("chromium is missing on CI: .ci/run installs it with .ci/install-chromium")
    pytest.skip("chromium is not installed (bash .ci/install-chromium installs Debian's)")


def printed_links(log: Path) -> dict[str, str]:
    """The `runs:` and `charts:` links `mbgd ui` printed, by prefix."""
    prefixes = ("runs: ", "charts: ")
    lines = log.read_text().splitlines() if log.exists() else []
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines if line.startswith(prefixes)}


@contextmanager
def serve_ui(log: Path, timeout: float = 90) -> Iterator[dict[str, str]]:
    """`mbgd ui` on a free port until it answers /health; yields its printed links, then stops it and its children."""
    port = free_port()
    with log.open("w") as output:
        # Its own process group: mlflow's server, workers and job consumers all go when the group is stopped.
        process = subprocess.Popen(
            [str(BIN / "mbgd"), "ui", "--port", str(port)], stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"mbgd ui exited:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"mbgd ui did not answer /health within {timeout:.0f} s"
            time.sleep(0.5)
        links = printed_links(log)
        assert set(links) == {"runs", "charts"}, log.read_text()[-3000:]
        yield links
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            # mlflow's job consumers can outlive a terminated server; nothing of the group may survive the test.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def chromium(*args: str) -> list[str]:
    return [chromium_or_skip(), *CHROMIUM_FLAGS, *args]


def test_ui_links_render_the_runs_and_their_charts_in_a_browser(tracking_store: str, tmp_path: Path) -> None:
    chromium_or_skip()
    trained = subprocess.run(
        [str(BIN / "mbgd"), "train", "--epochs", "2", "--compare-with", "1,10"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    with serve_ui(tmp_path / "ui.log") as links:
        # Both pages at once: each is seconds of mostly waiting on the server.
        screenshot = tmp_path / "charts.png"
        shot = subprocess.Popen(
            chromium("--window-size=1400,900", f"--screenshot={screenshot}", links["charts"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            dom = subprocess.run(
                chromium("--dump-dom", links["runs"]), capture_output=True, text=True, timeout=120, check=True
            ).stdout
        finally:
            assert shot.wait(timeout=120) == 0
    assert "<title>Runs - Experiment 0 - MLflow</title>" in dom
    assert not [marker for marker in GENAI_MARKERS if marker in dom]
    # Child runs are folded under their parent in the table; its footer counts all three.
    assert ">mini-batch-b20</span>" in dom
    assert "<strong>3</strong> matching runs" in dom
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # a blank 1400x900 page compresses to a few kilobytes
