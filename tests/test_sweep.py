"""The learning-rate sweep: objectives, studies, resume, divergence, tracking, bad input."""

import json
import math
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient

from checks import runs_after, small_sweep, storage_of
from mbgd.cli.main import main
from mbgd.core.config import ConfigError, TrainConfig
from mbgd.core.data import RegressionData, load_data
from mbgd.core.objectives import epochs_to_floor, noise_floor, objective_value
from mbgd.core.train import History
from mbgd.studies.storage import default_storage, open_storage, open_study
from mbgd.studies.sweep import ask_within_budget, propose_lrs, run_study

TUTORIAL = TrainConfig()
DATA = load_data(TUTORIAL.data, TUTORIAL.seed)


def history(losses: list[float], *, diverged: bool = False) -> History:
    return History(
        lr=0.1, batch_size=1, updates_per_epoch=1, samples_per_epoch=1, epoch_losses=losses, diverged=diverged
    )


def test_auc_is_the_mean_log10_loss_over_the_epochs() -> None:
    assert objective_value("auc", history([100.0, 10.0, 1.0]), epochs=2, floor=0.5) == pytest.approx(1.0)


def test_final_is_the_last_full_dataset_loss() -> None:
    assert objective_value("final", history([100.0, 10.0, 3.0]), epochs=2, floor=0.5) == 3.0


def test_epochs_to_is_the_first_epoch_within_5_percent_of_the_floor() -> None:
    assert epochs_to_floor([9.0, 2.0, 1.04, 1.0], floor=1.0, epochs=3) == 2
    assert objective_value("epochs_to", history([9.0, 2.0, 1.06, 1.051]), epochs=3, floor=1.0) == 4.0


@pytest.mark.parametrize(("objective", "worst"), [("auc", 40.0), ("final", 1e40), ("epochs_to", 21.0)])
def test_diverged_trial_scores_the_worst_value(objective: str, worst: float) -> None:
    assert objective_value(objective, history([100.0], diverged=True), epochs=20, floor=0.1) == worst


def test_noise_floor_of_a_csv_is_the_least_squares_loss() -> None:
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([1.0, 2.0, 2.0, 3.0])  # least squares: y = 0.6 x + 1.1, residuals -0.1, 0.3, -0.3, 0.1
    data = RegressionData(
        x=x, y_train=y, y_eval=y, feature_names=("x",), target_name="y", name="t", source="t"
    )
    assert noise_floor(data) == pytest.approx((0.01 + 0.09 + 0.09 + 0.01) / 4, rel=1e-9)


def test_tutorial_noise_floor_is_the_noise_mse_about_0_155() -> None:
    torch.manual_seed(42)
    noise = 0.4 * torch.randn(100)
    assert noise_floor(DATA) == pytest.approx(float((noise.double() ** 2).mean()), rel=1e-6)
    assert noise_floor(DATA) == pytest.approx(0.155, abs=0.001)


def test_default_storage_lies_beside_a_sqlite_tracking_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////data/runs/mlflow.db")
    assert default_storage() == "sqlite:////data/runs/optuna.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_storage() == "sqlite:///optuna.db"


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_study_stops_at_exactly_n_trials_and_a_rerun_adds_none(tmp_path: Path) -> None:
    config = small_sweep(tmp_path)
    storage = open_storage(config.storage)
    logged = []
    study = run_study(config, DATA, 10, storage, on_trials=lambda b, name, records: logged.extend(records))
    assert len(study.trials) == len(completed(study)) == 5
    assert len(logged) == 5
    again = run_study(
        config, DATA, 10, open_storage(config.storage), on_trials=lambda *args: logged.append(args)
    )
    assert len(again.trials) == 5
    assert len(logged) == 5


def test_a_study_whose_budget_its_last_population_finished_is_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mbgd.studies import protocol

    reserves, progress = [], []
    original = protocol.reserve

    def counted(*args, **kwargs):
        reserves.append(original(*args, **kwargs))
        return reserves[-1]

    monkeypatch.setattr(protocol, "reserve", counted)
    config = small_sweep(tmp_path, n_trials=6, population=3)
    study = run_study(config, DATA, 10, open_storage(config.storage), progress=lambda *a: progress.append(a))
    assert len(completed(study)) == 6
    assert reserves == [0, 3]  # two populations of three: no third look at a finished budget
    assert progress == [(10, 0, 6), (10, 3, 6), (10, 6, 6)]  # the bar still ends at the budget
    reserves.clear()  # resumed with one more trial: one population of one, and done
    run_study(small_sweep(tmp_path, n_trials=7, population=3), DATA, 10, open_storage(config.storage))
    assert reserves == [6]


def test_a_failed_trial_s_budget_is_asked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import itertools
    import math

    from mbgd.studies import protocol, sweep

    reserves, calls = [], itertools.count()
    original_reserve, original_value = protocol.reserve, sweep.objective_value
    monkeypatch.setattr(
        protocol, "reserve", lambda *a, **k: reserves.append(original_reserve(*a, **k)) or reserves[-1]
    )
    monkeypatch.setattr(  # the second population's first trial scores a non-finite value: FAIL
        sweep, "objective_value", lambda *a, **k: math.nan if next(calls) == 3 else original_value(*a, **k)
    )
    config = small_sweep(tmp_path, n_trials=6, population=3)
    study = run_study(config, DATA, 10, open_storage(config.storage))
    assert len(completed(study)) == 6
    assert len(study.get_trials(states=(optuna.trial.TrialState.FAIL,))) == 1
    assert reserves == [0, 3, 5]  # the last population finished two of three: a third is asked for the last


def test_more_trials_resume_the_study(tmp_path: Path) -> None:
    run_study(small_sweep(tmp_path), DATA, 10, open_storage(small_sweep(tmp_path).storage))
    study = run_study(
        small_sweep(tmp_path, n_trials=8), DATA, 10, open_storage(small_sweep(tmp_path).storage)
    )
    assert len(completed(study)) == 8


def test_lr_is_sampled_log_uniformly_inside_the_range(tmp_path: Path) -> None:
    config = small_sweep(tmp_path, n_trials=12, population=4, lr_min=1e-3, lr_max=1e-2)
    study = run_study(config, DATA, 10, open_storage(config.storage))
    lrs = [t.params["lr"] for t in study.trials]
    assert all(1e-3 <= lr <= 1e-2 for lr in lrs)
    assert study.study_name == "mbgd-sweep-b10"


def test_diverged_trials_are_complete_with_the_worst_value_and_a_reason(tmp_path: Path) -> None:
    config = small_sweep(tmp_path, lr_min=1.0, lr_max=10.0, batch_sizes=(1,))
    study = run_study(config, DATA, 1, open_storage(config.storage))
    assert len(completed(study)) == 5
    for trial in study.trials:
        assert trial.value == 40.0
        assert trial.user_attrs["diverged"] is True
        assert "non-finite" in trial.user_attrs["diverged_reason"]


def test_resuming_under_other_settings_is_refused(tmp_path: Path) -> None:
    run_study(small_sweep(tmp_path), DATA, 10, open_storage(small_sweep(tmp_path).storage))
    changed = small_sweep(tmp_path, train=replace(TUTORIAL, epochs=4))
    with pytest.raises(ConfigError, match="epochs"):
        run_study(changed, DATA, 10, open_storage(changed.storage))


def test_a_study_made_with_another_optimizer_is_not_resumed_by_plain_sgd_and_says_what_differs(
    tmp_path: Path,
) -> None:
    three_epochs = small_sweep(tmp_path).train
    momentum = small_sweep(tmp_path, train=replace(three_epochs, optimizer="momentum", momentum=0.5))
    run_study(momentum, DATA, 10, open_storage(momentum.storage))
    plain = small_sweep(tmp_path)
    with pytest.raises(ConfigError, match=r"exists with other settings \(momentum, optimizer\)"):
        run_study(plain, DATA, 10, open_storage(plain.storage))


