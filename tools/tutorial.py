"""Execute docs/tutorial.ipynb in a fresh kernel of this Python: `make tutorial` writes it back with its
outputs; tests/test_tutorial.py executes it anew and checks them.

The kernel is this interpreter's own, from a kernelspec written into a temporary folder (whatever kernels
Jupyter knows elsewhere), and it runs in that folder: nothing but the notebook itself (with --write) is
written into the repository.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
CELL_TIMEOUT_S = 300  # the whole notebook takes seconds; a cell this slow is stuck
KERNEL_NAME = "mbgd-tutorial"
# What the committed notebook's metadata names: Jupyter's default Python kernel, whatever ran it.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def execute(path: Path = NOTEBOOK, *, extra_cells: Sequence[str] = ()):
    """The notebook at `path` executed top to bottom (extra_cells appended as code cells first); raises
    nbclient's CellExecutionError at the first cell that fails."""
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    notebook.cells.extend(nbformat.v4.new_code_cell(source) for source in extra_cells)
    with tempfile.TemporaryDirectory(prefix="mbgd-tutorial-") as folder:
        kernels = Path(folder) / "kernels"
        write_kernel_spec(kernels / KERNEL_NAME)  # argv: sys.executable -m ipykernel_launcher
        manager = KernelManager(
            kernel_name=KERNEL_NAME,
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]),
            # Unix sockets in the folder rather than TCP ports on localhost: no port for another process.
            transport="ipc",
            ip=str(Path(folder) / "kernel"),
        )
        NotebookClient(
            notebook,
            km=manager,
            timeout=CELL_TIMEOUT_S,
            record_timing=False,  # no timestamps in the committed file: a re-execution changes only outputs
            resources={"metadata": {"path": folder}},  # the kernel's working directory
        ).execute()
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    return notebook


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the executed notebook back to its file")
    parser.add_argument("notebook", nargs="?", type=Path, default=NOTEBOOK)
    args = parser.parse_args(argv)
    import nbformat

    start = time.perf_counter()
    notebook = execute(args.notebook)
    elapsed = time.perf_counter() - start
    nbformat.validate(notebook)
    if args.write:
        nbformat.write(notebook, args.notebook)
    print(f"{args.notebook}: executed in {elapsed:.1f} s" + (", written" if args.write else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
