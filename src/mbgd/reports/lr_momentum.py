"""lr_momentum.json, lr_momentum.md and the figures of `mbgd lr-momentum`, from an LrMomentumResult.

JSON has no nan or inf: a value not measured (never reached) is None.
"""

from __future__ import annotations

import math

from mbgd.studies.lr_momentum import LrMomentumPoint, LrMomentumResult, updates_stat
from mbgd.studies.sweep_summary import median_trials


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _runs(runs) -> dict:
    mean, sd, reached = updates_stat(runs)
    return {"updates": _number(mean), "updates_sd": _number(sd), "seeds_reached": reached}


def point_summary(point: LrMomentumPoint) -> dict:
    grid = point.grid
    sgd, momentum = _runs(point.sgd_runs), _runs(point.runs)
    speedup = None
    if sgd["updates"] is not None and momentum["updates"] is not None:
        speedup = sgd["updates"] / momentum["updates"]
    cost = {}
    for key, counts in (("2d", point.trials_to_5pct_2d), ("1d", point.trials_to_5pct_1d)):
        cost[f"trials_to_5pct_{key}"] = None if counts is None else median_trials(counts)
        cost[f"trials_to_5pct_{key}_by_seed"] = counts
    return {
        "batch_size": point.batch_size,
        "grid_best": {
            "lr": grid.best_lr if grid.reached else None,
            "momentum": grid.best_momentum if grid.reached else None,
            "updates": grid.best_value if grid.reached else None,
            "at_edge": grid.at_edge or None,
        },
        "tuned": {
            "lr": point.tuned_lr if point.reached else None,
            "momentum": point.tuned_momentum if point.reached else None,
            "updates": point.tuned_value if point.reached else None,
            "tuned_regret": _number(point.tuned_regret) if grid.reached else None,
        },
        "sgd_grid_best": {
            "lr": point.sgd_lr if point.sgd_value < grid.worst else None,
            "updates": point.sgd_value if point.sgd_value < grid.worst else None,
        },
        "seeds": {"momentum": momentum, "sgd": sgd},
        "momentum_speedup": speedup,
        **cost,
    }


def summarize(result: LrMomentumResult) -> dict:
    config = result.config
    sweep = config.scaling.sweep
    curves: dict = {}
    for curve in result.curves:
        curves.setdefault(curve.order_key, {})[curve.regime] = [point_summary(p) for p in curve.points]
    return {
        "name": sweep.name,
        "batch_sizes": list(sweep.batch_sizes),
        "epochs": sweep.train.epochs,
        "schedule": sweep.train.schedule,
        "target_ratio": sweep.target_ratio,
        "lr_range": [sweep.lr_min, sweep.lr_max],
        "grid_lrs": sweep.scan,
        "grid_momenta": config.momenta,
        "momentum_max": config.momentum_max,
        "n_trials": sweep.n_trials,
        "seeds": sweep.seeds,
        "tuning_cost_seeds": sweep.tuning_cost_seeds,
        "tuning_cost_max_trials": config.tuning_cost_max_trials,
        "measured": curves,
    }


def _cell(value, form: str = "{:.4g}") -> str:
    return "never" if value is None else form.format(value)


def _seeds(runs: dict, seeds: int) -> str:
    if runs["updates"] is None:
        return f"never (0/{seeds})"
    text = f"{runs['updates']:.4g} ± {runs['updates_sd']:.2g}"
    return text if runs["seeds_reached"] == seeds else f"{text} ({runs['seeds_reached']}/{seeds})"


