# hw1lib: `make report` regenerates every figure, `make test` checks everything.
# Both set themselves up (venv, packages, MNIST and Fashion-MNIST) on a fresh machine.
SHELL := /bin/bash
# The first of these that runs and is a supported Python (3.11 to 3.13); or PYTHON=/path/to/python3.x.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null && command -v $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= full
DEVICE ?= auto
# Units computed at once: 2 processes on a 2-core CPU; on a GPU, threads with a
# CUDA stream each (try JOBS=4).
JOBS ?= 2
# Some sections only: `make report NB=1-3e` or `NB=1-2b,1-3e` (experiment or notebook names), in every step.
NB ?=
# Config overrides, checked like the configs: `make report SET="1-3d.seeds=0,1 1-1a.epochs=8000"`.
SET ?=
SETS = $(foreach s,$(SET),--set $(s))
# Exact mode (hw1lib/exact.py): `make report EXACT=1` pins MKL to its COMPATIBLE branch, ATen to AVX2,
# convolutions to MKL (not oneDNN), OpenBLAS to Haswell and one thread per process, so that a result's bits
# do not depend on the x86 CPU (README, "Reproducible"). `make test` always runs in the default mode: its
# tests state their own conditions, and it checks the committed (default-mode) quick results.
EXACT ?=
ifneq ($(strip $(EXACT)),)
export HW1LIB_EXACT := $(EXACT)
endif
# The second run of the exactness tests (`pytest -m exact`) in make test: another MKL branch, ATen
# vector path and thread count than the first (tests/conftest.py), so that a bit-exact claim that holds
# only on this CPU's path or thread count fails here too. On other architectures only the threads change.
EXACT_TEST_ENV ?= HW1LIB_TEST_THREADS=3 $(if $(filter x86_64 amd64,$(shell uname -m)),MKL_CBWR=AVX2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2)

# Simulated machines `make test` computes the quick profile as (hw1lib.verify.MACHINES), and what each
# computes (empty: every experiment); see the README, "Reproducible". The default is the CPU a reader most
# likely has that this box is not: one without AVX-512 (`avx2`: ATen, oneDNN and MKL at their AVX2 paths).
# Its check of the experiments below costs about 40 s of wall time at --jobs 2 on 2 cores; the scalar machine's
# (a CPU without AVX, the farthest from this one) 82 s, which a fresh-clone `make test` cannot afford within
# its 8 minutes (measured 511 s with it): `make test CHECK_MACHINES=scalar` runs it, and every simulated
# machine's differences set the tolerances (figures/machine-spread.json). Left out by default: the
# experiments whose simulation costs most (one-thread work as the scalar machine: 1-1a and 1-1b about 100 s
# each, 1-3c 53 s; 1-3e 70 s of unit time as the avx2 machine since its Keskar units measure the rescaled
# sharpness, and with it the fresh-clone make test measured 507-514 s; 1-3d, whose quick units 1-3e reads,
# since the runner's calibration and the GPU script's CPU test joined make test at 526 s); the native run
# checks all, and `make test CHECK_ONLY=` simulates all.
CHECK_MACHINES ?= avx2
CHECK_ONLY ?= 1-2a,1-2b,1-2c,1-2d,1-3a,1-3b,1-3b-noise

.PHONY: setup lock data results report html notebooks test verify lab bench prune clean clean-build

setup: $(STAMP)

# Installs every package from the lock file (pinned, with hashes: nothing floats), then hw1lib
# itself; re-installs only when the lock file changes. An unsupported Python is one line before pip
# runs; a failed first setup leaves no half-made .venv (tools/setup.sh).
LOCK ?= requirements.lock
$(STAMP): $(LOCK) pyproject.toml
	@bash tools/setup.sh "$(PYTHON)" "$(VENV)" "$(LOCK)"

## Regenerate requirements.lock after changing a pin in pyproject.toml (uv resolves for every
## supported Python and platform at once).
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r tools/uv.txt
	$(PY) tools/lock.py

data: setup
	@$(PY) -m hw1lib.data
	@$(PY) -m hw1lib.fashion

## Compute every experiment headlessly into the cache (PROFILE=full by default);
## writes build/timings-$(PROFILE)-<device>.json.
results: data
	$(PY) -m hw1lib.run --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS) $(if $(NB),--only $(NB)) $(SETS)

## Compute, then render every notebook (or NB=...) from the cache into build/notebooks/ and figures/.
## With the full profile, every section and no SET, it then writes figures/results.json and regenerates
## the README's tables and RESULTS.md from it (python -m hw1lib.tables).
report: results
	$(PY) -m hw1lib.report --profile $(PROFILE) --device $(DEVICE) --jobs $(JOBS) $(SETS) $(NB)
	$(if $(and $(filter full,$(PROFILE)),$(if $(NB)$(SET),,yes)),$(PY) -m hw1lib.tables --write --profile full --device $(DEVICE))

