"""Compute every experiment headlessly: `python -m hw1lib.run --profile full`.

Fills the results cache without Jupyter, so that rendering the notebooks
afterwards (`make report`) only reads it. Experiments are split into units
(a depth, a width, a batch size, or a whole small experiment; see
`hw1lib.experiments.REGISTRY`); units that are not cached yet are dispatched
through a `concurrent.futures`-style executor:

- `--jobs 1`: one after another in this process;
- on a GPU, `--jobs N`: N threads, each unit on its own CUDA stream, so that
  the small kernels (or replayed CUDA graphs) of independent units overlap;
- on a CPU, `--jobs N`: N worker processes, each with 1/N of the CPU threads;
- experiments marked `host` in the registry (1-2c) compute on the CPU on every
  run: on a GPU run with `--jobs N`, their units go to worker processes on the
  cores the N GPU threads leave free, one thread each.

Any object with `submit(fn, *args) -> future with .result()` serves: pass it
as `run_all(..., executor=...)` to run units elsewhere over a shared results
directory (set HW1LIB_RESULTS on both sides), e.g. Dask's
`distributed.Client(...).get_executor()` or submitit's
`AutoExecutor(folder=...)` (see the README). Experiments that read another's
results (`after` in the registry) start once those are done.

Prints one line per experiment as it finishes and a table at the end, and
writes `build/timings-<profile>-<device>.json`: after every unit that
finishes (`"complete": false`), so that an interrupted run keeps the timings
of what it computed, and once more at the end (`"complete": true`).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from . import cache, exact, experiments
from .config import add_args
from .device import describe, resolve_device
from .cuda import on_stream, thread_stream
from .experiments import experiment, select
from .experiments.common import Unit
from .calibration import calibrate
from .paths import build_dir, repo_root, shown, write_atomic
from .provenance import code_version, git_commit


class _Deferred(cf.Future):
    """A call that runs, in this process, when a scheduler waits for it (`_wait_any`) or its result is asked."""

    def __init__(self, fn, args, kwargs):
        super().__init__()
        self.call = (fn, args, kwargs)

    def run_now(self) -> None:
        fn, args, kwargs = self.call
        try:
            self.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through .result(), like any executor
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.set_exception(exc)

    def result(self, timeout=None):
        if not self.done():
            self.run_now()
        return super().result(timeout)


class InlineExecutor(cf.Executor):
    """Runs each submitted call in this process, one after another, when it is
    waited for (what `--jobs 1` uses), so that the scheduler logs each unit's
    progress as it ends."""

    def submit(self, fn, /, *args, **kwargs):
        return _Deferred(fn, args, kwargs)


def run_unit(unit: Unit, progress: bool = False, own_stream: bool = False) -> tuple[float, bool]:
    """Compute (or load) one unit; returns (the seconds it took, whether it
    was computed here: not when another process computed it while this one
    waited for its lock). With own_stream, its CUDA work goes to a new stream
    of its own, so units in different threads overlap on the GPU."""
    t0 = time.perf_counter()
    if own_stream and torch.cuda.is_available():
        stream = thread_stream(torch.device("cuda", torch.cuda.current_device()))
        with on_stream(stream):
            result = unit(progress)
        stream.synchronize()
    else:
        result = unit(progress)
    return time.perf_counter() - t0, not result.from_cache


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    # Ctrl-C at a terminal reaches every process of the group: the parent stops
    # the workers (stop_workers), so a worker prints no traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_executor(device: torch.device, jobs: int, threads: int | None = None) -> cf.Executor:
    """The executor `--jobs` picks: inline, threads (GPU) or processes (CPU).
    threads: torch threads per process on a CPU (default: the cores split
    evenly between the jobs)."""
    if jobs <= 1:
        if threads:
            torch.set_num_threads(threads)
        return InlineExecutor()
    if device.type == "cuda":
        return cf.ThreadPoolExecutor(jobs, thread_name_prefix="hw1lib-unit")
    return _process_pool(jobs, threads or max(1, torch.get_num_threads() // jobs))


def _process_pool(workers: int, threads: int) -> cf.ProcessPoolExecutor:
    """`workers` spawned processes, each running torch on `threads` threads."""
    return cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                  initargs=(threads,))


def host_pool(gpu_threads: int, cores: int | None = None) -> cf.ProcessPoolExecutor:
    """Worker processes for the units of host experiments (registry: `host`) in
    a threaded GPU run: one per core the GPU threads leave free, one torch
    thread each (their small dense linear algebra gains nothing from more)."""
    return _process_pool(max(1, (cores or os.cpu_count() or 2) - gpu_threads), 1)


def stop_workers(executor: cf.Executor, grace: float = 10.0) -> None:
    """Cancel what has not started and stop worker processes now (SIGTERM, then
    SIGKILL after `grace` seconds): a unit in flight is lost, every finished
    unit is already cached; no queued work starts after this."""
    procs = list((getattr(executor, "_processes", None) or {}).values())  # shutdown forgets them
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def past_timings(profile: str, device_type: str) -> tuple[dict[str, float], float | None, str]:
    """Seconds per unit ("<key>/<config hash>", any code version) of the last timings file on this machine
    (build/), else of the committed one (benchmarks/results/timings-<profile>-<device>.json); the calibration
    total it recorded at its start; and where it came from."""
    for path in (timings_path(profile, device_type),
                 repo_root() / "benchmarks" / "results" / f"timings-{profile}-{device_type}.json"):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        units = {k.rsplit("-", 1)[0]: v for k, v in rec.get("units", {}).items() if v > 0}
        if units:
            return units, (rec.get("calibration") or {}).get("start", {}).get("total"), shown(path)
    return {}, None, ""


class Eta:
    """Units done of units planned, per experiment and for the whole run, and the time left: the planned
    units' seconds in the past timings (`past_timings`; a unit never timed counts as the mean of its
    experiment's, or of all), scaled by this box's calibration against theirs, divided by the jobs, and
    corrected by how the units done so far compared with their estimates. In a terminal one line that
    updates; in a log a plain line per unit."""

    def __init__(self, plan: dict[str, str], past: dict[str, float], scale: float, jobs: int,
                 log: Callable[[str], None]):
        self.plan, self.jobs, self.log = plan, max(1, jobs), log
        self.t0, self.done_s, self.spent, self.expected_done = time.perf_counter(), {}, 0.0, 0.0
        known = {k: past[k.rsplit("-", 1)[0]] * scale for k in plan if k.rsplit("-", 1)[0] in past}
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
        overall = mean(list(known.values()))
        by_exp = {e: mean([v for k, v in known.items() if plan[k] == e]) for e in set(plan.values())}
        self.expected = {k: known.get(k, by_exp[e] if by_exp[e] is not None else overall) for k, e in plan.items()}
        self.tty = sys.stderr.isatty()

    def unit_done(self, key: str, seconds: float) -> None:
        if key in self.plan and key not in self.done_s:
            self.done_s[key] = seconds
            if self.expected[key] is not None:
                self.spent, self.expected_done = self.spent + seconds, self.expected_done + self.expected[key]
        self.show()

    def left(self, keys: list[str]) -> float | None:
        """Seconds left for these units (None: nothing to estimate from)."""
        todo = [self.expected[k] for k in keys if k not in self.done_s]
        if any(v is None for v in todo):
            return None
        speed = min(2.0, max(0.5, self.spent / self.expected_done)) if self.expected_done else 1.0
        return speed * sum(todo) / self.jobs

    def line(self) -> str:
        exps: dict[str, list[str]] = {}
        for k, e in self.plan.items():
            exps.setdefault(e, []).append(k)
        open_ = [(e, sum(k in self.done_s for k in ks), len(ks)) for e, ks in exps.items()]
        open_ = [f"{e} {d}/{n}" for e, d, n in open_ if d < n][:4]
        left = self.left(list(self.plan))
        est = (f"about {_clock(left)} left" if left is not None else "time left unknown (no past timings)")
        return (f"[eta] {len(self.done_s)}/{len(self.plan)} units" + (f" ({', '.join(open_)})" if open_ else "")
                + f", {_clock(time.perf_counter() - self.t0)} elapsed, {est}")

    def show(self) -> None:
        if not self.plan:
            return
        if self.tty:
            print("\r" + self.line() + "\033[K", end="", file=sys.stderr, flush=True)
        else:
            self.log(self.line())


def _wait_any(futures: list) -> list:
    """Block until at least one future is done; return those that are:
    concurrent.futures ones through cf.wait, others (e.g. submitit jobs, which
    have .done() and .result()) by polling; an inline call not run yet runs now."""
    waiting = [f for f in futures if isinstance(f, _Deferred) and not f.done()]
    if waiting and not any(f.done() for f in futures):
        waiting[0].run_now()
        return [waiting[0]]
    if all(isinstance(f, cf.Future) for f in futures):
        done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return [f for f in futures if f in done]      # in submission order
    while True:
        ready = [f for f in futures if f.done()]
        if ready:
            return ready
        time.sleep(1.0)


class Scheduler:
    """Units of the selected experiments through an executor: an experiment
    starts as soon as what it reads (`after`) is done, a unit two experiments
    share is computed once, cached units are not submitted, and an experiment
    is assembled (and its line logged) when its last unit finishes. `record`
    is the timings record at any moment.

    With `slots` (the local executor's workers), at most that many units are
    in flight and the next one is chosen when a worker frees: first the units
    of experiments that others read (so that those can start), then the
    longest by the past timings (`Eta`), so that no long unit is left to run
    alone at the end. Without (another executor), every ready unit is
    submitted at once, in order."""

    def __init__(self, selected: list, configs: dict, executor: Any, host_pool: Any = None,
                 unit_progress: bool = False, own_stream: bool = False, log: Callable[[str], None] = print,
                 eta: Eta | None = None, slots: int | None = None, known_cached: set[str] | None = None):
        self.selected, self.configs, self.executor, self.host_pool = selected, configs, executor, host_pool
        self.eta, self.slots, self.known_cached = eta, slots, known_cached or set()
        self.read_by_others = {a for e in selected for a in e.after}
        self.queue: list[tuple[tuple, Unit]] = []    # ready units not submitted yet, by priority
        self.in_flight = 0                           # of them, submitted and not done
        self.host_futures: set = set()               # units of host experiments, in their own pool
        self.unit_progress, self.own_stream, self.log = unit_progress, own_stream, log
        self.seconds: dict[str, float] = {}          # per experiment: its units' time and its assembly
        self.unit_seconds: dict[str, float] = {}     # units computed (or failed) in this run
        self.cached_units: list[str] = []
        self.waited_units: list[str] = []            # another process computed them while this one waited
        self.failures: dict[str, str] = {}
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.pending: dict[str, list[Unit]] = {}     # per experiment: its units computed in this run
        self.waiting: dict[str, list[str]] = {}      # unit -> the experiments waiting for it
        self.left: dict[str, int] = {}
        self.futures: dict[Any, Unit] = {}

    def failed(self, name: str) -> bool:
        return any(k.startswith(name + ":") for k in self.failures)

    def finish(self, name: str) -> None:
        e = experiment(name)
        t0 = time.perf_counter()
        if not self.failed(name):
            try:
                e.run(self.configs[name], progress=False)  # assembles the cached units
            except Exception as exc:
                self.failures[f"{name}:assemble"] = f"{type(exc).__name__}: {exc}"
        self.seconds[name] = round(sum(self.unit_seconds.get(str(u), 0.0) for u in self.pending[name])
                                   + time.perf_counter() - t0, 2)
        n = sum(str(u) in self.unit_seconds for u in self.pending[name])
        waited = len(self.pending[name]) - n
        self.log(f"[run] {name:<10} {e.title:<18} {'FAILED' if self.failed(name) else 'done'} in "
                 f"{self.seconds[name]:7.1f} s ({n} unit{'s' * (n != 1)} computed"
                 + (f", {waited} computed by another process while this one waited)" if waited else ")"))
        self.finished.add(name)
        self.start_ready()

    def start_ready(self) -> None:
        """Submit every experiment whose inputs (`after`) are done."""
        for e in self.selected:
            if e.name in self.started or not all(a in self.finished for a in e.after):
                continue
            self.started.add(e.name)
            self.pending[e.name], self.left[e.name] = [], 0
            for u in e.units(self.configs[e.name]):
                key = str(u)
                if key in self.unit_seconds or key in self.waited_units:
                    continue
                if key in self.waiting:              # the same unit, already submitted for another
                    self.waiting[key].append(e.name)
                    self.left[e.name] += 1
                    continue
                if key in self.known_cached or u.is_cached():
                    self.cached_units.append(key)
                    continue
                self.pending[e.name].append(u)
                self.waiting[key] = [e.name]
                self.left[e.name] += 1
                if self.host_pool is not None and e.host:
                    fut = self.host_pool.submit(run_unit, u, False, False)
                    self.futures[fut] = u
                    self.host_futures.add(fut)
                else:
                    expected = (self.eta.expected.get(key) if self.eta else None) or 0.0
                    self.queue.append(((e.name not in self.read_by_others, -expected, len(self.futures)
                                        + len(self.queue)), u))
            if self.left[e.name] == 0:
                self.finish(e.name)
        self.pump()

    def pump(self) -> None:
        """Submit queued units, best first, while a slot is free."""
        self.queue.sort(key=lambda q: q[0])
        while self.queue and (self.slots is None or self.in_flight < self.slots):
            _, u = self.queue.pop(0)
            self.futures[self.executor.submit(run_unit, u, self.unit_progress, self.own_stream)] = u
            self.in_flight += 1

    def done(self, fut) -> None:
        """A submitted unit finished (or failed): count it for every experiment waiting for it."""
        u = self.futures.pop(fut)
        key = str(u)
        if fut in self.host_futures:
            self.host_futures.discard(fut)
        else:
            self.in_flight -= 1
        try:
            seconds, computed = fut.result()
            if computed:
                self.unit_seconds[key] = round(seconds, 2)
            else:
                self.waited_units.append(key)
        except Exception as exc:
            for name in self.waiting[key]:
                self.failures[f"{name}:{u}"] = f"{type(exc).__name__}: {exc}"
            self.unit_seconds[key] = 0.0
        if self.eta is not None:
            self.eta.unit_done(key, self.unit_seconds.get(key, 0.0))
        for name in self.waiting.pop(key):
            self.left[name] -= 1
            if self.left[name] == 0:
                self.finish(name)
        self.pump()

    def keep_finished(self) -> None:
        """On an interruption: the units that finished but were not looked at yet count as done."""
        for fut, u in self.futures.items():
            if isinstance(fut, cf.Future) and fut.done() and not fut.cancelled() and fut.exception() is None:
                seconds, computed = fut.result()
                if computed:
                    self.unit_seconds[str(u)] = round(seconds, 2)


def run_all(profile: str, device: str = "auto", only: list[str] | None = None, jobs: int = 1,
            executor: Any = None, progress: bool = True,
            log: Callable[[str], None] = print, threads: int | None = None,
            overrides: dict[str, dict[str, Any]] | None = None,
            checkpoint: Callable[[dict], None] | None = None, calibrate_box: bool = False) -> dict:
    """Fill the cache for the selected experiments of `profile` (and what they
    read); returns the timings record (also what `main` writes to the timings
    file). overrides: {experiment: {field: value}} on top of the profile
    (`--set`). checkpoint: called with the record so far (`complete` False)
    after every unit that finishes, so that an interrupted run keeps the
    timings of what it did. calibrate_box: time `calibration.calibrate` at the start and the end (what
    the command line does; the record's `calibration`)."""
    dev = resolve_device(device)                 # the one place a run resolves its device
    exact.check_device(dev)
    threads = exact.check_threads(threads)
    log(f"[run] profile={profile} device={describe(dev)} jobs={jobs}"
        + (" mode=exact (hw1lib.exact)" if exact.enabled() else ""))
    cache.check_writable()  # before anything is computed, not after the first unit
    log(f"[run] results: {cache.describe_root()}")
    cache.clean_stale_temps()  # left by killed writers of any entry
    wanted = {e.name for e in (select(only) if only else experiments.REGISTRY)}
    while more := {a for e in experiments.REGISTRY if e.name in wanted for a in e.after} - wanted:
        wanted |= more                   # what they read is computed too, and what that reads
    selected = [e for e in experiments.REGISTRY if e.name in wanted]
    configs = {e.name: e.make_config(profile, str(dev), overrides) for e in selected}
    own = executor is None
    executor = executor or local_executor(dev, jobs, threads)
    in_process = isinstance(executor, (InlineExecutor, cf.ThreadPoolExecutor))
    own_stream = dev.type == "cuda" and isinstance(executor, cf.ThreadPoolExecutor)
    pool = host_pool(jobs) if own_stream and any(e.host for e in selected) else None
    if own_stream:
        # Load MNIST onto the GPU before any thread starts capturing a graph, so
        # that no load (and its synchronisation) overlaps a capture.
        from .data import load_mnist

        load_mnist(dev)
    commit, t_start = git_commit(), time.perf_counter()
    calibration = {"start": calibrate()} if calibrate_box else {}
    plan, cached = {}, set()     # cached: checked once here (checksums read), not again when submitting
    for e in selected:
        for u in e.units(configs[e.name]):
            if str(u) not in plan and str(u) not in cached:
                if u.is_cached():
                    cached.add(str(u))
                else:
                    plan[str(u)] = e.name
    past, past_cal, source = past_timings(profile, dev.type)
    now_cal = calibration.get("start", {}).get("total")
    eta = Eta(plan, past, now_cal / past_cal if now_cal and past_cal else 1.0, jobs, log)
    log(f"[eta] {len(plan)} units to compute" + (f"; calibration {now_cal:.0f} ms" if now_cal else "")
        + (f"; time left estimated from {source}" + (f" (its calibration {past_cal:.0f} ms)" if past_cal else "")
           if source else "; no past timings to estimate the time left from"))
    # tqdm bars inside the units: in this process, or from worker processes when
    # they share a terminal (never in a log file, which each update would add a line to)
    run = Scheduler(selected, configs, executor, pool, progress and (in_process or sys.stderr.isatty()),
                    own_stream, log, eta, slots=max(1, jobs) if own else None, known_cached=cached)

    def record(complete: bool) -> dict:
        return {"device": describe(dev), "device_type": dev.type, "torch": torch.__version__,
                "mode": exact.mode(), "commit": commit, "profile": profile, "jobs": jobs, "complete": complete,
                "calibration": calibration,
                "experiments": dict(run.seconds), "total_seconds": round(time.perf_counter() - t_start, 2),
                "units": dict(run.unit_seconds), "cached_units": len(run.cached_units),
                "waited_units": list(run.waited_units),
                "failures": dict(run.failures)}

    stop = ([executor] if own else []) + ([pool] if pool else [])
    try:
        run.start_ready()
        while run.futures:
            for fut in _wait_any(list(run.futures)):
                run.done(fut)
                if checkpoint is not None:
                    checkpoint(record(False))
    except BaseException:   # Ctrl-C included: stop now, keep what finished (its cache entries and timings)
        run.keep_finished()
        if checkpoint is not None and run.unit_seconds:
            checkpoint(record(False))
        for ex in stop:
            stop_workers(ex)
        raise
    for ex in stop:
        ex.shutdown(wait=True)
    if eta.tty and plan:
        print(file=sys.stderr)
    if calibrate_box:
        calibration["end"] = calibrate()
    return record(True)


def current_versions() -> dict[str, set[str]]:
    """{cache directory: the code versions the current code's units read},
    over every experiment and profile (a version depends on the code, not on
    the config, so --set and the device change nothing here), in either mode
    (default and exact: hw1lib.exact)."""
    out: dict[str, set[str]] = {}
    for e in experiments.REGISTRY:
        for profile in e.profiles:
            for u in e.units(e.make_config(profile, "cpu")):
                v = code_version(u.compute)
                out.setdefault(u.key, set()).update((v, v + exact.VERSION_SUFFIX))
    return out


def entries(profile: str) -> list[str]:
    """Every unit's cache entry for `profile` ("<key>/<config hash>-<code
    version>", default mode), computing nothing: what `--keys` prints, and
    how a refactor shows that it re-keys no result."""
    return sorted({str(u) for e in experiments.REGISTRY for u in e.units(e.make_config(profile, "cpu"))})


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def prune_main(dry_run: bool = False) -> int:
    """`make prune`: remove what no experiment of this code reads; say what."""
    print(f"[prune] results: {cache.describe_root()}")
    done = cache.prune(current_versions(), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    entries = lambda n: f"{n} entr{'y' if n == 1 else 'ies'}"
    for what, (n, b) in done.removed.items():
        print(f"[prune] {verb} {entries(n)}, {_mb(b)}: {what}")
    n, b = done.total
    print(f"[prune] {verb} {entries(n)} ({_mb(b)}); kept {entries(done.kept[0])} of the current code "
          f"({_mb(done.kept[1])}).")
    return 0


def timings_path(profile: str, device_type: str) -> Path:
    return build_dir() / f"timings-{profile}-{device_type}.json"


def timings_out(args, record: dict) -> Path:
    """Where a run's timings go: --out, or build/timings-<profile>-<device>.json."""
    return Path(args.out) if args.out else timings_path(args.profile, record["device_type"])


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(ap, "profile", "device", "only", "set", "jobs", "no_progress")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process on a CPU (default: "
                    "the cores split between the jobs; hw1lib.verify sets it to act as another machine)")
    ap.add_argument("--out", default=None, help="timings file (default build/timings-<profile>-<device>.json)")
    ap.add_argument("--prune", action="store_true",
                    help="compute nothing: remove the cached entries that no experiment of this code would read "
                         "(other code versions, experiments that no longer exist, damaged entries set aside), "
                         "saying what and how much (make prune). On a results directory shared with other "
                         "checkouts, their code's entries count as stale.")
    ap.add_argument("--dry-run", action="store_true", help="with --prune: only say what would be removed")
    ap.add_argument("--keys", action="store_true", help="compute nothing: print the cache entry of every unit of "
                    "the profile (results/<key>/<config hash>-<code version>), one per line")
    args = ap.parse_args(argv)
    if args.dry_run and not args.prune:
        ap.error("--dry-run goes with --prune.")
    if args.prune:
        return prune_main(args.dry_run)
    if args.keys:
        print("\n".join(entries(args.profile)))
        return 0
    # SIGTERM like Ctrl-C: stop the workers, keep finished units (restored on the way out, so that a
    # caller in the same process keeps its own handling)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("\n[run] interrupted: every unit that finished is cached; run the same command again to "
              "resume from there.", file=sys.stderr, flush=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args) -> int:
    from .errors import ConfigError, Hw1libError

    try:
        only = experiments.names(args.only)
        if only:
            select(only)
        overrides = experiments.overrides(args.set, args.profile, args.device)   # checked before anything runs
        if args.jobs < 1:
            raise ConfigError("--jobs must be 1 or more.")
        def checkpoint(rec: dict) -> None:   # an interrupted run keeps the timings of the units it finished
            write_atomic(timings_out(args, rec), json.dumps(rec, indent=2))

        record = run_all(args.profile, args.device, only, args.jobs, progress=not args.no_progress,
                         log=lambda s: print(s, flush=True), threads=args.threads, overrides=overrides,
                         checkpoint=checkpoint, calibrate_box=True)
    except Hw1libError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\n{'experiment':<12} {'seconds':>8}")
    for name, s in record["experiments"].items():
        print(f"{name:<12} {s:>8.1f}")
    print(f"{'total (wall)':<12} {record['total_seconds']:>8.1f}   ({record['cached_units']} units from cache)")
    out = timings_out(args, record)
    if record["units"] or not out.exists():
        write_atomic(out, json.dumps(record, indent=2))
        print(f"timings -> {shown(out)}")
    else:   # a rerun that only read the cache does not replace the timings of the run that computed
        print(f"timings: nothing was computed; {shown(out)} keeps the timings of the run that computed")
    for k, v in record["failures"].items():
        print(f"FAILED {k}: {v}", file=sys.stderr)
    return 1 if record["failures"] else 0


if __name__ == "__main__":
    from .errors import command

    command(main)
