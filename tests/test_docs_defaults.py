"""The defaults docs/usage.md, docs/research.md and docs/mlflow.md state are the ones the commands and the
MLflow project use: each expected value written here by hand, from the page, and checked both in the page's
text and in the config (or MLproject) it describes."""

from pathlib import Path

import pytest
import yaml

from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.scaling_config import ScalingConfig

ROOT = Path(__file__).resolve().parents[1]
USAGE = (ROOT / "docs" / "usage.md").read_text()
RESEARCH = (ROOT / "docs" / "research.md").read_text()
MLFLOW = " ".join((ROOT / "docs" / "mlflow.md").read_text().split())
MLPROJECT = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]


def option_row(page: str, option: str) -> str:
    """The first option table row whose first cell starts with `option`."""
    return next(line for line in page.splitlines() if line.startswith(f"| `{option}"))


def test_train_defaults_in_usage_md() -> None:
    train = TrainConfig()
    assert "the tutorial's 20, 0.1, 20; seed 42" in option_row(USAGE, "--batch-size")
    assert (train.batch_size, train.lr, train.epochs, train.seed) == (20, 0.1, 20, 42)
    assert "the tutorial's -10 and -20" in option_row(USAGE, "--init-w")
    assert (train.init_w, train.init_b) == (-10.0, -20.0)
    assert "the tutorial's DataLoader does not shuffle" in option_row(USAGE, "--shuffle")
    assert (train.shuffle, train.dtype, train.data.targets, train.data.targets_dtype) == (
        False,
        "float32",
        "clean",
        "float32",
    )


# research.md's option tables: (its part, option, what the row says, the config's field, its default)
RESEARCH_DEFAULTS = [
    ("sweep", "--name", "(`mbgd-sweep`)", "name", "mbgd-sweep"),
    ("sweep", "--batch-sizes", "(`1,10,20`)", "batch_sizes", (1, 10, 20)),
    ("sweep", "--n-trials", "(64)", "n_trials", 64),
    ("sweep", "--lr-min", "(1e-4, 1)", "lr_min", 1e-4),
    ("sweep", "--lr-min", "(1e-4, 1)", "lr_max", 1.0),
    ("sweep", "--objective", "`auc` = ", "objective", "auc"),
    ("sweep", "--scan", "(512; 0 = no scan", "scan", 512),
    ("sweep", "--tuning-cost-seeds", "(10; 0 = not measured)", "tuning_cost_seeds", 10),
    ("sweep", "--population", "(16)", "population", 16),
    ("sweep", "--seeds", "(5)", "seeds", 5),
    ("sweep", "--sampler-seed", "(0)", "sampler_seed", 0),
    (
        "scaling",
        "--batch-sizes",
        "(`1,2,3,4,5,10,20,25,50,100`)",
        "batch_sizes",
        (1, 2, 3, 4, 5, 10, 20, 25, 50, 100),
    ),
    ("scaling", "--target-ratio", "(`1e-4`)", "target_ratio", 1e-4),
    ("scaling", "--scan", "(512: steps of 0.6%", "scan", 512),
    ("scaling", "--n-trials", "(20, 10)", "n_trials", 20),
    ("scaling", "--n-trials", "(20, 10)", "population", 10),
    ("scaling", "--seeds", "(3)", "seeds", 3),
]


@pytest.mark.parametrize(("part", "option", "page_says", "field", "value"), RESEARCH_DEFAULTS)
def test_sweep_and_scaling_defaults_in_research_md(
    part: str, option: str, page_says: str, field: str, value
) -> None:
    sweep_part, scaling_part = RESEARCH.split("## Batch-size scaling", 1)
    page, config = (sweep_part, SweepConfig()) if part == "sweep" else (scaling_part, ScalingConfig().sweep)
    assert page_says in option_row(page, option)
    assert getattr(config, field) == value


def test_sweep_defaults_in_research_md_prose() -> None:
    sweep_part = RESEARCH.split("## Batch-size scaling", 1)[0]
    assert "(rewards fast convergence; the default)" in option_row(sweep_part, "--objective")
    assert "(0.1)" in option_row(sweep_part, "--lr`")
    assert SweepConfig().train.lr == 0.1
    assert "`--pruner median|hyperband` (default `none`" in sweep_part
    assert SweepConfig().pruner == "none"


