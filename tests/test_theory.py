"""Hand-checked claims about the epoch-map and batch-size theory in mbgd.core.theory."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from mbgd.core import noise_scale as N
from mbgd.core import theory as T

F64 = torch.float64
TUTORIAL_X = torch.arange(-5, 5, 0.1)


def t(rows):
    return torch.tensor(rows, dtype=F64)


# --- batch Hessians -------------------------------------------------------


def test_last_partial_batch_is_its_own_mean():
    # x = 0..4, batch 2: batches {0,1}, {2,3}, {4}; H = (2/m) sum a a^T, a = (x, 1).
    hs = T.batch_hessians(t([0.0, 1.0, 2.0, 3.0, 4.0]), 2)
    assert len(hs) == 3
    torch.testing.assert_close(hs[0], t([[1, 1], [1, 2]]))
    torch.testing.assert_close(hs[1], t([[13, 5], [5, 2]]))
    torch.testing.assert_close(hs[2], t([[32, 8], [8, 2]]))  # m = 1, not m = 2


def test_1d_and_column_inputs_agree():
    x = TUTORIAL_X
    for a, b in zip(T.batch_hessians(x, 30), T.batch_hessians(x.reshape(-1, 1), 30), strict=True):
        torch.testing.assert_close(a, b)


def test_batch_larger_than_dataset_is_one_full_batch():
    hs = T.batch_hessians(t([-1.0, 1.0]), 5)
    assert len(hs) == 1
    torch.testing.assert_close(hs[0], t([[2, 0], [0, 2]]))


# --- epoch map ------------------------------------------------------------


def test_epoch_map_applies_first_batch_first():
    # x = [0, 1], batch 1, lr 1/4: F1 = diag(1, 1/2), F2 = projection onto (1, -1)/sqrt2.
    m = T.epoch_map(t([0.0, 1.0]), 1, 0.25)
    torch.testing.assert_close(m, t([[0.5, -0.25], [-0.5, 0.25]]))  # F2 @ F1
    wrong_order = t([[0.5, -0.5], [-0.25, 0.25]])  # F1 @ F2
    assert not torch.allclose(m, wrong_order)


def test_epoch_map_matches_sequential_product_on_tutorial():
    x, lr = TUTORIAL_X, 0.05
    for bs in (1, 3, 20, 100):
        expected = torch.eye(2, dtype=F64)
        for h in T.batch_hessians(x, bs):
            expected = (torch.eye(2, dtype=F64) - lr * h) @ expected
        torch.testing.assert_close(T.epoch_map(x, bs, lr), expected, rtol=1e-9, atol=1e-12)


def test_epoch_map_with_lr_vector_stacks_maps():
    lrs = t([0.25, 0.5])
    maps = T.epoch_map(t([0.0, 1.0]), 1, lrs)
    assert maps.shape == (2, 2, 2)
    torch.testing.assert_close(maps[1], t([[0, 0], [-1, 0]]))  # nilpotent at lr 1/2


# --- spectral radius, stability, best lr ----------------------------------


def test_two_point_batch1_radius_by_hand():
    # M = F2 F1 has tr = c + c^2, det = c (1 - 4 lr), c = 1 - 2 lr:
    # lr 1/4 -> eig {3/4, 0}; lr 1/2 -> nilpotent; lr 3/4 -> |complex pair| = 1; lr 1 -> sqrt 3.
    radii = T.spectral_radius(t([0.0, 1.0]), 1, t([0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(radii, t([0.75, 0.0, 1.0, math.sqrt(3)]), atol=1e-7, rtol=1e-9)


def test_two_point_batch1_stability_edge_and_best_lr():
    # |lambda| = 1 only at lr = 3/4 (det = (1-2lr)(1-4lr) = 1); radius 0 at lr = 1/2.
    theory = T.epoch_map_theory(t([0.0, 1.0]), 1)
    assert theory.first_instability_lr == pytest.approx(0.75, rel=1e-6)
    assert theory.best_lr == pytest.approx(0.5, rel=1e-4)
    assert theory.min_spectral_radius < 1e-2
    assert theory.transient_at_best_lr == pytest.approx(1.0)  # |P1| = |F1| = 1, |M| = 1


def test_full_batch_radius_is_max_abs_one_minus_lr_lambda():
    x = TUTORIAL_X
    eig = torch.linalg.eigvalsh(T.batch_hessians(x, 100)[0])
    lrs = t([0.01, 0.05, 0.1, 0.11, 0.13])
    expected = (1 - lrs[:, None] * eig[None]).abs().amax(dim=1)
    torch.testing.assert_close(T.spectral_radius(x, 100, lrs), expected)


def tutorial_lambda_max() -> float:
    """The tutorial's full Hessian 2 [[mean x^2, mean x], [mean x, 1]]: its top eigenvalue, closed form."""
    xs = [float(v) for v in TUTORIAL_X.to(F64)]
    sxx, sx = sum(v * v for v in xs) / len(xs), sum(xs) / len(xs)
    trace, det = 2 * (sxx + 1), 4 * (sxx - sx * sx)
    return (trace + math.sqrt(trace * trace - 4 * det)) / 2


