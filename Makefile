# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSIGHT := $(VENV)/bin/insight
PYTEST_ARGS ?=

.PHONY: install test test-fast demo clean benchmarks

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

## make demo: synthetic data for several councils, validate, load, run every evaluation, render the site
demo: install
	$(INSIGHT) demo

clean:
	rm -rf reports/demo data/demo .insight
