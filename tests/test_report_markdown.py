"""summary.md and report.md as a reader sees them: small hand-built summaries and histories, and the exact
lines mbgd.reports.markdown writes from them, each expected line written out by hand (never by the function
under test)."""

import math

from mbgd.core.train import History
from mbgd.reports.markdown import exponent_text, report_markdown, summary_markdown


def row(**changes) -> dict:
    """One batch size's summary row; the numbers carry more digits than the table prints, so the formats
    show."""
    base = {
        "best_lr": 0.0221437,
        "best_value": -0.639812,
        "epochs_to_floor_mean": 1.0,
        "epochs_to_floor_sd": 0.0,
        "epochs_to_floor_fixed_lr_mean": 21.0,
        "theory_first_instability_lr": 0.104387,
        "theory_best_lr": 0.0220913,
        "theory_stable_intervals": [[0.0, 0.104387]],
        "theory_min_spectral_radius": 4.9712e-08,
        "spectral_radius_at_best_lr": 0.00097641,
        "spectral_radius_at_fixed_lr": 0.29213,
        "transient_at_fixed_lr": 30163422.0,
        "diverged_trials": 0,
        "complete_trials": 64,
        "pruned_trials": 0,
    }
    return base | changes


# batch sizes 10 and 20, by column: what row() changes for each
COLUMNS = {
    "best_lr": (0.0797312, 0.109184),
    "best_value": (-0.413571, -0.265213),
    "epochs_to_floor_mean": (3.8, 6.6),
    "epochs_to_floor_sd": (0.4, 0.412311),
    "epochs_to_floor_fixed_lr_mean": (13.0, 8.8),
    "theory_first_instability_lr": (0.127731, 0.129114),
    "theory_best_lr": (0.0766981, 0.106437),
    "theory_stable_intervals": ([[0.0, 0.127731], [0.146218, 0.151872]], [[0.0, 0.129114]]),
    "theory_min_spectral_radius": (0.108234, 0.256341),
    "spectral_radius_at_best_lr": (0.162049, 0.338172),
    "spectral_radius_at_fixed_lr": (0.617351, 0.494018),
    "transient_at_fixed_lr": (5.82114, 2.54372),
}
ROW_10 = row(
    **{key: values[0] for key, values in COLUMNS.items()},
    diverged_trials=2,
    complete_trials=61,
    pruned_trials=3,
)
ROW_20 = row(**{key: values[1] for key, values in COLUMNS.items()})


def summary(rows: dict, **changes) -> dict:
    base = {
        "name": "hand",
        "objective": "auc",
        "pruner": "none",
        "n_trials": 64,
        "lr_range": [1e-4, 1.0],
        "epochs": 20,
        "dtype": "float32",
        "shuffle": False,
        "targets": "clean",
        "fixed_lr": 0.1,
        "seeds": [42, 43, 44, 45, 46],
        "by_batch_size": rows,
        "ranking_fixed_lr": [20, 10, 1],
        "ranking_tuned": [1, 10, 20],
        "ranking_fixed_lr_by_dtype": {"float32": [20, 10, 1], "float64": [1, 20, 10]},
        "ranking_fixed_lr_depends_on_precision": True,
        "best_lr_exponent": 0.5412,
        "best_lr_exponent_se": 0.0213,
        "noise_floor": 0.15468341,
    }
    return base | changes


THREE = {"1": row(), "10": ROW_10, "20": ROW_20}


# --- summary.md ----------------------------------------------------------------------------------------


