"""README and docs/research.md quote results/lr_momentum.json (the committed `mbgd lr-momentum` run) as it
has it: the table is what tools/lr_momentum_table.py makes from the file, and every number the prose quotes is
read off the file here, at the precision the page prints it. Nothing here trains."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = json.loads((ROOT / "results" / "lr_momentum.json").read_text())
SCALING = json.loads((ROOT / "results" / "scaling.json").read_text())
README = " ".join((ROOT / "README.md").read_text().split())
RESEARCH_PAGE = (ROOT / "docs" / "research.md").read_text()
RESEARCH = " ".join(RESEARCH_PAGE.split())
KEYS = [(order, regime) for order in ("fixed_order", "shuffled") for regime in ("interpolation", "noisy")]


def point(order: str, regime: str, batch_size: int) -> dict:
    return next(p for p in SUMMARY["measured"][order][regime] if p["batch_size"] == batch_size)


def updates(order: str, regime: str, batch_size: int, rule: str) -> float:
    return point(order, regime, batch_size)["seeds"][rule]["updates"]


def speedups(order: str, regime: str, sizes) -> list[float]:
    return [updates(order, regime, b, "sgd") / updates(order, regime, b, "momentum") for b in sizes]


def span(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def test_research_md_holds_the_table_made_from_the_committed_run() -> None:
    spec = importlib.util.spec_from_file_location("table", ROOT / "tools" / "lr_momentum_table.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.BEGIN + tool.table(SUMMARY) + tool.END in RESEARCH_PAGE


def test_the_settings_quoted_are_the_run_s() -> None:
    assert (SUMMARY["grid_lrs"], SUMMARY["grid_momenta"], SUMMARY["momentum_max"]) == (512, 34, 0.99)
    assert (SUMMARY["n_trials"], SUMMARY["seeds"], SUMMARY["tuning_cost_seeds"]) == (64, 3, 3)
    assert SUMMARY["tuning_cost_max_trials"] == 256
    low, high = SUMMARY["lr_range"]
    assert f"9.6·10⁻⁵ to {high:.2f} here" in RESEARCH
    assert f"{low:.1e}" == "9.6e-05"
    assert "512 log-spaced lrs × 34 momenta evenly spaced in [0, 0.99]" in RESEARCH
    assert "64 trials in populations of 16" in RESEARCH


def test_without_noise_the_gains_quoted_are_the_run_s() -> None:
    small = speedups("fixed_order", "interpolation", (1, 2, 3)) + speedups(
        "shuffled", "interpolation", (1, 2, 3)
    )
    assert f"({span(small, 2)} times fewer updates)" in RESEARCH
    assert f"{span(small, 2)} times fewer updates than SGD at batch sizes 1–3" in README
    large = [
        s
        for order in ("fixed_order", "shuffled")
        for b, s in zip(
            SUMMARY["batch_sizes"][3:],
            speedups(order, "interpolation", SUMMARY["batch_sizes"][3:]),
            strict=True,
        )
        if not (order == "shuffled" and b == 10)
    ]
    assert f"{span(large, 2)} times fewer from batch size 4 on" in RESEARCH
    assert f"{span(large, 2)} times fewer from 4 on" in README
    assert "(1.05)" in RESEARCH
    assert round(speedups("shuffled", "interpolation", [10])[0], 2) == 1.05
    assert [point("fixed_order", "interpolation", b)["tuned"]["momentum"] for b in (2, 3)] == [0.0, 0.0]
    assert (
        updates("fixed_order", "interpolation", 1, "momentum"),
        updates("fixed_order", "interpolation", 1, "sgd"),
    ) == (77, 79)
    assert (
        updates("fixed_order", "interpolation", 4, "momentum"),
        updates("fixed_order", "interpolation", 4, "sgd"),
    ) == (21, 32)
    assert (
        updates("fixed_order", "interpolation", 100, "momentum"),
        updates("fixed_order", "interpolation", 100, "sgd"),
    ) == (7, 19)
    assert "77 updates against SGD's 79" in RESEARCH
    assert "it needs 21 against 32" in RESEARCH
    shuffled_small = speedups("shuffled", "interpolation", (1, 2, 3))
    assert f"Shuffled: {span(shuffled_small, 2)} times fewer at batch sizes 1–3" in RESEARCH
    shuffled_large = [
        s
        for b, s in zip(
            SUMMARY["batch_sizes"][3:],
            speedups("shuffled", "interpolation", SUMMARY["batch_sizes"][3:]),
            strict=True,
        )
        if b != 10
    ]
    assert f"{span(shuffled_large, 2)} from 4 on but 1.05 at 10" in RESEARCH


def test_with_noise_the_gains_quoted_are_the_run_s() -> None:
    fixed_small = speedups("fixed_order", "noisy", (1, 2, 3, 4, 5, 10))
    assert (
        f"{min(fixed_small):.1f}–{max(fixed_small):.1f} times fewer updates at batch sizes 1–10" in RESEARCH
    )
    assert f"up to {max(fixed_small):.1f} times fewer" in README
    assert round(updates("fixed_order", "noisy", 1, "momentum")) == 373
    assert round(updates("fixed_order", "noisy", 1, "sgd")) == 2425
    assert "(373 against 2,425 at batch size 1)" in RESEARCH
    fixed_large = speedups("fixed_order", "noisy", (20, 25, 50, 100))
    assert f"{min(fixed_large):.1f}" == "1.5"
    assert f"{max(fixed_large):g}" == "3"
    shuffled = speedups("shuffled", "noisy", SUMMARY["batch_sizes"][1:])
    assert f"Shuffled: {span(shuffled, 2)} times from batch size 2 on" in RESEARCH
    assert f"about {min(shuffled):.0f}–{max(shuffled):.1f} times shuffled from batch size 2 on" in README
    one = point("shuffled", "noisy", 1)["seeds"]
    quoted = f"{one['momentum']['updates']:,.0f} ± {one['momentum']['updates_sd']:.0f} against "
    quoted += f"{one['sgd']['updates']:,.0f} ± {one['sgd']['updates_sd']:.0f}"
    assert quoted in RESEARCH, quoted
    for order in ("fixed_order", "shuffled"):
        assert f"{point(order, 'noisy', 1)['tuned']['momentum']:.2f}" == "0.96"
        assert f"{point(order, 'noisy', 100)['tuned']['momentum']:.2f}" == "0.27"


def lower_median(counts: list[int | None]) -> float:
    """The lower median, a batch size where no trial got within 5% ranking above any count."""
    ranked = sorted(counts, key=lambda n: math.inf if n is None else n)
    median = ranked[(len(ranked) - 1) // 2]
    return math.inf if median is None else median


def test_the_tuning_costs_quoted_are_the_run_s() -> None:
    medians = [
        lower_median([p[f"trials_to_5pct_{key}"] for p in SUMMARY["measured"][o][r]])
        for key in ("2d", "1d")
        for o, r in KEYS
    ]
    two_d, one_d = medians[:4], medians[4:]
    assert f"a median of {min(two_d):g}–{max(two_d):g} trials" in RESEARCH
    assert f"a median of {min(two_d):g}–{max(two_d):g} trials" in README
    assert f"the median is {min(one_d):g}–{max(one_d):g}" in RESEARCH
    nevers = [sum(p["trials_to_5pct_2d"] is None for p in SUMMARY["measured"][o][r]) for o, r in KEYS]
    assert f"at {min(nevers)}–{max(nevers)} of the 10 batch sizes" in RESEARCH


def test_the_refinement_and_scaling_comparisons_quoted_are_the_run_s() -> None:
    ten = point("fixed_order", "interpolation", 10)
    assert (ten["tuned"]["updates"], ten["grid_best"]["updates"]) == (13, 17)
    assert (
        round(-min(p["tuned"]["tuned_regret"] for o, r in KEYS for p in SUMMARY["measured"][o][r]) * 100)
        == 24
    )
    assert "by up to 24% (fixed order, noise-free, batch size 10: 13 updates against 17)" in RESEARCH
    for order in ("fixed_order", "shuffled"):
        assert round(updates(order, "noisy", 10, "sgd")) == round(
            SCALING["by_batch_size"]["10"][order]["noisy"]["updates_to_target"]
        )
        assert (
            updates(order, "noisy", 100, "sgd")
            == 24
            == SCALING["by_batch_size"]["100"][order]["noisy"]["updates_to_target"]
        )
    assert (
        "(203 and 204 updates at batch size 10 in the fixed and the shuffled order, 24 at 100 in both)"
        in RESEARCH
    )
    one, three = point("shuffled", "noisy", 1), point("shuffled", "noisy", 3)
    assert f"{one['sgd_grid_best']['lr']:.2g}" == "0.0017"
    assert f"{three['sgd_grid_best']['lr']:.2g}" == "0.0039"
    assert (round(one["seeds"]["sgd"]["updates"]), round(three["seeds"]["sgd"]["updates"])) == (2333, 795)
    scaled = {b: SCALING["by_batch_size"][b]["shuffled"]["noisy"] for b in ("1", "3")}
    assert (round(scaled["1"]["updates_to_target"]), round(scaled["3"]["updates_to_target"])) == (2333, 728)
    assert f"{scaled['1']['best_lr']:.2g}" == "0.0017"
    assert "shuffled, 2,333 updates at batch size 1 in both (lr 0.0017)" in RESEARCH
    assert "at batch size 3 scaling's 728 against the row's 795 (lr 0.0039)" in RESEARCH
    fixed = SCALING["by_batch_size"]["1"]["fixed_order"]["noisy"]
    assert (round(fixed["updates_to_target"]), fixed["seeds_reached"]) == (2058, 3)
    assert round(point("fixed_order", "noisy", 1)["seeds"]["sgd"]["updates"]) == 2425
    assert "fixed, 2,058 against 2,425 at batch size 1" in RESEARCH
    assert round(SCALING["lr_range_noisy"][0], 5) == 0.00047
    assert SCALING["lr_range"] == pytest.approx([0.0096, 0.24], rel=0.01)
    assert "[0.0096, 0.24]" in RESEARCH
    reached = [
        p["seeds"]["sgd"]["seeds_reached"]
        for o in ("fixed_order", "shuffled")
        for p in SUMMARY["measured"][o]["noisy"]
    ]
    assert reached.count(3) == len(reached) - 1
    assert point("fixed_order", "noisy", 10)["seeds"]["sgd"]["seeds_reached"] == 2
