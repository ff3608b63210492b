# batchdrop — the targets a newcomer can guess.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test bench lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

## run: install, then load the bundled example (examples/students) into SQLite and show it
run: $(STAMP)
	@$(BIN)/batchdrop --config examples/students/batchdrop.yaml demo

## test: install the dev dependencies, then run every test
test: $(DEV_STAMP)
	$(PY) -m pytest -n 2 -q

## bench: the benchmarks (never part of `make test`)
bench: $(DEV_STAMP)
	$(PY) bench/run.py

## lint: ruff and mypy
lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

format: $(DEV_STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache
