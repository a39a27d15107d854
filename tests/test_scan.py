"""Dense lr scans: the grid, the table, the refinement, and the tuned optimum against an exhaustive scan."""

import json
import math
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner

from mbgd.cli.main import main
from mbgd.core import scan as scans
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import load_data
from mbgd.core.scan import LrScan, lr_grid, relative_regret, scan_lrs, tpe_trials_to_within

TUTORIAL = TrainConfig()
DATA = load_data(TUTORIAL.data, TUTORIAL.seed)


def exhaustive_updates_to_target(
    batch_size: int,
    lrs: torch.Tensor,
    epochs: int,
    target_ratio: float,
    dtype: torch.dtype = torch.float32,
    details: list | None = None,
    momentum: float = 0.0,
) -> torch.Tensor:
    """Updates from which the full-dataset loss stays at or below the target to the end, for every lr at once:
    the tutorial's fixed order and noise-free targets, written as a plain loop independent of mbgd's
    training; with `momentum`, heavy ball as torch.optim.SGD steps it (buf = momentum * buf + grad)."""
    x32 = torch.arange(-5, 5, 0.1, dtype=torch.float32)[:100]
    x, y = x32.to(dtype), (-5 * x32).to(dtype)  # the tutorial's float32 data, cast
    k = lrs.shape[0]
    lr = lrs.to(dtype)
    w = torch.full((k,), -10.0, dtype=dtype)
    b = torch.full((k,), -20.0, dtype=dtype)
    buf_w, buf_b = torch.zeros_like(w), torch.zeros_like(b)

    def loss() -> torch.Tensor:
        return ((w[:, None] * x[None, :] + b[:, None] - y[None, :]) ** 2).mean(dim=1)

    initial = loss()
    target = target_ratio * initial  # the least-squares loss of the noise-free line is 0
    last_above = torch.where(initial > target, 0, -1)
    first_touch = torch.where(initial <= target, 0, -1)
    step = 0
    for _ in range(epochs):
        for start in range(0, 100, batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            residual = w[:, None] * xb[None, :] + b[:, None] - yb[None, :]
            grad_w = 2 * (residual * xb[None, :]).mean(dim=1)
            grad_b = 2 * residual.mean(dim=1)
            buf_w, buf_b = momentum * buf_w + grad_w, momentum * buf_b + grad_b
            w, b = w - lr * buf_w, b - lr * buf_b
            step += 1
            current = loss()
            above = ~(current <= target)  # nan counts as above
            last_above = torch.where(above, step, last_above)
            first_touch = torch.where((first_touch < 0) & ~above, step, first_touch)
    final = loss()
    diverged = ~torch.isfinite(final) | (final > initial)
    never = diverged | ~(final <= target)
    if details is not None:  # (first touch or None, diverged) per lr
        touches = [None if t < 0 else t for t in first_touch.tolist()]
        details.extend(zip(touches, diverged.tolist(), strict=True))
    return torch.where(never, torch.full_like(last_above, step + 1), last_above + 1).to(torch.float64)


def test_lr_grid_is_log_spaced_with_both_ends() -> None:
    grid = lr_grid(0.01, 1.0, 5)
    assert grid == pytest.approx([0.01, 10**-1.5, 0.1, 10**-0.5, 1.0], rel=1e-12)
    assert grid[0] == 0.01
    assert grid[-1] == 1.0


def scan(values, *, worst=100.0, lrs=None) -> LrScan:
    lrs = lrs or [0.01 * 1.1**i for i in range(len(values))]
    return LrScan("s", "updates_to", lrs, list(values), [None] * len(values), [False] * len(values), worst)


def test_scan_best_is_the_middle_of_the_first_run_of_its_lowest_value() -> None:
    s = scan([50, 40, 30, 30, 30, 60, 30, 90])
    assert s.best_index == 3
    assert s.refinement_range() == (s.lrs[1], s.lrs[5])
    assert s.at_edge == ""


def test_scan_says_when_its_best_is_an_end_of_the_range_or_nothing_reached() -> None:
    assert scan([10, 20, 30]).at_edge == "lr_min"
    assert scan([30, 20, 10]).at_edge == "lr_max"
    nothing = scan([100, 100, 100])
    assert not nothing.reached
    assert nothing.at_edge == ""


def test_scan_csv_has_one_row_per_lr() -> None:
    s = LrScan("st", "updates_to", [0.1, 0.2], [5.0, 101.0], [3, None], [False, True], 101.0)
    assert s.to_csv() == "lr,objective,first_touch,diverged\n0.1,5.0,3,0\n0.2,101.0,,1\n"


def test_relative_regret_compares_auc_as_geometric_mean_losses() -> None:
    assert relative_regret("updates_to", 84.0, 80.0) == pytest.approx(0.05)
    assert relative_regret("auc", math.log10(1.05), 0.0) == pytest.approx(0.05)
    assert relative_regret("auc", -2.0, -1.0) == pytest.approx(-0.9)


def test_scan_values_equal_an_independent_exhaustive_loop() -> None:
    # float64: near the stability edge the in-epoch amplification (up to 3e7 at batch size 1) turns float32's
    # different summation orders into different runs; in float64 both loops agree.
    train = TrainConfig(epochs=30, dtype="float64")
    config = SweepConfig(objective="updates_to", train=train, lr_min=0.01, lr_max=0.24)
    lrs = lr_grid(0.01, 0.24, 64)
    for batch_size in (1, 3, 20):
        ours = scan_lrs(config, DATA, batch_size, lrs).values
        theirs = exhaustive_updates_to_target(
            batch_size, torch.tensor(lrs, dtype=torch.float64), 30, 1e-4, dtype=torch.float64
        ).tolist()
        mismatched = [(lr, a, b) for lr, a, b in zip(lrs, ours, theirs, strict=True) if a != b]
        assert not mismatched, mismatched


def test_scaling_finds_the_exhaustive_optimum_of_batch_sizes_1_2_3(
    tracking_store: str, tmp_path: Path
) -> None:
    lr_min, lr_max = 0.0096, 0.24
    lrs = torch.logspace(math.log10(lr_min), math.log10(lr_max), 4096, dtype=torch.float64)
    args = [
        "scaling",
        "--order",
        "fixed",
        "--targets",
        "clean",
        "--batch-sizes",
        "1,2,3",
        "--seeds",
        "1",
        "--lr-min",
        str(lr_min),
        "--lr-max",
        str(lr_max),
        "--storage",
        f"sqlite:///{tmp_path / 'optuna.db'}",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "scaling.json").read_text())
    for batch_size in (1, 2, 3):
        exhaustive = float(exhaustive_updates_to_target(batch_size, lrs, 30, 1e-4).min())
        row = summary["by_batch_size"][str(batch_size)]["fixed_order"]["interpolation"]
        assert row["updates_to_target"] == pytest.approx(exhaustive, rel=0.05), (batch_size, row)
        assert row["scan_best_updates"] >= row["updates_to_target"] - 1e-9
        assert row["tuned_regret"] <= 0.05
        assert row["first_touch_updates"] <= row["updates_to_target"]


