"""The `mbgd` command line: parse options into one frozen config, call the library, print a short result.

torch, mlflow, optuna and matplotlib are imported inside the commands, so `mbgd --help` stays instant.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from mbgd.config import (
    DTYPES,
    OBJECTIVES,
    PRUNERS,
    TARGETS,
    ConfigError,
    DataSpec,
    SweepConfig,
    TrainConfig,
    build_sweep_config,
    build_train_run,
    load_preset,
)
from mbgd.errors import Interrupted, WorkerError
from mbgd.tracking_store import StoreUnavailable, require_tracking_store, tracking_uri
from mbgd.trial_runs import open_writer


def _default(cls: type, name: str) -> str:
    return f"[default: {cls.__dataclass_fields__[name].default}]"


def _raise_interrupted(signum: int, frame: Any) -> None:

    raise Interrupted(signal.Signals(signum).name)


def user_errors(command: Callable) -> Callable:
    """Config errors become one-line usage errors (exit 2), failed workers a one-line error (exit 1);
    SIGINT and SIGTERM end the command with exit 130 and 143."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
        except StoreUnavailable as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt as error:
            click.echo(f"mbgd: interrupted; {_killed_runs_note(error)}", err=True)
            sys.exit(130)
        except WorkerError as error:
            raise click.ClickException(str(error)) from None
        except Interrupted as error:
            click.echo(f"mbgd: stopped by {error}; {_killed_runs_note(error)}", err=True)
            sys.exit(143)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _killed_runs_note(error: BaseException) -> str:
    """What an interruption did to the MLflow runs: tracking.run_scope lists on the exception those it marked
    KILLED."""
    if getattr(error, "killed_run_ids", None):
        return "the active MLflow runs were marked KILLED"
    return "no MLflow run was in progress"


def echo_run_link(outcome: Any) -> None:
    """The closing line of a command that made a run: its id and a link the MLflow UI opens it at."""
    from mbgd.ui_links import runs_link

    click.echo(f"run {outcome.run_id}: {runs_link(tracking_uri(), outcome.experiment_id, outcome.run_id)}")


