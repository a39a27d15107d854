"""Figures: functions that take results and return a matplotlib Figure; they never show or save.

They build `matplotlib.figure.Figure` objects directly (no pyplot), so no GUI backend or global figure state
is involved and figures are freed when dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib.figure import Figure

from mbgd.train import History, regime

Y_LABEL = "Cost/total loss"  # the tutorial's label for the full-dataset loss
_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain_log_labels(axes) -> None:
    """Log-axis ticks labelled 10², 10⁻¹ in plain text: matplotlib's default labels are math text, parsed anew
    for every figure, which made a one-run figure a third slower to draw."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    def label(value: float, _position) -> str:
        exponent = round(math.log10(value)) if value > 0 else 0
        return (
            f"10{str(exponent).translate(_SUPERSCRIPTS)}"
            if value > 0 and math.isclose(value, 10.0**exponent)
            else ""
        )

    axes.yaxis.set_major_formatter(FuncFormatter(label))
    axes.yaxis.set_minor_formatter(NullFormatter())


def loss_curve_figure(history: History, *, title: str) -> Figure:
    """One run: full-dataset loss per epoch and mini-batch loss per update, log scale."""
    figure = Figure(figsize=(6.4, 4.0))
    # Fixed margins: a layout engine would measure every tick label at each save, several times slower.
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.91)
    axes = figure.subplots()
    if history.batch_losses:
        updates_per_epoch = max(history.updates_per_epoch, 1)
        epochs_axis = [(i + 1) / updates_per_epoch for i in range(len(history.batch_losses))]
        axes.plot(epochs_axis, history.batch_losses, color="0.75", linewidth=0.8, label="mini-batch loss")
    axes.plot(
        range(len(history.epoch_losses)),
        history.epoch_losses,
        marker="o",
        markersize=3,
        label="full-dataset loss",
    )
    axes.set_yscale("log")
    _plain_log_labels(axes)
    axes.set_xlabel("epoch")
    axes.set_ylabel(Y_LABEL)
    axes.set_title(title + (" (diverged)" if history.diverged else ""))
    axes.legend()
    return figure


def comparison_figure(histories: Mapping[int, History], *, highlight: int, n: int, title: str) -> Figure:
    """The tutorial's plot, one line per batch size, against epochs and against parameter updates."""
    figure = Figure(figsize=(11, 4.2))
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.88, wspace=0.22)
    by_epoch, by_update = figure.subplots(1, 2)
    for batch_size in sorted(histories):
        history = histories[batch_size]
        own = batch_size == highlight
        style = {
            "linewidth": 2.6 if own else 1.4,
            "alpha": 1.0 if own else 0.8,
            "zorder": 3 if own else 2,
            "label": f"batch size {batch_size} ({regime(batch_size, n)})"
            + (" — this run" if own else "")
            + (", diverged" if history.diverged else ""),
        }
        epochs = range(len(history.epoch_losses))
        by_epoch.plot(epochs, history.epoch_losses, **style)
        by_update.plot([e * history.updates_per_epoch for e in epochs], history.epoch_losses, **style)
    for axes, x_label in ((by_epoch, "epoch"), (by_update, "parameter updates")):
        axes.set_yscale("log")
        _plain_log_labels(axes)
        axes.set_xlabel(x_label)
        axes.set_ylabel(Y_LABEL)
        axes.grid(True, which="major", alpha=0.3)
    by_update.set_xscale("symlog", linthresh=1)  # linear near 0, log beyond: epoch 0 is update 0
    by_update.set_xlim(left=0)
    by_epoch.legend(loc="upper right", fontsize="small")
    figure.suptitle(title)
    return figure


def _band(axes, xs, histories: list[History], *, label: str, color) -> None:
    """Mean curve with a min-max band over the seeds' full-dataset losses (diverged seeds left out)."""
    curves = [h.epoch_losses for h in histories if not h.diverged]
    if not curves:
        axes.plot([], [], color=color, label=label + " (diverged)")
        return
    length = min(len(c) for c in curves)
    columns = [[c[i] for c in curves] for i in range(length)]
    mean = [sum(col) / len(col) for col in columns]
    axes.plot(xs[:length], mean, color=color, label=label)
    axes.fill_between(
        xs[:length], [min(col) for col in columns], [max(col) for col in columns], color=color, alpha=0.2
    )


def _colors(batch_sizes) -> dict[int, str]:
    return {b: f"C{i % 10}" for i, b in enumerate(sorted(batch_sizes))}


