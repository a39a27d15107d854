"""The training loop: divergence, several features, population members equal to separate fits."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from checks import TUTORIAL, TUTORIAL_DATA
from mbgd.core import train
from mbgd.core.config import ConfigError, DataSpec, TrainConfig
from mbgd.core.data import RegressionData, load_data
from mbgd.core.history import descent_kind
from mbgd.core.train import (
    fit,
    fit_population,
    full_dataset_loss,
    mse_gradient,
    predict,
    training_loader,
)

DATA = TUTORIAL_DATA


def test_too_large_lr_diverges_as_a_result_not_an_error() -> None:
    history = fit(replace(TUTORIAL, batch_size=1, lr=1.0), DATA)
    assert history.diverged
    assert "non-finite" in history.diverged_reason
    assert history.final_loss == math.inf
    assert all(math.isfinite(v) for v in history.epoch_losses + history.batch_losses)
    assert len(history.epoch_losses) < TUTORIAL.epochs + 1


def test_one_batch_loss_per_update() -> None:
    history = fit(replace(TUTORIAL, batch_size=30), DATA)  # 30, 30, 30, 10
    assert history.updates_per_epoch == 4
    assert len(history.batch_losses) == 4 * TUTORIAL.epochs


def test_first_batch_loss_is_the_mse_of_the_first_batch_at_the_initial_weights() -> None:
    history = fit(replace(TUTORIAL, batch_size=20), DATA)
    x, y = DATA.x[:20].view(-1), DATA.y_train[:20]
    assert history.batch_losses[0] == pytest.approx(float(((-10 * x - 20 - y) ** 2).mean()), rel=1e-6)


def test_several_csv_features_recover_the_generating_weights(tmp_path: Path) -> None:
    rows = ["a,b,y"] + [f"{a},{b},{2 * a - 3 * b + 1}" for a in range(-3, 4) for b in range(-2, 3)]
    path = tmp_path / "plane.csv"
    path.write_text("\n".join(rows) + "\n")
    config = TrainConfig(batch_size=5, lr=0.02, epochs=300, dtype="float64", data=DataSpec(csv=str(path)))
    history = fit(config, load_data(config.data, config.seed))
    assert history.w == pytest.approx([2.0, -3.0], abs=1e-6)
    assert history.b == pytest.approx(1.0, abs=1e-6)


def test_drop_last_with_a_batch_larger_than_the_data_is_refused() -> None:
    with pytest.raises(ConfigError, match="no batch"):
        fit(replace(TUTORIAL, batch_size=500, drop_last=True), DATA)


LRS = [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.08, 0.1, 0.12, 0.3, 1.0]


@pytest.mark.parametrize(("dtype", "rel"), [("float32", 1e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("batch_size", [1, 10, 20, 100])
@pytest.mark.parametrize("shuffle", [False, True])
def test_population_member_equals_training_that_lr_alone(
    dtype: str, rel: float, batch_size: int, shuffle: bool
) -> None:
    config = replace(TUTORIAL, batch_size=batch_size, dtype=dtype, shuffle=shuffle, epochs=6)
    together = fit_population(config, DATA, LRS)
    for lr, member in zip(LRS, together, strict=True):
        alone = fit_population(replace(config, lr=lr), DATA, [lr])[0]
        assert member.diverged == alone.diverged
        assert member.epoch_losses == pytest.approx(alone.epoch_losses, rel=rel)


def autograd_epoch_losses(config: TrainConfig, data: RegressionData, lrs: list[float]) -> list[list[float]]:
    """The same population trained the tutorial's way: loss.backward(), then a step under no_grad."""
    dtype = getattr(torch, config.dtype)
    data = data.to(dtype)
    loader = training_loader(config, data)
    lr = torch.tensor(lrs, dtype=dtype)
    w = torch.full((len(lrs), data.n_features), config.init_w, dtype=dtype, requires_grad=True)
    b = torch.full((len(lrs),), config.init_b, dtype=dtype, requires_grad=True)
    curves = []
    for epoch in range(config.epochs + 1):
        with torch.no_grad():
            # Measured as fit measures it: what must agree to the bit are the updates. (With several features,
            # a BLAS matmul and an elementwise sum add in orders that differ between CPUs.)
            curves.append(full_dataset_loss(w.detach(), b.detach(), data.x, data.y_eval).tolist())
        if epoch == config.epochs:
            break
        for xb, yb in loader:
            ((predict(w, b, xb) - yb) ** 2).mean(dim=1).sum().backward()
            with torch.no_grad():
                w -= lr[:, None] * w.grad
                b -= lr * b.grad
            w.grad = None
            b.grad = None
    return [list(curve) for curve in zip(*curves, strict=True)]


