"""The tracked `mbgd report`: the tutorial's comparison in float32 and float64, then the sweep, all nested
under one report run; writes report.md and its figures.

Compute first, then hand the results to the tracking layer (mbgd.tracking.runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mbgd.core.config import TrainRun
from mbgd.core.data import RegressionData
from mbgd.core.train import History, fit
from mbgd.pipelines.steps import SCAN_TITLE, study_storage_url
from mbgd.pipelines.sweep import sweep_figures, tracked_sweep
from mbgd.pipelines.train import tracked_train


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
    config,
    data: RegressionData,
    output_dir: str,
    *,
    progress=None,
    writer=None,
    worker=None,
    register_model: str = "",
) -> ReportOutcome:
    """The tutorial in float32 and float64, then the sweep, all nested under one report run; writes
    report.md."""
    from dataclasses import replace

    from mbgd.reports import markdown as report
    from mbgd.reports import plots, scan_plots
    from mbgd.reports import scaling_markdown as scaling_report
    from mbgd.runtime.processes import imports_done
    from mbgd.tracking import artifacts
    from mbgd.tracking import runs as tracking

    study_storage_url(config)  # a storage that cannot be used stops the report before the tutorial's runs
    client = tracking.client()
    imports_done()  # MLflow, torch and matplotlib (mbgd.runtime.processes)
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
            config,
            data,
            progress=progress,
            parent=report_run,
            writer=writer,
            worker=worker,
            register_model=register_model,
        )
        figures.update(sweep_figures(config, swept.results, swept.summary))
        scans = [r.lr_scan for r in swept.results if r.lr_scan is not None]
        if scans:
            trials = {
                config.study_name(r.batch_size): [(lr, v) for lr, v, _ in r.trials] for r in swept.results
            }
            figures["lr_scan.png"] = scan_plots.lr_scan_figure(
                scans, trials, title=SCAN_TITLE.format(objective=config.objective)
            )
        markdown = report.report_markdown(
            swept.summary, histories_by_dtype, config.train.lr, exact_targets=float64_targets_finals(config)
        )
        markdown += scaling_report.scaling_section(
            output_dir
        )  # from `mbgd scaling --output-dir` with the same folder
        report.write_report(output_dir, markdown, {name: plots.png_bytes(f) for name, f in figures.items()})
        artifacts.log_artifacts(client, report_run.run_id, output_dir, "report")
        tracking.describe(client, report_run.run_id, markdown)
    return ReportOutcome(
        report_run.run_id, report_run.experiment_id, markdown, swept.summary, swept.registered_versions
    )


def float64_targets_finals(config) -> dict[int, History]:
    """The tutorial in float64 with its targets computed in float64 too, per batch size (untracked: the report
    quotes their final losses to show where the float64 run's gap comes from)."""
    from dataclasses import replace

    from mbgd.core.data import load_data

    train = replace(config.train, dtype="float64", data=replace(config.train.data, targets_dtype="float64"))
    data = load_data(train.data, train.seed)
    return {b: fit(train.with_batch_size(b), data, record_batch_loss=False) for b in config.batch_sizes}
