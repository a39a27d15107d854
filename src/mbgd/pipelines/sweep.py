"""The tracked `mbgd sweep`: every batch size's study with each trial a child run, then the seeds' figures
and summaries on the sweep's run, and each batch size's best-lr model on a `best-b<B>` child run.

Compute first, then hand the results to the tracking layer (mbgd.tracking.runs); mbgd.pipelines.trial_runs
writes the trial runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mbgd.core.data import RegressionData
from mbgd.pipelines.steps import (
    SCAN_TITLE,
    draw_scans,
    log_best_model,
    log_figures,
    log_scans,
    log_summary,
    open_study_storage,
    studies_run,
)


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


def begin_in_worker(config, data: RegressionData, worker) -> dict:
    """With a started compute worker, what it can begin before the studies exist, while this process opens
    the stores: every batch size's scan, then every batch size's tuning-cost search (scan.search_tpe_ahead);
    returns the scans' Pendings by batch size ({} without a worker or with --scan 0). The worker begins the
    newest call first: submitted together in reverse, the first batch size's comes first in each."""
    from mbgd.core import scan

    if worker is None or not worker.started or not config.scan:
        return {}
    batch_sizes = config.batch_sizes[::-1]
    with worker.together():
        if config.tuning_cost_seeds:
            for batch_size in batch_sizes:
                worker.submit_ahead(
                    scan.search_tpe_ahead, config, data, batch_size, seeds=config.tuning_cost_seeds
                )
        return {
            batch_size: worker.submit(scan.run_scan, config, data, batch_size) for batch_size in batch_sizes
        }


def scan_studies(config, data: RegressionData, storage, scans_begun=None) -> dict:
    """Every batch size's dense lr scan (mbgd.core.scan; `scans_begun`'s when given), each study set to refine
    it;
    {} with --scan 0."""
    from mbgd.core import scan
    from mbgd.studies import sweep
    from mbgd.studies.storage import open_study

    if not config.scan:
        return {}
    scans = {}
    for batch_size in config.batch_sizes:
        begun = (scans_begun or {}).get(batch_size)
        scans[batch_size] = begun.result() if begun else scan.run_scan(config, data, batch_size)
        sweep.prepare_refinement(open_study(config, batch_size, storage), storage, scans[batch_size])
    return scans


def run_studies(
    config,
    data: RegressionData,
    storage,
    storage_url: str,
    sweep_run,
    *,
    writer,
    progress=None,
    scans_begun=None,
):
    """The sweep's study phase: every batch size's scan (`scans_begun`'s when given: begin_in_worker), then
    its study to n_trials, each told trial a child run of `sweep_run`. Returns the scans by batch size, the
    studies and `trial_run_ids`, a function that waits until every trial run is written (back-filling those
    a killed process left unwritten) and returns their ids by (study name, trial number).

    One process: `writer` (mbgd.pipelines.trial_runs) writes the trial runs, in a helper process when it has
    one, which goes on writing while the caller analyses the studies: call `trial_run_ids` only when the runs
    are needed. Several workers: each writes its own trials' runs (the scans first).
    """
    from mbgd.pipelines import trial_runs, workers
    from mbgd.studies import sweep
    from mbgd.studies.storage import open_study

    def backfill(studies, written) -> dict[tuple[str, int], str]:
        pairs = zip(config.batch_sizes, studies, strict=True)
        return trial_runs.backfill_studies(
            writer.client(), sweep_run, pairs, n=data.n, dtype=config.train.dtype, known=written
        )

    scans = scan_studies(config, data, storage, scans_begun)
    if config.workers > 1:
        workers.run_in_workers(config, storage_url, sweep_run, progress=progress)
        studies = [open_study(config, b, storage) for b in config.batch_sizes]
        return scans, studies, lambda: backfill(studies, {})

    on_trials = trial_runs.OnTrialRuns(
        writer.submit, sweep_run, writer.client(), n=data.n, dtype=config.train.dtype
    )
    studies = [
        sweep.run_study(config, data, batch_size, storage, on_trials=on_trials, progress=progress)
        for batch_size in config.batch_sizes
    ]

    def trial_run_ids() -> dict[tuple[str, int], str]:
        written = writer.flush()
        return {**written, **backfill(studies, written)}

    return scans, studies, trial_run_ids


