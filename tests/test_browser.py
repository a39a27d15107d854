"""A real browser on `mbgd ui`: its links open on the runs and their charts, not on the GenAI overview."""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from test_end_to_end import free_port

BIN = Path(sys.executable).parent
# The UI is a single-page app: virtual time lets it fetch the runs and render them before the DOM is dumped
# or shot. Pending requests pause virtual time, so 10 s of it is ample and takes seconds of real time.
# Virtual time can stall for good (seen with two browsers on a cold server): a real-time timeout ends it.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
    "--virtual-time-budget=10000", "--timeout=60000",
)
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


@contextmanager
def process_group(command: list[str], **popen_args) -> Iterator[subprocess.Popen]:
    """A process in a group of its own, killed whole on exit: nothing it started (chromium's helpers,
    the MLflow server's workers) outlives the test, whatever the test's outcome."""
    process = subprocess.Popen(command, start_new_session=True, **popen_args)
    try:
        yield process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def chromium(profile: Path, *args: str) -> str:
    """Headless chromium on a fresh profile (no UI state from an earlier page); returns what it printed."""
    command = [chromium_or_skip(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    with process_group(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as browser:
        printed, errors = browser.communicate(timeout=120)
    assert browser.returncode == 0, errors[-3000:]
    return printed


def printed_links(log: Path) -> dict[str, str]:
    """The links `mbgd ui` printed, by their `runs:` / `charts:` prefix."""
    lines = log.read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.startswith(("runs: ", "charts: ")))


def wait_for_health(server: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"mbgd ui exited:\n{log.read_text()[-3000:]}"
        with suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            if reply.status == 200:
                return
        assert time.monotonic() < deadline, f"mbgd ui did not answer /health within {timeout:.0f} s"
        time.sleep(0.5)


def test_ui_links_render_the_runs_and_their_charts_in_a_browser(
    tracking_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium_or_skip()
    # The server's job consumers (GenAI scorers) have nothing to do here and slow its start on a busy machine.
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    trained = subprocess.run(
        [str(BIN / "mbgd"), "train", "--epochs", "2", "--compare-with", "1,10"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    port, log, screenshot = free_port(), tmp_path / "ui.log", tmp_path / "charts.png"
    # The server writes to a file: a pipe that nobody reads fills up with its request log and stalls it.
    with log.open("w") as output, process_group(
        [str(BIN / "mbgd"), "ui", "--port", str(port)], stdout=output, stderr=subprocess.STDOUT
    ) as server:
        wait_for_health(server, port, log)
        links = printed_links(log)
        assert set(links) == {"runs", "charts"}, log.read_text()[-3000:]
        dom = chromium(tmp_path / "dom-profile", "--dump-dom", links["runs"])
        chromium(
            tmp_path / "shot-profile", f"--screenshot={screenshot}", "--window-size=1400,900", links["charts"]
        )
    assert "<title>Runs - Experiment 0 - MLflow</title>" in dom
    assert not [marker for marker in GENAI_MARKERS if marker in dom]
    # The child runs are folded under their parent in the table; its footer counts all three.
    assert ">mini-batch-b20</span>" in dom
    assert "<strong>3</strong> matching runs" in dom
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # a blank 1400x900 page compresses to a few kilobytes
