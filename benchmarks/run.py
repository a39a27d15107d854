"""Run mbgd's benchmarks (`make bench`): each compares the project with a reference written in the benchmark.

    .venv/bin/python benchmarks/run.py                # all of them, a few minutes
    .venv/bin/python benchmarks/run.py --only P1,P3   # some
    .venv/bin/python benchmarks/run.py --only P6,P6-PUBLIC   # P6 on the default path and on the public API
    .venv/bin/python benchmarks/run.py --quick        # smoke run: small workloads, ratios not meaningful

Every MLflow store and Optuna storage lives in a temporary folder, which is also the working directory while
the benchmarks run, so the project's mlflow.db, optuna.db and mlruns/ are never touched. The figure and the
measurements worth keeping go to benchmarks/output/.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

from harness import OUTPUT_DIR, PROJECT_ROOT, Context, Result, machine_line

PUBLIC_API_ENV = (
    "MBGD_PUBLIC_API"  # as mbgd.studies.optuna_internals and mbgd.tracking.mlflow_internals read it
)

BENCHMARKS = {  # id -> module with run(context) -> list[Result], or module:function
    "P1": "p1_train",
    "P2": "p2_sweep",
    "P2S": "p2s_sweep",
    "P3": "p3_loader",
    "P4": "p4_help",
    "S1": "s1_epoch_time",
    "M1": "m1_memory",
    "PR": "pr_pruning",
    "LM": "lm_logged_model",
    "P5": "p5_commands:train",
    "P6": "p5_commands:sweep",
    "P7": "p5_commands:scaling",
}
# The same benchmarks with MBGD_PUBLIC_API=1: mbgd on MLflow's and Optuna's public API only (the path any
# version the adapters were not verified on takes). No goal: the line beside the default path's says what the
# private fast paths buy.
PUBLIC = {f"{benchmark_id}-PUBLIC": benchmark_id for benchmark_id in ("P2S", "P5", "P6", "P7")}
BENCHMARKS.update({public: BENCHMARKS[default] for public, default in PUBLIC.items()})


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P3 (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run with small workloads")
    args = parser.parse_args(argv)
    args.ids = [item.strip().upper() for item in args.only.split(",") if item.strip()] or list(BENCHMARKS)
    unknown = [item for item in args.ids if item not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark ids {unknown}; choose from {', '.join(BENCHMARKS)}")
    return args


def quiet_libraries() -> None:
    """MLflow's and alembic's INFO lines about creating tables would bury the results."""
    # read when mlflow is imported; setLevel now would be undone
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")  # e.g. its notices about the fluent API's defaults
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)  # a benchmark must not adopt or write into a run of the calling shell


def run_benchmark(benchmark_id: str, benchmark, context: Context) -> list[Result]:
    """The benchmark's results; a -PUBLIC id's with MBGD_PUBLIC_API=1 (inherited by the commands it starts),
    without a goal, named as such."""
    if benchmark_id not in PUBLIC:
        return benchmark(context)
    os.environ[PUBLIC_API_ENV] = "1"
    own_folder = context.workdir / benchmark_id.lower()  # its stores apart from the default path's
    own_folder.mkdir()
    try:
        results = benchmark(replace(context, workdir=own_folder))
    finally:
        os.environ.pop(PUBLIC_API_ENV)
    return [
        replace(result, id=f"{result.id} public", name=f"{result.name} (public API only)", goal=None)
        for result in results
    ]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    quiet_libraries()
    OUTPUT_DIR.mkdir(exist_ok=True)
    start = time.perf_counter()
    print(machine_line(), flush=True)
    results: list[Result] = []
    if args.quick:
        print("quick smoke run: workloads reduced, the ratios below are not comparable with the goals")
    with tempfile.TemporaryDirectory(prefix="mbgd-bench-") as workdir:
        os.chdir(workdir)
        try:
            context = Context(workdir=Path(workdir), output_dir=OUTPUT_DIR, quick=args.quick)
            for benchmark_id in args.ids:
                print(f"{benchmark_id} ...", flush=True)
                module, _, function = BENCHMARKS[benchmark_id].partition(":")
                benchmark = getattr(importlib.import_module(module), function or "run")
                for result in run_benchmark(benchmark_id, benchmark, context):
                    results.append(result)
                    print(result.line(quick=args.quick), flush=True)
        finally:
            os.chdir(PROJECT_ROOT)
    print(f"\nsummary ({time.perf_counter() - start:.0f} s in all; {machine_line()}):")
    for result in results:
        print(result.line(quick=args.quick))
    return 0 if args.quick or all(result.met for result in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
