"""S1: seconds per epoch of mbgd's `fit` against the number of points and against the batch size.

An epoch is what `fit` records between two points of its History: the shuffled pass of updates through mbgd's
DataLoader (recording every batch loss) and the full-dataset loss that follows it. Data generation is outside
the timing. Short epochs are repeated and the fastest is kept.

Writes benchmarks/output/scaling.png and scaling.json. What to look for: the cost per sample stays flat in n
(no per-sample Python work that grows with the data) and falls with the batch size (per-update overhead
shared by more samples).
"""

from __future__ import annotations

import json

from harness import Context, Result

N_POINTS = (10**3, 3 * 10**3, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6, 3 * 10**6, 10**7)
N_SWEEP_BATCH_SIZE = 1024
BATCH_SIZES = (1, 4, 16, 64, 256, 1024, 4096)
BATCH_SWEEP_N = 10**5  # batch size 1 at 10^5 points is 10^5 updates, about half a minute
MIN_TOTAL_SECONDS = 0.3  # repeat an epoch until this much time has been measured (at most MAX_REPEATS)
MAX_REPEATS = 5


def epoch_seconds(n: int, batch_size: int) -> float:
    from mbgd.config import DataSpec, TrainConfig
    from mbgd.data import load_data
    from mbgd.train import fit

    config = TrainConfig(batch_size=batch_size, epochs=1, shuffle=True, data=DataSpec(n_points=n))
    data = load_data(config.data, config.seed)
    samples, total = [], 0.0
    while total < MIN_TOTAL_SECONDS and len(samples) < MAX_REPEATS:
        history = fit(config, data)
        samples.append(history.epoch_seconds[1] - history.epoch_seconds[0])
        total += samples[-1]
    return min(samples)


def scaling_figure(by_n: dict[int, float], by_batch_size: dict[int, float], *, n_for_batch_sweep: int):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 7))
    figure.subplots_adjust(left=0.09, right=0.98, bottom=0.08, top=0.92, hspace=0.35, wspace=0.25)
    (n_epoch, b_epoch), (n_sample, b_sample) = figure.subplots(2, 2)
    ns, bs = sorted(by_n), sorted(by_batch_size)
    n_epoch.plot(ns, [by_n[n] for n in ns], marker="o")
    n_epoch.set_title(f"vs number of points (batch size {N_SWEEP_BATCH_SIZE})")
    n_sample.plot(ns, [by_n[n] / n * 1e6 for n in ns], marker="o")
    b_epoch.plot(bs, [by_batch_size[b] for b in bs], marker="o", color="C1")
    b_epoch.set_title(f"vs batch size (n = {n_for_batch_sweep:,})")
    b_sample.plot(bs, [by_batch_size[b] / n_for_batch_sweep * 1e6 for b in bs], marker="o", color="C1")
    for axes in (n_epoch, n_sample, b_epoch, b_sample):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.grid(True, which="major", alpha=0.3)
    for axes in (n_epoch, b_epoch):
        axes.set_ylabel("seconds per epoch")
    for axes in (n_sample, b_sample):
        axes.set_ylabel("µs per sample")
    n_sample.set_xlabel("points n")
    b_sample.set_xlabel("batch size")
    figure.suptitle("mbgd fit: one shuffled epoch (updates + full-dataset loss), float32, 1 feature")
    return figure


def run(context: Context) -> list[Result]:
    n_points = [n for n in N_POINTS if n <= 10**5] if context.quick else list(N_POINTS)
    n_for_batch_sweep = 10**4 if context.quick else BATCH_SWEEP_N
    epoch_seconds(1000, 10)  # warm-up
    by_n = {n: epoch_seconds(n, N_SWEEP_BATCH_SIZE) for n in n_points}
    by_batch_size = {b: epoch_seconds(n_for_batch_sweep, b) for b in BATCH_SIZES}
    for n, seconds in by_n.items():
        context.note(f"n {n:>10,}, batch {N_SWEEP_BATCH_SIZE}: {seconds:8.4f} s/epoch, {seconds / n * 1e9:8.1f} ns/sample")
    for b, seconds in by_batch_size.items():
        context.note(
            f"batch {b:>5}, n {n_for_batch_sweep:,}: {seconds:8.4f} s/epoch, "
            f"{seconds / n_for_batch_sweep * 1e9:8.1f} ns/sample"
        )

    context.output_dir.mkdir(exist_ok=True)
    measurements = {
        "what": "seconds per epoch of mbgd.train.fit (shuffled updates + full-dataset loss), float32, 1 feature",
        "quick": context.quick,
        "by_n": {"batch_size": N_SWEEP_BATCH_SIZE, "seconds_per_epoch": {str(n): s for n, s in by_n.items()}},
        "by_batch_size": {"n": n_for_batch_sweep, "seconds_per_epoch": {str(b): s for b, s in by_batch_size.items()}},
    }
    (context.output_dir / "scaling.json").write_text(json.dumps(measurements, indent=2) + "\n")
    figure = scaling_figure(by_n, by_batch_size, n_for_batch_sweep=n_for_batch_sweep)
    figure.savefig(context.output_dir / "scaling.png", dpi=110)

    # The printed lines: how far the per-sample cost strays over n from 10^5 up (smaller epochs have too few
    # updates to amortise the per-epoch overhead), and how much it falls from batch size 1 to the largest.
    large_n = [n for n in n_points if n >= min(10**5, max(n_points))]
    per_sample = [by_n[n] / n for n in large_n]
    flatness = max(per_sample) / min(per_sample)
    fall = by_batch_size[BATCH_SIZES[0]] / by_batch_size[BATCH_SIZES[-1]]
    falls_every_step = all(by_batch_size[a] > by_batch_size[b] for a, b in zip(BATCH_SIZES, BATCH_SIZES[1:]))
    context.note(f"per-sample cost falls at every larger batch size: {falls_every_step}")
    context.note(f"figure and measurements: {context.output_dir / 'scaling.png'}, scaling.json")
    return [
        Result("S1", f"per-sample cost over n = {large_n[0]:.0e}…{large_n[-1]:.0e}, max ÷ min", flatness, goal=1.5),
        Result("S2", f"per-sample cost, batch {BATCH_SIZES[0]} ÷ batch {BATCH_SIZES[-1]}", fall, goal=10, higher_is_better=True),
    ]
