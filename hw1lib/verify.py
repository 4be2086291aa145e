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
- machines: K_MACHINE times the machine spread of the metric's family,
  measured on the profile being checked (`figures/machine-spread.json`,
  written by `--measure-spread`): the profile is computed as each simulated
  machine would (`MACHINES`: k of them), each giving one draw d_m, the
  largest difference of a family's metric from the native run. Modelling a
  draw as N(0, sigma^2), the spread is sigma's 95% upper confidence bound
  from the k draws, sqrt(sum d_m^2 / chi2_0.05(k)) (k = 3: 2.9 times their
  root mean square), so that a tolerance never rests on one perturbed draw.
  The tolerance of single-run numbers, and a floor under the seed bound when
  two seeds happen to agree;
- one sample: an accuracy cannot move by less than one image of the set it
  is measured on (100 / n points), so no tolerance is below that;
- floor: FLOOR[scale], for a family that every simulated machine left
  unchanged. On the full profile, a family with seeds but no full-profile
  measurement takes the quick profile's spread as its machine term (a floor
  under its seed term). A metric with fewer than two values whose family was not
  measured on the profile being checked has no tolerance: it is reported
  OUTSIDE ("no measured tolerance"), never checked at the floor.

A metric declared chaotic (`headline.Check.chaotic`: a stopping rule's epoch
moves with the last bits) is checked only where it has seeds; with one it is
reported as skipped. `--measure-spread` also validates the rule: each
simulated machine is left out in turn, the tolerances are rebuilt from the
others, and the left-out machine's differences divided by them are compared
with what the rule assumes (`validation` in the spread file).
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
from .config import add_args

Z_SEEDS = 4.0
K_MACHINE = 4.0
FLOOR = {"lin": 0.01, "log": 0.002}     # 0.01 points of a percentage; 0.002 decades = 0.5%

REFERENCE = {"full": Path("figures") / "results.json", "quick": Path("figures") / "results-quick.json"}
SPREAD = Path("figures") / "machine-spread.json"

# Simulated machines: environment and threads per process. "native" is this machine as the reference
# was computed (one thread per process, `--jobs 2` on two cores). "scalar" takes ATen's scalar kernels
# and the oldest vector paths of oneDNN and MKL, as a CPU without AVX would; "threads" computes with
# two threads in one process (another thread count splits reductions differently).
# "avx2" is a CPU without AVX-512: ATen, oneDNN and MKL at their AVX2 paths.
MACHINES: dict[str, dict[str, Any]] = {
    "native": {"env": {}, "threads": 1},
    "scalar": {"env": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
               "threads": 1},
    "threads": {"env": {}, "threads": 2},
    "avx2": {"env": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, "threads": 1},
}
CONFIDENCE = 0.95      # of the upper bound on a family's machine sigma


