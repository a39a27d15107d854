"""The optimizer axes (mbgd.core.optimizers): each population member trains as torch.optim trains that one
model alone, and the default is still the tutorial's loop."""

from dataclasses import replace

import pytest
import torch

from mbgd.core.config import ConfigError, TrainConfig
from mbgd.core.data import load_data
from mbgd.core.train import fit, fit_population, training_loader

LRS = (0.003, 0.02, 0.05)


def torch_optim_alone(config: TrainConfig, lr: float) -> tuple[list[float], list[float], float]:
    """One model y = w·x + b trained by autograd and torch.optim over the config's loader: the loss on every
    point before each epoch and after the last (of the EMA model when config.ema), and the final w and b."""
    data = load_data(config.data, config.seed).to(torch.float64)
    w = torch.nn.Parameter(torch.full((1, data.n_features), config.init_w, dtype=torch.float64))
    b = torch.nn.Parameter(torch.full((1,), config.init_b, dtype=torch.float64))
    model = torch.nn.ParameterList([w, b])
    if config.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        momentum = config.momentum if config.optimizer == "momentum" else 0.0
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loader = training_loader(config, data)
    total = config.epochs * len(loader)
    factor = (lambda t: 1 - t / total) if config.schedule == "linear" else (lambda t: 1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    averaged = None
    if config.ema:
        averaged = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config.ema)
        )

    def evaluated_loss() -> float:
        aw, ab = averaged.module if averaged is not None else (w, b)
        with torch.no_grad():
            return float((((data.x * aw).sum(dim=1) + ab - data.y_eval) ** 2).mean())

    losses = []
    for _ in range(config.epochs):
        losses.append(evaluated_loss())
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = (((xb * w).sum(dim=1) + b - yb) ** 2).mean()
            loss.backward()
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(model)
    losses.append(evaluated_loss())
    aw, ab = averaged.module if averaged is not None else (w, b)
    return losses, aw.detach().flatten().tolist(), float(ab.detach())


CASES = {
    "sgd-linear": {"schedule": "linear"},
    "momentum": {"optimizer": "momentum"},
    "momentum-0.5-linear": {"optimizer": "momentum", "momentum": 0.5, "schedule": "linear"},
    "adam": {"optimizer": "adam"},
    "adam-linear": {"optimizer": "adam", "schedule": "linear"},
    "sgd-ema": {"ema": 0.9},
    "momentum-linear-ema": {"optimizer": "momentum", "schedule": "linear", "ema": 0.95},
}


@pytest.mark.parametrize("batch_size", [1, 10])
@pytest.mark.parametrize("case", list(CASES))
def test_each_member_trains_as_torch_optim_trains_that_model_alone(case: str, batch_size: int) -> None:
    config = TrainConfig(batch_size=batch_size, epochs=4, dtype="float64", shuffle=True, **CASES[case])
    members = fit_population(config, load_data(config.data, config.seed), list(LRS))
    for lr, member in zip(LRS, members, strict=True):
        losses, w, b = torch_optim_alone(config, lr)
        assert not member.diverged
        assert member.epoch_losses == pytest.approx(losses, rel=1e-10)
        assert member.w == pytest.approx(w, rel=1e-10)
        assert member.b == pytest.approx(b, rel=1e-10)


def test_the_rules_differ_from_each_other() -> None:
    """The cases above would all pass if every rule were plain SGD and the reference too: they are not."""
    data = load_data(TrainConfig().data, 42)
    finals = {
        case: fit(replace(TrainConfig(epochs=3, dtype="float64", lr=0.02), **settings), data).final_loss
        for case, settings in {"sgd": {}, **CASES}.items()
    }
    assert len(set(finals.values())) == len(finals)


def test_the_default_is_the_tutorial_s_plain_sgd_to_the_bit() -> None:
    """`w -= lr * grad` at lr 0.1 in float32, the loop of mbgd before these axes: the loss curve of batch size
    10 that TUTORIAL.md's check values come from."""
    history = fit(TrainConfig(batch_size=10), load_data(TrainConfig().data, 42))
    assert [round(v, 4) for v in history.epoch_losses[:4]] == pytest.approx(
        [599.3, 993.1, 199.7, 91.37], rel=2e-4
    )
    explicit = fit(
        TrainConfig(batch_size=10, optimizer="sgd", schedule="constant", ema=0.0),
        load_data(TrainConfig().data, 42),
    )
    assert explicit.epoch_losses == history.epoch_losses


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, momentum, adam, got 'rmsprop'"),
        ({"schedule": "cosine"}, "schedule must be one of constant, linear, got 'cosine'"),
        ({"momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
        ({"ema": -0.1}, "ema must be in [0, 1) (0: no averaging), got -0.1"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        TrainConfig(**settings)
    assert str(error.value) == message


def test_params_name_the_rule_and_only_the_settings_it_uses() -> None:
    assert {"optimizer": "sgd", "schedule": "constant"}.items() <= TrainConfig().as_params().items()
    assert "momentum" not in TrainConfig().as_params()
    assert "ema" not in TrainConfig().as_params()
    params = TrainConfig(optimizer="momentum", momentum=0.5, ema=0.9).as_params()
    assert (params["optimizer"], params["momentum"], params["ema"]) == ("momentum", "0.5", "0.9")


@pytest.mark.parametrize("case", ["momentum", "adam-linear", "momentum-linear-ema"])
def test_a_member_that_diverges_leaves_the_others_state_aligned(case: str) -> None:
    """The diverged member is dropped from the tensors after its first epoch: every other member's optimizer
    state (buffers, moments, average) must be dropped in step, or the survivors train on a neighbour's."""
    config = TrainConfig(batch_size=10, epochs=4, dtype="float64", **CASES[case])
    exploding = 1e200  # the loss overflows float64 in its first epoch
    lrs = [LRS[0], exploding, *LRS[1:]]
    members = fit_population(config, load_data(config.data, config.seed), lrs)
    assert [m.diverged for m in members] == [False, True, False, False]
    for lr, member in zip(lrs, members, strict=True):
        if lr == exploding:
            continue
        losses, w, b = torch_optim_alone(config, lr)
        assert member.epoch_losses == pytest.approx(losses, rel=1e-10)
        assert (member.w, member.b) == (pytest.approx(w, rel=1e-10), pytest.approx(b, rel=1e-10))


@pytest.mark.parametrize("schedule", ["constant", "linear"])
def test_each_member_trains_with_its_own_momentum_as_torch_optim_with_that_momentum(schedule: str) -> None:
    """A 2-D lr x momentum search trains each (lr, momentum) pair as one member; a diverging pair in the
    middle drops its coefficient with its row, so the members after it keep their own."""
    config = TrainConfig(batch_size=10, epochs=4, dtype="float64", optimizer="momentum", schedule=schedule)
    pairs = [(0.003, 0.0), (0.02, 0.5), (1e200, 0.3), (0.01, 0.9), (0.003, 0.97)]
    members = fit_population(
        config,
        load_data(config.data, config.seed),
        [lr for lr, _ in pairs],
        momenta=[mu for _, mu in pairs],
    )
    assert [m.diverged for m in members] == [False, False, True, False, False]
    for (lr, mu), member in zip(pairs, members, strict=True):
        if member.diverged:
            continue
        losses, w, b = torch_optim_alone(replace(config, momentum=mu), lr)
        assert member.epoch_losses == pytest.approx(losses, rel=1e-10)
        assert (member.w, member.b) == (pytest.approx(w, rel=1e-10), pytest.approx(b, rel=1e-10))


def test_momenta_are_refused_for_other_rules_and_in_the_wrong_number() -> None:
    data = load_data(TrainConfig().data, 42)
    with pytest.raises(ConfigError, match="momenta are for the optimizer momentum, not sgd"):
        fit_population(TrainConfig(), data, [0.01], momenta=[0.5])
    with pytest.raises(ValueError, match="2 momenta for 1 learning rates"):
        fit_population(TrainConfig(optimizer="momentum"), data, [0.01], momenta=[0.5, 0.9])
