"""Check computed results against the committed ones, within stated tolerances.

    python -m hw1lib.verify --profile full --only 1-2b        (make verify NB=1-2b)
    python -m hw1lib.verify --profile quick --machine scalar  (what make test runs)

Another CPU's vector path (ATen, MKL, oneDNN), another thread count or a GPU
changes the last bits of a float computation, and training amplifies them: a
result is bit-identical only on the machine and thread count that wrote it.
Elsewhere it must agree within a tolerance, so every checked number is
compared as a number, never as printed digits.

What is compared. Each experiment's checked metrics (its declared `checks`) are its
headline numbers, each as its per-seed values (per run, for 1-2c's 100 runs;
one value for a single-run number). The committed values live in
`figures/results.json` (full profile, written by `make report`) and
`figures/results-quick.json` (quick profile, written by `make notebooks`).
A metric holds when the mean over seeds computed here is within the
tolerance of the committed mean, on the metric's scale (log10 for losses,
gradient norms, sharpness and the like, which vary by factors; linear for
accuracies and ratios, in %).

The tolerance, per metric, is the largest of
- seeds: Z_SEEDS * s * sqrt(2 / n), where s is the standard deviation over
  the n committed seeds (n >= 2). If another machine's rounding made every
  seed an independent draw, the difference of the two means would have
  standard deviation sigma * sqrt(2 / n); 4 of those is a false alarm in
  about 1 of 16,000 comparisons. Rounding changes far less than a new seed
  does, so this bound is generous where the seeds are many;
- machines: K_MACHINE times the largest difference measured between this
  machine and the simulated ones (`MACHINES`) for the metric's family
  (`figures/machine-spread.json`, written by `--measure-spread`): the
  tolerance of single-run numbers, and a floor under the seed bound when two
  seeds happen to agree;
- one sample: an accuracy cannot move by less than one image of the set it
  is measured on (100 / n points), so no tolerance is below that;
- floor: FLOOR[scale], for a family that no simulated machine moved.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .paths import build_dir, repo_root, shown, write_atomic

Z_SEEDS = 4.0
K_MACHINE = 4.0
FLOOR = {"lin": 0.01, "log": 0.002}     # 0.01 points of a percentage; 0.002 decades = 0.5%

REFERENCE = {"full": Path("figures") / "results.json", "quick": Path("figures") / "results-quick.json"}
SPREAD = Path("figures") / "machine-spread.json"

# Simulated machines: environment and threads per process. "native" is this machine as the reference
# was computed (one thread per process, `--jobs 2` on two cores). "scalar" takes ATen's scalar kernels
# and the oldest vector paths of oneDNN and MKL, as a CPU without AVX would; "threads" computes with
# two threads in one process (another thread count splits reductions differently).
MACHINES: dict[str, dict[str, Any]] = {
    "native": {"env": {}, "threads": 1},
    "scalar": {"env": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
               "threads": 1},
    "threads": {"env": {}, "threads": 2},
}


def checks(names: list[str], profile: str, device: str = "cpu") -> dict[str, dict[str, dict]]:
    """{experiment: {metric: {family, scale, values}}} of `names` from the
    results cache (HW1LIB_RESULTS); whatever is not cached is computed."""
    from .experiments import experiment

    out = {}
    for name in names:
        e = experiment(name)
        cfg = e.make_config(profile, device)
        out[name] = {k: {"family": c.family, "scale": c.scale, "values": [_round(v) for v in c.values],
                         **({"resolution": _round(c.resolution)} if c.resolution else {})}
                     for k, c in e.checks(e.run(cfg, progress=False), cfg).items()}
    return out


def _round(x: float) -> float | None:
    """12 significant digits (a stable JSON file, far below any tolerance); NaN -> None."""
    return float(f"{x:.12g}") if math.isfinite(x) else None


# ------------------------------------------------------------------ comparison
def _scaled(values, scale: str) -> np.ndarray:
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    return np.log10(np.clip(v, 1e-300, None)) if scale == "log" else v


def tolerance(values, scale: str, family_spread: float | None, resolution: float = 0.0) -> tuple[float, str]:
    """(tolerance on the metric's scale, which term set it) for committed per-seed `values`."""
    v = _scaled(values, scale)
    v = v[np.isfinite(v)]
    terms = {"floor": FLOOR[scale], "one sample": resolution}
    if len(v) >= 2:
        s = float(np.std(v, ddof=1))
        if scale == "lin" and np.isin(v, (0.0, 100.0)).all():
            # a share of runs (each 0 or 100%): k of n seen gives no spread when k is 0 or n, so take the
            # binomial one at Laplace's estimate (k + 1) / (n + 2), which is never 0 or 1
            p = (np.count_nonzero(v) + 1) / (len(v) + 2)
            s = max(s, 100 * math.sqrt(p * (1 - p)))
        terms["seeds"] = Z_SEEDS * s * math.sqrt(2 / len(v))
    if family_spread is not None:
        terms["machines"] = K_MACHINE * family_spread
    why = max(terms, key=terms.get)
    return terms[why], why


def compare(reference: dict, here: dict, spread: dict) -> list[dict]:
    """One row per metric of `here` ({experiment: {metric: check}}): committed
    and computed means (on the metric's own scale: % or the value), the
    tolerance, and whether it holds. A metric only one side has fails (1-2c's
    minimal ratio exists only where some run reached the tolerance)."""
    rows = []
    for name, metrics in here.items():
        ref_exp = reference.get(name, {})
        for metric in sorted(set(ref_exp) - set(metrics)):
            rows.append({"experiment": name, "metric": metric, "scale": ref_exp[metric]["scale"],
                         "here": None, "committed": _mean(ref_exp[metric]["values"], ref_exp[metric]["scale"]),
                         "tol": None, "why": "not computed here", "ok": False})
        for metric, c in metrics.items():
            ref = ref_exp.get(metric)
            row = {"experiment": name, "metric": metric, "scale": c["scale"], "here": _mean(c["values"], c["scale"])}
            if ref is None:
                rows.append({**row, "committed": None, "tol": None, "why": "not in the committed results", "ok": False})
                continue
            tol, why = tolerance(ref["values"], ref["scale"], spread.get(ref["family"]), ref.get("resolution", 0.0))
            a, b = _scaled(ref["values"], ref["scale"]), _scaled(c["values"], c["scale"])
            diff = abs(np.nanmean(b) - np.nanmean(a)) if np.isfinite(a).any() and np.isfinite(b).any() else math.inf
            both_missing = not np.isfinite(a).any() and not np.isfinite(b).any()
            rows.append({**row, "committed": _mean(ref["values"], ref["scale"]), "tol": tol, "why": why,
                         "diff": diff, "ok": bool(both_missing or diff <= tol * (1 + 1e-9))})   # rounding of the subtraction
    return rows


def _mean(values, scale: str) -> float:
    """The mean the comparison uses, back on the metric's own scale (geometric for log)."""
    v = _scaled(values, scale)
    m = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
    return 10 ** m if scale == "log" else m


def format_rows(rows: list[dict], label: str) -> str:
    head = f"{'experiment':<11} {'metric':<40} {'committed':>11} {'here':>11} {'tolerance':>16}  verdict"
    lines = [f"[verify] {label}", head, "-" * len(head)]
    for r in rows:
        tol = "-" if r["tol"] is None else (f"x/ {10 ** r['tol']:.3g}" if r["scale"] == "log" else f"+- {r['tol']:.3g}")
        lines.append(f"{r['experiment']:<11} {r['metric'][:40]:<40} {_fmt(r['committed']):>11} {_fmt(r['here']):>11} "
                     f"{tol:>16}  {'ok' if r['ok'] else 'OUTSIDE'} ({r['why']})")
    bad = sum(not r["ok"] for r in rows)
    lines.append(f"[verify] {label}: {len(rows) - bad} of {len(rows)} metrics within tolerance"
                 + (f"; {bad} OUTSIDE" if bad else ""))
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


# ------------------------------------------------------------------ files and machines
def read_json(path: Path) -> dict:
    p = repo_root() / path
    return json.loads(p.read_text()) if p.is_file() else {}


def write_json(path: Path, data: dict) -> None:
    write_atomic(repo_root() / path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def committed_checks(profile: str) -> dict:
    data = read_json(REFERENCE[profile])
    if "checks" not in data:
        from .errors import ConfigError

        raise ConfigError(f"{REFERENCE[profile]} holds no per-seed values to check against; run "
                          f"{'make report' if profile == 'full' else 'make notebooks'} to write them.")
    return data["checks"]


def family_spread() -> dict[str, float]:
    return {f: d["max_diff"] for f, d in read_json(SPREAD).get("families", {}).items()}


def compute_as(machine: str, profile: str, names: list[str], results: Path, jobs: int, device: str,
               progress: bool) -> dict:
    """Compute `names` of `profile` as `machine` would, into the results
    directory `results`, in a child process (the environment must be set before
    torch starts); returns their checks."""
    spec = MACHINES[machine]
    env = {**os.environ, **spec["env"], "HW1LIB_RESULTS": str(results)}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "hw1lib.run", "--profile", profile, "--device", device, "--only", ",".join(names),
           "--jobs", str(jobs), "--out", str(scratch(machine, profile).parent / "timings.json")]
    if device == "cpu":
        cmd += ["--threads", str(spec["threads"])]
    if not progress:
        cmd.append("--no-progress")
    p = subprocess.run(cmd, env=env, cwd=repo_root())
    if p.returncode in (130, -2):
        raise KeyboardInterrupt     # the child was interrupted (and said what it kept)
    if p.returncode:
        raise SystemExit(f"error: computing {', '.join(names)} as machine {machine!r} failed (exit {p.returncode}).")
    dump = scratch(machine, profile).parent / "checks.json"
    dump.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "hw1lib.verify", "--dump", str(dump), "--profile", profile,
                    "--device", device, "--only", ",".join(names)], env=env, cwd=repo_root(), check=True)
    return json.loads(dump.read_text())


