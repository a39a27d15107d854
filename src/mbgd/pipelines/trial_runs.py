"""A trial's child run end to end: what it holds (TrialRun, from a told trial), how it is written once and
backfilled, and how it is found again (mbgd.pipelines.trial_run_writer writes a sweep's trial runs, in a
helper process while the sweep's process trains on).

A trial's run costs MLflow a create, one log_batch and an end: about 12 ms of CPU on sqlite, more than a
population member costs to train; a population's runs written in one transaction
(mbgd.tracking.mlflow_internals) cost about a millisecond each. Every MLflow call goes through the tracking
layer (mbgd.tracking).

Imports neither MLflow nor torch at the top: the helper process imports this module before MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace

# as in mlflow.utils.mlflow_tags; named here so as not to import MLflow
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
TRIAL_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}  # by Optuna state


@dataclass(frozen=True)
class TrialRun:
    """One trial's child run, complete: built by the sweep, written by whichever process writes it."""

    study_name: str
    number: int
    experiment_id: str
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    losses: list[float]  # the `loss` series, one per epoch
    results: dict[str, float]  # scalar metrics
    status: str  # what the run ends as: FINISHED, KILLED (pruned) or FAILED
    run_id: str = (
        ""  # the id its trial points at (OnTrialRuns.run_ids), written with it where the store takes one
    )

    @property
    def key(self) -> tuple[str, int]:
        return self.study_name, self.number


