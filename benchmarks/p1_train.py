"""P1: one tracked `mbgd train` at batch size 1 against the tutorial's own, untracked loop.

mbgd side: the library call behind `mbgd train --batch-size 1 --compare-with ""`, i.e. `tracked_train` with
the tutorial config: fit (recording the per-step `batch_loss`), one run with params, the `batch_loss`, `loss`
and result metrics, the dataset input and the loss-curve figure.
Reference: the tutorial's loop as it is written there: a Dataset with a per-sample __getitem__,
DataLoader(batch_size=1), scalar w and b with requires_grad, a manual update, and (for the same records) the
per-step loss and the per-epoch full-dataset loss.

Both run in this process after a warm-up of each, taking turns, and the fastest of 7 of each are compared, so
neither side's time includes importing torch, mlflow or matplotlib, nor creating the sqlite store's tables;
data generation is outside both timings. The wall time of the real `mbgd train` subprocess (imports and all)
is printed for information.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from harness import Context, Result, interleaved_fastest, timed, use_tracking_store

GOAL = 2.0  # tracked ÷ reference
REPEATS = 7


def tutorial_loop(lr: float, epochs: int, seed: int) -> tuple[list[float], list[float]]:
    """The tutorial's SGD loop, untracked: returns (per-epoch full-dataset losses, per-step losses)."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Data(Dataset):
        """The tutorial's Dataset: noise-free targets, one sample per __getitem__."""

        def __init__(self) -> None:
            self.x = torch.arange(-5, 5, 0.1).view(-1, 1)
            self.y = -5 * self.x
            self.len = self.x.shape[0]

        def __getitem__(self, index):
            return self.x[index], self.y[index]

        def __len__(self) -> int:
            return self.len

    torch.manual_seed(seed)
    x_all = torch.arange(-5, 5, 0.1).view(-1, 1)
    y_noisy = -5 * x_all + 0.4 * torch.randn(x_all.size())
    loader = DataLoader(dataset=Data(), batch_size=1)
    w = torch.tensor(-10.0, requires_grad=True)
    b = torch.tensor(-20.0, requires_grad=True)
    epoch_losses, step_losses = [], []
    for _ in range(epochs):
        epoch_losses.append(torch.mean((w * x_all + b - y_noisy) ** 2).item())
        for x, y in loader:
            loss = torch.mean((w * x + b - y) ** 2)
            step_losses.append(loss.item())
            loss.backward()
            w.data = w.data - lr * w.grad.data
            b.data = b.data - lr * b.grad.data
            w.grad.data.zero_()
            b.grad.data.zero_()
    epoch_losses.append(torch.mean((w * x_all + b - y_noisy) ** 2).item())
    return epoch_losses, step_losses


def run(context: Context) -> list[Result]:
    from mbgd.core.config import TrainConfig, TrainRun
    from mbgd.core.data import load_data
    from mbgd.pipelines.train import tracked_train

    config = TrainConfig(batch_size=1)  # the tutorial's lr 0.1, 20 epochs, seed 42, float32
    train_run = TrainRun(train=config, compare_with=(), experiment="bench-p1")
    data = load_data(config.data, config.seed)
    store = context.store("p1-mbgd")
    use_tracking_store(store)

    def mbgd_side():
        return tracked_train(train_run, data)

    def reference_side():
        return tutorial_loop(config.lr, config.epochs, config.seed)

    # Warm-up: imports (matplotlib, mlflow's sqlalchemy store), table creation, torch's first calls.
    warm_up, outcome = timed(mbgd_side)
    reference_losses, _ = reference_side()
    mbgd_losses = outcome.histories[1].epoch_losses
    if not all(math.isclose(a, b, rel_tol=1e-5) for a, b in zip(mbgd_losses, reference_losses, strict=True)):
        raise AssertionError(f"P1 sides disagree: mbgd {mbgd_losses[-1]}, tutorial {reference_losses[-1]}")
    context.note(f"both sides: final loss {mbgd_losses[-1]:.6g} after 2000 updates (identical curves)")
    context.note(f"first tracked_train (store creation, lazy imports): {warm_up:.2f} s")

    repeats = 1 if context.quick else REPEATS
    fastest = interleaved_fastest({"mbgd": mbgd_side, "reference": reference_side}, repeats)
    context.note(
        f"tracked_train {fastest['mbgd']:.3f} s, tutorial loop {fastest['reference']:.3f} s "
        f"(fastest of {repeats})"
    )
    context.note(
        f"`mbgd train` subprocess, whole command with imports: {cli_seconds(store, context.workdir):.2f} s"
    )
    ratio = fastest["mbgd"] / fastest["reference"]
    return [Result("P1", "tracked train b1 vs tutorial loop", ratio, goal=GOAL)]


def cli_seconds(store: str, workdir: Path) -> float:
    """Wall time of the real command on the already created store."""
    command = [
        str(Path(sys.executable).with_name("mbgd")),
        "train",
        "--batch-size",
        "1",
        "--compare-with",
        "",
    ]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": "bench-p1"}
    seconds, _ = timed(
        lambda: subprocess.run(command, cwd=workdir, env=environment, check=True, capture_output=True)
    )
    return seconds