def test_summary_md_of_two_batch_sizes_word_for_word() -> None:
    two = summary(
        {"1": row(), "10": ROW_10},
        name="two",
        pruner="median",
        n_trials=32,
        lr_range=[0.001, 0.5],
        epochs=10,
        dtype="float64",
        shuffle=True,
        targets="noisy",
        fixed_lr=0.05,
        seeds=[7, 8, 9],
        ranking_fixed_lr=[10, 1],
        ranking_tuned=[1, 10],
        ranking_fixed_lr_by_dtype={"float64": [10, 1]},
        ranking_fixed_lr_depends_on_precision=False,
        best_lr_exponent=0.7,
        best_lr_exponent_se=math.nan,
    )
    assert summary_markdown(two) == (
        "# Sweep `two`: best learning rate per batch size\n"
        "\n"
        "Objective `auc`, pruner `median`, 32 trials per batch size, lr in [0.001, 0.5], 10 epochs, float64, "
        "shuffled batch order, noisy training targets; each best lr and the tutorial's lr 0.05 re-trained "
        "over seeds 7..9.\n"
        "\n"
        "| batch size | best lr | best value | epochs to floor (mean ± sd) | at lr 0.05: epochs to floor "
        "| theory: first instability | theory: fastest lr | radius per epoch at best lr | diverged trials |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| 1 | 0.02214 | -0.6398 | 1 ± 0 | 21 | 0.1044 | 0.02209 | 0.000976 | 0 of 64 |\n"
        "| 10 | 0.07973 | -0.4136 | 3.8 ± 0.4 | 13 | 0.1277 | 0.0767 | 0.162 | 2 of 61 (+3 pruned) |\n"
        "\n"
        "Rankings (best first, by the objective's mean over the seeds; `epochs_to` counts 11 for never):\n"
        "\n"
        "- at the tutorial's lr 0.05: 10 < 1\n"
        "- each at its best lr: 1 < 10\n"
        "- best lr vs batch size: no exponent fitted (2 batch sizes: too few to estimate its uncertainty)\n"
        "\n"
        "Precision: at the tutorial's lr the ranking is 10 < 1 in float64 — it does not depend on the "
        "precision.\n"
        "\n"
        "Theory columns are for the fixed (unshuffled) batch order: one epoch is the linear map "
        "Π(I − lr·H_batch) of the error; its spectral radius is the contraction per epoch. The first "
        "instability is where that radius first reaches 1; the map can be stable again above it: "
        "batch size 1: (0, 0.1044); batch size 10: (0, 0.1277) ∪ [0.1462, 0.1519).\n"
    )


def test_summary_md_of_three_batch_sizes_rows_rankings_and_precision() -> None:
    lines = summary_markdown(summary(THREE)).splitlines()
    assert "| 20 | 0.1092 | -0.2652 | 6.6 ± 0.41 | 8.8 | 0.1291 | 0.1064 | 0.338 | 0 of 64 |" in lines
    assert [line for line in lines if line.startswith("- ")] == [
        "- at the tutorial's lr 0.1: 20 < 10 < 1",
        "- each at its best lr: 1 < 10 < 20",
        "- best lr vs batch size: log-log slope 0.54 ± 0.02 (standard error over 3 batch sizes; a fit "
        "through three points, no scaling law)",
    ]
    assert (
        "Precision: at the tutorial's lr the ranking is 20 < 10 < 1 in float32; 1 < 20 < 10 in float64 — it "
        "**depends on the precision**." in lines
    )
    assert lines[-1].endswith(
        "batch size 1: (0, 0.1044); batch size 10: (0, 0.1277) ∪ [0.1462, 0.1519); batch size 20: "
        "(0, 0.1291)."
    )
    assert not any("cost of tuning" in line for line in lines)  # no scan, no tuning cost measured


def test_stable_intervals_joined_by_union_the_first_open_at_zero() -> None:
    three_intervals = row(theory_stable_intervals=[[0.0, 0.1], [0.15, 0.2], [0.31234, 0.45678]])
    text = summary_markdown(summary({"4": three_intervals}, ranking_fixed_lr=[4], ranking_tuned=[4]))
    assert text.endswith("stable again above it: batch size 4: (0, 0.1) ∪ [0.15, 0.2) ∪ [0.3123, 0.4568).\n")