THREE_FEATURES = RegressionData(
    x=torch.linspace(-3, 3, 37).reshape(-1, 1) * torch.tensor([[1.0, -0.5, 0.25]])
    + torch.tensor([[0.0, 1.0, -2.0]]),
    y_train=torch.linspace(-10, 8, 37),
    y_eval=torch.linspace(-10, 8, 37),
    feature_names=("a", "b", "c"),
    target_name="y",
    name="three-features",
    source="test",
)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("batch_size", "shuffle"), [(1, False), (7, True), (20, False), (100, True)])
@pytest.mark.parametrize("data", [DATA, THREE_FEATURES], ids=["tutorial", "three-features"])
def test_closed_form_updates_equal_autograd_to_the_bit(dtype, batch_size, shuffle, data) -> None:
    # lr 0.1 at batch size 1 in float32 is the tutorial's run that rounding blows up: any reordering shows
    config = replace(TUTORIAL, batch_size=batch_size, dtype=dtype, shuffle=shuffle, epochs=8)
    lrs = [1e-3, 0.02, 0.05, 0.1] if data is DATA else [1e-3, 0.01, 0.03]
    histories = fit_population(config, data, lrs)
    expected = autograd_epoch_losses(config, data, lrs)
    for history, curve in zip(histories, expected, strict=True):
        finite = [loss for loss in curve if math.isfinite(loss)]
        assert history.epoch_losses == finite[: len(history.epoch_losses)]
        assert len(history.epoch_losses) == len(finite) or history.diverged


def test_stopped_member_keeps_its_curve_and_the_others_go_on() -> None:
    def stop_second_after_epoch_2(epoch: int, losses: torch.Tensor) -> torch.Tensor:
        return torch.tensor([False, epoch == 2])

    first, second = fit_population(
        replace(TUTORIAL, dtype="float64"), DATA, [0.05, 0.1], on_epoch=stop_second_after_epoch_2
    )
    assert len(first.epoch_losses) == TUTORIAL.epochs + 1
    assert second.stopped_epoch == 2
    assert len(second.epoch_losses) == 3
    alone = fit(replace(TUTORIAL, dtype="float64", lr=0.1), DATA)
    assert second.epoch_losses == pytest.approx(alone.epoch_losses[:3], rel=1e-12)


def test_the_epoch_hook_sees_every_epoch_but_the_last_with_the_population_s_losses() -> None:
    seen: list[tuple[int, list[float]]] = []
    config = replace(TUTORIAL, dtype="float64", epochs=3)
    first, second = fit_population(
        config, DATA, [0.05, 0.1], on_epoch=lambda epoch, losses: seen.append((epoch, losses.tolist()))
    )
    assert [epoch for epoch, _ in seen] == [0, 1, 2]
    assert [losses for _, losses in seen] == [
        list(pair) for pair in zip(first.epoch_losses, second.epoch_losses, strict=True)
    ][:3]


def test_epoch_seconds_are_the_wall_clock_since_training_began() -> None:
    import time

    began = time.perf_counter()
    (history,) = fit_population(replace(TUTORIAL, epochs=4), DATA, [0.05])
    took = time.perf_counter() - began
    assert len(history.epoch_seconds) == 5
    assert history.epoch_seconds == sorted(history.epoch_seconds)
    assert 0 <= history.epoch_seconds[0] <= history.epoch_seconds[-1] <= took


def test_shuffled_training_visits_the_points_in_another_order() -> None:
    fixed, shuffled = (
        fit_population(replace(TUTORIAL, batch_size=1, epochs=1, shuffle=shuffle), DATA, [0.01])[0]
        for shuffle in (False, True)
    )
    assert fixed.epoch_losses[0] == shuffled.epoch_losses[0]  # the same start
    assert fixed.epoch_losses[1] != shuffled.epoch_losses[1]