def test_full_batch_max_stable_lr_is_two_over_lambda_max():
    x = TUTORIAL_X
    assert tutorial_lambda_max() == pytest.approx(16.67, abs=0.005)  # README: lambda_1 = 16.67
    assert T.full_batch_max_stable_lr(x) == pytest.approx(2 / tutorial_lambda_max(), rel=1e-9)
    assert T.first_instability_lr(x, 100) == pytest.approx(2 / tutorial_lambda_max(), rel=1e-5)
    # x = [-1, 1]: H_full = 2 I -> stable iff lr < 1, best lr 1/2 with radius 0.
    theory = T.epoch_map_theory(t([-1.0, 1.0]), 2)
    assert T.full_batch_max_stable_lr(t([-1.0, 1.0])) == pytest.approx(1.0)
    assert theory.first_instability_lr == pytest.approx(1.0, rel=1e-5)
    assert theory.best_lr == pytest.approx(0.5, rel=1e-4)
    assert theory.min_spectral_radius < 1e-3


def test_full_batch_best_lr_is_two_over_eigen_sum():
    # x = [0, 2]: H_full = [[4, 2], [2, 2]], eig 3 -/+ sqrt5:
    # max stable 2/(3+sqrt5), best lr 2/6, min radius (2 sqrt5)/6.
    x = t([0.0, 2.0])
    theory = T.epoch_map_theory(x, 2)
    assert theory.first_instability_lr == pytest.approx(2 / (3 + math.sqrt(5)), rel=1e-5)
    assert T.full_batch_max_stable_lr(x) == pytest.approx(2 / (3 + math.sqrt(5)), rel=1e-12)
    assert theory.best_lr == pytest.approx(1 / 3, rel=1e-4)
    assert theory.min_spectral_radius == pytest.approx(math.sqrt(5) / 3, rel=1e-6)


def test_vectorised_radius_equals_scalar_radius():
    x, lrs = TUTORIAL_X, torch.logspace(-3, 0, 200, dtype=F64)
    radii = T.spectral_radius(x, 1, lrs)
    assert radii.shape == (200,)
    for i in range(0, 200, 17):
        assert float(radii[i]) == pytest.approx(T.spectral_radius(x, 1, float(lrs[i])), rel=1e-9)


def test_tutorial_batch20_lr01_converges():
    assert T.spectral_radius(TUTORIAL_X, 20, 0.1) < 1


def test_tutorial_first_instability_is_first_crossing_of_one():
    x = TUTORIAL_X
    for bs in (1, 10, 20, 100):
        lr_max = T.first_instability_lr(x, bs)
        below = T.spectral_radius(x, bs, torch.linspace(1e-4, lr_max * (1 - 1e-4), 400, dtype=F64))
        assert bool((below < 1).all())
        assert T.spectral_radius(x, bs, lr_max * (1 + 1e-4)) > 1
    # Batch 1 at the tutorial lr 0.1 is (barely) inside the stable range.
    assert T.spectral_radius(x, 1, 0.1) < 1 < T.spectral_radius(x, 1, 0.11)


