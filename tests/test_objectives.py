"""objectives: every rule a trial is scored by, on small histories and data whose answers are worked by hand
(in the comments); no expected value comes from the functions tested."""

import math

import pytest
import torch

from checks import history
from mbgd.core import objectives as O
from mbgd.core.data import RegressionData


def data(y_train, y_eval, y_line=None) -> RegressionData:
    return RegressionData(
        x=torch.tensor([[0.0], [1.0], [2.0], [3.0]]),
        y_train=torch.tensor(y_train),
        y_eval=torch.tensor(y_eval),
        feature_names=("x",),
        target_name="y",
        name="by hand",
        source="test",
        y_line=None if y_line is None else torch.tensor(y_line),
    )


# x = 0..3, y = (0, 1, 1, 3): least squares y = 0.9 x - 0.1, residuals (0.1, -0.2, 0.7, -0.4), MSE 0.70/4
LS_Y, LS_MSE = [0.0, 1.0, 1.0, 3.0], 0.175


@pytest.mark.parametrize(
    ("objective", "epochs", "per_epoch", "worst"),
    [("updates_to", 5, 4, 21.0), ("updates_to", 5, 1, 6.0), ("epochs_to", 5, 4, 6.0), ("auc", 5, 4, 40.0)]
    + [("final", 5, 4, 1e40)],
)
def test_worst_value_is_one_past_the_budget_or_beyond_any_finite_score(objective, epochs, per_epoch, worst):
    assert O.worst_value(objective, epochs, per_epoch) == worst
    assert type(O.worst_value(objective, epochs, per_epoch)) is float


def test_worst_value_counts_one_update_per_epoch_by_default():
    assert O.worst_value("updates_to", 5) == 6.0


def test_noise_floor_is_the_generating_lines_mse_on_the_recorded_targets():
    # y_eval - y_line = (0, 1, 2, -1): MSE 6/4; the training targets play no part
    assert O.noise_floor(data([9.0] * 4, [1.0, 2.0, 3.0, 0.0], [1.0] * 4)) == pytest.approx(1.5, rel=1e-12)


def test_noise_floor_of_a_csv_is_the_least_squares_mse_on_the_recorded_targets():
    assert O.noise_floor(data([9.0] * 4, LS_Y)) == pytest.approx(LS_MSE, rel=1e-9)
    # twice the targets: four times the MSE
    assert O.noise_floor(data([9.0] * 4, [2 * y for y in LS_Y])) == pytest.approx(4 * LS_MSE, rel=1e-9)


def test_objective_floor_is_least_squares_on_the_training_targets_for_updates_to_only():
    d = data(LS_Y, [2 * y for y in LS_Y], [0.0, 2.0, 2.0, 5.0])
    assert O.objective_floor("updates_to", d) == pytest.approx(LS_MSE, rel=1e-9)
    # the others: the noise floor, (y_eval - y_line) = (0, 0, 0, 1) -> 1/4
    for objective in ("auc", "final", "epochs_to"):
        assert O.objective_floor(objective, d) == pytest.approx(0.25, rel=1e-12)


def test_epochs_to_floor_counts_to_the_first_loss_within_five_percent_boundary_included():
    # floor 20: within 5% means <= 21
    assert O.epochs_to_floor([30.0, 21.5, 21.0, 20.0], 20.0, 3) == 2
    assert O.epochs_to_floor([30.0, 21.5, 20.5], 20.0, 2) == 2
    assert O.epochs_to_floor([20.0], 20.0, 0) == 0
    assert O.epochs_to_floor([30.0, 21.5, 21.1], 20.0, 2) == 3  # never: epochs + 1


def test_updates_target_is_the_ratio_or_five_percent_above_the_optimum_whichever_is_higher():
    assert O.updates_target(100.0, 20.0, 1e-4) == 21.0  # 0.01 < 1.05 x 20
    assert O.updates_target(100.0, 20.0, 0.5) == 50.0
    assert O.updates_target(10.0, 0.0, 0.25) == 2.5


def test_training_loss_path_is_the_start_then_every_update():
    assert O.training_loss_path(history([5.0, 1.0], [4.0, 3.0, 2.0])) == [5.0, 4.0, 3.0, 2.0]
    assert O.training_loss_path(history([5.0])) == [5.0]
    assert O.training_loss_path(history()) == []


@pytest.mark.parametrize(
    ("train", "updates", "diverged", "expected"),
    [
        ([1.0, 0.5], [], True, True),  # flagged diverged, however its losses look
        ([], [], False, True),  # nothing recorded
        ([1.0, 0.5, 0.25], [], False, False),
        ([1.0, 2.0], [], False, True),  # ended above the start
        ([1.0, 0.5, 1.0], [], False, False),  # ended at the start: not above it
        ([1.0, 0.2, 0.5], [], False, False),  # above the second loss, below the first
        ([1.0, 0.5, math.nan], [], False, True),
        ([1.0, 0.5, math.inf], [], False, True),
        # with updates recorded, the update path decides, not the per-epoch losses
        ([1.0, 2.0], [0.5, 0.4], False, False),
        ([1.0, 0.5], [0.5, 3.0], False, True),
        ([1.0, 0.5], [0.5, math.nan, 0.25], False, False),  # finite at the end, below the start
    ],
)
def test_ended_diverged(train, updates, diverged, expected):
    assert O.ended_diverged(history(train, updates, diverged=diverged)) is expected


