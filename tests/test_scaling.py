"""Batch-size scaling: counting updates to the target, the noisy target, the knee fit, bad input, runs."""

import json
import math
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

import checks
from checks import TUTORIAL, TUTORIAL_DATA, runs_after
from mbgd.cli.main import main
from mbgd.core import theory
from mbgd.core.config import ConfigError, SweepConfig
from mbgd.core.data import RegressionData, load_data
from mbgd.core.objectives import (
    ended_diverged,
    first_touch_updates,
    objective_floor,
    objective_value,
    samples_seen,
    updates_target,
    updates_to_target,
)
from mbgd.core.scaling_config import ScalingConfig, build_scaling_config
from mbgd.core.train import fit_population, full_dataset_loss
from mbgd.reports import scaling_markdown as scaling_report
from mbgd.reports import scaling_summary
from mbgd.studies import scaling
from mbgd.studies.storage import open_storage, study_settings
from mbgd.studies.sweep import run_study
from mbgd.studies.sweep_summary import retrain_over_seeds
from test_readme_numbers import beta_and_lambda1

DATA = TUTORIAL_DATA


def history(train_losses, update_losses, **settings):
    """checks.history with the training losses as the epoch losses too."""
    return checks.history(train_losses, update_losses, train_losses, **settings)


# --- counting updates, samples and epochs -----------------------------------------------------------------


def test_updates_to_counts_from_where_the_loss_stays_at_the_target_to_the_end() -> None:
    # Losses at the start, then after updates 1..8: 100, 50, 9, 1, 3, 0.5, 0.9, 1.0, 0.2.
    # Update 3 touches 1.0 first, update 4 leaves it again; from update 5 on it stays at or below 1.0.
    h = history([100.0, 0.2], [50.0, 9.0, 1.0, 3.0, 0.5, 0.9, 1.0, 0.2])
    assert updates_to_target(h, 1.0) == 5
    assert first_touch_updates(h, 1.0) == 3
    assert updates_to_target(h, 0.1) is None
    assert first_touch_updates(h, 0.1) is None


def test_a_run_that_touches_the_target_and_ends_above_it_never_reached_it() -> None:
    h = history([100.0, 2.0], [50.0, 9.0, 1.0, 3.0, 0.5, 2.0, 2.0, 2.0])
    assert updates_to_target(h, 1.0) is None
    assert first_touch_updates(h, 1.0) == 3


def test_a_run_that_ends_above_its_initial_loss_is_diverged_whatever_it_touched() -> None:
    # Finite all along (a float32 loss near 1e33 is), below the target at update 2, above the start at the
    # end.
    h = history([100.0, 1e33], [50.0, 0.5, 0.4, 1e33])
    assert ended_diverged(h)
    assert updates_to_target(h, 1e34) is None  # even a target the final loss is under: the run failed
    assert first_touch_updates(h, 1.0) == 2
    assert not ended_diverged(history([100.0, 99.0], [99.0]))


def test_updates_to_is_zero_when_training_starts_and_stays_at_the_target() -> None:
    assert updates_to_target(history([0.5, 0.4], [0.6, 0.4]), 1.0) == 0
    assert updates_to_target(history([0.5, 0.4], [1.5, 0.4]), 1.0) == 2


def test_samples_count_the_last_partial_batch_as_it_is() -> None:
    # 100 points in batches of 30: 30, 30, 30, 10 per epoch.
    h = history([1.0], [], batch_size=30, per_epoch=4, samples=100)
    assert [samples_seen(h, u) for u in (1, 3, 4, 5, 8, 9)] == [30, 90, 100, 130, 200, 230]
    dropped = history([1.0], [], batch_size=30, per_epoch=3, samples=90)  # drop_last
    assert samples_seen(dropped, 4) == 120


def test_updates_to_objective_scores_never_and_diverged_as_one_update_past_the_budget() -> None:
    never = history([100.0, 50.0, 40.0], [90.0] * 8)
    assert objective_value("updates_to", never, epochs=2, floor=0.0, target_ratio=0.01) == 2 * 4 + 1
    assert objective_value("updates_to", history([100.0], [], diverged=True), epochs=20, floor=0.0) == 81
    reached = history([100.0, 0.5], [50.0, 0.9, 0.5, 0.5])
    assert objective_value("updates_to", reached, epochs=1, floor=0.0, target_ratio=0.01) == 2


