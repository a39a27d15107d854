"""P2s: the study phase of `mbgd sweep` against the strongest hand-written Optuna + MLflow peer.

The peer is what a careful user writes with both libraries and mbgd's own fast training code: a
sequential `study.optimize` on Optuna's sqlite storage; each trial trains its one lr with
`mbgd.core.train.fit_population` (the closed-form, vectorised loop) and writes its child run with
`MlflowClient.create_run`, one `log_batch` (params, the per-epoch `loss`, `objective`) and `set_terminated`.
Same workload as P2: batch sizes 1, 10, 20, 64 COMPLETE trials each, objective auc. mbgd's side is P2's
(`pipeline_sweep.run_studies` with its trial-run helper, the scan included). Both sides are warmed up
first; mbgd runs before and after the peer and the two are averaged.
"""

from __future__ import annotations

import time

from harness import Context, Result, use_tracking_store
from p2_sweep import BATCH_SIZES, N_TRIALS, time_against

GOAL = 8.0  # peer ÷ mbgd


def peer_study_phase(data, *, name: str, storage_url: str, config) -> int:
    """Sequential trials, each trained by mbgd's fast loop and logged as a child run in three MLflow calls."""
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    from mbgd.core.objectives import noise_floor, objective_value
    from mbgd.core.train import fit_population

    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(config.experiment)
    parent = client.create_run(experiment_id, run_name=f"sweep-{name}")
    floor = noise_floor(data)
    trials = 0
    for batch_size in config.batch_sizes:
        train = config.train.with_batch_size(batch_size)

        def objective(trial, train=train, batch_size=batch_size):
            lr = trial.suggest_float("lr", config.lr_min, config.lr_max, log=True)
            (history,) = fit_population(train, data, [lr])
            value = objective_value("auc", history, epochs=train.epochs, floor=floor)
            now = int(time.time() * 1000)
            tags = {
                MLFLOW_PARENT_RUN_ID: parent.info.run_id,
                MLFLOW_RUN_NAME: f"b{batch_size}-trial{trial.number}",
            }
            run = client.create_run(experiment_id, tags=tags)
            params = [
                Param("lr", repr(lr)),
                Param("batch_size", str(batch_size)),
                Param("trial", str(trial.number)),
            ]
            metrics = [Metric("loss", loss, now, step) for step, loss in enumerate(history.epoch_losses)]
            metrics.append(Metric("objective", value, now, 0))
            client.log_batch(run.info.run_id, metrics=metrics, params=params)
            client.set_terminated(run.info.run_id)
            return value

        study = optuna.create_study(
            study_name=f"{name}-b{batch_size}",
            storage=storage_url,
            sampler=optuna.samplers.TPESampler(seed=batch_size),
            direction="minimize",
        )
        study.optimize(objective, n_trials=config.n_trials)
        trials += len(study.trials)
    client.set_terminated(parent.info.run_id)
    return trials


def run(context: Context) -> list[Result]:
    import optuna

    from mbgd.core.config import SweepConfig
    from mbgd.core.data import load_data

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = 8 if context.quick else N_TRIALS
    config = SweepConfig(batch_sizes=BATCH_SIZES, n_trials=n_trials, experiment="bench-p2s")
    data = load_data(config.train.data, config.train.seed)
    peer_store = context.store("p2s-mlflow-peer")

    def peer(name: str, run_config) -> int:
        use_tracking_store(peer_store)
        storage = context.store("p2s-optuna-peer")
        return peer_study_phase(data, name=name, storage_url=storage, config=run_config)

    timings = time_against(context, config, data, peer, label="p2s")
    context.note(
        f"peer (study.optimize, mbgd's training, one log_batch per run): {timings['other_trials']} "
        f"trial runs in {timings['other_seconds']:.2f} s"
    )
    ratio = timings["other_seconds"] / timings["mbgd_seconds"]
    return [Result("P2s", "sweep study phase, strong peer vs mbgd", ratio, goal=GOAL, higher_is_better=True)]
