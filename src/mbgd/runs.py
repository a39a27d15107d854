"""A tracked `mbgd train`: train the run's batch size and those it is compared with, then log them.

Training returns results; everything MLflow sees goes through `mbgd.tracking` after each fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mbgd.config import TrainConfig, TrainRun, redact
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
    from mbgd import plots, tracking

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
        tracking.log_dataset(client, run_id, data)
        if not history.diverged:
            tracking.log_model(
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
    others = ", ".join(f"{b} ({regime(b, data.n)})" for b in histories if b != own)
    tracking.describe(
        client,
        run_id,
        f"Batch size {own} ({regime(own, data.n)}, this run) compared with {others}: full-dataset loss per "
        f"epoch at lr {config.lr} over {config.epochs} epochs ({title}). See `comparison.png` and the "
        "`compare` charts.",
    )
    ui_views.save_comparison_view(client, run_id)


@dataclass(frozen=True)
class SweepOutcome:
    run_id: str
    experiment_id: str
    summary: dict
    summary_markdown: str
    results: list  # sweep_summary.BatchSizeResult per batch size
    best_models: dict[int, str] = field(default_factory=dict)  # model URI by batch size (none if it diverged)
    registered_versions: dict[int, str] = field(
        default_factory=dict
    )  # --register-model's version by batch size


TRIAL_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def trial_run(parent, batch_size: int, study_name: str, record, *, n: int, dtype: str, label: str = ""):
    """One told trial as a child run of `parent`: lr, batch size, trial and study as params, the `loss` per
    epoch, `objective`, `trial` and `diverged`; it ends with the status of its Optuna state (pruned: KILLED).

    `label` prefixes the run's name where one parent holds several studies per batch size (mbgd scaling)."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from mbgd.trial_runs import TrialRun

    return TrialRun(
        study_name=study_name,
        number=record.number,
        experiment_id=parent.experiment_id,
        name=f"{label}b{batch_size}-trial{record.number}-lr{record.lr:.3g}",
        tags={
            MLFLOW_PARENT_RUN_ID: parent.run_id,
            "optuna.state": record.state,
            "regime": regime(batch_size, n),
            "dtype": dtype,
            "diverged": str(record.history.diverged).lower(),
        },
        params={
            "lr": repr(record.lr),
            "batch_size": str(batch_size),
            "trial": str(record.number),
            "study_name": study_name,
        },
        losses=list(record.history.epoch_losses),
        results={
            "objective": record.value,
            "trial": record.number,
            "diverged": float(record.history.diverged),
        },
        status=TRIAL_RUN_STATUS[record.state],
    )


def scan_studies(config, data: RegressionData, storage) -> dict:
    """Every batch size's dense lr scan (mbgd.scan), each study set to refine it; {} with --scan 0."""
    from mbgd import scan, sweep
    from mbgd.studies import open_study

    if not config.scan:
        return {}
    scans = {}
    for batch_size in config.batch_sizes:
        scans[batch_size] = scan.run_scan(config, data, batch_size)
        sweep.prepare_refinement(open_study(config, batch_size, storage), scans[batch_size])
    return scans


def run_studies(config, data: RegressionData, storage, storage_url: str, sweep_run, *, writer, progress=None):
    """The sweep's study phase: every batch size's scan, then its study to n_trials, each told trial a child
    run of `sweep_run`; returns the scans by batch size, the studies and, once all are written, the trial
    runs' ids by (study name, trial number).

    One process: `writer` (mbgd.trial_runs) writes the trial runs, in a helper process while the studies go on
    when it has one. Several workers: each writes its own trials' runs (the scans are made here first).
    """
    from mbgd import sweep, workers
    from mbgd.studies import open_study

    scans = scan_studies(config, data, storage)
    if config.workers > 1:
        workers.run_in_workers(config, storage_url, sweep_run, progress=progress)
        studies = [open_study(config, b, storage) for b in config.batch_sizes]
        return scans, studies, backfill_trial_runs(writer.client(), sweep_run, config, data, studies)

    def on_trials(batch_size: int, study_name: str, records) -> None:
        writer.submit(
            [
                trial_run(sweep_run, batch_size, study_name, r, n=data.n, dtype=config.train.dtype)
                for r in records
            ]
        )

    studies = [
        sweep.run_study(config, data, b, storage, on_trials=on_trials, progress=progress)
        for b in config.batch_sizes
    ]
    written = writer.flush()
    return (
        scans,
        studies,
        {**written, **backfill_trial_runs(writer.client(), sweep_run, config, data, studies)},
    )