# --- several seeds at once (fit_each) --------------------------------------------------------------------


def recorded(history) -> tuple:
    return (
        history.epoch_losses,
        history.train_losses,
        history.batch_losses,
        history.update_losses,
        history.update_params,
        history.w,
        history.b,
        history.diverged,
        history.diverged_reason,
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 3, 20])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("targets", ["clean", "noisy"])
def test_each_seed_trained_together_records_what_it_records_alone_to_the_bit(
    dtype: str, batch_size: int, shuffle: bool, targets: str
) -> None:
    # Five seeds (their own noise draws; shuffled, their own orders) and their own lrs, 1.0 diverging at
    # batch size 1: each member must equal its own training, whatever the others do.
    base = replace(
        TUTORIAL,
        batch_size=batch_size,
        dtype=dtype,
        shuffle=shuffle,
        epochs=4,
        data=replace(TUTORIAL.data, targets=targets),
    )
    configs = [replace(base, seed=42 + i, lr=lr) for i, lr in enumerate([0.02, 0.1, 1.0, 0.05, 0.05])]
    datasets = [load_data(c.data, c.seed) for c in configs]
    together = train.fit_each(configs, datasets, record_batch_loss=True, record_updates=True)
    for config, data, member in zip(configs, datasets, together, strict=True):
        (alone,) = fit_population(config, data, [config.lr], record_batch_loss=True, record_updates=True)
        assert recorded(member) == recorded(alone)
    assert len({tuple(h.epoch_losses[:1]) for h in together}) == 5  # the seeds' noise differs from the start
    if batch_size == 1:
        assert together[2].diverged
        assert not together[1].diverged


def test_each_seed_with_several_features_equals_its_training_alone() -> None:
    def noisy(seed: int) -> RegressionData:
        noise = torch.randn(37, generator=torch.Generator().manual_seed(seed))
        return replace(THREE_FEATURES, y_train=THREE_FEATURES.y_train + noise, y_eval=THREE_FEATURES.y_eval)

    configs = [replace(TUTORIAL, batch_size=7, shuffle=True, epochs=5, seed=s, lr=0.01) for s in range(3)]
    datasets = [noisy(c.seed) for c in configs]
    together = train.fit_each(configs, datasets, record_updates=True)
    for config, data, member in zip(configs, datasets, together, strict=True):
        assert recorded(member) == recorded(fit_population(config, data, [0.01], record_updates=True)[0])


def test_each_seed_on_other_inputs_is_trained_on_its_own_inputs() -> None:
    moved = replace(DATA, x=DATA.x + 1)
    configs = [replace(TUTORIAL, epochs=2), replace(TUTORIAL, epochs=2, seed=7)]
    first, second = train.fit_each(configs, [DATA, moved])
    assert recorded(second) == recorded(fit_population(configs[1], moved, [0.1])[0])
    assert first.epoch_losses != second.epoch_losses


def test_each_refuses_configs_that_differ_in_more_than_lr_and_seed() -> None:
    with pytest.raises(ConfigError, match="only in lr and seed"):
        train.fit_each([TUTORIAL, replace(TUTORIAL, batch_size=10)], [DATA, DATA])
    with pytest.raises(ConfigError, match="one dataset per config"):
        train.fit_each([TUTORIAL], [DATA, DATA])


# --- the loop's parts, by hand ----------------------------------------------------------------------------


def one_point(y_train: float, y_eval: float) -> RegressionData:
    return RegressionData(
        x=torch.tensor([[1.0]]),
        y_train=torch.tensor([y_train]),
        y_eval=torch.tensor([y_eval]),
        feature_names=("x",),
        target_name="y",
        name="one point",
        source="test",
    )


