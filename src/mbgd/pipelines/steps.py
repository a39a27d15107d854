"""The steps the tracked sweep and scaling share: the run that holds their studies (with its trial-run
writer, params and dataset), its figures and summary, the lr scans, and each best lr's model run.

Compute first, then hand the results to the tracking layer (mbgd.tracking.runs): nothing here calls MLflow
itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from mbgd.core.config import redact
from mbgd.core.data import RegressionData
from mbgd.core.history import History, descent_kind

SCAN_TITLE = "{objective} vs learning rate: the dense scan and the Optuna trials that refined it"


def study_storage_url(sweep_config) -> str:
    """The studies' storage URL (the sweep's, else mbgd's default), checked: one that cannot be reached or
    used stops the command before any run (mbgd.tracking.store.StoreUnavailable)."""
    from mbgd.studies.storage import default_storage
    from mbgd.tracking.store import OPTUNA_STORAGE, check

    storage_url = sweep_config.storage or default_storage()
    check(storage_url, OPTUNA_STORAGE)
    return storage_url


def open_study_storage(sweep_config) -> tuple[str, object]:
    """The studies' storage URL (study_storage_url) and the storage opened on it."""
    from mbgd.studies.storage import open_storage

    storage_url = study_storage_url(sweep_config)
    return storage_url, open_storage(storage_url)


@contextmanager
def studies_run(
    client,
    sweep_config,
    data: RegressionData,
    *,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, object],
    storage_url: str,
    trials: int,
    workers: int = 1,
    writer=None,
    parent=None,
) -> Iterator[tuple]:
    """The run that holds a sweep's or a scaling's studies, and the writer of its trial runs.

    The run is nested under `parent` (a RunRef), else the one `mlflow run` made, else a new top-level run in
    the sweep's experiment. It gets `params` with the storage (password redacted) and the dataset. `writer`
    is the command's (mbgd.pipelines.trial_runs), else one opened here for `trials` on `workers` and closed,
    every trial run written, before the run ends. Yields (run, writer).
    """
    from mbgd.pipelines import trial_run_writer
    from mbgd.tracking import models as tracking_models
    from mbgd.tracking import runs as tracking

    with ExitStack() as stack:
        run = stack.enter_context(
            tracking.run_scope(
                client,
                experiment_name=sweep_config.experiment,
                run_name=run_name,
                tags=tags,
                parent=parent,
                adopt_run_id="" if parent else tracking.run_id_from_mlflow_run(),
            )
        )
        if writer is None:  # inside the run's scope: its trial runs are written before it ends
            writer = stack.enter_context(trial_run_writer.open_writer(trials=trials, workers=workers))
        tracking.log_values(client, run.run_id, params={**params, "storage": redact(storage_url)})
        tracking_models.log_dataset(client, run.run_id, data)
        yield run, writer


def log_figures(client, run_id: str, figures: Mapping) -> dict[str, bytes]:
    """Each figure as the run's artifact, by artifact file; returns them as PNG files' bytes (rendered once:
    a command that also writes them to a folder writes these)."""
    from mbgd.reports import plots
    from mbgd.tracking import artifacts

    pngs = {artifact_file: plots.png_bytes(figure) for artifact_file, figure in figures.items()}
    for artifact_file, png in pngs.items():
        artifacts.log_png(client, run_id, png, artifact_file)
    return pngs


def log_summary(client, run_id: str, summary: dict, markdown: str, *, name: str) -> None:
    """The summary as <name>.json and its markdown as <name>.md, which is also the run's description."""
    from mbgd.tracking import artifacts
    from mbgd.tracking import runs as tracking

    artifacts.log_dict(client, run_id, summary, f"{name}.json")
    artifacts.log_text(client, run_id, markdown, f"{name}.md")
    tracking.describe(client, run_id, markdown)


def log_scans(client, run_id: str, scans, drawn, *, figure_file: str) -> bytes | None:
    """Each scan as lr_scan/<study>.csv, and their figure (`drawn`: draw_scans's Pending) as `figure_file`;
    returns the figure's PNG bytes, None without scans."""
    from mbgd.tracking import artifacts

    if not scans:
        return None
    for lr_scan in scans:
        artifacts.log_text(client, run_id, lr_scan.to_csv(), f"lr_scan/{lr_scan.study_name}.csv")
    png = drawn.result()
    artifacts.log_png(client, run_id, png, figure_file)
    return png


def draw_scans(scans, studies, *, title: str, worker=None):
    """The figure of the scans with the studies' trials on them, as a PNG file's bytes: a Pending, drawn by
    `worker` (mbgd.runtime.compute_worker) while the caller goes on, else here when its result is asked
    for."""
    from mbgd.reports import scan_plots
    from mbgd.runtime.compute_worker import or_here

    trials = {study.study_name: completed_trials(study) for study in studies}
    return or_here(worker).submit(scan_plots.lr_scan_png, scans, trials, title=title)


def completed_trials(study) -> list[tuple[float, float]]:
    """(lr, value) of the study's COMPLETE trials."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [(float(t.params["lr"]), float(t.value)) for t in complete]


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
    from mbgd.tracking import metric_values
    from mbgd.tracking import models as tracking_models
    from mbgd.tracking import runs as tracking

    run_tags = {"regime": descent_kind(history.batch_size, data.n), **tags}
    with tracking.run_scope(client, run_name=run_name, parent=parent, tags=run_tags) as run:
        metrics = [
            *metric_values.history_metrics(history, weight_names=data.feature_names),
            *metric_values.scalars(results),
        ]
        tracking.log_values(client, run.run_id, params=params, metrics=metrics)
        if history.diverged:
            return ""
        return tracking_models.log_model(
            client,
            run.run_id,
            history.w,
            history.b,
            data.feature_names,
            target_name=data.target_name,
            example=data.x[:2].tolist(),
            params=params,
            metrics=metric_values.model_metrics(metrics),
        )
