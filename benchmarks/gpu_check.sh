#!/usr/bin/env bash
# GPU check, run as is on a machine with a CUDA GPU:
#
#   bash benchmarks/gpu_check.sh RESULT.json [JOBS]
#
# Needs only python3 with torch, torchvision, numpy, scipy and scikit-learn and the
# MNIST and Fashion-MNIST IDX files in data/MNIST/raw/ and data/FashionMNIST/raw/
# (gzipped copies there are decompressed first: they fit a small upload). Anything else (tqdm; pytest for the CUDA tests) is
# installed from benchmarks/wheels/ when that folder exists (no internet needed):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform any \
#       -d benchmarks/wheels tqdm pytest pluggy iniconfig packaging pygments
# Steps, each with its own time limit so that one stuck step cannot lose the others:
#   1. the tests that need CUDA (captured steps == eager steps, threaded units);
#   2. the quick profile computed on the GPU (captured steps, cuDNN) from an empty cache, every headline
#      number checked against figures/results-quick.json within its tolerance (`hw1lib.verify`);
#   3. `python -m hw1lib.run --profile full --device cuda --jobs JOBS` from an EMPTY cache;
#   4. the GPU rows of the training benchmark;
#   5. Keskar's F1 to their stopping rule, 5 seeds per regime, at most 200 epochs (benchmarks/keskar_f1.py: the
#      seeds and epochs a CPU cannot afford in the full profile; issue 37's F1 claim waits for it).
# The steps' limits add up to more than one 10-minute device call: GPU_CHECK_STEPS picks a subset per call
# (e.g. GPU_CHECK_STEPS="keskar_f1 bench").
# Everything (logs' tails, timings, bench rows, the card, torch) goes into RESULT.json.
# On a CPU (how the script is tested): GPU_CHECK_DEVICE=cpu GPU_CHECK_PROFILE=smoke runs the chosen steps
# there, on the smoke profile (tests/test_benchmarks.py runs the F1 step so).
set -uo pipefail
cd "$(dirname "$0")/.."
RESULT=${1:?usage: bash benchmarks/gpu_check.sh RESULT.json [JOBS]}
JOBS=${2:-4}
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if compgen -G "benchmarks/wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" benchmarks/wheels/*.whl \
        || echo "warning: installing benchmarks/wheels failed" >&2
    export PYTHONPATH="$WORK/site"
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
for gz in data/*/raw/*.gz; do
    [[ -e "$gz" && ! -e "${gz%.gz}" ]] && gunzip -k "$gz"
done
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PROFILE=${GPU_CHECK_PROFILE:-full}
if [[ $DEVICE == cuda ]]; then
    python3 - <<'EOF' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA GPU here: gpu_check.sh is for a GPU machine (GPU_CHECK_DEVICE=cpu tests it)"
print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
EOF
fi

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep the log and the exit code
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s): $*"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    echo $? >"$WORK/$name.rc"
    echo $((SECONDS - t0)) >"$WORK/$name.s"
    tail -n 25 "$WORK/$name.log"
}

STEPS=${GPU_CHECK_STEPS:-tests verify_quick full_profile bench keskar_f1}   # a subset, to rerun part of the check
want() { [[ " $STEPS " == *" $1 "* ]]; }
want tests && step tests 100 python3 -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_train.py
want verify_quick && step verify_quick 200 python3 -m hw1lib.verify --profile quick --device "$DEVICE" --jobs "$JOBS" \
    --no-progress
export HW1LIB_RESULTS="$WORK/results"   # empty cache: the full profile is timed from scratch
want full_profile && step full_profile 360 python3 -m hw1lib.run --profile "$PROFILE" --device "$DEVICE" --jobs "$JOBS" \
    --no-progress --out "$WORK/timings-full-cuda.json"
[[ $DEVICE == cuda ]] && cp "$WORK/timings-full-cuda.json" build/ 2>/dev/null
want bench && step bench 110 python3 benchmarks/bench_training.py --device "$DEVICE" --repeats 2 --json "$WORK/bench-cuda.json"
want keskar_f1 && step keskar_f1 300 python3 benchmarks/keskar_f1.py --device "$DEVICE" --profile "$PROFILE" --seeds 5 \
    --max-epochs "$([[ $PROFILE == full ]] && echo 200 || echo 2)" --json "$WORK/keskar-f1.json"

python3 - "$WORK" "$RESULT" "$JOBS" "$DEVICE" <<'EOF'
import json, pathlib, sys
work, result, jobs = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if sys.argv[4] == "cuda":
    import torch
    card, version = torch.cuda.get_device_name(0), torch.__version__
else:                      # the CPU test of this script: no torch import for the record
    card, version = "cpu", None
def read(name):
    p = work / name
    return json.loads(p.read_text()) if p.exists() else None
out = {"card": card, "torch": version, "jobs": jobs,
       "timings_full": read("timings-full-cuda.json"), "bench": read("bench-cuda.json"),
       "keskar_f1": read("keskar-f1.json"), "steps": {}}
for name in ("tests", "verify_quick", "full_profile", "bench", "keskar_f1"):
    log = work / f"{name}.log"
    out["steps"][name] = {
        "rc": int((work / f"{name}.rc").read_text()) if (work / f"{name}.rc").exists() else None,
        "seconds": int((work / f"{name}.s").read_text()) if (work / f"{name}.s").exists() else None,
        "log_tail": log.read_text()[-4000:] if log.exists() else ""}
pathlib.Path(result).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(result).write_text(json.dumps(out, indent=2))
print("result ->", result, {k: v["rc"] for k, v in out["steps"].items()})
EOF
