"""The update rules a population trains with: plain SGD (the tutorial's `w -= lr * grad`), heavy-ball
momentum and Adam, at a constant or linearly decaying learning rate, optionally with an exponential moving
average (EMA) of the iterates as the model that is evaluated.

Every member (a row of w and b) has its own learning rate and its own optimizer state, and follows the
arithmetic of `torch.optim.SGD(momentum=...)` / `torch.optim.Adam` with `LambdaLR(lambda t: 1 - t / T)` and
`AveragedModel(get_ema_multi_avg_fn(decay))` applied to one model (tests/test_optimizers.py trains each alone
with torch.optim and compares). Imports neither mlflow nor matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mbgd.core.config import TrainConfig

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
ADAM_EPS = 1e-8


class PopulationOptimizer:
    """The optimizer state of a population whose parameters are w (K, d) and b (K,), updated in place."""

    def __init__(
        self,
        config: TrainConfig,
        lrs: Sequence[float],
        w: torch.Tensor,
        b: torch.Tensor,
        *,
        total_updates: int,
        momenta: Sequence[float] | None = None,
    ):
        self.kind = config.optimizer
        # heavy ball's coefficient: the config's, or one per member (a 2-D lr x momentum search)
        self.momentum: float | torch.Tensor = config.momentum
        if momenta is not None:
            if len(momenta) != len(lrs):
                raise ValueError(f"{len(momenta)} momenta for {len(lrs)} learning rates")
            self.momentum = torch.tensor(list(momenta), dtype=w.dtype)
        self.decays = config.schedule == "linear"
        self.ema = config.ema
        self.total_updates = total_updates
        self.updates = 0
        self.lr64 = torch.tensor(list(lrs), dtype=torch.float64)
        self.lr = self.lr64.to(
            w.dtype
        )  # as the tutorial's loop multiplies: the rate rounded to the dtype once
        self.state: list[torch.Tensor] = []  # per rule: momentum [buf_w, buf_b]; Adam [m_w, m_b, v_w, v_b]
        self.average: list[torch.Tensor] = [w.clone(), b.clone()] if self.ema else []

    def keep(self, rows: torch.Tensor) -> None:
        """Only the members of the boolean mask `rows` train on (the others stopped or diverged)."""
        self.lr64, self.lr = self.lr64[rows], self.lr[rows]
        if isinstance(self.momentum, torch.Tensor):
            self.momentum = self.momentum[rows]
        self.state = [tensor[rows] for tensor in self.state]
        self.average = [tensor[rows] for tensor in self.average]

    def rates64(self) -> torch.Tensor:
        """Each member's learning rate for the next update, in float64 (as a scheduler's Python float)."""
        if not self.decays:
            return self.lr64
        return self.lr64 * (1.0 - self.updates / self.total_updates)

    def step(self, w: torch.Tensor, b: torch.Tensor, grad_w: torch.Tensor, grad_b: torch.Tensor) -> None:
        """One update of every member from its gradients, then of its average."""
        lr = self.rates64().to(w.dtype) if self.decays else self.lr
        if self.kind == "sgd":
            w -= lr[:, None] * grad_w
            b -= lr * grad_b
        elif self.kind == "momentum":
            self._momentum_step(w, b, grad_w, grad_b, lr)
        else:
            self._adam_step(w, b, grad_w, grad_b)
        self.updates += 1
        if not self.average:
            return
        if self.updates == 1:  # AveragedModel's first update copies the model
            self.average[0].copy_(w)
            self.average[1].copy_(b)
        else:
            self.average[0].lerp_(w, 1 - self.ema)
            self.average[1].lerp_(b, 1 - self.ema)

    def _momentum_step(self, w, b, grad_w, grad_b, lr) -> None:
        if not self.state:  # torch.optim.SGD's first step: the buffer is the gradient
            self.state = [grad_w.clone(), grad_b.clone()]
        elif isinstance(self.momentum, torch.Tensor):
            self.state[0].mul_(self.momentum[:, None]).add_(grad_w)
            self.state[1].mul_(self.momentum).add_(grad_b)
        else:
            self.state[0].mul_(self.momentum).add_(grad_w)
            self.state[1].mul_(self.momentum).add_(grad_b)
        w -= lr[:, None] * self.state[0]
        b -= lr * self.state[1]

    def _adam_step(self, w, b, grad_w, grad_b) -> None:
        beta1, beta2 = ADAM_BETAS
        if not self.state:
            self.state = [torch.zeros_like(w), torch.zeros_like(b), torch.zeros_like(w), torch.zeros_like(b)]
        m_w, m_b, v_w, v_b = self.state
        step = self.updates + 1
        # torch.optim.Adam's step size, lr / (1 - beta1^t), a Python float per member: here in float64
        step_size = (self.rates64() / (1 - beta1**step)).to(w.dtype)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        for param, m, v, grad, size in (
            (w, m_w, v_w, grad_w, step_size[:, None]),
            (b, m_b, v_b, grad_b, step_size),
        ):
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
            param -= (size * m) / denom  # addcdiv_(m, denom, value=-step_size)

    def evaluated(self, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters that are measured and kept: the average with an EMA, else w and b themselves."""
        if self.average:
            return self.average[0], self.average[1]
        return w, b
