"""The report's headline numbers, generated from the results and never typed.

    python -m hw1lib.tables --write [--profile full]   (make report does this)
    python -m hw1lib.tables --check                    (a test does this)

`--write` reads every experiment of a profile from the cache and writes
`figures/results.json` (headline numbers by experiment, and under `checks` the
per-seed values `python -m hw1lib.verify` compares with), then regenerates from
that file the README's tables (between `<!-- results:NAME -->` and
`<!-- /results:NAME -->` markers) and `RESULTS.md` (every headline number
beside the published one it compares with). `--check` regenerates both from the
committed `figures/results.json` and fails if either differs: a hand edit of a
number, or a results file changed without regenerating, is caught.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .paths import repo_root, write_atomic
from .config import add_args

RESULTS_JSON = Path("figures") / "results.json"
RESULTS_MD = Path("RESULTS.md")
README = Path("README.md")


def code_versions(profile: str = "full") -> dict[str, dict[str, str]]:
    """{experiment: {cache key: the code version its units of `profile` are computed by}} (the default
    mode's, `provenance.code_version`): what `figures/results.json` records, and a test compares with HEAD's."""
    from . import experiments
    from .provenance import code_version

    return {e.name: {u.key: code_version(u.compute) for u in e.units(e.make_config(profile, "cpu"))}
            for e in experiments.REGISTRY}


def headlines(profile: str = "full", device: str = "auto") -> dict:
    """Headline numbers of every experiment of `profile`, from the cache (an
    experiment missing from the cache is computed)."""
    from . import experiments
    from .device import describe, resolve_device
    from .provenance import git_commit
    from .verify import checks

    out = {"profile": profile, "commit": git_commit(), "device": describe(resolve_device(device)),
           "code_versions": code_versions(profile), "experiments": {}}
    if profile == "full":    # the run from empty that filled the cache (its commit computed these code versions)
        from .verify import read_json

        t = read_json(TIMINGS_FULL)
        out["computed"] = {k: t.get(k) for k in ("commit", "complete", "device", "jobs", "total_seconds")}
    for e in experiments.REGISTRY:
        out["experiments"][e.name] = e.headlines(e.make_config(profile, device))
    # every checked metric's per-seed values: what `python -m hw1lib.verify --profile full` compares with
    out["checks"] = checks([e.name for e in experiments.REGISTRY], profile, device)
    return out


def blocks(results: dict) -> dict[str, str]:
    """The generated blocks, by experiment name, of the experiments in `results`
    (each experiment's own `block`, from its headline numbers)."""
    from .experiments import experiment

    return {name: experiment(name).block(h) for name, h in results["experiments"].items()}


_MARKER = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def apply_blocks(text: str, generated: dict[str, str]) -> str:
    """`text` with every marked block replaced by its generated content."""
    return _MARKER.sub(lambda m: m.group(1) + generated[m.group("name")] + "\n" + m.group(4), text)


def summary_table(results: dict) -> str:
    """The README's results table: one row per experiment, its one-line result
    (its declared `summary`) beside the published one."""
    from .experiments import experiment
    from .headline import md_table

    rows = []
    for name, h in results["experiments"].items():
        e = experiment(name)
        rows.append([f"[{name}](notebooks/{e.notebook})", e.title, e.summary(h) if e.summary else "",
                     f"{e.published[0]}: {e.published[1]}" if e.published else ""])
    return md_table(["section", "experiment", f"result ({results['profile']} profile)", "published"], rows)


READING = re.compile(r"\*\*Reading, full profile \((?P<name>[\w-]+)\)\.\*\* (?P<text>.*?)(?=\n\n|\Z)", re.S)
_NAMED = re.compile(r"""experiment\(["'](?P<exp>[\w-]+)["']\)|save_figure\([^,]+,\s*["'](?P<fig>[\w-]+)["']""")


def notebook_parts(notebook: str) -> dict[str, dict]:
    """What a notebook says once and RESULTS.md repeats, by experiment: the
    figures it saves (`save_figure(fig, NAME, ...)`, each belonging to the
    experiment the notebook last named with `experiment(...)` before it) and
    its full-profile reading (a "**Reading, full profile (NAME).**"
    paragraph of its markdown)."""
    from . import paths

    path = paths.repo_root() / "notebooks" / notebook      # the checkout's (not the output root's: a test moves that)
    cells = json.loads(path.read_text())["cells"] if path.is_file() else []    # (a test's experiment has none)
    out: dict[str, dict] = {}
    current = None
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "code":
            for m in _NAMED.finditer(src):
                if m["exp"]:
                    current = m["exp"]
                elif current:
                    out.setdefault(current, {"figures": [], "reading": ""})["figures"].append(m["fig"])
        else:
            for m in READING.finditer(src):
                out.setdefault(m["name"], {"figures": [], "reading": ""})["reading"] = m["text"].strip()
    return out


def results_md(results: dict) -> str:
    """RESULTS.md: per experiment, its figures, its generated block, the
    published result beside it and what the numbers say."""
    from .experiments import experiment

    gen = blocks(results)
    parts = ["# Results", "",
             f"Generated by `python -m hw1lib.tables --write` (run by `make report`) from `figures/results.json` "
             f"(profile **{results['profile']}**, {results.get('device', '?')}, commit `{results['commit']}`): do not edit by hand. "
             "Regenerate everything with `make report`; check with `python -m hw1lib.tables --check`. "
             "Intervals are 95% t-intervals over seeds (bootstrap for rank correlations).", ""]
    for name, body in gen.items():
        e = experiment(name)
        said = notebook_parts(e.notebook).get(name, {"figures": [], "reading": ""})
        parts += [f"## {e.name} {e.title} (`notebooks/{e.notebook}`)", ""]
        parts += [f"![{f}](figures/{f}.png)" for f in said["figures"]] + ([""] if said["figures"] else [])
        parts += [body, ""]
        if e.published:
            who, what = e.published
            parts += [f"**Published ({who}):** {what}.", ""]
        if said["reading"]:
            parts += [f"**Reading.** {said['reading']}", ""]
    return "\n".join(parts).rstrip() + "\n"


EXACT_BENCH = Path("benchmarks") / "results" / "exact_mode-quick.json"
TIMINGS_FULL = Path("benchmarks") / "results" / "timings-full-cpu.json"   # the run that computed results.json
GPU_CHECK = Path("benchmarks") / "results" / "gpu_check-h200-2026-11-27-c23da91-jobs4.json"   # the last GPU run


def cost_block() -> str:
    """What `make report` costs, generated from the committed timings: the full profile's run from empty
    on CPU cores (with its calibration) and the last GPU check's."""
    from .verify import read_json

    parts = []
    t = read_json(TIMINGS_FULL)
    if t.get("complete"):
        cal = (t.get("calibration") or {}).get("start", {}).get("total")
        parts.append(f"{t['total_seconds'] / 60:.0f} minutes of wall time from an empty cache on {t['device']} "
                     f"(`--jobs {t['jobs']}`, commit `{t['commit']}`"
                     + (f", calibration {cal:.0f} ms" if cal else "") + f"; `{TIMINGS_FULL}`)")
    g = read_json(GPU_CHECK)
    if (g.get("timings_full") or {}).get("total_seconds"):
        parts.append(f"{g['timings_full']['total_seconds']:.0f} s on one {g['card']} at commit "
                     f"`{g['timings_full']['commit'].split('+')[0]}` (a smaller full profile; not rerun on a GPU since)")
    return ("The full profile (`make report`) costs " + " and ".join(parts) + "; `make report PROFILE=quick` is "
            "the few-minute version (smaller models, fewer seeds: a check of the code, not the report's numbers).")
EXACT_LIMIT = 1.3       # the cost below which the committed results would be computed in exact mode


def reproducible_block() -> str:
    """The README's measured statements on reproducibility: exact mode's cost and
    bit-identity (benchmarks/exact_mode.py's record) and the tolerance rule's
    validation (figures/machine-spread.json), generated from those files."""
    from .verify import SPREAD, read_json

    lines = []
    b = read_json(EXACT_BENCH)
    if b:
        u, w = b["unit_seconds"], b["wall_seconds"]
        ratio = u["exact"] / u["default"]
        kinds = {k: e / d for k, (d, e) in u["by_kind"].items() if d > 0}
        lo, hi = min(kinds, key=kinds.get), max(kinds, key=kinds.get)
        same = "; ".join(" ".join([f"`{n}={x}`" for n, x in b["env"][k].items() if n != "HW1LIB_EXACT"]
                                  + ([f"`{' '.join(b['args'][k])}`"] if b.get("args", {}).get(k) else []))
                         + f" ({v['entries'] - v['differ']} of {v['entries']} entries identical)"
                         for k, v in b["identical"].items())
        lines.append(
            f"- **Exact mode, measured** ({b['date']}, {b['cpu']}, commit `{b['commit']}`, `benchmarks/exact_mode.py`): "
            f"the {b['profile']} profile costs {ratio:.2f}x the default's unit time ({u['default']:.0f} s -> "
            f"{u['exact']:.0f} s; wall at `--jobs {b['jobs']}` {w['exact'] / w['default']:.2f}x), from "
            f"{kinds[lo]:.2f}x ({lo}) to {kinds[hi]:.2f}x ({hi}) by kind of unit. Every cached entry computed in exact "
            f"mode equals, to the bit, the same entry computed in exact mode under other conditions: {same}. "
            + (f"Above the {EXACT_LIMIT}x limit set for it, so the committed results stay in the default mode, checked within "
               "tolerances; exact mode is for bit-identical reruns on your machines."
               if ratio > EXACT_LIMIT else f"Below the {EXACT_LIMIT}x limit set for it."))
    spread = read_json(SPREAD).get("profiles", {})
    for profile, d in spread.items():
        v = d.get("validation")
        if not v:
            continue
        q, t = v["ratio_quantiles"], v["beyond"]
        ref = v.get("by_left_out", {}).get("reference")
        lines.append(
            f"- **The tolerance rule, validated on the {profile} profile** ({', '.join(d['experiments'])}): each "
            f"machine ({', '.join(v['left_out'])}; `reference` is the CPU that computed the committed values, a real "
            f"other machine) left out in turn, tolerances rebuilt from the others; its {v['n']} differences divided "
            f"by their tolerances: median {q['0.5']:.2g}, 99th percentile {q['0.99']:.2g}, largest {q['1.0']:.3g} "
            f"(a failure is above 1). Scaled to z = 4 x ratio, the rule assumes at most |N(0, 1)|: above 2 seen "
            f"{t['2']['observed']} (at most {t['2']['expected']:.3g} expected), above 3 {t['3']['observed']} "
            f"({t['3']['expected']:.3g}), above 4 {t['4']['observed']} ({t['4']['expected']:.2g})."
            + (f" The real machine against tolerances from the simulated ones alone: {ref['outside']} of {ref['n']} "
               f"numbers outside, the largest at {ref['max']:.3g} of its tolerance." if ref else ""))
    return "\n".join(lines)


def render(results: dict, readme: str) -> tuple[str, str]:
    """(README text, RESULTS.md text) generated from `results` (and the
    reproducibility measurements: reproducible_block)."""
    return (apply_blocks(readme, {**blocks(results), "summary": summary_table(results), "cost": cost_block(),
                                  "reproducible": reproducible_block()}), results_md(results))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="compute headlines from the cache, write all three files")
    mode.add_argument("--render", action="store_true", help="regenerate README.md's tables and RESULTS.md from the "
                                                            "committed figures/results.json (after a change of text)")
    mode.add_argument("--check", action="store_true", help="fail if README.md or RESULTS.md differ from "
                                                           "what figures/results.json generates")
    add_args(ap, "profile", "device")
    args = ap.parse_args(argv)
    root = repo_root()
    readme = (root / README).read_text()
    if args.write:
        text = json.dumps(headlines(args.profile, args.device), indent=1, sort_keys=True) + "\n"
        write_atomic(root / RESULTS_JSON, text)
        results = json.loads(text)  # render from exactly what --check will read
    elif not (root / RESULTS_JSON).is_file():
        print(f"error: {RESULTS_JSON} does not exist; run `make report` (full profile) to write it.",
              file=sys.stderr)
        return 1
    else:
        results = json.loads((root / RESULTS_JSON).read_text())
    want_readme, want_md = render(results, readme)
    if args.write or args.render:
        write_atomic(root / README, want_readme)
        write_atomic(root / RESULTS_MD, want_md)
        print("[tables] wrote " + (f"{RESULTS_JSON}, " if args.write else "") +
              f"the README's tables and {RESULTS_MD} (profile {results['profile']})")
        return 0
    stale = [str(p) for p, want in ((README, want_readme), (RESULTS_MD, want_md))
             if not (root / p).is_file() or (root / p).read_text() != want]
    if stale:
        print(f"error: {', '.join(stale)} differ from what {RESULTS_JSON} generates; run "
              "`python -m hw1lib.tables --write` (or `make report`) instead of editing numbers by hand.",
              file=sys.stderr)
        return 1
    print(f"[tables] README.md and {RESULTS_MD} agree with {RESULTS_JSON}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
