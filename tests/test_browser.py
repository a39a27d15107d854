"""A real browser on `mbgd ui`: its links open on the runs, the comparison's one log-scale chart and a run,
all in the model-training layout, not on the GenAI side of the UI."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from itertools import pairwise
from pathlib import Path

import pytest

from test_end_to_end import free_port

BIN = Path(sys.executable).parent
# The UI opens its Assistant panel over the page by itself when the host is localhost or 127.0.0.1: the
# browser reaches the server under another name, which the server is told to accept.
UI_HOST = "mbgd-ui.test"
# The UI is a single-page app: virtual time lets it fetch the runs and render them before the DOM is dumped
# or shot. Pending requests pause virtual time, so 30 s of it takes seconds of real time (10 s sometimes
# left a chart's metric history unfetched). Virtual time can stall for good (seen with two browsers on a cold
# server): a real-time timeout ends it. Charts render only once scrolled into view: a desktop-sized window
# has the comparison's chart in view. The rest keep the browser off the network and its first-run work.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--window-size=1400,900",
    "--virtual-time-budget=30000",
    "--timeout=60000",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {UI_HOST} 127.0.0.1",
)
# What only the GenAI side of MLflow 3.17's UI shows: its experiment overview and its side navigation, and a
# run page's breadcrumb back to "Evaluations" (the model-training layout's says "Runs").
GENAI_MARKERS = ("<title>Overview - Experiment", "Token Usage", "Observability", ">Evaluations</a>")

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


def printed_links(output: str) -> dict[str, str]:
    """The links `mbgd ui` or `mbgd train` printed, by their prefix: `runs`, `charts`, `comparison`, `run
    <id>`."""
    return dict(re.findall(r"(?m)^(runs|charts|comparison|run [0-9a-f]+): (http\S+)$", output))


def on_host(link: str, port: int) -> str:
    """The link on the test's server, under the name that keeps the Assistant panel closed."""
    return re.sub(r"^http://127\.0\.0\.1:\d+", f"http://{UI_HOST}:{port}", link)


def y_ticks(dom: str) -> list[float]:
    """The y-axis tick labels of the page's (Plotly) charts."""
    return [float(label) for label in re.findall(r'<g class="ytick"><text[^>]*>([-0-9.e]+)</text>', dom)]


def wait_for_health(server: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"mbgd ui exited:\n{log.read_text()[-3000:]}"
        with suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            if reply.status == 200:
                return
        assert time.monotonic() < deadline, f"mbgd ui did not answer /health within {timeout:.0f} s"
        time.sleep(0.5)


def test_ui_links_render_the_runs_the_comparison_chart_and_a_run_in_a_browser(
    tracking_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chromium_or_skip()
    # The server's job consumers (GenAI scorers) have nothing to do here and slow its start on a busy machine.
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    trained = subprocess.run(
        [str(BIN / "mbgd"), "train", "--epochs", "3", "--compare-with", "1,10"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    ((run_prefix, run_link),) = [
        (k, v) for k, v in printed_links(trained.stdout).items() if k.startswith("run ")
    ]
    run_id = run_prefix.removeprefix("run ")
    port, log, screenshot = free_port(), tmp_path / "ui.log", tmp_path / "comparison.png"
    # MLflow's server refuses other host names (DNS rebinding) and other origins' writes unless told.
    monkeypatch.setenv("MLFLOW_SERVER_ALLOWED_HOSTS", f"{UI_HOST}:*,127.0.0.1:*,localhost:*")
    monkeypatch.setenv("MLFLOW_SERVER_CORS_ALLOWED_ORIGINS", f"http://{UI_HOST}:{port}")
    # The server writes to a file: a pipe that nobody reads fills up with its request log and stalls it.
    with (
        log.open("w") as output,
        process_group(
            [str(BIN / "mbgd"), "ui", "--port", str(port)], stdout=output, stderr=subprocess.STDOUT
        ) as server,
    ):
        wait_for_health(server, port, log)
        links = printed_links(log.read_text())
        assert set(links) == {"runs", "charts", "comparison"}, log.read_text()[-3000:]
        assert on_host(links["comparison"], port) == on_host(
            printed_links(trained.stdout)["comparison"], port
        )
        dom = chromium(tmp_path / "dom-profile", "--dump-dom", links["runs"])
        comparison = links["comparison"]
        # The chart appears once its metric history is fetched; a cold server on a busy machine (this is CI's
        # first test) may be late for the first browsers (CI once saw two in a row too early, later all four).
        for attempt in range(8):
            comparison_dom = chromium(
                tmp_path / f"comparison-profile-{attempt}", "--dump-dom", on_host(comparison, port)
            )
            if "sgd-b1 (loss)" in comparison_dom and "experiment-view-compare-runs-card" in comparison_dom:
                break
            time.sleep(2)
        run_dom = chromium(tmp_path / "run-profile", "--dump-dom", on_host(run_link, port))
        chromium(tmp_path / "shot-profile", f"--screenshot={screenshot}", on_host(comparison, port))
    assert "<title>Runs - Experiment 0 - MLflow</title>" in dom
    assert not [marker for marker in GENAI_MARKERS if marker in dom]
    # The child runs are folded under their parent in the table; its footer counts all three.
    assert ">mini-batch-b20</span>" in dom
    assert "<strong>3</strong> matching runs" in dom

    # The comparison: its three runs, listed flat, and one chart where each has a `loss` line, on a log axis.
    assert not [marker for marker in GENAI_MARKERS if marker in comparison_dom]
    assert "<strong>3</strong> matching runs" in comparison_dom
    assert comparison_dom.count('data-testid="experiment-view-compare-runs-card"') == 1
    assert comparison_dom.count('data-testid="experiment-view-compare-runs-section-header"') == 1
    assert [
        name
        for name in ("mini-batch-b20", "mini-batch-b10", "sgd-b1")
        if f"{name} (loss)" not in comparison_dom
    ] == []
    ticks = y_ticks(comparison_dom)
    # A linear axis labels evenly spaced values; a log axis 1-2-5 steps (10, 20, 50, 100, ...).
    assert len(ticks) >= 3, ticks
    assert len({round(high - low, 9) for low, high in pairwise(ticks)}) > 1, ticks

    # A run's own page, in the model-training layout: its breadcrumb leads back to the runs, not
    # "Evaluations".
    assert f"<title>Run {run_id} - MLflow</title>" in run_dom
    assert not [marker for marker in GENAI_MARKERS if marker in run_dom]
    assert 'data-testid="experiment-observatory-link-runs" href="#/experiments/0/runs">Runs</a>' in run_dom

    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 20_000  # a blank 1400x900 page compresses to a few kilobytes