def test_noisy_target_is_5_percent_above_the_least_squares_loss_when_that_is_higher() -> None:
    # noise-free: the ratio of the initial loss
    assert updates_target(600.0, 0.0, 1e-4) == pytest.approx(0.06)
    assert updates_target(600.0, 0.15, 1e-4) == pytest.approx(0.1575)  # noisy: the optimum's loss + 5%
    noisy = load_data(replace(TUTORIAL.data, targets="noisy"), 42)
    optimum = objective_floor("updates_to", noisy)
    assert optimum == pytest.approx(theory.least_squares_loss(noisy.x, noisy.y_train))
    assert optimum < objective_floor("epochs_to", noisy)  # below the generating line's loss, the noise floor
    assert objective_floor("updates_to", DATA) == pytest.approx(0.0, abs=1e-10)


# --- recording every update -------------------------------------------------------------------------------


def test_recorded_update_losses_are_the_training_loss_after_each_update() -> None:
    config = replace(TUTORIAL, batch_size=30, epochs=3, lr=0.05, dtype="float64")  # 30, 30, 30, 10
    (h,) = fit_population(config, DATA, [0.05], record_updates=True)
    assert len(h.update_losses) == len(h.update_params) == 4 * 3
    params = torch.tensor(h.update_params, dtype=torch.float64)
    x, y = DATA.x.double(), DATA.y_train.double()
    torch.testing.assert_close(
        torch.tensor(h.update_losses, dtype=torch.float64),
        full_dataset_loss(params[:, :1], params[:, 1], x, y),
    )
    # The loss after an epoch's last (partial) update is the next epoch's starting training loss.
    assert [h.update_losses[4 * e - 1] for e in (1, 2, 3)] == pytest.approx(h.train_losses[1:], rel=1e-12)
    # By hand: the first update on the first 30 points from (w, b) = (-10, -20).
    x30, y30 = x[:30, 0], y[:30]
    residual = -10 * x30 - 20 - y30
    w, b = -10 - 0.05 * float((2 * residual * x30).mean()), -20 - 0.05 * float((2 * residual).mean())
    assert h.update_params[0] == pytest.approx([w, b], rel=1e-12)


def test_recording_updates_changes_no_curve_and_members_equal_training_alone() -> None:
    config = replace(TUTORIAL, batch_size=10, epochs=4, shuffle=True)
    lrs = [0.01, 0.05, 0.1, 1.0]
    plain = fit_population(config, DATA, lrs)
    recorded = fit_population(config, DATA, lrs, record_updates=True)
    for a, b in zip(plain, recorded, strict=True):
        assert a.epoch_losses == b.epoch_losses
        assert not a.update_losses
    alone = fit_population(replace(config, lr=0.05), DATA, [0.05], record_updates=True)[0]
    assert recorded[1].update_losses == pytest.approx(alone.update_losses, rel=1e-5)
    diverged = recorded[3]
    assert diverged.diverged
    assert all(math.isfinite(v) for v in diverged.update_losses)
    assert len(diverged.update_losses) == len(diverged.update_params) < 4 * 10


def test_sweep_study_with_updates_to_scores_each_trial_by_its_updates(tmp_path: Path) -> None:
    config = SweepConfig(
        train=replace(TUTORIAL, epochs=25),
        objective="updates_to",
        batch_sizes=(100,),
        n_trials=3,
        population=3,
        seeds=2,
        lr_min=0.095,
        lr_max=0.11,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )
    study = run_study(config, DATA, 100, open_storage(config.storage))
    values = [t.value for t in study.trials]
    assert all(v == int(v) and 1 <= v <= 25 * 1 + 1 for v in values)
    assert study.best_value < 26  # the full batch reaches 1e-4 x its initial loss within 25 updates here
    seeds = retrain_over_seeds(config, 100, study.best_params["lr"])
    assert seeds.objective_values == [study.best_value] * 2  # noise-free targets: every seed trains alike


