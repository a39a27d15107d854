#!/usr/bin/env bash
# The fast tests once more with mlflow and optuna at the newest versions pyproject.toml's ranges allow (pip
# takes the newest it can install; everything else as constraints.txt pins it), in a venv of its own; and the
# results-unchanged tests on Optuna's and MLflow's public API only (MBGD_PUBLIC_API=1), in the project's venv
# (with the protocol's and the process end's, which hold on both paths; tests/test_tracking_rows.py tests the
# fast path itself).
set -euo pipefail
cd "$(dirname "$0")/.."
newest=.venv-newest
python3 -m venv "$newest"
"$newest/bin/python" -m pip install --quiet --upgrade pip
grep -viE '^(mlflow|mlflow-skinny|mlflow-tracing|optuna)==' constraints.txt > "$newest/constraints.txt"
"$newest/bin/python" -m pip install --quiet -c "$newest/constraints.txt" -e '.[test]'
"$newest/bin/python" -c 'import mlflow, optuna; print(f"newest allowed: mlflow {mlflow.__version__}, optuna {optuna.__version__}")'
"$newest/bin/python" -m pytest -m "not slow" -p no:cacheprovider -q
MBGD_PUBLIC_API=1 .venv/bin/python -m pytest -p no:cacheprovider -q \
    tests/test_unchanged_results.py tests/test_protocol.py tests/test_budget_race.py \
    tests/test_process_end.py
