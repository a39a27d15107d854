"""Optuna storages and studies: where a sweep's studies live, opening (creating or resuming) them, and how
many of their trials are still to run.

A study records the settings its values depend on; resuming it under other settings is refused.
"""

from __future__ import annotations

import math
import os
import warnings

import optuna

from mbgd.core.config import ConfigError, SweepConfig, redact
from mbgd.runtime.processes import dispose_at_exit
from mbgd.runtime.sqlite_settings import sqlite_path, sync_at_checkpoints, use_write_ahead_log
from mbgd.studies import protocol
from mbgd.studies.protocol import FINISHED_STATES
from mbgd.studies.pruning import make_pruner

SETTINGS_ATTR = "mbgd_settings"

optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_storage() -> str:
    """sqlite optuna.db beside a sqlite tracking store, else in the working directory."""
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        folder = os.path.dirname(tracking_uri[len(prefix) :])
        return prefix + os.path.join(folder, "optuna.db") if folder else prefix + "optuna.db"
    return prefix + "optuna.db"


# Settings a study made before the optimizer axes existed does not record, at the values it trained with.
SETTINGS_BEFORE_OPTIMIZERS = {"optimizer": "sgd", "schedule": "constant"}


def study_settings(config: SweepConfig, batch_size: int) -> dict[str, object]:
    """What a study's values depend on: resuming it under other settings would mix incomparable trials."""
    train = config.train.with_batch_size(batch_size).as_params()
    return {
        "objective": config.objective,
        "lr_min": config.lr_min,
        "lr_max": config.lr_max,
        **{k: v for k, v in train.items() if SETTINGS_BEFORE_OPTIMIZERS.get(k) != v},
        "lr": "tuned",
        **({"target_ratio": config.target_ratio} if config.objective == "updates_to" else {}),
    }


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna storage for the URL, or a ConfigError a user can act on. The RDB storage itself: each study
    opened on it puts Optuna's cache before it, and mbgd.studies.protocol reads and writes it directly.

    Every URL is an RDB storage (sqlite, PostgreSQL, MySQL) with heartbeats, so a trial whose process died is
    failed and its budget retried. sqlite gets a write-ahead log and a busy timeout (protocol.BUSY_TIMEOUT_S):
    several local workers then share one file without "database is locked".
    """
    try:
        engine_kwargs = {}
        path = sqlite_path(url)
        if path is not None:
            use_write_ahead_log(path, timeout_s=protocol.BUSY_TIMEOUT_S)
            engine_kwargs = {"connect_args": {"timeout": protocol.BUSY_TIMEOUT_S}}
        with warnings.catch_warnings():  # heartbeats have been "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=protocol.HEARTBEAT_INTERVAL_S,
                grace_period=protocol.GRACE_PERIOD_S,
            )
        if path is not None:
            sync_at_checkpoints(storage.engine)
        dispose_at_exit(storage.engine)
        return storage
    except Exception as error:  # storages raise ValueError, ImportError or SQLAlchemy errors for bad URLs
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot open Optuna storage {redact(url)!r}: {first_line}") from None


def open_study(
    config: SweepConfig,
    batch_size: int,
    storage: optuna.storages.BaseStorage,
    *,
    sampler: optuna.samplers.BaseSampler | None = None,
    searched: dict[str, object] | None = None,
) -> optuna.Study:
    """Create the batch size's study, or resume it when its settings match. `sampler` replaces the lr
    study's TPE; `searched` adds to the recorded settings what a study searching more than the lr searches."""
    study = optuna.create_study(
        study_name=config.study_name(batch_size),
        storage=storage,
        sampler=sampler
        or optuna.samplers.TPESampler(seed=config.sampler_seed + batch_size, constant_liar=True),
        pruner=make_pruner(config.pruner, config.train.epochs),
        direction="minimize",
        load_if_exists=True,
    )
    settings = {**study_settings(config, batch_size), **(searched or {})}
    existing = study.user_attrs.get(SETTINGS_ATTR)
    if existing is None:
        study.set_user_attr(SETTINGS_ATTR, settings)
        return study
    changed = [
        _described(key, existing.get(key), settings.get(key))
        for key in sorted(settings.keys() | existing.keys())
        if not same_setting(existing.get(key), settings.get(key))
    ]
    if changed:
        raise ConfigError(
            f"study {study.study_name} exists with other settings ({', '.join(changed)}); "
            "use another --name or the same settings"
        )
    return study


def _described(key: str, recorded: object, now: object) -> str:
    """The key, with both values when they are numbers (lists and strings would make the line too long)."""
    numbers = all(isinstance(v, float | int) and not isinstance(v, bool) for v in (recorded, now))
    return f"{key} {recorded!r} recorded, {now!r} now" if numbers else key


# A setting computed from the data (the lr range's theory ends) can come out different in its last bits: CI
# refused a rerun of the same `mbgd scaling`, in the same process, over its lr_min. So can every lr of a grid
# over that range. A float within 1e-9 of another, relatively, is the same setting.
SETTING_REL_TOL = 1e-9


def same_setting(recorded: object, now: object) -> bool:
    """Equal, or equal but for floats within SETTING_REL_TOL of each other, in lists and dicts too. Integers
    and bools compare exactly (a bool is not a number here)."""
    if isinstance(recorded, float) or isinstance(now, float):
        numbers = all(isinstance(v, float | int) and not isinstance(v, bool) for v in (recorded, now))
        return numbers and math.isclose(recorded, now, rel_tol=SETTING_REL_TOL)
    if isinstance(recorded, list | tuple) and isinstance(now, list | tuple):
        return len(recorded) == len(now) and all(map(same_setting, recorded, now))
    if isinstance(recorded, dict) and isinstance(now, dict):
        return recorded.keys() == now.keys() and all(same_setting(recorded[k], now[k]) for k in recorded)
    if isinstance(recorded, bool) or isinstance(now, bool):
        return recorded is now
    return recorded == now


def remaining_trials(config: SweepConfig, storage: optuna.storages.BaseStorage) -> int:
    """Open (create or check) every batch size's study; returns the trials they still need to reach
    n_trials."""
    return sum(
        max(0, config.n_trials - finished_count(open_study(config, b, storage))) for b in config.batch_sizes
    )


def finished_count(study: optuna.Study) -> int:
    """Trials that count against --n-trials: COMPLETE ones, and PRUNED ones when a pruner is on."""
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
