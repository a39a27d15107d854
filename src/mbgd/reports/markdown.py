"""Markdown: the sweep's summary.md and the reproduction report; scaling.md is
mbgd.reports.scaling_markdown's."""

from __future__ import annotations

import math

TUNING_COST_CAP = 256  # mbgd.core.scan.TUNING_COST_MAX_TRIALS (not imported: this module stays free of torch)


def _format_ranking(ranking: list[int]) -> str:
    return " < ".join(str(b) for b in ranking) if ranking else "-"


def summary_markdown(summary: dict, *, subheading: str = "##") -> str:
    """summary.md: the per-batch-size table, both rankings and the precision check, from summary.json."""
    by_batch_size = summary["by_batch_size"]
    seeds = summary["seeds"]
    lines = [
        f"# Sweep `{summary['name']}`: best learning rate per batch size",
        "",
        f"Objective `{summary['objective']}`, pruner `{summary['pruner']}`, {summary['n_trials']} trials per "
        f"batch size, lr in [{summary['lr_range'][0]:g}, {summary['lr_range'][1]:g}], {summary['epochs']} "
        f"epochs, {summary['dtype']}, {'shuffled' if summary['shuffle'] else 'fixed'} batch order, "
        f"{summary['targets']} training targets; each best lr and the tutorial's lr {summary['fixed_lr']:g} "
        f"re-trained over seeds {seeds[0]}..{seeds[-1]}.",
        "",
        "| batch size | best lr | best value | epochs to floor (mean ± sd) | at lr "
        f"{summary['fixed_lr']:g}: epochs to floor | theory: first instability | theory: fastest lr "
        "| radius per epoch at best lr | diverged trials |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch_size, row in by_batch_size.items():
        lines.append(
            f"| {batch_size} | {row['best_lr']:.4g} | {row['best_value']:.4g} | "
            f"{row['epochs_to_floor_mean']:.3g} ± {row['epochs_to_floor_sd']:.2g} | "
            f"{row['epochs_to_floor_fixed_lr_mean']:.3g} | {row['theory_first_instability_lr']:.4g} | "
            f"{row['theory_best_lr']:.4g} | {row['spectral_radius_at_best_lr']:.3g} | "
            f"{row['diverged_trials']} of {row['complete_trials']}"
            + (f" (+{row['pruned_trials']} pruned)" if row["pruned_trials"] else "")
            + " |"
        )
    precision = summary["ranking_fixed_lr_by_dtype"]
    depends = summary["ranking_fixed_lr_depends_on_precision"]
    lines += [
        "",
        "Rankings (best first, by the objective's mean over the seeds; "
        f"`epochs_to` counts {summary['epochs'] + 1} for never):",
        "",
        f"- at the tutorial's lr {summary['fixed_lr']:g}: {_format_ranking(summary['ranking_fixed_lr'])}",
        f"- each at its best lr: {_format_ranking(summary['ranking_tuned'])}",
        f"- best lr vs batch size: {exponent_text(summary)}",
        "",
        "Precision: at the tutorial's lr the ranking is "
        + "; ".join(f"{_format_ranking(r)} in {dtype}" for dtype, r in precision.items())
        + (" — it **depends on the precision**." if depends else " — it does not depend on the precision."),
        "",
        "Theory columns are for the fixed (unshuffled) batch order: one epoch is the linear map "
        "Π(I − lr·H_batch) of the error; its spectral radius is the contraction per epoch. The first "
        "instability is where that radius first reaches 1; the map can be stable again above it: "
        + "; ".join(
            f"batch size {b}: {_intervals(row['theory_stable_intervals'])}"
            for b, row in by_batch_size.items()
        )
        + ".",
        *tuning_cost_markdown(summary, heading=subheading),
    ]
    return "\n".join(lines) + "\n"


def _intervals(intervals: list) -> str:
    return " ∪ ".join(
        f"({low:.4g}, {high:.4g})" if low == 0 else f"[{low:.4g}, {high:.4g})" for low, high in intervals
    )


def tuning_cost_markdown(summary: dict, *, heading: str = "##") -> list[str]:
    """The cost of tuning each batch size: the dense scan's best against the tuned one, and how many TPE
    trials a study without the scan needs to come within 5% of the optimum."""
    rows = summary["by_batch_size"]
    if not any(
        row.get("scan_best_lr") is not None or row.get("trials_to_5pct_by_seed") for row in rows.values()
    ):
        return []
    seeds = summary.get("tuning_cost_seeds", 0)
    lines = [
        "",
        f"{heading} The cost of tuning each batch size",
        "",
        f"Each study began with a dense scan of {summary.get('scan', 0)} log-spaced lrs over the range; its "
        f"{summary['n_trials']} Optuna trials then refined between the best scan point's neighbours. Tuned "
        "regret: the tuned best relative to the scan's best (negative: the refinement found better). Without "
        "the scan: the TPE trials a study of this sweep's kind needs before one is within 5% of the optimum "
        f"(median over {seeds} sampler seeds; never = not within {TUNING_COST_CAP} trials).",
        "",
        "| batch size | scan's best lr | scan's best value | tuned best value | tuned regret "
        "| TPE trials to 5% without the scan: median (range) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for batch_size, row in rows.items():
        by_seed = row.get("trials_to_5pct_by_seed") or []
        reached = [n for n in by_seed if n is not None]
        spread = ""
        if by_seed:
            spread = f" ({min(reached)}–{max(reached)}" if reached else " ("
            never = len(by_seed) - len(reached)
            spread += f"{', ' if reached and never else ''}{never} never" if never else ""
            spread += ")"
        median = row.get("trials_to_5pct")
        edge = f" (at {row['scan_at_edge']})" if row.get("scan_at_edge") else ""
        lines.append(
            f"| {batch_size} | {_maybe(row.get('scan_best_lr'), '.4g')}{edge} | "
            f"{_maybe(row.get('scan_best_value'), '.4g')} | {row['best_value']:.4g} | "
            f"{_maybe(row.get('tuned_regret'), '+.1%')} | "
            f"{('never' if median is None else median) if by_seed else '—'}{spread} |"
        )
    return lines


def _maybe(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


REPORT_FIGURES = {
    "tutorial_comparison.png": (
        "The tutorial's comparison at lr {fixed_lr:g}, float32 (left: per epoch; right: per update)"
    ),
    "tutorial_comparison_float64.png": "The same in float64 (the same data, cast)",
    "tuned_comparison.png": "Fixed lr vs each batch size at its own best lr, mean and min-max over the seeds",
    "tuned_cost.png": "Tuned curves against parameter updates, samples seen and wall-clock seconds",
    "lr_sensitivity.png": (
        "Objective vs lr for every trial; dashed: first instability, dotted: fastest lr (theory)"
    ),
    "best_lr_vs_batch_size.png": "Best lr vs batch size, with the linear and square-root rules",
}


def _final(history) -> str:
    return "diverged" if history.diverged else f"{history.final_loss:.4g}"


def report_markdown(
    summary: dict, histories_by_dtype: dict[str, dict], fixed_lr: float, *, exact_targets: dict | None = None
) -> str:
    """report.md: the reproduction in both precisions, the sweep's table, and findings read off the
    numbers."""
    dtypes = list(histories_by_dtype)
    batch_sizes = sorted(histories_by_dtype[dtypes[0]])
    rows = summary["by_batch_size"]
    tuned_first, fixed_first = summary["ranking_tuned"][0], summary["ranking_fixed_lr"][0]
    lines = [
        "# mbgd reproduction report",
        "",
        "Generated by `mbgd report`: the tutorial's comparison in both precisions, then an Optuna study of "
        "the learning rate per batch size, each best lr re-trained over several seeds. Every number below is "
        "read from this run.",
        "",
        "## 1. The tutorial, reproduced",
        "",
        f"Full-dataset loss at lr {fixed_lr:g} (start of epochs 0-3, and after the last epoch):",
        "",
        "| batch size | precision | epochs 0-3 | final |",
        "|---:|---|---|---:|",
    ]
    for batch_size in batch_sizes:
        for dtype in dtypes:
            history = histories_by_dtype[dtype][batch_size]
            first = ", ".join(f"{v:.4g}" for v in history.epoch_losses[:4])
            lines.append(f"| {batch_size} | {dtype} | {first} | {_final(history)} |")
    lines += [
        "",
        "![tutorial comparison](tutorial_comparison.png)",
        "",
        "## 2. Each batch size at its own learning rate",
        "",
    ]
    lines += summary_markdown(summary, subheading="###").splitlines()[2:]
    lines += ["", "![tuned comparison](tuned_comparison.png)", "", "![tuned cost](tuned_cost.png)", ""]
    lines += ["![lr sensitivity](lr_sensitivity.png)", "", "![best lr](best_lr_vs_batch_size.png)", ""]
    lines += ["## 3. Findings", ""]
    lines.append(
        f"- **The comparison turns around.** At the tutorial's lr {fixed_lr:g} the best batch size is "
        f"{fixed_first} (ranking {_format_ranking(summary['ranking_fixed_lr'])}); with each batch size at "
        f"its own best lr it is {tuned_first} (ranking {_format_ranking(summary['ranking_tuned'])}). Epochs "
        "to the noise floor at the best lr: "
        + ", ".join(
            f"batch size {b}: {rows[str(b)]['epochs_to_floor_mean']:.3g}" for b in summary["ranking_tuned"]
        )
        + "."
    )
    for batch_size in batch_sizes:
        row = rows[str(batch_size)]
        others = [pair for pair in row.get("theory_stable_intervals", [])[1:]]
        again = (
            " (stable again on " + ", ".join(f"[{low:.4g}, {high:.4g})" for low, high in others) + ")"
            if others
            else ""
        )
        lines.append(
            f"- **Batch size {batch_size}, theory.** First instability at lr "
            f"{row['theory_first_instability_lr']:.4g}{again}; the fastest contraction per epoch is "
            f"{row['theory_min_spectral_radius']:.3g} at lr {row['theory_best_lr']:.4g} (the study found "
            f"{row['best_lr']:.4g}). At lr {fixed_lr:g} the epoch contracts the error by "
            f"{row['spectral_radius_at_fixed_lr']:.3g} but can amplify it "
            f"{row['transient_at_fixed_lr']:.3g}x inside the epoch before that."
        )
    precision = summary["ranking_fixed_lr_by_dtype"]
    finals = {
        dtype: ", ".join(f"{b}: {_final(histories_by_dtype[dtype][b])}" for b in batch_sizes)
        for dtype in dtypes
    }
    lines.append(
        "- **Precision.** At the tutorial's lr the ranking is "
        + "; ".join(f"{_format_ranking(r)} in {d}" for d, r in precision.items())
        + (
            " — it depends on the precision"
            if summary["ranking_fixed_lr_depends_on_precision"]
            else " — the same"
        )
        + ". Final losses: "
        + "; ".join(f"{d} ({f})" for d, f in finals.items())
        + ". A large transient amplification turns rounding errors into a visible difference"
        + (
            ": the tutorial's targets are computed in float32 (-5·X on float32 X), and a float64 run casts "
            "them, rounding included. With the targets computed in float64 (`--targets-dtype float64`, "
            "preset `experiments/tutorial-float64-targets.toml`) the float64 final losses are "
            + ", ".join(f"{b}: {_final(h)}" for b, h in exact_targets.items())
            + f" (the noise floor is {summary.get('noise_floor', float('nan')):.6g}): the float64 run's gap "
            "comes from the targets' float32 rounding, amplified within each epoch, not from float64 "
            "arithmetic."
            if exact_targets
            else "."
        )
    )
    lines.append(
        f"- **Best lr vs batch size:** {exponent_text(summary)} (1 would be the linear scaling rule, 0.5 the "
        "square-root rule)."
    )
    return "\n".join(lines) + "\n"


def exponent_text(summary: dict) -> str:
    """The fitted log-log slope with its standard error, or why there is none; never more than the points
    hold."""
    n = len(summary["by_batch_size"])
    slope, error = summary["best_lr_exponent"], summary.get("best_lr_exponent_se")
    if n < 3 or slope is None or error is None or not math.isfinite(error):
        return (
            f"no exponent fitted ({n} batch size{'s' if n != 1 else ''}: too few to estimate its uncertainty)"
        )
    return (
        f"log-log slope {slope:.2f} ± {error:.2f} (standard error over {n} batch sizes; "
        f"{'a fit through three points, no scaling law' if n == 3 else 'a fit, not a law'})"
    )


def write_report(folder, markdown: str, pngs: dict[str, bytes], *, markdown_file: str = "report.md") -> None:
    """The markdown (report.md, or `markdown_file`) and its figures (PNG files' bytes,
    mbgd.reports.plots.png_bytes) into one folder."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in pngs.items():
        (folder / name).write_bytes(png)
    (folder / markdown_file).write_text(markdown)