def test_updates_to_target_counts_from_the_last_update_above_the_target():
    # path (10, 5, 1, 2, 1.04, 1): above 1.04 at 0, 1, 3 -> reached for good after update 4
    h = history([10.0], [5.0, 1.0, 2.0, 1.04, 1.0])
    assert O.updates_to_target(h, 1.04) == 4
    assert O.updates_to_target(h, 1.0) == 5  # above at 0, 1, 3, 4; ending exactly at the target reaches it
    assert O.updates_to_target(h, 10.0) == 0  # never above
    assert O.updates_to_target(h, 0.5) is None  # ends above
    assert O.updates_to_target(history([10.0], [5.0, 1.0], diverged=True), 2.0) is None
    assert O.updates_to_target(history([10.0], [5.0, 20.0]), 30.0) is None  # ended above its start
    assert O.updates_to_target(history(), 30.0) is None


def test_first_touch_counts_to_the_first_loss_at_or_below_the_target():
    h = history([10.0], [5.0, 1.0, 2.0, 1.04, 1.0])
    assert O.first_touch_updates(h, 2.0) == 2
    assert O.first_touch_updates(h, 1.0) == 2
    assert O.first_touch_updates(h, 5.0) == 1
    assert O.first_touch_updates(h, 10.0) == 0
    assert O.first_touch_updates(h, 0.5) is None


def test_samples_seen_counts_whole_epochs_then_full_batches():
    # 100 samples in batches of 30: 30, 30, 30, 10 per epoch
    h = history(batch_size=30, per_epoch=4, samples=100)
    assert [O.samples_seen(h, u) for u in (0, 1, 3, 4, 5, 8, 9)] == [0, 30, 90, 100, 130, 200, 230]
    # the partial batch dropped: 3 updates of 30, 90 samples an epoch
    dropped = history(batch_size=30, per_epoch=3, samples=90)
    assert [O.samples_seen(dropped, u) for u in (2, 3, 4, 7)] == [60, 90, 120, 210]


def test_auc_is_the_mean_log10_loss_capped_at_the_worst_value():
    # log10: 2, 1, 0, -1 -> mean 0.5
    h = history(epochs=[100.0, 10.0, 1.0, 0.1])
    assert O.objective_value("auc", h, epochs=3, floor=1.0) == pytest.approx(0.5, rel=1e-12)
    # a loss of exactly 0 counts as 1e-300: (-300 + 0) / 2
    assert O.objective_value("auc", history(epochs=[0.0, 1.0]), epochs=1, floor=1.0) == pytest.approx(-150)
    assert O.objective_value("auc", history(epochs=[1e50, 1e50]), epochs=1, floor=1.0) == 40.0


def test_final_is_the_last_loss_capped_at_the_worst_value():
    assert O.objective_value("final", history(epochs=[3.0, 2.0, 0.25]), epochs=2, floor=1.0) == 0.25
    assert O.objective_value("final", history(epochs=[3.0, 1e45]), epochs=1, floor=1.0) == 1e40


def test_epochs_to_counts_epochs_to_the_floor():
    h = history(epochs=[3.0, 1.2, 1.0])
    assert O.objective_value("epochs_to", h, epochs=2, floor=1.0) == 2.0
    assert O.objective_value("epochs_to", h, epochs=2, floor=0.5) == 3.0
    assert type(O.objective_value("epochs_to", h, epochs=2, floor=1.0)) is float


def test_updates_to_counts_updates_to_the_target_from_the_initial_training_loss():
    # path (10, 5, 1, 2, 1.04, 1); floor 1 and ratio 1e-4: target max(0.001, 1.05) = 1.05 -> 4 updates
    h = history([10.0], [5.0, 1.0, 2.0, 1.04, 1.0], per_epoch=3)
    assert O.objective_value("updates_to", h, epochs=2, floor=1.0) == 4.0
    # ratio 0.5: target max(5, 1.05) = 5, above it only at the start -> 1 update
    assert O.objective_value("updates_to", h, epochs=2, floor=1.0, target_ratio=0.5) == 1.0
    # floor 2: target 2.1 -> above at 0, 1 only -> 2 updates
    assert O.objective_value("updates_to", h, epochs=2, floor=2.0) == 2.0
    never = history([10.0], [5.0, 1.0, 2.0], per_epoch=3)
    assert O.objective_value("updates_to", never, epochs=2, floor=1.0) == 7.0  # 2 x 3 + 1


@pytest.mark.parametrize(
    ("objective", "worst"), [("auc", 40.0), ("final", 1e40), ("epochs_to", 3.0), ("updates_to", 7.0)]
)
def test_a_diverged_training_scores_the_worst_value(objective, worst):
    h = history([1.0], [0.5], epochs=[1.0, 0.5, 0.25], diverged=True, per_epoch=3)
    assert O.objective_value(objective, h, epochs=2, floor=1.0) == worst


def test_intermediate_value_is_the_running_auc_or_the_current_loss():
    assert O.intermediate_value("auc", [100.0, 0.1]) == pytest.approx(0.5, rel=1e-12)
    assert O.intermediate_value("auc", [0.0]) == pytest.approx(-300)
    assert O.intermediate_value("final", [3.0, 2.0]) == 2.0
    assert O.intermediate_value("epochs_to", [3.0, 2.0, 2.5]) == 2.5
    assert O.intermediate_value("updates_to", [3.0, 1.5]) == 1.5
