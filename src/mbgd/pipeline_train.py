"""The tracked `mbgd train`: train the run's batch size and those it is compared with, then log them, and
the comparison on the run's own.

Training returns results; everything MLflow sees goes through the tracking layer (mbgd.tracking) after each
fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from mbgd.config import TrainConfig, TrainRun
from mbgd.data import RegressionData
from mbgd.train import History, descent_kind, fit


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    experiment_id: str
    histories: dict[int, History]  # by batch size, the run's own first
    child_run_ids: dict[int, str]


def run_name(batch_size: int, n: int) -> str:
    """What the run is, as the MLflow UI lists it: sgd-b1, mini-batch-b20, full-batch-b100."""
    return f"{descent_kind(batch_size, n)}-b{batch_size}"


def run_tags(config: TrainConfig, data: RegressionData) -> dict[str, str]:
    tags = {"regime": descent_kind(config.batch_size, data.n), "dtype": config.dtype}
    if config.batch_size > data.n:
        tags["note"] = (
            f"batch size {config.batch_size} exceeds the {data.n} samples: one full batch per epoch"
        )
    return tags


def run_params(config: TrainConfig, data: RegressionData) -> dict[str, str]:
    return {
        **config.as_params(),
        "data_name": data.name,
        "n_samples": str(data.n),
        "n_features": str(data.n_features),
    }


def tracked_train(train_run: TrainRun, data: RegressionData, *, parent=None) -> TrainOutcome:
    """Train and log one run per batch size: the run's own as the parent, the compared ones as children.

    With `parent` (a RunRef) the whole run nests under it, as in the report; otherwise it is a top-level run
    or the one `mlflow run` made.
    """
    from mbgd import plots, tracking, tracking_models

    client = tracking.client()
    config = train_run.train
    histories: dict[int, History] = {}
    child_run_ids: dict[int, str] = {}

    def train_and_log(
        run_id: str, batch_config: TrainConfig, extra_params: dict[str, str] | None = None
    ) -> History:
        history = fit(batch_config, data)
        tracking.log_values(
            client,
            run_id,
            params={**run_params(batch_config, data), **(extra_params or {})},
            metrics=tracking.history_metrics(history, weight_names=data.feature_names),
        )
        tracking_models.log_dataset(client, run_id, data)
        if not history.diverged:
            tracking_models.log_model(
                client,
                run_id,
                history.w,
                history.b,
                data.feature_names,
                target_name=data.target_name,
                example=data.x[:2].tolist(),
            )
        name = run_name(batch_config.batch_size, data.n)
        figure = plots.loss_curve_figure(history, title=f"{name}, lr {batch_config.lr}")
        tracking.log_figure(client, run_id, figure, "loss_curve.png")
        return history

    if parent is None:
        tracking.end_orphaned_runs(client, tracking.experiment_id_for(client, train_run.experiment))
    with tracking.run_scope(
        client,
        experiment_name=train_run.experiment,
        run_name=run_name(config.batch_size, data.n),
        tags=run_tags(config, data),
        parent=parent,
        adopt_run_id="" if parent else tracking.run_id_from_mlflow_run(),
    ) as own:
        compare_with = {"compare_with": ",".join(map(str, train_run.compare_with))}
        histories[config.batch_size] = train_and_log(own.run_id, config, compare_with)
        for batch_size in train_run.batch_sizes[1:]:
            batch_config = config.with_batch_size(batch_size)
            with tracking.run_scope(
                client, run_name=run_name(batch_size, data.n), parent=own, tags=run_tags(batch_config, data)
            ) as child:
                histories[batch_size] = train_and_log(child.run_id, batch_config)
                child_run_ids[batch_size] = child.run_id
        if child_run_ids:
            log_comparison(client, own.run_id, histories, config, data)
    return TrainOutcome(own.run_id, own.experiment_id, histories, child_run_ids)


def log_comparison(
    client, run_id: str, histories: dict[int, History], config: TrainConfig, data: RegressionData
):
    """The comparison figure, `compare/loss_b<B>` per batch size, a one-line description and a saved UI view.

    The view (`ui_views`) shows the compared runs' `loss` overlaid in one log-scale chart.
    """
    from mbgd import plots, tracking, ui_views

    own = config.batch_size
    title = f"lr {config.lr}, {config.dtype}, seed {config.seed}, {data.name}"
    figure = plots.comparison_figure(histories, highlight=own, n=data.n, title=title)
    tracking.log_figure(client, run_id, figure, "comparison.png")
    metrics = [m for b, h in histories.items() for m in tracking.series(f"compare/loss_b{b}", h.epoch_losses)]
    tracking.log_values(client, run_id, metrics=metrics)
    others = ", ".join(f"{b} ({descent_kind(b, data.n)})" for b in histories if b != own)
    tracking.describe(
        client,
        run_id,
        f"Batch size {own} ({descent_kind(own, data.n)}, this run) compared with {others}: full-dataset loss "
        f"per epoch at lr {config.lr} over {config.epochs} epochs ({title}). See `comparison.png` and the "
        "`compare` charts.",
    )
    ui_views.save_comparison_view(client, run_id)