def test_perfect_scaling_ends_where_samples_exceed_the_smallest_batch_by_a_quarter() -> None:
    def summary(samples: dict[int, float | None]) -> dict:
        rows = {
            str(b): {"fixed_order": {"interpolation": {"samples_to_target": v}}} for b, v in samples.items()
        }
        return {"by_batch_size": rows}

    leaves = summary({1: 100, 2: 110, 4: 124, 8: 200, 16: 120})
    assert scaling_report.perfect_scaling_up_to(leaves, "fixed_order", "interpolation") == (4, 8)
    throughout = summary({1: 100, 2: None, 4: 90})  # never-reached batch sizes are skipped
    assert scaling_report.perfect_scaling_up_to(throughout, "fixed_order", "interpolation") == (4, None)


def test_report_md_gets_the_scaling_section_of_the_same_folder(tmp_path: Path) -> None:
    assert scaling_report.scaling_section(tmp_path) == ""
    config = build_scaling_config(
        {
            "batch_sizes": "20",
            "order": "fixed",
            "targets": "clean",
            "n_trials": 1,
            "population": 1,
            "seeds": 1,
            "storage": f"sqlite:///{tmp_path / 'o.db'}",
        }
    )
    result = scaling.measure_scaling(config, open_storage(config.sweep.storage))
    (tmp_path / "scaling.json").write_text(json.dumps(scaling_summary.summarize(result)))
    section = scaling_report.scaling_section(tmp_path)
    assert section.startswith("\n## 4. Scaling")
    assert "![" in section


# --- the knee fit and the config --------------------------------------------------------------------------


def test_knee_fit_recovers_e_min_over_s_min() -> None:
    sizes = [1, 2, 5, 10, 20, 50, 100]
    fit = scaling.fit_critical_batch(sizes, [10 + 200 / b for b in sizes])
    assert fit.s_min == pytest.approx(10)
    assert fit.e_min == pytest.approx(200)
    assert fit.critical_batch_size == pytest.approx(20)
    # Perfect scaling throughout: no knee in sight; never-reached points (nan) are left out.
    perfect = scaling.fit_critical_batch([1, 2, 4, 8], [400, 200, math.nan, 50])
    assert perfect.e_min == pytest.approx(400)
    assert perfect.critical_batch_size > 1e9
    # Better than perfect (a negative s_min): 1/B alone, no knee.
    faster = scaling.fit_critical_batch([1, 2, 4], [400, 150, 50])
    assert faster.s_min == 0
    assert faster.critical_batch_size == math.inf


def two_points(y: list[float]):
    """x = [-1, 1]: beta = 4, lambda_1 = 2."""
    x = torch.tensor([-1.0, 1.0])
    y = torch.tensor(y)
    return RegressionData(x[:, None], y, y, ("x",), "y", "two points", "test")


def test_lr_range_left_to_theory_is_half_sgd_step_to_twice_the_full_batch_limit() -> None:
    data = two_points([0.0, 0.0])  # -> [1/8, 2]
    resolved = scaling.resolve_lr_range(ScalingConfig(), data)
    assert (resolved.sweep.lr_min, resolved.sweep.lr_max) == pytest.approx((0.125, 2.0))
    given = scaling.resolve_lr_range(build_scaling_config({"lr_min": 0.01}), data)
    assert (given.sweep.lr_min, given.sweep.lr_max) == pytest.approx((0.01, 2.0))


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # heavy ball 0.5: the low end times 1 - 0.5, the high end times 1 + 0.5
        ({"optimizer": "momentum", "momentum": 0.5}, (0.0625, 3.0)),
        ({"schedule": "linear"}, (0.0625, 2.0)),  # a linear decay halves the low end
        # y = 2x + 1 from w = -10, b = -20: b is the farthest, d = 21; 30 epochs of 2 updates at batch size 1
        ({"optimizer": "adam"}, (21 / (2 * 30 * 2), 42.0)),
    ],
)
def test_lr_range_left_to_theory_follows_the_update_rule(settings: dict, expected: tuple) -> None:
    config = build_scaling_config(settings)
    resolved = scaling.resolve_lr_range(config, two_points([-1.0, 3.0]))
    assert (resolved.sweep.lr_min, resolved.sweep.lr_max) == pytest.approx(expected)


