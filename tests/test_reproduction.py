"""The tutorial's numbers (../shared/TUTORIAL.md), reproduced to 4 significant digits."""

from dataclasses import replace

import pytest
import torch

from mbgd.core.config import TrainConfig, build_train_config, load_preset
from mbgd.core.data import load_data
from mbgd.core.train import fit

TUTORIAL = TrainConfig()
CHECK_VALUES_FLOAT32 = {
    20: [599.3, 153.1, 37.56, 9.319],
    10: [599.3, 993.1, 199.7, 91.37],
    100: [599.3, 345.6, 204.1, 123.3],
}
NOISE_FLOOR = 0.155


def tutorial_curve(batch_size: int, dtype: str = "float32") -> list[float]:
    config = replace(TUTORIAL, batch_size=batch_size, dtype=dtype)
    return fit(config, load_data(config.data, config.seed)).epoch_losses


@pytest.mark.parametrize("batch_size", sorted(CHECK_VALUES_FLOAT32))
def test_first_epochs_match_tutorial_check_values(batch_size: int) -> None:
    curve = tutorial_curve(batch_size)
    assert curve[:4] == pytest.approx(CHECK_VALUES_FLOAT32[batch_size], rel=5e-4)


def test_batch_size_20_matches_tutorial_curve_in_float64() -> None:
    curve = tutorial_curve(20, "float64")
    assert curve[:4] == pytest.approx([599.2755, 153.0675, 37.56236, 9.319268], rel=5e-7)


def test_curve_has_one_value_per_epoch_plus_final() -> None:
    assert len(tutorial_curve(20)) == TUTORIAL.epochs + 1


@pytest.mark.parametrize("batch_size", [10, 20])
def test_mini_batches_reach_the_noise_floor_by_epoch_19(batch_size: int) -> None:
    curve = tutorial_curve(batch_size)
    assert curve[19] == pytest.approx(NOISE_FLOOR, abs=0.005)


def test_sgd_does_not_settle_at_lr_0_1() -> None:
    curve = tutorial_curve(1)
    assert min(curve[10:]) > 10 * NOISE_FLOOR


def test_float64_batch_size_1_at_lr_01_reaches_the_floor_only_with_float64_targets() -> None:
    preset = build_train_config(load_preset("experiments/tutorial-float64-targets.toml"))
    config = replace(preset, batch_size=1)
    assert (config.dtype, config.data.targets_dtype, config.lr) == ("float64", "float64", 0.1)
    float32_targets = replace(config, data=replace(config.data, targets_dtype="float32"))
    exact = load_data(config.data, config.seed)
    rounded = load_data(float32_targets.data, config.seed)
    # The same x and noise; only the targets' arithmetic differs (by float32 rounding).
    assert torch.equal(exact.x, rounded.x)
    assert 0 < float((exact.y_train - rounded.y_train.double()).abs().max()) < 1e-5
    noise_floor = float(((exact.y_eval - exact.y_line) ** 2).mean())
    assert noise_floor == pytest.approx(0.15468, abs=1e-4)
    assert fit(config, exact).final_loss == pytest.approx(noise_floor, rel=1e-4)
    assert fit(float32_targets, rounded).final_loss == pytest.approx(0.1708, abs=5e-4)
    assert TrainConfig().data.targets_dtype == "float32"  # the tutorial's