def test_tutorial_theory_numbers():
    x = TUTORIAL_X
    t1, t100 = T.epoch_map_theory(x, 1), T.epoch_map_theory(x, 100)
    assert t1.first_instability_lr == pytest.approx(0.10443, rel=1e-4)
    assert t100.first_instability_lr == pytest.approx(0.119971, rel=1e-5)
    assert t1.min_spectral_radius < 1e-6 < t100.min_spectral_radius
    for theory in (t1, t100):
        assert 0 < theory.best_lr < theory.first_instability_lr
        assert T.spectral_radius(x, theory.batch_size, theory.best_lr) == pytest.approx(
            theory.min_spectral_radius, rel=1e-6
        )


def test_batch_size_10_is_stable_again_above_its_first_instability():
    x = TUTORIAL_X
    intervals = T.stable_intervals(x, 10)
    assert len(intervals) == 2
    (start, first), (low, high) = intervals
    assert start == 0.0
    assert first == pytest.approx(0.1277, abs=5e-5)  # README's first instability of batch size 10
    assert (low, high) == pytest.approx((0.1462, 0.1519), abs=2e-4)
    # Checked against the radius itself on both sides of each edge, and inside the window.
    for edge, inside in ((low, +1), (high, -1)):
        assert (
            T.spectral_radius(x, 10, edge * (1 + inside * 1e-4))
            < 1
            < T.spectral_radius(x, 10, edge * (1 - inside * 1e-4))
        )
    assert T.spectral_radius(x, 10, 0.14) > 1 > T.spectral_radius(x, 10, 0.149)
    assert T.stable_intervals(x, 20) == [(0.0, pytest.approx(0.1291, abs=5e-5))]  # README's, batch size 20


def test_constant_x_has_no_contracting_lr():
    with pytest.raises(ValueError, match="H_full is singular"):
        T.first_instability_lr(t([2.0, 2.0, 2.0]), 1)


def test_theory_as_dict_is_json_ready():
    d = T.epoch_map_theory(t([0.0, 2.0]), 2).as_dict()
    assert set(d) == {
        "batch_size",
        "first_instability_lr",
        "best_lr",
        "min_spectral_radius",
        "transient_at_best_lr",
    }
    assert isinstance(d["batch_size"], int)
    assert all(type(v) is float for k, v in d.items() if k != "batch_size")
    json.dumps(d)


def test_best_lr_and_min_radius_helpers_agree_with_summary():
    x = t([0.0, 2.0])
    assert T.best_lr(x, 2) == pytest.approx(1 / 3, rel=1e-4)
    assert T.min_spectral_radius(x, 2) == pytest.approx(math.sqrt(5) / 3, rel=1e-6)


# --- transient amplification ----------------------------------------------


def test_transient_of_single_batch_is_norm_of_full_product():
    x = TUTORIAL_X
    for lr in (0.05, 0.1, 0.15):
        expected = torch.linalg.matrix_norm(T.epoch_map(x, 100, lr), ord=2)
        assert T.max_transient_amplification(x, 100, lr) == pytest.approx(float(expected))
    assert T.max_transient_amplification(x, 100, 0.1) < 1


def test_transient_batch1_is_one_below_per_sample_limit_and_above_one_beyond():
    # Each rank-one factor I - lr H_i keeps the direction orthogonal to a_i (norm >= 1), and all
    # factors are contractions while lr <= 2 / max_i lambda(H_i) = 2 / (2 (25 + 1)).
    x = TUTORIAL_X
    assert T.max_transient_amplification(x, 1, 0.03) == pytest.approx(1.0)
    # The first factor alone has eigenvalue 1 - 0.1 * 52 = -4.2.
    assert T.max_transient_amplification(x, 1, 0.1) >= 4.2
    # x = [0, 1], lr 1: |F1| = 1, |F2 F1| = |[[-1, 2], [-2, 1]]| = 3.
    assert T.max_transient_amplification(t([0.0, 1.0]), 1, 1.0) == pytest.approx(3.0)
    assert T.max_transient_amplification(t([0.0, 1.0]), 1, 0.25) == pytest.approx(1.0)


# --- interpolation regime (Ma, Bassily & Belkin) --------------------------


