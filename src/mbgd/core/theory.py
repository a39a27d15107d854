"""Closed-form theory for (mini-batch) gradient descent on linear regression: the exact epoch map, its
stability intervals and best lr, and the least-squares optimum's loss.

Model y_hat = w.x + b, batch loss = mean squared error (no factor 1/2), batches
taken in order without shuffling. Everything is float64 torch math. What theory says about the batch size
(critical batch size, gradient noise scale) is mbgd.core.noise_scale's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

__all__ = [
    "EpochMapTheory",
    "augmented",
    "batch_hessians",
    "best_lr",
    "epoch_map",
    "epoch_map_theory",
    "full_batch_max_stable_lr",
    "full_hessian",
    "least_squares_loss",
    "first_instability_lr",
    "max_transient_amplification",
    "min_spectral_radius",
    "spectral_radius",
    "stable_intervals",
]

_DTYPE = torch.float64
# Cap on float64 elements of one stacked (lrs, batches, p, p) factor tensor (~32 MB).
_CHUNK_ELEMENTS = 4_000_000


def augmented(x: Tensor) -> Tensor:
    """Return the (n, d+1) float64 matrix of rows a_i = (x_i, 1)."""
    x = torch.as_tensor(x).to(_DTYPE)
    if x.dim() == 1:
        x = x.unsqueeze(1)
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (n,) or (n, d) with n >= 1, got {tuple(x.shape)}")
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=_DTYPE)], dim=1)


def _check_batch_size(batch_size: int) -> int:
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _stacked_hessians(x: Tensor, batch_size: int) -> Tensor:
    """Per-batch Hessians (2/m) sum a_i a_i^T stacked into shape (K, d+1, d+1)."""
    a = augmented(x)
    batch_size = _check_batch_size(batch_size)
    n, p = a.shape
    n_full = n // batch_size
    parts = []
    if n_full:
        full = a[: n_full * batch_size].reshape(n_full, batch_size, p)
        parts.append(torch.einsum("kbi,kbj->kij", full, full) * (2.0 / batch_size))
    rest = a[n_full * batch_size :]
    if rest.shape[0]:
        parts.append((rest.T @ rest * (2.0 / rest.shape[0])).unsqueeze(0))
    return torch.cat(parts, dim=0)


def full_hessian(x: Tensor) -> Tensor:
    a = augmented(x)
    return a.T @ a * (2.0 / a.shape[0])


def _as_lrs(lr: float | Tensor) -> tuple[Tensor, bool]:
    """Return (1-D float64 tensor of lrs, whether the input was a scalar)."""
    lrs = torch.as_tensor(lr, dtype=_DTYPE)
    if lrs.dim() == 0:
        return lrs.reshape(1), True
    if lrs.dim() != 1:
        raise ValueError(f"lr must be a scalar or a 1-D tensor, got shape {tuple(lrs.shape)}")
    return lrs, False


def _factors(hessians: Tensor, lrs: Tensor) -> Tensor:
    """Stack I - lr H_k into shape (L, K, p, p)."""
    p = hessians.shape[-1]
    eye = torch.eye(p, dtype=_DTYPE)
    return eye - lrs[:, None, None, None] * hessians[None]


def _ordered_product(factors: Tensor, normalise: bool) -> tuple[Tensor, Tensor]:
    """Product F_K ... F_1 over dim 1 of (L, K, p, p) by pairwise tree reduction.

    With normalise=True each partial product is rescaled to unit Frobenius norm
    and the log of the removed scale is returned, so that thousands of factors
    neither overflow nor underflow: product = exp(log_scale) * matrix.
    """
    log_scale = torch.zeros(factors.shape[0], dtype=_DTYPE)
    while factors.shape[1] > 1:
        k = factors.shape[1]
        # Later factor on the left: pair (2j, 2j+1) -> F_{2j+1} @ F_{2j}.
        paired = factors[:, 1:k:2] @ factors[:, 0 : k - 1 : 2]
        if k % 2:
            paired = torch.cat([paired, factors[:, -1:]], dim=1)
        factors = paired
        if normalise:
            norms = torch.linalg.matrix_norm(factors)
            safe = torch.where(norms > 0, norms, torch.ones_like(norms))
            factors = factors / safe[..., None, None]
            log_scale = log_scale + torch.log(safe).sum(dim=1)
    return factors[:, 0], log_scale


def _radii(hessians: Tensor, lrs: Tensor) -> Tensor:
    """Spectral radius of the epoch map for each lr in the 1-D tensor lrs."""
    k, p, _ = hessians.shape
    chunk = max(1, _CHUNK_ELEMENTS // (k * p * p))
    out = []
    for start in range(0, lrs.shape[0], chunk):
        sub = lrs[start : start + chunk]
        mats, log_scale = _ordered_product(_factors(hessians, sub), normalise=True)
        rho = torch.linalg.eigvals(mats).abs().amax(dim=-1)
        # exp(log_scale + log rho): rho = 0 gives exactly 0, huge products give inf.
        out.append(torch.exp(log_scale + torch.log(rho)))
    return torch.cat(out)


def batch_hessians(x: Tensor, batch_size: int) -> list[Tensor]:
    """Per-batch Hessians H = (2/m) sum a_i a_i^T of the batch MSE, in batch order."""
    return list(_stacked_hessians(x, batch_size).unbind(0))


def epoch_map(x: Tensor, batch_size: int, lr: float | Tensor) -> Tensor:
    """Error map of one unshuffled epoch, (I - lr H_last) ... (I - lr H_first)."""
    lrs, scalar = _as_lrs(lr)
    mats, _ = _ordered_product(_factors(_stacked_hessians(x, batch_size), lrs), normalise=False)
    return mats[0] if scalar else mats


def spectral_radius(x: Tensor, batch_size: int, lr: float | Tensor) -> float | Tensor:
    """Max |eigenvalue| of the epoch map; a 1-D tensor of lrs gives a tensor of radii."""
    lrs, scalar = _as_lrs(lr)
    radii = _radii(_stacked_hessians(x, batch_size), lrs)
    return float(radii[0]) if scalar else radii


def _lr_safe(hessians: Tensor) -> float:
    """lr below which every factor I - lr H_k has spectral norm <= 1."""
    return 2.0 / float(torch.linalg.eigvalsh(hessians)[:, -1].max())


def _require_identifiable(x: Tensor) -> None:
    # A null direction of H_full is never contracted: the radius is 1 for every lr.
    eig = torch.linalg.eigvalsh(full_hessian(x))
    if eig[0] <= 1e-12 * eig[-1]:
        raise ValueError("H_full is singular (e.g. constant x): no lr gives a contracting epoch map")


def _first_instability_lr(hessians: Tensor, lr_hi: float, per_decade: int = 100) -> float:
    # For lr <= lr_safe every factor is a symmetric contraction, and with H_full
    # non-singular their product has radius < 1, so the scan starts at lr_safe.
    lo = _lr_safe(hessians)
    if lr_hi <= lo:
        return float(lr_hi)
    num = max(2, math.ceil(per_decade * math.log10(lr_hi / lo)) + 1)
    grid = torch.logspace(math.log10(lo), math.log10(lr_hi), num, dtype=_DTYPE)
    unstable = ~(_radii(hessians, grid) < 1.0)  # NaN counts as unstable
    unstable[0] = False
    if not bool(unstable.any()):
        return float(lr_hi)
    i = int(torch.nonzero(unstable)[0])
    lo, hi = float(grid[i - 1]), float(grid[i])
    while hi - lo > 1e-7 * lo:
        mid = 0.5 * (lo + hi)
        if float(_radii(hessians, torch.tensor([mid], dtype=_DTYPE))[0]) < 1.0:
            lo = mid
        else:
            hi = mid
    return lo


def first_instability_lr(x: Tensor, batch_size: int, lr_hi: float = 10.0) -> float:
    """The first instability: the largest lr (<= lr_hi) with spectral radius < 1 on all of (0, lr]; log-grid
    scan, then bisection. Not the largest stable lr: the fixed-order epoch map can be stable again above it
    (stable_intervals)."""
    _require_identifiable(x)
    return _first_instability_lr(_stacked_hessians(x, batch_size), lr_hi)


def _bisect_boundary(hessians: Tensor, stable_lr: float, unstable_lr: float) -> float:
    """The lr between a stable and an unstable one where the radius crosses 1 (to 1e-7 relative)."""
    while abs(unstable_lr - stable_lr) > 1e-7 * stable_lr:
        mid = 0.5 * (stable_lr + unstable_lr)
        if float(_radii(hessians, torch.tensor([mid], dtype=_DTYPE))[0]) < 1.0:
            stable_lr = mid
        else:
            unstable_lr = mid
    return 0.5 * (stable_lr + unstable_lr)


def stable_intervals(
    x: Tensor, batch_size: int, lr_hi: float | None = None, per_decade: int = 2000
) -> list[tuple[float, float]]:
    """The lrs in (0, lr_hi] where the fixed-order epoch map is stable (spectral radius < 1), as intervals.

    A log grid of per_decade points per decade from the first instability's decade to lr_hi (default: twice
    full-batch descent's limit 2/lambda_1, past which no batch size is stable here), each edge bisected.
    Windows narrower than the grid's step can be missed; the first interval always starts at 0.
    """
    _require_identifiable(x)
    hessians = _stacked_hessians(x, batch_size)
    lr_hi = 2 * full_batch_max_stable_lr(x) if lr_hi is None else float(lr_hi)
    first = _first_instability_lr(hessians, lr_hi)
    if first >= lr_hi:
        return [(0.0, lr_hi)]
    num = max(2, math.ceil(per_decade * math.log10(lr_hi / first)) + 1)
    grid = torch.logspace(math.log10(first), math.log10(lr_hi), num, dtype=_DTYPE)
    stable = (_radii(hessians, grid) < 1.0).tolist()  # NaN counts as unstable
    stable[0] = True  # `first` itself is the last stable lr of the first interval
    intervals, start = [], 0.0
    for i in range(1, len(stable)):
        if stable[i - 1] and not stable[i]:
            end = (
                first
                if i == 1 and start == 0.0
                else _bisect_boundary(hessians, float(grid[i - 1]), float(grid[i]))
            )
            intervals.append((start, end))
        elif not stable[i - 1] and stable[i]:
            start = _bisect_boundary(hessians, float(grid[i]), float(grid[i - 1]))
    if stable[-1]:
        intervals.append((start, lr_hi))
    return intervals


def _best_lr(hessians: Tensor, lr_max: float, per_decade: int = 50) -> tuple[float, float]:
    # |det M| >= 1 - lr * sum_k tr(H_k) bounds the radius below by ~0.999 for
    # lr <= 1e-3 / sum tr(H_k), so the minimiser lies above that.
    lr_lo = min(1e-3 / float(hessians.diagonal(dim1=-2, dim2=-1).sum()), 1e-3 * lr_max)
    num = max(3, math.ceil(per_decade * math.log10(lr_max / lr_lo)) + 1)
    grid = torch.logspace(math.log10(lr_lo), math.log10(lr_max), num, dtype=_DTYPE)
    radii = _radii(hessians, grid)
    while True:
        i = int(torch.argmin(radii))
        best, best_radius = float(grid[i]), float(radii[i])
        left, right = float(grid[max(i - 1, 0)]), float(grid[min(i + 1, len(grid) - 1)])
        if right - left <= 1e-6 * best:
            return best, best_radius
        grid = torch.linspace(left, right, 41, dtype=_DTYPE)
        radii = _radii(hessians, grid)


def best_lr(x: Tensor, batch_size: int) -> float:
    """lr in (0, first_instability_lr] minimising the epoch-map spectral radius."""
    return epoch_map_theory(x, batch_size).best_lr


def min_spectral_radius(x: Tensor, batch_size: int) -> float:
    """Smallest epoch-map spectral radius over lr in (0, first_instability_lr]."""
    return epoch_map_theory(x, batch_size).min_spectral_radius


def _partial_products(factors: Tensor) -> Tensor:
    """All prefixes P_k = F_k ... F_1 of (K, p, p) by a Hillis-Steele scan."""
    shift = 1
    while shift < factors.shape[0]:
        factors = torch.cat([factors[:shift], factors[shift:] @ factors[:-shift]], dim=0)
        shift *= 2
    return factors


def _transient(hessians: Tensor, lr: float) -> float:
    factors = _factors(hessians, torch.tensor([lr], dtype=_DTYPE))[0]
    return float(torch.linalg.matrix_norm(_partial_products(factors), ord=2).max())


def max_transient_amplification(x: Tensor, batch_size: int, lr: float) -> float:
    """Max over k = 1..K of the spectral norm of the partial product (I - lr H_k) ... (I - lr H_1)."""
    return _transient(_stacked_hessians(x, batch_size), float(lr))


@dataclass(frozen=True)
class EpochMapTheory:
    """Stability summary of the unshuffled epoch map for one batch size."""

    batch_size: int
    first_instability_lr: float  # the radius first reaches 1 here; the map may be stable again above it
    best_lr: float
    min_spectral_radius: float
    transient_at_best_lr: float

    def as_dict(self) -> dict[str, float]:
        """Fields as plain Python numbers (JSON-serialisable)."""
        return {k: (int(v) if k == "batch_size" else float(v)) for k, v in asdict(self).items()}


def epoch_map_theory(x: Tensor, batch_size: int) -> EpochMapTheory:
    """Max stable lr, best lr, its radius and transient amplification for one batch size."""
    _require_identifiable(x)
    hessians = _stacked_hessians(x, batch_size)
    lr_max = _first_instability_lr(hessians, 10.0)
    lr_best, radius = _best_lr(hessians, lr_max)
    return EpochMapTheory(
        batch_size=_check_batch_size(batch_size),
        first_instability_lr=lr_max,
        best_lr=lr_best,
        min_spectral_radius=radius,
        transient_at_best_lr=_transient(hessians, lr_best),
    )


def full_batch_max_stable_lr(x: Tensor) -> float:
    """2 / lambda_max(H_full): full-batch GD on the MSE is stable iff lr is below this."""
    return 2.0 / float(torch.linalg.eigvalsh(full_hessian(x))[-1])


def least_squares_fit(x: Tensor, y: Tensor) -> Tensor:
    """The (w, b) of the least-squares line through (x, y), as one float64 vector (w_1, ..., w_d, b)."""
    y = torch.as_tensor(y).to(_DTYPE).reshape(-1, 1)
    return torch.linalg.lstsq(augmented(x), y).solution.flatten()


def least_squares_loss(x: Tensor, y: Tensor) -> float:
    """The smallest MSE any y = w.x + b reaches on (x, y): the least-squares fit's (0 when y is on a line)."""
    residual = augmented(x) @ least_squares_fit(x, y) - torch.as_tensor(y).to(_DTYPE).reshape(-1)
    return float((residual**2).mean())
