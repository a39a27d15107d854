"""The tracked `mbgd lr-momentum`: one run with the studies' storage and dataset as params, per (order,
regime) the updates to the target, tuned momentum, tuned_regret and trials_to_5pct as metrics with
step = batch size, the grids as CSV artifacts, lr_momentum.json, lr_momentum.md (also the run's description)
and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from mbgd.core.data import RegressionData
from mbgd.pipelines import steps


@dataclass(frozen=True)
class LrMomentumOutcome:
    run_id: str
    experiment_id: str
    summary: dict
    markdown: str


def tracked_lr_momentum(config, data: RegressionData, *, output_dir: str = "", progress=None, worker=None):
    """`worker` (mbgd.runtime.compute_worker) makes grids and tuning-cost searches meanwhile; without one they
    are made here."""
    import json
    from pathlib import Path

    from mbgd.reports import lr_momentum as lr_momentum_report
    from mbgd.reports import markdown as report
    from mbgd.runtime.processes import imports_done
    from mbgd.studies import lr_momentum
    from mbgd.tracking import artifacts
    from mbgd.tracking import runs as tracking

    storage_url, storage = steps.open_study_storage(config.scaling.sweep)
    lr_momentum.open_studies(config, storage)  # refuses mismatched settings before any MLflow run exists
    client = tracking.client()
    imports_done()
    sweep = config.scaling.sweep
    with steps.studies_run(
        client,
        sweep,
        data,
        run_name=f"lr-momentum-{sweep.name}",
        tags={"lr_momentum": sweep.name, "dtype": sweep.train.dtype},
        params=config.as_params(),
        storage_url=storage_url,
        trials=0,
    ) as (run, _):
        result = lr_momentum.measure_lr_momentum(config, storage, progress=progress, worker=worker)
        summary = lr_momentum_report.summarize(result)
        markdown = lr_momentum_report.markdown(summary, heading="#")
        tracking.log_values(client, run.run_id, metrics=lr_momentum_metrics(summary))
        for curve in result.curves:
            for point in curve.points:
                artifacts.log_text(
                    client,
                    run.run_id,
                    point.grid.to_csv(),
                    f"lr_momentum_grid/{curve.order}-{curve.regime}-b{point.batch_size}.csv",
                )
        pngs = steps.log_figures(
            client,
            run.run_id,
            {
                "lr_momentum_updates.png": lr_momentum_report.updates_figure(summary),
                "lr_momentum_grid.png": lr_momentum_report.grid_figure(result),
            },
        )
        steps.log_summary(client, run.run_id, summary, markdown, name="lr_momentum")
        if output_dir:
            report.write_report(output_dir, markdown, pngs, markdown_file="lr_momentum.md")
            (Path(output_dir) / "lr_momentum.json").write_text(json.dumps(summary, indent=2) + "\n")
    return LrMomentumOutcome(run.run_id, run.experiment_id, summary, markdown)


def lr_momentum_metrics(summary: dict) -> list:
    """Per (order, regime), with step = batch size: the updates to the target of SGD and of tuned heavy
    ball (seed means), the tuned momentum, tuned_regret and the tuning costs (MLflow's charts then draw each
    against the batch size)."""
    from mbgd.tracking import metric_values

    metrics = []
    for order, regimes in summary["measured"].items():
        for regime, points in regimes.items():
            key = f"{order}-{regime}"
            for p in points:
                values = {
                    f"updates_to_target/{key}/sgd": p["seeds"]["sgd"]["updates"],
                    f"updates_to_target/{key}/momentum": p["seeds"]["momentum"]["updates"],
                    f"tuned_momentum/{key}": p["tuned"]["momentum"],
                    f"tuned_lr/{key}": p["tuned"]["lr"],
                    f"tuned_regret/{key}": p["tuned"]["tuned_regret"],
                    f"trials_to_5pct_2d/{key}": p["trials_to_5pct_2d"],
                    f"trials_to_5pct_1d/{key}": p["trials_to_5pct_1d"],
                }
                shown = {name: value for name, value in values.items() if value is not None}
                metrics += metric_values.scalars(shown, step=p["batch_size"])
    return metrics