def checks(names: list[str], profile: str, device: str = "cpu") -> dict[str, dict[str, dict]]:
    """{experiment: {metric: {family, scale, values}}} of `names` from the
    results cache (HW1LIB_RESULTS); whatever is not cached is computed."""
    from .experiments import experiment

    out = {}
    for name in names:
        e = experiment(name)
        cfg = e.make_config(profile, device)
        out[name] = {k: {"family": c.family, "scale": c.scale, "values": [_round(v) for v in c.values],
                         **({"resolution": _round(c.resolution)} if c.resolution else {}),
                         **({"chaotic": True} if c.chaotic else {})}
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


def compare(reference: dict, here: dict, spread: dict, exact: bool = False,
            seeded_spread: dict | None = None) -> list[dict]:
    """One row per metric of `here` ({experiment: {metric: check}}): committed
    and computed means (on the metric's own scale: % or the value), the
    tolerance, and whether it holds. A metric only one side has fails (1-2c's
    minimal ratio exists only where some run reached the tolerance); so does a
    single-run metric whose family has no measured spread in `spread` (the
    profile's: {family: sigma}). A chaotic one with one value is skipped.
    seeded_spread: spreads measured on another profile (the quick one), a
    floor under the seed term of metrics with seeds whose family `spread`
    lacks; never the tolerance of a single-run number.
    exact: both sides were computed in exact mode (hw1lib.exact), so every
    value must be the committed one to the bit (to the 12 digits stored)."""
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
            a, b = _scaled(ref["values"], ref["scale"]), _scaled(c["values"], c["scale"])
            row["committed"] = _mean(ref["values"], ref["scale"])
            if exact:
                same = list(ref["values"]) == list(c["values"])
                rows.append({**row, "tol": 0.0, "why": "exact mode, " + ("bit-identical" if same else "not identical"),
                             "ok": same})
                continue
            seeded = np.isfinite(a).sum() >= 2
            if (c.get("chaotic") or ref.get("chaotic")) and not seeded:
                rows.append({**row, "tol": None, "why": "chaotic, one seed", "ok": True, "skipped": True})
                continue
            fam = spread.get(ref["family"])
            if fam is None and not seeded:
                rows.append({**row, "tol": None, "why": "no measured tolerance", "ok": False})
                continue
            if fam is None:
                fam = (seeded_spread or {}).get(ref["family"])
            # the resolution is the metric's (the current code's, where the committed file predates it)
            resolution = max(ref.get("resolution", 0.0), c.get("resolution", 0.0))
            tol, why = tolerance(ref["values"], ref["scale"], fam, resolution)
            diff = mean_diff(ref, c)
            both_missing = not np.isfinite(a).any() and not np.isfinite(b).any()
            rows.append({**row, "tol": tol, "why": why, "diff": diff,
                         "ok": bool(both_missing or diff <= tol * (1 + 1e-9))})   # rounding of the subtraction
    return rows


def mean_diff(ref: dict, other: dict) -> float:
    """|difference of the two checks' means| on `ref`'s scale; inf where either has no finite value."""
    a, b = _scaled(ref["values"], ref["scale"]), _scaled(other["values"], ref["scale"])
    return abs(float(np.nanmean(b) - np.nanmean(a))) if np.isfinite(a).any() and np.isfinite(b).any() else math.inf


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
                     f"{tol:>16}  {'skipped' if r.get('skipped') else 'ok' if r['ok'] else 'OUTSIDE'} ({r['why']})")
    bad = sum(not r["ok"] for r in rows)
    skipped = sum(bool(r.get("skipped")) for r in rows)
    checked = len(rows) - skipped
    used = [r["diff"] / r["tol"] for r in rows if r.get("tol") and math.isfinite(r.get("diff", math.inf))]
    lines.append(f"[verify] {label}: {checked - bad} of {checked} metrics within tolerance"
                 + (f"; {bad} OUTSIDE" if bad else "") + (f"; {skipped} skipped (chaotic, one seed)" if skipped else "")
                 + (f"; the largest difference is {max(used):.2g} of its tolerance, the median "
                    f"{float(np.median(used)):.2g}" if used else ""))
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


# ------------------------------------------------------------------ files and machines
def read_json(path: Path) -> dict:
    p = repo_root() / path
    return json.loads(p.read_text()) if p.is_file() else {}


