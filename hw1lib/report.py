"""Render every notebook with papermill: `python -m hw1lib.report --profile full`.

Rendering only reads the results cache, which `python -m hw1lib.run` fills
first (`make report` runs both). Executed copies go to `build/notebooks/`;
figures are written by the notebooks themselves (full profile: `figures/`);
a run record (profile, device, git commit, seconds per notebook) goes to
`build/run_record.json`. `--jobs N` renders N notebooks at once.

`--html` exports the last report's executed notebooks to `build/html/`
(inputs hidden) with an index page: `make html`.

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


def render(nb: Path, target: Path, parameters: dict, stream: bool = False) -> float:
    """Execute one notebook into `target`; returns the seconds it took. With
    `stream`, each cell's printed output reaches the terminal as it runs."""
    import logging

    import papermill as pm

    if stream:  # papermill logs each cell's output as it arrives; prefix it with this notebook's name
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"[{nb.stem[:12]}] %(message)s"))
        log = logging.getLogger("papermill")
        log.handlers[:] = [handler]
        log.setLevel(logging.INFO)
        log.propagate = False
    t0 = time.perf_counter()
    pm.execute_notebook(str(nb), str(target), cwd=str(nb.parent), progress_bar=False, parameters=parameters,
                        log_output=stream)
    return time.perf_counter() - t0


def resolve_notebooks(names: list[str]) -> list[Path]:
    """Notebook paths for the CLI's names: a path to a notebook, or an experiment
    or notebook name as `--only` takes it (`1-3e`, `1-3b`); none: all of them."""
    from .experiments import notebooks, select

    root = repo_root() / "notebooks"
    if not names:
        return [root / n for n in notebooks()]
    out = []
    for name in names:
        p = Path(name)
        if p.suffix == ".ipynb" and p.is_file():
            out.append(p.resolve())
        else:
            out += [root / e.notebook for e in select([name])]
    return list(dict.fromkeys(out))


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


def export_html(nbs: list[Path], out: Path, record: dict | None = None) -> Path:
    """Executed notebooks -> `out/<name>.html` (inputs hidden: the report reads
    as prose, figures and tables) and `out/index.html` linking them in report
    order with each notebook's title; returns the index's path."""
    import html

    import nbformat
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    rows = []
    for nb in nbs:
        doc = nbformat.read(nb, as_version=4)
        title = next((line.lstrip("# ").strip() for c in doc.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("#")), nb.stem)
        body, _ = exporter.from_notebook_node(doc, resources={"metadata": {"name": title}})
        (out / f"{nb.stem}.html").write_text(body)
        rows.append(f'<li><a href="{html.escape(nb.stem)}.html">{html.escape(title)}</a> '
                    f'<small>({html.escape(nb.name)})</small></li>')
    about = ""
    if record:
        about = ("<p>Profile <b>{profile}</b>, device {device}, commit <code>{git_commit}</code>, "
                 "rendered {started}.</p>").format(**{k: html.escape(str(record.get(k, "?")))
                                                      for k in ("profile", "device", "git_commit", "started")})
    index = out / "index.html"
    index.write_text("<!doctype html>\n<html><head><meta charset='utf-8'><title>hw1lib report</title></head>"
                     "<body style='font-family: sans-serif; max-width: 50em; margin: 2em auto'>\n"
                     "<h1>Deep vs Shallow, Optimization, Generalization</h1>\n" + about +
                     "\n<ol>\n" + "\n".join(rows) + "\n</ol>\n</body></html>\n")
    return index


def html_main() -> int:
    """`make html`: the notebooks of the last `make report`, as a browsable site."""
    root = repo_root()
    rec_path = root / "build" / "run_record.json"
    record = json.loads(rec_path.read_text()) if rec_path.is_file() else {}
    nbs = [root / p for p in record.get("notebooks", [])]
    if not nbs or not all(p.is_file() for p in nbs):
        print("error: no rendered report in build/notebooks/; run `make report` first.", file=sys.stderr)
        return 2
    index = export_html(nbs, root / "build" / "html", record)
    print(f"[html] {len(nbs)} notebooks -> {index.relative_to(root)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .device import describe, resolve_device
    from .errors import Hw1libError
    from .provenance import git_commit
    from .run import InlineExecutor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--in-place", action="store_true",
                    help="execute notebooks/ itself with the parameters cell as written (quick profile)")
    ap.add_argument("--jobs", type=int, default=1, help="notebooks rendered at once")
    ap.add_argument("--quiet", action="store_true", help="do not stream the notebooks' printed output")
    ap.add_argument("--html", action="store_true",
                    help="only export the last report's notebooks to build/html/ (make html)")
    ap.add_argument("notebooks", nargs="*",
                    help="experiment or notebook names (1-3e, 1-3b) or notebook paths (default: all)")
    args = ap.parse_args(argv)
    if args.html:
        return html_main()
    if args.in_place and (args.profile, args.device) != ("quick", "auto"):
        ap.error("--in-place writes the committed notebooks, whose parameters cell holds the quick profile "
                 "and device auto; render other settings into build/notebooks/ instead.")
    if args.jobs < 1:
        ap.error("--jobs must be 1 or more.")
    try:
        device = describe(resolve_device(args.device))
        nbs = resolve_notebooks(args.notebooks)
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    root = repo_root()
    out_dir = root / "build" / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"profile": args.profile, "device": device,
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
            futures[nb] = pool.submit(render, nb, targets[nb], parameters, not args.quiet)
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
    except KeyboardInterrupt:
        print("\n[report] interrupted; notebooks already rendered are in build/notebooks/.", file=sys.stderr)
        return 130
    finally:
        pool.shutdown(cancel_futures=True)
        if args.in_place:
            for t in targets.values():
                t.unlink(missing_ok=True)
    record["total_seconds"] = round(sum(record["seconds"].values()), 1)
    if not args.in_place:
        record["notebooks"] = [str(targets[nb].relative_to(root)) for nb in nbs if nb.name in record["seconds"]]
    (root / "build" / "run_record.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