def backfill_trial_runs(
    client, sweep_run, config, data: RegressionData, studies
) -> dict[tuple[str, int], str]:
    """Write, as children of `sweep_run`, the run of every finished trial that has none in the experiment (its
    process was killed between telling the trial and writing the run: a worker, or an earlier sweep), rebuilt
    from what the trial stored when told (sweep.stored_record); returns their ids by (study name, trial)."""
    from mbgd import protocol, sweep, trial_runs

    written = {}
    for batch_size, study in zip(config.batch_sizes, studies, strict=True):
        records = [
            sweep.stored_record(t, batch_size)
            for t in study.get_trials(deepcopy=False, states=protocol.FINISHED_STATES)
        ]
        runs = [
            trial_run(sweep_run, batch_size, study.study_name, record, n=data.n, dtype=config.train.dtype)
            for record in records
            if record is not None
        ]
        existing = trial_runs.runs_by_trial(client, sweep_run.experiment_id, study.study_name)
        written |= trial_runs.backfill(client, runs, existing)
    return written


SCAN_TITLE = "{objective} vs learning rate: the dense scan and the Optuna trials that refined it"


def log_scans(client, run_id: str, scans, studies, *, figure_file: str, title: str):
    """Each scan as lr_scan/<study>.csv, and one figure of them all with the studies' trials on them
    (returned; None without scans)."""
    from mbgd import plots, tracking

    if not scans:
        return None
    for lr_scan in scans:
        client.log_text(run_id, lr_scan.to_csv(), f"lr_scan/{lr_scan.study_name}.csv")
    trials = {study.study_name: completed_trials(study) for study in studies}
    figure = plots.lr_scan_figure(scans, trials, title=title)
    tracking.log_figure(client, run_id, figure, figure_file)
    return figure


