"""mbgd: the PyTorch mini-batch gradient descent tutorial, tracked in MLflow and tuned with Optuna.

The layers, from the bottom: runtime, core, studies, tracking, reports, pipelines, cli. Each package's
docstring says what it may import, and tests/test_layout.py holds the code to it (imports point down only, no
circle).

Imports inside functions are there for start-up alone, and only in the modules a command or a helper process
loads before its libraries (cli, pipelines, the trial runs, the compute worker): `mbgd --help` answers without
importing torch, MLflow, Optuna or matplotlib, `mbgd train` forks its training child before either side
imports them, and a sweep starts its trial-run helper and compute worker while it is still importing its own.
"""

__version__ = "0.1.0"