@pytest.mark.slow
def test_scaling_with_heavy_ball_finds_the_exhaustive_optimum_of_batch_sizes_1_10_20(
    tracking_store: str, tmp_path: Path
) -> None:
    lr_min, lr_max = 0.0005, 0.1
    lrs = torch.logspace(math.log10(lr_min), math.log10(lr_max), 4096, dtype=torch.float64)
    args = [
        *(
            "scaling",
            "--optimizer",
            "momentum",
            "--momentum",
            "0.9",
            "--order",
            "fixed",
            "--targets",
            "clean",
        ),
        *("--batch-sizes", "1,10,20", "--seeds", "1", "--lr-min", str(lr_min), "--lr-max", str(lr_max)),
        *("--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--output-dir", str(tmp_path / "out")),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "scaling.json").read_text())
    assert (summary["optimizer"], summary["momentum"]) == ("momentum", 0.9)
    for batch_size in (1, 10, 20):
        exhaustive = float(exhaustive_updates_to_target(batch_size, lrs, 30, 1e-4, momentum=0.9).min())
        assert exhaustive < 30 * math.ceil(100 / batch_size)  # the target is reached: a real optimum
        row = summary["by_batch_size"][str(batch_size)]["fixed_order"]["interpolation"]
        assert row["updates_to_target"] == pytest.approx(exhaustive, rel=0.05), (batch_size, row)


def independent_tpe_counts(batch_size: int, seeds: int, max_trials: int, optimum: float) -> list[int | None]:
    """Each seed's study again, by hand: TPE with constant liar, `population` (4) trials asked at once, each
    scored by the plain loop above; the count is the 1-based number of the first trial within 5% of the
    optimum (COUNTING's setup)."""
    counts = []
    for s in range(seeds):
        sampler = optuna.samplers.TPESampler(seed=COUNTING.sampler_seed + batch_size + s, constant_liar=True)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        found = None
        while found is None and len(study.trials) < max_trials:
            trials = [study.ask() for _ in range(min(4, max_trials - len(study.trials)))]
            lrs = [trial.suggest_float("lr", 0.01, 0.24, log=True) for trial in trials]
            values = exhaustive_updates_to_target(
                batch_size, torch.tensor(lrs, dtype=torch.float64), 6, 1e-3, dtype=torch.float64
            ).tolist()
            for trial, value in zip(trials, values, strict=True):
                study.tell(trial, value)
                if found is None and value <= optimum * 1.05:
                    found = trial.number + 1
        counts.append(found)
    return counts