def test_scaling_epochs_orders_regimes_and_lr_range_defaults_in_research_md() -> None:
    scaling_part = RESEARCH.split("## Batch-size scaling", 1)[1]
    assert "(30)" in option_row(scaling_part, "--epochs")
    assert "(`both`, `both`)" in option_row(scaling_part, "--order")
    assert "(`results`)" in option_row(scaling_part, "--output-dir")
    assert "1/(2β) to 4/λ₁" in option_row(scaling_part, "--lr-min")
    config = ScalingConfig()
    assert config.sweep.train.epochs == 30
    assert (config.orders, config.targets) == (("fixed", "shuffled"), ("clean", "noisy"))
    assert config.lr_from_theory == ("lr_min", "lr_max")  # unless given, from the theory
    assert MLPROJECT["scaling"]["parameters"]["output_dir"]["default"] == "results"


def test_mlflow_md_main_entry_point_defaults_are_mlprojects_and_mbgd_trains() -> None:
    assert (
        "`main` takes `batch_size` (20), `lr` (0.1), `epochs` (20), `seed` (42), `dtype` (float32), "
        '`compare_with` ("1,10,20"), `data` ("" = the synthetic line), `optimizer` (sgd), `momentum` (0.9), '
        "`schedule` (constant) and `ema` (0.0)" in MLFLOW
    )
    main = {name: spec["default"] for name, spec in MLPROJECT["main"]["parameters"].items()}
    assert main == {
        "batch_size": 20,
        "lr": 0.1,
        "epochs": 20,
        "seed": 42,
        "dtype": "float32",
        "compare_with": "1,10,20",
        "data": "",
        "optimizer": "sgd",
        "momentum": 0.9,
        "schedule": "constant",
        "ema": 0.0,
    }
    train = TrainConfig()
    assert (train.batch_size, train.lr, train.epochs, train.seed, train.dtype) == (20, 0.1, 20, 42, "float32")
    assert (train.optimizer, train.momentum, train.schedule, train.ema) == ("sgd", 0.9, "constant", 0.0)
    assert set(MLPROJECT) == {"main", "sweep", "report", "scaling", "lr_momentum"}
    assert "`MLproject`'s entry points are `main`, `sweep`, `report`, `scaling` and `lr_momentum`." in MLFLOW


@pytest.mark.parametrize("entry_point", ["sweep", "report"])
def test_the_sweep_and_report_entry_points_default_as_mbgd_sweep(entry_point: str) -> None:
    """README: `mlflow run . -e sweep|report|scaling` is "the same as an MLflow project"."""
    sweep = SweepConfig()
    params = {name: spec["default"] for name, spec in MLPROJECT[entry_point]["parameters"].items()}
    expected = {"batch_sizes": "1,10,20", "n_trials": 64, "objective": "auc", "scan": 512, "seeds": 5}
    assert {key: params[key] for key in expected} == expected
    assert (sweep.batch_sizes, sweep.n_trials, sweep.objective, sweep.scan, sweep.seeds) == (
        (1, 10, 20),
        64,
        "auc",
        512,
        5,
    )


def test_the_scaling_entry_point_defaults_as_mbgd_scaling() -> None:
    params = {name: spec["default"] for name, spec in MLPROJECT["scaling"]["parameters"].items()}
    config = ScalingConfig()
    assert params["batch_sizes"] == ",".join(str(b) for b in config.sweep.batch_sizes)
    assert (params["target_ratio"], params["n_trials"], params["population"], params["scan"]) == (
        config.sweep.target_ratio,
        config.sweep.n_trials,
        config.sweep.population,
        config.sweep.scan,
    )
    assert (params["seeds"], params["epochs"], params["name"]) == (3, 30, "mbgd-scaling")
    assert (config.sweep.seeds, config.sweep.train.epochs, config.sweep.name) == (3, 30, "mbgd-scaling")
    assert (params["order"], params["targets"]) == ("both", "both")
