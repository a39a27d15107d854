"""Re-training over seeds uses a different seed each time: its own noise (and, shuffled, its own order). The
expected noise floors are computed here from the data of each seed, by hand, not by the code under test."""

from dataclasses import replace

import pytest

from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import load_data
from mbgd.studies import scaling, sweep_summary

TUTORIAL = TrainConfig()
NOISY_SHUFFLED = replace(TUTORIAL, epochs=2, shuffle=True, data=replace(TUTORIAL.data, targets="noisy"))


def floor_by_hand(seed: int) -> float:
    """The generating line's MSE on the noisy targets drawn with this seed."""
    data = load_data(TUTORIAL.data, seed)
    return (
        sum((float(y) - float(line)) ** 2 for y, line in zip(data.y_eval, data.y_line, strict=True)) / data.n
    )


def test_sweep_retrains_each_seed_with_its_own_noise() -> None:
    config = SweepConfig(train=replace(TUTORIAL, epochs=3), seeds=3, batch_sizes=(10,))
    runs = sweep_summary.retrain_over_seeds(config, 10, 0.05)
    assert runs.floors == pytest.approx([floor_by_hand(s) for s in (42, 43, 44)], rel=1e-6)
    assert len(set(runs.floors)) == 3
    finals = [h.epoch_losses[-1] for h in runs.histories]
    assert len(set(finals)) == 3  # each seed's loss is measured on its own noisy targets


def test_sweep_retrains_a_shuffled_order_differently_per_seed() -> None:
    config = SweepConfig(train=NOISY_SHUFFLED, seeds=2, batch_sizes=(10,))
    first, second = sweep_summary.retrain_over_seeds(config, 10, 0.05).histories
    assert first.epoch_losses[0] != second.epoch_losses[0]  # noise differs from the start
    assert first.epoch_losses != second.epoch_losses


def test_scaling_reruns_each_seed_with_its_own_noise_and_order() -> None:
    config = SweepConfig(
        train=NOISY_SHUFFLED,
        seeds=3,
        batch_sizes=(10,),
        objective="updates_to",
    )
    runs = scaling.seed_runs(config, 10, 0.02)
    assert [r.seed for r in runs] == [42, 43, 44]
    targets = [r.target for r in runs]
    assert len(set(targets)) == 3  # each seed's own least-squares optimum
    paths = [tuple(r.history.update_losses) for r in runs]
    assert len(set(paths)) == 3


def test_scaling_reruns_the_fixed_order_noise_free_regime_per_seed() -> None:
    """Noise-free targets, fixed order: the targets are the same line for every seed, so what the seeds change
    is only recorded as each run's seed; the runs themselves agree (nothing random is left)."""
    config = SweepConfig(
        train=replace(TUTORIAL, epochs=2), seeds=2, batch_sizes=(10,), objective="updates_to"
    )
    first, second = scaling.seed_runs(config, 10, 0.02)
    assert (first.seed, second.seed) == (42, 43)
    assert first.history.update_losses == second.history.update_losses