def write_json(path: Path, data: dict) -> None:
    write_atomic(repo_root() / path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def committed_file(profile: str) -> dict:
    """The committed values of `profile`: {profile, commit, mode, checks}."""
    data = read_json(REFERENCE[profile])
    if "checks" not in data:
        from .errors import ConfigError

        raise ConfigError(f"{REFERENCE[profile]} holds no per-seed values to check against; run "
                          f"{'make report' if profile == 'full' else 'make notebooks'} to write them.")
    return data


def sigma_bound(draws, confidence: float = CONFIDENCE) -> float:
    """The upper `confidence` bound on sigma from k draws d ~ N(0, sigma^2):
    sqrt(sum d^2 / chi2_{1 - confidence}(k))."""
    from scipy.stats import chi2

    d = np.asarray(list(draws), dtype=float)
    if not len(d):
        raise ValueError("no draws")
    return float(math.sqrt(np.sum(d ** 2) / chi2.ppf(1 - confidence, len(d))))


def family_spread(profile: str = "quick", data: dict | None = None) -> dict[str, float]:
    """{family: machine spread} measured on `profile` (the sigma bound over the
    simulated machines' draws); a family not measured on it is absent."""
    data = read_json(SPREAD) if data is None else data
    fams = data.get("profiles", {}).get(profile, {}).get("families", {})
    return {f: sigma_bound(d["by_machine"].values()) for f, d in fams.items()}


def compute_as(machine: str, profile: str, names: list[str], results: Path, jobs: int, device: str,
               progress: bool) -> dict:
    """Compute `names` of `profile` as `machine` would, into the results
    directory `results`, in a child process (the environment must be set before
    torch starts); returns their checks."""
    spec = MACHINES[machine]
    env = {**os.environ, **spec["env"], "HW1LIB_RESULTS": str(results)}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    if device == "cpu":
        jobs = max(1, jobs // spec["threads"])     # the cores, not more: a machine with 2 threads runs 1 job on 2
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


# The machine that computed the committed values (figures/results*.json): a real other CPU, whose
# differences from this machine's native run are measured draws like a simulated machine's.
REFERENCE_MACHINE = "reference"


def _draw(base: dict, other: dict) -> float:
    """One machine's draw: its difference of means from `base` (0 where either side has no value)."""
    d = mean_diff(base, other)
    return d if math.isfinite(d) else 0.0


def measure_spread(profile: str, names: list[str], machines: list[str], jobs: int, progress: bool) -> dict:
    """Compute `names` as each simulated machine would, and record per metric
    its native values (the results cache as computed here, filled first if
    needed) and its difference of means from them on each machine (a draw);
    and, as the draw of machine REFERENCE_MACHINE, its difference from the
    committed value (computed on another CPU; a metric it lacks has none)."""
    from .paths import results_dir

    base = compute_as("native", profile, names, results_dir(), jobs, "cpu", progress)
    for m in machines:
        other = compute_as(m, profile, names, scratch(m, profile), jobs, "cpu", progress)
        for name, metrics in base.items():
            for metric, c in metrics.items():
                c.setdefault("draws", {})[m] = _round(_draw(c, other[name][metric]))
    committed = read_json(REFERENCE[profile]).get("checks", {})
    for name, metrics in base.items():
        for metric, c in metrics.items():
            if metric in committed.get(name, {}):
                c["draws"][REFERENCE_MACHINE] = _round(_draw(c, committed[name][metric]))
    return base


def merge_spread(entry: dict, measured: dict, machines: list[str]) -> dict:
    """The profile's entry of the spread file with the experiments of
    `measured` (measure_spread) replaced, the others kept; its families (per
    family and machine, the largest difference among its metrics: one draw of
    the family's spread; chaotic metrics are left out, bounded by their seeds
    only) derived again from all metrics."""
    metrics = {**entry.get("metrics", {}), **measured}
    fams: dict[str, dict] = {}
    for exp in metrics.values():
        for c in exp.values():
            if c.get("chaotic"):
                continue
            f = fams.setdefault(c["family"], {"scale": c["scale"], "by_machine": {}})
            for m, d in c["draws"].items():
                f["by_machine"][m] = max(f["by_machine"].get(m, 0.0), d)
    reference = {"what": f"the CPU that computed {REFERENCE[entry.get('profile', 'quick')]}"}
    return {"machines": {m: MACHINES.get(m, reference if m == REFERENCE_MACHINE else {})
                         for m in sorted({*entry.get("machines", {}), *machines})},
            "experiments": sorted(metrics), "families": fams, "metrics": metrics}


# Two-sided tail of |N(0, 1)| beyond z standard deviations: what the rule assumes of a difference scaled to
# z = Z_SEEDS * difference / tolerance when its tolerance is exactly Z_SEEDS of its standard deviations.
_NORMAL_TAIL = {1: 0.3173, 2: 0.0455, 3: 0.0027, 4: 6.3e-5}


def validate(entry: dict) -> dict:
    """Leave each simulated machine out in turn: rebuild every metric's
    tolerance from the other machines' draws (and the native run's seeds),
    and divide the left-out machine's difference by it. The rule assumes the
    ratio times Z_SEEDS is at most |N(0, 1)|: beyond 4 (ratio > 1) about once
    in 16,000. Returns the ratios' quantiles and tail counts. `entry`: a
    profile's entry of the spread file (merge_spread)."""
    machines = list(entry["machines"])
    if len(machines) < 2:
        return {}
    ratios, by = [], {}
    for out in machines:
        others = {f: [v for m, v in d["by_machine"].items() if m != out] for f, d in entry["families"].items()}
        rest = {f: sigma_bound(v) for f, v in others.items() if v}
        for metrics in entry["metrics"].values():
            for c in metrics.values():
                vals = _scaled(c["values"], c["scale"])
                if (c.get("chaotic") and np.isfinite(vals).sum() < 2) or out not in c["draws"]:
                    continue
                tol, _ = tolerance(c["values"], c["scale"], rest.get(c["family"]), c.get("resolution", 0.0))
                ratios.append(c["draws"][out] / tol)
                by.setdefault(out, []).append(ratios[-1])
    r = np.array(ratios)
    z = Z_SEEDS * r
    return {"n": len(r), "left_out": machines,
            "ratio_quantiles": {q: _round(float(np.quantile(r, float(q)))) for q in ("0.5", "0.9", "0.99", "1.0")},
            "beyond": {str(k): {"observed": int((z > k).sum()), "expected": _round(p * len(r))}
                       for k, p in _NORMAL_TAIL.items()},
            "by_left_out": {m: {"n": len(v), "max": _round(max(v)), "outside": int(sum(x > 1 for x in v))}
                            for m, v in by.items()}}


def format_validation(profile: str, v: dict) -> str:
    if not v:
        return f"[verify] {profile}: one simulated machine, nothing to validate"
    q = v["ratio_quantiles"]
    tails = ", ".join(f"> {k}: {d['observed']} (|N(0,1)| expects {d['expected']:.3g})" for k, d in v["beyond"].items())
    per = "; ".join(f"{m}: largest {d['max']:.3g}, {d['outside']} of {d['n']} outside"
                    for m, d in v.get("by_left_out", {}).items())
    return (f"[verify] {profile} rule validation, each of {', '.join(v['left_out'])} left out in turn: {v['n']} "
            f"differences / their tolerance: median {q['0.5']:.3g}, 90% {q['0.9']:.3g}, 99% {q['0.99']:.3g}, "
            f"max {q['1.0']:.3g}; z = {Z_SEEDS:g} x ratio {tails}. By machine left out: {per}")


def scratch(machine: str, profile: str) -> Path:
    return build_dir() / "verify" / profile / machine / "results"


def main(argv: list[str] | None = None) -> int:
    from .experiments import REGISTRY, select
    from .experiments import names as experiment_names
    from . import exact
    from .errors import ConfigError, Hw1libError

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(ap, "profile", "only", "jobs", "device", "no_progress", profile={"choices": ["quick", "full"]},
             jobs={"default": 2}, device={"default": "cpu", "help": "cpu | cuda (the machine settings apply to cpu)"})
    ap.add_argument("--machine", action="append", choices=list(MACHINES),
                    help="compute as this machine would (repeatable; default: native)")
    ap.add_argument("--cached", action="store_true",
                    help="check what the results cache holds (HW1LIB_RESULTS; computing what is missing) "
                         "instead of recomputing into a scratch directory")
    ap.add_argument("--reference", default=None, help="committed values (default figures/results[-quick].json)")
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

            write_json(REFERENCE[args.profile], {"profile": args.profile, "commit": git_commit(), "mode": exact.mode(),
                                                 "checks": checks(names, args.profile, args.device)})
            print(f"[verify] wrote the {args.profile} profile's per-seed values to {REFERENCE[args.profile]}")
            return 0
        if args.measure_spread:
            machines = args.machine or [m for m in MACHINES if m != "native"]
            measured = measure_spread(args.profile, names, machines, args.jobs, not args.no_progress)
            data = {"profiles": read_json(SPREAD).get("profiles", {})}   # (an older file's other keys: gone)
            entry = merge_spread({"profile": args.profile, **data["profiles"].get(args.profile, {})}, measured,
                                 machines + [REFERENCE_MACHINE])
            checked = validate(entry)
            data["profiles"][args.profile] = {**entry, "validation": checked}
            data["rule"] = {"Z_SEEDS": Z_SEEDS, "K_MACHINE": K_MACHINE, "confidence": CONFIDENCE, "FLOOR": FLOOR}
            write_json(SPREAD, data)
            sig = family_spread(args.profile, data)
            print(f"[verify] wrote {SPREAD} ({args.profile}): " + ", ".join(f"{f} {v:.3g}" for f, v in sig.items()))
            print(format_validation(args.profile, checked))
            return 0
        committed = json.loads(Path(args.reference).read_text()) if args.reference else committed_file(args.profile)
        reference = committed["checks"]
        both_exact = exact.enabled() and committed.get("mode") == "exact"
        if exact.enabled() and set(args.machine or ["native"]) != {"native"}:
            raise ConfigError(f"{exact.SWITCH}=1 pins every path a simulated machine would change: compute as "
                              "--machine native only, or unset the switch.")
        spread = family_spread(args.profile)
        seeded = family_spread("quick") if args.profile != "quick" else None
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
            rows = compare(reference, here, spread, exact=both_exact, seeded_spread=seeded)
            print(format_rows(rows, f"{args.profile} profile, machine {label}"
                              + (", both sides in exact mode: compared to the bit" if both_exact else "")), flush=True)
            bad += sum(not r["ok"] for r in rows)
        return 1 if bad else 0
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from .errors import command

    command(main)