def completed_trials(study) -> list[tuple[float, float]]:
    """(lr, value) of the study's COMPLETE trials."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [(float(t.params["lr"]), float(t.value)) for t in complete]


def tracked_sweep(
    config, data: RegressionData, *, progress=None, parent=None, writer=None, register_model: str = ""
) -> SweepOutcome:
    """Run the studies with every trial a child run, then log the seeds' figures and summaries on the parent,
    and each batch size's best-lr model on a `best-b<B>` child run.

    With `parent` (a RunRef) the sweep's run nests under it, as in the report. `writer` writes the trial runs
    (mbgd.trial_runs; a command starts it first); without one the sweep makes its own. With `register_model`
    each best model becomes a version of that registered model.
    """
    from contextlib import ExitStack

    from mbgd import plots, report, sweep_summary, tracking, trial_runs
    from mbgd.studies import default_storage, open_storage, remaining_trials

    storage_url = config.storage or default_storage()
    storage = open_storage(storage_url)
    remaining = remaining_trials(config, storage)  # refuses mismatched settings before any MLflow run exists
    client = tracking.client()
    experiment_id = parent.experiment_id if parent else tracking.experiment_id_for(client, config.experiment)
    tracking.end_orphaned_runs(client, experiment_id)
    with ExitStack() as stack:
        sweep_run = stack.enter_context(
            tracking.run_scope(
                client,
                experiment_name=config.experiment,
                run_name=f"sweep-{config.name}",
                tags={"sweep": config.name, "objective": config.objective, "dtype": config.train.dtype},
                parent=parent,
                adopt_run_id="" if parent else tracking.run_id_from_mlflow_run(),
            )
        )
        if writer is None:  # inside the run's scope: its trial runs are written before it ends
            in_process = remaining if config.workers == 1 else 0  # workers write their own
            writer = stack.enter_context(trial_runs.trial_run_writer(expected_trials=in_process))
        tracking.log_values(
            client, sweep_run.run_id, params={**config.as_params(), "storage": redact(storage_url)}
        )
        tracking.log_dataset(client, sweep_run.run_id, data)
        scans, studies, trial_run_ids = run_studies(
            config, data, storage, storage_url, sweep_run, writer=writer, progress=progress
        )
        results = [
            sweep_summary.analyse_batch_size(config, study, data, scans.get(b))
            for b, study in zip(config.batch_sizes, studies, strict=True)
        ]
        summary = sweep_summary.summarize(config, results)
        markdown = report.summary_markdown(summary)
        best_runs = {
            r.batch_size: trial_run_ids.get((config.study_name(r.batch_size), r.best_trial_number))
            or tracking.find_trial_run(
                client, sweep_run.experiment_id, config.study_name(r.batch_size), r.best_trial_number
            )
            for r in results
        }
        best_models = log_sweep_best_models(client, sweep_run, config, data, results)
        registered = {}
        if register_model:
            registered = register_best_models(client, register_model, config, results, best_models)
        tracking.log_values(
            client,
            sweep_run.run_id,
            metrics=tracking.scalars(
                {f"best_lr_b{r.batch_size}": r.best_lr for r in results}
                | {f"best_value_b{r.batch_size}": r.best_value for r in results}
            ),
            tags={f"best_run_b{b}": run_id for b, run_id in best_runs.items() if run_id}
            | {f"best_model_b{b}": uri for b, uri in best_models.items()}
            | {f"registered_model_b{b}": f"models:/{register_model}/{v}" for b, v in registered.items()},
        )
        for artifact_file, figure in sweep_figures(config, results, summary).items():
            tracking.log_figure(client, sweep_run.run_id, figure, artifact_file)
        log_scans(
            client,
            sweep_run.run_id,
            list(scans.values()),
            studies,
            figure_file="lr_scan.png",
            title=SCAN_TITLE.format(objective=config.objective),
        )
        for study in studies:
            for name, figure in plots.optuna_figures(study).items():
                tracking.log_figure(client, sweep_run.run_id, figure, f"optuna/{study.study_name}/{name}.png")
                plots.close(figure)
        client.log_dict(sweep_run.run_id, summary, "summary.json")
        client.log_text(sweep_run.run_id, markdown, "summary.md")
        tracking.describe(client, sweep_run.run_id, markdown)
    return SweepOutcome(
        sweep_run.run_id, sweep_run.experiment_id, summary, markdown, results, best_models, registered
    )


# A best lr's model lives in a child run of its own (`best-b<B>`; scaling: `<order>-<regime>-best-b<B>`), not
# in the best trial's run: the model is the re-training at the run's own seed, which no trial run records; a
# rerun of a finished sweep adds no trial, so the best trial's run may sit under an earlier sweep's run (and
# another worker may have written it). A run of its own sits under this run beside the trials, named for what
# it holds, with the lr, batch size and seed that made the model as its params: where an MLflow user looks for
# "the best model of B".
def log_best_model(
    client, parent, run_name: str, history: History, data: RegressionData, *, params, tags, results
) -> str:
    """One best lr's re-training as a child run of `parent`: `params`, the loss curve, w, b and `results` as
    metrics, and the fitted line as its model; returns the model's URI ('' when the training diverged: no
    model)."""
    from mbgd import tracking

    run_tags = {"regime": regime(history.batch_size, data.n), **tags}
    with tracking.run_scope(client, run_name=run_name, parent=parent, tags=run_tags) as run:
        metrics = [
            *tracking.history_metrics(history, weight_names=data.feature_names),
            *tracking.scalars(results),
        ]
        tracking.log_values(client, run.run_id, params=params, metrics=metrics)
        if history.diverged:
            return ""
        return tracking.log_model(
            client,
            run.run_id,
            history.w,
            history.b,
            data.feature_names,
            target_name=data.target_name,
            example=data.x[:2].tolist(),
        )


def log_sweep_best_models(client, sweep_run, config, data: RegressionData, results) -> dict[int, str]:
    """Each batch size's best lr re-trained at the run's own seed (the first of the seeds), as `best-b<B>`;
    returns the model URIs by batch size."""
    models = {}
    for r in results:
        uri = log_best_model(
            client,
            sweep_run,
            f"best-b{r.batch_size}",
            r.tuned.histories[0],
            data,
            params={
                "batch_size": r.batch_size,
                "lr": repr(r.best_lr),
                "seed": config.train.seed,
                "study_name": config.study_name(r.batch_size),
            },
            tags={"dtype": config.train.dtype},
            results={"objective": r.tuned.objective_values[0]},
        )
        if uri:
            models[r.batch_size] = uri
    return models


def register_best_models(client, name: str, config, results, models: dict[int, str]) -> dict[int, str]:
    """Each best model as a new version of the registered model `name`, tagged with what made it; returns the
    versions by batch size."""
    from mbgd import tracking

    versions = {}
    for r in results:
        if r.batch_size not in models:
            continue
        tags = {
            "batch_size": str(r.batch_size),
            "lr": repr(r.best_lr),
            "seed": str(config.train.seed),
            "objective": config.objective,
            "study_name": config.study_name(r.batch_size),
        }
        versions[r.batch_size] = str(
            tracking.register_model(client, models[r.batch_size], name, tags=tags).version
        )
    return versions


def sweep_figures(config, results, summary: dict) -> dict:
    """The sweep's figures by artifact file: (a) to (d)."""
    from mbgd import plots

    return {
        "tuned_comparison.png": plots.tuned_comparison_figure(
            results, fixed_lr=config.train.lr, n_seeds=config.seeds
        ),
        "tuned_cost.png": plots.tuned_cost_figure(results),
        "lr_sensitivity.png": plots.lr_sensitivity_figure(results, objective=config.objective),
        "best_lr_vs_batch_size.png": plots.best_lr_figure(
            results, exponent=summary["best_lr_exponent"], exponent_se=summary["best_lr_exponent_se"]
        ),
    }


