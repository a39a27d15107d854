"""The noisy quadratic model's expected loss (mbgd.core.nqm) against the mean of many simulated runs of
SGD and heavy ball with batches drawn with replacement, simulated here by plain loops."""

import math

import pytest
import torch

from mbgd.core import nqm

RUNS = 20000


def noisy_points() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.linspace(-2.0, 2.0, 7, dtype=torch.float64)[:, None]
    y = -3.0 * x[:, 0] + 0.5 + torch.randn(7, generator=generator, dtype=torch.float64)
    return x, y


def simulated_mean_losses(x, y, lr, *, batch_size, epochs, momentum=0.0, schedule="constant"):
    """The mean full-data MSE over RUNS independent runs after each update, from w = -10, b = -20; an epoch's
    last batch is the n % batch_size samples left, when there are any."""
    generator = torch.Generator().manual_seed(1)
    n = x.shape[0]
    sizes = [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    sizes *= epochs
    updates = len(sizes)
    w = torch.full((RUNS,), -10.0, dtype=torch.float64)
    b = torch.full((RUNS,), -20.0, dtype=torch.float64)
    buf_w, buf_b = torch.zeros_like(w), torch.zeros_like(b)
    xs = x[:, 0]

    def mean_loss() -> float:
        return float(((w[:, None] * xs[None, :] + b[:, None] - y[None, :]) ** 2).mean())

    losses = [mean_loss()]
    for step, size in enumerate(sizes):
        index = torch.randint(n, (RUNS, size), generator=generator)
        residual = w[:, None] * xs[index] + b[:, None] - y[index]
        grad_w = (2 * residual * xs[index]).mean(dim=1)
        grad_b = (2 * residual).mean(dim=1)
        rate = lr * (1 - step / updates) if schedule == "linear" else lr
        buf_w, buf_b = momentum * buf_w + grad_w, momentum * buf_b + grad_b
        w, b = w - rate * buf_w, b - rate * buf_b
        losses.append(mean_loss())
    return losses


@pytest.mark.parametrize(
    ("batch_size", "momentum", "schedule"),
    [(1, 0.0, "constant"), (3, 0.0, "linear"), (2, 0.6, "constant"), (1, 0.5, "linear")],
)
def test_the_expected_loss_is_the_mean_of_many_runs(batch_size: int, momentum: float, schedule: str) -> None:
    x, y = noisy_points()
    lr = 0.05
    epochs = 5
    updates = epochs * math.ceil(7 / batch_size)  # 7 points: batch sizes 2 and 3 end each epoch with 1
    q = nqm.quadratic(x, y)
    start = torch.tensor([-10.0, -20.0])
    predicted = nqm.expected_losses(
        q, [lr], start, batch_size=batch_size, epochs=epochs, momentum=momentum, schedule=schedule
    )[0]
    simulated = simulated_mean_losses(
        x, y, lr, batch_size=batch_size, epochs=epochs, momentum=momentum, schedule=schedule
    )
    assert len(predicted) == len(simulated) == updates + 1
    assert float(predicted[0]) == pytest.approx(simulated[0], rel=1e-12)
    # the mean of 20,000 runs is within a few percent of the expectation (the loss spreads over decades early)
    assert predicted.tolist() == pytest.approx(simulated, rel=0.03)
    assert predicted[-1] < predicted[0] / 4  # it trains: the check above is not of a flat line


def test_the_expected_loss_never_goes_below_the_least_squares_loss_and_starts_at_the_start_s() -> None:
    x, y = noisy_points()
    q = nqm.quadratic(x, y)
    start = torch.tensor([-10.0, -20.0])
    paths = nqm.expected_losses(q, [0.001, 0.01, 0.05], start, batch_size=1, epochs=20)
    direct = float(((-10.0 * x[:, 0] - 20.0 - y) ** 2).mean())
    assert paths[:, 0].tolist() == pytest.approx([direct] * 3, rel=1e-12)
    assert bool((paths >= q.loss_star * (1 - 1e-9)).all())


def test_predicted_updates_count_as_the_objective_counts() -> None:
    assert nqm.updates_to([10.0, 5.0, 2.0, 1.0, 0.5], target=1.0) == 3
    assert nqm.updates_to([10.0, 0.5, 2.0, 0.9, 0.5], target=1.0) == 3  # the last time it was above
    assert nqm.updates_to([0.5, 0.4], target=1.0) == 0
    assert nqm.updates_to([10.0, 5.0, 2.0], target=1.0) is None
    assert nqm.updates_to([10.0, math.inf, 0.5], target=1.0) is None


def test_the_best_prediction_is_the_fewest_updates_over_the_lrs() -> None:
    x, y = noisy_points()
    q = nqm.quadratic(x, y)
    start = torch.tensor([-10.0, -20.0])
    lrs = [0.002, 0.01, 0.03, 0.06]
    best = nqm.predict_best(q, lrs, start, batch_size=7, epochs=40, target_ratio=1e-4)
    target = max(1e-4 * q.loss(start), 1.05 * q.loss_star)
    counts = {
        lr: nqm.updates_to(path.tolist(), target)
        for lr, path in zip(lrs, nqm.expected_losses(q, lrs, start, batch_size=7, epochs=40), strict=True)
    }
    reached = {lr: c for lr, c in counts.items() if c is not None}
    assert reached
    assert best.updates == min(reached.values())
    assert counts[best.lr] == best.updates