def test_one_point_training_by_hand() -> None:
    # x = 1, y = 0, w = -10, b = -20, lr 1/8: residual r, gradients 2r for w and b, so r -> r - 2 (2r) / 8
    # = r / 2: -30, -15, -7.5; w = -10 + 7.5, -2.5 + 3.75; b = -20 + 7.5, -12.5 + 3.75.
    # y_eval = 1: residuals -31, -16, -8.5
    config = TrainConfig(batch_size=1, lr=0.125, epochs=2, dtype="float64")
    (h,) = fit_population(config, one_point(0.0, 1.0), [0.125], record_batch_loss=True, record_updates=True)
    assert h.train_losses == [900.0, 225.0, 56.25]
    assert h.epoch_losses == [961.0, 256.0, 72.25]
    assert h.batch_losses == [900.0, 225.0]
    assert h.update_losses == [225.0, 56.25]
    assert h.update_params == [[-2.5, -12.5], [1.25, -8.75]]
    assert (h.w, h.b) == ([1.25], -8.75)
    assert (h.updates_per_epoch, h.samples_per_epoch, h.lr, h.batch_size) == (1, 1, 0.125, 1)
    assert len(h.epoch_seconds) == 3
    assert not h.diverged
    (lean,) = fit_population(
        config, one_point(0.0, 1.0), [0.125], record_updates=True, keep_update_params=False
    )
    assert (lean.update_losses, lean.update_params, lean.batch_losses) == ([225.0, 56.25], [], [])


def test_divergence_is_dated_to_the_epoch_whose_loss_overflows() -> None:
    # lr 1e20: after one update w = -10 + 6e21, b = -20 + 6e21, a loss of about 1.4e44: beyond float32
    config = TrainConfig(batch_size=1, lr=1e20, epochs=3)
    (h,) = fit_population(config, one_point(0.0, 0.0), [1e20], record_batch_loss=True)
    assert h.diverged
    assert h.diverged_reason == "non-finite full-dataset loss at the start of epoch 1"
    assert (h.epoch_losses, h.train_losses, h.batch_losses) == ([900.0], [900.0], [900.0])
    assert (h.w, math.isnan(h.b)) == ([], True)  # a diverged run records no final parameters


def test_a_diverged_run_keeps_only_its_finite_batch_losses_and_updates() -> None:
    # x = 1 then x = 2, y = 0, lr 1e20: the first batch's loss is (-10 - 20)^2 = 900; its update overflows
    # float32, so the second batch's loss and both updates' are not finite: only the 900 is kept
    two_points = replace(
        one_point(0.0, 0.0), x=torch.tensor([[1.0], [2.0]]), y_train=torch.zeros(2), y_eval=torch.zeros(2)
    )
    config = TrainConfig(batch_size=1, lr=1e20, epochs=3)
    (h,) = fit_population(config, two_points, [1e20], record_batch_loss=True, record_updates=True)
    assert h.diverged
    assert (h.batch_losses, h.update_losses, h.update_params) == ([900.0], [], [])


def test_an_empty_population_is_refused() -> None:
    with pytest.raises(ConfigError, match="^at least one learning rate is needed$"):
        fit_population(TUTORIAL, DATA, [])


@pytest.mark.parametrize(("drop_last", "updates", "samples"), [(False, 4, 100), (True, 3, 90)])
def test_samples_per_epoch_leave_out_a_dropped_partial_batch(
    drop_last: bool, updates: int, samples: int
) -> None:
    (h,) = fit_population(replace(TUTORIAL, batch_size=30, drop_last=drop_last, epochs=1), DATA, [0.01])
    assert (h.updates_per_epoch, h.samples_per_epoch) == (updates, samples)


@pytest.mark.parametrize(
    ("batch_size", "n", "kind"),
    [(1, 100, "sgd"), (2, 100, "mini-batch"), (99, 100, "mini-batch"), (100, 100, "full-batch")]
    + [(150, 100, "full-batch"), (1, 1, "full-batch")],
)
def test_descent_kind(batch_size: int, n: int, kind: str) -> None:
    assert descent_kind(batch_size, n) == kind


