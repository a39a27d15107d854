"""P2: the study phase of `mbgd sweep` against the usual Optuna + MLflow pattern.

The workload on both sides: batch sizes 1, 10, 20, 64 COMPLETE trials each, lr log-uniform in [1e-4, 1],
objective auc (mean log10 full-dataset loss over the epochs, the worst value when training diverges), every
trial a child run of one parent run with its params and its per-epoch `loss` series plus `objective`.

mbgd side: what `tracked_sweep` does before its analysis: open the storage and studies, the parent run with its
params and dataset, then `run_study` per batch size with an `on_trials` callback that logs each trial with
`runs.log_trial_run` (population trials: 16 learning rates trained at once).
Reference: one trial at a time, `study.optimize(objective)`, where the objective opens
`mlflow.start_run(nested=True)`, logs its params, trains its one lr with a plain torch loop (tensor slices,
autograd, manual update: no DataLoader, so the reference is not slowed by per-sample fetching) and calls
`mlflow.log_metric("loss", ..., step=epoch)` after each epoch, as the Optuna and MLflow examples do.

Not included on either side: the seeds' re-training, theory, figures and summaries that follow the studies.
Both sides use a sqlite Optuna storage and a sqlite MLflow store of their own in the work folder, created and
warmed up (imports, tables, a small study) before the timing.
"""

from __future__ import annotations

import math

from harness import Context, Result, timed, use_tracking_store

GOAL = 10.0  # reference ÷ mbgd
BATCH_SIZES = (1, 10, 20)
N_TRIALS = 64
WORST_AUC = 40.0  # mbgd's value for a diverged trial (float32's largest finite loss is about 10^38.5)


def mbgd_study_phase(config, data, storage_url: str) -> int:
    """The first half of mbgd.runs.tracked_sweep; returns the number of trial runs logged."""
    from mbgd import runs, sweep, tracking

    storage = sweep.open_storage(storage_url)
    for batch_size in config.batch_sizes:
        sweep.open_study(config, batch_size, storage)
    client = tracking.client()
    logged = []

    def on_trials(batch_size: int, study_name: str, records) -> None:
        for record in records:
            logged.append(
                runs.log_trial_run(client, parent, batch_size, study_name, record, n=data.n, dtype=config.train.dtype)
            )

    with tracking.run_scope(client, experiment_name=config.experiment, run_name=f"sweep-{config.name}") as parent:
        tracking.log_values(client, parent.run_id, params=config.as_params())
        tracking.log_dataset(client, parent.run_id, data)
        for batch_size in config.batch_sizes:
            sweep.run_study(config, data, batch_size, storage, on_trials=on_trials)
    return len(logged)


def reference_study_phase(
    x, y_train, y_eval, *, name: str, storage_url: str, batch_sizes, n_trials: int, epochs: int, experiment: str
) -> int:
    """Sequential Optuna trials, each an MLflow child run that logs its loss as it trains."""
    import mlflow
    import optuna
    import torch

    def train_one_lr(lr: float, batch_size: int) -> list[float]:
        w = torch.tensor(-10.0, requires_grad=True)
        b = torch.tensor(-20.0, requires_grad=True)
        losses = []
        for epoch in range(epochs + 1):
            with torch.no_grad():
                loss = torch.mean((w * x + b - y_eval) ** 2).item()
            mlflow.log_metric("loss", loss, step=epoch)
            losses.append(loss)
            if not math.isfinite(loss) or epoch == epochs:
                return losses
            for start in range(0, len(x), batch_size):
                batch_loss = torch.mean((w * x[start : start + batch_size] + b - y_train[start : start + batch_size]) ** 2)
                batch_loss.backward()
                with torch.no_grad():
                    w -= lr * w.grad
                    b -= lr * b.grad
                w.grad = None
                b.grad = None
        return losses

    mlflow.set_experiment(experiment)
    trials = 0
    with mlflow.start_run(run_name=f"sweep-{name}"):
        for batch_size in batch_sizes:

            def objective(trial, batch_size=batch_size):
                lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
                with mlflow.start_run(run_name=f"b{batch_size}-trial{trial.number}", nested=True):
                    mlflow.log_params({"lr": lr, "batch_size": batch_size, "trial": trial.number})
                    losses = train_one_lr(lr, batch_size)
                    diverged = not math.isfinite(losses[-1])
                    value = WORST_AUC if diverged else min(sum(map(math.log10, losses)) / len(losses), WORST_AUC)
                    mlflow.log_metrics({"objective": value, "diverged": float(diverged)})
                return value

            study = optuna.create_study(
                study_name=f"{name}-b{batch_size}",
                storage=storage_url,
                sampler=optuna.samplers.TPESampler(seed=batch_size),
                direction="minimize",
            )
            study.optimize(objective, n_trials=n_trials)
            trials += len(study.trials)
    return trials


def run(context: Context) -> list[Result]:
    import optuna

    from mbgd.config import SweepConfig
    from mbgd.data import load_data

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = 8 if context.quick else N_TRIALS
    config = SweepConfig(name="bench", batch_sizes=BATCH_SIZES, n_trials=n_trials, experiment="bench-p2")
    data = load_data(config.train.data, config.train.seed)
    x, y_train, y_eval = data.x.view(-1), data.y_train, data.y_eval
    mbgd_storage = context.store("p2-optuna-mbgd")
    reference_storage = context.store("p2-optuna-reference")

    def reference(name: str, batch_sizes, trials: int) -> int:
        return reference_study_phase(
            x, y_train, y_eval, name=name, storage_url=reference_storage, batch_sizes=batch_sizes,
            n_trials=trials, epochs=config.train.epochs, experiment="bench-p2",
        )

    # Warm-up on each side's own stores: tables of both sqlite databases, TPE's imports, a few trials.
    use_tracking_store(context.store("p2-mlflow-mbgd"))
    mbgd_study_phase(SweepConfig(name="warm-up", batch_sizes=(20,), n_trials=4, population=2), data, mbgd_storage)
    mbgd_seconds, mbgd_trials = timed(lambda: mbgd_study_phase(config, data, mbgd_storage))

    use_tracking_store(context.store("p2-mlflow-reference"))
    reference("warm-up", (20,), 4)
    reference_seconds, reference_trials = timed(lambda: reference("bench", config.batch_sizes, n_trials))

    context.note(f"mbgd study phase: {mbgd_trials} trial runs in {mbgd_seconds:.2f} s")
    context.note(f"reference Optuna + MLflow loop: {reference_trials} trial runs in {reference_seconds:.2f} s")
    ratio = reference_seconds / mbgd_seconds
    return [Result("P2", "sweep study phase, reference vs mbgd", ratio, goal=GOAL, higher_is_better=True)]
