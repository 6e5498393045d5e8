# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSIGHT := $(VENV)/bin/insight
PYTEST_ARGS ?=

.PHONY: install test test-fast lint demo lab clean benchmarks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

## make test: create the environment, install, run every test (slow statistical checks included)
test: install
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 -rs $(PYTEST_ARGS)

## make test-fast: skip the slow statistical checks (for editing loops)
test-fast: install
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

## make lint: ruff (rules in pyproject.toml) over the package
lint: install
	$(VENV)/bin/ruff check insightlib

## make demo: synthetic data for several councils, validate, load, run every evaluation, render the site
demo: install
	$(INSIGHT) demo

## make lab: JupyterLab on the notebooks; their default data is the demo warehouse data/demo.duckdb
## (made first, without running the evaluations, when it is not there). LAB_ARGS: e.g. --no-browser
LAB_ARGS ?=
lab: install
	@test -f data/demo.duckdb || $(INSIGHT) demo --load-only
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

clean:
	rm -rf reports/demo data/demo data/demo.duckdb .insight