def test_critical_batch_and_optimal_lr_one_dim():
    # x = [-1, 1]: beta = max 2(x^2 + 1) = 4, H_full = 2 I -> lambda_1 = 2, m* = 2.
    x = t([-1.0, 1.0])
    assert N.critical_batch_size(x) == pytest.approx(2.0)
    assert N.optimal_lr_interpolation(x, 1) == pytest.approx(1 / 4)
    assert N.optimal_lr_interpolation(x, 2) == pytest.approx(1 / 3)


def test_critical_batch_and_optimal_lr_two_dim():
    # a = (±2, 0, 1), (0, ±1, 1): H_full = diag(4, 1, 2) -> lambda_1 = 4; beta = 2 (4 + 1) = 10.
    x = t([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert N.critical_batch_size(x) == pytest.approx(2.5)
    assert N.optimal_lr_interpolation(x, 1) == pytest.approx(1 / 10)
    assert N.optimal_lr_interpolation(x, 4) == pytest.approx(2 / 11)


def test_optimal_lr_increases_and_saturates_at_one_over_lambda1():
    x = TUTORIAL_X
    ms = torch.tensor([1, 2, 5, 10, 20, 100, 10**6])
    etas = N.optimal_lr_interpolation(x, ms)
    assert etas.shape == (7,)
    assert bool((etas[1:] > etas[:-1]).all())
    assert float(etas[-1]) == pytest.approx(1 / tutorial_lambda_max(), rel=1e-4)
    torch.testing.assert_close(N.optimal_lr_interpolation(x, [1, 10]), etas[[0, 3]])


# --- noisy regime (McCandlish et al.) -------------------------------------


def test_noise_scale_one_dim_by_hand():
    # x = [0, 1, 2], w = 1, b = 0.5, y = [0, 1, 3]: residuals (1/2, 1/2, -1/2),
    # g = (0, 1), (1, 1), (-2, -1); G = (-1/3, 1/3), |G|^2 = 2/9, tr Sigma = 22/9.
    assert N.gradient_noise_scale(t([0.0, 1.0, 2.0]), t([0.0, 1.0, 3.0]), 1.0, 0.5) == pytest.approx(11.0)


def test_noise_scale_two_dim_by_hand():
    # x = e1, e2, w = 0, b = 0, y = -1: g = (2, 0, 2), (0, 2, 2); G = (1, 1, 2); tr Sigma = 2.
    x = t([[1.0, 0.0], [0.0, 1.0]])
    assert N.gradient_noise_scale(x, t([-1.0, -1.0]), t([0.0, 0.0]), 0.0) == pytest.approx(1 / 3)


def test_noise_scale_infinite_when_mean_gradient_vanishes():
    # Residuals -1 and +1 at the same x cancel in the mean.
    assert N.gradient_noise_scale(t([1.0, 1.0]), t([1.0, -1.0]), 0.0, 0.0) == math.inf


def test_optimal_lr_for_batch_1_is_the_kaczmarz_step_of_the_largest_sample():
    # eta*(1) = 1 / beta with beta = max 2 |a_i|^2 (MSE without 1/2): one update on the largest sample
    # w -= eta * 2 r a moves its residual by -eta * 2 |a|^2 r = -r, exactly to zero.
    from mbgd.core.config import DataSpec, TrainConfig
    from mbgd.core.data import load_data
    from mbgd.core.train import fit

    one_point = DataSpec(n_points=1, x_min=-5.0, x_max=5.0)
    config = TrainConfig(batch_size=1, epochs=1, dtype="float64", data=one_point)
    data = load_data(config.data, config.seed)  # the single point x = -5, |a|^2 = 26
    lr = N.optimal_lr_interpolation(data.x, 1)
    assert lr == pytest.approx(1 / 52)
    history = fit(replace(config, lr=lr), data)
    assert history.train_losses[0] == pytest.approx(25.0)  # (-10 * -5 - 20 - 25)^2
    assert history.train_losses[-1] == pytest.approx(0.0, abs=1e-20)


def test_interpolation_contraction_by_hand():
    # x = [-1, 1]: beta = 4, H_full = 2 I (lambda_min = lambda_1 = 2): g*(m) = 1 - 2m / (4 + 2(m - 1)).
    x = t([-1.0, 1.0])
    assert N.interpolation_contraction(x, 1) == pytest.approx(1 / 2)
    assert N.interpolation_contraction(x, 2) == pytest.approx(1 / 3)
    torch.testing.assert_close(N.interpolation_contraction(x, [1, 2]), t([1 / 2, 1 / 3]))


def test_interpolation_contraction_is_exact_for_batch_1_with_replacement():
    # At eta*(1) = 1/4 each update on a = (+-1, 1) projects the error onto a's orthogonal complement:
    # E|P e|^2 = |e|^2 - E (a.e)^2 / |a|^2 = |e|^2 / 2, the bound's g*(1).
    x, error = t([-1.0, 1.0]), t([0.3, -0.7])
    a = torch.stack([x, torch.ones(2, dtype=F64)], dim=1)
    lr = N.optimal_lr_interpolation(x, 1)
    after = [error - lr * 2 * (row @ error) * row for row in a]
    expected = sum(float(e @ e) for e in after) / 2
    assert expected == pytest.approx(N.interpolation_contraction(x, 1) * float(error @ error))


def test_critical_batch_size_of_a_csv_is_computed_from_its_features(tmp_path):
    from mbgd.core.config import DataSpec
    from mbgd.core.data import load_data

    # The two-dim case above as a CSV: m* = 2.5, eta*(4) = 2/11.
    path = tmp_path / "cross.csv"
    path.write_text("a,b,y\n2,0,1\n-2,0,1\n0,1,1\n0,-1,1\n")
    data = load_data(DataSpec(csv=str(path)), 0)
    assert N.critical_batch_size(data.x) == pytest.approx(2.5)
    assert N.optimal_lr_interpolation(data.x, 4) == pytest.approx(2 / 11)


def test_least_squares_loss_by_hand():
    # y = [1, 2, 2, 3] on x = 0..3: fit 0.6 x + 1.1, residuals -0.1, 0.3, -0.3, 0.1.
    assert T.least_squares_loss(t([0.0, 1.0, 2.0, 3.0]), t([1.0, 2.0, 2.0, 3.0])) == pytest.approx(0.05)
    assert T.least_squares_loss(TUTORIAL_X, -5 * TUTORIAL_X.double()) == pytest.approx(0.0, abs=1e-20)


def test_noise_scale_with_known_covariance():
    # x = 0: g_i = 2 r_i (0, 1). Residuals mu + sigma z_i with z = +-1 (mean 0, variance 1):
    # G = (0, 2 mu), tr Sigma = 4 sigma^2, B_simple = sigma^2 / mu^2.
    mu, sigma = 0.5, 3.0
    z = t([1.0, -1.0, 1.0, -1.0])
    x, y = t([0.0, 0.0, 0.0, 0.0]), -(mu + sigma * z)  # r = w x + b - y with w = b = 0
    assert N.gradient_noise_scale(x, y, 0.0, 0.0) == pytest.approx(sigma**2 / mu**2)
    path = N.gradient_noise_scale_path(x, y, t([[0.0, 0.0], [0.0, 1.0]]))  # b = 1: mean residual 1.5
    torch.testing.assert_close(path, t([sigma**2 / mu**2, sigma**2 / 1.5**2]))


def test_noise_scale_path_equals_the_pointwise_noise_scale():
    torch.manual_seed(0)
    x, y = torch.randn(50, 2, dtype=F64), torch.randn(50, dtype=F64)
    params = torch.randn(7, 3, dtype=F64)
    path = N.gradient_noise_scale_path(x, y, params)
    for point, value in zip(params, path, strict=True):
        expected = N.gradient_noise_scale(x, y, point[:2], float(point[2]))
        assert float(value) == pytest.approx(expected, rel=1e-9)


def test_noise_scale_path_is_infinite_where_the_gradient_vanishes():
    path = N.gradient_noise_scale_path(t([1.0, 1.0]), t([1.0, -1.0]), t([[0.0, 0.0]]))
    assert float(path[0]) == math.inf


PARAMS_SHAPE = r"^params must have shape \(T, d \+ 1\) and y one value per row of x$"


def test_noise_scale_refuses_mismatched_shapes():
    x = t([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"^shapes of x, y and w do not match$"):
        N.gradient_noise_scale(x, t([-1.0, -1.0, 0.0]), t([0.0, 0.0]), 0.0)  # three targets, two rows
    with pytest.raises(ValueError, match=r"^shapes of x, y and w do not match$"):
        N.gradient_noise_scale(x, t([-1.0, -1.0]), t([0.0]), 0.0)  # one weight, two features
    with pytest.raises(ValueError, match=PARAMS_SHAPE):
        N.gradient_noise_scale_path(x, t([-1.0, -1.0]), t([0.0, 0.0, 0.0]))  # one point, not (T, 3)
    with pytest.raises(ValueError, match=PARAMS_SHAPE):
        N.gradient_noise_scale_path(x, t([-1.0, -1.0]), t([[0.0, 0.0]]))  # b missing
    with pytest.raises(ValueError, match=PARAMS_SHAPE):
        N.gradient_noise_scale_path(x, t([-1.0, -1.0, 0.0]), t([[0.0, 0.0, 0.0]]))


def test_noise_scale_path_two_dim_by_hand():
    # as test_noise_scale_two_dim_by_hand: x = e1, e2, y = -1 at theta = 0 -> 1/3; at w = (1, 0), b = 0:
    # residuals (2, 1), g = (4, 0, 4), (0, 2, 2): G = (2, 1, 3), |G|^2 = 14, tr Sigma = (4 + 1 + 1) = 6
    x = t([[1.0, 0.0], [0.0, 1.0]])
    path = N.gradient_noise_scale_path(x, t([-1.0, -1.0]), [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(path, t([1 / 3, 6 / 14]))
    # a tenth of the targets: residuals 0.1, g = (0.2, 0, 0.2), (0, 0.2, 0.2); |G|^2 = 0.06, tr Sigma = 0.02
    small = N.gradient_noise_scale_path(x, t([-0.1, -0.1]), [[0.0, 0.0, 0.0]])
    torch.testing.assert_close(small, t([0.02 / 0.06]))


def test_noise_scale_is_infinite_at_an_exact_fit():
    # y = 2x + 1 fitted exactly: every gradient is 0 (G = 0, tr Sigma = 0) -> inf, not 0/0
    x, y = t([0.0, 1.0]), t([1.0, 3.0])
    assert N.gradient_noise_scale(x, y, 2.0, 1.0) == math.inf
    assert float(N.gradient_noise_scale_path(x, y, [[2.0, 1.0]])[0]) == math.inf


def test_interpolation_contraction_uses_the_smallest_eigenvalue():
    # x = [0, 2]: H_full eig 3 -/+ sqrt5, beta = 2 (4 + 1) = 10: g*(1) = 1 - (3 - sqrt5) / 10,
    # g*(2) = 1 - 2 (3 - sqrt5) / (10 + 3 + sqrt5)
    x = t([0.0, 2.0])
    assert N.interpolation_contraction(x, 1) == pytest.approx(1 - (3 - math.sqrt(5)) / 10, rel=1e-12)
    expected = 1 - 2 * (3 - math.sqrt(5)) / (13 + math.sqrt(5))
    assert N.interpolation_contraction(x, 2) == pytest.approx(expected, rel=1e-12)


def test_batch_sizes_below_one_are_refused_and_one_is_allowed():
    x = t([-1.0, 1.0])
    for bad in (0, [1, 0], torch.tensor([0.5])):
        with pytest.raises(ValueError, match="^batch sizes m must be >= 1$"):
            N.optimal_lr_interpolation(x, bad)
        with pytest.raises(ValueError, match="^batch sizes m must be >= 1$"):
            N.interpolation_contraction(x, bad)
    assert N.optimal_lr_interpolation(x, 1) == pytest.approx(1 / 4)  # beta = 4
    assert isinstance(N.optimal_lr_interpolation(x, 1), float)
    assert isinstance(N.interpolation_contraction(x, 2), float)


# --- the epoch map's parts against plain 2x2 arithmetic ---------------------------------------------------


def matmul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(2)) for j in range(2)] for i in range(2)]


def factor(x: float, lr: float):
    """I - lr H for one sample x: H = 2 (x, 1)(x, 1)^T."""
    return [[1 - lr * 2 * x * x, -lr * 2 * x], [-lr * 2 * x, 1 - lr * 2]]


def spectral_norm(m) -> float:
    (a, b), (c, d) = m
    s = a * a + b * b + c * c + d * d  # eigenvalues of M^T M: (s +- sqrt(s^2 - 4 det^2)) / 2
    det = a * d - b * c
    return math.sqrt((s + math.sqrt(max(s * s - 4 * det * det, 0.0))) / 2)


@pytest.mark.parametrize("xs", [[0.0, 1.0], [0.0, 1.0, 2.0], [0.0, 1.0, 2.0, -1.0, 0.5]])
def test_epoch_map_and_transient_equal_the_ordered_product_by_hand(xs) -> None:
    lr = 0.1
    product, largest = [[1.0, 0.0], [0.0, 1.0]], 0.0
    for x in xs:  # batch size 1: later samples on the left
        product = matmul(factor(x, lr), product)
        largest = max(largest, spectral_norm(product))
    torch.testing.assert_close(T.epoch_map(t(xs), 1, lr), t(product), rtol=1e-12, atol=1e-14)
    assert T.max_transient_amplification(t(xs), 1, lr) == pytest.approx(largest, rel=1e-9)
    lrs = t([lr, 2 * lr])
    assert T.epoch_map(t(xs), 1, lrs).shape == (2, 2, 2)
    torch.testing.assert_close(T.epoch_map(t(xs), 1, lrs)[0], t(product), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("chunk", [4_000_000, 8, 1])
def test_radii_by_hand_in_one_pass_or_in_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    # x = [-1, 1], batch 1: H_k = 2 a_k a_k^T with a = (-1, 1), (1, 1) orthogonal, |a|^2 = 2: each factor
    # scales its own a by 1 - 4 lr, so the epoch map is (1 - 4 lr) I
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", chunk)
    radii = T.spectral_radius(t([-1.0, 1.0]), 1, t([0.1, 0.2, 0.3, 0.6]))
    torch.testing.assert_close(radii, t([0.6, 0.2, 0.2, 1.4]), rtol=1e-12, atol=1e-14)


def test_a_map_that_sends_everything_to_zero_has_radius_zero() -> None:
    # x = [-1, 1] twice, batch 2: each H = 2 I, and lr 1/2 makes every factor the zero matrix
    assert T.spectral_radius(t([-1.0, 1.0, -1.0, 1.0]), 2, 0.5) == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^x must have shape \(n,\) or \(n, d\) with n >= 1, got \(0, 1\)$"):
        T.augmented(t([]))
    with pytest.raises(ValueError, match=r"got \(1, 1, 1\)$"):
        T.augmented(t([[[1.0]]]))
    for bad in (0, 2.5, -1):
        with pytest.raises(ValueError, match=rf"^batch_size must be a positive integer, got {bad!r}$"):
            T.batch_hessians(t([1.0, 2.0]), bad)
    assert len(T.batch_hessians(t([1.0, 2.0, 3.0]), 2.0)) == 2  # a whole float is a batch size
    with pytest.raises(ValueError, match=r"^lr must be a scalar or a 1-D tensor, got shape \(1, 2\)$"):
        T.spectral_radius(t([1.0, 2.0]), 1, t([[0.1, 0.2]]))


def test_first_instability_is_lr_hi_when_nothing_below_it_is_unstable() -> None:
    # x = [-1, 1], batch 2: H = 2 I, radius |1 - 2 lr|: stable below 1 = 2 / lambda_max, where the scan starts
    assert T.first_instability_lr(t([-1.0, 1.0]), 2, lr_hi=0.9) == 0.9
    assert T.first_instability_lr(t([-1.0, 1.0]), 2, lr_hi=1.5) == pytest.approx(1.0, rel=1e-7)
    # the tutorial at batch size 10: README's first instability is 0.1277, so all of (0, 0.125] is stable
    assert T.first_instability_lr(TUTORIAL_X, 10, lr_hi=0.125) == 0.125
    assert T.stable_intervals(TUTORIAL_X, 10, lr_hi=0.125) == [(0.0, 0.125)]


# --- the precision promised (edges to 1e-7 relative, the best lr to 1e-6), against a reference built here
# from scratch: each batch's Hessian, the epoch map as a plain product in batch order, numpy's eigenvalues,
# and a bisection run to the last digits ------------------------------------------------------------

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
