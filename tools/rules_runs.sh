#!/bin/bash
# results/rules/<rule>.json: one `mbgd scaling` per update rule, each in a fresh folder of its own (new MLflow
# store and Optuna storage), at the code checked out here; then `python tools/rules_table.py --write`.
# About a minute each on two cores.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/results/rules"
run() {
  local name=$1
  shift
  mkdir "$work/$name"
  (cd "$work/$name" && "$root/.venv/bin/mbgd" scaling --name "$name" --output-dir out "$@" > log.txt 2>&1)
  cp "$work/$name/out/scaling.json" "$root/results/rules/$name.json"
  echo "$name: done"
}
run sgd
run sgd-linear --schedule linear
run sgd-ema --ema 0.99
run momentum --optimizer momentum
run momentum-linear --optimizer momentum --schedule linear
run adam --optimizer adam
run adam-linear --optimizer adam --schedule linear
