"""Figures: functions that take results and return a matplotlib Figure; they never show or save.

They build `matplotlib.figure.Figure` objects directly (no pyplot), so no GUI backend or global figure state
is involved and figures are freed when dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matplotlib.figure import Figure

from mbgd.core.history import History, descent_kind

Y_LABEL = "Cost/total loss"  # the tutorial's label for the full-dataset loss
_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def plain_log_labels(axes) -> None:
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
    plain_log_labels(axes)
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
            "label": f"batch size {batch_size} ({descent_kind(batch_size, n)})"
            + (" — this run" if own else "")
            + (", diverged" if history.diverged else ""),
        }
        epochs = range(len(history.epoch_losses))
        by_epoch.plot(epochs, history.epoch_losses, **style)
        by_update.plot([e * history.updates_per_epoch for e in epochs], history.epoch_losses, **style)
    for axes, x_label in ((by_epoch, "epoch"), (by_update, "parameter updates")):
        axes.set_yscale("log")
        plain_log_labels(axes)
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
        for axes, seed_runs, label in (
            (fixed_axes, r.fixed, f"batch size {r.batch_size}"),
            (tuned_axes, r.tuned, f"batch size {r.batch_size}, lr {r.best_lr:.3g}"),
        ):
            _band(axes, epochs, seed_runs.histories, label=label, color=colors[r.batch_size])
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
    for key, style, color, label in (
        ("theory_best_lr", "s:", "C2", "theory: fastest contraction"),
        ("theory_first_instability_lr", "^--", "C3", "theory: first instability"),
    ):
        axes.plot(sizes, [r.theory[key] for r in results], style, color=color, label=label)
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


def optuna_pngs(study_name: str, trials) -> dict[str, bytes]:
    """optuna_figures of a study rebuilt in memory from its trials (what a compute worker draws: a study on a
    storage does not travel), as PNG files' bytes."""
    import optuna

    study = optuna.create_study(study_name=study_name, direction="minimize")
    study.add_trials(trials)
    pngs = {}
    for name, figure in optuna_figures(study).items():
        pngs[name] = png_bytes(figure)
        close(figure)
    return pngs


def png_bytes(figure: Figure) -> bytes:
    """The figure as a PNG file's bytes, saved as MLflow's log_figure saves it (for a process that logs it
    elsewhere: mbgd.tracking.artifacts.log_png)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def close(figure: Figure) -> None:
    """Release a figure that pyplot tracks (Optuna's); Figure objects made here need no closing."""
    import matplotlib.pyplot as pyplot

    pyplot.close(figure)
