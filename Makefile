# hw1lib: `make report` regenerates every figure, `make test` checks everything.
# Both set themselves up (venv, packages, MNIST) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= full
DEVICE ?= auto

.PHONY: setup data report notebooks test lab bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml (the one place versions are pinned) changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

data: setup
	@$(PY) -m hw1lib.data

## Run every notebook (PROFILE=full by default) into build/notebooks/, regenerate figures/.
report: data
	$(PY) -m hw1lib.report --profile $(PROFILE) --device $(DEVICE)

## Re-execute notebooks/ in place with the quick profile: the outputs nbval compares.
notebooks: data
	$(PY) -m hw1lib.report --profile quick --in-place

## Unit tests against oracles, then nbval over every notebook.
test: data
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -q

lab: data
	$(VENV)/bin/jupyter lab notebooks/

bench: data
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf build results
