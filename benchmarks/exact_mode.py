"""Exact mode (hw1lib.exact): what it costs and whether it is bit-identical.

    .venv/bin/python benchmarks/exact_mode.py [--profile quick] [--jobs 2] [--only 1-3b,1-3d] [--reuse]

Computes PROFILE from an empty results directory each way, one after another
(so the timings share the machine's state), under build/exactcheck/<way>/:
- default: this CPU's own paths, one thread per process (as `make test`);
- exact: HW1LIB_EXACT=1;
- exact-mklavx2, exact-mklsse: exact mode with MKL told this CPU has at most
  AVX2 / SSE4.2 (MKL_ENABLE_INSTRUCTIONS), as on an older CPU;
- exact-jobs1: exact mode with one process (other units share a process).
Then prints, per experiment, the exact/default ratio of its wall time, and
whether every array of every cached entry is bit-identical between the exact
ways (and how many differ between default and exact). --reuse skips the
ways whose directory holds a finished run. --record writes what it printed as
JSON (benchmarks/results/exact_mode-<profile>.json: the README's
"Reproducible" block is generated from it by `python -m hw1lib.tables`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WAYS = {
    "default": ({"HW1LIB_EXACT": "0"}, ["--threads", "1"]),
    "exact": ({"HW1LIB_EXACT": "1"}, []),
    "exact-mklavx2": ({"HW1LIB_EXACT": "1", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}, []),
    "exact-mklsse": ({"HW1LIB_EXACT": "1", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, []),
    "exact-jobs1": ({"HW1LIB_EXACT": "1"}, ["--jobs", "1"]),
}


def compute(way: str, out: Path, profile: str, jobs: int, only: str | None, reuse: bool) -> dict:
    timings = out / way / "timings.json"
    if reuse and timings.is_file() and json.loads(timings.read_text()).get("complete"):
        return json.loads(timings.read_text())
    env_extra, args = WAYS[way]
    env = {k: v for k, v in os.environ.items() if k not in ("HW1LIB_EXACT", "MKL_ENABLE_INSTRUCTIONS")}
    env.update(env_extra, HW1LIB_RESULTS=str(out / way / "results"), CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "hw1lib.run", "--profile", profile, "--device", "cpu", "--jobs", str(jobs),
           "--no-progress", "--out", str(timings)] + (["--only", only] if only else []) + args
    shutil.rmtree(out / way, ignore_errors=True)
    (out / way).mkdir(parents=True)
    with open(out / f"{way}.log", "w") as log:
        subprocess.run(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads(timings.read_text())


def arrays(results: Path) -> dict[str, dict[str, np.ndarray]]:
    """{unit directory (without the code version's mode mark): {array: values}}."""
    out = {}
    for npz in sorted(results.glob("*/*/arrays.npz")):
        key = f"{npz.parent.parent.name}/{npz.parent.name.rstrip('x')}"
        with np.load(npz) as z:
            out[key] = {k: z[k] for k in z.files}
    return out


def differing(a: dict, b: dict) -> tuple[int, int]:
    """(entries with an array not equal to the bit, entries compared)."""
    keys = sorted(set(a) & set(b))
    bad = sum(any(not np.array_equal(a[k][n], b[k][n], equal_nan=True) for n in a[k]) for k in keys)
    return bad, len(keys)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default=None)
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--out", default=str(ROOT / "build" / "exactcheck"))
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--record", default=None, help="write the measurements to this JSON file")
    args = ap.parse_args()
    out = Path(args.out)
    ways = args.ways.split(",")
    rec = {w: compute(w, out, args.profile, args.jobs, args.only, args.reuse) for w in ways}
    print(f"profile {args.profile}, --jobs {args.jobs}; {rec['default']['device']}")
    summary = {"profile": args.profile, "jobs": args.jobs, "cpu": cpu_name(), "commit": git_commit(),
               "date": time.strftime("%Y-%m-%d"), "env": {w: WAYS[w][0] for w in ways},
               "args": {w: WAYS[w][1] for w in ways}}
    print(f"cpu: {summary['cpu']}")
    print("Unit time (s, summed over the units of each kind; the experiments' wall times overlap):")
    print(f"{'units':<24} {'default (s)':>11} {'exact (s)':>10} {'ratio':>6}")
    per = {w: {} for w in ("default", "exact")}
    for w in per:
        for unit, t in rec[w]["units"].items():
            per[w][unit.split("/")[0]] = per[w].get(unit.split("/")[0], 0.0) + t
    for kind, t in sorted(per["default"].items(), key=lambda kv: -kv[1]):
        e = per["exact"].get(kind)
        if e is not None and t > 0:
            print(f"{kind:<24} {t:>11.1f} {e:>10.1f} {e / t:>6.2f}")
    d, e = sum(per["default"].values()), sum(per["exact"].values())
    print(f"{'all units':<24} {d:>11.1f} {e:>10.1f} {e / d:>6.2f}")
    summary["unit_seconds"] = {"default": round(d, 1), "exact": round(e, 1), "by_kind": {
        k: [round(t, 1), round(per["exact"][k], 1)] for k, t in per["default"].items() if k in per["exact"]}}
    d, e = rec["default"]["total_seconds"], rec["exact"]["total_seconds"]
    print(f"{'wall, --jobs ' + str(args.jobs):<24} {d:>11.1f} {e:>10.1f} {e / d:>6.2f}")
    summary["wall_seconds"] = {"default": d, "exact": e}
    summary["identical"] = {}
    got = {w: arrays(out / w / "results") for w in ways}
    for w in ways:
        if w in ("default", "exact"):
            continue
        bad, n = differing(got["exact"], got[w])
        summary["identical"][w] = {"entries": n, "differ": bad}
        print(f"exact vs {w}: {n - bad} of {n} entries bit-identical" + (f"; {bad} DIFFER" if bad else ""))
    bad, n = differing(got["default"], got["exact"])
    print(f"default vs exact: {bad} of {n} entries differ in some bit (expected: exact mode takes other paths)")
    summary["default_vs_exact"] = {"entries": n, "differ": bad}
    if args.record:
        Path(args.record).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print(f"recorded in {args.record}")
    return 0


def cpu_name() -> str:
    """The CPU's model name and widest vector extension, from /proc/cpuinfo (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name}, {isa}, {os.cpu_count()} cores"


def git_commit() -> str:
    p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return p.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