def test_exponent_text_in_each_case() -> None:
    def text(n: int, slope, se) -> str:
        rows = {str(b): row() for b in (1, 2, 4, 8)[:n]}
        return exponent_text(summary(rows, best_lr_exponent=slope, best_lr_exponent_se=se))

    assert text(1, None, None) == "no exponent fitted (1 batch size: too few to estimate its uncertainty)"
    assert text(2, 0.5, 0.1) == "no exponent fitted (2 batch sizes: too few to estimate its uncertainty)"
    assert text(3, 0.5, math.inf) == "no exponent fitted (3 batch sizes: too few to estimate its uncertainty)"
    assert text(3, None, 0.1) == "no exponent fitted (3 batch sizes: too few to estimate its uncertainty)"
    assert text(3, 0.536, 0.0249) == (
        "log-log slope 0.54 ± 0.02 (standard error over 3 batch sizes; a fit through three points, no "
        "scaling law)"
    )
    assert text(4, 0.283, 0.091) == (
        "log-log slope 0.28 ± 0.09 (standard error over 4 batch sizes; a fit, not a law)"
    )


def test_the_tuning_cost_section_follows_with_its_heading_when_measured() -> None:
    rows = {
        "1": row(scan_best_lr=0.02230, scan_best_value=-0.6391, tuned_regret=-0.0016, scan_at_edge=None),
    }
    rows["1"]["trials_to_5pct"] = 33
    rows["1"]["trials_to_5pct_by_seed"] = [33, 16, 68, 40, 20, 30, 35, 50, 25, 31]
    lines = summary_markdown(
        summary(rows, ranking_fixed_lr=[1], ranking_tuned=[1], scan=512, tuning_cost_seeds=10),
        subheading="###",
    ).splitlines()
    assert "### The cost of tuning each batch size" in lines
    assert "| 1 | 0.0223 | -0.6391 | -0.6398 | -0.2% | 33 (16–68) |" in lines
    assert any(
        line.startswith(
            "Each study began with a dense scan of 512 log-spaced lrs over the range; its 64 Optuna"
        )
        and "(median over 10 sampler seeds; never = not within 256 trials)." in line
        for line in lines
    )


# --- report.md -------------------------------------------------------------------------------------------


def history(batch_size: int, losses: list[float], *, diverged: bool = False) -> History:
    return History(
        lr=0.1,
        batch_size=batch_size,
        updates_per_epoch=100 // batch_size,
        samples_per_epoch=100,
        epoch_losses=losses,
        diverged=diverged,
    )


FLOAT32 = {
    1: history(1, [599.2755, 324.7121, 785.8346, 1739.204, 1.2e4, 304.8644]),
    10: history(10, [599.2755, 993.0521, 199.6813, 91.37264, 0.1546751]),
    20: history(20, [599.2755, 153.0675, 37.56236, 9.319268, 0.1546838]),
}
FLOAT64 = {
    1: history(1, [599.2755, 290.6612, 23.99997, 2.506123, 0.1708349]),
    10: history(10, [599.2755, 993.0521, 199.6813, 91.37264, 0.1546751]),
    20: history(20, [599.2755, 153.0675, 37.56236, 9.319268, 0.1546838]),
}


def report_lines(the_summary: dict, histories: dict, **kwargs) -> list[str]:
    return report_markdown(the_summary, histories, 0.1, **kwargs).splitlines()


def findings(lines: list[str]) -> list[str]:
    return lines[lines.index("## 3. Findings") + 2 :]


