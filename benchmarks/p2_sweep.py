"""P2: the study phase of `mbgd sweep` against the usual Optuna + MLflow pattern.

The workload on both sides: batch sizes 1, 10, 20, 64 COMPLETE trials each, lr log-uniform in [1e-4, 1],
objective auc (mean log10 full-dataset loss over the epochs, the worst value when training diverges), every
trial a child run of one parent run with its params and its per-epoch `loss` series plus `objective`.

mbgd side: what `tracked_sweep` does before its analysis: open the storage and studies, the parent run with
its params and dataset, then `pipeline_sweep.run_studies` (population trials: 16 learning rates trained at
once; the trial runs written meanwhile by the helper process that `mbgd sweep` starts before its own imports,
and all of them written before the timing ends). The helper is started before the warm-up, as the command
starts it before importing. Reference: one trial at a time, `study.optimize(objective)`, where the objective
opens `mlflow.start_run(nested=True)`, logs its params, trains its one lr with a plain torch loop (tensor
slices, autograd, manual update: no DataLoader, so the reference is not slowed by per-sample fetching) and
calls `mlflow.log_metric("loss", ..., step=epoch)` after each epoch, as the Optuna and MLflow examples do.

Not included on either side: the seeds' re-training, theory, figures and summaries that follow the studies.
Each side has an MLflow sqlite store of its own in the work folder; mbgd's Optuna storage is its default
(beside the store), the reference's a sqlite file (`storage="sqlite:///..."`, as Optuna's docs show). Both are
created and warmed up (imports, tables, a small study) before the timing.
"""

from __future__ import annotations

import math
from dataclasses import replace

from harness import Context, Result, timed, use_tracking_store

GOAL = 10.0  # reference ÷ mbgd
BATCH_SIZES = (1, 10, 20)
N_TRIALS = 64
WORST_AUC = 40.0  # mbgd's value for a diverged trial (float32's largest finite loss is about 10^38.5)


def mbgd_study_phase(config, data, writer) -> int:
    """The first half of mbgd.pipelines.sweep.tracked_sweep, on mbgd's default storage; returns the trial runs
    logged."""
    from mbgd.pipelines import sweep as pipeline_sweep
    from mbgd.studies import storage as studies
    from mbgd.tracking import models as tracking_models
    from mbgd.tracking import runs as tracking

    storage_url = config.storage or studies.default_storage()
    storage = studies.open_storage(storage_url)
    # opens (creates) the studies, as tracked_sweep does; finished studies of the same names would make this
    # measure a resume and a back-fill instead of the studies
    remaining = studies.remaining_trials(config, storage)
    if remaining != config.n_trials * len(config.batch_sizes):
        raise RuntimeError(f"{storage_url} already holds trials of the sweep {config.name!r}")
    written_before = len(writer.run_ids)
    client = tracking.client()
    with tracking.run_scope(
        client, experiment_name=config.experiment, run_name=f"sweep-{config.name}"
    ) as parent:
        tracking.log_values(client, parent.run_id, params=config.as_params())
        tracking_models.log_dataset(client, parent.run_id, data)
        _, _, trial_run_ids = pipeline_sweep.run_studies(
            config, data, storage, storage_url, parent, writer=writer
        )
        written = trial_run_ids()  # every run written, as before the analysis of a sweep that needs them
    return len(written) - written_before


