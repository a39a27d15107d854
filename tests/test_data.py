"""Data: the tutorial's synthetic set, CSV files, and the batches the DataLoader hands out."""

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mbgd.core.config import ConfigError, DataSpec
from mbgd.core.data import RegressionDataset, load_data, make_loader, make_synthetic, read_csv


def batches(n: int, batch_size: int, *, shuffle: bool = False, drop_last: bool = False, seed: int = 0):
    x = torch.arange(n, dtype=torch.float32).view(-1, 1)
    loader = make_loader(
        RegressionDataset(x, x.view(-1)), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
    )
    return [xb.view(-1).long().tolist() for xb, _ in loader]


def test_synthetic_data_are_the_tutorials_tensors() -> None:
    data = make_synthetic(DataSpec(), seed=42)
    x = torch.arange(-5, 5, 0.1).view(-1, 1)
    torch.manual_seed(42)
    y = -5 * x + 0.4 * torch.randn(x.size())
    assert torch.equal(data.x, x)
    assert torch.equal(data.y_eval, y.view(-1))
    assert torch.equal(data.y_train, (-5 * x).view(-1))  # the tutorial trains on the noise-free line


def test_noisy_targets_option_trains_on_the_noisy_y() -> None:
    data = make_synthetic(DataSpec(targets="noisy"), seed=42)
    assert torch.equal(data.y_train, data.y_eval)


def test_synthetic_size_range_slope_intercept_noise_are_configurable() -> None:
    data = make_synthetic(
        DataSpec(n_points=7, x_min=0.0, x_max=7.0, slope=2.0, intercept=1.0, noise=0.0), seed=0
    )
    assert data.x.view(-1).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert data.y_train.tolist() == [1, 3, 5, 7, 9, 11, 13]
    assert torch.equal(data.y_eval, data.y_train)


def test_ten_million_points_are_allowed_and_more_are_refused() -> None:
    DataSpec(n_points=10**7)
    with pytest.raises(ConfigError, match="n_points"):
        DataSpec(n_points=10**7 + 1)


def test_unshuffled_batches_run_in_order_like_the_tutorials_dataloader() -> None:
    class PerSample(Dataset):
        def __len__(self) -> int:
            return 100

        def __getitem__(self, i: int) -> int:
            return i

    reference = [batch.tolist() for batch in DataLoader(PerSample(), batch_size=20)]
    assert batches(100, 20) == reference


def test_last_partial_batch_is_kept_or_dropped() -> None:
    assert [len(b) for b in batches(100, 30)] == [30, 30, 30, 10]
    assert batches(100, 30)[-1] == list(range(90, 100))
    assert [len(b) for b in batches(100, 30, drop_last=True)] == [30, 30, 30]


def test_batch_larger_than_the_data_is_one_full_batch() -> None:
    assert batches(5, 8) == [[0, 1, 2, 3, 4]]


def test_shuffled_epochs_are_permutations_that_differ_between_epochs() -> None:
    x = torch.arange(50, dtype=torch.float32).view(-1, 1)
    loader = make_loader(RegressionDataset(x, x.view(-1)), 10, shuffle=True, drop_last=False, seed=3)
    first = torch.cat([xb.view(-1) for xb, _ in loader]).long().tolist()
    second = torch.cat([xb.view(-1) for xb, _ in loader]).long().tolist()
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second
    assert first != list(range(50))


def test_shuffled_order_is_reproducible_from_the_seed() -> None:
    assert batches(50, 10, shuffle=True, seed=3) == batches(50, 10, shuffle=True, seed=3)
    assert batches(50, 10, shuffle=True, seed=3) != batches(50, 10, shuffle=True, seed=4)


def test_dataset_hands_out_a_whole_batch_in_one_indexing_operation() -> None:
    x = torch.arange(10, dtype=torch.float32).view(-1, 1)
    dataset = RegressionDataset(x, 2 * x.view(-1))
    xb, yb = dataset[torch.tensor([7, 2, 5])]
    assert xb.view(-1).tolist() == [7, 2, 5]
    assert yb.tolist() == [14, 4, 10]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def test_csv_defaults_to_all_but_last_as_features_and_last_as_target(tmp_path: Path) -> None:
    data = read_csv(DataSpec(csv=write(tmp_path, "a,b,y\n1,2,3\n4,5,6\n")))
    assert data.feature_names == ("a", "b")
    assert data.x.tolist() == [[1, 2], [4, 5]]
    assert data.y_train.tolist() == [3, 6]
    assert torch.equal(data.y_eval, data.y_train)


def test_csv_columns_can_be_named(tmp_path: Path) -> None:
    spec = DataSpec(csv=write(tmp_path, "y,a,b\n3,1,2\n6,4,5\n"), features=("b",), target="y")
    data = load_data(spec, seed=0)
    assert data.feature_names == ("b",)
    assert data.x.tolist() == [[2], [5]]
    assert data.y_train.tolist() == [3, 6]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no data rows"),
        ("x,y\n", "no data rows"),
        ("x,y\n1,abc\n", "not numeric"),
        ("x,y\n1,2,3\n", "fields"),
        ("x,y\n1,nan\n", "non-finite"),
    ],
)
def test_bad_csv_is_refused_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_csv(DataSpec(csv=write(tmp_path, text)))