def collect(preset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Preset values, overridden by the options given on the command line (those not None)."""
    values = load_preset(preset) if preset else {}
    values.update({key: value for key, value in options.items() if value is not None})
    return values


def training_options(command: Callable) -> Callable:
    """The options that shape one training, shared by every command that trains."""
    options = [
        click.option(
            "--batch-size",
            type=int,
            help=f"Samples per update (1 = SGD). {_default(TrainConfig, 'batch_size')}",
        ),
        click.option(
            "--lr",
            type=float,
            help=f"Learning rate (the tutorial's step size). {_default(TrainConfig, 'lr')}",
        ),
        click.option("--epochs", type=int, help=f"Passes over the data. {_default(TrainConfig, 'epochs')}"),
        click.option(
            "--seed",
            type=int,
            help=f"Seeds the noise and the shuffled order. {_default(TrainConfig, 'seed')}",
        ),
        click.option(
            "--dtype",
            type=click.Choice(DTYPES),
            help="Arithmetic precision (the data are always drawn in float32). [default: float32]",
        ),
        click.option(
            "--shuffle/--no-shuffle",
            default=None,
            help="Reshuffle the batches every epoch (the tutorial does not). [default: no-shuffle]",
        ),
        click.option(
            "--drop-last/--no-drop-last",
            default=None,
            help="Drop the last partial batch. [default: no-drop-last]",
        ),
        click.option("--init-w", type=float, help=f"Initial weight(s). {_default(TrainConfig, 'init_w')}"),
        click.option("--init-b", type=float, help=f"Initial bias. {_default(TrainConfig, 'init_b')}"),
        click.option(
            "--data",
            "csv",
            type=str,
            help="CSV file with a header row to train on instead of the synthetic line.",
        ),
        click.option(
            "--features", type=str, help="CSV feature columns, comma-separated. [default: all but the target]"
        ),
        click.option("--target", type=str, help="CSV target column. [default: the last column]"),
        click.option(
            "--targets",
            type=click.Choice(TARGETS),
            help="Synthetic data: train on the noise-free line (the tutorial) or the noisy Y. "
            "[default: clean]",
        ),
        click.option(
            "--targets-dtype",
            type=click.Choice(DTYPES),
            help="Synthetic data: precision the targets are computed in from the float32 x (the tutorial: "
            "float32). [default: float32]",
        ),
        click.option(
            "--n-points",
            type=int,
            help=f"Synthetic data: number of points (up to 10^7). {_default(DataSpec, 'n_points')}",
        ),
        click.option("--x-min", type=float, help=f"Synthetic data: first x. {_default(DataSpec, 'x_min')}"),
        click.option(
            "--x-max",
            type=float,
            help=f"Synthetic data: end of the x range (excluded). {_default(DataSpec, 'x_max')}",
        ),
        click.option(
            "--slope", type=float, help=f"Synthetic data: slope of the line. {_default(DataSpec, 'slope')}"
        ),
        click.option(
            "--intercept", type=float, help=f"Synthetic data: intercept. {_default(DataSpec, 'intercept')}"
        ),
        click.option(
            "--noise", type=float, help=f"Synthetic data: noise std in Y. {_default(DataSpec, 'noise')}"
        ),
        click.option(
            "--config",
            "preset",
            type=click.Path(dir_okay=False),
            help="A preset from experiments/*.toml; options given here override it.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mbgd")
def main() -> None:
    """mbgd: the PyTorch mini-batch gradient descent tutorial, tracked in MLflow."""


@main.command()
@training_options
@click.option(
    "--compare-with",
    type=str,
    help="Other batch sizes to train as child runs, comma-separated; '' for none. [default: 1,10,20]",
)
@click.option(
    "--experiment", type=str, help="MLflow experiment name. [default: $MLFLOW_EXPERIMENT_NAME, else Default]"
)
@user_errors
def train(preset: str | None, **options: Any) -> None:
    """Train y = w*x + b by gradient descent and track it in MLflow."""
    train_run = build_train_run(collect(preset, options))
    require_tracking_store()

    from mbgd.data import load_data
    from mbgd.pipeline_train import tracked_train
    from mbgd.ui_links import charts_link
    from mbgd.ui_views import comparison_view_key

    data = load_data(train_run.train.data, train_run.train.seed)
    outcome = tracked_train(train_run, data)
    for batch_size, history in outcome.histories.items():
        result = "diverged" if history.diverged else f"final loss {history.final_loss:.6g}"
        click.echo(f"batch size {batch_size:>5}: {result} after {history.updates} updates")
    echo_run_link(outcome)
    if outcome.child_run_ids:
        view = comparison_view_key(outcome.run_id)
        click.echo(f"comparison: {charts_link(tracking_uri(), outcome.experiment_id, view)}")
    click.echo("open the MLflow UI with: mbgd ui")


def sweep_options(command: Callable) -> Callable:
    """The options of the learning-rate studies."""
    options = [
        click.option(
            "--name",
            type=str,
            help=f"Sweep name; studies are <name>-b<batch size>. {_default(SweepConfig, 'name')}",
        ),
        click.option(
            "--batch-sizes", type=str, help="Batch sizes to tune, comma-separated. [default: 1,10,20]"
        ),
        click.option(
            "--n-trials",
            type=int,
            help="Trials per batch size that run to the end (or are pruned, with --pruner). "
            f"{_default(SweepConfig, 'n_trials')}",
        ),
        click.option(
            "--lr-min",
            type=float,
            help=f"Lower end of the log-uniform lr range. {_default(SweepConfig, 'lr_min')}",
        ),
        click.option(
            "--lr-max",
            type=float,
            help=f"Upper end of the log-uniform lr range. {_default(SweepConfig, 'lr_max')}",
        ),
        click.option(
            "--objective",
            type=click.Choice(OBJECTIVES),
            help="What a trial minimises: auc = mean over the epochs of log10 full-dataset loss (rewards "
            "fast convergence); final = the last full-dataset loss; epochs_to = first epoch within 5% of the "
            "noise floor (epochs+1 if never); updates_to = the updates from which the training loss stays at "
            "or below target_ratio (1e-4) x its initial value until the end of the budget (see mbgd scaling; "
            "the first touch is reported beside it). Diverged trials (a non-finite loss, or one that ends "
            "above where it started) score the worst value. [default: auc]",
        ),
        click.option(
            "--pruner",
            type=click.Choice(PRUNERS),
            help="Stop unpromising trials early: each reports its objective so far every epoch; a pruned "
            "trial counts against --n-trials and ends PRUNED (its MLflow run KILLED). [default: none]",
        ),
        click.option(
            "--sampler-seed",
            type=int,
            help=f"Seed of the TPE sampler. {_default(SweepConfig, 'sampler_seed')}",
        ),
        click.option(
            "--population",
            type=int,
            help="Trials asked at once and trained in one vectorised pass. "
            f"{_default(SweepConfig, 'population')}",
        ),
        click.option(
            "--scan",
            type=int,
            help="A dense scan of this many log-spaced lrs over [lr-min, lr-max] starts each study; the "
            f"trials then refine around its best (0: no scan). {_default(SweepConfig, 'scan')}",
        ),
        click.option(
            "--tuning-cost-seeds",
            type=int,
            help="Sampler seeds over which to count the TPE trials a study without the scan needs to come "
            "within 5% of the optimum (trials_to_5pct; 0: not measured). "
            f"{_default(SweepConfig, 'tuning_cost_seeds')}",
        ),
        click.option(
            "--workers",
            type=int,
            help="Local processes asking and telling against the same studies. "
            f"{_default(SweepConfig, 'workers')}",
        ),
        click.option(
            "--seeds",
            type=int,
            help="Seeds each best lr (and the fixed lr) is re-trained over. "
            f"{_default(SweepConfig, 'seeds')}",
        ),
        click.option(
            "--storage",
            type=str,
            help="Optuna storage URL. [default: sqlite:///optuna.db beside the tracking store]",
        ),
        click.option(
            "--experiment",
            type=str,
            help="MLflow experiment name. [default: $MLFLOW_EXPERIMENT_NAME, else Default]",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def register_model_option(command: Callable) -> Callable:
    """--register-model, of the commands that tune the lr per batch size (sweep, report)."""
    return click.option(
        "--register-model",
        type=str,
        default="",
        help="Register each batch size's best-lr model as a new version of this MLflow registered model, "
        "tagged with its batch size, lr, seed, objective and study ('' for none). [default: '']",
    )(command)


def check_register_model(name: str) -> None:
    """A bad --register-model name stops the command before any run (a ConfigError: a usage error)."""
    if name:
        from mbgd.tracking_models import check_model_name

        check_model_name(name)


def echo_registered(name: str, versions: dict[int, str], summary: dict) -> None:
    """One line per registered model version."""
    for batch_size, version in versions.items():
        best_lr = summary["by_batch_size"][str(batch_size)]["best_lr"]
        click.echo(
            f"registered {name} version {version}: batch size {batch_size}, lr {best_lr:.4g} "
            f"(models:/{name}/{version})"
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
    with open_writer(trials=config.n_trials * len(config.batch_sizes), workers=config.workers) as writer:
        from mbgd.data import load_data
        from mbgd.pipeline_sweep import tracked_sweep

        data = load_data(config.train.data, config.train.seed)
        outcome = tracked_sweep(
            config, data, progress=progress_bars(), writer=writer, register_model=register_model
        )
    for batch_size, row in outcome.summary["by_batch_size"].items():
        click.echo(
            f"batch size {batch_size:>5}: best lr {row['best_lr']:.4g}, {config.objective} "
            f"{row['best_value']:.4g}, epochs to floor {row['epochs_to_floor_mean']:.3g}"
        )
    click.echo(
        f"ranking at lr {config.train.lr:g}: {outcome.summary['ranking_fixed_lr']}; tuned: "
        f"{outcome.summary['ranking_tuned']}"
    )
    echo_registered(register_model, outcome.registered_versions, outcome.summary)
    echo_run_link(outcome)


@main.command()
@training_options
@sweep_options
@register_model_option
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default="results",
    show_default=True,
    help="Folder for report.md and its figures.",
)
@user_errors
def report(preset: str | None, output_dir: str, register_model: str, **options: Any) -> None:
    """The reproduction report: the tutorial in float32 and float64, the sweep and the seeds -> report.md."""
    values = collect(preset, options)
    values.setdefault("name", "report")
    config = build_sweep_config(values)
    check_register_model(register_model)
    require_tracking_store()
    with open_writer(trials=config.n_trials * len(config.batch_sizes), workers=config.workers) as writer:
        from mbgd.data import load_data
        from mbgd.pipeline_report import tracked_report

        data = load_data(config.train.data, config.train.seed)
        outcome = tracked_report(
            config, data, output_dir, progress=progress_bars(), writer=writer, register_model=register_model
        )
    click.echo(
        f"ranking at lr {config.train.lr:g}: {outcome.summary['ranking_fixed_lr']}; tuned: "
        f"{outcome.summary['ranking_tuned']}"
    )
    echo_registered(register_model, outcome.registered_versions, outcome.summary)
    click.echo(f"wrote {os.path.join(output_dir, 'report.md')}")
    echo_run_link(outcome)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; other machines need 0.0.0.0 (and authentication).",
)
@click.option("--port", default=5000, show_default=True, type=int, help="Port to serve on.")
@click.option(
    "--experiment",
    type=str,
    default="",
    help="Experiment to link to. [default: $MLFLOW_EXPERIMENT_NAME, else Default]",
)
@click.option(
    "--open", "open_browser", is_flag=True, help="Open the runs link in a browser once the UI is up."
)
def ui(host: str, port: int, experiment: str, open_browser: bool) -> None:
    """Start the MLflow UI on the project's tracking store and print links to the runs and their charts."""
    import subprocess

    store = tracking_uri()
    from mbgd.tracking import client, experiment_id_for
    from mbgd.ui_links import charts_link, runs_link, ui_base

    if store.startswith("http"):
        raise click.UsageError(f"MLFLOW_TRACKING_URI is a server already: open {ui_base(store)} in a browser")
    from mbgd.ui_views import latest_comparison_view_key

    os.environ["MLFLOW_TRACKING_URI"] = store
    mlflow_client = client()
    experiment_id = (
        experiment_id_for(mlflow_client, experiment)
        if experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        else "0"
    )
    view = latest_comparison_view_key(mlflow_client.get_experiment(experiment_id).tags)
    server = f"http://{host}:{port}"
    link = runs_link(server, experiment_id)
    click.echo(f"runs: {link}")
    click.echo(f"charts: {charts_link(server, experiment_id)}")
    if view:
        click.echo(f"comparison: {charts_link(server, experiment_id, view)}")
    sys.stdout.flush()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        store,
        "--host",
        host,
        "--port",
        str(port),
    ]
    # The server gets its own process group: MLflow starts worker processes that a plain terminate() of the
    # server would leave running.
    process = subprocess.Popen(command, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if open_browser:
            open_when_up(link, server)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_process_group(process)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(143)


def stop_process_group(process: Any, timeout_s: float = 10.0) -> None:
    """SIGTERM a process and everything it started, SIGKILL what is left after the timeout."""
    import subprocess

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def open_when_up(link: str, server: str, timeout_s: float = 60.0) -> None:
    """Open the link in the user's browser once the server answers /health; say so when no browser exists."""
    import time
    import urllib.request
    import webbrowser

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server}/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    if not webbrowser.open(link):
        click.echo("no browser found here: open the runs link above in one", err=True)


