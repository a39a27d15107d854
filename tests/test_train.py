"""The training loop: divergence, several features, population members equal to separate fits."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mbgd.config import ConfigError, DataSpec, TrainConfig
from mbgd.data import load_data
from mbgd.train import fit, fit_population

TUTORIAL = TrainConfig()
DATA = load_data(TUTORIAL.data, TUTORIAL.seed)


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
def test_population_member_equals_training_that_lr_alone(dtype: str, rel: float, batch_size: int, shuffle: bool) -> None:
    config = replace(TUTORIAL, batch_size=batch_size, dtype=dtype, shuffle=shuffle, epochs=6)
    together = fit_population(config, DATA, LRS)
    for lr, member in zip(LRS, together, strict=True):
        alone = fit_population(replace(config, lr=lr), DATA, [lr])[0]
        assert member.diverged == alone.diverged
        assert member.epoch_losses == pytest.approx(alone.epoch_losses, rel=rel)


def test_stopped_member_keeps_its_curve_and_the_others_go_on() -> None:
    def stop_second_after_epoch_2(epoch: int, losses: torch.Tensor) -> torch.Tensor:
        return torch.tensor([False, epoch == 2])

    first, second = fit_population(replace(TUTORIAL, dtype="float64"), DATA, [0.05, 0.1], on_epoch=stop_second_after_epoch_2)
    assert len(first.epoch_losses) == TUTORIAL.epochs + 1
    assert second.stopped_epoch == 2
    assert len(second.epoch_losses) == 3
    alone = fit(replace(TUTORIAL, dtype="float64", lr=0.1), DATA)
    assert second.epoch_losses == pytest.approx(alone.epoch_losses[:3], rel=1e-12)
