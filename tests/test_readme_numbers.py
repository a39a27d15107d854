"""Every number README quotes, each checked against a value computed here independently of mbgd's code under
test.

The theory numbers come from a separate plain-numpy loop over the tutorial's 100 points (epoch map as a
product of 2x2 matrices, radius from the eigenvalues); the training numbers are pinned from the reviewed run
README reports (seed 42, float32, lr 0.1, 20 epochs) at the precision README prints them.
"""

from dataclasses import replace

import numpy as np
import pytest

from mbgd.core import noise_scale, theory
from mbgd.core.config import TrainConfig
from mbgd.core.data import load_data
from mbgd.core.train import fit

TUTORIAL = TrainConfig()
# the tutorial's torch.arange(-5, 5, 0.1)
X_TORCH = load_data(TUTORIAL.data, TUTORIAL.seed).x.double().flatten()
X = X_TORCH.numpy()  # float32's points exactly: the epoch map amplifies a change in the last digit 3e7-fold


# --- an independent reference: plain numpy, no mbgd.core.theory
# -------------------------------------------------


def batch_hessians(batch_size: int) -> list[np.ndarray]:
    """The MSE's Hessian of each batch in the fixed order: (2/m) sum (x, 1)(x, 1)^T (no 1/2 in the tutorial's
    MSE)."""
    out = []
    for start in range(0, len(X), batch_size):
        a = np.stack([X[start : start + batch_size], np.ones(len(X[start : start + batch_size]))], axis=1)
        out.append(2.0 / len(a) * a.T @ a)
    return out


def radius(batch_size: int, lr: float) -> float:
    m = np.eye(2)
    for h in batch_hessians(batch_size):
        m = (np.eye(2) - lr * h) @ m
    return float(max(abs(np.linalg.eigvals(m))))


def first_crossing(batch_size: int, lo: float = 1e-3, hi: float = 1.0, steps: int = 2000) -> float:
    """The smallest lr where the radius reaches 1: a grid, then bisection."""
    grid = np.geomspace(lo, hi, steps)
    stable = lo
    for lr in grid:
        if radius(batch_size, lr) >= 1:
            unstable = lr
            break
        stable = lr
    for _ in range(50):
        mid = (stable + unstable) / 2
        stable, unstable = (mid, unstable) if radius(batch_size, mid) < 1 else (stable, mid)
    return stable


def fastest_lr(batch_size: int, hi: float) -> float:
    """The lr of the smallest radius below `hi`: a dense grid, then golden-section refinement."""
    grid = np.linspace(hi / 2000, hi * 0.999, 2000)
    i = int(np.argmin([radius(batch_size, lr) for lr in grid]))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    phi = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - phi * (b - a), a + phi * (b - a)
        a, b = (a, d) if radius(batch_size, c) < radius(batch_size, d) else (c, b)
    return (a + b) / 2


def beta_and_lambda1() -> tuple[float, float]:
    beta = max(2 * (x * x + 1) for x in X)  # the largest per-sample Hessian trace
    full = 2.0 / len(X) * np.stack([X, np.ones(len(X))], axis=1).T @ np.stack([X, np.ones(len(X))], axis=1)
    return beta, float(max(np.linalg.eigvalsh(full)))


# --- README and docs/research.md: "What it finds", the theory columns and bullets
# ----------------------------------------------


@pytest.mark.parametrize(("batch_size", "readme"), [(1, 0.1044), (10, 0.1277), (20, 0.1291)])
def test_first_instability_is_what_readme_quotes(batch_size: int, readme: float) -> None:
    independent = first_crossing(batch_size)
    assert independent == pytest.approx(readme, abs=5e-5)  # README's 4 digits
    assert theory.first_instability_lr(X_TORCH, batch_size) == pytest.approx(independent, rel=1e-4)


@pytest.mark.parametrize(
    ("batch_size", "readme", "digits"), [(1, 0.02209, 5e-6), (10, 0.0767, 5e-5), (20, 0.1064, 5e-5)]
)
def test_fastest_lr_is_what_readme_quotes(batch_size: int, readme: float, digits: float) -> None:
    independent = fastest_lr(batch_size, first_crossing(batch_size))
    assert independent == pytest.approx(readme, abs=digits)
    assert theory.best_lr(X_TORCH, batch_size) == pytest.approx(independent, rel=2e-3)


def test_batch_size_10_is_stable_again_on_0_1462_to_0_1519() -> None:
    assert radius(10, 0.1461) > 1 > radius(10, 0.1463)
    assert radius(10, 0.1518) < 1 < radius(10, 0.1520)
    (_, first), (low, high) = theory.stable_intervals(X_TORCH, 10)
    assert first == pytest.approx(0.1277, abs=5e-5)
    assert (round(low, 4), round(high, 4)) == (0.1462, 0.1519)


def test_at_lr_0_1_batch_size_1_contracts_by_0_292_but_amplifies_3e7_within_the_epoch() -> None:
    m, largest = np.eye(2), 0.0
    for h in batch_hessians(1):
        m = (np.eye(2) - 0.1 * h) @ m
        largest = max(largest, float(np.linalg.norm(m, 2)))
    assert float(max(abs(np.linalg.eigvals(m)))) == pytest.approx(0.292, abs=5e-4)
    assert largest == pytest.approx(3.0e7, rel=0.05)
    assert theory.spectral_radius(X_TORCH, 1, 0.1) == pytest.approx(0.292, abs=5e-4)
    assert theory.max_transient_amplification(X_TORCH, 1, 0.1) == pytest.approx(largest, rel=1e-6)


# --- README and docs/research.md: batch-size scaling, "What is predicted" and the η*(m) row
# -------------------------------------

