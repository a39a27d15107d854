"""The study loop: Optuna studies of the learning rate, one per batch size, asked, trained as populations
and told until each has its trials.

Pure of MLflow: what a sweep trains is reported through the `on_trials` and `progress` callbacks. Storages
and studies are opened by mbgd.studies.storage, pruned by mbgd.studies.pruning; seeds and summary are
mbgd.studies.sweep_summary's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import optuna

from mbgd.core.config import SweepConfig
from mbgd.core.data import RegressionData
from mbgd.core.objectives import intermediate_value, objective_floor, objective_value
from mbgd.core.train import History, fit_population
from mbgd.studies import optuna_internals, protocol
from mbgd.studies.protocol import AskedTrial
from mbgd.studies.pruning import pruning_hook
from mbgd.studies.storage import open_study, same_setting

WAIT_POLL_S = 1.0  # how often a worker with nothing to ask checks whether other workers' trials ended
REFINEMENT_ATTR = "mbgd_refinement"  # the lr range a scanned study's trials sample, and the scan's best
RUN_ID_ATTR = "mlflow_run_id"  # a told trial's user attr: the id of its MLflow run


@dataclass(frozen=True)
class TrialRecord:
    """One told trial, for the tracking layer."""

    number: int
    lr: float
    value: float
    state: str
    history: History
    run_id: str = ""  # its MLflow run's, when the on_trials callback named one before the tell


# (batch size, study name, records), called with each population's told trials. A callback with a `run_ids`
# method (same arguments, called before the tell with every record of the population) names their MLflow runs
# first: each trial is told with its run's id as the user attr RUN_ID_ATTR; its `untold()`, if it has one, is
# called when the population ends without a tell.
OnTrials = Callable[[int, str, list[TrialRecord]], None]
FINISHED_STATE_NAMES = {state.name for state in protocol.FINISHED_STATES}


StudyProgress = Callable[[int, int, int], None]  # (batch size, COMPLETE trials, n_trials)


def run_study(
    config: SweepConfig,
    data: RegressionData,
    batch_size: int,
    storage: optuna.storages.BaseStorage,
    *,
    on_trials: OnTrials | None = None,
    progress: StudyProgress | None = None,
) -> optuna.Study:
    """Ask, train and tell populations of trials until the study has n_trials finished ones.

    Safe with any number of workers (processes or machines) on one storage: a worker takes only budget no
    other worker holds (mbgd.studies.protocol says why that is exact) and waits while others finish theirs. A
    trial whose worker died is failed (same host: its process is gone; another host: its heartbeat stopped)
    and its budget asked again.
    """
    study = open_study(config, batch_size, storage)
    train_config = config.train.with_batch_size(batch_size)
    floor = objective_floor(config.objective, data)
    distribution = trial_distribution(study, config)
    while True:
        trials: list[AskedTrial] = []
        try:
            done = protocol.reserve(
                study,
                storage,
                config.n_trials,
                config.population,
                distribution,
                lambda count: propose_lrs(study, count, distribution),
                trials,
            )
            if progress:
                progress(batch_size, done, config.n_trials)
            if trials:
                records = train_population(
                    config,
                    train_config,
                    data,
                    study,
                    storage,
                    trials,
                    floor,
                    run_ids=getattr(on_trials, "run_ids", None),
                )
        except BaseException:  # interrupted anywhere between ask and tell: nothing of ours stays RUNNING
            protocol.fail_unfinished(study, storage, trials)
            if hasattr(on_trials, "untold"):  # runs it wrote for trials that were then not told
                on_trials.untold()
            raise
        if not trials:
            if done >= config.n_trials:
                return study
            # the rest of the budget is with other workers: wait in case one of them dies
            time.sleep(WAIT_POLL_S)
            continue
        if on_trials:
            on_trials(batch_size, study.study_name, records)
        finished = done + sum(record.state in FINISHED_STATE_NAMES for record in records)
        if finished >= config.n_trials:
            # The budget is finished (no trial of it can still run: they are all finished), which is what
            # asking again would find, one lock and two reads of the study later.
            if progress:
                progress(batch_size, finished, config.n_trials)
            return study


def lr_distribution(config: SweepConfig) -> optuna.distributions.FloatDistribution:
    return optuna.distributions.FloatDistribution(config.lr_min, config.lr_max, log=True)


def trial_distribution(study: optuna.Study, config: SweepConfig) -> optuna.distributions.FloatDistribution:
    """Where the study's trials sample the lr: the range its scan narrowed it to, else [lr_min, lr_max]."""
    refinement = study.user_attrs.get(REFINEMENT_ATTR)
    if not refinement:
        return lr_distribution(config)
    return optuna.distributions.FloatDistribution(refinement["lr_min"], refinement["lr_max"], log=True)


