"""The tutorial's numbers (../shared/TUTORIAL.md), reproduced to 4 significant digits."""

from dataclasses import replace

import pytest

from mbgd.config import TrainConfig
from mbgd.data import load_data
from mbgd.train import fit

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
