"""Optuna's private names, all in this one module: a trial's storage id, the trials whose heartbeat is stale,
and a population's trials (or a scan's) made and told in one transaction of the RDB storage's own rows.

They are used only on the Optuna versions the tests verify them on (VERIFIED_VERSIONS: tests/test_protocol.py
compares the rows written here with the storage's own calls' on sqlite and PostgreSQL). On any other version,
or with MBGD_PUBLIC_API=1 in the environment, `fast_paths()` is False and mbgd.studies.protocol takes Optuna's
public API: the storage's own create_new_trial and set_trial_state_values one trial at a time, ids from
get_trial_id_from_study_id_trial_number, stale heartbeats failed by optuna.storages.fail_stale_trials. The
results are the same either way (tests/test_unchanged_results.py runs both).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna

VERIFIED_VERSIONS = ("5.0.0", "5.1.0")
PUBLIC_API_ENV = "MBGD_PUBLIC_API"  # "1": the public path whatever the version (make bench measures both)


def fast_paths() -> bool:
    """Whether this Optuna is one the private paths below were verified on, and they are not turned off."""
    return os.environ.get(PUBLIC_API_ENV, "") != "1" and optuna.__version__ in VERIFIED_VERSIONS


def trial_ids(
    storage: optuna.storages.BaseStorage, study_id: int, trials: Sequence[optuna.trial.FrozenTrial]
) -> list[int]:
    """The storage's ids of `trials` (FrozenTrial keeps it private): read off the trials, or asked of the
    storage one number at a time."""
    if fast_paths():
        return [trial._trial_id for trial in trials]
    return [storage.get_trial_id_from_study_id_trial_number(study_id, trial.number) for trial in trials]


def stale_trial_ids(storage: optuna.storages.RDBStorage, study_id: int) -> set[int] | None:
    """The study's RUNNING trials whose heartbeat is older than the storage's grace period; None where this
    Optuna's private reading is not verified (then protocol fails them through fail_stale_trials)."""
    if not fast_paths():
        return None
    return set(storage._get_stale_trial_ids(study_id))


@dataclass(frozen=True)
class TrialWrite:
    """What a tell writes to one trial: its user attributes, then its state and values."""

    trial_id: int
    state: optuna.trial.TrialState
    values: Sequence[float] | None
    user_attrs: Mapping[str, object]