def test_unknown_csv_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no column 'z'"):
        read_csv(DataSpec(csv=write(tmp_path, "x,y\n1,2\n"), target="z"))


def test_missing_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_csv(DataSpec(csv=str(tmp_path / "missing.csv")))


def refusal(tmp_path: Path, text: str, **spec) -> str:
    with pytest.raises(ConfigError) as raised:
        read_csv(DataSpec(csv=write(tmp_path, text), **spec))
    return str(raised.value)


def test_csv_refusals_name_the_file_the_line_and_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    assert refusal(tmp_path, "x,y\n1,2\n3,abc\n") == f"data file {path} line 3 is not numeric: ['3', 'abc']"
    assert refusal(tmp_path, "x,y\n1,2\n3,4,5\n") == f"data file {path} line 3 has 3 fields, the header 2"
    assert (
        refusal(tmp_path, "x,y\n1,inf\n") == f"data file {path} line 2 has a non-finite value: ['1', 'inf']"
    )
    assert refusal(tmp_path, "x,y\n") == (
        f"data file {path} has no data rows (it needs a header row and at least one row)"
    )
    columns = "columns: ['x', 'y']"
    assert refusal(tmp_path, "x,y\n1,2\n", target="z", features=("w",)) == (
        f"data file {path} has no column 'w', 'z'; {columns}"
    )
    assert (
        refusal(tmp_path, "y\n1\n")
        == f"data file {path} needs at least one feature column besides the target 'y'"
    )


def test_csv_data_are_named_after_the_file_and_its_target(tmp_path: Path) -> None:
    path = tmp_path / "houses.csv"
    path.write_text(" area , price\n1,2\n")
    data = read_csv(DataSpec(csv=str(path)))
    assert (data.feature_names, data.target_name) == (("area",), "price")
    assert (data.name, data.source) == ("houses", str(path.resolve()))
    assert data.x.dtype == data.y_train.dtype == torch.float32
    assert data.y_line is None


def test_a_quoted_header_keeps_its_line_break_as_written(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b'"size\r\n(m2)",y\r\n1,2\r\n')
    assert read_csv(DataSpec(csv=str(path))).feature_names == ("size\r\n(m2)",)


def test_synthetic_data_are_named_after_their_spec() -> None:
    spec = DataSpec(n_points=5, x_min=0.0, x_max=1.0, slope=2.0, intercept=1.0, noise=0.5)
    data = make_synthetic(spec, 3)
    assert (data.feature_names, data.target_name, data.name) == (("x",), "y", "synthetic-line-n5")
    assert data.source == "synthetic: x in [0.0, 1.0) n=5, y = 2.0*x + 1.0 + 0.5*N(0,1), seed 3"


def test_float64_targets_add_the_same_draws_in_float64() -> None:
    spec = DataSpec(
        n_points=5, x_min=0.0, x_max=1.0, slope=2.0, intercept=1.0, noise=0.5, targets_dtype="float64"
    )
    data = make_synthetic(spec, 3)
    x = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8], dtype=torch.float32).double()  # float32 x, cast
    torch.manual_seed(3)
    draws = torch.randn(5).double()
    assert data.x.dtype == torch.float32
    assert data.y_eval.dtype == data.y_line.dtype == data.y_train.dtype == torch.float64
    torch.testing.assert_close(data.y_line, 2 * x + 1, rtol=0, atol=0)
    torch.testing.assert_close(data.y_eval, draws * 0.5 + (2 * x + 1), rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("csv", [False, True])
def test_data_cast_to_float64_keep_every_field(tmp_path: Path, csv: bool) -> None:
    spec = DataSpec(csv=write(tmp_path, "a,y\n1,2\n3,5\n")) if csv else DataSpec(n_points=4)
    data = load_data(spec, 7)
    cast = data.to(torch.float64)
    for name in ("x", "y_train", "y_eval") + (() if csv else ("y_line",)):
        assert getattr(cast, name).dtype == torch.float64
        assert getattr(cast, name).tolist() == getattr(data, name).tolist()
    assert (cast.y_line is None) is csv
    kept = ("feature_names", "target_name", "name", "source")
    assert [getattr(cast, k) for k in kept] == [getattr(data, k) for k in kept]
    assert cast.name == ("data" if csv else "synthetic-line-n4")


def test_the_loader_hands_out_the_datasets_batch_as_it_is() -> None:
    x = torch.arange(10, dtype=torch.float32).view(-1, 1)
    dataset = RegressionDataset(x, 2 * x.view(-1))
    batch = next(iter(make_loader(dataset, 4, shuffle=False, drop_last=False, seed=0)))
    assert type(batch) is tuple  # no collation: the dataset's (x, y) pair
    xb, yb = batch
    assert xb.data_ptr() == x.data_ptr()  # a view of the data, in order
    assert (xb.view(-1).tolist(), yb.tolist()) == ([0, 1, 2, 3], [0, 2, 4, 6])
