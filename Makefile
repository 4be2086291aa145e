# hw1lib: `make report` regenerates every figure, `make test` checks everything.
# Both set themselves up (venv, packages, MNIST) on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= full
DEVICE ?= auto
# Units computed at once: 2 processes on a 2-core CPU; on a GPU, threads with a
# CUDA stream each (try JOBS=4).
JOBS ?= 2

.PHONY: setup data results report notebooks test lab bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml (the one place versions are pinned) changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

data: setup
	@$(PY) -m hw1lib.data

## Compute every experiment headlessly into the cache (PROFILE=full by default);
## writes build/timings-$(PROFILE)-<device>.json.
results: data
	$(PY) -m hw1lib.run --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS)

## Compute, then render every notebook from the cache into build/notebooks/ and figures/.
report: results
	$(PY) -m hw1lib.report --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS)

## Re-execute notebooks/ in place with the quick profile: the outputs nbval compares.
notebooks: data
	$(PY) -m hw1lib.run --profile quick --jobs $(JOBS)
	$(PY) -m hw1lib.report --profile quick --in-place --jobs $(JOBS)

## Unit tests against oracles, then nbval over every notebook (their quick-profile
## results computed first, headlessly and --jobs at a time).
test: data
	$(PY) -m hw1lib.run --profile quick --jobs $(JOBS) --no-progress
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -q

lab: data
	$(VENV)/bin/jupyter lab notebooks/

bench: data
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf build results
