"""The command line's options, declared once: each a row of a table (flags, type, help), turned into click
options by `options_from`; presets merged with what the command line gives (`collect`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from mbgd.core.config import (
    DTYPES,
    OBJECTIVES,
    OPTIMIZERS,
    PRUNERS,
    SCHEDULES,
    TARGETS,
    DataSpec,
    SweepConfig,
    TrainConfig,
    load_preset,
)
from mbgd.core.scaling_config import BOTH, ORDERS, SCALING_DEFAULTS


def _default(cls: type, name: str) -> str:
    return f"[default: {cls.__dataclass_fields__[name].default}]"


def _scaling_default(name: str) -> str:
    value = SCALING_DEFAULTS[name]
    return f"[default: {','.join(map(str, value)) if isinstance(value, tuple) else value}]"


def options_from(*rows: tuple) -> Callable[[Callable], Callable]:
    """A decorator that adds one click option per row, listed in --help in the rows' order.

    A row is (flags, type, help) or (flags, type, help, further click.option settings); flags are
    space-separated, and a word without dashes names the parameter (`"--data csv"`)."""

    def decorate(command: Callable) -> Callable:
        for flags, kind, help_text, *settings in reversed(rows):
            command = click.option(*flags.split(), type=kind, help=help_text, **(settings or [{}])[0])(
                command
            )
        return command

    return decorate


def collect(preset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Preset values, overridden by the options given on the command line (those not None)."""
    values = load_preset(preset) if preset else {}
    values.update({key: value for key, value in options.items() if value is not None})
    return values


# Rows that several commands share, word for word.
EXPERIMENT = ("--experiment", str, "MLflow experiment name. [default: $MLFLOW_EXPERIMENT_NAME, else Default]")
STORAGE = ("--storage", str, "Optuna storage URL. [default: sqlite:///optuna.db beside the tracking store]")
SAMPLER_SEED = ("--sampler-seed", int, f"Seed of the TPE sampler. {_default(SweepConfig, 'sampler_seed')}")
SCAN = (
    "--scan",
    int,
    "A dense scan of this many log-spaced lrs over [lr-min, lr-max] starts each study; the "
    f"trials then refine around its best (0: no scan). {_default(SweepConfig, 'scan')}",
)
POPULATION_HELP = "Trials asked at once and trained in one vectorised pass."
FOLDER = click.Path(file_okay=False)
RESULTS = {"default": "results", "show_default": True}

# The options that shape one training, shared by every command that trains.
training_options = options_from(
    ("--batch-size", int, f"Samples per update (1 = SGD). {_default(TrainConfig, 'batch_size')}"),
    ("--lr", float, f"Learning rate (the tutorial's step size). {_default(TrainConfig, 'lr')}"),
    ("--epochs", int, f"Passes over the data. {_default(TrainConfig, 'epochs')}"),
    ("--seed", int, f"Seeds the noise and the shuffled order. {_default(TrainConfig, 'seed')}"),
    (
        "--dtype",
        click.Choice(DTYPES),
        "Arithmetic precision (the data are always drawn in float32). [default: float32]",
    ),
    (
        "--shuffle/--no-shuffle",
        None,
        "Reshuffle the batches every epoch (the tutorial does not). [default: no-shuffle]",
        {"default": None},
    ),
    (
        "--drop-last/--no-drop-last",
        None,
        "Drop the last partial batch. [default: no-drop-last]",
        {"default": None},
    ),
    ("--init-w", float, f"Initial weight(s). {_default(TrainConfig, 'init_w')}"),
    ("--init-b", float, f"Initial bias. {_default(TrainConfig, 'init_b')}"),
    (
        "--optimizer",
        click.Choice(OPTIMIZERS),
        "Update rule: sgd (the tutorial's w -= lr * grad), momentum (heavy ball), adam. [default: sgd]",
    ),
    (
        "--momentum",
        float,
        f"Heavy-ball coefficient of --optimizer momentum. {_default(TrainConfig, 'momentum')}",
    ),
    (
        "--schedule",
        click.Choice(SCHEDULES),
        "The lr over the run: constant (the tutorial's), or linear decay to 0 over its updates. "
        "[default: constant]",
    ),
    (
        "--ema",
        float,
        "Evaluate and keep the exponential moving average of the iterates with this decay, e.g. 0.99 "
        f"(0: the last iterate). {_default(TrainConfig, 'ema')}",
    ),
    ("--data csv", str, "CSV file with a header row to train on instead of the synthetic line."),
    ("--features", str, "CSV feature columns, comma-separated. [default: all but the target]"),
    ("--target", str, "CSV target column. [default: the last column]"),
    (
        "--targets",
        click.Choice(TARGETS),
        "Synthetic data: train on the noise-free line (the tutorial) or the noisy Y. [default: clean]",
    ),
    (
        "--targets-dtype",
        click.Choice(DTYPES),
        "Synthetic data: precision the targets are computed in from the float32 x (the tutorial: "
        "float32). [default: float32]",
    ),
    ("--n-points", int, f"Synthetic data: number of points (up to 10^7). {_default(DataSpec, 'n_points')}"),
    ("--x-min", float, f"Synthetic data: first x. {_default(DataSpec, 'x_min')}"),
    ("--x-max", float, f"Synthetic data: end of the x range (excluded). {_default(DataSpec, 'x_max')}"),
    ("--slope", float, f"Synthetic data: slope of the line. {_default(DataSpec, 'slope')}"),
    ("--intercept", float, f"Synthetic data: intercept. {_default(DataSpec, 'intercept')}"),
    ("--noise", float, f"Synthetic data: noise std in Y. {_default(DataSpec, 'noise')}"),
    (
        "--config preset",
        click.Path(dir_okay=False),
        "A preset from experiments/*.toml; options given here override it.",
    ),
)