def test_predict_and_mse_gradient_by_hand() -> None:
    # two models on x = 1, 3: w = 2, b = 1 predicts 3, 7; w = 0, b = -1 predicts -1, -1
    w, b = torch.tensor([[2.0], [0.0]]), torch.tensor([1.0, -1.0])
    x = torch.tensor([[1.0], [3.0]])
    assert predict(w, b, x).tolist() == [[3.0, 7.0], [-1.0, -1.0]]
    # y = 2, 9: residuals (1, -2), (-3, -10); mean of 2 r x and of 2 r over the batch of 2
    grad_w, grad_b = mse_gradient(torch.tensor([[1.0, -2.0], [-3.0, -10.0]]), x)
    assert grad_w.tolist() == [[-5.0], [-33.0]]
    assert grad_b.tolist() == [-1.0, -13.0]
    # two features: x = (1, 2), (3, 4), w = (1, -1), b = 0.5 -> -0.5, -0.5
    x2 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert predict(torch.tensor([[1.0, -1.0]]), torch.tensor([0.5]), x2).tolist() == [[-0.5, -0.5]]
    # batch of 2, residuals (1, 2): grad_w = (1 * (1, 2) + 2 * (3, 4)), grad_b = 3
    grad_w, grad_b = mse_gradient(torch.tensor([[1.0, 2.0]]), x2)
    assert (grad_w.tolist(), grad_b.tolist()) == ([[7.0, 10.0]], [3.0])


@pytest.mark.parametrize("chunk", [1 << 18, 8, 1])
def test_full_dataset_loss_by_hand_whole_or_in_chunks(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(train, "_FULL_LOSS_CHUNK", chunk)  # 8 // 3 models: chunks of 2 points; 1: of 1
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 3.0, 5.0, 4.0], dtype=torch.float64)
    w = torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64)
    # residuals (0, 0, 0, -1, 1), (-1, -2, -3, -5, -4), (-2, -1, 0, 0, 3): squares sum 2, 55, 14 over 5 points
    assert full_dataset_loss(w, b, x, y).tolist() == pytest.approx([0.4, 11.0, 2.8], rel=1e-15)


def test_a_diverged_history_keeps_what_came_before_the_first_non_finite_value() -> None:
    from mbgd.core.train import History, _truncate_at_non_finite

    h = History(lr=1.0, batch_size=1, updates_per_epoch=1, samples_per_epoch=1)
    h.batch_losses = [1.0, 2.0, math.nan, 3.0]
    h.update_losses = [1.0, 2.0, 3.0, 4.0]
    h.update_params = [[0.0, 0.0], [1.0, 1.0], [math.inf, 1.0], [2.0, 2.0]]  # finite loss, infinite w
    _truncate_at_non_finite(h)
    assert (h.batch_losses, h.update_losses, h.update_params) == (
        [1.0, 2.0],
        [1.0, 2.0],
        [[0.0, 0.0], [1.0, 1.0]],
    )
    lean = History(lr=1.0, batch_size=1, updates_per_epoch=1, samples_per_epoch=1)
    lean.batch_losses = [math.inf]
    lean.update_losses = [1.0, math.inf, 2.0]  # no parameters kept
    _truncate_at_non_finite(lean)
    assert (lean.batch_losses, lean.update_losses, lean.update_params) == ([], [1.0], [])


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_torch_thread_trains_to_the_same_bits_as_several(torch_threads, dtype: str) -> None:
    # mbgd.runtime.processes.one_torch_thread relies on it. Tensors well above torch's grain size (32768
    # elements, below which an op runs on one thread anyway): 20,000 points of 5 features, eight lrs, every
    # update's full-dataset loss, each seed on its own targets and order.
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(20_000, 5, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0]) + 0.7
    data = replace(THREE_FEATURES, x=x, y_train=y, y_eval=y, feature_names=tuple("abcde"))
    config = replace(TUTORIAL, batch_size=500, shuffle=True, epochs=2, dtype=dtype)
    seeds = [replace(config, seed=s, lr=0.01 * (s + 1)) for s in range(4)]
    noisy = [replace(data, y_train=y + torch.randn(20_000, generator=generator)) for _ in seeds]

    def trained(threads: int) -> list[tuple]:
        torch_threads(threads)
        population = fit_population(config, data, [0.003 * 2**i for i in range(8)], record_updates=True)
        each = train.fit_each(seeds, noisy, record_batch_loss=True, record_updates=True)
        return [recorded(history) for history in population + each]

    assert trained(1) == trained(2)
