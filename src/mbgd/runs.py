"""A tracked `mbgd train`: train the run's batch size and those it is compared with, then log them.

Training returns results; everything MLflow sees goes through `mbgd.tracking` after each fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from mbgd.config import TrainConfig, TrainRun
from mbgd.data import RegressionData
from mbgd.train import History, fit, regime


@dataclass(frozen=True)
class TrainOutcome:
    run_id: str
    experiment_id: str
    histories: dict[int, History]  # by batch size, the run's own first
    child_run_ids: dict[int, str]


def run_name(batch_size: int, n: int) -> str:
    """What the run is, as the MLflow UI lists it: sgd-b1, mini-batch-b20, full-batch-b100."""
    return f"{regime(batch_size, n)}-b{batch_size}"


def run_tags(config: TrainConfig, data: RegressionData) -> dict[str, str]:
    tags = {"regime": regime(config.batch_size, data.n), "dtype": config.dtype}
    if config.batch_size > data.n:
        tags["note"] = f"batch size {config.batch_size} exceeds the {data.n} samples: one full batch per epoch"
    return tags


def run_params(config: TrainConfig, data: RegressionData) -> dict[str, str]:
    return {
        **config.as_params(),
        "data_name": data.name,
        "n_samples": str(data.n),
        "n_features": str(data.n_features),
    }


def tracked_train(train_run: TrainRun, data: RegressionData) -> TrainOutcome:
    """Train and log one run per batch size: the run's own as the parent, the compared ones as children."""
    from mbgd import plots, tracking

    client = tracking.client()
    config = train_run.train
    histories: dict[int, History] = {}
    child_run_ids: dict[int, str] = {}

    def train_and_log(run_id: str, batch_config: TrainConfig) -> History:
        history = fit(batch_config, data)
        tracking.log_values(
            client,
            run_id,
            params=run_params(batch_config, data),
            metrics=tracking.history_metrics(history, weight_names=data.feature_names),
        )
        tracking.log_dataset(client, run_id, data)
        name = run_name(batch_config.batch_size, data.n)
        figure = plots.loss_curve_figure(history, title=f"{name}, lr {batch_config.lr}")
        tracking.log_figure(client, run_id, figure, "loss_curve.png")
        return history

    with tracking.run_scope(
        client,
        experiment_name=train_run.experiment,
        run_name=run_name(config.batch_size, data.n),
        tags=run_tags(config, data),
        adopt_run_id=tracking.run_id_from_mlflow_run(),
    ) as parent:
        client.log_param(parent.run_id, "compare_with", ",".join(map(str, train_run.compare_with)))
        histories[config.batch_size] = train_and_log(parent.run_id, config)
        for batch_size in train_run.batch_sizes[1:]:
            batch_config = config.with_batch_size(batch_size)
            with tracking.run_scope(
                client, run_name=run_name(batch_size, data.n), parent=parent, tags=run_tags(batch_config, data)
            ) as child:
                histories[batch_size] = train_and_log(child.run_id, batch_config)
                child_run_ids[batch_size] = child.run_id
        if child_run_ids:
            log_comparison(client, parent.run_id, histories, config, data)
    return TrainOutcome(parent.run_id, parent.experiment_id, histories, child_run_ids)


def log_comparison(client, run_id: str, histories: dict[int, History], config: TrainConfig, data: RegressionData):
    """The comparison figure, one `compare/loss_b<B>` chart per batch size, and a one-line description."""
    from mbgd import plots, tracking

    own = config.batch_size
    title = f"lr {config.lr}, {config.dtype}, seed {config.seed}, {data.name}"
    figure = plots.comparison_figure(histories, highlight=own, n=data.n, title=title)
    tracking.log_figure(client, run_id, figure, "comparison.png")
    metrics = [m for b, h in histories.items() for m in tracking.series(f"compare/loss_b{b}", h.epoch_losses)]
    tracking.log_values(client, run_id, metrics=metrics)
    others = ", ".join(f"{b} ({regime(b, data.n)})" for b in histories if b != own)
    tracking.describe(
        client,
        run_id,
        f"Batch size {own} ({regime(own, data.n)}, this run) compared with {others}: full-dataset loss per epoch "
        f"at lr {config.lr} over {config.epochs} epochs ({title}). See `comparison.png` and the `compare` charts.",
    )