@dataclass(frozen=True)
class ReportOutcome:
    run_id: str
    experiment_id: str
    markdown: str
    summary: dict
    registered_versions: dict[int, str] = field(
        default_factory=dict
    )  # --register-model's version by batch size


def tracked_report(
    config, data: RegressionData, output_dir: str, *, progress=None, writer=None, register_model: str = ""
) -> ReportOutcome:
    """The tutorial in float32 and float64, then the sweep, all nested under one report run; writes
    report.md."""
    from dataclasses import replace

    from mbgd import plots, report, tracking

    client = tracking.client()
    with tracking.run_scope(
        client,
        experiment_name=config.experiment,
        run_name=f"report-{config.name}",
        tags={"report": config.name},
        adopt_run_id=tracking.run_id_from_mlflow_run(),
    ) as report_run:
        histories_by_dtype = {}
        figures = {}
        for dtype, figure_name in (
            ("float32", "tutorial_comparison.png"),
            ("float64", "tutorial_comparison_float64.png"),
        ):
            train_config = replace(config.train, dtype=dtype)
            train_run = TrainRun(
                train=train_config, compare_with=config.batch_sizes, experiment=config.experiment
            )
            outcome = tracked_train(train_run, data, parent=report_run)
            histories_by_dtype[dtype] = outcome.histories
            title = f"lr {train_config.lr}, {dtype}, seed {train_config.seed}, {data.name}"
            figures[figure_name] = plots.comparison_figure(
                outcome.histories, highlight=config.train.batch_size, n=data.n, title=title
            )
        swept = tracked_sweep(
            config, data, progress=progress, parent=report_run, writer=writer, register_model=register_model
        )
        figures.update(sweep_figures(config, swept.results, swept.summary))
        scans = [r.lr_scan for r in swept.results if r.lr_scan is not None]
        if scans:
            trials = {
                config.study_name(r.batch_size): [(lr, v) for lr, v, _ in r.trials] for r in swept.results
            }
            figures["lr_scan.png"] = plots.lr_scan_figure(
                scans, trials, title=SCAN_TITLE.format(objective=config.objective)
            )
        markdown = report.report_markdown(
            swept.summary, histories_by_dtype, config.train.lr, exact_targets=float64_targets_finals(config)
        )
        markdown += report.scaling_section(
            output_dir
        )  # from `mbgd scaling --output-dir` with the same folder
        report.write_report(output_dir, markdown, figures)
        client.log_artifacts(report_run.run_id, output_dir, "report")
        tracking.describe(client, report_run.run_id, markdown)
    return ReportOutcome(
        report_run.run_id, report_run.experiment_id, markdown, swept.summary, swept.registered_versions
    )