def measure_spread(profile: str, names: list[str], machines: list[str], jobs: int, progress: bool) -> dict:
    """Compute `names` as each simulated machine would and record, per family,
    the largest difference of means from the native machine (the results cache
    as computed here, filled first if needed)."""
    from .paths import results_dir

    base = compute_as("native", profile, names, results_dir(), jobs, "cpu", progress)
    fams: dict[str, dict] = {}
    for m in machines:
        other = compute_as(m, profile, names, scratch(m, profile), jobs, "cpu", progress)
        for name, metrics in base.items():
            for metric, c in metrics.items():
                a, b = _scaled(c["values"], c["scale"]), _scaled(other[name][metric]["values"], c["scale"])
                d = abs(float(np.nanmean(b) - np.nanmean(a))) if np.isfinite(a).any() and np.isfinite(b).any() else 0.0
                f = fams.setdefault(c["family"], {"scale": c["scale"], "max_diff": 0.0, "by_machine": {}})
                f["max_diff"] = max(f["max_diff"], _round(d))
                f["by_machine"][m] = max(f["by_machine"].get(m, 0.0), _round(d))
    return fams


def scratch(machine: str, profile: str) -> Path:
    return build_dir() / "verify" / profile / machine / "results"


def main(argv: list[str] | None = None) -> int:
    from .experiments import REGISTRY, select
    from .experiments import names as experiment_names
    from .errors import Hw1libError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["quick", "full"])
    ap.add_argument("--only", default=None, help="comma-separated experiment or notebook names (default: all)")
    ap.add_argument("--machine", action="append", choices=list(MACHINES),
                    help="compute as this machine would (repeatable; default: native)")
    ap.add_argument("--cached", action="store_true",
                    help="check what the results cache holds (HW1LIB_RESULTS; computing what is missing) "
                         "instead of recomputing into a scratch directory")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (the machine settings apply to cpu)")
    ap.add_argument("--reference", default=None, help="committed values (default figures/results[-quick].json)")
    ap.add_argument("--no-progress", action="store_true")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the cached values of every experiment as the "
                                                            "committed ones of --profile")
    mode.add_argument("--measure-spread", action="store_true", help="measure the simulated machines' differences "
                                                                     f"into {SPREAD}")
    mode.add_argument("--dump", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        only = experiment_names(args.only)
        names = [e.name for e in (select(only) if only else REGISTRY)]
        if args.dump:
            write_atomic(Path(args.dump), json.dumps(checks(names, args.profile, args.device)))
            return 0
        if args.write:
            from .provenance import git_commit

            write_json(REFERENCE[args.profile], {"profile": args.profile, "commit": git_commit(),
                                                 "checks": checks(names, args.profile, args.device)})
            print(f"[verify] wrote the {args.profile} profile's per-seed values to {REFERENCE[args.profile]}")
            return 0
        if args.measure_spread:
            machines = args.machine or [m for m in MACHINES if m != "native"]
            fams = measure_spread(args.profile, names, machines, args.jobs, not args.no_progress)
            write_json(SPREAD, {"profile": args.profile, "machines": {m: MACHINES[m] for m in machines},
                                "experiments": names, "families": fams})
            print(f"[verify] wrote {SPREAD}: " + ", ".join(f"{f} {d['max_diff']:.3g}" for f, d in fams.items()))
            return 0
        reference = (json.loads(Path(args.reference).read_text())["checks"] if args.reference
                     else committed_checks(args.profile))
        spread = family_spread()
        bad = 0
        for machine in args.machine or ["native"]:
            if args.cached and machine == "native":
                from .paths import results_dir

                here = compute_as(machine, args.profile, names, results_dir(), args.jobs, args.device, False)
                label = "native (the results cache)"
            else:
                out = scratch(machine, args.profile)
                if out.exists() and not args.cached:
                    shutil.rmtree(out)     # a reader's check recomputes from nothing
                here = compute_as(machine, args.profile, names, out, args.jobs, args.device, not args.no_progress)
                label = f"{machine} ({shown(out)})"
            rows = compare(reference, here, spread)
            print(format_rows(rows, f"{args.profile} profile, machine {label}"), flush=True)
            bad += sum(not r["ok"] for r in rows)
        return 1 if bad else 0
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from .errors import command

    command(main)
