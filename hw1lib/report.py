"""Run every notebook with papermill: `python -m hw1lib.report --profile full`.

Executed copies go to `build/notebooks/`; figures are written by the notebooks
themselves (full profile: `figures/`); a run record (profile, device, git
commit, seconds per notebook) goes to `build/run_record.json`.

`--in-place` executes the notebooks in `notebooks/` themselves (quick profile):
that is how the committed notebooks, whose outputs nbval compares, are made.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .paths import repo_root


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(),
                             capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw1lib", "notebooks"],
                               cwd=repo_root(), capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    import papermill as pm

    from .device import describe, resolve_device

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--in-place", action="store_true", help="execute notebooks/ itself")
    ap.add_argument("notebooks", nargs="*", help="notebook paths (default: all in notebooks/)")
    args = ap.parse_args(argv)

    root = repo_root()
    nbs = [Path(p).resolve() for p in args.notebooks] or sorted((root / "notebooks").glob("*.ipynb"))
    out_dir = root / "build" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"profile": args.profile, "device": describe(resolve_device(args.device)),
              "git_commit": _git_commit(), "started": dt.datetime.now().isoformat(timespec="seconds"),
              "seconds": {}}
    for nb in nbs:
        print(f"[report] {nb.name} (profile={args.profile}) ...", flush=True)
        t0 = time.perf_counter()
        if args.in_place:
            fd, tmp = tempfile.mkstemp(suffix=".ipynb", dir=nb.parent)
            os.close(fd)
            target = Path(tmp)
        else:
            target = out_dir / nb.name
        try:
            pm.execute_notebook(str(nb), str(target), cwd=str(nb.parent), progress_bar=False,
                                parameters={"profile": args.profile, "device": args.device,
                                            "progress": not args.in_place})
        except Exception:
            if args.in_place:
                target.unlink(missing_ok=True)
            print(f"[report] {nb.name} FAILED; the executed copy shows the error.", file=sys.stderr)
            raise
        if args.in_place:
            os.replace(target, nb)
        record["seconds"][nb.name] = round(time.perf_counter() - t0, 1)
        print(f"[report] {nb.name} done in {record['seconds'][nb.name]:.0f} s", flush=True)
    record["total_seconds"] = round(sum(record["seconds"].values()), 1)
    (root / "build" / "run_record.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
