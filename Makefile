# Everything a fresh machine needs: `make run` (the tutorial run) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The project's .venv comes first on PATH so that `mlflow run --env-manager local` runs its commands in it.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test test-fast bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	mlflow run . --env-manager local -P batch_size=20
	@echo "Open the MLflow UI on these runs: $(BIN)/mbgd ui"

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