# The options of the learning-rate studies.
sweep_options = options_from(
    ("--name", str, f"Sweep name; studies are <name>-b<batch size>. {_default(SweepConfig, 'name')}"),
    ("--batch-sizes", str, "Batch sizes to tune, comma-separated. [default: 1,10,20]"),
    (
        "--n-trials",
        int,
        "Trials per batch size that run to the end (or are pruned, with --pruner). "
        f"{_default(SweepConfig, 'n_trials')}",
    ),
    ("--lr-min", float, f"Lower end of the log-uniform lr range. {_default(SweepConfig, 'lr_min')}"),
    ("--lr-max", float, f"Upper end of the log-uniform lr range. {_default(SweepConfig, 'lr_max')}"),
    (
        "--objective",
        click.Choice(OBJECTIVES),
        "What a trial minimises: auc = mean over the epochs of log10 full-dataset loss (rewards "
        "fast convergence); final = the last full-dataset loss; epochs_to = first epoch within 5% of the "
        "noise floor (epochs+1 if never); updates_to = the updates from which the training loss stays at "
        "or below target_ratio (1e-4) x its initial value until the end of the budget (see mbgd scaling; "
        "the first touch is reported beside it). Diverged trials (a non-finite loss, or one that ends "
        "above where it started) score the worst value. [default: auc]",
    ),
    (
        "--pruner",
        click.Choice(PRUNERS),
        "Stop unpromising trials early: each reports its objective so far every epoch; a pruned "
        "trial counts against --n-trials and ends PRUNED (its MLflow run KILLED). [default: none]",
    ),
    SAMPLER_SEED,
    ("--population", int, f"{POPULATION_HELP} {_default(SweepConfig, 'population')}"),
    SCAN,
    (
        "--tuning-cost-seeds",
        int,
        "Sampler seeds over which to count the TPE trials a study without the scan needs to come "
        "within 5% of the optimum (trials_to_5pct; 0: not measured). "
        f"{_default(SweepConfig, 'tuning_cost_seeds')}",
    ),
    (
        "--workers",
        int,
        f"Local processes asking and telling against the same studies. {_default(SweepConfig, 'workers')}",
    ),
    (
        "--seeds",
        int,
        f"Seeds each best lr (and the fixed lr) is re-trained over. {_default(SweepConfig, 'seeds')}",
    ),
    STORAGE,
    EXPERIMENT,
)

# --register-model, of the commands that tune the lr per batch size (sweep, report).
register_model_option = options_from(
    (
        "--register-model",
        str,
        "Register each batch size's best-lr model as a version of this MLflow registered model, tagged with "
        "its batch size, lr, seed, objective and study, with the alias b<B> (and best) ('' for none). "
        "[default: '']",
        {"default": ""},
    )
)

