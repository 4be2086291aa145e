"""Render every notebook with papermill: `python -m hw1lib.report --profile full`.

Rendering only reads the results cache, which `python -m hw1lib.run` fills
first (`make report` runs both). Executed copies go to `build/notebooks/`;
figures are written by the notebooks themselves (full profile: `figures/`).
`--jobs N` renders N notebooks at once; names may be given as a comma list,
as `--only` takes them.

The run record `build/run_record.json` describes the report on disk: its
settings (profile, device, overrides) and, per notebook, the executed file,
its SHA-256, the commit and the time it was rendered. A render with the same
settings updates the entries of the notebooks it renders (one section updates
the report); other settings start a new record when their first notebook
finishes. A notebook whose render failed leaves the record, and a killed
render changes nothing it did not finish.

`--html` exports the notebooks of one complete report to `build/html/`
(`hw1lib.site`, `make html`); when a notebook is missing, failed or changed on
disk since, it names them and how to render them instead.

`--in-place` executes the notebooks in `notebooks/` themselves with their own
`parameters` cell (quick profile), then strips what must not be committed
(papermill's injected cell, machine paths, timings): that is how the committed
notebooks are made.

Output: one line per notebook when it starts and when it ends; what the
kernels print goes to `build/notebooks/<name>.log`. Every file is written
under a temporary name and renamed when complete. Ctrl-C stops the workers
and their kernels within seconds, and no queued notebook starts after it.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import datetime as dt
import errno
import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from .paths import build_dir, file_mode, repo_root, shown, write_atomic


def render(nb: Path, target: Path, parameters: dict, log: Path | None = None) -> float:
    """Execute one notebook into `target`; returns the seconds it took.

    Prints one line when it starts. Everything the kernel and papermill print
    (cell output, kernel warnings) goes to `log`, not the terminal: the cells'
    output is in the executed notebook. The notebook is written to a temporary
    name beside `target` and renamed only once it ran to the end, so a stopped
    or failed run never leaves a half-written notebook under its real name
    (a failed one is kept as `<name>.failed.ipynb`, which shows the error,
    unless it was cut short: then there is none)."""
    import fcntl

    import papermill as pm

    print(f"[report] {nb.name} started", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=TEMP_SUFFIX, dir=target.parent)
    fcntl.flock(fd, fcntl.LOCK_EX)      # held while it is written: a later render removes it only once free
    os.chmod(tmp, file_mode())          # the executed notebook (or .failed.ipynb): like every other output
    t0 = time.perf_counter()
    global _RENDERING
    _RENDERING = True
    try:
        with _output_to(log):
            pm.execute_notebook(str(nb), tmp, cwd=str(nb.parent), progress_bar=False, parameters=parameters,
                                log_output=False)
    except BaseException as exc:
        stopped = _STOPPING or isinstance(exc, KeyboardInterrupt)   # not a failure: nothing to show
        if not stopped and _whole_notebook(Path(tmp)):     # a file cut short (a full disk) is never shown
            os.replace(tmp, target.with_suffix(".failed.ipynb"))
        Path(tmp).unlink(missing_ok=True)
        if _STOPPING:
            os._exit(130)       # a worker told to stop (its kernel is shut down): take no further notebook
        raise
    finally:
        _RENDERING = False
        os.close(fd)
    os.replace(tmp, target)
    target.with_suffix(".failed.ipynb").unlink(missing_ok=True)
    return time.perf_counter() - t0


TEMP_SUFFIX = ".rendering.ipynb"
# What a render cannot write past: no space, a quota, a file-size limit, a read-only or forbidden directory.
_CANNOT_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _whole_notebook(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove what killed renders left in `directory`: their temporaries, which
    no live render holds (each render holds a lock on its own while writing)."""
    import fcntl

    gone = []
    for path in directory.glob(f".*{TEMP_SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
            gone.append(path)
        except OSError:
            pass                        # a live render's
        finally:
            os.close(fd)
    return gone


def _write_error(exc: BaseException) -> OSError | None:
    """The OSError a render could not write past (`_CANNOT_WRITE`): raised in
    this process or a worker, or inside the notebook's kernel (a cell that
    saves a figure), which papermill reports as the cell's error text."""
    if isinstance(exc, OSError):
        return exc if exc.errno in _CANNOT_WRITE else None
    m = re.match(r"\[Errno (\d+)\] ([^:]+)(?:: '(.*)')?", str(getattr(exc, "evalue", "")))
    if m and int(m.group(1)) in _CANNOT_WRITE:
        return OSError(int(m.group(1)), m.group(2), m.group(3))
    return None


class CannotWrite(Exception):
    """A render could not write its output: stop everything, say where and why once."""

    def __init__(self, exc: OSError, where: Path):
        place = Path(exc.filename).parent if getattr(exc, "filename", None) else where
        super().__init__(f"cannot write {shown(place)}: [Errno {exc.errno}] {exc.strerror}. Nothing partial was "
                         "published; the notebooks that finished are in the run record. Free space (or allow "
                         "writing there) and render again.")


@contextlib.contextmanager
def _output_to(log: Path | None):
    """Send this process's stdout and stderr, and those of the processes it
    starts (the kernel), to `log` (appending) for the duration; None: /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log if log is not None else os.devnull, "a") as f:
        try:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def resolve_notebooks(names: list[str]) -> list[Path]:
    """Notebook paths for the CLI's names (`experiments.names`): a path to a
    notebook, or an experiment or notebook name as `--only` takes it (`1-3e`,
    `1-3b`); none: all of them."""
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
    (it would override what a user sets in the `parameters` cell), then the
    canonical form of `hw1lib.nbclean` (no papermill metadata, timestamps,
    widget state), so re-running unchanged code leaves `git diff` empty."""
    from .nbclean import dumps, normalize

    nb = json.loads(path.read_text())
    nb["cells"] = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    write_atomic(path, dumps(normalize(nb)))


def record_path() -> Path:
    return build_dir() / "run_record.json"


@contextlib.contextmanager
def _record_lock():
    """Held while the run record is read, changed and written (two reports at
    once each add their notebooks, neither loses the other's)."""
    import fcntl

    build_dir().mkdir(parents=True, exist_ok=True)
    fd = os.open(build_dir() / ".run_record.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_record() -> dict:
    """The run record: the settings of the report in build/notebooks/ and, per
    notebook of it, the executed file, its SHA-256, commit and time; {} when no
    report was rendered. A damaged record is a Hw1libError naming it."""
    from .errors import Hw1libError

    p = record_path()
    if not p.is_file():
        return {}
    try:
        rec = json.loads(p.read_text())
        if not isinstance(rec, dict) or not isinstance(rec.get("notebooks", {}), dict):
            raise ValueError("not a run record")
    except (OSError, ValueError) as exc:
        raise Hw1libError(f"the run record {p} is damaged ({exc}); render the report again (make report).") from None
    return rec


def update_record(settings: dict, change) -> dict:
    """Apply change(record) to the run record under its lock and write it
    atomically. A record of other settings (profile, device, overrides) is
    replaced by an empty one first: its notebooks no longer make one report
    with what is rendered now. Returns the record written."""
    with _record_lock():
        try:
            rec = read_record()
        except Exception:
            rec = {}
        if rec.get("settings") != settings:
            rec = {"settings": settings, "notebooks": {}, "failed": {}}
        change(rec)
        write_atomic(record_path(), json.dumps(rec, indent=2, sort_keys=True))
    return rec


def _sha256(path: Path) -> str:
    from .data import sha256

    return sha256(path)


def report_state(rec: dict) -> tuple[list[Path], dict[str, str]]:
    """(executed notebooks of one complete report, in report order; {notebook:
    why it is missing}) for every section of the report: one that was never
    rendered with these settings, whose last render failed, or whose file is
    gone or changed since it was rendered is missing."""
    from .experiments import notebooks

    entries, failed = rec.get("notebooks", {}), rec.get("failed", {})
    found, missing = [], {}
    for name in notebooks():
        e = entries.get(name)
        if e is None:
            missing[name] = "its last render failed" if name in failed else "not rendered with these settings"
            continue
        path = build_dir() / e["path"]
        if not path.is_file():
            missing[name] = f"{shown(path)} is gone"
        elif _sha256(path) != e.get("sha256"):
            missing[name] = f"{shown(path)} changed since it was rendered"
        else:
            found.append(path)
    return found, missing


def _ignore_sigint() -> None:
    """In a render worker: Ctrl-C is the parent's to handle (it stops the
    workers), so no worker prints a traceback of its own."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)


_STOPPING = False
_RENDERING = False


def _stop(signum, frame) -> None:
    """SIGTERM in a render worker: papermill shuts its kernel down on the way
    out, then `render` ends the worker; an idle worker just ends, quietly."""
    global _STOPPING
    _STOPPING = True
    if not _RENDERING:
        os._exit(130)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from . import experiments
    from .config import add_args
    from .device import describe, resolve_device
    from .errors import Hw1libError
    from .provenance import git_commit
    from .run import InlineExecutor, stop_workers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(ap, "profile", "device", "jobs", "set", jobs={"help": "notebooks rendered at once"},
             set={"help": "config overrides, as `python -m hw1lib.run --set` takes them (passed to the notebooks)"})
    ap.add_argument("--in-place", action="store_true",
                    help="execute notebooks/ itself with the parameters cell as written (quick profile)")
    ap.add_argument("--html", action="store_true",
                    help="only export the last report's notebooks to build/html/ (make html)")
    ap.add_argument("notebooks", nargs="*",
                    help="experiment or notebook names (1-3e, 1-3b; a comma list too, as --only takes it) or "
                         "notebook paths (default: all)")
    args = ap.parse_args(argv)
    if args.html:
        from .site import html_main

        return html_main()
    if args.in_place and ((args.profile, args.device) != ("quick", "auto") or args.set):
        ap.error("--in-place writes the committed notebooks, whose parameters cell holds the quick profile, "
                 "device auto and no overrides; render other settings into build/notebooks/ instead.")
    if args.jobs < 1:
        ap.error("--jobs must be 1 or more.")
    try:
        names = experiments.names(args.notebooks or None, "the notebook list")
        dev = resolve_device(args.device)
        device = describe(dev)
        nbs = resolve_notebooks(names)
        overrides = experiments.overrides(args.set, args.profile, str(dev))
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    out_dir = build_dir() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in (out_dir, out_dir / "in-place"):
        for path in remove_stale_temporaries(d):
            print(f"[report] removed {shown(path)}, left by a render that was killed", flush=True)
    started = dt.datetime.now().isoformat(timespec="seconds")
    jsonable = {k: {f: list(v) if isinstance(v, tuple) else v for f, v in d.items()} for k, d in overrides.items()}
    settings = {"profile": args.profile, "device": device, "overrides": jsonable}
    # In place, nothing is injected: the notebook runs with its own parameters cell.
    parameters = {} if args.in_place else {"profile": args.profile, "device": str(dev), "progress": False,
                                           "overrides": jsonable}
    targets = {nb: (out_dir / "in-place" if args.in_place else out_dir) / nb.name for nb in nbs}
    pool = (cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=_ignore_sigint)
            if args.jobs > 1 else InlineExecutor())
    failed, seconds = [], {}
    t0 = time.perf_counter()

    def finished(nb: Path, fut) -> None:
        try:
            _finished(nb, fut)
        except OSError as exc:          # writing the record or the notebook in this process
            if exc.errno in _CANNOT_WRITE:
                raise CannotWrite(exc, out_dir) from None
            raise

    def _finished(nb: Path, fut) -> None:
        try:
            took = fut.result()
        except Exception as exc:
            cause = _write_error(exc)
            if cause is not None:
                raise CannotWrite(cause, out_dir) from None
            failed.append(nb.name)
            print(f"[report] {nb.name} FAILED ({type(exc).__name__}); see "
                  f"{shown(targets[nb].with_suffix('.failed.ipynb'))} and "
                  f"{shown(out_dir / (nb.stem + '.log'))}", file=sys.stderr, flush=True)
            if not args.in_place:
                def drop(rec):
                    rec["notebooks"].pop(nb.name, None)
                    rec.setdefault("failed", {})[nb.name] = started
                update_record(settings, drop)
            return
        seconds[nb.name] = round(took, 1)
        if args.in_place:
            clean_notebook(targets[nb])
            os.replace(targets[nb], nb)
        else:
            entry = {"path": str(targets[nb].relative_to(build_dir())), "sha256": _sha256(targets[nb]),
                     "git_commit": git_commit(), "rendered": dt.datetime.now().isoformat(timespec="seconds"),
                     "seconds": seconds[nb.name]}

            def add(rec):
                rec["notebooks"][nb.name] = entry
                rec.setdefault("failed", {}).pop(nb.name, None)
            update_record(settings, add)
        print(f"[report] {nb.name} done in {took:.0f} s", flush=True)

    try:
        if args.jobs == 1:
            for nb in nbs:
                finished(nb, pool.submit(render, nb, targets[nb], parameters, out_dir / f"{nb.stem}.log"))
        else:
            futures = {pool.submit(render, nb, targets[nb], parameters, out_dir / f"{nb.stem}.log"): nb for nb in nbs}
            for fut in cf.as_completed(futures):
                finished(futures[fut], fut)
    except CannotWrite as exc:
        stop_workers(pool)              # nothing queued starts after it
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        stop_workers(pool)
        print(f"\n[report] interrupted; {len(seconds)} of {len(nbs)} notebooks finished and are in "
              f"{shown(out_dir)} (the run record lists them).", file=sys.stderr, flush=True)
        raise
    pool.shutdown()
    wall = time.perf_counter() - t0
    done = f"{len(seconds)} of {len(nbs)} notebooks in {wall:.0f} s wall ({sum(seconds.values()):.0f} s of notebook time)"
    if args.in_place:
        print(f"[report] {done}", flush=True)
    else:
        rec = update_record(settings, lambda rec: rec.update(last_render={
            "started": started, "notebooks": seconds, "failed": failed, "wall_seconds": round(wall, 1)}))
        _, missing = report_state(rec)
        print(f"[report] {done}; the report in {shown(out_dir)} has {len(rec['notebooks'])} of "
              f"{len(rec['notebooks']) + len(missing)} notebooks (record: {shown(record_path())})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    from .errors import command

    command(main)
