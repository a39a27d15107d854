"""Figures: functions that take results and return a matplotlib Figure; they never show or save.

They build `matplotlib.figure.Figure` objects directly (no pyplot), so no GUI backend or global figure state
is involved and figures are freed when dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.figure import Figure

from mbgd.train import History, regime

Y_LABEL = "Cost/total loss"  # the tutorial's label for the full-dataset loss


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
    axes.plot(range(len(history.epoch_losses)), history.epoch_losses, marker="o", markersize=3, label="full-dataset loss")
    axes.set_yscale("log")
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
            "label": f"batch size {batch_size} ({regime(batch_size, n)})" + (" — this run" if own else "")
            + (", diverged" if history.diverged else ""),
        }
        epochs = range(len(history.epoch_losses))
        by_epoch.plot(epochs, history.epoch_losses, **style)
        by_update.plot([e * history.updates_per_epoch for e in epochs], history.epoch_losses, **style)
    for axes, x_label in ((by_epoch, "epoch"), (by_update, "parameter updates")):
        axes.set_yscale("log")
        axes.set_xlabel(x_label)
        axes.set_ylabel(Y_LABEL)
        axes.grid(True, which="major", alpha=0.3)
    by_update.set_xscale("symlog", linthresh=1)  # linear near 0, log beyond: epoch 0 is update 0
    by_update.set_xlim(left=0)
    by_epoch.legend(loc="upper right", fontsize="small")
    figure.suptitle(title)
    return figure