def tuned_comparison_figure(results, *, fixed_lr: float, n_seeds: int) -> Figure:
    """(a) The tutorial's fixed-lr comparison beside the tuned one: mean loss per epoch, min-max over
    seeds."""
    figure = Figure(figsize=(11, 4.2))
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.86, wspace=0.15)
    fixed_axes, tuned_axes = figure.subplots(1, 2, sharey=True)
    colors = _colors([r.batch_size for r in results])
    for r in results:
        epochs = list(range(max(len(h.epoch_losses) for h in r.fixed.histories + r.tuned.histories)))
        _band(
            fixed_axes,
            epochs,
            r.fixed.histories,
            label=f"batch size {r.batch_size}",
            color=colors[r.batch_size],
        )
        _band(
            tuned_axes,
            epochs,
            r.tuned.histories,
            label=f"batch size {r.batch_size}, lr {r.best_lr:.3g}",
            color=colors[r.batch_size],
        )
    fixed_axes.set_title(f"the tutorial's comparison: lr {fixed_lr} for all")
    tuned_axes.set_title("each batch size at its own best lr")
    for axes in (fixed_axes, tuned_axes):
        axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    fixed_axes.set_ylabel(Y_LABEL)
    figure.suptitle(f"full-dataset loss, mean and min-max over {n_seeds} seeds")
    return figure


def tuned_cost_figure(results) -> Figure:
    """(b) The tuned curves against parameter updates, samples seen and wall-clock seconds."""
    figure = Figure(figsize=(14, 4.2))
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.88, wspace=0.2)
    panels = figure.subplots(1, 3, sharey=True)
    colors = _colors([r.batch_size for r in results])
    for r in results:
        history = r.tuned.histories[0]
        epochs = range(len(history.epoch_losses))
        per_epoch_samples = history.samples_per_epoch
        label = f"batch size {r.batch_size}, lr {r.best_lr:.3g}"
        mean_seconds = [
            sum(h.epoch_seconds[i] for h in r.tuned.histories) / len(r.tuned.histories)
            for i in range(min(len(h.epoch_seconds) for h in r.tuned.histories))
        ]
        for axes, xs in (
            (panels[0], [e * history.updates_per_epoch for e in epochs]),
            (panels[1], [e * per_epoch_samples for e in epochs]),
        ):
            _band(axes, xs, r.tuned.histories, label=label, color=colors[r.batch_size])
        _band(panels[2], mean_seconds, r.tuned.histories, label=label, color=colors[r.batch_size])
    for axes, x_label in zip(
        panels, ("parameter updates", "samples seen", "wall-clock seconds"), strict=True
    ):
        axes.set_yscale("log")
        axes.set_xscale("symlog", linthresh=1 if x_label != "wall-clock seconds" else 1e-3)
        axes.set_xlim(left=0)
        axes.set_xlabel(x_label)
        axes.grid(True, alpha=0.3)
    panels[0].set_ylabel(Y_LABEL)
    panels[0].legend(fontsize="small")
    figure.suptitle("tuned batch sizes: what a given loss costs")
    return figure


