"""P5-P7: whole commands as a user runs them, against the floor of importing their libraries.

P5 `mbgd train`, P6 `mbgd sweep`, P7 `mbgd scaling`, each with its defaults, as a subprocess in a fresh folder
(a fresh MLflow store and Optuna storage every time), divided by the wall time of a bare
`python -c "import torch, mlflow, optuna, matplotlib.pyplot"` measured in the same run. The two take turns and
the fastest of each is kept (other load only ever adds time).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Context, Result, interleaved_fastest

FLOOR = [sys.executable, "-c", "import torch, mlflow, optuna, matplotlib.pyplot"]
COMMANDS = {  # id -> (arguments, goal as a multiple of the floor, repeats)
    "P5": (["train"], 1.3, 3),
    "P6": (["sweep"], 2.0, 2),
    "P7": (["scaling", "--output-dir", ""], 8.0, 1),
}
QUICK_ARGUMENTS = {
    "P5": ["train", "--epochs", "2"],
    "P6": [
        "sweep",
        "--n-trials",
        "4",
        "--population",
        "2",
        "--seeds",
        "1",
        "--scan",
        "16",
        "--tuning-cost-seeds",
        "1",
    ],
    "P7": [
        "scaling",
        "--output-dir",
        "",
        "--batch-sizes",
        "1,10",
        "--n-trials",
        "2",
        "--population",
        "2",
        "--seeds",
        "1",
        "--scan",
        "16",
        "--order",
        "fixed",
        "--targets",
        "clean",
    ],
}


def run_command(benchmark_id: str, context: Context) -> list[Result]:
    arguments, goal, repeats = COMMANDS[benchmark_id]
    if context.quick:
        arguments, repeats = QUICK_ARGUMENTS[benchmark_id], 1
    mbgd = str(Path(sys.executable).with_name("mbgd"))

    def command() -> None:
        with tempfile.TemporaryDirectory(dir=context.workdir) as folder:
            subprocess.run([mbgd, *arguments], cwd=folder, check=True, capture_output=True)

    def floor() -> None:
        subprocess.run(FLOOR, check=True, capture_output=True)

    floor()  # warm the file cache for both
    seconds = interleaved_fastest({"floor": floor, "command": command}, repeats)
    context.note(
        f"mbgd {' '.join(arguments)}: {seconds['command']:.1f} s; import floor {seconds['floor']:.2f} s"
    )
    name = f"mbgd {arguments[0]} (defaults) vs importing its libraries"
    return [Result(benchmark_id, name, seconds["command"] / seconds["floor"], goal=goal)]


def train(context: Context) -> list[Result]:
    return run_command("P5", context)


def sweep(context: Context) -> list[Result]:
    return run_command("P6", context)


def scaling(context: Context) -> list[Result]:
    return run_command("P7", context)
