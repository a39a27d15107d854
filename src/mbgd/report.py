"""Markdown: the sweep's summary.md and the reproduction report."""

from __future__ import annotations


def _format_ranking(ranking: list[int]) -> str:
    return " < ".join(str(b) for b in ranking) if ranking else "-"


def summary_markdown(summary: dict) -> str:
    """summary.md: the per-batch-size table, both rankings and the precision check, from summary.json."""
    by_batch_size = summary["by_batch_size"]
    seeds = summary["seeds"]
    lines = [
        f"# Sweep `{summary['name']}`: best learning rate per batch size",
        "",
        f"Objective `{summary['objective']}`, {summary['n_trials']} trials per batch size, lr in "
        f"[{summary['lr_range'][0]:g}, {summary['lr_range'][1]:g}], {summary['epochs']} epochs, {summary['dtype']}, "
        f"{'shuffled' if summary['shuffle'] else 'fixed'} batch order, {summary['targets']} training targets; "
        f"each best lr and the tutorial's lr {summary['fixed_lr']:g} re-trained over seeds {seeds[0]}..{seeds[-1]}.",
        "",
        "| batch size | best lr | best value | epochs to floor (mean ± sd) | at lr "
        f"{summary['fixed_lr']:g}: epochs to floor | theory: largest stable lr | theory: fastest lr "
        "| radius per epoch at best lr | diverged trials |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for batch_size, row in by_batch_size.items():
        lines.append(
            f"| {batch_size} | {row['best_lr']:.4g} | {row['best_value']:.4g} | "
            f"{row['epochs_to_floor_mean']:.3g} ± {row['epochs_to_floor_sd']:.2g} | "
            f"{row['epochs_to_floor_fixed_lr_mean']:.3g} | {row['theory_max_stable_lr']:.4g} | "
            f"{row['theory_best_lr']:.4g} | {row['spectral_radius_at_best_lr']:.3g} | "
            f"{row['diverged_trials']} of {row['complete_trials']} |"
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
        f"- best lr ∝ batch size^{summary['best_lr_exponent']:.2f} (least-squares fit on log-log axes)",
        "",
        "Precision: at the tutorial's lr the ranking is "
        + "; ".join(f"{_format_ranking(r)} in {dtype}" for dtype, r in precision.items())
        + (
            " — it **depends on the precision**."
            if depends
            else " — it does not depend on the precision."
        ),
        "",
        "Theory columns are for the fixed (unshuffled) batch order: one epoch is the linear map "
        "Π(I − lr·H_batch) of the error; its spectral radius is the contraction per epoch.",
    ]
    return "\n".join(lines) + "\n"
