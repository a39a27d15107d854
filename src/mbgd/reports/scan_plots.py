"""The figure of dense learning-rate scans: objective vs lr of each study's scan, the Optuna trials that
refined it on top, the scan's best and the tuned best marked (sweep and scaling alike).

Returns a matplotlib Figure; never shows or saves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib.figure import Figure

from mbgd.reports.plots import plain_log_labels


def lr_scan_figure(scans, trials: Mapping[str, list[tuple[float, float]]], *, title: str) -> Figure:
    """Objective vs lr of each study's dense scan, the Optuna trials that refined it on top, the scan's best
    and the tuned best marked. Per study two panels: the whole range (diverged runs as crosses at the top of
    the finite values) and a zoom on the scan points around the best, where the refinement searched."""
    count = len(scans)
    columns = min(count, 5)
    rows = math.ceil(count / columns)
    height = 5.6 * rows + 0.6
    figure = Figure(figsize=(3.6 * columns, height))
    figure.subplots_adjust(
        left=0.07, right=0.99, bottom=0.6 / height, top=1 - 0.9 / height, hspace=0.55, wspace=0.32
    )
    grid = figure.subplots(2 * rows, columns, squeeze=False)
    for index, scan in enumerate(scans):
        whole = grid[2 * (index // columns), index % columns]
        zoom = grid[2 * (index // columns) + 1, index % columns]
        _scan_panel(whole, scan, trials.get(scan.study_name, []), range(len(scan.lrs)), log_x=True)
        whole.set_title(scan.study_name, fontsize="small")
        best = scan.best_index
        around = range(max(best - 12, 0), min(best + 13, len(scan.lrs)))
        # a narrow range: linear
        _scan_panel(zoom, scan, trials.get(scan.study_name, []), around, log_x=False)
        zoom.set_title("around the scan's best", fontsize="x-small")
    for index in range(count, rows * columns):
        grid[2 * (index // columns), index % columns].set_visible(False)
        grid[2 * (index // columns) + 1, index % columns].set_visible(False)
    grid[0, 0].legend(fontsize="x-small")
    figure.suptitle(title)
    return figure


def lr_scan_png(scans, trials: Mapping[str, list[tuple[float, float]]], *, title: str) -> bytes:
    """lr_scan_figure as a PNG file's bytes (what a compute worker draws)."""
    from mbgd.reports.plots import png_bytes

    return png_bytes(lr_scan_figure(scans, trials, title=title))


def _scan_panel(axes, scan, refined: list[tuple[float, float]], indices: range, *, log_x: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    lrs = [scan.lrs[i] for i in indices]
    finite = [scan.values[i] for i in indices if not scan.diverged[i]]
    top = max(finite) if finite else scan.worst
    low, high = lrs[0], lrs[-1]
    ok = [(scan.lrs[i], scan.values[i]) for i in indices if not scan.diverged[i]]
    bad = [scan.lrs[i] for i in indices if scan.diverged[i]]
    axes.plot(
        [p[0] for p in ok],
        [p[1] for p in ok],
        ".-",
        color="C0",
        linewidth=0.8,
        markersize=2,
        label=f"scan ({len(scan.lrs)} lrs)",
    )
    if bad:
        axes.plot(bad, [top] * len(bad), "x", color="C3", markersize=3, label="diverged (drawn at the top)")
    inside = [(lr, v) for lr, v in refined if low <= lr <= high]
    if inside:
        axes.plot(
            [p[0] for p in inside],
            [min(v, top) for _, v in inside],
            "o",
            color="C1",
            markersize=3,
            label="Optuna trials",
        )
    if refined:
        best_lr, best_value = min(refined, key=lambda p: p[1])
        if low <= best_lr <= high:
            axes.plot(
                [best_lr],
                [best_value],
                "*",
                color="C1",
                markersize=11,
                markeredgecolor="k",
                label="tuned best",
            )
    if scan.reached:
        axes.plot(
            [scan.best_lr],
            [scan.best_value],
            "D",
            color="C0",
            markersize=6,
            markerfacecolor="none",
            label="scan's best",
        )
        if scan.at_edge:
            _warning(axes, f"best at {scan.at_edge}: widen the range")
    else:
        _warning(axes, "no lr reached the target")
    if log_x:
        axes.set_xscale("log")
    else:
        axes.xaxis.set_major_locator(MaxNLocator(3))
    if log_x and scan.objective != "auc" and all(v > 0 for _, v in ok):  # counts and losses span decades
        axes.set_yscale("log")
        plain_log_labels(axes)
    axes.set_xlabel("learning rate", fontsize="small")
    axes.set_ylabel(scan.objective, fontsize="small")
    axes.tick_params(labelsize="x-small")
    axes.grid(True, alpha=0.3)


def _warning(axes, text: str) -> None:
    """A red note at the top of the panel."""
    axes.text(
        0.5, 0.95, text, transform=axes.transAxes, ha="center", va="top", color="C3", fontsize="x-small"
    )
