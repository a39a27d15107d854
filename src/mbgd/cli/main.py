"""The `mbgd` command line: parse options into one frozen config, call the library, print a short result.

torch, mlflow, optuna and matplotlib are imported inside the commands, so `mbgd --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from mbgd.cli import servers as cli_servers
from mbgd.cli.exits import user_errors
from mbgd.cli.options import (
    EXPERIMENT,
    FOLDER,
    RESULTS,
    collect,
    drop_options,
    last_of_each,
    lr_momentum_options,
    options_from,
    register_model_option,
    scaling_options,
    sweep_options,
    training_options,
)
from mbgd.core.config import SweepConfig, build_sweep_config, build_train_run
from mbgd.pipelines.trial_run_writer import open_writer
from mbgd.runtime.compute_worker import WORKER_FROM_TRIALS, open_worker
from mbgd.runtime.processes import end_without_collecting, hold_collection_while_importing, one_torch_thread
from mbgd.tracking.store import require_model_registry, require_tracking_store, tracking_uri


def echo_run_link(outcome: Any) -> None:
    """The closing line of a command that made a run: its id and a link the MLflow UI opens it at."""
    from mbgd.tracking.ui_links import runs_link

    click.echo(f"run {outcome.run_id}: {runs_link(tracking_uri(), outcome.experiment_id, outcome.run_id)}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mbgd")
def main() -> None:
    """mbgd: the PyTorch mini-batch gradient descent tutorial, tracked in MLflow."""


def run() -> None:
    """The `mbgd` process (its console script and `python -m mbgd`): the commands with the collector held
    while their libraries import, and an end without the interpreter's last collections
    (mbgd.runtime.processes)."""
    end_without_collecting()
    hold_collection_while_importing()
    main()


main.add_command(cli_servers.ui)
main.add_command(cli_servers.dashboard)


@main.command()
@training_options
@options_from(
    (
        "--compare-with",
        str,
        "Other batch sizes to train as child runs, comma-separated; '' for none. [default: 1,10,20]",
    ),
    EXPERIMENT,
)
@user_errors
def train(preset: str | None, **options: Any) -> None:
    """Train y = w*x + b by gradient descent and track it in MLflow."""
    train_run = build_train_run(collect(preset, options))
    require_tracking_store()

    from mbgd.pipelines import train as pipeline_train

    # Trained in a child forked before any heavy import, while this process opens MLflow (pipeline_train).
    outcome = pipeline_train.tracked_train(train_run, compute=pipeline_train.start_training(train_run))

    from mbgd.tracking.ui_links import charts_link
    from mbgd.tracking.ui_views import comparison_view_key

    for batch_size, history in outcome.histories.items():
        result = "diverged" if history.diverged else f"final loss {history.final_loss:.6g}"
        click.echo(f"batch size {batch_size:>5}: {result} after {history.updates} updates")
    echo_run_link(outcome)
    if outcome.child_run_ids:
        view = comparison_view_key(outcome.run_id)
        click.echo(f"comparison: {charts_link(tracking_uri(), outcome.experiment_id, view)}")
    click.echo("open the MLflow UI with: mbgd ui")


def check_register_model(name: str) -> None:
    """A bad --register-model name stops the command before any run (a ConfigError: a usage error), and so
    does a model registry that cannot be used (StoreUnavailable)."""
    if name:
        from mbgd.tracking.models import check_model_name

        check_model_name(name)
        require_model_registry()


def echo_rankings(config: SweepConfig, outcome: Any, register_model: str) -> None:
    """The ranking of the batch sizes at the fixed lr and at their tuned ones, then one line per registered
    model version."""
    summary = outcome.summary
    click.echo(
        f"ranking at lr {config.train.lr:g}: {summary['ranking_fixed_lr']}; tuned: {summary['ranking_tuned']}"
    )
    for batch_size, version in outcome.registered_versions.items():
        best_lr = summary["by_batch_size"][str(batch_size)]["best_lr"]
        click.echo(
            f"registered {register_model} version {version}: batch size {batch_size}, lr {best_lr:.4g} "
            f"(models:/{register_model}/{version}, models:/{register_model}@b{batch_size})"
        )


def progress_bars() -> Callable[[int, int, int], None] | None:
    """A progress bar over each batch size's trials on a terminal; nothing when output is not a TTY."""
    if not sys.stdout.isatty():
        return None
    bars: dict[int, Any] = {}

    def update(batch_size: int, done: int, total: int) -> None:
        if batch_size not in bars:
            bars[batch_size] = click.progressbar(
                length=total, label=f"batch size {batch_size:>5}", show_pos=True
            )
            bars[batch_size].__enter__()
        bar = bars[batch_size]
        bar.update(done - bar.pos)
        if done >= total:
            bar.render_finish()

    return update


