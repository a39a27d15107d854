# Everything a fresh machine needs: `make run` (the tutorial run) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The project's .venv comes first on PATH so that `mlflow run --env-manager local` runs its commands in it.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test test-fast lint layout constraints bench soak clean mutate tutorial

# The tested environment: pyproject.toml's ranges, pinned by constraints.txt.
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	mlflow run . --env-manager local -P batch_size=20
	@echo "Open the MLflow UI on these runs: $(BIN)/mbgd ui"

test: install lint
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

# ruff (pinned in the test extra): its checks and its formatting, over everything that is Python here.
lint: install
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# constraints.txt anew from what .venv has (after an upgrade within pyproject.toml's ranges); its comment kept.
constraints: install
	{ grep '^#' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^mbgd' \
	  | sed 's/^torch==\([^+]*\)+.*/torch==\1/'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

# README's layout block, from the packages' and modules' docstrings (tests/test_layout.py checks it).
layout:
	$(PYTHON) tools/layout.py --write

# docs/tutorial.ipynb executed anew in a kernel of .venv's Python and written back with its outputs
# (tests/test_tutorial.py executes it too, and checks them).
tutorial: install
	$(BIN)/python tools/tutorial.py --write

bench: install
	$(BIN)/python benchmarks/run.py

# Mutation testing of the numeric core and the protocol against the fast tests ([tool.mutmut] in pyproject.toml);
# not part of `make test`. Ends with one line: the share of mutants killed. MUTANTS narrows it (mutmut's name globs).
MUTANTS ?= mbgd.core.train.* mbgd.core.data.* mbgd.core.scan.* mbgd.core.theory.* mbgd.core.noise_scale.* mbgd.core.objectives.* mbgd.core.config.x_redact* mbgd.studies.protocol.* mbgd.studies.optuna_internals.* mbgd.runtime.liveness.*
mutate: install
	$(BIN)/mutmut run --max-children 2 $(foreach m,$(MUTANTS),'$(m)') > mutants.log 2>&1 || (tail -20 mutants.log; exit 1)
	$(BIN)/python tools/mutation_score.py $(foreach m,$(MUTANTS),'$(m)')

# The fault scenarios (kill -9 of a worker, of the trial-run helper, of the sweep; SIGINT, SIGTERM), N rounds each
# at random moments, one line per scenario with its pass count: `make soak N=5`. Not part of `make test`.
N ?= 20
soak: install
	$(BIN)/python benchmarks/soak.py --rounds $(N)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache mutants mutants.log