def test_report_md_tutorial_table_in_both_precisions() -> None:
    lines = report_lines(summary(THREE), {"float32": FLOAT32, "float64": FLOAT64})
    table = lines[lines.index("| batch size | precision | epochs 0-3 | final |") :]
    assert table[:8] == [
        "| batch size | precision | epochs 0-3 | final |",
        "|---:|---|---|---:|",
        "| 1 | float32 | 599.3, 324.7, 785.8, 1739 | 304.9 |",
        "| 1 | float64 | 599.3, 290.7, 24, 2.506 | 0.1708 |",
        "| 10 | float32 | 599.3, 993.1, 199.7, 91.37 | 0.1547 |",
        "| 10 | float64 | 599.3, 993.1, 199.7, 91.37 | 0.1547 |",
        "| 20 | float32 | 599.3, 153.1, 37.56, 9.319 | 0.1547 |",
        "| 20 | float64 | 599.3, 153.1, 37.56, 9.319 | 0.1547 |",
    ]
    assert "Full-dataset loss at lr 0.1 (start of epochs 0-3, and after the last epoch):" in lines


def test_report_md_section_2_is_summary_md_without_its_title_and_with_subheadings() -> None:
    rows = {"1": row(scan_best_lr=0.0223, scan_best_value=-0.6391, tuned_regret=-0.0016, scan_at_edge=None)}
    rows["1"] |= {"trials_to_5pct": 33, "trials_to_5pct_by_seed": [33, 16, 68]}
    the_summary = summary(rows, ranking_fixed_lr=[1], ranking_tuned=[1], scan=512, tuning_cost_seeds=3)
    lines = report_lines(
        the_summary,
        {"float32": {1: FLOAT32[1]}},
    )
    start = lines.index("## 2. Each batch size at its own learning rate") + 2
    assert lines[start].startswith("Objective `auc`, pruner `none`, 64 trials per batch size")
    assert "### The cost of tuning each batch size" in lines
    assert "## The cost of tuning each batch size" not in lines
    assert "# Sweep `hand`: best learning rate per batch size" not in lines
    assert lines[0] == "# mbgd reproduction report"


def test_report_md_findings_word_for_word() -> None:
    exact = {1: history(1, [599.2755, 0.1546901]), 10: history(10, [599.2755, 0.15467])}
    lines = findings(
        report_lines(summary(THREE), {"float32": FLOAT32, "float64": FLOAT64}, exact_targets=exact)
    )
    assert lines == [
        "- **The comparison turns around.** At the tutorial's lr 0.1 the best batch size is 20 (ranking 20 < "
        "10 < 1); with each batch size at its own best lr it is 1 (ranking 1 < 10 < 20). Epochs to the noise "
        "floor at the best lr: batch size 1: 1, batch size 10: 3.8, batch size 20: 6.6.",
        "- **Batch size 1, theory.** First instability at lr 0.1044; the fastest contraction per epoch is "
        "4.97e-08 at lr 0.02209 (the study found 0.02214). At lr 0.1 the epoch contracts the error by 0.292 "
        "but can amplify it 3.02e+07x inside the epoch before that.",
        "- **Batch size 10, theory.** First instability at lr 0.1277 (stable again on [0.1462, 0.1519)); the "
        "fastest contraction per epoch is 0.108 at lr 0.0767 (the study found 0.07973). At lr 0.1 the epoch "
        "contracts the error by 0.617 but can amplify it 5.82x inside the epoch before that.",
        "- **Batch size 20, theory.** First instability at lr 0.1291; the fastest contraction per epoch is "
        "0.256 at lr 0.1064 (the study found 0.1092). At lr 0.1 the epoch contracts the error by 0.494 but "
        "can amplify it 2.54x inside the epoch before that.",
        "- **Precision.** At the tutorial's lr the ranking is 20 < 10 < 1 in float32; 1 < 20 < 10 in "
        "float64 — it depends on the precision. Final losses: float32 (1: 304.9, 10: 0.1547, 20: 0.1547); "
        "float64 (1: 0.1708, 10: 0.1547, 20: 0.1547). A large transient amplification turns rounding errors "
        "into a visible difference: the tutorial's targets are computed in float32 (-5·X on float32 X), and "
        "a float64 run casts them, rounding included. With the targets computed in float64 "
        "(`--targets-dtype float64`, preset `experiments/tutorial-float64-targets.toml`) the float64 final "
        "losses are 1: 0.1547, 10: 0.1547 (the noise floor is 0.154683): the float64 run's gap comes from "
        "the targets' float32 rounding, amplified within each epoch, not from float64 arithmetic.",
        "- **Best lr vs batch size:** log-log slope 0.54 ± 0.02 (standard error over 3 batch sizes; a fit "
        "through three points, no scaling law) (1 would be the linear scaling rule, 0.5 the square-root "
        "rule).",
    ]


