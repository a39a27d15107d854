"""Pruning: trials report their objective every epoch, pruned members stop while the others go on, and every
trial's MLflow run ends with the status of its Optuna state."""

from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from checks import runs_after
from mbgd.cli.main import main
from mbgd.core.config import SweepConfig, TrainConfig
from mbgd.core.data import load_data
from mbgd.core.objectives import intermediate_value
from mbgd.studies.pruning import decision_epochs, make_pruner
from mbgd.studies.storage import open_storage
from mbgd.studies.sweep import run_study

TUTORIAL = TrainConfig()
DATA = load_data(TUTORIAL.data, TUTORIAL.seed)
PRUNED = optuna.trial.TrialState.PRUNED
COMPLETE = optuna.trial.TrialState.COMPLETE


def test_intermediate_auc_is_the_running_mean_of_log10_losses() -> None:
    assert intermediate_value("auc", [1000.0, 10.0]) == pytest.approx(2.0)
    assert intermediate_value("final", [1000.0, 10.0]) == 10.0
    assert intermediate_value("epochs_to", [1000.0, 10.0]) == 10.0


def test_decision_epochs_are_the_hyperband_rungs() -> None:
    assert decision_epochs(20) == [1, 3, 9]
    assert decision_epochs(9) == [1, 3]
    assert decision_epochs(1) == []


def test_pruners_by_name() -> None:
    assert isinstance(make_pruner("none", 20), optuna.pruners.NopPruner)
    assert isinstance(make_pruner("median", 20), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband", 20), optuna.pruners.HyperbandPruner)


def hyperband_sweep(tmp_path: Path, **changes) -> SweepConfig:
    return replace(
        SweepConfig(
            train=replace(TUTORIAL, epochs=9),
            batch_sizes=(10,),
            n_trials=24,
            population=8,
            seeds=1,
            pruner="hyperband",
            storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        ),
        **changes,
    )


def test_hyperband_prunes_members_that_stop_early_and_counts_them_in_the_budget(tmp_path: Path) -> None:
    config = hyperband_sweep(tmp_path)
    records = []
    study = run_study(
        config, DATA, 10, open_storage(config.storage), on_trials=lambda b, n, r: records.extend(r)
    )
    states = [t.state for t in study.trials]
    assert len(states) == 24
    assert set(states) == {PRUNED, COMPLETE}
    by_number = {r.number: r for r in records}
    for trial in study.trials:
        losses = by_number[trial.number].history.epoch_losses
        reported = sorted(trial.intermediate_values)  # at the decision epochs reached, step = epoch
        assert reported == [e for e in decision_epochs(9) if e < len(losses)]
        assert trial.intermediate_values[1] == pytest.approx(intermediate_value("auc", losses[:2]))
        if trial.state == PRUNED:
            assert by_number[trial.number].state == "PRUNED"
            assert len(losses) == trial.user_attrs["pruned_at_epoch"] + 1 < 10
        elif not trial.user_attrs.get("diverged"):
            assert len(losses) == 10
    # A pruned member stops; the curves of the others are those of training their lr alone.
    from mbgd.core.train import fit

    survivor = next(t for t in study.trials if t.state == COMPLETE and not t.user_attrs.get("diverged"))
    alone = fit(replace(config.train, batch_size=10, lr=survivor.params["lr"]), DATA)
    assert by_number[survivor.number].history.epoch_losses == pytest.approx(alone.epoch_losses, rel=1e-5)


def test_no_pruner_reports_nothing_and_prunes_nothing(tmp_path: Path) -> None:
    config = hyperband_sweep(tmp_path, pruner="none", n_trials=8)
    study = run_study(config, DATA, 10, open_storage(config.storage))
    assert all(t.state == COMPLETE and not t.intermediate_values for t in study.trials)


def test_pruned_trials_end_killed_in_mlflow_with_their_state_tag(tracking_store: str) -> None:
    args = [
        "sweep",
        "--batch-sizes",
        "10",
        "--n-trials",
        "16",
        "--population",
        "8",
        "--seeds",
        "1",
        "--epochs",
        "9",
        "--pruner",
        "hyperband",
        "--name",
        "pruned",
    ]
    runs = runs_after(args, tracking_store, max_results=100)
    trial_runs = [r for r in runs if "trial" in r.data.params]
    assert len(trial_runs) == 16
    expected_status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}
    for run in trial_runs:
        assert run.info.status == expected_status[run.data.tags["optuna.state"]]
        assert run.data.metrics["trial"] == float(run.data.params["trial"])
    assert {r.data.tags["optuna.state"] for r in trial_runs} == {"COMPLETE", "PRUNED"}
    (parent,) = [r for r in runs if r.info.run_name == "sweep-pruned"]
    assert parent.info.status == "FINISHED"
    assert "best_lr_b10" in parent.data.metrics
    assert "pruned" in parent.data.tags["mlflow.note.content"]


def test_unknown_pruner_is_a_usage_error(tracking_store: str) -> None:
    result = CliRunner().invoke(main, ["sweep", "--pruner", "sometimes"])
    assert result.exit_code == 2
    assert "'sometimes' is not one of" in result.output
