"""docs/research.md's tables of update rules (shuffled, then the fixed order), made from the scaling.json of
one `mbgd scaling` per rule (results/rules/<rule>.json, each a run of the committed code: `bash
tools/rules_runs.sh` makes them).

    python tools/rules_table.py           # print the tables
    python tools/rules_table.py --write   # put them in docs/research.md, between their markers

tests/test_results_quoted.py checks that docs/research.md holds what this makes from the files.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "results" / "rules"
# the rules in the order the table lists them: one `mbgd scaling --name <rule> ...` each (tools/rules_runs.sh)
ORDER = ("sgd", "sgd-linear", "sgd-ema", "momentum", "momentum-linear", "adam", "adam-linear")
BATCH_SIZES = ("1", "3", "10", "100")
# The orders, each with its table's markers: shuffled first (what the theory and Zhang et al. assume: every
# sample once per epoch, at random), then the tutorial's fixed order.
TABLES = {
    "shuffled": ("<!-- rules table: tools/rules_table.py -->\n", "<!-- end of rules table -->\n"),
    "fixed_order": (
        "<!-- rules table, fixed order: tools/rules_table.py -->\n",
        "<!-- end of rules table, fixed order -->\n",
    ),
}
BEGIN, END = TABLES["shuffled"]


def rule_name(summary: dict) -> str:
    rule = {"sgd": "SGD", "momentum": f"heavy ball {summary.get('momentum')}", "adam": "Adam"}
    name = rule[summary.get("optimizer", "sgd")]
    if summary.get("schedule", "constant") == "linear":
        name += ", linear decay"
    if summary.get("ema"):
        name += f", EMA {summary['ema']:g}"
    return name


def _count(row: dict, seeds: int) -> str:
    updates = row["updates_to_target"]
    if updates is None:
        return "never"
    text = f"{updates:.3g}"
    return text if row["seeds_reached"] == seeds else f"{text} ({row['seeds_reached']}/{seeds})"


def _model(row: dict) -> str:
    predicted = row.get("predicted_updates")
    return "—" if predicted is None else str(predicted)


def table(summaries: dict[str, dict], order: str = "shuffled") -> str:
    """One row per rule and regime: updates to the target at a few batch sizes (in `order`, mean over the
    seeds that reached it), the fitted knee, and the noisy quadratic model's updates at the same sizes
    (batches drawn with replacement: the same for both orders)."""
    sizes = " / ".join(BATCH_SIZES)
    lines = [
        f"| rule | regime | updates at batch size {sizes} | knee | tuned lr slope "
        f"| model: updates at {sizes} |",
        "|---|---|---|---:|---:|---|",
    ]
    for name in ORDER:
        summary = summaries[name]
        seeds = len(summary["seeds"])
        for regime in summary["regimes"]:
            rows = [summary["by_batch_size"][b][order][regime] for b in BATCH_SIZES]
            measured = summary["measured"][order][regime]
            knee = measured["critical_batch_size"]
            slope = measured.get("best_lr_exponent")
            lines.append(
                f"| {rule_name(summary)} | {regime} | {' / '.join(_count(r, seeds) for r in rows)} | "
                f"{'none' if knee is None else f'{knee:.3g}'} | "
                f"{'—' if slope is None else f'{slope:.2f}'} | "
                f"{' / '.join(_model(r) for r in rows) if summary.get('prediction') else 'no exact model'} |"
            )
    return "\n".join(lines) + "\n"


def load() -> dict[str, dict]:
    return {name: json.loads((RULES / f"{name}.json").read_text()) for name in ORDER}


def main(argv: list[str]) -> None:
    summaries = load()
    if "--write" not in argv:
        for order in TABLES:
            sys.stdout.write(table(summaries, order) + "\n")
        return
    research = ROOT / "docs" / "research.md"
    page = research.read_text()
    for order, (begin, end) in TABLES.items():
        start, stop = page.index(begin) + len(begin), page.index(end)
        page = page[:start] + table(summaries, order) + page[stop:]
    research.write_text(page)


if __name__ == "__main__":
    main(sys.argv[1:])
