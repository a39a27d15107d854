"""The figures of `mbgd scaling`: updates, samples and the tuned lr vs batch size, one panel per regime.

Each takes scaling.json's content and returns a matplotlib Figure (never shown or saved here), with the
interpolation theory's predictions and the measured knees marked.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure

# Batch-size scaling (mbgd scaling): each figure takes scaling.json's content and has one panel per
# regime_key.
_ORDER_STYLES = {
    "fixed_order": ("C0", "o", "fixed order (the tutorial's)"),
    "shuffled": ("C1", "s", "shuffled"),
}


_REGIME_TITLES = {
    "interpolation": "interpolation: noise-free training targets",
    "noisy": "noisy training targets",
}


def _scaling_panels(summary: dict, *, title: str) -> tuple[Figure, dict]:
    regimes = summary["regimes"]
    figure = Figure(figsize=(6.0 * len(regimes), 4.8))
    figure.subplots_adjust(
        left=0.08 if len(regimes) > 1 else 0.13, right=0.98, bottom=0.11, top=0.86, wspace=0.2
    )
    axes = figure.subplots(1, len(regimes), squeeze=False)[0]
    sizes = [int(b) for b in summary["by_batch_size"]]
    marks = [summary["critical_batch_size_theory"], summary["noise_scale_at_target"] or min(sizes)]
    for panel, regime_key in zip(axes, regimes, strict=True):
        panel.set_xlim(min(sizes + marks) / 1.4, max(sizes + marks) * 1.4)
        panel.set_xscale("log")
        panel.set_yscale("log")
        panel.set_xlabel("batch size")
        panel.set_title(_REGIME_TITLES[regime_key], fontsize="medium")
        panel.grid(True, which="both", alpha=0.25)
    figure.suptitle(title)
    return figure, dict(zip(regimes, axes, strict=True))


def _scaling_rows(summary: dict, order: str, regime_key: str) -> list[tuple[int, dict]]:
    return [(int(b), row[order][regime_key]) for b, row in summary["by_batch_size"].items() if order in row]


def _measured(
    axes, rows: list[tuple[int, dict]], key: str, *, order: str, seeds: int
) -> list[tuple[int, float]]:
    """Mean over the seeds with the sd as error bars; hollow where some seeds never reached the target."""
    color, marker, label = _ORDER_STYLES[order]
    points = [(b, r[key], r[f"{key}_sd"] or 0.0, r["seeds_reached"]) for b, r in rows if r[key] is not None]
    if not points:
        return []
    axes.errorbar(
        [p[0] for p in points],
        [p[1] for p in points],
        yerr=[p[2] for p in points],
        color=color,
        marker=marker,
        markersize=5,
        capsize=2,
        linewidth=1.4,
        label=label,
    )
    partial = [p for p in points if p[3] < seeds]
    if partial:
        axes.plot(
            [p[0] for p in partial], [p[1] for p in partial], marker, color="white", markersize=3, zorder=4
        )
    return [(p[0], p[1]) for p in points]


def _mark_critical_batch(axes, summary: dict, linestyle: str, linewidth: float, name: str) -> None:
    """The interpolation theory's m* as a vertical line, labelled `name = m*`."""
    m_star = summary["critical_batch_size_theory"]
    axes.axvline(m_star, color="C2", linestyle=linestyle, linewidth=linewidth, label=f"{name} = {m_star:.3g}")


def _mark_predictions(axes, summary: dict, regime_key: str) -> None:
    _mark_critical_batch(axes, summary, "--", 1.2, "predicted: m* = β/λ₁")
    noise_scale = summary["noise_scale_at_target"]
    if regime_key == "noisy" and noise_scale:
        axes.axvline(
            noise_scale,
            color="C3",
            linestyle="--",
            linewidth=1.2,
            label=f"predicted: B_simple at the target = {noise_scale:.3g}",
        )


def _mark_knees(axes, summary: dict, regime_key: str) -> None:
    for order, regimes in summary["measured"].items():
        knee = regimes.get(regime_key, {}).get("critical_batch_size")
        if knee:
            color, _, label = _ORDER_STYLES[order]
            axes.axvline(
                knee,
                color=color,
                linestyle="-.",
                linewidth=1.2,
                label=f"measured knee e_min/s_min, {label.split(' (')[0]}: {knee:.3g}",
            )


