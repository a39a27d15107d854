"""The `mbgd scaling` command's config: batch orders and regimes, what scaling changes from the sweep's
defaults (and why), and the frozen ScalingConfig built once from them, a preset and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mbgd.core.config import TARGETS, SweepConfig, build_sweep_config, pop_lr_momentum_values, require

if TYPE_CHECKING:
    from mbgd.core.data import RegressionData

ORDERS = ("fixed", "shuffled")  # the tutorial's batch order (x = -5 upward), and reshuffled every epoch
BOTH = "both"
# Training targets -> the scaling regime they put SGD in: on the noise-free line every per-sample gradient
# vanishes at the optimum (interpolation); on the noisy Y they do not, and a constant step leaves a floor.
REGIMES = {"clean": "interpolation", "noisy": "noisy"}
# What `mbgd scaling` changes from the sweep's defaults, and why.
SCALING_DEFAULTS: dict[str, Any] = {
    "name": "mbgd-scaling",  # studies are <name>-<order>-<regime>-b<batch size>
    "batch_sizes": (1, 2, 3, 4, 5, 10, 20, 25, 50, 100),  # log-spaced from SGD to the full batch of 100
    "objective": "updates_to",
    # the full batch needs about 24 updates to come within 5% of the noisy optimum at its best lr
    "epochs": 30,
    # lr_min, lr_max: from the data's theory unless given (ScalingConfig.lr_from_theory)
    "n_trials": 20,  # 10 random trials, then 10 guided by TPE: 40 studies in a few minutes
    "population": 10,  # = TPE's 10 startup trials, so the second population is the guided one
    "seeds": 3,  # re-runs of each best lr: the noise draw and the shuffled order change with the seed
}


@dataclass(frozen=True)
class ScalingConfig:
    """Updates to a target loss vs batch size: an lr study (objective updates_to) per batch size, order,
    regime.

    `sweep` holds what every study shares (grid, trials, lr range, seeds, storage, target ratio, training);
    `study_config` sets the batch order and the training targets of one (order, regime).
    """

    sweep: SweepConfig = field(default_factory=lambda: build_sweep_config(SCALING_DEFAULTS))
    orders: tuple[str, ...] = ORDERS
    targets: tuple[str, ...] = TARGETS
    # The lr bounds not given, set from the data once it is loaded (resolve_lr_range):
    # from half of SGD's theoretical best step 1/beta to twice full-batch descent's stability limit
    # 2/lambda_1. The tuned lrs lie in a decade or so there; the sweep's four decades would leave half the
    # trials diverging or crawling.
    lr_from_theory: tuple[str, ...] = ("lr_min", "lr_max")
    # The noisy regime's lr_min, when left to theory (resolve_lr_range): the interpolation theory's step does
    # not bound it, since there the best constant lr trades speed against the noise floor; None: lr_min.
    noisy_lr_min: float | None = None
    widen_noisy: bool = (
        True  # False: the noisy regime keeps lr_min (lr-momentum's grid reaches lower already)
    )

    def __post_init__(self) -> None:
        require(
            self.sweep.objective == "updates_to",
            f"scaling tunes for updates_to, got {self.sweep.objective!r}",
        )
        require(
            bool(self.orders) and set(self.orders) <= set(ORDERS),
            f"orders must be among {ORDERS}, got {self.orders}",
        )
        require(
            bool(self.targets) and set(self.targets) <= set(TARGETS),
            f"targets must be among {TARGETS}, got {self.targets}",
        )

    def study_config(self, order: str, targets: str) -> SweepConfig:
        """The sweep of one batch order and one regime; its studies are <name>-<order>-<regime>-b<B>."""
        train = replace(
            self.sweep.train,
            shuffle=order == "shuffled",
            data=replace(self.sweep.train.data, targets=targets),
        )
        lr_min = self.noisy_lr_min if targets == "noisy" and self.noisy_lr_min else self.sweep.lr_min
        return replace(
            self.sweep, train=train, name=f"{self.sweep.name}-{order}-{REGIMES[targets]}", lr_min=lr_min
        )

    def study_labels(self) -> dict[str, str]:
        """Each study's label in its trial runs' names, "<order>-<regime>-", by study name."""
        return {
            self.study_config(order, targets).study_name(batch_size): f"{order}-{REGIMES[targets]}-"
            for order in self.orders
            for targets in self.targets
            for batch_size in self.sweep.batch_sizes
        }

    def as_params(self) -> dict[str, str]:
        """The sweep's params with the command's own `order` and `targets` (as `mlflow run` logs them too)."""
        params = {
            key: value for key, value in self.sweep.as_params().items() if key not in ("shuffle", "targets")
        }
        order = BOTH if len(self.orders) == len(ORDERS) else self.orders[0]
        targets = BOTH if len(self.targets) == len(TARGETS) else self.targets[0]
        noisy = (
            {"lr_min_noisy": repr(self.noisy_lr_min)} if self.noisy_lr_min and "noisy" in self.targets else {}
        )
        return {**params, "order": order, "targets": targets, **noisy}


def build_scaling_config(values: dict[str, Any]) -> ScalingConfig:
    """Scaling defaults <- values; `order` and `targets` take one of their values or "both" (the default).

    A preset's `shuffle` picks the order when no `order` is given.
    """
    lr_from_theory = tuple(key for key in ("lr_min", "lr_max") if values.get(key) is None)
    values = {**SCALING_DEFAULTS, **{key: value for key, value in values.items() if value is not None}}
    order = values.pop("order", None)
    shuffle = values.pop("shuffle", None)
    if order is None:
        order = BOTH if shuffle is None else ("shuffled" if shuffle else "fixed")
    targets = values.pop("targets", None) or BOTH
    require(order in (*ORDERS, BOTH), f"order must be one of {', '.join((*ORDERS, BOTH))}, got {order!r}")
    require(
        targets in (*TARGETS, BOTH), f"targets must be one of {', '.join((*TARGETS, BOTH))}, got {targets!r}"
    )
    return ScalingConfig(
        sweep=build_sweep_config(values),
        orders=ORDERS if order == BOTH else (order,),
        targets=TARGETS if targets == BOTH else (targets,),
        lr_from_theory=lr_from_theory,
    )


def resolve_lr_range(config: ScalingConfig, data: RegressionData) -> ScalingConfig:
    """The config with the lr bounds it leaves to theory set for the data and the update rule.

    sgd: [eta*(1) / 2, 2 (2 / lambda_1)] = [1 / (2 beta), 4 / lambda_1]. momentum mu: the low end times
    (1 - mu), as heavy ball's steady step is lr / (1 - mu), the high end times (1 + mu), as full-batch heavy
    ball is stable up to 2 (1 + mu) / lambda_1. adam: [d / (2 E n), 2 d], d the largest distance of a
    parameter from its start to the least-squares fit: an Adam step moves each parameter by about lr, so 2 d
    overshoots in one step and d / (2 E n) needs twice batch size 1's budget of E epochs of n updates. A
    linear decay halves the low end (its mean step is half its first).

    The noisy regime's low end (SGD and heavy ball; unless widen_noisy is False) goes further down, to a
    quarter of the lr at which the Hessian's slowest direction, contracting by 1 - lr lambda_min per update,
    would just bring the initial excess loss down to the target's within batch size 1's budget of E n updates
    (times 1 - mu, and halved by a decay, as above): a smaller lr cannot reach the target at any batch size;
    the noise can put the best one below that estimate (shuffled batch size 1 here: 0.0017 against 0.0019)."""
    if not config.lr_from_theory:
        return config
    import torch  # not at the top: the command line reads this module before it imports torch

    from mbgd.core import noise_scale, theory

    train = config.sweep.train
    if train.optimizer == "adam":
        start = torch.tensor([*([train.init_w] * data.n_features), train.init_b], dtype=torch.float64)
        distance = float((start - theory.least_squares_fit(data.x, data.y_train)).abs().max())
        low, high = distance / (2 * train.epochs * data.n), 2 * distance
    else:
        mu = train.momentum if train.optimizer == "momentum" else 0.0
        low = float(noise_scale.optimal_lr_interpolation(data.x, 1)) / 2 * (1 - mu)
        high = 2 * theory.full_batch_max_stable_lr(data.x) * (1 + mu)
    noisy_low = None
    if "lr_min" in config.lr_from_theory and config.widen_noisy and train.optimizer != "adam":
        mu = train.momentum if train.optimizer == "momentum" else 0.0
        noisy_low = min(low, _budget_lr(data, train, config.sweep.target_ratio) / 4 * (1 - mu))
    if train.schedule == "linear":
        low /= 2
        noisy_low = None if noisy_low is None else noisy_low / 2
    chosen = {key: {"lr_min": low, "lr_max": high}[key] for key in config.lr_from_theory}
    return replace(config, sweep=replace(config.sweep, **chosen), lr_from_theory=(), noisy_lr_min=noisy_low)


def _budget_lr(data: RegressionData, train, target_ratio: float) -> float:
    """ln(initial excess / the target's excess) / (lambda_min E n) on the noisy targets (the recorded Y,
    data.y_eval): the lr at which the slowest direction would just reach the target within batch size 1's
    E n updates."""
    import math

    import torch

    from mbgd.core import objectives, theory

    x, y = data.x.double(), data.y_eval.double()
    start = torch.tensor([*([train.init_w] * data.n_features), train.init_b], dtype=torch.float64)
    initial = float(((theory.augmented(x) @ start - y) ** 2).mean())
    optimum = theory.least_squares_loss(x, y)
    target = objectives.updates_target(initial, optimum, target_ratio)
    slowest = float(torch.linalg.eigvalsh(theory.full_hessian(x).double())[0])
    return math.log((initial - optimum) / (target - optimum)) / (slowest * train.epochs * data.n)


# What `mbgd lr-momentum` changes from scaling's defaults: a grid of 512 lrs x 34 momenta is 17408 trainings
# per batch size; the sweep's 64 trials in populations of 16 refine it (20 found the denser grid's optimum
# less often: tests/test_lr_momentum.py); the tuning cost over 3 sampler seeds, in 2-D and 1-D.
LR_MOMENTUM_DEFAULTS: dict[str, Any] = {
    "name": "mbgd-lr-momentum",
    "scan": 512,
    "n_trials": 64,
    "population": 16,
    "tuning_cost_seeds": 3,
}
TUNING_COST_MAX_TRIALS = 256  # as the sweep's: a seed that needs more counts as never


@dataclass(frozen=True)
class LrMomentumConfig:
    """`mbgd lr-momentum`: scaling's grid of orders, regimes and batch sizes, each with a dense lr x momentum
    grid (`scaling.sweep.scan` lrs x `momenta` coefficients evenly spaced in [0, momentum_max]) refined by a
    multivariate TPE study. The training is heavy ball; its coefficient is what is searched."""

    scaling: ScalingConfig
    momenta: int = 34
    momentum_max: float = 0.99
    tuning_cost_max_trials: int = TUNING_COST_MAX_TRIALS

    def __post_init__(self) -> None:
        require(self.momenta >= 1, f"momenta must be at least 1, got {self.momenta}")
        require(0 <= self.momentum_max < 1, f"momentum_max must be in [0, 1), got {self.momentum_max}")
        require(self.scaling.sweep.scan >= 2, "lr-momentum needs a grid: --scan must be at least 2")
        require(
            self.scaling.sweep.train.optimizer == "momentum",
            f"lr-momentum trains heavy ball, got optimizer {self.scaling.sweep.train.optimizer!r}",
        )

    def as_params(self) -> dict[str, str]:
        """Scaling's params with the momentum searched: `momentum` is "tuned", over `momenta` coefficients up
        to `momentum_max`."""
        return {
            **self.scaling.as_params(),
            "momentum": "tuned",
            "momentum_max": repr(self.momentum_max),
            "momenta": str(self.momenta),
        }


def build_lr_momentum_config(values: dict[str, Any]) -> LrMomentumConfig:
    """lr-momentum defaults <- scaling defaults <- values; `momenta` and `momentum_max` are the grid's rows.
    The theory's lr range is widened for the largest coefficient (resolve_lr_range)."""
    values = dict(values)
    optimizer = values.pop("optimizer", None)
    require(
        optimizer in (None, "momentum"),
        f"lr-momentum trains heavy ball (optimizer momentum), got optimizer {optimizer!r}",
    )
    values.pop("momentum", None)  # searched: a preset's coefficient has no say
    grid = pop_lr_momentum_values(values)
    momenta, momentum_max = grid.get("momenta"), grid.get("momentum_max")
    own = {key: value for key, value in LR_MOMENTUM_DEFAULTS.items() if values.get(key) is None}
    momentum_max = 0.99 if momentum_max is None else momentum_max
    # the training's own coefficient only sets the theory's lr range (the grid sets each member's); one out
    # of range is refused by LrMomentumConfig, with its own name
    in_range = momentum_max if 0 <= momentum_max < 1 else 0.0
    scaling = replace(
        build_scaling_config({**values, **own, "optimizer": "momentum", "momentum": in_range}),
        widen_noisy=False,
    )
    return LrMomentumConfig(
        scaling=scaling, momenta=34 if momenta is None else momenta, momentum_max=momentum_max
    )