def test_a_study_resumes_when_an_lr_bound_differs_in_its_last_bits_and_says_both_values_otherwise(
    tmp_path: Path,
) -> None:
    """The lr range's theory ends are computed from the data: their last bits can differ between machines."""
    first = small_sweep(tmp_path, lr_min=0.000563271009692, n_trials=3)
    run_study(first, DATA, 10, open_storage(first.storage))
    one_ulp = replace(first, lr_min=math.nextafter(first.lr_min, 1.0))
    resumed = open_study(one_ulp, 10, open_storage(one_ulp.storage))
    assert len(resumed.trials) == 3
    assert resumed.user_attrs["mbgd_settings"]["lr_min"] == 0.000563271009692  # the recorded value stays
    other = replace(first, lr_min=first.lr_min * (1 + 1e-6))
    with pytest.raises(
        ConfigError, match=r"other settings \(lr_min 0.000563271009692 recorded, 0.00056327157296\d* now\)"
    ):
        open_study(other, 10, open_storage(other.storage))


def test_numbers_are_the_same_setting_within_1e_9_floats_only_and_bools_are_not_numbers() -> None:
    from mbgd.studies.storage import same_setting

    assert same_setting(0.1, math.nextafter(0.1, 1.0))
    assert not same_setting(0.1, 0.1 * (1 + 1e-8))
    assert same_setting(3, 3.0)
    assert not same_setting(10**9, 10**9 + 1)  # integers exactly
    assert not same_setting(True, 1)
    assert not same_setting(1, True)
    assert not same_setting(True, 1.0)
    assert same_setting(True, True)
    assert not same_setting(True, False)
    assert same_setting([0.0, 0.45, 0.9], (0.0, math.nextafter(0.45, 0.0), 0.9))  # JSON gives lists back
    assert not same_setting([0.0, 0.45], [0.0, 0.45, 0.9])
    assert same_setting({"lr": 0.02, "momentum": 0.45}, {"lr": math.nextafter(0.02, 1.0), "momentum": 0.45})
    assert not same_setting({"lr": 0.02}, {"lr": 0.02, "momentum": 0.45})
    assert not same_setting("0.1", 0.1)
    assert not same_setting(None, 0.0)


def test_a_plain_sgd_study_records_no_optimizer_setting_so_studies_made_before_the_axes_resume(
    tmp_path: Path,
) -> None:
    config = small_sweep(tmp_path)
    study = run_study(config, DATA, 10, open_storage(config.storage))
    settings = study.user_attrs["mbgd_settings"]
    assert "optimizer" not in settings
    assert "schedule" not in settings
    adam_training = replace(config.train, optimizer="adam", schedule="linear")
    adam = small_sweep(tmp_path, train=adam_training, name="adam")
    adam_settings = run_study(adam, DATA, 10, open_storage(adam.storage)).user_attrs["mbgd_settings"]
    assert (adam_settings["optimizer"], adam_settings["schedule"]) == ("adam", "linear")


def test_population_proposals_equal_asking_and_suggesting_on_the_study(tmp_path: Path) -> None:
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)

    def study_with_history(file: str) -> optuna.Study:
        study = optuna.create_study(
            storage=open_storage(f"sqlite:///{tmp_path / file}"),
            study_name="s",
            sampler=optuna.samplers.TPESampler(seed=7, constant_liar=True),
        )
        for i, (value, loss) in enumerate([(0.001, 2.0), (0.01, 1.0), (0.05, 0.5), (0.2, 3.0)] * 3):
            study.add_trial(
                optuna.trial.create_trial(
                    params={"lr": value}, distributions={"lr": lr}, value=loss + i / 100
                )
            )
        # another worker's trial in flight
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.RUNNING, params={"lr": 0.03}, distributions={"lr": lr}
            )
        )
        return study

    on_the_study = study_with_history("asked.db")
    with warnings.catch_warnings():  # mbgd's storages have heartbeats, which Optuna expects with optimize()
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        asked = [on_the_study.ask() for _ in range(6)]
    expected = [trial.suggest_float("lr", lr.low, lr.high, log=True) for trial in asked]
    proposed = propose_lrs(study_with_history("proposed.db"), 6, lr)
    assert proposed == expected
    assert len(set(proposed)) == 6


