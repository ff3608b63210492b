# batchdrop — the targets a newcomer can guess.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# checkov pins an old boto3: it lives in a virtualenv of its own, used by the template tests
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

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

EXAMPLE := examples/students

## run: install, then load the bundled example (examples/students) into SQLite and show it
run: $(STAMP)
	@mkdir -p $(EXAMPLE)/inbound
	@cp $(EXAMPLE)/students.csv $(EXAMPLE)/inbound/students.csv
	@echo "+ batchdrop --config $(EXAMPLE)/batchdrop.yaml run --once"
	@$(BIN)/batchdrop --config $(EXAMPLE)/batchdrop.yaml run --once || test $$? -eq 1
	@echo "+ batchdrop --config $(EXAMPLE)/batchdrop.yaml get A10002"
	@$(BIN)/batchdrop --config $(EXAMPLE)/batchdrop.yaml get A10002

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2'

# the browser tests drive Debian's Chromium (Playwright for Python, from the dev extra)
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	else echo "the browser tests need Debian's chromium: apt-get install chromium (as root)"; exit 1; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive \
	$$SUDO apt-get install -y -q --no-install-recommends chromium

## test: install the dev dependencies (and Chromium), then run every test
test: $(DEV_STAMP) $(CHECKOV) $(CHROMIUM)
	REQUIRE_BROWSER_TESTS=1 CHECKOV=$(CHECKOV) $(PY) -m pytest -n 2 -q

## bench: the benchmarks (never part of `make test`)
bench: $(DEV_STAMP)
	$(PY) bench/run.py --big

## lint: ruff (lint and format) and mypy
lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

format: $(DEV_STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build dist *.egg-info src/*.egg-info .pytest_cache
