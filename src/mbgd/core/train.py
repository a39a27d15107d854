"""The gradient-descent loop: K models y = w·x + b with their own learning rates, trained in one pass.

`fit` trains the one learning rate of a config; `fit_population` trains K learning rates at once over one
shared DataLoader; `fit_each` trains several seeds at once, each on its own noise draw and in its own order.
Each model's loss and update involve only its own row of w and b, so a population member follows the same
arithmetic as a model trained alone. Imports neither mlflow nor matplotlib.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch

from mbgd.core.config import ConfigError, TrainConfig
from mbgd.core.data import RegressionData, RegressionDataset, make_loader
from mbgd.core.history import History
from mbgd.core.optimizers import PopulationOptimizer

DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Above this many (model, sample) pairs the full-dataset loss is summed in chunks to bound memory.
_FULL_LOSS_CHUNK = 1 << 18
_CACHED_BATCHES = 1 << 12


# Called after each epoch's full-dataset losses are measured: (epoch, losses of the K models) -> mask of
# models to stop now (for pruning), or None.
EpochHook = Callable[[int, torch.Tensor], torch.Tensor | None]


def fit(config: TrainConfig, data: RegressionData, *, record_batch_loss: bool = True) -> History:
    """Train the config's one learning rate: the tutorial's loop."""
    return fit_population(config, data, [config.lr], record_batch_loss=record_batch_loss)[0]


def training_loader(config: TrainConfig, data: RegressionData):
    """The DataLoader of the training targets in the config's batch size, order and seed."""
    return make_loader(
        RegressionDataset(data.x, data.y_train),
        config.batch_size,
        shuffle=config.shuffle,
        drop_last=config.drop_last,
        seed=config.seed,
    )


def fit_population(
    config: TrainConfig,
    data: RegressionData,
    lrs: Sequence[float],
    *,
    record_batch_loss: bool = False,
    record_updates: bool = False,
    keep_update_params: bool = True,
    on_epoch: EpochHook | None = None,
    momenta: Sequence[float] | None = None,
) -> list[History]:
    """Train one model per learning rate, together, over one DataLoader; returns one History per lr.

    momenta (optimizer "momentum" only): one heavy-ball coefficient per lr instead of the config's one.

    record_updates fills each History's update_losses and (unless keep_update_params is False) update_params:
    the parameters are kept after every update and their full-dataset training losses computed in one pass at
    the end of each epoch.
    """
    if not lrs:
        raise ConfigError("at least one learning rate is needed")
    return _fit(
        config,
        data,
        lrs,
        None,
        record_batch_loss=record_batch_loss,
        record_updates=record_updates,
        keep_update_params=keep_update_params,
        on_epoch=on_epoch,
        momenta=momenta,
    )


def fit_each(
    configs: Sequence[TrainConfig],
    datasets: Sequence[RegressionData],
    *,
    record_batch_loss: bool = False,
    record_updates: bool = False,
    keep_update_params: bool = True,
) -> list[History]:
    """Train configs[i] on datasets[i] for every i, together; returns one History each, the same to the bit
    as `fit_population(configs[i], datasets[i], [configs[i].lr])`.

    For re-training over seeds: the configs may differ in lr and seed (a shuffled member keeps the batch
    order of its own seed), the datasets in their targets (each seed's noise draw). Datasets whose inputs
    differ are trained one after another.
    """
    if not configs or len(configs) != len(datasets):
        raise ConfigError("fit_each needs one dataset per config, and at least one")
    first, data = configs[0], datasets[0]
    for config in configs:
        if replace(config, lr=first.lr, seed=first.seed) != first:
            raise ConfigError("fit_each trains configs that differ only in lr and seed")
    recording = {
        "record_batch_loss": record_batch_loss,
        "record_updates": record_updates,
        "keep_update_params": keep_update_params,
    }
    lrs = [config.lr for config in configs]
    one_order = not first.shuffle or all(config.seed == first.seed for config in configs)
    if one_order and all(other is data for other in datasets):
        return _fit(first, data, lrs, None, on_epoch=None, **recording)
    if not all(other.n == data.n and torch.equal(other.x, data.x) for other in datasets):
        return [fit_population(c, d, [c.lr], **recording)[0] for c, d in zip(configs, datasets, strict=True)]
    dtype = DTYPES[first.dtype]
    own = _OwnTargets(
        y_train=torch.stack([d.y_train for d in datasets]).to(dtype),
        y_eval=torch.stack([d.y_eval for d in datasets]).to(dtype),
        evaluated_on_training_targets=all(d.y_eval is d.y_train for d in datasets),
        samplers=None
        if one_order
        else [
            training_loader(config, data).sampler  # the order a loader of this seed draws
            for config in configs
        ],
    )
    return _fit(first, data, lrs, own, on_epoch=None, **recording)


