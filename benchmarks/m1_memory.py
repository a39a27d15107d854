"""M1: peak memory of one epoch at n = 10^7 against the size of the raw tensors.

In a subprocess of its own, so that the peak is this workload's alone: import torch and mbgd and run a tiny
fit (the baseline), reset the peak RSS, then generate the synthetic data with mbgd.core.data and run one
shuffled epoch of `fit` at batch size 1024. The result is (peak RSS − baseline RSS) ÷ the bytes of the data's
tensors (x, the training targets and the recorded targets, each storage counted once: 3 × 40 MB in float32).
Temporaries count against the goal: the noise drawn while generating, the shuffled order, the chunks of the
full-dataset loss. A per-sample Python object would cost far more than a tensor element (~100 bytes vs 4).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import Context, Result

GOAL = 1.5  # peak growth ÷ raw tensors
N_POINTS = 10**7
BATCH_SIZE = 1024


def rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Linux resets VmHWM to the current RSS when 5 is written to clear_refs; False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(n: int) -> dict:
    """The child's work; returns the numbers as a dict."""
    from mbgd.core.config import DataSpec, TrainConfig
    from mbgd.core.data import load_data
    from mbgd.core.train import fit

    config = TrainConfig(batch_size=BATCH_SIZE, epochs=1, shuffle=True, data=DataSpec(n_points=n))
    fit(TrainConfig(), load_data(TrainConfig().data, 0))  # warm-up: torch's lazy initialisation
    baseline = rss_bytes("VmRSS")
    peak_was_reset = reset_peak()
    data = load_data(config.data, config.seed)
    history = fit(config, data)
    peak = rss_bytes("VmHWM")
    storages = {
        t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
        for t in (data.x, data.y_train, data.y_eval)
    }
    raw = sum(storages.values())
    return {
        "n": n,
        "baseline_rss": baseline,
        "peak_rss": peak,
        "peak_was_reset": peak_was_reset,
        "raw_tensor_bytes": raw,
        "updates": history.updates,
    }


def run(context: Context) -> list[Result]:
    n = 10**6 if context.quick else N_POINTS
    command = [sys.executable, __file__, str(n)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    numbers = json.loads(completed.stdout.strip().splitlines()[-1])
    growth = numbers["peak_rss"] - numbers["baseline_rss"]
    mib = 1 << 20
    context.note(
        f"n={n:.0e}: baseline RSS {numbers['baseline_rss'] / mib:.0f} MiB, peak "
        f"{numbers['peak_rss'] / mib:.0f} MiB (peak reset after imports: {numbers['peak_was_reset']}), "
        f"growth {growth / mib:.0f} MiB, raw tensors {numbers['raw_tensor_bytes'] / mib:.0f} MiB"
    )
    ratio = growth / numbers["raw_tensor_bytes"]
    return [Result("M1", f"memory n={n:.0e}, peak growth ÷ raw tensors", ratio, goal=GOAL)]


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]))))