@main.command()
@training_options
@sweep_options
@register_model_option
@user_errors
def sweep(preset: str | None, register_model: str, **options: Any) -> None:
    """Tune the learning rate per batch size with Optuna, track every trial, compare the tuned batch sizes.

    --lr is the fixed learning rate of the tutorial's comparison, shown beside the tuned one.
    """
    config = build_sweep_config(collect(preset, options))
    check_register_model(register_model)
    require_tracking_store()
    trials = config.n_trials * len(config.batch_sizes)
    one_torch_thread()
    with (
        open_writer(trials=trials, workers=config.workers) as writer,
        open_worker(start=bool(config.tuning_cost_seeds) and trials >= WORKER_FROM_TRIALS) as worker,
    ):
        from mbgd.core.data import load_data
        from mbgd.pipelines.sweep import tracked_sweep

        data = load_data(config.train.data, config.train.seed)
        outcome = tracked_sweep(
            config,
            data,
            progress=progress_bars(),
            writer=writer,
            worker=worker,
            register_model=register_model,
        )
    for batch_size, row in outcome.summary["by_batch_size"].items():
        click.echo(
            f"batch size {batch_size:>5}: best lr {row['best_lr']:.4g}, {config.objective} "
            f"{row['best_value']:.4g}, epochs to floor {row['epochs_to_floor_mean']:.3g}"
        )
    echo_rankings(config, outcome, register_model)
    echo_run_link(outcome)


@main.command()
@training_options
@sweep_options
@register_model_option
@options_from(("--output-dir", FOLDER, "Folder for report.md and its figures.", RESULTS))
@user_errors
def report(preset: str | None, output_dir: str, register_model: str, **options: Any) -> None:
    """The reproduction report: the tutorial in float32 and float64, the sweep and the seeds -> report.md."""
    values = collect(preset, options)
    values.setdefault("name", "report")
    config = build_sweep_config(values)
    check_register_model(register_model)
    require_tracking_store()
    trials = config.n_trials * len(config.batch_sizes)
    one_torch_thread()
    with (
        open_writer(trials=trials, workers=config.workers) as writer,
        open_worker(start=bool(config.tuning_cost_seeds) and trials >= WORKER_FROM_TRIALS) as worker,
    ):
        from mbgd.core.data import load_data
        from mbgd.pipelines.report import tracked_report

        data = load_data(config.train.data, config.train.seed)
        outcome = tracked_report(
            config,
            data,
            output_dir,
            progress=progress_bars(),
            writer=writer,
            worker=worker,
            register_model=register_model,
        )
    echo_rankings(config, outcome, register_model)
    click.echo(f"wrote {os.path.join(output_dir, 'report.md')}")
    echo_run_link(outcome)


