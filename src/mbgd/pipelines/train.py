"""The tracked `mbgd train`: train the run's batch size and those it is compared with, then log them, and
the comparison on the run's own.

Two halves. `compute_train` loads the data, trains every batch size and renders the figures: torch and
matplotlib, no MLflow. `tracked_train` opens the runs and logs what it returns: MLflow only, through the
tracking layer (mbgd.tracking.runs). `mbgd train` runs the first half in a child process (TrainInChild) forked
before either side imports its libraries, so that torch and the training on one core overlap MLflow and its
store on the other; the whole command then takes little more than importing its libraries. In process (the
report, the benchmarks, tests) the same two halves run one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mbgd.core.config import TrainConfig, TrainRun
from mbgd.core.history import DataRecord, History, descent_kind

if TYPE_CHECKING:
    from mbgd.core.data import RegressionData


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    experiment_id: str
    histories: dict[int, History]  # by batch size, the run's own first
    child_run_ids: dict[int, str]


@dataclass(frozen=True)
class TrainResults:
    """Every batch size's history (the run's own first) and the figures as PNG files' bytes: `loss_curve` by
    batch size, and the comparison when there is one."""

    histories: dict[int, History]
    loss_curves: dict[int, bytes]
    comparison: bytes | None


def run_name(batch_size: int, n: int) -> str:
    """What the run is, as the MLflow UI lists it: sgd-b1, mini-batch-b20, full-batch-b100."""
    return f"{descent_kind(batch_size, n)}-b{batch_size}"


def run_tags(config: TrainConfig, data: DataRecord) -> dict[str, str]:
    tags = {"regime": descent_kind(config.batch_size, data.n), "dtype": config.dtype}
    if config.batch_size > data.n:
        tags["note"] = (
            f"batch size {config.batch_size} exceeds the {data.n} samples: one full batch per epoch"
        )
    return tags


def run_params(config: TrainConfig, data: DataRecord) -> dict[str, str]:
    return {
        **config.as_params(),
        "data_name": data.name,
        "n_samples": str(data.n),
        "n_features": str(data.n_features),
    }


def comparison_title(config: TrainConfig, data: DataRecord | RegressionData) -> str:
    return f"lr {config.lr}, {config.dtype}, seed {config.seed}, {data.name}"


def compute_train(train_run: TrainRun, data: RegressionData) -> TrainResults:
    """Train every batch size of the run (its own first) and render its figures."""
    from mbgd.core.train import fit
    from mbgd.reports import plots

    config = train_run.train
    histories: dict[int, History] = {}
    loss_curves: dict[int, bytes] = {}
    for batch_size in train_run.batch_sizes:
        batch_config = config.with_batch_size(batch_size)
        history = histories[batch_size] = fit(batch_config, data)
        title = f"{run_name(batch_size, data.n)}, lr {batch_config.lr}"
        loss_curves[batch_size] = plots.png_bytes(plots.loss_curve_figure(history, title=title))
    comparison = None
    if len(histories) > 1:
        figure = plots.comparison_figure(
            histories, highlight=config.batch_size, n=data.n, title=comparison_title(config, data)
        )
        comparison = plots.png_bytes(figure)
    return TrainResults(histories, loss_curves, comparison)


class TrainInProcess:
    """compute_train here, when the results are first asked for (inside the run, as a user watching the UI
    expects)."""

    def __init__(self, train_run: TrainRun, data: RegressionData | None = None) -> None:
        self._train_run, self._data = train_run, data

    def _loaded(self) -> RegressionData:
        if self._data is None:
            from mbgd.core.data import load_data

            self._data = load_data(self._train_run.train.data, self._train_run.train.seed)
        return self._data

    def data(self) -> DataRecord:
        return DataRecord.of(self._loaded())

    def results(self) -> TrainResults:
        return compute_train(self._train_run, self._loaded())

    def close(self) -> None:
        pass


class TrainInChild:
    """compute_train in a child process forked now, before this process imports anything heavy: the child
    imports torch and matplotlib, loads the data (sent at once: the runs are named after it), trains and
    renders, while this process imports MLflow and opens its store. A stop ends the child with the command
    (it dies with it, and a Ctrl-C reaches it as the same process group's member, silently)."""

    def __init__(self, train_run: TrainRun) -> None:
        import multiprocessing
        import os

        from mbgd.runtime.processes import signals_blocked_for_children

        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        with signals_blocked_for_children():  # no stop between the fork and the child's own handlers
            self._process = context.Process(
                target=_train_child, args=(train_run, send, os.getpid()), name="mbgd-train", daemon=True
            )
            self._process.start()
        send.close()
        self._data: DataRecord | None = None

    def _next(self) -> Any:
        try:
            kind, value = self._receive.recv()
        except EOFError:
            from mbgd.runtime.errors import WorkerError
            from mbgd.runtime.processes import describe_exit

            self._process.join()
            ended = describe_exit(self._process.exitcode, code_word="exit code")
            raise WorkerError(f"the training process ended ({ended}) before it sent its results") from None
        if kind == "error":
            raise value
        return value

    def data(self) -> DataRecord:
        if self._data is None:
            self._data = self._next()
        return self._data

    def results(self) -> TrainResults:
        self.data()
        return self._next()

    def close(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receive.close()


def _train_child(train_run: TrainRun, send, parent_pid: int) -> None:
    """The child's side: stops end it silently (the parent says what happened), it dies with its parent, and
    an error travels to the parent to be raised there."""
    import signal
    import traceback

    from mbgd.runtime.processes import STOP_SIGNALS, die_with_parent, imports_done

    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    die_with_parent(parent_pid)
    try:
        from mbgd.core.data import load_data

        data = load_data(train_run.train.data, train_run.train.seed)
        imports_done()  # torch; forked from the command, this process holds its collector too
        send.send(("data", DataRecord.of(data)))
        send.send(("results", compute_train(train_run, data)))
    except Exception as error:
        try:
            send.send(("error", error))
        except Exception:  # an error that does not pickle: its traceback here, a line there
            from mbgd.runtime.errors import WorkerError

            traceback.print_exc()
            send.send(("error", WorkerError(f"the training process failed: {type(error).__name__}")))
    finally:
        send.close()


def start_training(train_run: TrainRun):
    """What `mbgd train` trains with: a TrainInChild where processes can be forked, else a TrainInProcess."""
    import multiprocessing

    if "fork" in multiprocessing.get_all_start_methods():
        return TrainInChild(train_run)
    return TrainInProcess(train_run)


def tracked_train(
    train_run: TrainRun, data: RegressionData | None = None, *, parent=None, compute=None
) -> TrainOutcome:
    """Train and log one run per batch size: the run's own as the parent, the compared ones as children.

    The training happens in `compute` (a TrainInChild that `mbgd train` started) or, with `data`, here. With
    `parent` (a RunRef) the whole run nests under it, as in the report; otherwise it is a top-level run or the
    one `mlflow run` made.
    """
    compute = compute or TrainInProcess(train_run, data)
    try:
        return _log_train(train_run, compute, parent)
    finally:
        compute.close()


def _log_train(train_run: TrainRun, compute: Any, parent) -> TrainOutcome:
    from mbgd.runtime.processes import imports_done
    from mbgd.tracking import artifacts, metric_values
    from mbgd.tracking import models as tracking_models
    from mbgd.tracking import runs as tracking

    client = tracking.client()
    imports_done()  # MLflow (mbgd.runtime.processes)
    config = train_run.train
    record = compute.data()  # the data's errors come before any run exists
    child_run_ids: dict[int, str] = {}

    def log_batch_size(run_id: str, batch_size: int, extra_params: dict[str, str] | None = None) -> None:
        history = results.histories[batch_size]
        params = {**run_params(config.with_batch_size(batch_size), record), **(extra_params or {})}
        metrics = metric_values.history_metrics(history, weight_names=record.feature_names)
        tracking.log_values(client, run_id, params=params, metrics=metrics)
        tracking_models.log_dataset(client, run_id, record)
        if not history.diverged:
            tracking_models.log_model(
                client,
                run_id,
                history.w,
                history.b,
                record.feature_names,
                target_name=record.target_name,
                example=record.x[:2].tolist(),
                params=params,
                metrics=metric_values.model_metrics(metrics),
            )
        artifacts.log_png(client, run_id, results.loss_curves[batch_size], "loss_curve.png")

    if parent is None:
        tracking.end_orphaned_runs(client, tracking.experiment_id_for(client, train_run.experiment))
    with tracking.run_scope(
        client,
        experiment_name=train_run.experiment,
        run_name=run_name(config.batch_size, record.n),
        tags=run_tags(config, record),
        parent=parent,
        adopt_run_id="" if parent else tracking.run_id_from_mlflow_run(),
    ) as own:
        results = compute.results()
        log_batch_size(
            own.run_id, config.batch_size, {"compare_with": ",".join(map(str, train_run.compare_with))}
        )
        for batch_size in train_run.batch_sizes[1:]:
            batch_config = config.with_batch_size(batch_size)
            with tracking.run_scope(
                client,
                run_name=run_name(batch_size, record.n),
                parent=own,
                tags=run_tags(batch_config, record),
            ) as child:
                log_batch_size(child.run_id, batch_size)
                child_run_ids[batch_size] = child.run_id
        if child_run_ids:
            log_comparison(client, own.run_id, results, config, record)
    return TrainOutcome(own.run_id, own.experiment_id, results.histories, child_run_ids)


def log_comparison(client, run_id: str, results: TrainResults, config: TrainConfig, data: DataRecord):
    """The comparison figure, `compare/loss_b<B>` per batch size, a one-line description and a saved UI view.

    The view (`ui_views`) shows the compared runs' `loss` overlaid in one log-scale chart.
    """
    from mbgd.tracking import artifacts, metric_values, ui_views
    from mbgd.tracking import runs as tracking

    own = config.batch_size
    histories = results.histories
    artifacts.log_png(client, run_id, results.comparison, "comparison.png")
    metrics = [
        m for b, h in histories.items() for m in metric_values.series(f"compare/loss_b{b}", h.epoch_losses)
    ]
    tracking.log_values(client, run_id, metrics=metrics)
    others = ", ".join(f"{b} ({descent_kind(b, data.n)})" for b in histories if b != own)
    tracking.describe(
        client,
        run_id,
        f"Batch size {own} ({descent_kind(own, data.n)}, this run) compared with {others}: full-dataset loss "
        f"per epoch at lr {config.lr} over {config.epochs} epochs ({comparison_title(config, data)}). See "
        "`comparison.png` and the `compare` charts.",
    )
    ui_views.save_comparison_view(client, run_id)
