"""What theory says about the batch size: the interpolation regime's critical batch size m* and optimal step
eta*(m) (Ma, Bassily & Belkin 2018), and the simple gradient noise scale B_simple (McCandlish et al. 2018).

Same model and loss as mbgd.core.theory (y_hat = w.x + b, mean squared error, no factor 1/2); float64 torch
math.

Interpolation regime: the paper's constants are stated for the per-sample loss's Hessian; our per-sample loss
(w.x+b-y)^2 has no 1/2, so H_i = 2 a_i a_i^T and both beta and lambda_1 carry that factor 2 (eta* is half of
its value under the 1/2 convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from mbgd.core.theory import augmented, full_hessian

__all__ = [
    "critical_batch_size",
    "gradient_noise_scale",
    "gradient_noise_scale_path",
    "interpolation_contraction",
    "optimal_lr_interpolation",
]

_DTYPE = torch.float64  # as in mbgd.core.theory


def _beta_lambda1(x: Tensor) -> tuple[float, float]:
    a = augmented(x)
    beta = float(2.0 * (a * a).sum(dim=1).max())  # max_i tr(H_i) = 2 (|x_i|^2 + 1)
    lambda1 = float(torch.linalg.eigvalsh(full_hessian(x))[-1])
    return beta, lambda1


def critical_batch_size(x: Tensor) -> float:
    """Critical batch size m* = beta / lambda_1 of the interpolation regime."""
    beta, lambda1 = _beta_lambda1(x)
    return beta / lambda1


def _batch_sizes(m: int | Sequence[int] | Tensor) -> Tensor:
    ms = torch.as_tensor(m, dtype=_DTYPE)
    if bool((ms < 1).any()):
        raise ValueError("batch sizes m must be >= 1")
    return ms


def optimal_lr_interpolation(x: Tensor, m: int | Sequence[int] | Tensor) -> float | Tensor:
    """Optimal SGD step eta*(m) = m / (beta + lambda_1 (m - 1)) for batch size(s) m.

    Linear in m while m << m*, then saturating towards 1 / lambda_1, full-batch gradient descent's step.
    """
    beta, lambda1 = _beta_lambda1(x)
    ms = _batch_sizes(m)
    eta = ms / (beta + lambda1 * (ms - 1.0))
    return float(eta) if ms.dim() == 0 else eta


def interpolation_contraction(x: Tensor, m: int | Sequence[int] | Tensor) -> float | Tensor:
    """Ma, Bassily & Belkin's bound on the per-update contraction of E|theta - theta*|^2 at eta*(m):
    g*(m) = 1 - m lambda_min / (beta + lambda_1 (m - 1)), lambda_min the full-data Hessian's smallest
    eigenvalue.

    Updates to a given error scale as 1 / -log g*(m): about (beta + lambda_1 (m - 1)) / m, i.e. 1/m (perfect
    scaling) below m* and flat above it. The bound is for batches drawn with replacement.
    """
    beta, lambda1 = _beta_lambda1(x)
    lambda_min = float(torch.linalg.eigvalsh(full_hessian(x))[0])
    ms = _batch_sizes(m)
    rate = 1.0 - ms * lambda_min / (beta + lambda1 * (ms - 1.0))
    return float(rate) if ms.dim() == 0 else rate


def gradient_noise_scale(x: Tensor, y: Tensor, w: float | Tensor, b: float) -> float:
    """Simple noise scale B = tr(Sigma) / |G|^2 of per-sample MSE gradients at (w, b)."""
    a = augmented(x)
    y = torch.as_tensor(y).to(_DTYPE).reshape(-1)
    w = torch.as_tensor(w).to(_DTYPE).reshape(-1)
    if y.shape[0] != a.shape[0] or w.shape[0] != a.shape[1] - 1:
        raise ValueError("shapes of x, y and w do not match")
    residual = a[:, :-1] @ w + float(b) - y
    grads = 2.0 * residual[:, None] * a
    mean = grads.mean(dim=0)
    sq_norm = float(mean @ mean)
    if sq_norm == 0.0:
        return float("inf")
    # Population covariance: tr(Sigma) = (1/n) sum |g_i - G|^2.
    trace = float(((grads - mean) ** 2).sum(dim=1).mean())
    return trace / sq_norm


def gradient_noise_scale_path(x: Tensor, y: Tensor, params: Tensor | Sequence[Sequence[float]]) -> Tensor:
    """B_simple = tr(Sigma) / |G|^2 at each of T points (w..., b) along a training run: shape (T,).

    With g_i = 2 r_i a_i: G = (2/n) sum r_i a_i and tr(Sigma) = (4/n) sum r_i^2 |a_i|^2 - |G|^2; inf where G =
    0. The loss's factor 2 cancels in the ratio.
    """
    a = augmented(x)
    y = torch.as_tensor(y).to(_DTYPE).reshape(-1)
    theta = torch.as_tensor(params, dtype=_DTYPE)
    if theta.dim() != 2 or theta.shape[1] != a.shape[1] or y.shape[0] != a.shape[0]:
        raise ValueError("params must have shape (T, d + 1) and y one value per row of x")
    residuals = theta @ a.T - y  # (T, n)
    n = a.shape[0]
    mean = 2.0 / n * residuals @ a  # (T, d + 1)
    sq_norm = (mean**2).sum(dim=1)
    trace = 4.0 / n * (residuals**2) @ (a**2).sum(dim=1) - sq_norm
    return torch.where(sq_norm > 0, trace.clamp(min=0) / sq_norm, torch.full_like(sq_norm, math.inf))