## The last report's notebooks as a browsable site (inputs hidden): build/html/index.html.
html: setup
	$(PY) -m hw1lib.report --html

## Re-execute notebooks/ in place with the quick profile (one thread per process, the reference
## machine setting), and write its per-seed values to figures/results-quick.json: what make test checks.
notebooks: data
	$(PY) -m hw1lib.run --profile quick --jobs $(JOBS) --threads 1
	$(PY) -m hw1lib.report --profile quick --in-place --jobs $(JOBS)
	$(PY) -m hw1lib.verify --write --profile quick

## A reader's check of the report: recompute NB=... (default: everything) of PROFILE into a scratch
## directory and compare every headline number with the committed one, within its tolerance (to the bit
## where both the committed values and this run are in exact mode: `make verify EXACT=1`).
verify: data
	$(PY) -m hw1lib.verify --profile $(PROFILE) --jobs $(JOBS) $(if $(NB),--only $(NB))

## Unit tests against oracles, then the exactness tests again under another BLAS path and thread count
## (EXACT_TEST_ENV); nbval executes every notebook (their quick-profile results computed first, headlessly
## and --jobs at a time); then the quick profile's headline numbers, computed here and as the simulated
## machines would, are checked against figures/results-quick.json within tolerances. The simulated machines
## compute into their own scratch directory while the exactness tests, nbval and the native check run (much of
## their time is spent starting kernels and processes): the two lanes share the cores; the machines' report is
## printed whole at the end. (Beside pytest, which keeps both cores busy, the lane only slowed it down.)
test: export HW1LIB_EXACT :=
test: data
	CUDA_VISIBLE_DEVICES= $(PY) -m hw1lib.run --profile quick --device cpu --jobs $(JOBS) --threads 1 --no-progress
	$(PY) -m hw1lib.nbclean --check notebooks/*.ipynb
	$(PY) -m pytest tests -q
	@mkdir -p build; log=build/verify-machines.log; \
	CUDA_VISIBLE_DEVICES= $(PY) -m hw1lib.verify --profile quick --cached --jobs $(JOBS) --no-progress \
		$(foreach m,$(CHECK_MACHINES),--machine $(m)) $(if $(CHECK_ONLY),--only $(CHECK_ONLY)) > $$log 2>&1 & pid=$$!; \
	echo "[test] simulated machines ($(CHECK_MACHINES)): computing in the background, report in $$log"; \
	$(EXACT_TEST_ENV) $(PY) -m pytest tests -q -m exact && \
	CUDA_VISIBLE_DEVICES= $(PY) -m pytest notebooks --nbval-lax --nbval-current-env -q && \
	CUDA_VISIBLE_DEVICES= $(PY) -m hw1lib.verify --profile quick --cached --jobs $(JOBS) --no-progress --machine native; \
	rc=$$?; [ $$rc = 0 ] || kill $$pid 2>/dev/null; wait $$pid; v=$$?; cat $$log; exit $$(( rc || v ))

# HW1LIB_* paths are made absolute first (hw1lib.paths), so the kernels, which run in notebooks/, find them.
# Containers often run as root, where Jupyter refuses to start without --allow-root.
lab: data
	$(PY) -m hw1lib.paths $(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

bench: data
	$(PY) benchmarks/bench_training.py

## Remove the cached entries no experiment of the current code reads (other code versions, removed
## experiments, damaged entries set aside), saying what and how much; the rest stays cached.
prune: setup
	$(PY) -m hw1lib.run --prune

## Remove build/ (executed notebooks, logs, timings, html, scratch checks); keeps the results cache.
clean-build:
	@if [ -e build ]; then s=$$(du -sh build | cut -f1); rm -rf build && echo "removed build/ ($$s)"; \
	else echo "build/: nothing to remove"; fi

## Remove build/ and the results cache results/ (the full profile takes about 42 minutes on 2 cores to
## recompute; `make prune` keeps what the current code reads). Asks nothing, says what it removed.
clean: clean-build
	@if [ -e results ]; then n=$$(find results -name meta.json | wc -l); s=$$(du -sh results | cut -f1); \
	rm -rf results && echo "removed results/ ($$n cached entries, $$s)"; else echo "results/: nothing to remove"; fi
	@for v in HW1LIB_RESULTS HW1LIB_BUILD; do [ -z "$${!v:-}" ] || echo "not touched: $$v=$${!v}"; done