def markdown(summary: dict, *, heading: str = "#") -> str:
    seeds = summary["seeds"]
    lines = [
        f"{heading} lr × momentum at each batch size",
        "",
        f"Heavy ball, {summary['schedule']} lr, {summary['epochs']} epochs; updates until the training loss "
        f"stays at the target. Grid: {summary['grid_lrs']} lrs in [{summary['lr_range'][0]:.3g}, "
        f"{summary['lr_range'][1]:.3g}] × {summary['grid_momenta']} momenta in [0, "
        f"{summary['momentum_max']:g}]; its momentum-0 row is plain SGD's lr scan. Multivariate TPE refines "
        f"the grid's best ({summary['n_trials']} trials); both bests re-trained over {seeds} seeds. "
        f"trials_to_5pct: median over {summary['tuning_cost_seeds']} sampler seeds of the trials a TPE study "
        f"without the grid needs to come within 5% of the optimum (2-D: lr and momentum; 1-D: the lr at "
        f"momentum 0), at most {summary['tuning_cost_max_trials']}.",
    ]
    for order, regimes in summary["measured"].items():
        for regime, points in regimes.items():
            lines += [
                "",
                f"{heading}# {order.replace('_', ' ')}, {regime}",
                "",
                "| batch size | SGD: lr | SGD: updates | tuned: lr | tuned: momentum | tuned: updates | "
                "SGD / tuned | tuned_regret | trials_to_5pct 2-D | 1-D |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for p in points:
                regret = p["tuned"]["tuned_regret"]
                lines.append(
                    f"| {p['batch_size']} | {_cell(p['sgd_grid_best']['lr'])} | "
                    f"{_seeds(p['seeds']['sgd'], seeds)} | {_cell(p['tuned']['lr'])} | "
                    f"{_cell(p['tuned']['momentum'], '{:.3g}')} | {_seeds(p['seeds']['momentum'], seeds)} | "
                    f"{_cell(p['momentum_speedup'], '{:.3g}')} | "
                    f"{'–' if regret is None else f'{regret:+.0%}'} | "
                    f"{_cost(p, '2d')} | {_cost(p, '1d')} |"
                )
            edges = [
                f"{p['batch_size']} ({', '.join(p['grid_best']['at_edge'])})"
                for p in points
                if p["grid_best"]["at_edge"]
            ]
            if edges:
                lines += ["", f"The grid's best lies on its edge at batch size {'; '.join(edges)}."]
    return "\n".join(lines) + "\n"


def _cost(point: dict, key: str) -> str:
    by_seed = point[f"trials_to_5pct_{key}_by_seed"]
    if by_seed is None:
        return "–"
    median = point[f"trials_to_5pct_{key}"]
    return "never" if median is None else str(median)


def updates_figure(summary: dict):
    """Updates to the target vs batch size, SGD at its tuned lr and heavy ball at its tuned (lr, momentum),
    one panel per (order, regime); the tuned momentum beside each heavy-ball point."""
    from matplotlib.figure import Figure

    panels = [(o, r, pts) for o, regimes in summary["measured"].items() for r, pts in regimes.items()]
    figure = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (order, regime, points) in zip(axes, panels, strict=True):
        for key, label, marker in (
            ("sgd", "SGD, tuned lr", "o"),
            ("momentum", "heavy ball, tuned lr and μ", "s"),
        ):
            shown = [
                (p["batch_size"], p["seeds"][key]["updates"]) for p in points if p["seeds"][key]["updates"]
            ]
            ax.plot([b for b, _ in shown], [u for _, u in shown], marker=marker, label=label)
        for p in points:
            if p["seeds"]["momentum"]["updates"]:
                ax.annotate(
                    f"{p['tuned']['momentum']:.2f}",
                    (p["batch_size"], p["seeds"]["momentum"]["updates"]),
                    textcoords="offset points",
                    xytext=(0, -12),
                    ha="center",
                    fontsize=7,
                )
        ax.set(xlabel="batch size", ylabel="updates to the target")
        ax.set_title(f"{order.replace('_', ' ')}, {regime}")
        if not any(line.get_xdata().size for line in ax.get_lines()):  # log axes cannot show nothing
            ax.text(0.5, 0.5, "no batch size reached the target", ha="center", transform=ax.transAxes)
            continue
        ax.set(xscale="log", yscale="log")
        ax.legend(fontsize=8)
    return figure


def grid_figure(result: LrMomentumResult):
    """log10 updates to the target over the lr x momentum grid of the smallest and largest batch size of
    each (order, regime), the grid's best cell marked."""
    import numpy as np
    from matplotlib.figure import Figure

    rows = [(c, [c.points[0], c.points[-1]] if len(c.points) > 1 else c.points) for c in result.curves]
    columns = max(len(points) for _, points in rows)
    figure = Figure(figsize=(4.5 * columns, 3.5 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row_axes, (curve, points) in zip(axes, rows, strict=True):
        for ax, point in zip(row_axes, points, strict=False):
            grid = point.grid
            image = ax.pcolormesh(
                grid.lrs, grid.momenta, np.log10(np.asarray(grid.values, dtype=float)), shading="nearest"
            )
            ax.plot(grid.best_lr, grid.best_momentum, "r*", markersize=10)
            ax.set(xscale="log", xlabel="lr", ylabel="momentum")
            ax.set_title(f"{curve.order}, {curve.regime}, batch size {point.batch_size}", fontsize=9)
            figure.colorbar(image, ax=ax, label="log10 updates")
    return figure
