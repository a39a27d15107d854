"""The tracked `mbgd scaling`: every study's trials as child runs of one run, which gets the scaling
figures, summary and curves; each best lr's model on a child run of its own.

Compute first, then hand the results to the tracking layer (mbgd.tracking.runs); mbgd.pipelines.trial_runs
writes the trial runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from mbgd.core.data import RegressionData
from mbgd.pipelines import steps


@dataclass(frozen=True)
class ScalingOutcome:
    run_id: str
    experiment_id: str
    summary: dict
    markdown: str


def tracked_scaling(
    config, data: RegressionData, *, output_dir: str = "", progress=None, writer=None, worker=None
) -> ScalingOutcome:
    """mbgd scaling: every study's trials as child runs of one run, which gets the scaling figures,
    scaling.json, scaling.md (also its description), the measured curves as metrics (step = batch size) and
    B_simple along each best-lr run (step = update); each best lr's model goes on a child run
    `<order>-<regime>-best-b<B>`. With `output_dir`, the figures, scaling.json and scaling.md go there too.
    `worker` (mbgd.runtime.compute_worker) makes the dense scans meanwhile; without one they are made here."""
    import json
    from pathlib import Path

    from mbgd.pipelines import trial_runs
    from mbgd.reports import markdown as report
    from mbgd.reports import scaling_markdown as scaling_report
    from mbgd.reports import scaling_plots, scaling_summary
    from mbgd.runtime.processes import imports_done
    from mbgd.studies import scaling
    from mbgd.studies.storage import open_study
    from mbgd.tracking import runs as tracking

    config = scaling.resolve_lr_range(config, data)
    storage_url, storage = steps.open_study_storage(config.sweep)
    remaining = scaling.open_studies(
        config, storage
    )  # refuses mismatched settings before any MLflow run exists
    client = tracking.client()
    imports_done()  # MLflow's store, Optuna's storage, torch and matplotlib (mbgd.runtime.processes)
    label_of = config.study_labels().__getitem__

    with steps.studies_run(
        client,
        config.sweep,
        data,
        run_name=f"scaling-{config.sweep.name}",
        tags={"scaling": config.sweep.name, "dtype": config.sweep.train.dtype},
        params=config.as_params(),
        storage_url=storage_url,
        trials=remaining,
        writer=writer,
    ) as (scaling_run, writer):
        on_trials = trial_runs.OnTrialRuns(
            writer.submit,
            scaling_run,
            writer.client(),
            n=data.n,
            dtype=config.sweep.train.dtype,
            label_of=label_of,
        )
        drawn_scans = []  # each (order, regime)'s scan figure, drawn by the worker once its studies are done

        def draw_curve_scans(curve) -> None:
            scans = [point.lr_scan for point in curve.points if point.lr_scan is not None]
            studies = [open_study(curve.study_config, p.batch_size, storage) for p in curve.points]
            title = (
                f"updates to the target vs lr, {curve.order} order, {curve.regime}: scan and Optuna trials"
            )
            drawn_scans.append(steps.draw_scans(scans, studies, title=title, worker=worker))

        result = scaling.measure_scaling(
            config, storage, on_trials=on_trials, progress=progress, worker=worker, on_curve=draw_curve_scans
        )
        summary = scaling_summary.summarize(result)
        markdown = scaling_report.scaling_markdown(summary, heading="#")
        best_models = log_scaling_best_models(client, scaling_run, result, data)
        tracking.log_values(
            client, scaling_run.run_id, metrics=scaling_metrics(result, summary), tags=best_models
        )
        figures = {
            "scaling_updates.png": scaling_plots.scaling_updates_figure(summary),
            "scaling_samples.png": scaling_plots.scaling_samples_figure(summary),
            "scaling_lr.png": scaling_plots.scaling_lr_figure(summary),
        }
        pngs = steps.log_figures(client, scaling_run.run_id, figures)
        for curve, drawn in zip(result.curves, drawn_scans, strict=True):
            scan_png = steps.log_scans(
                client,
                scaling_run.run_id,
                [point.lr_scan for point in curve.points if point.lr_scan is not None],
                drawn,
                figure_file=f"lr_scan/{curve.order}-{curve.regime}.png",
            )
            if scan_png is not None:
                pngs[f"scaling_lr_scan_{curve.order}-{curve.regime}.png"] = scan_png
        written = writer.flush()  # the helper wrote the last trial runs meanwhile
        trial_runs.backfill_studies(  # the trials an earlier, killed scaling told but did not write
            writer.client(),
            scaling_run,
            [
                (p.batch_size, open_study(c.study_config, p.batch_size, storage))
                for c in result.curves
                for p in c.points
            ],
            n=data.n,
            dtype=config.sweep.train.dtype,
            label_of=label_of,
            known=written,
        )
        steps.log_summary(client, scaling_run.run_id, summary, markdown, name="scaling")
        if output_dir:
            report.write_report(output_dir, markdown, pngs, markdown_file="scaling.md")
            (Path(output_dir) / "scaling.json").write_text(json.dumps(summary, indent=2) + "\n")
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
            uri = steps.log_best_model(
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

    from mbgd.tracking import metric_values

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
                metrics += metric_values.scalars({f"best_lr/{key}": point.best_lr}, step=point.batch_size)
            if math.isfinite(updates):
                metrics += metric_values.scalars({f"updates_to_target/{key}": updates}, step=point.batch_size)
            path = [(step, v) for step, v in enumerate(point.runs[0].noise_scales) if math.isfinite(v)]
            metrics += [
                m
                for step, v in path
                for m in metric_values.scalars({f"noise_scale/{key}/b{point.batch_size}": v}, step=step)
            ]
    return [*metric_values.scalars(scalars), *metrics]
