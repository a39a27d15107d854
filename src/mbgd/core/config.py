"""Configuration: frozen dataclasses built once from a preset and the command line, then passed down.

Data, training and sweeps here; the scaling command's config is mbgd.core.scaling_config's.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DTYPES = ("float32", "float64")
OPTIMIZERS = ("sgd", "momentum", "adam")  # mbgd.core.optimizers
SCHEDULES = ("constant", "linear")
TARGETS = ("clean", "noisy")
MAX_POINTS = 10**7


class ConfigError(ValueError):
    """A configuration value a user can fix; the CLI turns it into a one-line usage error."""


@dataclass(frozen=True)
class DataSpec:
    """Where the data come from: the tutorial's synthetic line, or a CSV file."""

    n_points: int = 100  # the tutorial's torch.arange(-5, 5, 0.1): 100 points
    x_min: float = -5.0
    x_max: float = 5.0
    slope: float = -5.0
    intercept: float = 0.0
    noise: float = 0.4  # std of the Gaussian noise in the recorded targets, drawn right after seeding
    # The tutorial's Dataset trains on the noise-free line while the recorded loss uses the noisy Y;
    # "noisy" trains on the noisy Y instead.
    targets: str = "clean"
    # The tutorial computes its targets in float32 (-5 * X on float32 X), and a float64 run casts them.
    # "float64" computes the line (and adds the noise) in float64 from the same float32 X and draws: at the
    # tutorial's lr 0.1 batch size 1 amplifies the float32 targets' rounding some 3e7-fold within an epoch.
    targets_dtype: str = "float32"
    csv: str = ""  # a CSV path replaces the synthetic set
    features: tuple[str, ...] = ()  # CSV feature columns; empty: all but the target
    target: str = ""  # CSV target column; empty: the last column

    def __post_init__(self) -> None:
        require(1 <= self.n_points <= MAX_POINTS, f"n_points must be in 1..{MAX_POINTS}, got {self.n_points}")
        for name in ("x_min", "x_max", "slope", "intercept", "noise"):
            require(math.isfinite(getattr(self, name)), f"{name} must be finite, got {getattr(self, name)}")
        require(self.x_min < self.x_max, f"x_min ({self.x_min}) must be below x_max ({self.x_max})")
        require(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        require(self.targets in TARGETS, f"targets must be one of {', '.join(TARGETS)}, got {self.targets!r}")
        require(
            self.targets_dtype in DTYPES,
            f"targets_dtype must be one of {', '.join(DTYPES)}, got {self.targets_dtype!r}",
        )

    @property
    def is_csv(self) -> bool:
        return bool(self.csv)


@dataclass(frozen=True)
class TrainConfig:
    """One gradient-descent training: the tutorial's setup by default."""

    batch_size: int = 20
    lr: float = 0.1  # the tutorial's "step size"
    epochs: int = 20
    seed: int = 42  # the tutorial had no seed; its reference numbers use 42
    dtype: str = "float32"
    shuffle: bool = False  # the tutorial's DataLoader does not shuffle: batches run from x = -5 upward
    drop_last: bool = False
    init_w: float = -10.0
    init_b: float = -20.0
    # The update rule (mbgd.core.optimizers): the tutorial's plain SGD, heavy-ball momentum, or Adam; at a
    # constant lr or one decaying linearly to zero over the run's updates; `ema` > 0 evaluates and keeps the
    # exponential moving average of the iterates with that decay instead of the last iterate.
    optimizer: str = "sgd"
    momentum: float = 0.9  # the heavy-ball coefficient (optimizer "momentum" only)
    schedule: str = "constant"
    ema: float = 0.0
    data: DataSpec = field(default_factory=DataSpec)

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        require(math.isfinite(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("init_w", "init_b"):
            require(math.isfinite(getattr(self, name)), f"{name} must be finite, got {getattr(self, name)}")
        require(
            self.optimizer in OPTIMIZERS,
            f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
        )
        require(
            self.schedule in SCHEDULES,
            f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
        )
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(0 <= self.ema < 1, f"ema must be in [0, 1) (0: no averaging), got {self.ema}")

    def with_batch_size(self, batch_size: int) -> TrainConfig:
        return replace(self, batch_size=batch_size)

    def _unused(self) -> set[str]:
        """The fields that change nothing here: the data spec (flattened instead), momentum without the
        momentum rule, ema when off."""
        return (
            {"data"}
            | ({"momentum"} if self.optimizer != "momentum" else set())
            | ({"ema"} if not self.ema else set())
        )

    def as_params(self) -> dict[str, str]:
        """Every value that matters, data spec included, flattened to the preset/CLI names, as MLflow
        params."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._unused()}
        values.update(asdict(self.data))
        return {key: _param_text(value) for key, value in values.items()}


@dataclass(frozen=True)
class TrainRun:
    """A tracked `mbgd train`: the training plus the batch sizes it is compared with."""

    train: TrainConfig = field(default_factory=TrainConfig)
    compare_with: tuple[int, ...] = (1, 10, 20)
    experiment: str = ""  # empty: MLFLOW_EXPERIMENT_NAME, else mbgd's default experiment

    def __post_init__(self) -> None:
        bad = [b for b in self.compare_with if b < 1]
        require(not bad, f"compare_with batch sizes must be >= 1, got {bad}")

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The run's own batch size first, then the others it is compared with, each once."""
        others = [b for b in dict.fromkeys(self.compare_with) if b != self.train.batch_size]
        return (self.train.batch_size, *others)


def redact(url: str) -> str:
    """A URL with any password replaced by ***, fit for params, tags, errors and output."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 host keeps its brackets, a name its case
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless the condition holds."""
    if not condition:
        raise ConfigError(message)


def _param_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """'1,10,20' -> (1, 10, 20); '' -> ()."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return tuple(int(item) for item in items)
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None


def parse_name_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_DATA_KEYS = {f.name: f for f in fields(DataSpec)}
_TRAIN_KEYS = {f.name: f for f in fields(TrainConfig) if f.name != "data"}
_RUN_KEYS = {"compare_with", "experiment"}
# `mbgd lr-momentum`'s grid rows (mbgd.core.scaling_config.LrMomentumConfig): a preset may set them, and the
# other commands leave them alone, as `mbgd train` does a preset's sweep keys.
LR_MOMENTUM_KEYS = {"momenta": "int", "momentum_max": "float"}


def pop_lr_momentum_values(values: dict[str, Any]) -> dict[str, Any]:
    """The grid rows' settings given (not None), type-checked, taken out of `values`."""
    given = {key: values.pop(key, None) for key in LR_MOMENTUM_KEYS}
    return {
        key: _coerce(key, LR_MOMENTUM_KEYS[key], value) for key, value in given.items() if value is not None
    }


def load_preset(path: str | Path) -> dict[str, Any]:
    """Read an experiments/*.toml preset: flat keys named like the CLI options (with underscores)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"preset {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"preset {path} is not valid TOML: {error}") from None
    unknown = sorted(set(values) - _known_keys())
    if unknown:
        raise ConfigError(f"preset {path} has unknown keys: {', '.join(unknown)}")
    return values


def _known_keys() -> set[str]:
    return set(_DATA_KEYS) | set(_TRAIN_KEYS) | _RUN_KEYS | set(_SWEEP_KEYS) | set(LR_MOMENTUM_KEYS)


def build_train_config(values: dict[str, Any]) -> TrainConfig:
    """Defaults <- values (preset, then command line); types are checked, unknown keys refused.

    Sweep settings in the values are not training settings and are left to build_sweep_config.
    """
    data = {
        key: _coerce(key, _DATA_KEYS[key].type, value) for key, value in values.items() if key in _DATA_KEYS
    }
    train = {
        key: _coerce(key, _TRAIN_KEYS[key].type, value) for key, value in values.items() if key in _TRAIN_KEYS
    }
    unknown = sorted(set(values) - _known_keys())
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(unknown)}")
    return TrainConfig(**train, data=DataSpec(**data))


def build_train_run(values: dict[str, Any]) -> TrainRun:
    compare_with = values.get("compare_with", TrainRun.compare_with)
    if isinstance(compare_with, str):
        compare_with = parse_int_list(compare_with, "compare_with")
    return TrainRun(
        train=build_train_config(values),
        compare_with=tuple(_coerce("compare_with", "int", b) for b in compare_with),
        experiment=str(values.get("experiment", "") or ""),
    )


def _coerce(key: str, type_name: Any, value: Any) -> Any:
    """Check a preset value against the dataclass field's annotation (a string under postponed evaluation)."""
    type_name = str(type_name)
    if type_name == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if type_name == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if type_name == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if type_name.startswith("tuple[str"):
        if isinstance(value, str):
            return parse_name_list(value)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of column names, got {value!r}")
        return tuple(value)
    raise AssertionError(f"no coercion for {key}: {type_name}")


OBJECTIVES = ("auc", "final", "epochs_to", "updates_to")
PRUNERS = ("none", "median", "hyperband")


@dataclass(frozen=True)
class SweepConfig:
    """Per batch size, an Optuna study of the learning rate; then re-training the best over several seeds."""

    train: TrainConfig = field(default_factory=TrainConfig)  # everything that shapes a training; lr is tuned
    name: str = "mbgd-sweep"  # studies are named <name>-b<batch size>
    batch_sizes: tuple[int, ...] = (1, 10, 20)
    n_trials: int = 64  # finished trials per batch size: COMPLETE, or PRUNED when a pruner is on
    lr_min: float = 1e-4
    lr_max: float = 1.0
    objective: str = "auc"
    # updates_to: the training loss must fall to this fraction of its initial value (or within 5% of the
    # least-squares optimum's loss, when that is higher). 1e-4: four orders of magnitude, well above float32's
    # rounding of the noise-free fit.
    target_ratio: float = 1e-4
    # stop unpromising trials early; "none" keeps results comparable with unpruned sweeps
    pruner: str = "none"
    sampler_seed: int = 0
    population: int = 16  # trials asked at once and trained in one vectorised pass
    # A dense scan of this many log-spaced lrs (trained as populations) starts every study; the Optuna trials
    # then refine around its best. 512: steps of 1.8% over the sweep's four decades, 0.6% over scaling's
    # range. 0: none.
    scan: int = 512
    # How many TPE trials, without the scan, it takes to come within 5% of the scan's optimum: the median over
    # this many sampler seeds (trials_to_5pct). 0: not measured.
    tuning_cost_seeds: int = 10
    workers: int = 1  # local processes asking and telling against the same studies
    seeds: int = 5  # re-runs of each best lr (and of the tutorial's fixed lr)
    storage: str = ""  # any Optuna storage URL; empty: sqlite optuna.db beside the tracking store
    experiment: str = ""

    def __post_init__(self) -> None:
        require(bool(self.batch_sizes), "batch_sizes must list at least one batch size")
        bad = [b for b in self.batch_sizes if b < 1]
        require(not bad, f"batch sizes must be >= 1, got {bad}")
        require(
            len(set(self.batch_sizes)) == len(self.batch_sizes), f"batch sizes repeat: {self.batch_sizes}"
        )
        require(bool(self.name.strip()), "name must not be empty")
        require(self.n_trials >= 1, f"n_trials must be >= 1, got {self.n_trials}")
        require(self.population >= 1, f"population must be >= 1, got {self.population}")
        require(self.workers >= 1, f"workers must be >= 1, got {self.workers}")
        require(self.scan >= 0, f"scan must be >= 0 (0: no scan), got {self.scan}")
        require(self.scan != 1, "scan must be 0 (no scan) or at least 2 learning rates, got 1")
        require(self.tuning_cost_seeds >= 0, f"tuning_cost_seeds must be >= 0, got {self.tuning_cost_seeds}")
        require(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        for name in ("lr_min", "lr_max"):
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, f"{name} must be a finite number > 0, got {value}")
        require(self.lr_min < self.lr_max, f"lr_min ({self.lr_min}) must be below lr_max ({self.lr_max})")
        require(
            self.objective in OBJECTIVES,
            f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}",
        )
        require(self.pruner in PRUNERS, f"pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        require(0 < self.target_ratio < 1, f"target_ratio must be in (0, 1), got {self.target_ratio}")

    def study_name(self, batch_size: int) -> str:
        return f"{self.name}-b{batch_size}"

    def as_params(self) -> dict[str, str]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("train", "storage")}
        return {**self.train.as_params(), **{key: _param_text(value) for key, value in values.items()}}


_SWEEP_KEYS = {f.name: f for f in fields(SweepConfig) if f.name != "train"}


def build_sweep_config(values: dict[str, Any]) -> SweepConfig:
    """Defaults <- values; training keys shape every trial, sweep keys the studies."""
    values = dict(values)
    if isinstance(values.get("batch_sizes"), str):
        values["batch_sizes"] = parse_int_list(values["batch_sizes"], "batch_sizes")
    sweep: dict[str, Any] = {}
    for key in list(values):
        if key in _SWEEP_KEYS:
            value = values.pop(key)
            if key == "batch_sizes":
                sweep[key] = tuple(_coerce(key, "int", b) for b in value)
            else:
                sweep[key] = _coerce(key, _SWEEP_KEYS[key].type, value)
    values.pop("compare_with", None)
    return SweepConfig(train=build_train_config(values), **sweep)