def float64_targets_finals(config) -> dict[int, History]:
    """The tutorial in float64 with its targets computed in float64 too, per batch size (untracked: the report
    quotes their final losses to show where the float64 run's gap comes from)."""
    from dataclasses import replace

    from mbgd.data import load_data

    train = replace(config.train, dtype="float64", data=replace(config.train.data, targets_dtype="float64"))
    data = load_data(train.data, train.seed)
    return {b: fit(train.with_batch_size(b), data, record_batch_loss=False) for b in config.batch_sizes}


@dataclass(frozen=True)
class ScalingOutcome:
    run_id: str
    experiment_id: str
    summary: dict
    markdown: str


def tracked_scaling(
    config, data: RegressionData, *, output_dir: str = "", progress=None, writer=None
) -> ScalingOutcome:
    """mbgd scaling: every study's trials as child runs of one run, which gets the scaling figures,
    scaling.json, scaling.md (also its description), the measured curves as metrics (step = batch size) and
    B_simple along each best-lr run (step = update); each best lr's model goes on a child run
    `<order>-<regime>-best-b<B>`. With `output_dir`, the figures, scaling.json and scaling.md go there too."""
    import contextlib
    import json
    from pathlib import Path

    from mbgd import plots, report, scaling, scaling_summary, tracking, trial_runs
    from mbgd.studies import default_storage, open_storage, open_study

    config = scaling.resolve_lr_range(config, data.x)
    storage_url = config.sweep.storage or default_storage()
    storage = open_storage(storage_url)
    remaining = scaling.open_studies(
        config, storage
    )  # refuses mismatched settings before any MLflow run exists
    client = tracking.client()
    prefix = f"{config.sweep.name}-"

    def on_trials(batch_size: int, study_name: str, records) -> None:
        label = study_name.removeprefix(prefix).rsplit("-b", 1)[0] + "-"  # <order>-<regime>-
        writer.submit(
            [
                trial_run(
                    scaling_run,
                    batch_size,
                    study_name,
                    r,
                    n=data.n,
                    dtype=config.sweep.train.dtype,
                    label=label,
                )
                for r in records
            ]
        )

    with tracking.run_scope(
        client,
        experiment_name=config.sweep.experiment,
        run_name=f"scaling-{config.sweep.name}",
        tags={"scaling": config.sweep.name, "dtype": config.sweep.train.dtype},
        adopt_run_id=tracking.run_id_from_mlflow_run(),
    ) as scaling_run:
        tracking.log_values(
            client, scaling_run.run_id, params={**config.as_params(), "storage": redact(storage_url)}
        )
        tracking.log_dataset(client, scaling_run.run_id, data)
        with contextlib.ExitStack() as stack:
            if writer is None:
                writer = stack.enter_context(trial_runs.trial_run_writer(expected_trials=remaining))
            result = scaling.measure_scaling(config, storage, on_trials=on_trials, progress=progress)
            writer.flush()
        summary = scaling_summary.summarize(result)
        markdown = report.scaling_markdown(summary, heading="#")
        best_models = log_scaling_best_models(client, scaling_run, result, data)
        tracking.log_values(
            client, scaling_run.run_id, metrics=scaling_metrics(result, summary), tags=best_models
        )
        figures = {
            "scaling_updates.png": plots.scaling_updates_figure(summary),
            "scaling_samples.png": plots.scaling_samples_figure(summary),
            "scaling_lr.png": plots.scaling_lr_figure(summary),
        }
        for artifact_file, figure in figures.items():
            tracking.log_figure(client, scaling_run.run_id, figure, artifact_file)
        for curve in result.curves:
            scans = [point.lr_scan for point in curve.points if point.lr_scan is not None]
            studies = [open_study(curve.study_config, p.batch_size, storage) for p in curve.points]
            scan_figure = log_scans(
                client,
                scaling_run.run_id,
                scans,
                studies,
                figure_file=f"lr_scan/{curve.order}-{curve.regime}.png",
                title=f"updates to the target vs lr, {curve.order} order, {curve.regime}: scan and Optuna "
                "trials",
            )
            if scan_figure is not None:
                figures[f"scaling_lr_scan_{curve.order}-{curve.regime}.png"] = scan_figure
        client.log_dict(scaling_run.run_id, summary, "scaling.json")
        client.log_text(scaling_run.run_id, markdown, "scaling.md")
        tracking.describe(client, scaling_run.run_id, markdown)
        if output_dir:
            folder = Path(output_dir)
            folder.mkdir(parents=True, exist_ok=True)
            for name, figure in figures.items():
                figure.savefig(folder / name, dpi=100)
            (folder / "scaling.json").write_text(json.dumps(summary, indent=2) + "\n")
            (folder / "scaling.md").write_text(markdown)
    return ScalingOutcome(scaling_run.run_id, scaling_run.experiment_id, summary, markdown)