def from_told_trial(
    parent, batch_size: int, study_name: str, record, *, n: int, dtype: str, label: str = ""
) -> TrialRun:
    """One told trial (a sweep.TrialRecord) as a child run of `parent`: lr, batch size, trial and study as
    params, the `loss` per epoch, `objective`, `trial` and `diverged`; it ends with the status of its Optuna
    state (pruned: KILLED).

    `label` prefixes the run's name where one parent holds several studies per batch size (mbgd scaling)."""
    from mbgd.core.history import descent_kind

    return TrialRun(
        study_name=study_name,
        number=record.number,
        experiment_id=parent.experiment_id,
        name=f"{label}b{batch_size}-trial{record.number}-lr{record.lr:.3g}",
        tags={
            MLFLOW_PARENT_RUN_ID: parent.run_id,
            "optuna.state": record.state,
            "regime": descent_kind(batch_size, n),
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
        run_id=record.run_id,
    )


@dataclass
class OnTrialRuns:
    """A study's `on_trials` callback (mbgd.studies.sweep.OnTrials): the runs of each population of told
    trials, as children of `parent`, handed to `hand_over` (a writer's submit); `label_of` gives a study's
    label (from_told_trial).

    Before the tell, `run_ids` names each trial's run, so that the trial points at it (its user attr
    mlflow_run_id): ids chosen now where the store takes them (the run is written later, by the writer or a
    back-fill, with that id); elsewhere MLflow chooses the id when the run is made, so the population's runs
    are written here and now, and those of trials that were then not told (another worker failed them
    meanwhile) deleted once the tell is done."""

    hand_over: Callable[[list[TrialRun]], object]
    parent: object
    client: object
    n: int
    dtype: str
    label_of: Callable[[str], str] = lambda study_name: ""
    _written_before_tell: dict[tuple[str, int], str] = field(default_factory=dict)

    def runs(self, batch_size: int, study_name: str, records) -> list[TrialRun]:
        label = self.label_of(study_name)
        return [
            from_told_trial(self.parent, batch_size, study_name, r, n=self.n, dtype=self.dtype, label=label)
            for r in records
        ]

    def run_ids(self, batch_size: int, study_name: str, records) -> list[str]:
        from mbgd.tracking import runs as tracking

        chosen = tracking.new_run_ids(self.client, len(records))
        if chosen is not None:
            return chosen
        runs = self.runs(batch_size, study_name, records)
        written = write_all(self.client, runs)
        self._written_before_tell = dict(zip((run.key for run in runs), written, strict=True))
        return written

    def untold(self) -> None:
        """The population ended without a tell (interrupted, or the storage failed): the runs written for it
        are deleted, as far as the store still takes it."""
        written, self._written_before_tell = self._written_before_tell, {}
        for run_id in written.values():
            with suppress(Exception):
                self.client.delete_run(run_id)

    def __call__(self, batch_size: int, study_name: str, records) -> None:
        runs = self.runs(batch_size, study_name, records)
        written, self._written_before_tell = self._written_before_tell, {}
        if not written:
            self.hand_over(runs)
            return
        told = {run.key for run in runs}
        for key, run_id in written.items():
            if key not in told:  # written, but another worker failed its trial meanwhile
                self.client.delete_run(run_id)


def write(client, run: TrialRun) -> str:
    (run_id,) = write_all(client, [run])
    return run_id


def write_all(client, runs: Sequence[TrialRun]) -> list[str]:
    """Write the runs (a told population's), in one transaction where the store allows; returns their ids."""
    from mbgd.tracking import metric_values
    from mbgd.tracking import runs as tracking
    from mbgd.tracking.records import FinishedRun

    return tracking.log_finished_runs(
        client,
        [
            FinishedRun(
                experiment_id=run.experiment_id,
                name=run.name,
                tags=run.tags,
                params=run.params,
                metrics=[*metric_values.series("loss", run.losses), *metric_values.scalars(run.results)],
                status=run.status,
                run_id=run.run_id,
            )
            for run in runs
        ],
    )


def write_once(client, run: TrialRun) -> str:
    """Write the run unless a process that died wrote it already: a finished run of this trial under the same
    parent is kept; one it left unfinished (killed between create and end) is deleted and written anew. It
    gets the id its trial points at unless a deleted run has it (a finished trial's attrs cannot change)."""
    from mlflow.entities import ViewType

    from mbgd.tracking import runs as tracking

    parent = run.tags[MLFLOW_PARENT_RUN_ID]
    found = tracking.search_runs(
        client,
        run.experiment_id,
        f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' and attributes.run_name = '{run.name}'",
    )
    kept = None
    for existing in found:
        if (
            kept is None
            and existing.info.status == run.status
            and existing.data.params.get("trial") == str(run.number)
        ):
            kept = existing.info.run_id
        else:
            tracking.delete_run(client, existing, end_running=True)
    if kept:
        return kept
    if run.run_id and tracking.search_runs(
        client, run.experiment_id, f"attributes.run_id = '{run.run_id}'", run_view_type=ViewType.ALL
    ):  # the id its trial points at is a deleted run's (kept by MLflow): a new one
        run = replace(run, run_id="")
    return write(client, run)


def runs_by_trial(client, experiment_id: str, study_name: str) -> dict[int, list]:
    """The experiment's runs of the study's trials (found by their params, under any parent), by trial
    number."""
    from mbgd.tracking import runs as tracking

    found: dict[int, list] = {}
    for run in tracking.all_runs(client, experiment_id, f"params.study_name = '{study_name}'"):
        if "trial" in run.data.params:
            found.setdefault(int(run.data.params["trial"]), []).append(run)
    return found


def find(client, experiment_id: str, study_name: str, trial: int) -> str | None:
    """The id of the trial's run logged by an earlier sweep process (found by its params)."""
    from mbgd.tracking import runs as tracking

    runs = tracking.search_runs(
        client,
        experiment_id,
        f"params.study_name = '{study_name}' and params.trial = '{trial}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def backfill(client, runs: Sequence[TrialRun], existing: dict[int, list]) -> dict[tuple[str, int], str]:
    """Write each run whose trial has no run of its status among `existing` (runs_by_trial): a process killed
    between telling a trial and writing its run left it without one. Such a trial's other runs (one ended
    KILLED before it was finished) are deleted; returns the written runs' ids by (study name, trial
    number)."""
    from mbgd.tracking import runs as tracking

    written = {}
    for run in runs:
        present = existing.get(run.number, [])
        if any(r.info.status == run.status for r in present):
            continue
        for leftover in present:
            tracking.delete_run(client, leftover)
        written[run.key] = write_once(client, run)
    return written


def backfill_studies(
    client,
    parent,
    studies,
    *,
    n: int,
    dtype: str,
    label_of: Callable[[str], str] = lambda study_name: "",
    known: Mapping[tuple[str, int], str] | None = None,
) -> dict[tuple[str, int], str]:
    """Write, as children of `parent` (the command's run), the run of every finished trial that has none in
    the experiment (its process was killed between telling the trial and writing the run: a worker, or an
    earlier sweep or scaling), rebuilt from what the trial stored when told (sweep.stored_record); `studies`
    are (batch size, study) pairs, `label_of` as in OnTrialRuns; returns their ids by (study name,
    trial). The trials in `known` (by (study name, trial): runs this process wrote) have theirs: a study with
    no other finished trial is not searched."""
    from mbgd.studies import protocol, sweep

    written = {}
    for batch_size, study in studies:
        records = [
            sweep.stored_record(t, batch_size)
            for t in study.get_trials(deepcopy=False, states=protocol.FINISHED_STATES)
        ]
        label = label_of(study.study_name)
        runs = [
            from_told_trial(parent, batch_size, study.study_name, record, n=n, dtype=dtype, label=label)
            for record in records
            if record is not None
        ]
        runs = [run for run in runs if run.key not in (known or {})]
        if not runs:
            continue
        existing = runs_by_trial(client, parent.experiment_id, study.study_name)
        written |= backfill(client, runs, existing)
    return written