def lr_sensitivity_figure(results, *, objective: str) -> Figure:
    """(c) Objective vs lr for every trial, diverged trials marked, with the epoch-map theory's lrs."""
    figure = Figure(figsize=(8, 4.8))
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.11, top=0.9)
    axes = figure.subplots()
    colors = _colors([r.batch_size for r in results])
    for r in results:
        color = colors[r.batch_size]
        finite = sorted((lr, v) for lr, v, diverged in r.trials if not diverged)
        diverged = [(lr, v) for lr, v, d in r.trials if d]
        axes.plot(
            [p[0] for p in finite],
            [p[1] for p in finite],
            "o-",
            color=color,
            markersize=3,
            linewidth=0.8,
            label=f"batch size {r.batch_size}",
        )
        if diverged:
            axes.plot(
                [p[0] for p in diverged],
                [max(v for _, v in finite) if finite else p[1] for p in diverged],
                "x",
                color=color,
                markersize=7,
            )
        axes.axvline(r.theory["theory_first_instability_lr"], color=color, linestyle="--", linewidth=1)
        axes.axvline(r.theory["theory_best_lr"], color=color, linestyle=":", linewidth=1)
    axes.plot([], [], "kx", label="diverged (drawn at the worst finite value)")
    axes.plot([], [], "k--", linewidth=1, label="theory: first instability")
    axes.plot([], [], "k:", linewidth=1, label="theory: lr of the fastest contraction")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel(f"objective ({objective})")
    axes.set_title("learning-rate sensitivity per batch size")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def best_lr_figure(results, *, exponent: float | None, exponent_se: float | None = None) -> Figure:
    """(d) Best lr vs batch size, log-log, with the fitted exponent and the linear and square-root rules."""
    figure = Figure(figsize=(7, 4.8))
    figure.subplots_adjust(left=0.12, right=0.97, bottom=0.11, top=0.9)
    axes = figure.subplots()
    sizes = [r.batch_size for r in results]
    best = [r.best_lr for r in results]
    fitted = (
        f"log-log slope {exponent:.2f} ± {exponent_se:.2f}" if exponent_se is not None else "too few to fit"
    )
    axes.plot(sizes, best, "o-", color="C0", label=f"tuned ({fitted})")
    axes.plot(
        sizes,
        [r.theory["theory_best_lr"] for r in results],
        "s:",
        color="C2",
        label="theory: fastest contraction",
    )
    axes.plot(
        sizes,
        [r.theory["theory_first_instability_lr"] for r in results],
        "^--",
        color="C3",
        label="theory: first instability",
    )
    smallest, anchor = sizes[0], best[0]
    axes.plot(
        sizes, [anchor * b / smallest for b in sizes], color="0.5", linewidth=1, label="linear rule (lr ∝ B)"
    )
    axes.plot(
        sizes,
        [anchor * (b / smallest) ** 0.5 for b in sizes],
        color="0.5",
        linewidth=1,
        linestyle="-.",
        label="square-root rule (lr ∝ √B)",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("batch size")
    axes.set_ylabel("best learning rate")
    axes.set_title("best learning rate vs batch size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def optuna_figures(study) -> dict[str, Figure]:
    """(e) Optuna's own matplotlib plots of a study: optimization history and slice."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")  # Optuna draws with pyplot: no GUI backend
    import optuna.visualization.matplotlib as optuna_plots
    from optuna.exceptions import ExperimentalWarning

    figures = {}
    for name, plot in (
        ("optimization_history", optuna_plots.plot_optimization_history),
        ("slice", optuna_plots.plot_slice),
    ):
        with warnings.catch_warnings():
            # Optuna marks its matplotlib backend experimental on every call; the plots themselves are fine.
            warnings.simplefilter("ignore", ExperimentalWarning)
            axes = plot(study)
        axes = axes.flat[0] if hasattr(axes, "flat") else axes
        figures[name] = axes.figure
    return figures


def close(figure: Figure) -> None:
    """Release a figure that pyplot tracks (Optuna's); Figure objects made here need no closing."""
    import matplotlib.pyplot as pyplot

    pyplot.close(figure)


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


def _mark_predictions(axes, summary: dict, regime_key: str) -> None:
    axes.axvline(
        summary["critical_batch_size_theory"],
        color="C2",
        linestyle="--",
        linewidth=1.2,
        label=f"predicted: m* = β/λ₁ = {summary['critical_batch_size_theory']:.3g}",
    )
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
        axes.axvline(
            summary["critical_batch_size_theory"],
            color="C2",
            linestyle=":",
            linewidth=1,
            label=f"m* = {summary['critical_batch_size_theory']:.3g}",
        )
        axes.plot([], [], color="0.6", linewidth=0.8, linestyle=":", label="the studies' lr range")
        axes.set_ylabel("learning rate")
        axes.legend(fontsize="x-small", loc="lower right")
    return figure


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
            axes.text(
                0.5,
                0.95,
                f"best at {scan.at_edge}: widen the range",
                transform=axes.transAxes,
                ha="center",
                va="top",
                color="C3",
                fontsize="x-small",
            )
    else:
        axes.text(
            0.5,
            0.95,
            "no lr reached the target",
            transform=axes.transAxes,
            ha="center",
            va="top",
            color="C3",
            fontsize="x-small",
        )
    if log_x:
        axes.set_xscale("log")
    else:
        axes.xaxis.set_major_locator(MaxNLocator(3))
    if log_x and scan.objective != "auc" and all(v > 0 for _, v in ok):  # counts and losses span decades
        axes.set_yscale("log")
        _plain_log_labels(axes)
    axes.set_xlabel("learning rate", fontsize="small")
    axes.set_ylabel(scan.objective, fontsize="small")
    axes.tick_params(labelsize="x-small")
    axes.grid(True, alpha=0.3)