# docs/research.md's η*(m) row (m = 50 is 0.057546 -> 0.0575; README once printed 0.0576, a double rounding).
ETA_STAR_ROW = {
    1: 0.0192,
    2: 0.0291,
    3: 0.0352,
    4: 0.0392,
    5: 0.0421,
    10: 0.0495,
    20: 0.0542,
    25: 0.0553,
    50: 0.0575,
    100: 0.0587,
}


def test_beta_lambda1_and_the_critical_batch_size_are_52_16_67_and_3_12() -> None:
    beta, lambda_1 = beta_and_lambda1()
    assert beta == pytest.approx(52.0, abs=0.01)
    assert lambda_1 == pytest.approx(16.67, abs=0.005)
    assert beta / lambda_1 == pytest.approx(3.12, abs=0.005)
    assert 1 / lambda_1 == pytest.approx(0.060, abs=5e-4)
    assert noise_scale.critical_batch_size(X_TORCH) == pytest.approx(beta / lambda_1, rel=1e-6)


@pytest.mark.parametrize(("m", "readme"), sorted(ETA_STAR_ROW.items()))
def test_eta_star_row(m: int, readme: float) -> None:
    beta, lambda_1 = beta_and_lambda1()
    by_hand = m / (beta + lambda_1 * (m - 1))
    assert by_hand == pytest.approx(readme, abs=5e-5)
    assert float(noise_scale.optimal_lr_interpolation(X_TORCH, m)) == pytest.approx(by_hand, rel=1e-6)


# --- README and docs/research.md: the tutorial's comparison, final losses quoted to six digits
# ---------------------------------


@pytest.mark.parametrize(
    ("batch_size", "final", "digits"), [(20, 0.154684, 5e-7), (10, 0.154675, 5e-7), (1, 304.864, 5e-4)]
)
def test_tutorial_final_losses_are_readmes_six_digits(batch_size: int, final: float, digits: float) -> None:
    config = replace(TUTORIAL, batch_size=batch_size)
    history = fit(config, load_data(config.data, config.seed), record_batch_loss=False)
    assert len(history.epoch_losses) == 21
    assert history.epoch_losses[-1] == pytest.approx(final, abs=digits)


def test_tutorial_noise_floor_is_0_1547() -> None:
    data = load_data(TUTORIAL.data, TUTORIAL.seed)
    floor = float(((data.y_eval.double() - data.y_line.double()) ** 2).mean())
    assert floor == pytest.approx(0.1547, abs=5e-5)


def auc_by_hand(losses: list[float]) -> float:
    return float(np.mean(np.log10(losses)))


@pytest.mark.parametrize(("dtype", "readme_ranking"), [("float32", [20, 10, 1]), ("float64", [1, 20, 10])])
def test_ranking_at_the_tutorials_lr_over_seeds_42_to_46(dtype: str, readme_ranking: list[int]) -> None:
    """README: at lr 0.1 the ranking (by auc, the mean over the seeds) is 20 < 10 < 1 in float32 and 1 < 20 <
    10 in float64."""
    means = {}
    for batch_size in (1, 10, 20):
        aucs = []
        for seed in range(42, 47):
            config = replace(TUTORIAL, batch_size=batch_size, seed=seed, dtype=dtype)
            aucs.append(
                auc_by_hand(fit(config, load_data(config.data, seed), record_batch_loss=False).epoch_losses)
            )
        means[batch_size] = float(np.mean(aucs))
    assert sorted(means, key=means.get) == readme_ranking


def test_float64_batch_size_1_at_lr_0_1_ends_at_0_1708() -> None:
    config = replace(TUTORIAL, batch_size=1, dtype="float64")
    assert fit(config, load_data(config.data, config.seed), record_batch_loss=False).epoch_losses[
        -1
    ] == pytest.approx(0.1708, abs=5e-5)


def crossing_between(batch_size: int, stable: float, unstable: float) -> float:
    """Where the radius crosses 1 between a stable and an unstable lr: plain bisection."""
    for _ in range(60):
        mid = (stable + unstable) / 2
        stable, unstable = (mid, unstable) if radius(batch_size, mid) < 1 else (stable, mid)
    return (stable + unstable) / 2


def test_stable_intervals_edges_are_the_radius_crossings_to_a_millionth() -> None:
    first = crossing_between(10, 0.127, 0.128)
    low, high = crossing_between(10, 0.1465, 0.1461), crossing_between(10, 0.1515, 0.1520)
    intervals = theory.stable_intervals(X_TORCH, 10)
    assert intervals == [
        (0.0, pytest.approx(first, rel=1e-6)),
        (pytest.approx(low, rel=1e-6), pytest.approx(high, rel=1e-6)),
    ]
    # an upper end inside the window ends the last interval there; below the first instability, one interval
    assert theory.stable_intervals(X_TORCH, 10, lr_hi=0.15) == [
        (0.0, pytest.approx(first, rel=1e-6)),
        (pytest.approx(low, rel=1e-6), 0.15),
    ]
    assert theory.stable_intervals(X_TORCH, 10, lr_hi=0.1) == [(0.0, 0.1)]
    # the default upper end, 2 x full-batch descent's limit 2/lambda_1 (about 0.38 here), leaves batch size 1
    # one interval up to its first instability, and full batch one up to 2/lambda_1
    lambda_1 = max(np.linalg.eigvalsh(batch_hessians(len(X))[0]))
    assert theory.stable_intervals(X_TORCH, len(X)) == [(0.0, pytest.approx(2 / lambda_1, rel=1e-6))]
    assert theory.stable_intervals(X_TORCH, 1) == [
        (0.0, pytest.approx(crossing_between(1, 0.1, 0.11), rel=1e-6))
    ]
