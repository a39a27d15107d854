"""docs/tutorial.ipynb: committed executed, its text stating only what its code prints; executed anew (by
tools/tutorial.py), it reproduces the tutorial as a plain torch loop of the test's own computes it."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from test_docs import COMMANDS, LINK, OPTION, mbgd_invocations

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = PROJECT_ROOT / "docs" / "tutorial.ipynb"
# The tutorial's check values (seed 42, float32, lr 0.1): the loss at the start of epochs 0-3.
CHECK_VALUES = {10: "599.3, 993.1, 199.7, 91.37", 20: "599.3, 153.1, 37.56, 9.319"}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)")  # not the 10 of log10 nor the 32 of float32


def committed() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def markdown(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def printed(notebook: nbformat.NotebookNode) -> str:
    """Everything the code cells printed or returned as text."""
    texts = []
    for cell in code_cells(notebook):
        for output in cell.outputs:
            texts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def test_the_committed_notebook_is_valid_and_executed_top_to_bottom_without_error() -> None:
    notebook = committed()
    nbformat.validate(notebook)
    cells = code_cells(notebook)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    assert all(cell.outputs for cell in cells), "every code cell prints or draws something"
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for cell in cells for o in cell.outputs)


def test_every_number_the_text_states_is_printed_or_written_in_the_code() -> None:
    notebook = committed()
    code_and_output = "\n".join(cell.source for cell in code_cells(notebook)) + printed(notebook)
    text = "\n".join(line for line in markdown(notebook).splitlines() if not line.startswith("#"))  # headings
    stated = set(NUMBER.findall(text))
    assert stated, "the text refers to the setup's batch sizes at least"
    assert stated <= set(NUMBER.findall(code_and_output))


def test_the_notebook_links_and_mbgd_commands_exist() -> None:
    text = markdown(committed())
    links = [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]
    assert links
    assert not [target for target in links if not (NOTEBOOK.parent / target.split("#")[0]).exists()]
    invocations = mbgd_invocations(text)
    assert {command for command, _ in invocations} >= {"train", "sweep", "ui"}
    unknown = [
        f"mbgd {command} {option}"
        for command, rest in invocations
        for option in OPTION.findall(rest.split("#", 1)[0])
        if option not in COMMANDS.get(command, set())
    ]
    assert not unknown
    assert not [command for command, _ in invocations if command not in COMMANDS]


def tutorial_losses(batch_size: int, lr: float, epochs: int = 20) -> list[float]:
    """The tutorial's loop in plain torch with autograd: the loss on all 100 noisy points at the start of
    every epoch and once after the last."""
    torch.manual_seed(42)
    x = torch.arange(-5, 5, 0.1).view(-1, 1)
    y = -5 * x + 0.4 * torch.randn(x.size())
    loader = DataLoader(TensorDataset(x, -5 * x), batch_size=batch_size)  # it trains on the noise-free line
    w = torch.tensor(-10.0, requires_grad=True)
    b = torch.tensor(-20.0, requires_grad=True)

    def full_loss() -> float:
        with torch.no_grad():
            return float(torch.mean((w * x + b - y) ** 2))

    losses = []
    for _ in range(epochs):
        losses.append(full_loss())
        for x_batch, y_batch in loader:
            loss = torch.mean((w * x_batch + b - y_batch) ** 2)
            loss.backward()
            with torch.no_grad():
                w -= lr * w.grad
                b -= lr * b.grad
            w.grad.zero_()
            b.grad.zero_()
    losses.append(full_loss())
    return losses


def first_epoch_near(losses: list[float], floor: float) -> int:
    return next((epoch for epoch, loss in enumerate(losses) if loss <= 1.05 * floor), len(losses))


# Appended to the notebook when the test executes it: what it computed, for the test to check.
REPORT_CELL = """
import json, sys
print("REPORT " + json.dumps({
    "python": sys.executable,
    "floor": floor,
    "tutorial": {b: h.epoch_losses for b, h in at_tutorial_lr.items()},
    "best_lr": {b: s.best_lr for b, s in scans.items()},
    "own": {b: h.epoch_losses for b, h in at_own_lr.items()},
}))
"""


@pytest.fixture(scope="module")
def executed() -> tuple[nbformat.NotebookNode, dict]:
    spec = importlib.util.spec_from_file_location("tutorial_tool", PROJECT_ROOT / "tools" / "tutorial.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    notebook = tool.execute(NOTEBOOK, extra_cells=[REPORT_CELL])  # raises at a cell that fails
    return notebook, json.loads(printed(notebook).split("REPORT ", 1)[1])


@pytest.mark.slow
def test_the_notebook_executes_in_this_python_and_draws_its_figures(executed) -> None:
    notebook, values = executed
    assert Path(values["python"]).resolve() == Path(sys.executable).resolve()
    outputs = [output for cell in code_cells(notebook) for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert sum("image/png" in output.get("data", {}) for output in outputs) >= 3
    text = printed(notebook)
    for batch_size, check_values in CHECK_VALUES.items():
        assert f"batch size {batch_size}: loss at the start of epochs 0–3 {check_values};" in text


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 10, 20])
def test_the_notebooks_tutorial_losses_are_a_plain_torch_loops(executed, batch_size: int) -> None:
    _, values = executed
    # Batch size 1 at lr 0.1 amplifies rounding errors 10^7-fold within an epoch: the same arithmetic or bust.
    assert values["tutorial"][str(batch_size)] == pytest.approx(tutorial_losses(batch_size, 0.1), rel=1e-5)


@pytest.mark.slow
def test_the_turnaround_holds_in_a_plain_torch_loop_at_the_notebooks_best_lrs(executed) -> None:
    _, values = executed
    torch.manual_seed(42)
    x = torch.arange(-5, 5, 0.1).view(-1, 1)
    y = -5 * x + 0.4 * torch.randn(x.size())
    floor = float(torch.mean((y.double() - (-5 * x).double()) ** 2))  # the line's loss on the noisy points
    assert values["floor"] == pytest.approx(floor, rel=1e-6)
    at_tutorial_lr = {b: first_epoch_near(tutorial_losses(b, 0.1), floor) for b in (1, 10, 20)}
    own = {b: tutorial_losses(b, values["best_lr"][str(b)]) for b in (1, 10, 20)}
    at_own_lr = {b: first_epoch_near(losses, floor) for b, losses in own.items()}
    assert at_tutorial_lr[20] < at_tutorial_lr[10] < at_tutorial_lr[1] == 21  # never, at lr 0.1
    assert at_own_lr[1] < at_own_lr[10] < at_own_lr[20]
    for b, losses in own.items():
        assert values["own"][str(b)] == pytest.approx(losses, rel=1e-5)