def tracked_sweep(
    config,
    data: RegressionData,
    *,
    progress=None,
    parent=None,
    writer=None,
    worker=None,
    register_model: str = "",
) -> SweepOutcome:
    """Run the studies with every trial a child run, then log the seeds' figures and summaries on the parent,
    and each batch size's best-lr model on a `best-b<B>` child run.

    With `parent` (a RunRef) the sweep's run nests under it, as in the report. `writer` writes the trial runs
    (mbgd.pipelines.trial_runs; a command starts it first); without one the sweep makes its own. `worker`
    (mbgd.runtime.compute_worker) measures the tuning costs meanwhile; without one they are measured here.
    With
    `register_model` each best model becomes a version of that registered model.
    """
    from mbgd.pipelines import trial_runs
    from mbgd.reports import markdown as report
    from mbgd.reports import plots
    from mbgd.runtime.compute_worker import or_here
    from mbgd.runtime.processes import imports_done
    from mbgd.studies import sweep_summary
    from mbgd.studies.storage import remaining_trials
    from mbgd.tracking import artifacts, metric_values
    from mbgd.tracking import runs as tracking

    scans_begun = begin_in_worker(config, data, worker)
    storage_url, storage = open_study_storage(config)
    remaining = remaining_trials(config, storage)  # refuses mismatched settings before any MLflow run exists
    client = tracking.client()
    experiment_id = parent.experiment_id if parent else tracking.experiment_id_for(client, config.experiment)
    tracking.end_orphaned_runs(client, experiment_id)
    imports_done()  # MLflow's store, Optuna's storage, torch and matplotlib (mbgd.runtime.processes)
    with studies_run(
        client,
        config,
        data,
        run_name=f"sweep-{config.name}",
        tags={"sweep": config.name, "objective": config.objective, "dtype": config.train.dtype},
        params=config.as_params(),
        storage_url=storage_url,
        trials=remaining,
        workers=config.workers,
        writer=writer,
        parent=parent,
    ) as (sweep_run, writer):
        scans, studies, all_trial_run_ids = run_studies(
            config,
            data,
            storage,
            storage_url,
            sweep_run,
            writer=writer,
            progress=progress,
            scans_begun=scans_begun,
        )
        # The worker's calls, submitted in the reverse of the order this process takes them in (it begins the
        # newest first): the tuning costs, then the scan figure, then Optuna's figures. Meanwhile this process
        # analyses the studies and logs the best models.
        pairs = list(zip(config.batch_sizes, studies, strict=True))
        title = SCAN_TITLE.format(objective=config.objective)
        computer = or_here(worker)
        with computer.together():
            drawn_optuna = {
                study.study_name: computer.submit(
                    plots.optuna_pngs, study.study_name, study.get_trials(deepcopy=False)
                )
                for _, study in reversed(pairs)
            }
            drawn_scans = (
                draw_scans(list(scans.values()), studies, title=title, worker=computer) if scans else None
            )
            costs = {
                b: sweep_summary.measure_tuning_cost(config, b, study, data, scans.get(b), computer)
                for b, study in reversed(pairs)
            }
        analysed = [
            sweep_summary.analyse_batch_size(config, b, study, data, scans.get(b)) for b, study in pairs
        ]
        best_models = log_sweep_best_models(client, sweep_run, config, data, analysed)
        results = [sweep_summary.with_tuning_cost(r, costs.get(r.batch_size)) for r in analysed]
        summary = sweep_summary.summarize(config, results)
        markdown = report.summary_markdown(summary)
        registered = {}
        if register_model:
            registered = register_best_models(client, register_model, config, results, best_models)
        log_figures(client, sweep_run.run_id, sweep_figures(config, results, summary))
        log_scans(client, sweep_run.run_id, list(scans.values()), drawn_scans, figure_file="lr_scan.png")
        for study_name, drawn in reversed(drawn_optuna.items()):
            for name, png in drawn.result().items():
                artifacts.log_png(client, sweep_run.run_id, png, f"optuna/{study_name}/{name}.png")
        trial_run_ids = all_trial_run_ids()  # the helper wrote the last trial runs meanwhile
        best_runs = {
            r.batch_size: trial_run_ids.get((config.study_name(r.batch_size), r.best_trial_number))
            or trial_runs.find(
                client, sweep_run.experiment_id, config.study_name(r.batch_size), r.best_trial_number
            )
            for r in results
        }
        tracking.log_values(
            client,
            sweep_run.run_id,
            metrics=metric_values.scalars(
                {f"best_lr_b{r.batch_size}": r.best_lr for r in results}
                | {f"best_value_b{r.batch_size}": r.best_value for r in results}
            ),
            tags={f"best_run_b{b}": run_id for b, run_id in best_runs.items() if run_id}
            | {f"best_model_b{b}": uri for b, uri in best_models.items()}
            | {f"registered_model_b{b}": f"models:/{register_model}/{v}" for b, v in registered.items()},
        )
        log_summary(client, sweep_run.run_id, summary, markdown, name="summary")
    return SweepOutcome(
        sweep_run.run_id, sweep_run.experiment_id, summary, markdown, results, best_models, registered
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
    """Each best model as a version of the registered model `name`, tagged with what made it, with the alias
    `b<B>`; `best` on the batch size whose tuned objective is lowest. Returns the versions by batch size."""
    from mbgd.tracking import models as tracking_models

    registered = [r for r in results if r.batch_size in models]
    best = min(registered, key=lambda r: r.best_value, default=None)
    versions = {}
    for r in registered:
        tags = {
            "batch_size": str(r.batch_size),
            "lr": repr(r.best_lr),
            "seed": str(config.train.seed),
            "objective": config.objective,
            "study_name": config.study_name(r.batch_size),
        }
        aliases = [f"b{r.batch_size}", *(["best"] if r is best else [])]
        versions[r.batch_size] = str(
            tracking_models.register_model(
                client, models[r.batch_size], name, tags=tags, aliases=aliases
            ).version
        )
    if registered:
        aliases = ", ".join(f"@b{r.batch_size}" for r in registered)
        description = (
            f"The line y = x·w + b that mbgd's sweep {config.name!r} fitted at each batch size's tuned lr "
            f"(objective {config.objective}, seed {config.train.seed}). Aliases: one per batch size "
            f"({aliases}); @best, the batch size whose tuned objective is lowest (b{best.batch_size}). "
            f"Load one with mlflow.pyfunc.load_model('models:/{name}@best')."
        )
        tracking_models.describe_registered_model(client, name, description)
    return versions


def sweep_figures(config, results, summary: dict) -> dict:
    """The sweep's figures by artifact file: (a) to (d)."""
    from mbgd.reports import plots

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
