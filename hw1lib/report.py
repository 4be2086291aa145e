"""Render every notebook with papermill: `python -m hw1lib.report --profile full`.

Rendering only reads the results cache, which `python -m hw1lib.run` fills
first (`make report` runs both). Executed copies go to `build/notebooks/`;
figures are written by the notebooks themselves (full profile: `figures/`);
a run record (profile, device, git commit, seconds per notebook) goes to
`build/run_record.json`. `--jobs N` renders N notebooks at once.

`--in-place` executes the notebooks in `notebooks/` themselves with their own
`parameters` cell (quick profile), then strips what must not be committed
(papermill's injected cell, machine paths, timings): that is how the committed
notebooks, whose outputs nbval compares, are made.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

from .paths import repo_root


def render(nb: Path, target: Path, parameters: dict) -> float:
    """Execute one notebook into `target`; returns the seconds it took."""
    import papermill as pm

    t0 = time.perf_counter()
    pm.execute_notebook(str(nb), str(target), cwd=str(nb.parent), progress_bar=False, parameters=parameters)
    return time.perf_counter() - t0


def clean_notebook(path: Path) -> None:
    """Make an executed notebook fit to commit: no `injected-parameters` cell
    (it would override what a user sets in the `parameters` cell) and no
    volatile metadata (papermill's paths and timings, execution timestamps,
    widget state), so re-running unchanged code leaves `git diff` empty."""
    nb = json.loads(path.read_text())
    nb["cells"] = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for key in ("papermill", "widgets"):
        nb["metadata"].pop(key, None)
    for cell in nb["cells"]:
        for key in ("papermill", "execution"):
            cell.get("metadata", {}).pop(key, None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    from .device import describe, resolve_device
    from .experiments import notebooks
    from .provenance import git_commit
    from .run import InlineExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--in-place", action="store_true",
                    help="execute notebooks/ itself with the parameters cell as written (quick profile)")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks rendered at once")
    ap.add_argument("notebooks", nargs="*", help="notebook paths (default: every notebook of the registry)")
    args = ap.parse_args(argv)
    if args.in_place and (args.profile, args.device) != ("quick", "auto"):
        ap.error("--in-place writes the committed notebooks, whose parameters cell holds the quick profile "
                 "and device auto; render other settings into build/notebooks/ instead.")

    root = repo_root()
    nbs = [Path(p).resolve() for p in args.notebooks] or [root / "notebooks" / n for n in notebooks()]
    out_dir = root / "build" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"profile": args.profile, "device": describe(resolve_device(args.device)),
              "git_commit": git_commit(), "started": dt.datetime.now().isoformat(timespec="seconds"),
              "seconds": {}}
    # In place, nothing is injected: the notebook runs with its own parameters cell.
    parameters = {} if args.in_place else {"profile": args.profile, "device": args.device, "progress": True}
    targets = {}
    for nb in nbs:
        if args.in_place:
            fd, tmp = tempfile.mkstemp(suffix=".ipynb", dir=nb.parent)
            os.close(fd)
            targets[nb] = Path(tmp)
        else:
            targets[nb] = out_dir / nb.name
    pool = (cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) if args.jobs > 1
            else InlineExecutor())
    failed = []
    try:
        futures = {}
        for nb in nbs:
            print(f"[report] {nb.name} (profile={args.profile}) ...", flush=True)
            futures[nb] = pool.submit(render, nb, targets[nb], parameters)
        for nb, fut in futures.items():
            try:
                seconds = fut.result()
            except Exception as exc:
                failed.append(nb.name)
                print(f"[report] {nb.name} FAILED ({type(exc).__name__}); the executed copy "
                      f"{targets[nb]} shows the error.", file=sys.stderr)
                continue
            if args.in_place:
                clean_notebook(targets[nb])
                os.replace(targets[nb], nb)
            record["seconds"][nb.name] = round(seconds, 1)
            print(f"[report] {nb.name} done in {seconds:.0f} s", flush=True)
    finally:
        pool.shutdown(cancel_futures=True)
        if args.in_place:
            for t in targets.values():
                t.unlink(missing_ok=True)
    record["total_seconds"] = round(sum(record["seconds"].values()), 1)
    (root / "build" / "run_record.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
