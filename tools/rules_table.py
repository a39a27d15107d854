"""docs/research.md's table of update rules, made from the scaling.json of one `mbgd scaling` per rule
(results/rules/<rule>.json, each a run of the committed code: `bash tools/rules_runs.sh` makes them).

    python tools/rules_table.py           # print the table
    python tools/rules_table.py --write   # put it in docs/research.md, between its markers

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
ORDER_KEY = "shuffled"  # the order the theory and Zhang et al. assume: every sample once per epoch, at random
BEGIN = "<!-- rules table: tools/rules_table.py -->\n"
END = "<!-- end of rules table -->\n"


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


def table(summaries: dict[str, dict]) -> str:
    """One row per rule and regime: updates to the target at a few batch sizes (shuffled order, mean over the
    seeds that reached it), the fitted knee, and the noisy quadratic model's updates at the same sizes."""
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
            rows = [summary["by_batch_size"][b][ORDER_KEY][regime] for b in BATCH_SIZES]
            measured = summary["measured"][ORDER_KEY][regime]
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
    text = table(load())
    if "--write" not in argv:
        sys.stdout.write(text)
        return
    research = ROOT / "docs" / "research.md"
    page = research.read_text()
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    research.write_text(page[:start] + text + page[end:])


if __name__ == "__main__":
    main(sys.argv[1:])
