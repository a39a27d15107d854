"""Predictions of the noisy quadratic model (Zhang et al., NeurIPS 2019), fitted exactly to the data.

The tutorial's loss is a quadratic, L(theta) = L* + 1/2 e^T H e with e = theta - theta*, and every
per-sample gradient is known: h_i e + g_i with h_i = 2 a_i a_i^T and g_i = 2 r_i a_i (a_i = (x_i, 1), r_i
the least-squares residual). So SGD and heavy-ball momentum whose batches are drawn with replacement have an
exact recursion for the first and second moments of their state, and with it the expected training loss
after every update, at any learning rate, schedule and batch size. Zhang et al. approximate H and the
gradient noise as diagonal; here both are the data's own. What the model leaves out: batches drawn without
replacement (mbgd's shuffled epochs) or in a fixed order, the spread of single runs around the mean, and
Adam, whose update is not linear in the gradient (no prediction).

Pure float64 torch; imports neither mlflow nor matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mbgd.core import theory
from mbgd.core.config import TrainConfig
from mbgd.core.data import RegressionData
from mbgd.core.objectives import updates_target

_DTYPE = torch.float64


@dataclass(frozen=True)
class Quadratic:
    """The least-squares problem on (x, y) as the NQM needs it."""

    a: torch.Tensor  # (n, D): rows (x_i, 1)
    residuals: torch.Tensor  # (n,): a_i . theta* - y_i
    theta_star: torch.Tensor  # (D,)
    loss_star: float
    hessian: torch.Tensor  # (D, D): 2 A^T A / n

    @property
    def n(self) -> int:
        return self.a.shape[0]

    @property
    def dim(self) -> int:
        return self.a.shape[1]

    def loss(self, theta: torch.Tensor) -> float:
        e = torch.as_tensor(theta, dtype=_DTYPE) - self.theta_star
        return self.loss_star + float(e @ self.hessian @ e) / 2


def quadratic(x: torch.Tensor, y: torch.Tensor) -> Quadratic:
    a = theory.augmented(x)
    theta_star = theory.least_squares_fit(x, y)
    residuals = a @ theta_star - torch.as_tensor(y).to(_DTYPE).reshape(-1)
    return Quadratic(
        a=a,
        residuals=residuals,
        theta_star=theta_star,
        loss_star=float((residuals**2).mean()),
        hessian=2 * a.T @ a / a.shape[0],
    )


def _update(q: Quadratic, batch: int, momentum: float, eta: float, state: torch.Tensor) -> torch.Tensor:
    """One update's expectation on the state (vec Z, z_mean, c): z = (e, buf) the error and the momentum
    buffer, Z = E[z z^T], c the constant 1. torch.optim.SGD's heavy ball: buf' = mu buf + grad,
    theta' = theta - eta buf'; a batch is `batch` samples drawn with replacement."""
    d = q.dim
    n2 = 2 * d
    z = state[: n2 * n2].reshape(n2, n2)
    z_mean = state[n2 * n2 : n2 * n2 + n2]
    c = state[-1]
    eye = torch.eye(d, dtype=_DTYPE)
    zero = torch.zeros(d, d, dtype=_DTYPE)
    p = torch.cat([torch.cat([eye, -eta * momentum * eye], 1), torch.cat([zero, momentum * eye], 1)])
    qm = torch.cat([-eta * eye, eye])  # (2D, D): how the batch gradient enters (e, buf)
    h = q.hessian
    x = z[:d, :d]  # E[e e^T]
    e_mean = z_mean[:d]
    # E[H_b X H_b] with replacement: 1/b of the per-sample fourth moment, the rest H X H
    quad_form = torch.einsum("id,de,ie->i", q.a, x, q.a)
    fourth = 4 * torch.einsum("i,id,ie->de", quad_form, q.a, q.a) / q.n
    noise = 4 * torch.einsum("i,id,ie->de", q.residuals**2, q.a, q.a) / q.n
    cross = 4 * torch.einsum("i,i,id,ie->de", q.residuals, q.a @ e_mean, q.a, q.a) / q.n  # E_i[h_i e g_i^T]
    hz = h @ z[:d, :]  # H E Z
    new_z = (
        p @ z @ p.T
        + qm @ hz @ p.T
        + p @ hz.T @ qm.T
        + qm
        @ (fourth / batch + (1 - 1 / batch) * h @ x @ h + c * noise / batch + (cross + cross.T) / batch)
        @ qm.T
    )
    new_mean = p @ z_mean + qm @ (h @ e_mean)
    return torch.cat([new_z.reshape(-1), new_mean, c.reshape(1)])


def _update_map(q: Quadratic, batch: int, momentum: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The update as T0 + eta T1 + eta^2 T2 (it is a polynomial of degree 2 in eta), from three etas."""
    size = (2 * q.dim) ** 2 + 2 * q.dim + 1
    basis = torch.eye(size, dtype=_DTYPE)

    def at(eta: float) -> torch.Tensor:
        return torch.stack([_update(q, batch, momentum, eta, basis[k]) for k in range(size)], dim=1)

    t0, plus, minus = at(0.0), at(1.0), at(-1.0)
    return t0, (plus - minus) / 2, (plus + minus) / 2 - t0


