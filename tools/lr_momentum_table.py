"""docs/research.md's table of the lr x momentum search, made from results/lr_momentum.json (a run of the
committed code: `mbgd lr-momentum --output-dir results`, its defaults).

    python tools/lr_momentum_table.py           # print the table
    python tools/lr_momentum_table.py --write   # put it in docs/research.md, between its markers

tests/test_lr_momentum_quoted.py checks that docs/research.md holds what this makes from the file.
"""

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "results" / "lr_momentum.json"
BATCH_SIZES = (1, 3, 10, 100)
BEGIN = "<!-- lr x momentum table: tools/lr_momentum_table.py -->\n"
END = "<!-- end of lr x momentum table -->\n"


def _updates(runs: dict, seeds: int) -> str:
    if runs["updates"] is None:
        return "never"
    text = f"{runs['updates']:.3g}"
    return text if runs["seeds_reached"] == seeds else f"{text} ({runs['seeds_reached']}/{seeds})"


def _cell(point: dict, seeds: int) -> str:
    """SGD's updates → tuned heavy ball's (its momentum)."""
    tuned = point["tuned"]["momentum"]
    momentum = "" if tuned is None else f" (μ {tuned:.2f})"
    return (
        f"{_updates(point['seeds']['sgd'], seeds)} → {_updates(point['seeds']['momentum'], seeds)}{momentum}"
    )


def _cost(points: list[dict], key: str) -> str:
    """The lower median over the batch sizes of trials_to_5pct, a batch size where no trial got within 5%
    ranking above any count (as the sweep's median_trials), and at how many none did."""
    counts = [p[f"trials_to_5pct_{key}"] for p in points]
    ranked = sorted(counts, key=lambda n: math.inf if n is None else n)
    median = ranked[(len(ranked) - 1) // 2]
    nevers = sum(n is None for n in counts)
    return f"{'never' if median is None else median} ({nevers} never)"


def table(summary: dict) -> str:
    """One row per batch order and regime: updates to the target of SGD at its tuned lr and of heavy ball at
    its tuned lr and momentum (means over the seeds) at a few batch sizes, and the tuning cost without the
    grid in 2-D and 1-D over all batch sizes."""
    seeds = summary["seeds"]
    sizes = " | ".join(f"batch size {b}" for b in BATCH_SIZES)
    lines = [
        f"| order, regime | {sizes} | trials_to_5pct 2-D | 1-D |",
        "|---|" + "---|" * len(BATCH_SIZES) + "---:|---:|",
    ]
    for order, regimes in summary["measured"].items():
        for regime, points in regimes.items():
            by_size = {p["batch_size"]: p for p in points}
            cells = " | ".join(_cell(by_size[b], seeds) for b in BATCH_SIZES)
            costs = f"{_cost(points, '2d')} | {_cost(points, '1d')}"
            lines.append(f"| {order.replace('_', ' ')}, {regime} | {cells} | {costs} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    text = table(json.loads(SUMMARY.read_text()))
    if "--write" not in argv:
        sys.stdout.write(text)
        return
    research = ROOT / "docs" / "research.md"
    page = research.read_text()
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    research.write_text(page[:start] + text + page[end:])


if __name__ == "__main__":
    main(sys.argv[1:])