@main.command()
@click.option(
    "--storage", type=str, help="Optuna storage URL. [default: sqlite:///optuna.db beside the tracking store]"
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to serve on.")
@user_errors
def dashboard(storage: str | None, host: str, port: int) -> None:
    """Open optuna-dashboard on the sweep's studies (pip install 'mbgd[dashboard]')."""
    import importlib.util

    if importlib.util.find_spec("optuna_dashboard") is None:
        raise click.ClickException(
            "optuna-dashboard is not installed: pip install 'mbgd[dashboard]' (or optuna-dashboard==0.21.0)"
        )
    from mbgd.config import redact
    from mbgd.studies import default_storage, open_storage

    url = storage or default_storage()
    opened = open_storage(url)
    from optuna_dashboard import run_server

    click.echo(f"optuna-dashboard on {redact(url)}: http://{host}:{port}/")
    run_server(opened, host=host, port=port)


def drop_options(*names: str) -> Callable[[click.Command], click.Command]:
    """Remove shared options that a command replaces with its own (applied above @main.command())."""

    def decorate(command: click.Command) -> click.Command:
        command.params = [param for param in command.params if param.name not in names]
        return command

    return decorate


def scaling_options(command: Callable) -> Callable:
    """The options of `mbgd scaling`: the grid, the studies, the target, the orders and regimes."""
    from mbgd.config import BOTH, ORDERS, SCALING_DEFAULTS

    def default(name: str) -> str:
        value = SCALING_DEFAULTS[name]
        return f"[default: {','.join(map(str, value)) if isinstance(value, tuple) else value}]"

    options = [
        click.option(
            "--name",
            type=str,
            help=f"Scaling name; studies are <name>-<order>-<regime>-b<batch size>. {default('name')}",
        ),
        click.option(
            "--batch-sizes",
            type=str,
            help=f"Batch sizes of the grid, comma-separated. {default('batch_sizes')}",
        ),
        click.option(
            "--target-ratio",
            type=float,
            help="The target: the training loss falls to this fraction of its initial value (noisy targets: "
            "within 5% of the least-squares optimum's loss, when higher); in (0, 1). Updates to the target "
            "count from where the loss stays at or below it until the end of the budget "
            f"({default('epochs')} epochs); the first touch is reported beside it. "
            f"{_default(SweepConfig, 'target_ratio')}",
        ),
        click.option(
            "--order",
            type=click.Choice((*ORDERS, BOTH)),
            help="Batch order: the tutorial's fixed one, reshuffled every epoch, or both. [default: both]",
        ),
        click.option(
            "--targets",
            "regimes",
            type=click.Choice((*TARGETS, BOTH)),
            help="Training targets: the noise-free line (interpolation), the noisy Y, or both regimes. "
            "[default: both]",
        ),
        click.option(
            "--epochs",
            "scaling_epochs",
            type=int,
            help=f"Passes over the data a trial has to reach the target. {default('epochs')}",
        ),
        click.option(
            "--n-trials",
            type=int,
            help=f"Trials per study (per batch size, order and regime). {default('n_trials')}",
        ),
        click.option(
            "--population",
            type=int,
            help=f"Trials asked at once and trained in one vectorised pass. {default('population')}",
        ),
        click.option(
            "--scan",
            type=int,
            help="A dense scan of this many log-spaced lrs over [lr-min, lr-max] starts each study; the "
            f"trials then refine around its best (0: no scan). {_default(SweepConfig, 'scan')}",
        ),
        click.option(
            "--lr-min",
            type=float,
            help="Lower end of the log-uniform lr range. [default: 1/(2 beta), half SGD's theoretical step]",
        ),
        click.option(
            "--lr-max",
            type=float,
            help="Upper end of the log-uniform lr range. "
            "[default: 4/lambda_1, twice full-batch descent's stability limit]",
        ),
        click.option(
            "--sampler-seed",
            type=int,
            help=f"Seed of the TPE sampler. {_default(SweepConfig, 'sampler_seed')}",
        ),
        click.option(
            "--seeds",
            type=int,
            help=f"Seeds each best lr is re-trained over (noise draw and shuffled order). {default('seeds')}",
        ),
        click.option(
            "--storage",
            type=str,
            help="Optuna storage URL. [default: sqlite:///optuna.db beside the tracking store]",
        ),
        click.option(
            "--experiment",
            type=str,
            help="MLflow experiment name. [default: $MLFLOW_EXPERIMENT_NAME, else Default]",
        ),
        click.option(
            "--output-dir",
            type=click.Path(file_okay=False),
            default="results",
            show_default=True,
            help="Folder for the figures, scaling.json and scaling.md; '' for none.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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
    from mbgd.scaling_config import build_scaling_config

    config = build_scaling_config(collect(preset, {**options, "targets": regimes, "epochs": scaling_epochs}))
    studies = len(config.orders) * len(config.targets) * len(config.sweep.batch_sizes)
    require_tracking_store()
    with open_writer(trials=config.sweep.n_trials * studies, workers=config.sweep.workers) as writer:
        from mbgd import scaling as scaling_study
        from mbgd.data import load_data
        from mbgd.pipeline_scaling import tracked_scaling

        data = load_data(config.sweep.train.data, config.sweep.train.seed)
        config = scaling_study.resolve_lr_range(config, data.x)
        click.echo(
            f"{studies} studies of {config.sweep.n_trials} trials, "
            f"lr in [{config.sweep.lr_min:.3g}, {config.sweep.lr_max:.3g}]"
        )
        outcome = tracked_scaling(config, data, output_dir=output_dir, progress=click.echo, writer=writer)
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