def log_scaling_best_models(client, scaling_run, result, data: RegressionData) -> dict[str, str]:
    """Each (order, regime, batch size)'s best lr re-trained at the run's own seed, as
    `<order>-<regime>-best-b<B>`; returns the parent's tags `best_model/<order>-<regime>/b<B>` with the model
    URIs. A study in which no lr reached the target has no best lr, hence no such run."""
    tags = {}
    for curve in result.curves:
        key = f"{curve.order}-{curve.regime}"
        for point in curve.points:
            if point.best_value >= point.worst_value:
                continue
            seed_run = point.runs[0]
            uri = log_best_model(
                client,
                scaling_run,
                f"{key}-best-b{point.batch_size}",
                seed_run.history,
                data,
                params={
                    "batch_size": point.batch_size,
                    "lr": repr(point.best_lr),
                    "seed": seed_run.seed,
                    "study_name": curve.study_name(point.batch_size),
                    "order": curve.order,
                    "targets": curve.targets,
                },
                tags={"dtype": curve.study_config.train.dtype},
                results={} if seed_run.updates is None else {"updates_to_target": seed_run.updates},
            )
            if uri:
                tags[f"best_model/{key}/b{point.batch_size}"] = uri
    return tags


def scaling_metrics(result, summary: dict) -> list:
    """Predictions and knees as scalars; per (order, regime) the tuned lr and updates to target with
    step = batch size (MLflow's charts then draw the scaling curves), and B_simple along each batch size's
    first seed (step = update)."""
    import math

    from mbgd import tracking

    scalars = {"critical_batch_size_theory": summary["critical_batch_size_theory"]}
    if summary["noise_scale_at_target"] is not None:
        scalars["noise_scale_at_target"] = summary["noise_scale_at_target"]
    metrics = []
    for curve in result.curves:
        key = f"{curve.order}-{curve.regime}"
        if math.isfinite(curve.fit.critical_batch_size):
            scalars[f"measured_critical_batch_size/{key}"] = curve.fit.critical_batch_size
        for point in curve.points:
            updates, _ = point.stat("updates")
            if point.best_value < point.worst_value:
                metrics += tracking.scalars({f"best_lr/{key}": point.best_lr}, step=point.batch_size)
            if math.isfinite(updates):
                metrics += tracking.scalars({f"updates_to_target/{key}": updates}, step=point.batch_size)
            path = [(step, v) for step, v in enumerate(point.runs[0].noise_scales) if math.isfinite(v)]
            metrics += [
                m
                for step, v in path
                for m in tracking.scalars({f"noise_scale/{key}/b{point.batch_size}": v}, step=step)
            ]
    return [*tracking.scalars(scalars), *metrics]
