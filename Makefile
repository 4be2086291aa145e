# hw1lib: `make report` regenerates every figure, `make test` checks everything.
# Both set themselves up (venv, packages, MNIST and Fashion-MNIST) on a fresh machine.
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
# One section only: `make report NB=1-3e` (an experiment or notebook name).
NB ?=

.PHONY: setup lock data results report html notebooks test lab bench clean

setup: $(STAMP)

# Installs every package from requirements.lock (pinned, with hashes: nothing
# floats), then hw1lib itself; re-installs only when the lock file changes.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

## Regenerate requirements.lock after changing a pin in pyproject.toml.
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) tools/lock.py

data: setup
	@$(PY) -m hw1lib.data
	@$(PY) -m hw1lib.fashion

## Compute every experiment headlessly into the cache (PROFILE=full by default);
## writes build/timings-$(PROFILE)-<device>.json.
results: data
	$(PY) -m hw1lib.run --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS) $(if $(NB),--only $(NB))

## Compute, then render every notebook (or NB=...) from the cache into build/notebooks/ and figures/.
## With the full profile and every section, it then writes figures/results.json and regenerates the
## README's tables and RESULTS.md from it (python -m hw1lib.tables).
report: results
	$(PY) -m hw1lib.report --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS) $(NB)
	$(if $(and $(filter full,$(PROFILE)),$(if $(NB),,yes)),$(PY) -m hw1lib.tables --write --profile full --device $(DEVICE))

## The last report's notebooks as a browsable site (inputs hidden): build/html/index.html.
html: setup
	$(PY) -m hw1lib.report --html

## Re-execute notebooks/ in place with the quick profile: the outputs nbval compares.
notebooks: data
	$(PY) -m hw1lib.run --profile quick --jobs $(JOBS)
	$(PY) -m hw1lib.report --profile quick --in-place --jobs $(JOBS)

## Unit tests against oracles, then nbval over every notebook (their quick-profile
## results computed first, headlessly and --jobs at a time).
test: data
	CUDA_VISIBLE_DEVICES= $(PY) -m hw1lib.run --profile quick --device cpu --jobs $(JOBS) --no-progress
	$(PY) -m pytest tests -q
	CUDA_VISIBLE_DEVICES= $(PY) -m pytest notebooks --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg -q

# Containers often run as root, where Jupyter refuses to start without --allow-root.
lab: data
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

bench: data
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf build results