def prepare_refinement(
    study: optuna.Study, storage: optuna.storages.BaseStorage, lr_scan, *, with_scan_study: bool = True
) -> None:
    """Make a new study refine its scan (mbgd.core.scan.LrScan): record the narrowed range the trials sample
    (between the best scan point's neighbours), enqueue the best scan lr as the first trial and, with
    `with_scan_study`, record the scan as the companion study `<study>-scan` (scan_study). A study that
    already has trials or a range keeps them (a resumed study goes on as it began)."""
    if study.user_attrs.get(REFINEMENT_ATTR) is not None or study.get_trials(deepcopy=False):
        return
    low, high = lr_scan.refinement_range()
    study.set_user_attr(
        REFINEMENT_ATTR,
        {
            "lr_min": low,
            "lr_max": high,
            "scan_points": len(lr_scan.lrs),
            "scan_best_lr": lr_scan.best_lr,
            "scan_best_value": lr_scan.best_value,
            **({"scan_study": scan_study(study, storage, lr_scan).study_name} if with_scan_study else {}),
        },
    )
    study.enqueue_trial({"lr": lr_scan.best_lr})


SCAN_STUDY_SUFFIX = "-scan"


def scan_study(study: optuna.Study, storage: optuna.storages.BaseStorage, lr_scan) -> optuna.Study:
    """The scan as a study of its own beside `study`, `<study>-scan`: one COMPLETE trial per scanned lr (its
    objective as the value; `diverged` and, for updates_to, `first_touch` as user attrs) over the scan's whole
    lr range, so that optuna-dashboard and optuna.visualization show the landscape the refinement's narrow
    range is cut from. `--n-trials` counts only the refining study's trials. Made once: a companion that has
    every scanned lr is left as it is (one that has some gets the others)."""
    companion = optuna.create_study(
        study_name=study.study_name + SCAN_STUDY_SUFFIX,
        storage=storage,
        direction="minimize",
        load_if_exists=True,
    )
    # an interrupted slow path (add_trials, one by one) left some: the rest are added
    recorded = [t.params.get("lr") for t in companion.get_trials(deepcopy=False)]
    if len(recorded) >= len(lr_scan.lrs):
        return companion
    companion.set_user_attr("scan_of", study.study_name)
    companion.set_user_attr("objective", lr_scan.objective)
    distribution = optuna.distributions.FloatDistribution(min(lr_scan.lrs), max(lr_scan.lrs), log=True)
    templates = [
        optuna.trial.create_trial(
            params={"lr": lr},
            distributions={"lr": distribution},
            value=value,
            user_attrs={
                "diverged": diverged,
                **({"first_touch": touch} if lr_scan.objective == "updates_to" else {}),
            },
        )
        for lr, value, touch, diverged in zip(
            lr_scan.lrs, lr_scan.values, lr_scan.first_touch, lr_scan.diverged, strict=True
        )
        if not any(same_setting(lr, known) for known in recorded)
    ]
    add_finished_trials(storage, companion, templates)
    return companion


def add_finished_trials(
    storage: optuna.storages.BaseStorage, study: optuna.Study, templates: Sequence[optuna.trial.FrozenTrial]
) -> None:
    """Add finished trials (`optuna.trial.create_trial`'s) to the study, as `study.add_trials` would: on a
    database, where mbgd.studies.optuna_internals is verified, in one transaction (Optuna's own calls cost
    about 10 ms a trial on sqlite, five seconds for a 512-point scan); elsewhere through add_trials."""
    if (
        isinstance(storage, optuna.storages.RDBStorage)
        and optuna_internals.fast_paths()
        and not any(t.intermediate_values for t in templates)
    ):
        optuna_internals.create_trials(
            storage, protocol.study_id_of(storage, study), templates, heartbeats=False
        )
    else:
        study.add_trials(templates)


def propose_lrs(
    study: optuna.Study, count: int, distribution: optuna.distributions.FloatDistribution
) -> list[float]:
    """The study's sampler's next `count` learning rates, proposed on an in-memory copy of the study.

    The same proposals as asking `count` trials of the study and then suggesting each one's lr (other workers'
    running trials included, and with TPE's constant liar the earlier proposals too), without the storage
    round trips: on a database every ask and suggest re-reads every running trial, so a population of K costs
    K^2 reads.
    """
    mirror = optuna.create_study(direction="minimize", sampler=study.sampler)
    # WAITING trials (enqueued) are claimed as they are (claim_waiting), not proposed again
    mirror.add_trials(
        t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING
    )
    proposals = [mirror.ask() for _ in range(count)]
    return [trial.suggest_float("lr", distribution.low, distribution.high, log=True) for trial in proposals]


