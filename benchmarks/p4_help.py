"""P4: `mbgd --help` as a subprocess, median wall time of 5 (after one untimed run that warms the file cache).

An absolute goal, no reference: the whole process, interpreter start-up and imports included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import Context, Result, median_seconds

GOAL_SECONDS = 0.5
REPEATS = 5


def run(context: Context) -> list[Result]:
    command = [str(Path(sys.executable).with_name("mbgd")), "--help"]

    def help_once():
        return subprocess.run(command, check=True, capture_output=True)

    help_once()
    seconds = median_seconds(help_once, REPEATS)
    return [Result("P4", "mbgd --help", seconds, goal=GOAL_SECONDS, unit=" s")]