def test_the_noisy_regime_s_low_end_is_a_quarter_of_the_lr_that_just_reaches_the_target_in_budget() -> None:
    """x = [-1, 1]: the full-data Hessian 2 E[(x, 1)(x, 1)^T] = 2 I, lambda_min = 2; y = 2x + 1 lies on a
    line, so the target is 1e-4 x the initial loss: ln(1e4) / (2 x 30 epochs x 2 updates) / 4 = 0.0192, below
    the interpolation theory's 1/8. Only the noisy regime's studies use it; a given lr_min is kept."""
    resolved = scaling.resolve_lr_range(ScalingConfig(), two_points([-1.0, 3.0]))
    expected = math.log(1e4) / (2 * 30 * 2) / 4
    assert resolved.noisy_lr_min == pytest.approx(expected, rel=1e-9)
    assert resolved.study_config("fixed", "noisy").lr_min == pytest.approx(expected, rel=1e-9)
    assert resolved.study_config("fixed", "clean").lr_min == pytest.approx(0.125)
    assert resolved.as_params()["lr_min_noisy"] == repr(resolved.noisy_lr_min)
    momentum = scaling.resolve_lr_range(
        build_scaling_config({"optimizer": "momentum", "momentum": 0.5}), two_points([-1.0, 3.0])
    )
    assert momentum.noisy_lr_min == pytest.approx(expected * 0.5, rel=1e-9)
    given = scaling.resolve_lr_range(build_scaling_config({"lr_min": 0.01}), two_points([-1.0, 3.0]))
    assert given.noisy_lr_min is None
    assert given.study_config("fixed", "noisy").lr_min == 0.01
    assert "lr_min_noisy" not in given.as_params()