def ask_within_budget(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    config: SweepConfig,
    wanted: int,
    asked: list[AskedTrial] | None = None,
    *,
    distribution: optuna.distributions.FloatDistribution | None = None,
) -> list[AskedTrial]:
    """Take up to `wanted` RUNNING trials of the budget no other worker holds (enqueued ones first, then new
    ones with the sampler's learning rates, each created in one storage write with its owner's attributes),
    each appended to `asked` at once so that an interruption can fail it; [] when other workers hold the
    rest."""
    trials = asked if asked is not None else []
    distribution = distribution or lr_distribution(config)
    first = len(trials)
    protocol.reserve(
        study,
        storage,
        config.n_trials,
        wanted,
        distribution,
        lambda count: propose_lrs(study, count, distribution),
        trials,
    )
    return trials[first:]


def train_population(
    config, train_config, data, study, storage, trials: Sequence[AskedTrial], floor, *, run_ids=None
) -> list[TrialRecord]:
    """Train the trials' learning rates together, then tell each its value or its pruning (heartbeats on until
    they are told), with its MLflow run's id when `run_ids` (OnTrials) names them; returns the records of
    those told (protocol.tell: a trial another worker failed meanwhile is not)."""
    on_epoch = None
    if config.pruner != "none":  # reports and pruning decisions go through Optuna's Trial
        on_epoch = pruning_hook(
            config.objective, [optuna.trial.Trial(study, t.trial_id) for t in trials], train_config.epochs
        )
    try:
        with protocol.heartbeats(storage, [t.trial_id for t in trials]):
            histories = fit_population(
                train_config,
                data,
                [t.lr for t in trials],
                on_epoch=on_epoch,
                record_updates=config.objective == "updates_to",
            )
            outcomes = {}
            for trial, history in zip(trials, histories, strict=True):
                outcome, record = trial_outcome(config, train_config.epochs, floor, trial, history)
                outcomes[trial.trial_id] = (outcome, record)
            if run_ids:
                named = run_ids(train_config.batch_size, study.study_name, [r for _, r in outcomes.values()])
                for (trial_id, (outcome, record)), run_id in zip(list(outcomes.items()), named, strict=True):
                    outcome.user_attrs[RUN_ID_ATTR] = run_id
                    outcomes[trial_id] = (outcome, replace(record, run_id=run_id))
            told = protocol.tell(study, storage, [outcome for outcome, _ in outcomes.values()])
    except BaseException:
        protocol.fail_unfinished(study, storage, trials)
        raise
    return [outcomes[outcome.trial.trial_id][1] for outcome in told]


def trial_outcome(config: SweepConfig, epochs: int, floor: float, trial: AskedTrial, history: History):
    """What to tell the trial (protocol.Outcome) and its record: COMPLETE with its objective, PRUNED, or FAIL
    (a non-finite value; no objective has one today). Its per-epoch losses go with it, so that a rerun can
    write its run should this process die before it does (stored_record)."""
    value = objective_value(
        config.objective, history, epochs=epochs, floor=floor, target_ratio=config.target_ratio
    )
    attrs: dict = {protocol.LOSSES_ATTR: list(history.epoch_losses)}
    if history.diverged:  # set only where they say something: one storage write each
        attrs |= {"diverged": True, "diverged_reason": history.diverged_reason}
    if history.stopped_epoch is not None and not history.diverged:
        value = intermediate_value(config.objective, history.epoch_losses)
        attrs["pruned_at_epoch"] = history.stopped_epoch
        state = optuna.trial.TrialState.PRUNED
    elif math.isfinite(value):
        state = optuna.trial.TrialState.COMPLETE
    else:
        state = optuna.trial.TrialState.FAIL
    outcome = protocol.Outcome(
        trial, state, value if state == optuna.trial.TrialState.COMPLETE else None, attrs
    )
    return outcome, TrialRecord(trial.number, history.lr, value, state.name, history)


def stored_record(trial: optuna.trial.FrozenTrial, batch_size: int) -> TrialRecord | None:
    """A told trial's record rebuilt from what it stored (trial_outcome): enough for its child run; None for a
    trial told by an mbgd that did not store its losses."""
    losses = trial.user_attrs.get(protocol.LOSSES_ATTR)
    if losses is None:
        return None
    lr = float(trial.params["lr"])
    history = History(
        lr=lr,
        batch_size=batch_size,
        updates_per_epoch=0,
        samples_per_epoch=0,
        epoch_losses=list(losses),
        diverged=bool(trial.user_attrs.get("diverged", False)),
    )
    value = trial.value if trial.value is not None else math.nan
    run_id = str(trial.user_attrs.get(RUN_ID_ATTR, ""))
    return TrialRecord(trial.number, lr, float(value), trial.state.name, history, run_id)