def test_report_md_findings_when_fixed_and_tuned_agree_and_the_precision_does_not_matter() -> None:
    the_summary = summary(
        THREE,
        ranking_fixed_lr=[10, 20, 1],
        ranking_tuned=[10, 1, 20],
        ranking_fixed_lr_by_dtype={"float32": [10, 20, 1], "float64": [10, 20, 1]},
        ranking_fixed_lr_depends_on_precision=False,
    )
    lines = findings(report_lines(the_summary, {"float32": FLOAT32, "float64": FLOAT64}))
    assert lines[0] == (
        "- **The comparison turns around.** At the tutorial's lr 0.1 the best batch size is 10 (ranking 10 < "
        "20 < 1); with each batch size at its own best lr it is 10 (ranking 10 < 1 < 20). Epochs to the "
        "noise floor at the best lr: batch size 10: 3.8, batch size 1: 1, batch size 20: 6.6."
    )
    assert lines[4] == (
        "- **Precision.** At the tutorial's lr the ranking is 10 < 20 < 1 in float32; 10 < 20 < 1 in "
        "float64 — the same. Final losses: float32 (1: 304.9, 10: 0.1547, 20: 0.1547); float64 (1: 0.1708, "
        "10: 0.1547, 20: 0.1547). A large transient amplification turns rounding errors into a visible "
        "difference."
    )
    assert not any("float64 arithmetic" in line or "--targets-dtype" in line for line in lines)


def test_report_md_stable_again_lists_every_further_interval_and_only_those() -> None:
    rows = {
        "1": row(theory_stable_intervals=[[0.0, 0.104387]]),
        "10": row(theory_stable_intervals=[[0.0, 0.127731], [0.146218, 0.151872], [0.2, 0.212345]]),
    }
    the_summary = summary(rows, ranking_fixed_lr=[10, 1], ranking_tuned=[1, 10])
    lines = findings(report_lines(the_summary, {"float32": {1: FLOAT32[1], 10: FLOAT32[10]}}))
    assert lines[1].startswith("- **Batch size 1, theory.** First instability at lr 0.1044; the fastest")
    assert lines[2].startswith(
        "- **Batch size 10, theory.** First instability at lr 0.1044 (stable again on [0.1462, 0.1519), "
        "[0.2, 0.2123)); the fastest"
    )


def test_report_md_says_diverged_for_a_diverged_history() -> None:
    blown = history(1, [599.2755, 1.0e20], diverged=True)
    histories = {"float32": {1: blown, 10: FLOAT32[10]}}
    rows = {"1": row(), "10": ROW_10}
    the_summary = summary(
        rows,
        ranking_fixed_lr=[10, 1],
        ranking_tuned=[1, 10],
        ranking_fixed_lr_by_dtype={"float32": [10, 1]},
        ranking_fixed_lr_depends_on_precision=False,
    )
    lines = report_lines(the_summary, histories, exact_targets={1: blown})
    assert "| 1 | float32 | 599.3, 1e+20 | diverged |" in lines
    assert "| 10 | float32 | 599.3, 993.1, 199.7, 91.37 | 0.1547 |" in lines
    precision = findings(lines)[3]
    assert "Final losses: float32 (1: diverged, 10: 0.1547)." in precision
    assert "the float64 final losses are 1: diverged (the noise floor is 0.154683)" in precision