def create_trials(
    storage: optuna.storages.RDBStorage,
    study_id: int,
    templates: Sequence[optuna.trial.FrozenTrial],
    *,
    heartbeats: bool,
) -> list[int]:
    """Make the trials of `templates` (RUNNING ones, or finished ones with their values) in one transaction,
    with the rows the storage's own create_new_trial writes: the trials (numbered after the trials before
    them, as it numbers them, under the same lock of the study's row), their params (the distribution checked
    against the study's, as it checks each), attributes, values and, with `heartbeats`, their first
    heartbeats. Its own step costs a flush and four
    queries per trial, most of what asking a population cost. Returns their ids in the order numbered."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func, insert

    with _create_scoped_session(storage.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        trials = [
            models.TrialModel(
                study_id=study_id,
                number=None,
                state=template.state,
                datetime_start=template.datetime_start,
                datetime_complete=template.datetime_complete,
            )
            for template in templates
        ]
        session.add_all(trials)
        session.flush()
        # Counted after the insert, as the storage counts: on sqlite the row lock above is no lock, and a
        # program without the study's lock may add a trial until this transaction's first write.
        first_id = min(trial.trial_id for trial in trials)
        trials_before = (
            session.query(func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id, models.TrialModel.trial_id < first_id)
            .scalar()
        )
        for i, trial in enumerate(trials):
            trial.number = trials_before + i
        for name in {name for template in templates for name in template.params}:
            _check_distributions(session, models, study_id, name, templates)
        # the trials' own rows in one statement per table (a scan's 512 trials as ORM objects took 0.3 s)
        as_json = {}  # distribution_to_json once per distribution
        rows: dict[type, list[dict]] = {
            models.TrialParamModel: [],
            models.TrialUserAttributeModel: [],
            models.TrialSystemAttributeModel: [],
            models.TrialValueModel: [],
            models.TrialHeartbeatModel: [],
        }
        for trial, template in zip(trials, templates, strict=True):
            for name, value in template.params.items():
                distribution = template.distributions[name]
                if id(distribution) not in as_json:
                    as_json[id(distribution)] = optuna.distributions.distribution_to_json(distribution)
                rows[models.TrialParamModel].append(
                    {
                        "trial_id": trial.trial_id,
                        "param_name": name,
                        "param_value": distribution.to_internal_repr(value),
                        "distribution_json": as_json[id(distribution)],
                    }
                )
            for model, attrs in (
                (models.TrialUserAttributeModel, template.user_attrs),
                (models.TrialSystemAttributeModel, template.system_attrs),
            ):
                rows[model] += [
                    {"trial_id": trial.trial_id, "key": key, "value_json": json.dumps(value)}
                    for key, value in attrs.items()
                ]
            for objective, value in enumerate(template.values or ()):
                stored, value_type = models.TrialValueModel.value_to_stored_repr(value)
                rows[models.TrialValueModel].append(
                    {
                        "trial_id": trial.trial_id,
                        "objective": objective,
                        "value": stored,
                        "value_type": value_type,
                    }
                )
            if heartbeats:
                rows[models.TrialHeartbeatModel].append({"trial_id": trial.trial_id})
        for model, model_rows in rows.items():
            if model_rows:
                session.execute(insert(model), model_rows)
        trial_ids = [trial.trial_id for trial in trials]
    return trial_ids


def _check_distributions(session, models, study_id: int, name: str, templates) -> None:
    """Raise as the storage does when a template's distribution of param `name` is not compatible with the
    one the study's trials have (the first found) or, for a new param, with the first template's."""
    previous = (
        session.query(models.TrialParamModel)
        .join(models.TrialModel)
        .filter(models.TrialModel.study_id == study_id)
        .filter(models.TrialParamModel.param_name == name)
        .first()
    )
    given = list(
        {id(t.distributions[name]): t.distributions[name] for t in templates if name in t.params}.values()
    )
    first = optuna.distributions.json_to_distribution(previous.distribution_json) if previous else given[0]
    for distribution in given:
        optuna.distributions.check_distribution_compatibility(first, distribution)


def tell_together(storage: optuna.storages.RDBStorage, writes: Sequence[TrialWrite]) -> None:
    """The writes in one transaction (all or none), the rows set_trial_user_attr and set_trial_state_values
    write for each; raises UpdateFinishedTrialError as they do for a trial finished meanwhile."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        trial_ids = [write.trial_id for write in writes]

        def rows_of(model, *, for_update: bool = False):
            query = session.query(model).filter(model.trial_id.in_(trial_ids))
            return query.with_for_update() if for_update else query

        # three reads for the population, where the storage's own calls read each row on its own
        trials = {trial.trial_id: trial for trial in rows_of(models.TrialModel, for_update=True)}
        attrs = {(a.trial_id, a.key): a for a in rows_of(models.TrialUserAttributeModel)}
        values = {(v.trial_id, v.objective): v for v in rows_of(models.TrialValueModel)}
        for write in writes:
            trial_id = write.trial_id
            trial = trials.get(trial_id) or models.TrialModel.find_or_raise_by_id(trial_id, session)
            storage.check_trial_is_updatable(trial_id, trial.state)
            for key, value in write.user_attrs.items():
                if (trial_id, key) in attrs:
                    attrs[trial_id, key].value_json = json.dumps(value)
                else:
                    session.add(
                        models.TrialUserAttributeModel(
                            trial_id=trial_id, key=key, value_json=json.dumps(value)
                        )
                    )
            for objective, value in enumerate(write.values or ()):
                stored, value_type = models.TrialValueModel.value_to_stored_repr(value)
                if (trial_id, objective) in values:
                    values[trial_id, objective].value = stored
                    values[trial_id, objective].value_type = value_type
                else:
                    session.add(
                        models.TrialValueModel(
                            trial_id=trial_id, objective=objective, value=stored, value_type=value_type
                        )
                    )
            trial.state = write.state
            trial.datetime_complete = datetime.datetime.now()
