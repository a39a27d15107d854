"""P3: one shuffled training epoch, n = 10^6 points, batch 1024, through mbgd's Dataset and DataLoader.

mbgd side: `RegressionDataset` + `make_loader(shuffle=True)`, a fresh loader per epoch (its sampler draws the
permutation), each batch followed by one gradient step of y = w*x + b.
Reference: the same steps over raw tensor slices, `x[order[i:i + 1024]]` with `order = torch.randperm(n)`.
Also measured: the per-sample Dataset pattern (a plain __getitem__(i) and DataLoader(batch_size=1024,
shuffle=True) with its default collation, timed over 200 batches and scaled to an epoch), and the
mbgd and reference loaders alone, without the training step.

Throughput is samples per second; the result is mbgd's throughput ÷ the reference's. Data generation is
outside the timing; the epochs of the sides take turns, after one untimed epoch of each, and the fastest are
compared.
"""

from __future__ import annotations

import itertools

from harness import Context, Result, interleaved_fastest, timed

GOAL = 0.8  # mbgd ÷ reference throughput
N_POINTS = 10**6
BATCH_SIZE = 1024
LR = 0.01
PER_SAMPLE_BATCHES = 200  # of the per-sample pattern, timed and scaled up to an epoch


def run(context: Context) -> list[Result]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    from mbgd.core.config import DataSpec
    from mbgd.core.data import RegressionDataset, make_loader, make_synthetic

    n = 10**5 if context.quick else N_POINTS
    data = make_synthetic(DataSpec(n_points=n), seed=0)
    x, y = data.x, data.y_train
    w = torch.zeros(1, requires_grad=True)
    b = torch.zeros((), requires_grad=True)

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        loss = ((xb @ w + b - yb) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            w.sub_(LR * w.grad)
            b.sub_(LR * b.grad)
        w.grad = None
        b.grad = None

    def no_step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        pass

    class PerSampleDataset(Dataset):
        """The common pattern: one (x, y) pair per __getitem__, batched by the DataLoader's collate."""

        def __len__(self) -> int:
            return n

        def __getitem__(self, index: int):
            return x[index], y[index]

    def mbgd_epoch(train=step) -> None:
        for xb, yb in make_loader(RegressionDataset(x, y), BATCH_SIZE, shuffle=True, drop_last=False, seed=0):
            train(xb, yb)

    def reference_epoch(train=step) -> None:
        order = torch.randperm(n)
        for start in range(0, n, BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            train(x[index], y[index])

    def per_sample_batches(train=step) -> None:
        batches = iter(DataLoader(PerSampleDataset(), batch_size=BATCH_SIZE, shuffle=True))
        for xb, yb in itertools.islice(batches, PER_SAMPLE_BATCHES):
            train(xb, yb)

    repeats = 3 if context.quick else 7
    mbgd_epoch()  # warm-up
    reference_epoch()
    with_step = interleaved_fastest({"mbgd": mbgd_epoch, "reference": reference_epoch}, repeats)
    loader_only = interleaved_fastest(
        {"mbgd": lambda: mbgd_epoch(no_step), "reference": lambda: reference_epoch(no_step)}, repeats
    )
    # The first PER_SAMPLE_BATCHES batches only, scaled to a whole epoch: this pattern takes seconds, not ms.
    per_sample_seconds = timed(per_sample_batches)[0] * n / min(n, PER_SAMPLE_BATCHES * BATCH_SIZE)

    def throughput(seconds: float) -> str:
        return f"{n / seconds / 1e6:.2f} M samples/s ({seconds * 1e3:.0f} ms/epoch)"

    context.note(f"mbgd loader + step:       {throughput(with_step['mbgd'])}")
    context.note(f"randperm slices + step:   {throughput(with_step['reference'])}")
    context.note(f"per-sample Dataset + step: {throughput(per_sample_seconds)}")
    context.note(
        f"loaders alone, no step: mbgd {throughput(loader_only['mbgd'])}, "
        f"randperm slices {throughput(loader_only['reference'])}, "
        f"ratio {loader_only['reference'] / loader_only['mbgd']:.2f}x"
    )
    per_sample_ratio = with_step["reference"] / per_sample_seconds
    context.note(f"per-sample Dataset pattern ÷ reference throughput: {per_sample_ratio:.3f}x")
    ratio = with_step["reference"] / with_step["mbgd"]
    name = "mbgd DataLoader epoch vs randperm slices, throughput"
    return [Result("P3", name, ratio, goal=GOAL, higher_is_better=True)]
