# Quick start: `make demo` (install + run the demo), `make test` (install + run the tests).
# Everything installs into .venv with torch pinned by constraints.txt (CPU build 2.13.0).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test install install-test clean table1

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e .
	@touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	@touch $@

install: $(STAMP)

install-test: $(TEST_STAMP)

demo: $(STAMP)
	$(VENV)/bin/deepmimic demo

test: $(TEST_STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m pytest

# Reproduce the paper's Table 1 on full MNIST (needs ../shared/data/mnist; about 10 minutes on 2 CPU cores).
table1: $(STAMP)
	$(VENV)/bin/deepmimic run configs/mnist-table1.yaml

clean:
	rm -rf $(VENV) runs .pytest_cache
