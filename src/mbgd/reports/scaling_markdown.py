"""scaling.md's text, read off scaling.json: definitions, one table per regime, the findings (the knee, where
perfect scaling ends, the tutorial's batch sizes) and the figures; also report.md's Scaling section.
"""

from __future__ import annotations

SCALING_FIGURES = {
    "scaling_updates.png": (
        "Updates to the target vs batch size (log-log), perfect scaling dotted, knees and predictions"
    ),
    "scaling_samples.png": "Samples to the target vs batch size",
    "scaling_lr.png": "Tuned learning rate vs batch size, with the interpolation theory's η*(m)",
}
_ORDER_NAMES = {"fixed_order": "fixed order", "shuffled": "shuffled"}


def _value(value, digits: int = 3) -> str:
    return "never" if value is None else f"{value:.{digits}g}"


def _spread(row: dict, key: str) -> str:
    if row[key] is None:
        return "never"
    return f"{row[key]:.3g} ± {row[f'{key}_sd']:.2g}"


def _scan_cell(row: dict) -> str:
    if "scan_at_edge" not in row:  # written before scans existed
        return "—"
    if row["scan_best_updates"] is None:
        return "no lr reached" if row.get("scan_best_lr") is None and row.get("tuned_regret") is None else "—"
    edge = f", best at {row['scan_at_edge']}" if row["scan_at_edge"] else ""
    return f"{row['scan_best_updates']:.4g} ({row['tuned_regret']:+.0%}{edge})"


def _knee_sentence(summary: dict, order: str, regime: str) -> str:
    measured = summary["measured"][order][regime]
    knee = measured["critical_batch_size"]
    if knee is None:
        return "no fit"
    return (
        f"the fit {measured['fewest_updates']:.3g} + {measured['fewest_samples']:.3g}/B updates puts the "
        f"knee at B ≈ {knee:.3g}"
    )


# "perfect scaling": samples to the target within 25% of the smallest batch's
PERFECT_SCALING_TOLERANCE = 1.25


def perfect_scaling_up_to(summary: dict, order: str, regime: str) -> tuple[int, int | None]:
    """The largest batch size up to which every batch size needs at most 1.25x the samples of the smallest
    one, and the next batch size (where scaling leaves perfect), or None when the whole grid scales
    perfectly."""
    rows = sorted(
        (int(b), r[order][regime]["samples_to_target"]) for b, r in summary["by_batch_size"].items()
    )
    rows = [(b, samples) for b, samples in rows if samples is not None]
    if not rows:
        return 0, None
    base = rows[0][1]
    for (last, _), (batch_size, samples) in zip(rows, rows[1:], strict=False):
        if samples > PERFECT_SCALING_TOLERANCE * base:
            return last, batch_size
    return rows[-1][0], None


def _rule(summary: dict) -> str:
    """The update rule the studies trained with (older scaling.json files: plain SGD at a constant lr)."""
    optimizer = summary.get("optimizer", "sgd")
    rule = {
        "sgd": "plain SGD",
        "momentum": f"heavy ball (momentum {summary.get('momentum')})",
        "adam": "Adam",
    }
    text = f"{rule[optimizer]}, {summary.get('schedule', 'constant')} lr"
    return text + (f", EMA of the iterates (decay {summary['ema']:g})" if summary.get("ema") else "")