def test_an_enqueued_trial_is_run_with_its_lr_and_counts_in_the_budget(tmp_path: Path) -> None:
    config = small_sweep(tmp_path)
    storage = open_storage(config.storage)
    open_study(config, 10, storage).enqueue_trial({"lr": 0.0421})
    study = run_study(config, DATA, 10, storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 5
    assert len(states) == 5
    assert study.trials[0].params["lr"] == 0.0421
    assert study.trials[0].user_attrs["worker"]["pid"] == os.getpid()


def test_a_trial_has_a_heartbeat_from_its_creation(tmp_path: Path) -> None:
    """So that a worker killed before training it leaves a trial that the others find stale."""
    config = small_sweep(tmp_path)
    study = open_study(config, 10, open_storage(config.storage))
    (trial,) = ask_within_budget(study, storage_of(study), config, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        impatient = optuna.storages.RDBStorage(config.storage, heartbeat_interval=1, grace_period=1)
    time.sleep(2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(optuna.load_study(study_name=study.study_name, storage=impatient))
    assert impatient.get_trial(trial.trial_id).state == optuna.trial.TrialState.FAIL


def test_interrupted_population_marks_its_trials_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("mbgd.studies.sweep.fit_population", interrupted)
    config = small_sweep(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, DATA, 10, open_storage(config.storage))
    study = optuna.load_study(study_name="mbgd-sweep-b10", storage=config.storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2


def test_the_sweep_trains_on_one_torch_thread_and_hands_the_setting_to_the_processes_it_starts(
    tracking_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (its processes share the cores: mbgd.runtime.processes.one_torch_thread; the compute worker, the
    # trial-run helper and sweep workers, started after it, inherit OMP_NUM_THREADS, which torch reads on
    # import)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs_after(
            ["sweep", "--batch-sizes", "10", "--n-trials", "2", "--epochs", "1", "--seeds", "1"],
            tracking_store,
        )
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("helper_from_trials", [10**6, 1], ids=["written-here", "written-by-helper"])
def test_sweep_command_tracks_every_trial_and_logs_figures_and_summaries(
    tracking_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper_from_trials: int
) -> None:
    monkeypatch.setattr("mbgd.pipelines.trial_run_writer.HELPER_FROM_TRIALS", helper_from_trials)
    args = [
        "sweep",
        "--batch-sizes",
        "1,10",
        "--n-trials",
        "4",
        "--population",
        "3",
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--name",
        "tiny",
    ]
    runs = runs_after(args, tracking_store, max_results=100)
    client = MlflowClient(tracking_store)
    (parent,) = [r for r in runs if r.info.run_name == "sweep-tiny"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.run_name for c in children if "trial" not in c.data.params) == [
        "best-b1",
        "best-b10",
    ]
    children = [c for c in children if "trial" in c.data.params]
    assert len(children) == 8
    for child in children:
        assert {"lr", "batch_size", "trial", "study_name"} <= set(child.data.params)
        assert child.data.tags["optuna.state"] == "COMPLETE"
        assert child.info.status == "FINISHED"
        assert len(client.get_metric_history(child.info.run_id, "loss")) == 4
        assert "objective" in child.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "tuned_comparison.png",
        "tuned_cost.png",
        "lr_sensitivity.png",
        "best_lr_vs_batch_size.png",
        "summary.json",
        "summary.md",
    } <= artifacts
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "optuna/tiny-b1")} == {
        "optuna/tiny-b1/optimization_history.png",
        "optuna/tiny-b1/slice.png",
    }
    summary = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path))).read_text()
    )
    assert set(summary["by_batch_size"]) == {"1", "10"}
    row = summary["by_batch_size"]["1"]
    assert {"best_lr", "best_value", "epochs_to_floor_mean", "epochs_to_floor_sd"} <= set(row)
    # README; by hand in test_readme_numbers
    assert row["theory_first_instability_lr"] == pytest.approx(0.1044, abs=5e-5)
    assert sorted(summary["ranking_fixed_lr"]) == sorted(summary["ranking_tuned"]) == [1, 10]
    study = optuna.load_study(study_name="tiny-b1", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert parent.data.metrics["best_lr_b1"] == pytest.approx(study.best_params["lr"])
    best_child = client.get_run(parent.data.tags["best_run_b1"])
    assert best_child.data.params["trial"] == str(study.best_trial.number)
    assert "| batch size |" in parent.data.tags["mlflow.note.content"]
    # The scan: 512 lrs as a table, its best enqueued as the first trial, the trials inside its best's
    # neighbours.
    assert {"lr_scan.png", "lr_scan"} <= artifacts
    table = Path(
        client.download_artifacts(parent.info.run_id, "lr_scan/tiny-b1.csv", str(tmp_path))
    ).read_text()
    header, *lines = table.splitlines()
    assert header == "lr,objective,first_touch,diverged"
    assert len(lines) == 512
    scan_rows = [[float(v) if v else None for v in line.split(",")] for line in lines]
    assert scan_rows[0][0] == pytest.approx(1e-4)
    assert scan_rows[-1][0] == pytest.approx(1.0)
    best_scan = min(r[1] for r in scan_rows)
    assert row["scan_best_value"] == best_scan
    assert row["scan_best_lr"] in [r[0] for r in scan_rows if r[1] == best_scan]
    assert study.trials[0].params["lr"] == pytest.approx(row["scan_best_lr"], rel=1e-12)
    neighbours = [r[0] for r in scan_rows]
    i = neighbours.index(row["scan_best_lr"])
    assert all(neighbours[i - 1] <= t.params["lr"] <= neighbours[i + 1] for t in study.trials)
    # The scan as Optuna sees it: a companion study, a COMPLETE trial per scanned lr, over the whole range.
    companion = optuna.load_study(study_name="tiny-b1-scan", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert study.user_attrs["mbgd_refinement"]["scan_study"] == "tiny-b1-scan"
    assert companion.user_attrs["scan_of"] == "tiny-b1"
    assert [t.number for t in companion.trials] == list(range(512))
    assert {t.state for t in companion.trials} == {optuna.trial.TrialState.COMPLETE}
    assert [[t.params["lr"], t.value, bool(t.user_attrs["diverged"])] for t in companion.trials] == [
        [r[0], r[1], bool(r[3])] for r in scan_rows
    ]
    (distribution,) = {str(t.distributions["lr"]) for t in companion.trials}
    assert distribution == str(optuna.distributions.FloatDistribution(1e-4, 1.0, log=True))
    # auc: geometric means
    assert row["tuned_regret"] == pytest.approx(10 ** (row["best_value"] - best_scan) - 1)
    assert row["tuned_regret"] <= 0
    assert row["scan_at_edge"] is None
    assert len(row["trials_to_5pct_by_seed"]) == 10
    by_seed = sorted(n if n is not None else 10**9 for n in row["trials_to_5pct_by_seed"])
    assert row["trials_to_5pct"] == (by_seed[4] if by_seed[4] < 10**9 else None)

    rerun = CliRunner().invoke(main, args)
    assert rerun.exit_code == 0, rerun.output
    assert (
        len(optuna.load_study(study_name="tiny-b1", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials)
        == 4
    )
    trial_runs = [r for r in client.search_runs(["0"], max_results=100) if "trial" in r.data.params]
    assert len(trial_runs) == 8
    assert (
        len(
            optuna.load_study(study_name="tiny-b1-scan", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials
        )
        == 512
    )