def scaling_updates_figure(summary: dict) -> Figure:
    """Updates to the target vs batch size, log-log: measured (both orders), perfect scaling from the smallest
    batch size, the fit s_min + e_min / B whose knee is e_min / s_min, and the predicted critical batch
    sizes."""
    figure, panels = _scaling_panels(
        summary, title="parameter updates until the training loss reaches the target"
    )
    seeds = len(summary["seeds"])
    for regime_key, axes in panels.items():
        lowest = math.inf
        for order in summary["orders"]:
            points = _measured(
                axes, _scaling_rows(summary, order, regime_key), "updates_to_target", order=order, seeds=seeds
            )
            if not points:
                continue
            lowest = min(lowest, *(u for _, u in points))
            color = _ORDER_STYLES[order][0]
            sizes = [b for b, _ in points]
            first_b, first_updates = points[0]
            axes.plot(
                sizes,
                [first_updates * first_b / b for b in sizes],
                color=color,
                linestyle=(0, (1, 3)),
                linewidth=1,
            )
            fit = summary["measured"][order][regime_key]
            if fit["fewest_updates"] is not None and fit["fewest_samples"] is not None:
                axes.plot(
                    sizes,
                    [fit["fewest_updates"] + fit["fewest_samples"] / b for b in sizes],
                    color=color,
                    linewidth=0.8,
                    alpha=0.6,
                )
        _mark_predictions(axes, summary, regime_key)
        _mark_knees(axes, summary, regime_key)
        axes.plot([], [], color="0.3", linestyle=(0, (1, 3)), linewidth=1, label="perfect scaling (∝ 1/B)")
        axes.plot([], [], color="0.3", linewidth=0.8, alpha=0.6, label="fit: s_min + e_min/B")
        if math.isfinite(lowest):  # the perfect-scaling lines would stretch the axis far below the data
            axes.set_ylim(bottom=lowest / 4)
        axes.set_ylabel("updates to target")
        axes.legend(fontsize="x-small", loc="upper right")
    return figure


def scaling_samples_figure(summary: dict) -> Figure:
    """Samples to the target (updates x batch size, the last partial batch as it is) vs batch size: flat while
    scaling is perfect, rising once larger batches stop paying."""
    figure, panels = _scaling_panels(summary, title="samples until the training loss reaches the target")
    seeds = len(summary["seeds"])
    for regime_key, axes in panels.items():
        for order in summary["orders"]:
            points = _measured(
                axes, _scaling_rows(summary, order, regime_key), "samples_to_target", order=order, seeds=seeds
            )
            if points:
                axes.axhline(points[0][1], color=_ORDER_STYLES[order][0], linestyle=(0, (1, 3)), linewidth=1)
        _mark_predictions(axes, summary, regime_key)
        _mark_knees(axes, summary, regime_key)
        axes.plot([], [], color="0.3", linestyle=(0, (1, 3)), linewidth=1, label="perfect scaling (constant)")
        axes.set_ylabel("samples to target")
        axes.legend(fontsize="x-small", loc="upper left")
    return figure


def scaling_lr_figure(summary: dict) -> Figure:
    """Tuned lr vs batch size with the interpolation theory's eta*(m) = m / (beta + lambda_1 (m - 1))."""
    figure, panels = _scaling_panels(summary, title="tuned learning rate vs batch size")
    for regime_key, axes in panels.items():
        for order in summary["orders"]:
            rows = _scaling_rows(summary, order, regime_key)
            color, marker, label = _ORDER_STYLES[order]
            tuned = [(b, r["best_lr"]) for b, r in rows if r["best_lr"] is not None]  # None: no lr reached
            axes.plot([b for b, _ in tuned], [lr for _, lr in tuned], marker=marker, color=color, label=label)
        low, high = axes.get_xlim()
        ms = [low * (high / low) ** (i / 200) for i in range(201)]
        beta, lambda_1 = summary["beta"], summary["lambda_1"]
        axes.plot(
            ms,
            [m / (beta + lambda_1 * (m - 1)) if m >= 1 else math.nan for m in ms],
            color="C2",
            linestyle="--",
            label="η*(m) = m / (β + λ₁(m − 1)) (Ma, Bassily & Belkin)",
        )
        for bound in summary["lr_range"]:
            axes.axhline(bound, color="0.6", linewidth=0.8, linestyle=":")
        _mark_critical_batch(axes, summary, ":", 1, "m*")
        axes.plot([], [], color="0.6", linewidth=0.8, linestyle=":", label="the studies' lr range")
        axes.set_ylabel("learning rate")
        axes.legend(fontsize="x-small", loc="lower right")
    return figure