# The options of `mbgd scaling`: the grid, the studies, the target, the orders and regimes.
scaling_options = options_from(
    (
        "--name",
        str,
        f"Scaling name; studies are <name>-<order>-<regime>-b<batch size>. {_scaling_default('name')}",
    ),
    ("--batch-sizes", str, f"Batch sizes of the grid, comma-separated. {_scaling_default('batch_sizes')}"),
    (
        "--target-ratio",
        float,
        "The target: the training loss falls to this fraction of its initial value (noisy targets: "
        "within 5% of the least-squares optimum's loss, when higher); in (0, 1). Updates to the target "
        "count from where the loss stays at or below it until the end of the budget "
        f"({_scaling_default('epochs')} epochs); the first touch is reported beside it. "
        f"{_default(SweepConfig, 'target_ratio')}",
    ),
    (
        "--order",
        click.Choice((*ORDERS, BOTH)),
        "Batch order: the tutorial's fixed one, reshuffled every epoch, or both. [default: both]",
    ),
    (
        "--targets regimes",
        click.Choice((*TARGETS, BOTH)),
        "Training targets: the noise-free line (interpolation), the noisy Y, or both regimes. "
        "[default: both]",
    ),
    (
        "--epochs scaling_epochs",
        int,
        f"Passes over the data a trial has to reach the target. {_scaling_default('epochs')}",
    ),
    (
        "--n-trials",
        int,
        f"Trials per study (per batch size, order and regime). {_scaling_default('n_trials')}",
    ),
    ("--population", int, f"{POPULATION_HELP} {_scaling_default('population')}"),
    SCAN,
    (
        "--lr-min",
        float,
        "Lower end of the log-uniform lr range. [default: 1/(2 beta), half SGD's theoretical step; on noisy "
        "targets a quarter of the lr whose slowest direction just reaches the target in batch size 1's "
        "budget, when lower; halved under a linear schedule]",
    ),
    (
        "--lr-max",
        float,
        "Upper end of the log-uniform lr range. "
        "[default: 4/lambda_1, twice full-batch descent's stability limit]",
    ),
    SAMPLER_SEED,
    (
        "--seeds",
        int,
        f"Seeds each best lr is re-trained over (noise draw and shuffled order). {_scaling_default('seeds')}",
    ),
    STORAGE,
    EXPERIMENT,
    (
        "--output-dir",
        FOLDER,
        "Folder for the figures, scaling.json and scaling.md; '' for none.",
        RESULTS,
    ),
)


def drop_options(*names: str) -> Callable[[click.Command], click.Command]:
    """Remove shared options that a command replaces with its own (applied above @main.command())."""

    def decorate(command: click.Command) -> click.Command:
        command.params = [param for param in command.params if param.name not in names]
        return command

    return decorate


# `mbgd lr-momentum`'s own options, beside scaling's (whose --name, --scan and --output-dir it replaces).
lr_momentum_options = options_from(
    (
        "--name",
        str,
        "Name; studies are <name>-<order>-<regime>-b<batch size>. [default: mbgd-lr-momentum]",
    ),
    ("--scan", int, "Log-spaced lrs of the grid over [lr-min, lr-max]. [default: 512]"),
    (
        "--n-trials",
        int,
        "Trials of each study's multivariate TPE, the grid's best first (per batch size, order and regime). "
        "[default: 64]",
    ),
    ("--population", int, f"{POPULATION_HELP} [default: 16]"),
    (
        "--lr-min",
        float,
        "Lower end of the grid's lrs. [default: (1 - momentum-max)/(2 beta), heavy ball's steady step "
        "lr/(1 - mu) at half SGD's theoretical step; halved under a linear schedule]",
    ),
    (
        "--lr-max",
        float,
        "Upper end of the grid's lrs. [default: 4 (1 + momentum-max)/lambda_1, twice full-batch heavy "
        "ball's stability limit]",
    ),
    (
        "--momenta",
        int,
        "Momentum coefficients of the grid, evenly spaced in [0, momentum-max]. [default: 34]",
    ),
    (
        "--momentum-max",
        float,
        "The largest momentum searched, in [0, 1); the theory's lr range is widened for it. [default: 0.99]",
    ),
    (
        "--tuning-cost-seeds",
        int,
        "Sampler seeds over which to count the trials TPE without the grid needs to come within 5% of the "
        "optimum, in 2-D (lr, momentum) and 1-D (lr at momentum 0) (0: not measured). [default: 3]",
    ),
    (
        "--output-dir",
        FOLDER,
        "Folder for the figures, lr_momentum.json and lr_momentum.md; '' for none.",
        RESULTS,
    ),
)


def last_of_each(command: click.Command) -> click.Command:
    """Of options that share a name, keep the one declared last (a command's own, below the shared ones it
    replaces); applied above @main.command()."""
    last = {param.name: param for param in command.params}
    command.params = [param for param in command.params if last[param.name] is param]
    return command
