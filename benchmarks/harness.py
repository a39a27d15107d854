"""What every benchmark shares: its context, its result line, timers and throw-away tracking stores."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = Path(__file__).resolve().parent / "output"


@dataclass
class Context:
    """Where a benchmark may write, and how much work it should do."""

    workdir: Path  # a temporary folder, also the working directory (MLflow puts ./mlruns artifacts here)
    output_dir: Path  # benchmarks/output: the figure and the JSON that are worth keeping
    quick: bool  # a smoke run: smaller workloads, ratios not comparable with the goals

    def note(self, text: str) -> None:
        """An informational line, printed indented under the benchmark's result."""
        print(f"  {text}", flush=True)

    def store(self, name: str) -> str:
        """A fresh sqlite URI in a folder of its own in the work folder (one per side, so neither side pays
        for the other's rows). Its own folder: mbgd's default Optuna storage goes beside the tracking store,
        and in one shared folder P2s's mbgd side found P2's finished studies of the same names and measured
        resuming them (a back-fill of 192 runs) instead of running them."""
        folder = self.workdir / name
        folder.mkdir(exist_ok=True)
        return f"sqlite:///{folder / name}.db"


@dataclass(frozen=True)
class Result:
    """One printed line: `P1 tracked train vs tutorial loop: 1.84x (goal ≤ 2x: met)`; no goal, no verdict."""

    id: str
    name: str
    value: float
    goal: float | None = None
    higher_is_better: bool = False
    unit: str = "x"  # "x" for a ratio, " s" for seconds

    @property
    def met(self) -> bool:
        if self.goal is None:
            return True
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def line(self, *, quick: bool = False) -> str:
        text = f"{self.id} {self.name}: {self.value:.3g}{self.unit}"
        if self.goal is None:
            return text
        sign = "≥" if self.higher_is_better else "≤"
        verdict = "smoke run" if quick else ("met" if self.met else "MISSED")
        return f"{text} (goal {sign} {self.goal:g}{self.unit}: {verdict})"


def machine_line() -> str:
    """What the numbers depend on: other load on the machine skews the ratios (torch's threads wait for
    cores)."""
    import torch

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    threads = torch.get_num_threads()
    return f"machine: {os.cpu_count()} cores, torch {torch.__version__} with {threads} threads, load {load}"


def use_tracking_store(uri: str) -> None:
    """Point both MLflow entry points at `uri`: mbgd's MlflowClient() reads the environment, but a URI set
    with mlflow.set_tracking_uri (the fluent API the references use) would take precedence over it."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    return statistics.median(timed(function)[0] for _ in range(repeats))


def interleaved_fastest(sides: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Fastest seconds of each side, the sides taking turns so that drift in the machine hits all of them.

    The fastest, not the median, as timeit advises: other load on the machine only ever adds time, so the
    fastest repeat is the one it disturbed least.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, function in sides.items():
            samples[name].append(timed(function)[0])
    return {name: min(values) for name, values in samples.items()}
