"""Data: the tutorial's synthetic line and CSV files, as torch Datasets fetched a whole batch at a time."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mbgd.core.config import ConfigError, DataSpec


@dataclass(frozen=True)
class RegressionData:
    """Inputs and targets, always generated or read in float32 (float64 runs cast these same tensors)."""

    x: torch.Tensor  # (n, d)
    y_train: torch.Tensor  # (n,) what the Dataset hands the model
    y_eval: torch.Tensor  # (n,) what the recorded full-dataset loss is measured against
    feature_names: tuple[str, ...]
    target_name: str
    name: str
    source: str
    y_line: torch.Tensor | None = None  # (n,) the noise-free line of synthetic data; None for a CSV

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        return self.x.shape[1]

    def to(self, dtype: torch.dtype) -> RegressionData:
        return RegressionData(
            x=self.x.to(dtype),
            y_train=self.y_train.to(dtype),
            y_eval=self.y_eval.to(dtype),
            feature_names=self.feature_names,
            target_name=self.target_name,
            name=self.name,
            source=self.source,
            y_line=None if self.y_line is None else self.y_line.to(dtype),
        )


def load_data(spec: DataSpec, seed: int) -> RegressionData:
    """The synthetic set of the spec, or its CSV file."""
    return read_csv(spec) if spec.is_csv else make_synthetic(spec, seed)


def make_synthetic(spec: DataSpec, seed: int) -> RegressionData:
    """The tutorial's data: X on [x_min, x_max) in n_points steps, Y = slope*X + intercept + noise*N(0, 1)."""
    step = (spec.x_max - spec.x_min) / spec.n_points
    # arange, not linspace: with the defaults this is exactly the tutorial's torch.arange(-5, 5, 0.1).
    # A float step can yield one point too many through rounding, hence the slice.
    x = torch.arange(spec.x_min, spec.x_max, step, dtype=torch.float32)[: spec.n_points].view(-1, 1)
    # In place where it changes no value (a + b == b + a in floating point): at 10^7 points each temporary is
    # another 40 MB at the peak.
    # targets_dtype float64: the same x and noise draws, the arithmetic of the targets in float64.
    targets_x = x if spec.targets_dtype == "float32" else x.double()
    line = (spec.slope * targets_x).add_(spec.intercept)
    torch.manual_seed(seed)
    y_noisy = torch.randn(x.size()).to(line.dtype).mul_(spec.noise).add_(line)
    # The tutorial's Dataset builds its targets from the noise-free line; the noisy Y is only used for the
    # recorded loss. targets="noisy" trains on the noisy Y instead.
    y_train = y_noisy if spec.targets == "noisy" else line
    return RegressionData(
        x=x,
        y_train=y_train.view(-1),
        y_eval=y_noisy.view(-1),
        feature_names=("x",),
        target_name="y",
        name=f"synthetic-line-n{spec.n_points}",
        source=(
            f"synthetic: x in [{spec.x_min}, {spec.x_max}) n={spec.n_points}, "
            f"y = {spec.slope}*x + {spec.intercept} + {spec.noise}*N(0,1), seed {seed}"
        ),
        y_line=line.view(-1),
    )


def read_csv(spec: DataSpec) -> RegressionData:
    """A CSV with a header row: feature columns (default all but the target) and one target (default last)."""
    path = Path(spec.csv)
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise ConfigError(f"data file {path} has no data rows (it needs a header row and at least one row)")
    header = [name.strip() for name in rows[0]]
    target = spec.target or header[-1]
    features = spec.features or tuple(name for name in header if name != target)
    missing = [name for name in (*features, target) if name not in header]
    if missing:
        raise ConfigError(
            f"data file {path} has no column {', '.join(map(repr, missing))}; columns: {header}"
        )
    if not features:
        raise ConfigError(f"data file {path} needs at least one feature column besides the target {target!r}")
    columns = [header.index(name) for name in (*features, target)]
    values = []
    for line_number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(
                f"data file {path} line {line_number} has {len(row)} fields, the header {len(header)}"
            )
        try:
            values.append([float(row[c]) for c in columns])
        except ValueError:
            raise ConfigError(f"data file {path} line {line_number} is not numeric: {row}") from None
        if not all(math.isfinite(v) for v in values[-1]):
            raise ConfigError(f"data file {path} line {line_number} has a non-finite value: {row}")
    table = torch.tensor(values, dtype=torch.float32)
    return RegressionData(
        x=table[:, :-1].contiguous(),
        y_train=table[:, -1].contiguous(),
        y_eval=table[:, -1].contiguous(),
        feature_names=tuple(features),
        target_name=target,
        name=path.stem,
        source=str(path.resolve()),
    )


class RegressionDataset(Dataset):
    """(x, y) pairs; indexing with an index tensor or a slice returns a whole batch in one operation."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int | slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class BatchIndexSampler(Sampler):
    """Yields one batch of indices at a time: a slice in order (a view, no copy), index tensors when
    shuffled."""

    def __init__(
        self, n: int, batch_size: int, *, shuffle: bool, drop_last: bool, generator: torch.Generator | None
    ) -> None:
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[slice | torch.Tensor]:
        # int32 holds the same permutation in half the memory of int64 (40 MB less at 10^7 points); each
        # batch goes back to int64, which torch indexes faster.
        order = torch.randperm(self.n, generator=self.generator, dtype=torch.int32) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            yield slice(start, stop) if order is None else order[start:stop].long()


def _as_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


def make_loader(
    dataset: RegressionDataset, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int
) -> DataLoader:
    """torch's DataLoader over whole-batch fetches; a seeded generator makes the shuffled order
    reproducible."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    sampler = BatchIndexSampler(
        len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )
    # batch_size=None turns off per-sample collation: each sampler item is already a batch of indices.
    return DataLoader(dataset, sampler=sampler, batch_size=None, collate_fn=_as_batch)