def reference_study_phase(x, y_train, y_eval, *, name: str, storage_url: str, config) -> int:
    """Sequential Optuna trials, each an MLflow child run that logs its loss as it trains."""
    import mlflow
    import optuna
    import torch

    epochs = config.train.epochs

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
                xb, yb = x[start : start + batch_size], y_train[start : start + batch_size]
                torch.mean((w * xb + b - yb) ** 2).backward()
                with torch.no_grad():
                    w -= lr * w.grad
                    b -= lr * b.grad
                w.grad = None
                b.grad = None
        return losses

    mlflow.set_experiment(config.experiment)
    trials = 0
    with mlflow.start_run(run_name=f"sweep-{name}"):
        for batch_size in config.batch_sizes:

            def objective(trial, batch_size=batch_size):
                lr = trial.suggest_float("lr", config.lr_min, config.lr_max, log=True)
                with mlflow.start_run(run_name=f"b{batch_size}-trial{trial.number}", nested=True):
                    mlflow.log_params({"lr": lr, "batch_size": batch_size, "trial": trial.number})
                    losses = train_one_lr(lr, batch_size)
                    diverged = not math.isfinite(losses[-1])
                    value = (
                        WORST_AUC if diverged else min(sum(map(math.log10, losses)) / len(losses), WORST_AUC)
                    )
                    mlflow.log_metrics({"objective": value, "diverged": float(diverged)})
                return value

            study = optuna.create_study(
                study_name=f"{name}-b{batch_size}",
                storage=storage_url,
                sampler=optuna.samplers.TPESampler(seed=batch_size),
                direction="minimize",
            )
            study.optimize(objective, n_trials=config.n_trials)
            trials += len(study.trials)
    return trials


def time_against(context: Context, config, data, other, *, label: str) -> dict:
    """mbgd's study phase timed before and after `other(name, config) -> trials` (a side that sets up its own
    stores), both warmed up first on their own stores; returns the seconds and trial counts of both sides.

    mbgd runs before and after the long other side and the two are averaged, so that a change in the machine's
    load or disk latency during the run does not favour either side.
    """
    from mbgd.pipelines.trial_run_writer import open_writer

    mbgd_store = context.store(f"{label}-mlflow-mbgd")

    def mbgd(name: str, **changes) -> tuple[float, int]:
        use_tracking_store(mbgd_store)  # mbgd's default Optuna storage goes beside it
        return timed(lambda: mbgd_study_phase(replace(config, name=name, **changes), data, writer))

    use_tracking_store(mbgd_store)  # the helper writes to the store it finds in the environment
    with open_writer(trials=len(config.batch_sizes) * config.n_trials) as writer:
        # Warm-up on each side's own stores: tables of both databases, TPE's imports, a few trials.
        mbgd("warm-up", batch_sizes=(20,), n_trials=4, population=2)
        timed(lambda: other("warm-up", replace(config, batch_sizes=(20,), n_trials=4)))
        mbgd_before, trials = mbgd("bench-before")
        other_seconds, other_trials = timed(lambda: other("bench", config))
        mbgd_after, _ = mbgd("bench-after")
    context.note(
        f"mbgd study phase: {trials} trial runs, {mbgd_before:.2f} s before, {mbgd_after:.2f} s after"
    )
    return {
        "mbgd_seconds": (mbgd_before + mbgd_after) / 2,
        "other_seconds": other_seconds,
        "other_trials": other_trials,
    }


def run(context: Context) -> list[Result]:
    import optuna

    from mbgd.core.config import SweepConfig
    from mbgd.core.data import load_data

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_trials = 8 if context.quick else N_TRIALS
    config = SweepConfig(batch_sizes=BATCH_SIZES, n_trials=n_trials, experiment="bench-p2")
    data = load_data(config.train.data, config.train.seed)
    x, y_train, y_eval = data.x.view(-1), data.y_train, data.y_eval
    reference_store = context.store("p2-mlflow-reference")

    def reference(name: str, run_config) -> int:
        use_tracking_store(reference_store)
        storage = context.store("p2-optuna-reference")
        return reference_study_phase(x, y_train, y_eval, name=name, storage_url=storage, config=run_config)

    timings = time_against(context, config, data, reference, label="p2")
    mbgd_seconds = timings["mbgd_seconds"]
    reference_seconds, reference_trials = timings["other_seconds"], timings["other_trials"]
    context.note(
        f"reference Optuna + MLflow loop: {reference_trials} trial runs in {reference_seconds:.2f} s"
    )
    ratio = reference_seconds / mbgd_seconds
    return [Result("P2", "sweep study phase, reference vs mbgd", ratio, goal=GOAL, higher_is_better=True)]