def epoch_batches(n: int, batch_size: int) -> list[int]:
    """The batch sizes of one epoch, the last partial one included (drop_last off)."""
    return [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])


def expected_losses(
    q: Quadratic,
    lrs: Sequence[float],
    start: torch.Tensor,
    *,
    batch_size: int,
    epochs: int,
    momentum: float = 0.0,
    schedule: str = "constant",
) -> torch.Tensor:
    """E[L] before the first update and after each, for every lr: shape (K, updates + 1)."""
    batches = epoch_batches(q.n, batch_size) * epochs
    maps = {b: _update_map(q, b, momentum) for b in set(batches)}
    d2 = 2 * q.dim
    z0 = torch.cat([torch.as_tensor(start, dtype=_DTYPE) - q.theta_star, torch.zeros(q.dim, dtype=_DTYPE)])
    state = torch.cat([torch.outer(z0, z0).reshape(-1), z0, torch.ones(1, dtype=_DTYPE)])
    eta = torch.as_tensor(list(lrs), dtype=_DTYPE)
    states = state.expand(len(eta), -1).clone()
    # E[L] = L* + 1/2 tr(H E[e e^T]): a linear function of the state
    reader = torch.zeros(d2, d2, dtype=_DTYPE)
    reader[: q.dim, : q.dim] = q.hessian / 2
    reader = torch.cat([reader.reshape(-1), torch.zeros(d2 + 1, dtype=_DTYPE)])
    constant = {
        b: t0 + eta[:, None, None] * t1 + eta[:, None, None] ** 2 * t2 for b, (t0, t1, t2) in maps.items()
    }
    losses = [states @ reader]
    for step, b in enumerate(batches):
        if schedule == "linear":
            rate = (eta * (1 - step / len(batches)))[:, None, None]
            t0, t1, t2 = maps[b]
            update = t0 + rate * t1 + rate**2 * t2
        else:
            update = constant[b]
        states = (update * states[:, None, :]).sum(dim=2)  # a batched matrix-vector product, 8x bmm's speed
        losses.append(states @ reader)
    return q.loss_star + torch.stack(losses, dim=1)


def updates_to(path: Sequence[float], target: float) -> int | None:
    """As objectives.updates_to_target on an expected-loss path: the updates from which it stays at or below
    the target; None if it ends above it, above where it started, or not finite."""
    if not all(math.isfinite(v) for v in path) or path[-1] > target or path[-1] > path[0]:
        return None
    above = [index for index, loss in enumerate(path) if loss > target]
    return above[-1] + 1 if above else 0


@dataclass(frozen=True)
class Prediction:
    lr: float  # the lr of the grid with the fewest predicted updates (None: no lr reaches the target)
    updates: int | None


def predict_best(
    q: Quadratic,
    lrs: Sequence[float],
    start: torch.Tensor,
    *,
    batch_size: int,
    epochs: int,
    target_ratio: float,
    momentum: float = 0.0,
    schedule: str = "constant",
) -> Prediction:
    """The fewest updates to the target the model predicts over the lrs, and at which lr."""
    paths = expected_losses(
        q, lrs, start, batch_size=batch_size, epochs=epochs, momentum=momentum, schedule=schedule
    )
    target = updates_target(q.loss(start), q.loss_star, target_ratio)
    counts = [updates_to(path.tolist(), target) for path in paths]
    reached = [(count, i) for i, count in enumerate(counts) if count is not None]
    if not reached:
        return Prediction(math.nan, None)
    count, i = min(reached)
    return Prediction(float(lrs[i]), count)


# Log-spaced lrs over the study's range at which the model's updates are counted: as dense as the scan, since
# the expected count is needle-shaped too (the full batch's window was missed by 128 over the noisy range).
PREDICTION_LRS = 512


def predicts(config: TrainConfig) -> bool:
    """Whether the model is exact for this training's rule: SGD or heavy ball, without averaging, every
    sample in every epoch (no dropped batch)."""
    return config.optimizer in ("sgd", "momentum") and not config.ema and not config.drop_last


def predict_scaling(
    config: TrainConfig,
    data: RegressionData,
    batch_sizes: Sequence[int],
    lr_range: tuple[float, float],
    target_ratio: float,
) -> dict[int, Prediction] | None:
    """Each batch size's predicted fewest updates to the target (updates_to's) over PREDICTION_LRS lrs of
    `lr_range`, for the training targets of `data`; None where the model is not exact for the rule."""
    if not predicts(config):
        return None
    q = quadratic(data.x, data.y_train)
    start = torch.tensor([*([config.init_w] * data.n_features), config.init_b], dtype=_DTYPE)
    lrs = torch.logspace(math.log10(lr_range[0]), math.log10(lr_range[1]), PREDICTION_LRS).tolist()
    momentum = config.momentum if config.optimizer == "momentum" else 0.0
    return {
        b: predict_best(
            q,
            lrs,
            start,
            batch_size=b,
            epochs=config.epochs,
            target_ratio=target_ratio,
            momentum=momentum,
            schedule=config.schedule,
        )
        for b in batch_sizes
    }
