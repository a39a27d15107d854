"""The markdown mbgd writes: the committed results are what the code writes from their JSON, and the tables
and sentences say what the numbers say (expected text written out by hand)."""

import json
from pathlib import Path

from mbgd.reports import markdown as report
from mbgd.reports import scaling_markdown as scaling_report
from mbgd.studies.sweep_summary import median_trials

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_results_scaling_md_is_what_the_code_writes_from_results_scaling_json() -> None:
    summary = json.loads((RESULTS / "scaling.json").read_text())
    assert scaling_report.scaling_markdown(summary, heading="#") == (RESULTS / "scaling.md").read_text()


def test_scaling_md_states_the_fixed_orders_rows_and_where_perfect_scaling_ends() -> None:
    text = (RESULTS / "scaling.md").read_text()
    # batch size 1, fixed order, noise-free: 79 updates on every seed, first touch 79, 79 samples, scan 79
    assert "| 1 | 0.01923 | 0.0218 | 79 ± 0 | 79 | 79 | 79 (+0%) |" in text
    assert "| 3 | 0.03515 | 0.06159 | 26 ± 0 | 26 | 78 | 26 (+0%) |" in text
    assert (
        "fixed order: perfect scaling (samples within 25% of the smallest batch size's) up to batch size 3 "
        "(78 samples); at 4, 128." in text
    )
    assert "stays at or below the target until the end of the budget" in text


def tuning_cost_rows(rows: dict) -> list[str]:
    summary = {"by_batch_size": rows, "tuning_cost_seeds": 10, "scan": 512, "n_trials": 64}
    return [
        line for line in report.tuning_cost_markdown(summary) if line.startswith("| ") and line[2].isdigit()
    ]


def test_the_cost_of_tuning_table_gives_median_range_and_nevers() -> None:
    by_seed = [50, 118, 69, 35, 86, 125, 132, 34, 128, 36]
    stuck = [None, 5, None]
    rows = {
        "20": {
            "scan_best_lr": 0.1089,
            "scan_best_value": -0.264,
            "best_value": -0.2652,
            "tuned_regret": -0.003,
            "scan_at_edge": None,
            "trials_to_5pct": median_trials(by_seed),
            "trials_to_5pct_by_seed": by_seed,
        },
        "1": {
            "scan_best_lr": 0.01,
            "scan_best_value": 3.0,
            "best_value": 3.0,
            "tuned_regret": 0.0,
            "scan_at_edge": "lr_min",
            "trials_to_5pct": median_trials(stuck),
            "trials_to_5pct_by_seed": stuck,
        },
    }
    assert tuning_cost_rows(rows) == [
        "| 20 | 0.1089 | -0.264 | -0.2652 | -0.3% | 69 (34–132) |",
        "| 1 | 0.01 (at lr_min) | 3 | 3 | +0.0% | never (5–5, 2 never) |",
    ]


def test_the_median_of_trials_counts_a_seed_that_never_got_there_as_more_than_any() -> None:
    assert median_trials([3, 1, 2]) == 2
    assert median_trials([4, 1, 3, 2]) == 2  # the lower median: a count some seed achieved
    assert median_trials([None, 1, None]) is None
    assert median_trials([None, 1, 2]) == 2