# --batch-size and --lr are what the grid and the studies set; --shuffle, --targets and --epochs are replaced
# (their defaults differ; the replacements keep the option names).
@drop_options("batch_size", "lr", "shuffle", "targets", "epochs")
@main.command()
@training_options
@scaling_options
@user_errors
def scaling(
    preset: str | None, output_dir: str, regimes: str | None, scaling_epochs: int | None, **options: Any
) -> None:
    """Updates to a target loss vs batch size, each batch size at its tuned lr, against the theory's
    predictions.

    For every batch size, batch order and regime, an Optuna study tunes the lr for the fewest updates until
    the training loss reaches the target; the best lr is re-trained over the seeds. Predictions: the critical
    batch size m* = beta/lambda_1 and the step eta*(m) of the interpolation theory, and the gradient noise
    scale.
    """
    from mbgd.core.scaling_config import build_scaling_config

    config = build_scaling_config(collect(preset, {**options, "targets": regimes, "epochs": scaling_epochs}))
    studies = len(config.orders) * len(config.targets) * len(config.sweep.batch_sizes)
    require_tracking_store()
    trials = config.sweep.n_trials * studies
    one_torch_thread()
    with (
        open_writer(trials=trials, workers=config.sweep.workers) as writer,
        open_worker(start=bool(config.sweep.scan) and trials >= WORKER_FROM_TRIALS) as worker,
    ):
        from mbgd.core.data import load_data
        from mbgd.pipelines.scaling import tracked_scaling
        from mbgd.studies import scaling as scaling_study

        data = load_data(config.sweep.train.data, config.sweep.train.seed)
        config = scaling_study.resolve_lr_range(config, data)
        noisy = "" if not config.noisy_lr_min else f" ([{config.noisy_lr_min:.3g}, ...] on noisy targets)"
        click.echo(
            f"{studies} studies of {config.sweep.n_trials} trials, "
            f"lr in [{config.sweep.lr_min:.3g}, {config.sweep.lr_max:.3g}]{noisy}"
        )
        outcome = tracked_scaling(
            config, data, output_dir=output_dir, progress=click.echo, writer=writer, worker=worker
        )
    summary = outcome.summary
    line = f"predicted critical batch size m* = {summary['critical_batch_size_theory']:.3g}"
    if summary["noise_scale_at_target"] is not None:
        line += f"; noise scale at the target (noisy) = {summary['noise_scale_at_target']:.3g}"
    click.echo(line)
    for order, regimes in summary["measured"].items():
        for regime, measured in regimes.items():
            knee = measured["critical_batch_size"]
            click.echo(f"measured knee, {order}, {regime}: " + ("none" if knee is None else f"{knee:.3g}"))
    if output_dir:
        click.echo(f"wrote {os.path.join(output_dir, 'scaling.md')} and the figures")
    echo_run_link(outcome)


# As scaling's, with the grid's own --name, --scan and --output-dir; the optimizer is heavy ball and its
# coefficient is searched.
@drop_options("batch_size", "lr", "shuffle", "targets", "epochs", "optimizer", "momentum")
@last_of_each
@main.command(name="lr-momentum")
@training_options
@scaling_options
@lr_momentum_options
@user_errors
def lr_momentum(
    preset: str | None, output_dir: str, regimes: str | None, scaling_epochs: int | None, **options: Any
) -> None:
    """lr x momentum at each batch size: what tuning heavy ball's coefficient with the lr gains over SGD at
    its own tuned lr, checked against a dense grid.

    For every batch size, batch order and regime: a dense lr x momentum grid (its momentum-0 row is SGD's lr
    scan), an Optuna study whose multivariate TPE refines the grid's best, both bests re-trained over the
    seeds, and the trials TPE without the grid needs in 2-D and 1-D (trials_to_5pct).
    """
    from mbgd.core.scaling_config import build_lr_momentum_config

    config = build_lr_momentum_config(
        collect(preset, {**options, "targets": regimes, "epochs": scaling_epochs})
    )
    require_tracking_store()
    scaling = config.scaling
    studies = len(scaling.orders) * len(scaling.targets) * len(scaling.sweep.batch_sizes)
    one_torch_thread()
    with open_worker(start=studies >= 2) as worker:  # a grid is thousands of trainings: two are worth it
        from dataclasses import replace

        from mbgd.core.data import load_data
        from mbgd.core.scaling_config import resolve_lr_range
        from mbgd.pipelines.lr_momentum import tracked_lr_momentum

        data = load_data(scaling.sweep.train.data, scaling.sweep.train.seed)
        config = replace(config, scaling=resolve_lr_range(scaling, data))
        sweep = config.scaling.sweep
        click.echo(
            f"{studies} grids of {sweep.scan} lrs in [{sweep.lr_min:.3g}, {sweep.lr_max:.3g}] x "
            f"{config.momenta} momenta in [0, {config.momentum_max:g}], "
            f"each refined by {sweep.n_trials} trials"
        )
        outcome = tracked_lr_momentum(config, data, output_dir=output_dir, progress=click.echo, worker=worker)
    if output_dir:
        click.echo(f"wrote {os.path.join(output_dir, 'lr_momentum.md')} and the figures")
    echo_run_link(outcome)
