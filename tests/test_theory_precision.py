"""The precision mbgd.theory promises (edges to 1e-7 relative, the best lr to 1e-6), against a reference built
here from scratch: each batch's Hessian, the epoch map as a plain product in batch order, numpy's eigenvalues,
and a bisection run to the last digits."""

import math

import numpy as np
import pytest
import torch

from mbgd import theory as T

TUTORIAL_X = torch.arange(-5, 5, 0.1)
EDGE_REL = 1e-7  # theory's bisections stop when the bracket is this narrow, relative to its lower end


def epoch_radius(x: np.ndarray, batch_size: int, lr: float) -> float:
    """Spectral radius of (I - lr H_K) ... (I - lr H_1), H_k = (2/m) sum over batch k of a a^T, a = (x, 1)."""
    product = np.eye(2)
    for start in range(0, len(x), batch_size):
        a = np.stack([x[start : start + batch_size], np.ones(len(x[start : start + batch_size]))], axis=1)
        hessian = 2.0 * a.T @ a / len(a)
        product = (np.eye(2) - lr * hessian) @ product
    return float(np.abs(np.linalg.eigvals(product)).max())


def edge(x: np.ndarray, batch_size: int, stable: float, unstable: float) -> float:
    """Where the radius crosses 1 between a stable and an unstable lr, to 1e-14 relative."""
    assert epoch_radius(x, batch_size, stable) < 1 <= epoch_radius(x, batch_size, unstable)
    while abs(unstable - stable) > 1e-14 * stable:
        middle = 0.5 * (stable + unstable)
        if epoch_radius(x, batch_size, middle) < 1:
            stable = middle
        else:
            unstable = middle
    return stable


X = TUTORIAL_X.double().numpy()


@pytest.fixture(scope="module")
def batch_10_edges() -> tuple[float, float, float]:
    # brackets read off a coarse scan of epoch_radius (0.127 stable, 0.128 not; 0.146 not, 0.147 stable; ...)
    return edge(X, 10, 0.127, 0.128), edge(X, 10, 0.147, 0.146), edge(X, 10, 0.151, 0.152)


def test_batch_10_edges_to_the_promised_precision(batch_10_edges) -> None:
    first, low, high = batch_10_edges
    (start, found_first), (found_low, found_high) = T.stable_intervals(TUTORIAL_X, 10)
    assert start == 0.0
    for found, exact in ((found_first, first), (found_low, low), (found_high, high)):
        assert abs(found - exact) <= EDGE_REL * exact
    assert T.first_instability_lr(TUTORIAL_X, 10) == pytest.approx(first, rel=EDGE_REL)
    # the first instability is the last stable lr found, never above the edge
    assert T.first_instability_lr(TUTORIAL_X, 10) <= first * (1 + 1e-12)


def test_the_first_interval_ends_exactly_at_the_first_instability() -> None:
    lr_hi = 2 * T.full_batch_max_stable_lr(TUTORIAL_X)  # the default range of stable_intervals
    first = T.first_instability_lr(TUTORIAL_X, 10, lr_hi=lr_hi)
    assert T.stable_intervals(TUTORIAL_X, 10)[0] == (0.0, first)


def test_a_range_that_ends_inside_a_stable_window_ends_its_last_interval_there(batch_10_edges) -> None:
    first, low, _ = batch_10_edges
    lr_hi = low * (1 + 1e-4)  # just inside the window: the grid point below it is unstable
    intervals = T.stable_intervals(TUTORIAL_X, 10, lr_hi=lr_hi)
    assert len(intervals) == 2
    (start, found_first), (found_low, end) = intervals
    assert (start, end) == (0.0, lr_hi)
    assert abs(found_first - first) <= EDGE_REL * first
    assert abs(found_low - low) <= EDGE_REL * low


def test_full_batch_best_lr_and_radius_to_the_promised_precision() -> None:
    # x = (0, 1) in one batch: H = [[1, 1], [1, 2]], eigenvalues (3 -+ sqrt 5) / 2; the radius
    # max|1 - lr lambda| is smallest where both are equal, at lr = 2 / (lambda_1 + lambda_2) = 2/3
    theory = T.epoch_map_theory(torch.tensor([0.0, 1.0], dtype=torch.float64), 2)
    assert theory.best_lr == pytest.approx(2 / 3, rel=1e-6)
    assert theory.min_spectral_radius == pytest.approx(math.sqrt(5) / 3, rel=2e-6)
    assert theory.first_instability_lr <= 4 / (3 + math.sqrt(5)) * (1 + 1e-12)
    assert theory.first_instability_lr == pytest.approx(4 / (3 + math.sqrt(5)), rel=EDGE_REL)


def test_a_scalar_lr_gives_a_python_float_and_a_vector_a_tensor() -> None:
    radius = T.spectral_radius(TUTORIAL_X, 20, 0.1)
    assert type(radius) is float
    assert radius == pytest.approx(epoch_radius(X, 20, 0.1), rel=1e-12)
    radii = T.spectral_radius(TUTORIAL_X, 20, torch.tensor([0.1, 0.12], dtype=torch.float64))
    assert isinstance(radii, torch.Tensor)
    assert radii.tolist() == pytest.approx([epoch_radius(X, 20, 0.1), epoch_radius(X, 20, 0.12)], rel=1e-12)