def _prediction_table(summary: dict, regime: str) -> list[str]:
    """The noisy quadratic model's fewest expected updates per batch size beside the measured ones."""
    if not summary.get("prediction"):
        return []
    orders, rows = summary["orders"], summary["by_batch_size"]
    header = "| batch size | model: best lr | model: updates |" + "".join(
        f" {_ORDER_NAMES[o]}: measured / model |" for o in orders
    )
    lines = [
        f"The noisy quadratic model ({regime}): the expected loss of SGD or heavy ball with batches drawn "
        "with replacement, exact for this quadratic (mbgd.core.nqm), counted as the measurement counts, "
        "fewest updates over the lr range (the mean of many runs: one run fluctuates around it):",
        "",
        header,
        "|---:|---:|---:|" + "---:|" * len(orders),
    ]
    for batch_size, by_order in rows.items():
        first = by_order[orders[0]][regime]
        cells = [batch_size, _value(first["predicted_lr"], 4), _value(first["predicted_updates"])]
        cells += [_value(by_order[o][regime]["measured_over_predicted"]) for o in orders]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def scaling_markdown(summary: dict, *, heading: str = "##") -> str:
    """The Scaling section: definitions, one table per regime, and findings read off scaling.json."""
    orders, regimes, rows = summary["orders"], summary["regimes"], summary["by_batch_size"]
    seeds = summary["seeds"]
    m_star = summary["critical_batch_size_theory"]
    lines = [
        f"{heading} Scaling: updates to a target loss vs batch size",
        "",
        f"`mbgd scaling` (`{summary['name']}`): for each batch size, batch order and regime, a dense scan of "
        f"{summary.get('scan', 0)} log-spaced lrs over "
        f"[{summary['lr_range'][0]:.3g}, {summary['lr_range'][1]:.3g}]{_noisy_range(summary)} and then an "
        "Optuna study of "
        f"{summary['n_trials']} trials between the scan's best point's neighbours minimise the number of "
        "parameter updates from which the full-dataset loss on the training targets stays at or below the "
        "target until the end of the budget (a run that touches the target and climbs away has not reached "
        "it; its first touch is the `first touch` column; a run whose loss ends non-finite or above where it "
        f"started is diverged). The target: {summary['target_ratio']:g} × the initial loss on the noise-free "
        f"targets (interpolation), within {summary['noisy_target_tolerance']:.0%} of the least-squares "
        f"optimum's loss on the noisy ones. Each best lr is re-trained over seeds {seeds[0]}..{seeds[-1]} "
        f"(mean ± sd over those that reach the target within {summary['epochs']} epochs; {summary['dtype']}, "
        f"{summary['data']}; {_rule(summary)}). `scan` is the scan's best count and the tuned result's "
        "regret against it.",
        "",
        f"Predictions: the interpolation theory (Ma, Bassily & Belkin 2018) gives m* = β/λ₁ = "
        f"{summary['beta']:.4g}/{summary['lambda_1']:.4g} = **{m_star:.3g}** and the step η*(m) = m/(β + "
        "λ₁(m − 1)); the simple noise scale B_simple = tr Σ/|G|² (McCandlish et al. 2018), measured along "
        "each best-lr run where it reaches the target (median over the batch sizes), is "
        + (
            f"**{summary['noise_scale_at_target']:.3g}** in the noisy regime."
            if summary["noise_scale_at_target"] is not None
            else "not measured (no noisy regime in this run)."
        ),
        "",
    ]
    for regime in regimes:
        header = "| batch size | η*(m) |" + "".join(
            f" {_ORDER_NAMES[o]}: best lr | updates | first touch | samples | scan |" for o in orders
        )
        lines += [f"**{regime}**", "", header, "|---:|---:|" + "---:|" * 5 * len(orders)]
        for batch_size, by_order in rows.items():
            cells = [batch_size, f"{by_order[orders[0]][regime]['eta_star']:.4g}"]
            for order in orders:
                row = by_order[order][regime]
                reached = (
                    ""
                    if row["seeds_reached"] == len(seeds)
                    else f" ({row['seeds_reached']}/{len(seeds)} seeds)"
                )
                cells += [
                    _value(row["best_lr"], 4),
                    _spread(row, "updates_to_target") + reached,
                    _value(row.get("first_touch_updates")),
                    _value(row["samples_to_target"], 4),
                    _scan_cell(row),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += _prediction_table(summary, regime)
    lines += ["Findings:", ""]
    for regime in regimes:
        knees = "; ".join(f"{_ORDER_NAMES[o]}: {_knee_sentence(summary, o, regime)}" for o in orders)
        prediction = f"m* = {m_star:.3g}"
        if regime == "noisy" and summary["noise_scale_at_target"] is not None:
            prediction += f", B_simple at the target = {summary['noise_scale_at_target']:.3g}"
        lines.append(f"- **{regime}**: {knees}. Predicted: {prediction}.")
        for order in orders:
            last, leaves = perfect_scaling_up_to(summary, order, regime)
            if leaves is None:
                continue
            samples = {int(b): r[order][regime]["samples_to_target"] for b, r in rows.items()}
            lines.append(
                f"  - {_ORDER_NAMES[order]}: perfect scaling (samples within "
                f"{PERFECT_SCALING_TOLERANCE - 1:.0%} of the smallest batch size's) up to batch size {last} "
                f"({_value(samples[last], 4)} samples); at {leaves}, {_value(samples[leaves], 4)}."
            )
    first_order = orders[0]
    for regime in regimes:
        by_b = {int(b): r[first_order][regime] for b, r in rows.items()}
        tutorial = [b for b in (1, 10, 20) if b in by_b]
        if len(tutorial) >= 2:
            lines.append(
                f"- **The tutorial's batch sizes ({_ORDER_NAMES[first_order]}, {regime})**, each at its own "
                "lr: "
                + ", ".join(
                    f"batch size {b}: {_value(by_b[b]['updates_to_target'])} updates, "
                    f"{_value(by_b[b]['samples_to_target'], 4)} samples"
                    for b in tutorial
                )
                + "."
            )
    lines += [""] + [f"![{text}]({name})" for name, text in SCALING_FIGURES.items()]
    return "\n".join(lines) + "\n"


def scaling_section(folder) -> str:
    """The Scaling section for report.md, from the scaling.json that `mbgd scaling` wrote to the same folder
    (its figures lie there too); '' when it wrote none."""
    import json
    from pathlib import Path

    path = Path(folder) / "scaling.json"
    if not path.is_file():
        return ""
    return "\n" + scaling_markdown(json.loads(path.read_text()), heading="## 4.")


def _noisy_range(summary: dict) -> str:
    """The noisy regime's own lr range, where it has one (scaling.json before it had none)."""
    noisy = summary.get("lr_range_noisy")
    if not noisy or noisy == summary["lr_range"] or "noisy" not in summary["regimes"]:
        return ""
    return f" ([{noisy[0]:.3g}, {noisy[1]:.3g}] on the noisy targets: see `--lr-min`)"