def test_each_order_and_regime_has_its_own_studies_and_target_ratio_in_the_settings() -> None:
    config = build_scaling_config({"name": "s"})
    names = {config.study_config(o, t).study_name(4) for o in config.orders for t in config.targets}
    assert names == {
        "s-fixed-interpolation-b4",
        "s-fixed-noisy-b4",
        "s-shuffled-interpolation-b4",
        "s-shuffled-noisy-b4",
    }
    shuffled_noisy = config.study_config("shuffled", "noisy")
    assert shuffled_noisy.train.shuffle
    assert shuffled_noisy.train.data.targets == "noisy"
    assert study_settings(shuffled_noisy, 4)["target_ratio"] == 1e-4
    assert "target_ratio" not in study_settings(replace(shuffled_noisy, objective="auc"), 4)
    assert build_scaling_config({"order": "fixed", "targets": "noisy"}).orders == ("fixed",)
    # a preset's shuffle picks the order
    assert build_scaling_config({"shuffle": True}).orders == ("shuffled",)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"batch_sizes": ""}, "at least one batch size"),
        ({"batch_sizes": "1,0"}, "batch sizes must be >= 1"),
        ({"target_ratio": 0.0}, "target_ratio must be in (0, 1)"),
        ({"target_ratio": 1.0}, "target_ratio must be in (0, 1)"),
        ({"targets": "dirty"}, "targets must be one of"),
        ({"objective": "auc"}, "scaling tunes for updates_to"),
    ],
)
def test_bad_scaling_config_is_refused(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_scaling_config(values)


# --- measuring ----------------------------------------------------------------------------------------------


def test_measured_points_count_updates_samples_and_epochs_of_each_seed(tmp_path: Path) -> None:
    config = build_scaling_config(
        {
            "name": "m",
            "batch_sizes": "30,100",
            "order": "fixed",
            "targets": "clean",
            "n_trials": 3,
            "population": 3,
            "seeds": 2,
            "epochs": 25,
            "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        }
    )
    lines: list[str] = []
    result = scaling.measure_scaling(config, open_storage(config.sweep.storage), progress=lines.append)
    assert len(lines) == 2
    (curve,) = result.curves
    assert curve.regime == "interpolation"
    assert [p.batch_size for p in curve.points] == [30, 100]
    study = optuna.load_study(study_name="m-fixed-interpolation-b30", storage=config.sweep.storage)
    assert len(study.trials) == 3
    point = curve.points[0]
    assert point.best_lr == pytest.approx(study.best_params["lr"])
    for run in point.runs:
        if run.updates is not None:
            batches = [30, 30, 30, 10]  # 100 points in batches of 30: the last one partial
            assert run.samples == sum(batches[i % 4] for i in range(run.updates))
            assert run.epochs == pytest.approx(run.samples / 100)
            losses = [run.history.train_losses[0], *run.history.update_losses]  # before and after each update
            assert losses[run.updates] <= run.target < min(losses[: run.updates])
            assert len(run.noise_scales) == len(run.history.update_params) + 1
    summary = scaling_summary.summarize(result)
    row = summary["by_batch_size"]["30"]["fixed_order"]["interpolation"]
    assert {"best_lr", "eta_star", "updates_to_target", "samples_to_target", "epochs_to_target"} <= set(row)
    # by hand: the largest per-sample trace, the full Hessian's eigenvalue
    beta, lambda_1 = beta_and_lambda1()
    assert row["eta_star"] == pytest.approx(30 / (beta + lambda_1 * 29), rel=1e-6)
    assert summary["critical_batch_size_theory"] == pytest.approx(3.12, abs=0.005)  # README: m* = 3.12
    assert summary["noise_scale_at_target"] is None  # no noisy regime ran
    json.dumps(summary, allow_nan=False)
    markdown = scaling_report.scaling_markdown(summary)
    assert "| 30 |" in markdown
    assert "m* = β/λ₁" in markdown


@pytest.mark.slow
def test_scaling_command_tracks_trials_logs_figures_and_resumes(tracking_store: str, tmp_path: Path) -> None:
    args = [
        "scaling",
        "--batch-sizes",
        "1,10,100",
        "--n-trials",
        "3",
        "--population",
        "3",
        "--seeds",
        "2",
        "--epochs",
        "25",
        "--name",
        "tiny",
        "--output-dir",
        str(tmp_path / "results"),
    ]
    runs = runs_after(args, tracking_store, max_results=500)
    client = MlflowClient(tracking_store)
    (parent,) = [r for r in runs if r.info.run_name == "scaling-tiny"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED"
    # <order>-<regime>-best-b<B>: the models
    best_runs = [c for c in children if "trial" not in c.data.params]
    assert all("-best-b" in c.info.run_name for c in best_runs)
    assert best_runs
    children = [c for c in children if "trial" in c.data.params]
    assert len(children) == 3 * 2 * 2 * 3  # batch sizes x orders x regimes x trials
    assert {c.data.params["study_name"] for c in children} == {
        f"tiny-{o}-{r}-b{b}"
        for o in ("fixed", "shuffled")
        for r in ("interpolation", "noisy")
        for b in (1, 10, 100)
    }
    assert any(c.info.run_name.startswith("shuffled-noisy-b10-trial") for c in children)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    figures = {"scaling_updates.png", "scaling_samples.png", "scaling_lr.png"}
    assert figures | {"scaling.json", "scaling.md"} <= artifacts
    summary = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "scaling.json", str(tmp_path))).read_text()
    )
    assert set(summary["by_batch_size"]) == {"1", "10", "100"}
    assert set(summary["by_batch_size"]["10"]) == {"fixed_order", "shuffled"}
    assert set(summary["by_batch_size"]["10"]["shuffled"]) == {"interpolation", "noisy"}
    assert summary["critical_batch_size_theory"] == pytest.approx(3.12, abs=0.005)  # README: m* = 3.12
    assert summary["noise_scale_at_target"] > 0
    assert parent.data.metrics["critical_batch_size_theory"] == pytest.approx(
        summary["critical_batch_size_theory"]
    )
    assert len(client.get_metric_history(parent.info.run_id, "updates_to_target/fixed-interpolation")) >= 1
    assert client.get_metric_history(parent.info.run_id, "noise_scale/fixed-noisy/b100")
    assert "Scaling" in parent.data.tags["mlflow.note.content"]
    assert (tmp_path / "results" / "scaling_updates.png").is_file()
    assert json.loads((tmp_path / "results" / "scaling.json").read_text()) == summary

    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    study = optuna.load_study(
        study_name="tiny-fixed-noisy-b10", storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    assert len(study.trials) == 3
    trial_runs = [r for r in client.search_runs(["0"], max_results=500) if "trial" in r.data.params]
    assert len(trial_runs) == 36


def test_each_study_s_label_comes_from_the_config_not_from_its_name() -> None:
    config = ScalingConfig(sweep=replace(ScalingConfig().sweep, batch_sizes=(1, 10), name="my-b2-run"))
    labels = config.study_labels()
    assert labels["my-b2-run-fixed-interpolation-b10"] == "fixed-interpolation-"
    assert labels["my-b2-run-shuffled-noisy-b1"] == "shuffled-noisy-"
    assert len(labels) == 2 * 2 * 2


@pytest.mark.parametrize(
    ("settings", "predicted"),
    [
        ({"optimizer": "momentum", "momentum": 0.5, "schedule": "linear"}, True),
        ({"optimizer": "adam"}, False),
    ],
)
def test_scaling_json_carries_the_rule_and_the_noisy_quadratic_model_s_prediction_where_it_is_exact(
    tmp_path: Path, settings: dict, predicted: bool
) -> None:
    from mbgd.core import nqm

    config = build_scaling_config(
        {
            "batch_sizes": "20,100",
            "order": "shuffled",
            "targets": "noisy",
            "n_trials": 2,
            "population": 2,
            "seeds": 2,
            "scan": 16,
            "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
            **settings,
        }
    )
    result = scaling.measure_scaling(config, open_storage(config.sweep.storage))
    summary = scaling_summary.summarize(result)
    assert (summary["optimizer"], summary["schedule"]) == (
        settings["optimizer"],
        settings.get("schedule", "constant"),
    )
    assert summary["momentum"] == settings.get("momentum")
    (curve,) = result.curves
    if not predicted:  # Adam's update is not linear in the gradient: no exact model
        assert summary["prediction"] is None
        assert all(p.predicted is None for p in curve.points)
        assert summary["by_batch_size"]["20"]["shuffled"]["noisy"]["predicted_updates"] is None
        return
    assert summary["prediction"] == "noisy quadratic model"
    study_train = curve.study_config.train  # the noisy targets
    data = scaling.training_view(load_data(study_train.data, study_train.seed))
    expected = nqm.predict_scaling(
        curve.study_config.train,
        data,
        (20, 100),
        (curve.study_config.lr_min, curve.study_config.lr_max),  # the regime's own range
        1e-4,
    )
    assert {p.batch_size: p.predicted for p in curve.points} == expected
    for batch_size in ("20", "100"):
        row = summary["by_batch_size"][batch_size]["shuffled"]["noisy"]
        assert row["predicted_updates"] == expected[int(batch_size)].updates
        assert row["predicted_updates"] is not None  # linear decay: the model reaches the target at both
        if row["updates_to_target"] is not None:
            assert row["measured_over_predicted"] == pytest.approx(
                row["updates_to_target"] / row["predicted_updates"]
            )


@pytest.mark.slow
@pytest.mark.parametrize("order", ["shuffled", "fixed"])
def test_the_noisy_regime_s_default_range_holds_constant_lr_sgd_s_optimum(
    order: str, tracking_store: str, tmp_path: Path
) -> None:
    """`mbgd scaling` with the default lr range, noisy targets, batch sizes 1 and 3, against the test's own
    loop over 2048 lrs from 1e-4 to 0.24 (below the range's low end too): within 5%. With the interpolation
    theory's low end, 0.0096, no lr reached the target at either batch size shuffled."""
    from test_lr_momentum import own_heavy_ball_updates

    args = ["scaling", "--order", order, "--targets", "noisy", "--batch-sizes", "1,3", "--seeds", "1"]
    args += ["--storage", f"sqlite:///{tmp_path / 'optuna.db'}", "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "scaling.json").read_text())
    config = build_scaling_config({"order": order, "targets": "noisy"}).study_config(order, "noisy")
    data = scaling.training_view(load_data(config.train.data, config.train.seed))
    lrs = torch.logspace(-4, math.log10(0.24), 2048, dtype=torch.float64).tolist()
    for batch_size in (1, 3):
        train = replace(config.train, batch_size=batch_size)
        counts = own_heavy_ball_updates(train, data, [(lr, 0.0) for lr in lrs])
        exhaustive = min(n for n in counts if n is not None)
        row = summary["by_batch_size"][str(batch_size)][scaling.ORDER_KEYS[order]]["noisy"]
        assert row["updates_to_target"] is not None
        assert row["updates_to_target"] <= 1.05 * exhaustive, (batch_size, row, exhaustive)
