# The two entry points (README): `make demo` and `make test`. Both build their own
# virtual environment (.venv) from pyproject.toml on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test dev bench clean-data

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## demo: synthetic deliveries -> whole study -> warehouse, report; prints where they are
demo: $(STAMP)
	$(BIN)/ibd-pipeline demo

## test: the test suite, in TEST_WORKERS pytest-xdist workers (a module's tests in one worker)
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS) --dist loadfile

## dev: the Dagster UI (sensor on) for the data directory
dev: $(STAMP)
	$(BIN)/ibd-pipeline ui

## bench: benchmarks (outside the test suite)
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean-data:
	rm -rf data