@dataclass(frozen=True)
class _OwnTargets:
    """Members that train on targets of their own (rows of y_train and y_eval) and, with `samplers`, in batch
    orders of their own (one sampler per member; None: the loader's one order)."""

    y_train: torch.Tensor  # (K, n)
    y_eval: torch.Tensor  # (K, n)
    evaluated_on_training_targets: bool
    samplers: list | None

    def batches(self, x: torch.Tensor, shared_sampler, members: torch.Tensor):
        """One epoch's (inputs, targets) of the members still training: inputs (m, d) in one order, (K, m, d)
        in their own orders; targets (K, m)."""
        y = self.y_train[members]
        if self.samplers is None:
            for index in shared_sampler:
                yield x[index], y[:, index]
            return
        for indices in zip(*(iter(sampler) for sampler in self.samplers), strict=True):
            index = torch.stack(indices)[members]
            yield x[index], y.gather(1, index)

    def losses(self, w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rows: list[int]):
        """Each member's full-dataset loss on its own targets, computed as for a model trained alone."""
        return torch.cat(
            [full_dataset_loss(w[r : r + 1], b[r : r + 1], x, y[member]) for r, member in enumerate(rows)]
        )


def _fit(
    config: TrainConfig,
    data: RegressionData,
    lrs: Sequence[float],
    own: _OwnTargets | None,
    *,
    record_batch_loss: bool,
    record_updates: bool,
    keep_update_params: bool,
    on_epoch: EpochHook | None,
    momenta: Sequence[float] | None = None,
) -> list[History]:
    """fit_population's loop; with `own`, each member on its own targets (and orders)."""
    dtype = DTYPES[config.dtype]
    data = data.to(dtype)
    loader = training_loader(config, data)
    if len(loader) == 0:
        raise ConfigError(
            f"drop_last with batch_size {config.batch_size} > {data.n} points leaves no batch to train on"
        )
    k, d = len(lrs), data.n_features
    samples_per_epoch = len(loader) * config.batch_size if config.drop_last else data.n
    histories = [
        History(
            lr=float(v),
            batch_size=config.batch_size,
            updates_per_epoch=len(loader),
            samples_per_epoch=samples_per_epoch,
        )
        for v in lrs
    ]
    # Rows of w, b and lr belong to the models still training; `members` maps each row to its History.
    # Stopped and diverged models are dropped from the tensors, so a pruned population costs less.
    members = torch.arange(k)
    w = torch.full((k, d), config.init_w, dtype=dtype)
    b = torch.full((k,), config.init_b, dtype=dtype)
    if momenta is not None and config.optimizer != "momentum":
        raise ConfigError(f"momenta are for the optimizer momentum, not {config.optimizer}")
    optimizer = PopulationOptimizer(
        config, lrs, w, b, total_updates=config.epochs * len(loader), momenta=momenta
    )
    # The batch losses of the current epoch, one row per update (one preallocated tensor: at 10^7 points a
    # list of per-update tensors would hold some 10^4 small tensors, about 4 MB).
    batch_losses: torch.Tensor | None = None
    update_params: list[torch.Tensor] = []  # (rows, d + 1) after each update of the current epoch
    # A fixed order has the same batches every epoch (views of the data): fetched once, unless there are so
    # many that keeping them would cost memory.
    cache = own is None and not config.shuffle and len(loader) <= _CACHED_BATCHES
    batches = list(loader) if cache else None
    start = time.perf_counter()
    for history in histories:
        history.started_at = time.time()

    for epoch in range(config.epochs + 1):
        rows = members.tolist()
        ew, eb = optimizer.evaluated(w, b)
        if own is None:
            eval_loss = full_dataset_loss(ew, eb, data.x, data.y_eval)
            same_targets = data.y_train is data.y_eval
            train_loss = eval_loss if same_targets else full_dataset_loss(ew, eb, data.x, data.y_train)
        else:
            eval_loss = own.losses(ew, eb, data.x, own.y_eval, rows)
            same_targets = own.evaluated_on_training_targets
            train_loss = eval_loss if same_targets else own.losses(ew, eb, data.x, own.y_train, rows)
        elapsed = time.perf_counter() - start
        if batch_losses is not None:
            _append_batch_losses(histories, rows, batch_losses)
            batch_losses = None
        if record_updates and update_params:
            _append_updates(
                histories, rows, torch.stack(update_params), data, own, keep_params=keep_update_params
            )
            update_params.clear()
        finite = torch.isfinite(eval_loss) & torch.isfinite(train_loss)
        for row, member in enumerate(rows):
            history = histories[member]
            if finite[row]:
                history.epoch_losses.append(float(eval_loss[row]))
                history.train_losses.append(float(train_loss[row]))
                history.epoch_seconds.append(elapsed)
            else:
                history.diverged = True
                history.diverged_reason = f"non-finite full-dataset loss at the start of epoch {epoch}"
                _truncate_at_non_finite(history)
        keep = finite
        if on_epoch is not None and epoch < config.epochs:
            losses = torch.full((k,), math.nan, dtype=dtype)
            losses[members[finite]] = eval_loss[finite]
            stop = on_epoch(epoch, losses)
            if stop is not None:
                stopped = stop[members] & finite
                for row in stopped.nonzero().flatten().tolist():
                    histories[rows[row]].stopped_epoch = epoch
                    _record_parameters(histories[rows[row]], ew[row], eb[row])
                keep = keep & ~stopped
        if epoch == config.epochs or not keep.any():
            break
        if not keep.all():
            members, w, b = members[keep], w[keep], b[keep]
            optimizer.keep(keep)
        if record_batch_loss:
            batch_losses = torch.empty((len(loader), len(members)), dtype=dtype)
        if own is not None:
            epoch_batches = own.batches(data.x, loader.sampler, members)
        else:
            epoch_batches = batches if batches is not None else loader
        for update, (xb, yb) in enumerate(epoch_batches):
            residual = predict(w, b, xb) - yb
            if batch_losses is not None:
                batch_losses[update] = (residual**2).mean(dim=1)
            grad_w, grad_b = mse_gradient(residual, xb)
            optimizer.step(w, b, grad_w, grad_b)
            if record_updates:
                ew, eb = optimizer.evaluated(w, b)
                update_params.append(torch.cat([ew, eb[:, None]], dim=1))

    ew, eb = optimizer.evaluated(w, b)
    for row, member in enumerate(members.tolist()):
        if not histories[member].diverged and histories[member].stopped_epoch is None:
            _record_parameters(histories[member], ew[row], eb[row])
    return histories