COUNTING = SweepConfig(
    objective="updates_to",
    train=TrainConfig(epochs=6, dtype="float64"),
    lr_min=0.01,
    lr_max=0.24,
    population=4,
    target_ratio=1e-3,
    scan=16,
)


@pytest.fixture
def no_searches_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has begun no tuning-cost search ahead and counted none (mbgd.core.scan keeps both)."""
    monkeypatch.setattr(scans, "_SEARCHES_AHEAD", {})
    monkeypatch.setattr(scans, "_COUNTED", set())


def test_tpe_trials_to_within_counts_what_an_independent_tpe_study_needs(no_searches_yet) -> None:
    # 14 trials: 10 random, then TPE with the population's pending trials as liars
    batch_size, seeds, max_trials = 3, 4, 14
    grid = exhaustive_updates_to_target(batch_size, torch.logspace(-2, math.log10(0.24), 400), 6, 1e-3)
    optimum = float(grid.kthvalue(10).values)  # the 10th best of 400: some seeds reach it, some do not
    expected = independent_tpe_counts(batch_size, seeds, max_trials, optimum)
    assert expected.count(None) not in (0, seeds), expected  # some seeds find it, some do not
    assert (
        tpe_trials_to_within(COUNTING, DATA, batch_size, optimum, seeds=seeds, max_trials=max_trials)
        == expected
    )


def test_a_count_begun_ahead_goes_on_where_it_stopped_and_counts_the_same(
    monkeypatch: pytest.MonkeyPatch, no_searches_yet
) -> None:
    # search_tpe_ahead searches before the optimum is known (in the compute worker), until a seed is within 5%
    # of the scan's best; the count then goes on from there: the same counts as the independent studies, and
    # not one lr trained twice
    batch_size, seeds, max_trials = 3, 4, 40
    trained = []
    original = scans.fit_population

    def counting_fit(config, data, lrs, **kwargs):
        trained.extend(lrs)
        return original(config, data, lrs, **kwargs)

    monkeypatch.setattr(scans, "fit_population", counting_fit)
    bound = scans.run_scan(COUNTING, DATA, batch_size).best_value
    grid = exhaustive_updates_to_target(batch_size, torch.logspace(-2, math.log10(0.24), 400), 6, 1e-3)
    optimum = float(grid.min())
    assert optimum < bound  # the study finds better than the scan: the count needs more than the search
    expected = independent_tpe_counts(batch_size, seeds, max_trials, optimum)

    trained.clear()
    assert (
        tpe_trials_to_within(COUNTING, DATA, batch_size, optimum, seeds=seeds, max_trials=max_trials)
        == expected
    )
    from_scratch = len(trained)

    monkeypatch.setattr(scans, "_COUNTED", set())  # this process has not counted it yet
    trained.clear()
    scans.search_tpe_ahead(COUNTING, DATA, batch_size, seeds=seeds, max_trials=max_trials)
    ahead = len(trained) - COUNTING.scan
    assert 0 < ahead < from_scratch
    assert (
        tpe_trials_to_within(COUNTING, DATA, batch_size, optimum, seeds=seeds, max_trials=max_trials)
        == expected
    )
    assert len(trained) == COUNTING.scan + from_scratch  # the bound's scan, then nothing trained twice

    # counted: a search begun after that (the worker begins the newest call first) is not wanted
    trained.clear()
    scans.search_tpe_ahead(COUNTING, DATA, batch_size, seeds=seeds, max_trials=max_trials)
    assert trained == []


def test_a_search_begun_ahead_trains_each_population_with_the_rows_an_uninterrupted_one_has(
    monkeypatch: pytest.MonkeyPatch, no_searches_yet
) -> None:
    # The seeds still searching train together, and how their per-update losses are summed depends on how
    # many rows train at once (train.full_dataset_loss chunks by it): a search that went on with other seeds
    # than an uninterrupted one, having stopped some at the scan's bound, could round differently. So every
    # training pass, rows and order, must be the uninterrupted search's.
    config = SweepConfig(
        objective="updates_to", train=TrainConfig(epochs=3), population=16, target_ratio=1e-2, scan=16
    )
    batch_size, seeds, max_trials = 1, 3, 64
    bound = scans.run_scan(config, DATA, batch_size).best_value
    optimum = bound * 0.9  # the study found better than the scan
    passes: list[tuple[float, ...]] = []
    original = scans.fit_population

    def recording_fit(train_config, data, lrs, **kwargs):
        if len(lrs) != config.scan:  # not the bound's scan
            passes.append(tuple(lrs))
        return original(train_config, data, lrs, **kwargs)

    monkeypatch.setattr(scans, "fit_population", recording_fit)
    uninterrupted = scans.TpeSearch(config, DATA, batch_size, seeds, max_trials)
    uninterrupted.advance(optimum)
    uninterrupted_passes, passes[:] = list(passes), []

    scans.search_tpe_ahead(config, DATA, batch_size, seeds=seeds, max_trials=max_trials)
    assert 0 < len(passes) < len(uninterrupted_passes)  # begun, not finished
    counts = scans.tpe_trials_to_within(config, DATA, batch_size, optimum, seeds=seeds, max_trials=max_trials)
    assert passes == uninterrupted_passes
    assert counts == uninterrupted.counts(optimum)


def test_refinement_range_is_clipped_to_the_scan_at_both_ends() -> None:
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16]
    assert scan([10, 20, 30, 40, 50], lrs=lrs).refinement_range() == (0.01, 0.02)
    assert scan([50, 40, 30, 20, 10], lrs=lrs).refinement_range() == (0.08, 0.16)
    assert scan([50, 10, 10, 10, 50], lrs=lrs).refinement_range() == (0.01, 0.16)
    assert scan([50, 40, 10, 40, 50], lrs=lrs).refinement_range(steps=2) == (0.01, 0.16)


def test_scan_csv_refuses_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="shorter than argument 1"):
        LrScan("st", "updates_to", [0.1, 0.2], [5.0], [3, None], [False, True], 101.0).to_csv()


def test_relative_regret_against_a_zero_or_unit_reference() -> None:
    assert relative_regret("final", 0.0, 0.0) == 0.0
    assert relative_regret("final", 3.0, 0.0) == math.inf
    assert relative_regret("updates_to", 1.5, 1.0) == pytest.approx(0.5)
    assert relative_regret("updates_to", 0.0, 1.0) == -1.0


def test_a_run_of_best_values_is_followed_to_its_end() -> None:
    lrs = [0.01, 0.02, 0.04, 0.08]
    assert scan([50, 10, 10, 60], lrs=lrs).best_index == 1  # run 1..2: its middle rounds down
    assert scan([50, 10, 10, 60], lrs=lrs).refinement_range() == (0.01, 0.08)
    assert scan([50, 10, 10, 10], lrs=lrs).best_index == 2  # a run that ends the scan
    assert scan([50, 10, 10, 10], lrs=lrs).refinement_range() == (0.01, 0.08)
    assert scan([10, 10, 50, 10], lrs=lrs).best_index == 0  # the first run, not the later one


def test_scan_records_the_first_touch_divergence_and_worst_value_of_every_lr() -> None:
    train = TrainConfig(epochs=10, dtype="float64")
    config = SweepConfig(objective="updates_to", train=train, lr_min=0.001, lr_max=0.5, target_ratio=1e-3)
    lrs = [0.001, 0.05, 0.1, 0.5]  # too slow to reach the target, two that reach it, one past stability
    details: list = []
    values = exhaustive_updates_to_target(
        20, torch.tensor(lrs, dtype=torch.float64), 10, 1e-3, dtype=torch.float64, details=details
    ).tolist()
    result = scan_lrs(config, DATA, 20, lrs)
    assert result.worst == 10 * 5 + 1  # 5 updates an epoch at batch size 20
    assert values[0] == values[3] == result.worst
    assert result.values == values
    assert list(zip(result.first_touch, result.diverged, strict=True)) == details
    assert [d for _, d in details] == [False, False, False, True]
    assert None not in (details[1][0], details[2][0])
    assert (result.study_name, result.objective, result.lrs) == (config.study_name(20), "updates_to", lrs)


def test_a_grid_of_one_is_the_geometric_middle_and_of_two_the_ends() -> None:
    assert lr_grid(0.01, 1.0, 1) == [pytest.approx(0.1, rel=1e-15)]
    assert lr_grid(0.01, 1.0, 2) == [0.01, 1.0]


@pytest.mark.parametrize(
    ("objective", "just_within", "just_outside"),
    [("final", 1.0499, 1.0501), ("auc", 1.0 + math.log10(1.0499), 1.0 + math.log10(1.0501))],
)
def test_the_tuning_cost_counts_trials_to_within_5_percent_of_the_optimum(
    objective: str, just_within: float, just_outside: float
) -> None:
    """trials_to_5pct's threshold: a trial 5.01% worse than the optimum is not within, 4.99% is (auc compares
    geometric-mean losses: its values are mean log10 losses)."""
    search = object.__new__(scans.TpeSearch)  # its counting alone: values set by hand, nothing trained
    search.config = SweepConfig(objective=objective)
    search.values = [[1.3, just_outside, just_within, 0.9], [just_outside, 1.2]]
    search.studies = [None, None]  # counts() asks each seed
    assert search.first_within(0, 1.0) == 3
    assert search.first_within(1, 1.0) is None
    assert search.counts(1.0) == [3, None]