def _record_parameters(history: History, w: torch.Tensor, b: torch.Tensor) -> None:
    history.w = w.tolist()
    history.b = float(b)


def mse_gradient(residual: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of each model's batch MSE, mean((w·x + b - y)^2), with respect to its w and b, given the
    residuals (K, m) and the batch's inputs: (m, d), or (K, m, d) when each model has a batch of its own.

    Written out, op for op, as autograd's backward pass computes them for `predict`, so the results are the
    same to the bit (tests/test_train.py checks it against loss.backward()); without building a graph, an
    update costs a fifth of the time, which is most of a sweep's training at batch size 1.
    """
    scaled = residual * (2.0 / residual.shape[1])
    inputs = x if x.dim() == 3 else x[None, :, :]
    return (scaled[:, :, None] * inputs).sum(dim=1), scaled.sum(dim=1)


def predict(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Predictions of the K models for the m inputs (m, d), or each for its own (K, m, d): shape (K, m).

    Elementwise products summed over the features rather than a matmul: BLAS sums in an order that depends on
    K, so a model's float32 rounding would change with the population it trains in.
    """
    inputs = x if x.dim() == 3 else x[None, :, :]
    return (w[:, None, :] * inputs).sum(dim=2) + b[:, None]


@torch.no_grad()
def full_dataset_loss(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MSE of each of the K models (rows of w, entries of b) on all n points: shape (K,)."""
    k, n = w.shape[0], x.shape[0]
    chunk = max(1, _FULL_LOSS_CHUNK // k)
    if n <= chunk:
        return (w @ x.T).add_(b[:, None]).sub_(y).square_().mean(dim=1)  # in place: one (K, n) temporary
    total = torch.zeros(k, dtype=w.dtype)
    for start in range(0, n, chunk):
        xs, ys = x[start : start + chunk], y[start : start + chunk]
        total += (w @ xs.T).add_(b[:, None]).sub_(ys).square_().sum(dim=1)
    return total / n


def _append_batch_losses(histories: list[History], members: list[int], losses: torch.Tensor) -> None:
    """Per-update losses of one epoch, shape (updates, rows), appended to the models that trained in it."""
    for row, member in enumerate(members):
        histories[member].batch_losses.extend(losses[:, row].tolist())


def _append_updates(
    histories: list[History],
    members: list[int],
    params: torch.Tensor,
    data: RegressionData,
    own: _OwnTargets | None,
    *,
    keep_params: bool,
) -> None:
    """Parameters after each update of one epoch, shape (updates, rows, d + 1), and their training losses."""
    updates, rows, width = params.shape
    if own is None:
        flat = params.reshape(updates * rows, width)
        losses = full_dataset_loss(flat[:, :-1], flat[:, -1], data.x, data.y_train).reshape(updates, rows)
    else:  # each row's updates against its own targets, as when it trains alone
        own_rows = [params[:, row].contiguous() for row in range(rows)]
        losses = torch.stack(
            [
                full_dataset_loss(p[:, :-1], p[:, -1], data.x, own.y_train[m])
                for p, m in zip(own_rows, members, strict=True)
            ],
            dim=1,
        )
    for row, (member, column) in enumerate(zip(members, losses.T.tolist(), strict=True)):
        histories[member].update_losses.extend(column)
        if keep_params:
            histories[member].update_params.extend(params[:, row].tolist())


def _truncate_at_non_finite(history: History) -> None:
    """A diverged run keeps its batch losses up to, not including, the first non-finite one; the same for the
    recorded updates."""
    for position, value in enumerate(history.batch_losses):
        if not math.isfinite(value):
            del history.batch_losses[position:]
            break
    for position, value in enumerate(history.update_losses):
        params = history.update_params[position] if history.update_params else ()
        if not math.isfinite(value) or not all(math.isfinite(v) for v in params):
            del history.update_losses[position:]
            del history.update_params[position:]
            break
