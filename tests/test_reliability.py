"""Fault drills: the cache never lies, never races, never executes a pickle;
killed runs resume bit-identically; a results directory that cannot be
written is reported before anything is computed."""
import dataclasses
import errno
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from hw1lib import cache, provenance
from hw1lib.data import sha256
from hw1lib.errors import CacheError
from hw1lib.experiments import experiment
function_fit_config = experiment("1-1a").make_config

ROOT = Path(__file__).resolve().parents[1]
CFG = function_fit_config("smoke")


def _result(v=1.0):
    return cache.Result({"a": np.arange(4) * v}, {"value": v}, weights={"w": torch.full((3,), v)})


def _entry(tmp_path, version="v1"):
    cache.save("t", CFG, _result(), version)
    return cache.entry_dir("t", CFG, version)


def _rewrite_meta(path: Path) -> None:
    """Make meta.json agree with the files again (an attacker who knows the format)."""
    meta = json.loads((path / "meta.json").read_text())
    meta["files"] = {n: sha256(path / n) for n in meta["files"]}
    (path / "meta.json").write_text(json.dumps(meta))


def _flip_byte(p: Path, at: int) -> None:
    b = bytearray(p.read_bytes())
    b[at] ^= 0x01
    p.write_bytes(bytes(b))


def _recomputes_with_warning(path: Path, needle: str):
    calls = []

    def compute():
        calls.append(1)
        return _result(2.0)

    with pytest.warns(cache.CacheWarning, match=needle) as rec:
        out = cache.cached("t", CFG, compute, version="v1")
    msg = str(rec[0].message)
    assert path.name in msg and "recomputed" in msg
    assert calls == [1] and not out.from_cache and out.arrays["a"][1] == 2.0
    assert list((path.parent / ".quarantine").iterdir())  # moved aside, not deleted
    again = cache.load("t", CFG, "v1")
    assert again is not None and again.summary == {"value": 2.0}


@pytest.mark.parametrize("name,damage", [
    ("config.json", lambda p: p.write_text("{not json")),
    ("arrays.npz", lambda p: p.write_bytes(p.read_bytes()[:40])),
    ("weights.pt", lambda p: p.write_bytes(b"")),
    ("summary.json", lambda p: p.write_text("")),
    ("meta.json", lambda p: p.write_text("[1, 2")),
])
def test_damaged_file_of_each_kind_is_named_moved_aside_and_recomputed(tmp_path, name, damage):
    path = _entry(tmp_path)
    damage(path / name)
    _recomputes_with_warning(path, "meta.json" if name == "meta.json" else name)


def test_changed_bytes_that_still_load_are_caught(tmp_path):
    path = _entry(tmp_path)
    w = path / "weights.pt"
    raw = w.read_bytes()
    at = raw.rindex(np.float32(1.0).tobytes()) + 3   # inside the last float of the tensor data
    _flip_byte(w, at)
    assert torch.load(w, weights_only=True)["w"][-1] != 1.0  # loads fine, silently wrong
    _recomputes_with_warning(path, "checksum of weights.pt")


def test_another_configs_file_is_not_served(tmp_path):
    path = _entry(tmp_path)
    other = dataclasses.replace(CFG, lrs=(0.5,))
    cache.save("t", other, _result(7.0), "v1")
    (path / "arrays.npz").write_bytes((cache.entry_dir("t", other, "v1") / "arrays.npz").read_bytes())
    _recomputes_with_warning(path, "checksum of arrays.npz")
    # even with the checksums rewritten, config.json is read back and compared
    path = cache.entry_dir("t", CFG, "v1")
    (path / "config.json").write_text(json.dumps(cache.config_dict(other)))
    _rewrite_meta(path)
    _recomputes_with_warning(path, "another config")


def test_other_code_version_is_a_miss_not_a_hit(tmp_path):
    cache.save("t", CFG, _result(), "v1")
    assert cache.load("t", CFG, "v2") is None and cache.load("t", CFG, "v1") is not None


class _Exploit:
    def __reduce__(self):
        return (Path.write_text, (Path(os.environ["HW1LIB_RESULTS"]) / "PWNED", "x"))


def test_malicious_pickle_in_the_cache_never_executes(tmp_path):
    path = _entry(tmp_path)
    torch.save({"w": _Exploit()}, path / "weights.pt")   # torch.save pickles the object
    _rewrite_meta(path)
    _recomputes_with_warning(path, "could not be read")
    assert not (tmp_path / "results" / "PWNED").exists()
    # an object array in arrays.npz (numpy pickles those) is refused the same way
    path = cache.entry_dir("t", CFG, "v1")
    np.savez(path / "arrays.npz", a=np.array([_Exploit()], dtype=object))
    _rewrite_meta(path)
    _recomputes_with_warning(path, "could not be read")
    assert not (tmp_path / "results" / "PWNED").exists()


def test_existing_entry_is_kept_not_replaced(tmp_path):
    path = _entry(tmp_path)
    before = (path / "meta.json").read_text()
    assert cache.save("t", CFG, _result(9.0), "v1") == path
    assert (path / "meta.json").read_text() == before
    assert cache.load("t", CFG, "v1").summary == {"value": 1.0}
    assert not list(path.parent.glob(".tmp-*"))


def test_stale_temp_dir_of_a_killed_writer_is_cleaned(tmp_path):
    final = cache.entry_dir("t", CFG, "v1")
    stale = final.parent / f".tmp-{final.name}-abc123"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    cache.cached("t", CFG, _result, version="v1")
    assert not stale.exists() and cache.load("t", CFG, "v1") is not None


_WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from hw1lib import cache
    from hw1lib.experiments import experiment
    function_fit_config = experiment("1-1a").make_config

    def compute():
        with open(sys.argv[1], "a") as f:
            f.write("computed\\n")
        time.sleep(1.5)
        return cache.Result({"a": np.arange(5)}, {"ok": True})

    out = cache.cached("t", function_fit_config("smoke"), compute, version="v1")
    print(out.arrays["a"].tolist(), out.from_cache)
""")


@pytest.mark.subprocess
def test_two_processes_on_one_config_leave_one_intact_entry(tmp_path):
    marker = tmp_path / "computed.txt"
    env = {**os.environ, "HW1LIB_RESULTS": str(tmp_path / "results")}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(marker)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert marker.read_text().count("computed") == 1          # the second waited, then reused
    assert sorted(o[0].split("]")[0] for o in outs) == ["[0, 1, 2, 3, 4"] * 2
    assert any("waiting for another process" in o[1] for o in outs)
    entries = [p for p in (tmp_path / "results" / "t").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and cache.load("t", function_fit_config("smoke"), "v1") is not None
    assert not list((tmp_path / "results" / "t").glob(".tmp-*"))


def _unwritable(tmp_path) -> Path:
    """A results directory that cannot be created, even by root: its parent is a file."""
    (tmp_path / "a_file").write_text("")
    return tmp_path / "a_file" / "results"


def test_unwritable_results_dir_fails_before_compute(tmp_path, monkeypatch):
    monkeypatch.setenv("HW1LIB_RESULTS", str(_unwritable(tmp_path)))
    called = []
    with pytest.raises(CacheError, match="results directory .*a_file/results/t is not writable"):
        cache.cached("t", CFG, lambda: called.append(1) or _result(), version="v1")
    assert not called


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_results_dir_fails_before_compute(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    monkeypatch.setenv("HW1LIB_RESULTS", str(ro))
    with pytest.raises(CacheError, match="not writable"):
        cache.cached("t", CFG, _result, version="v1")


@pytest.mark.subprocess
def test_runner_with_unwritable_results_is_one_sentence(tmp_path):
    env = {**os.environ, "HW1LIB_RESULTS": str(_unwritable(tmp_path))}
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "hw1lib.run", "--profile", "smoke", "--only", "1-1a",
                        "--no-progress", "--out", str(tmp_path / "t.json")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("error: The results directory") and len(p.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 30


def test_full_disk_names_the_directory(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.np, "savez", full)
    with pytest.raises(CacheError, match=r"Could not save results in .*/results/t: the disk is full"):
        cache.save("t", CFG, _result(), "v1")
    assert not list((tmp_path / "results" / "t").glob(".tmp-*"))


_KILLED = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(int(os.environ["TEST_TORCH_THREADS"]))   # the test process's: LAPACK's bits depend on it
    import hw1lib.experiments.e1_1a_simulate_function as s1
    from hw1lib import cache
    from hw1lib.experiments import experiment
    e = experiment("1-1a")
    real, calls = s1.fit_full_batch, []

    def killed_in_second_unit(*a, **k):
        calls.append(1)
        if len(calls) == 3 and sys.argv[1] == "compute":   # a unit fits twice (rate sweep, runs)
            os.kill(os.getpid(), signal.SIGKILL)        # mid-unit: nothing of it written
        return real(*a, **k)

    def killed_while_saving(*a, **k):
        if sys.argv[1] == "save":
            os.kill(os.getpid(), signal.SIGKILL)        # mid-save: a temp dir left behind
    def interrupted_in_second_unit(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)         # Ctrl-C mid-unit, through the runner
        return real(*a, **k)

    if sys.argv[1] == "sigint":
        from hw1lib import run
        from hw1lib.errors import command
        # as at a terminal: a shell without job control starts background jobs with
        # SIGINT ignored, and Python then never turns it into KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
        s1.fit_full_batch = interrupted_in_second_unit
        command(run.main, ["--profile", "smoke", "--device", "cpu", "--only", "1-1a", "--jobs", "1",
                           "--no-progress", "--out", os.devnull])
    s1.fit_full_batch = killed_in_second_unit
    units = e.units(e.make_config("smoke", "cpu"))
    units[0]()
    if sys.argv[1] == "save":
        cache.np.savez = killed_while_saving
    units[1]()
""")


@pytest.mark.subprocess
@pytest.mark.exact
@pytest.mark.parametrize("when", ["compute", "save", "sigint"])
def test_killed_or_interrupted_mid_unit_then_resume_gives_identical_arrays(tmp_path, monkeypatch, when):
    """SIGKILL while a unit computes or saves, or Ctrl-C through the runner
    (exit 130, a sentence saying how to resume): finished units are reused
    untouched and the result equals an uninterrupted run bit for bit.
    The condition: the interrupted child computes at the test process's thread count (passed
    to it), the same vector path; LAPACK's last bits depend on the thread count.
    """
    env = {**os.environ, "HW1LIB_RESULTS": str(tmp_path / "results"), "TEST_TORCH_THREADS": str(torch.get_num_threads())}
    p = subprocess.run([sys.executable, "-c", _KILLED, when], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    if when == "sigint":
        assert p.returncode == 130 and "interrupted" in p.stderr and "Traceback" not in p.stderr, p.stderr
    else:
        assert p.returncode == -9, p.stderr
    e = experiment("1-1a")
    monkeypatch.setenv("HW1LIB_RESULTS", str(tmp_path / "results"))
    units = e.units(e.make_config("smoke", "cpu"))
    first = cache.entry_dir(units[0].key, units[0].config, units[0].version)
    stamp = (first / "meta.json").read_text()
    assert units[0].is_cached() and not units[1].is_cached()
    if when == "save":
        assert list(first.parent.glob(".tmp-*"))
    resumed = e.run(e.make_config("smoke", "cpu"), progress=False)
    assert (first / "meta.json").read_text() == stamp       # the finished unit was reused
    assert not list(first.parent.glob(".tmp-*"))
    monkeypatch.setenv("HW1LIB_RESULTS", str(tmp_path / "clean"))
    clean = e.run(e.make_config("smoke", "cpu"), progress=False)
    for k in clean.arrays:
        np.testing.assert_array_equal(resumed.arrays[k], clean.arrays[k])


def test_code_version_follows_exactly_the_code_a_result_depends_on(monkeypatch):
    fit = experiment("1-1a").units(function_fit_config("smoke"))[0].compute
    width = experiment("1-3b").units(experiment("1-3b").make_config("smoke"))[0].compute
    deps = provenance.dependencies(fit)
    assert {"hw1lib.train:fit_full_batch", "hw1lib.models:mlp", "hw1lib.ensemble:Ensemble",
            "hw1lib.functions:target"} <= set(deps)
    assert not any(d.split(":")[0] in provenance.NOT_COMPUTE for d in deps)
    assert not any(d.endswith(":_train_width") for d in deps)
    before = {f: provenance.code_version(f) for f in (fit, width)}
    real = provenance._source.__wrapped__
    code, comment = "\n_EDITED = 1\n", "\n# edited\n"

    def versions(module, edit=code, old=None):
        monkeypatch.setattr(provenance, "_source", lambda m: (real(m) + edit if old is None else
                                                             real(m).replace(old, edit)) if m == module else real(m))
        provenance.clear_caches()
        return {f: provenance.code_version(f) for f in (fit, width)}

    target = "def target(name: str, x: torch.Tensor) -> torch.Tensor:"
    edited = versions("hw1lib.functions", target + "\n    x = x + 0", old=target)
    assert edited[width] == before[width] and edited[fit] != before[fit]    # 1-1a's targets: 1-1a only
    assert versions("hw1lib.train", "\ndef fit_full_batch(*a):\n    pass\n") != before  # redefined: both
    assert versions("hw1lib.train") == before          # a new definition nobody reaches: nothing
    assert versions("hw1lib.plotting") == before       # presentation invalidates nothing
    assert versions("hw1lib.train", comment) == before  # a comment is not code
    monkeypatch.undo()
    provenance.clear_caches()


TOY = {
    "__init__.py": "",
    "a.py": ("from .b import scale\n\nLIMIT = 3\n\n\ndef unrelated(x):\n    return x - 1\n\n\n"
             "def compute(x):\n    \"\"\"The result.\"\"\"\n    return scale(x) + LIMIT\n"),
    "b.py": "import math\n\n\ndef scale(x):\n    return 2 * math.floor(x)\n",
}


def _toy_version(tmp_path, monkeypatch, files):
    """code_version of toyproj.a.compute for a package written from `files`."""
    import importlib
    import sys

    root = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
    (root / "toyproj").mkdir(parents=True)
    for name, text in files.items():
        (root / "toyproj" / name).write_text(text)
    monkeypatch.syspath_prepend(str(root))
    for m in [m for m in sys.modules if m.split(".")[0] == "toyproj"]:
        del sys.modules[m]
    monkeypatch.setattr(provenance, "PACKAGES", ("hw1lib", "toyproj"))
    provenance.clear_caches()
    try:
        return provenance.code_version(importlib.import_module("toyproj.a").compute)
    finally:
        for m in [m for m in sys.modules if m.split(".")[0] == "toyproj"]:
            del sys.modules[m]
        provenance.clear_caches()


def test_code_version_survives_a_move_and_follows_a_change(tmp_path, monkeypatch):
    """The version hashes the definitions `compute` reaches, not the modules
    they live in: a move or an edit elsewhere recomputes nothing, a change
    of a reached definition (or of what an import binds) does."""
    base = _toy_version(tmp_path, monkeypatch, TOY)
    moved = dict(TOY, **{   # scale and LIMIT move into a third module, imported through the package
        "a.py": TOY["a.py"].replace("from .b import scale\n\nLIMIT = 3\n", "from .c import LIMIT, scale\n"),
        "b.py": "",
        "c.py": TOY["b.py"] + "\nLIMIT = 3\n"})
    assert _toy_version(tmp_path, monkeypatch, moved) == base
    assert _toy_version(tmp_path, monkeypatch, dict(TOY, **{
        "a.py": TOY["a.py"].replace("x - 1", "x - 2")})) == base                  # not reached
    assert _toy_version(tmp_path, monkeypatch, dict(TOY, **{
        "a.py": TOY["a.py"].replace('"""The result."""', '"""Reworded."""  # and a comment')})) == base
    assert _toy_version(tmp_path, monkeypatch, dict(TOY, **{
        "b.py": TOY["b.py"].replace("2 *", "3 *")})) != base                       # reached, in another module
    assert _toy_version(tmp_path, monkeypatch, dict(TOY, **{
        "a.py": TOY["a.py"].replace("LIMIT = 3", "LIMIT = 4")})) != base           # a reached constant
    assert _toy_version(tmp_path, monkeypatch, dict(TOY, **{
        "b.py": TOY["b.py"].replace("import math", "import numpy as math")})) != base   # what an import binds


def test_no_computation_hides_in_a_module_the_code_version_does_not_follow():
    """A move is free only between modules the version follows: a helper of a unit's computation moved into
    a NOT_COMPUTE module (the cache, the runner, the headline, experiments.common) would drop out of the hash,
    and editing it would recompute nothing. What the units reach there is the result container, the errors
    they raise, the data directory and the unit plumbing: nothing else."""
    from hw1lib import provenance as P
    from hw1lib.experiments import REGISTRY

    allowed = {("hw1lib.cache", "Result"), ("hw1lib.paths", "data_dir"), ("hw1lib.experiments.common", "Unit"),
               ("hw1lib.experiments.common", "split_units")}
    hidden, fns = set(), {u.compute for E in REGISTRY for u in E.units(E.make_config("full", "cpu"))}
    for fn in fns:
        for dep in P.dependencies(fn):
            mod, name = dep.rsplit(":", 1)
            if name == "*" or P.module_file(mod) is None:
                continue
            hidden |= {(m, n, f"{mod}:{name}") for m, n in P._reached(mod, P._top(mod)[0][name])
                       if m in P.NOT_COMPUTE and (m, n) not in allowed and m != "hw1lib.errors"}
    assert not hidden, f"computation in modules the code version does not follow (name, module, used by): {hidden}"


def test_code_version_ignores_docstrings_and_layout_but_not_code():
    import ast

    def v(src):
        return provenance.code_text(ast.parse(src))

    base = 'def f(x):\n    """Twice x."""\n    return 2 * x  # double\n'
    assert v(base) == v('def f(x):\n    """Two times x, reworded."""\n\n    return 2*x\n')
    assert v(base) == v("def f(x):\n    return 2 * x\n")
    assert v('"""Module doc."""\nA = 1\n') == v("A = 1\n")
    assert v(base) != v('def f(x):\n    """Twice x."""\n    return 3 * x\n')
    assert v(base) != v('def f(x):\n    """Twice x."""\n    return 2 * x + 0\n')
    assert v("A = 'text'\n") != v("A = 'other'\n")     # a string that is data, not a docstring, counts


def test_code_text_is_the_same_on_every_supported_python():
    """What a newer Python adds to the same code's syntax tree changes nothing:
    3.12's empty `type_params` on every function, 3.12.1's empty string at the
    end of a nested format spec (checked across 3.11.7, 3.12.1 and 3.13.0 on the
    whole of hw1lib when this was written; here, each addition by hand)."""
    import ast

    tree = ast.parse("def f(x, d):\n    return f'{x:.{d}f}'\n")
    before = provenance.code_text(tree)
    fn = tree.body[0]
    fn.type_params = []
    spec = fn.body[0].value.values[0].format_spec
    spec.values.append(ast.Constant(value=""))
    assert provenance.code_text(tree) == before
    spec.values.append(ast.Constant(value="!"))
    assert provenance.code_text(tree) != before           # a real change still counts


def test_runner_start_cleans_stale_temps_of_any_entry_but_not_a_live_writers(tmp_path):
    import fcntl

    root = tmp_path / "results"
    stale = root / "t" / ".tmp-0123456789abcdef-v1-abc123"
    live = root / "t" / ".tmp-fedcba9876543210-v1-xyz789"
    for d in (stale, live):
        d.mkdir(parents=True)
    fd = os.open(root / "t" / ".lock-fedcba9876543210-v1", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)              # a writer is still computing this one
    try:
        assert cache.clean_stale_temps(root) == [stale]
        assert not stale.exists() and live.exists()
    finally:
        os.close(fd)


# --- links inside the results directory: never followed, quarantined, recovered from ---------------------------

def _computes(value=2.0):
    calls = []

    def compute():
        calls.append(1)
        return _result(value)
    return compute, calls


def test_experiment_directory_that_is_a_link_is_set_aside_not_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = cache.results_dir()
    root.mkdir(parents=True)
    (root / "t").symlink_to(elsewhere)
    compute, calls = _computes()
    with pytest.warns(cache.CacheWarning, match=r"results/t .*symbolic link"):
        out = cache.cached("t", CFG, compute, version="v1")
    assert calls == [1] and not out.from_cache
    assert list(elsewhere.iterdir()) == []                      # nothing written where the link pointed
    assert (root / "t").is_dir() and not (root / "t").is_symlink()
    (aside,) = (root / ".quarantine").iterdir()
    assert (aside / "t").is_symlink()                            # the link itself, kept for inspection
    assert cache.cached("t", CFG, compute, version="v1").from_cache and calls == [1]


def test_entry_that_is_a_link_is_not_cached_and_recovers_in_one_run(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "meta.json").write_text("{}")
    final = cache.entry_dir("t", CFG, "v1")
    final.parent.mkdir(parents=True)
    final.symlink_to(junk)
    with pytest.warns(cache.CacheWarning, match="symbolic link"):
        assert not cache.sound("t", CFG, "v1")                  # not counted as cached: the link set aside
    compute, calls = _computes()
    assert not cache.cached("t", CFG, compute, version="v1").from_cache
    assert calls == [1] and final.is_dir() and not final.is_symlink() and sorted(junk.iterdir()) == [junk / "meta.json"]
    quarantined = list((final.parent / ".quarantine").iterdir())
    assert len(quarantined) == 1
    assert cache.cached("t", CFG, compute, version="v1").from_cache     # recovered: no new quarantine folder
    assert list((final.parent / ".quarantine").iterdir()) == quarantined


def test_file_of_an_entry_that_is_a_link_is_damage(tmp_path):
    path = _entry(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text((path / "summary.json").read_text())
    (path / "summary.json").unlink()
    (path / "summary.json").symlink_to(secret)
    _recomputes_with_warning(path, "summary.json is a symbolic link")


def test_lock_file_that_is_a_link_creates_nothing_where_it_points(tmp_path):
    final = cache.entry_dir("t", CFG, "v1")
    final.parent.mkdir(parents=True)
    target = tmp_path / "outside" / "created-through-the-link"
    target.parent.mkdir()
    (final.parent / f".lock-{final.name}").symlink_to(target)
    compute, calls = _computes()
    with pytest.warns(cache.CacheWarning, match=r"\.lock-.*symbolic link"):
        cache.cached("t", CFG, compute, version="v1")
    assert calls == [1] and not target.exists()
    assert not (final.parent / f".lock-{final.name}").is_symlink()


def test_results_root_may_be_a_link_and_the_runner_says_so(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)
    monkeypatch.setenv("HW1LIB_RESULTS", str(tmp_path / "linked"))
    assert "a link to" in cache.describe_root() and str(real) in cache.describe_root()
    compute, calls = _computes()
    cache.cached("t", CFG, compute, version="v1")
    assert (real / "t").is_dir() and cache.cached("t", CFG, compute, version="v1").from_cache and calls == [1]


# --- prune ---------------------------------------------------------------------------------------------------

def test_prune_removes_what_no_current_code_reads_and_keeps_the_rest(tmp_path, monkeypatch, capsys):
    from hw1lib import run

    e = experiment("1-3b")
    units = e.units(e.make_config("smoke", "cpu"))
    units[0]()
    current = cache.entry_dir(units[0].key, units[0].config, units[0].version)
    root = cache.results_dir()
    stale = current.with_name(current.name.rsplit("-", 1)[0] + "-0123456789abcdef")   # another code version
    import shutil

    shutil.copytree(current, stale)
    (stale.parent / f".lock-{stale.name}").write_text("")
    gone = root / "an_old_experiment" / "abc-0123456789abcdef"
    shutil.copytree(current, gone)
    (root / "linked_experiment").symlink_to(tmp_path)
    with pytest.warns(cache.CacheWarning):
        cache.quarantine(shutil.copytree(current, current.with_name("damaged")), "a test")
    before = {p for p in root.rglob("*")}

    assert run.main(["--prune", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "would remove" in said and {p for p in root.rglob("*")} == before      # a dry run removes nothing
    assert run.main(["--prune"]) == 0
    said = capsys.readouterr().out
    assert "code version 0123456789abcdef, not read by this code" in said
    assert "an_old_experiment/ (no experiment of this code reads it)" in said
    assert "linked_experiment (a link" in said and ".quarantine/ (damaged entries set aside)" in said
    assert "removed 4 entries" in said and "kept 1 entr" in said
    assert not stale.exists() and not (stale.parent / f".lock-{stale.name}").exists()
    assert not gone.parent.exists() and not (root / "linked_experiment").exists() and tmp_path.is_dir()
    assert not (current.parent / ".quarantine").exists()
    assert units[0].is_cached() and units[0]().from_cache                              # the current entry stays


@pytest.mark.subprocess
def test_make_clean_says_what_it_removed_and_clean_build_keeps_results(tmp_path):
    (tmp_path / "build" / "notebooks").mkdir(parents=True)
    (tmp_path / "build" / "notebooks" / "x.ipynb").write_text("{}")
    (tmp_path / "results" / "t" / "e").mkdir(parents=True)
    (tmp_path / "results" / "t" / "e" / "meta.json").write_text("{}")
    make = ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("HW1LIB_RESULTS", "HW1LIB_BUILD")}
    out = subprocess.run(make + ["clean-build"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("removed build/")
    assert not (tmp_path / "build").exists() and (tmp_path / "results" / "t" / "e" / "meta.json").exists()
    out = subprocess.run(make + ["clean"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and "removed results/ (1 cached entries" in out.stdout, out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


# --- Ctrl-C in the same process; selections; setup ---------------------------------------------------------------

def test_ctrl_c_in_the_runner_reaches_its_caller_and_restores_signal_handling(monkeypatch, capsys):
    """A test (or any caller) that drives the runner in its own process is interrupted by Ctrl-C too: the
    runner says what was kept and lets KeyboardInterrupt through; its SIGTERM handler is undone."""
    import signal

    from hw1lib import run

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_all", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run.main(["--profile", "smoke", "--device", "cpu", "--no-progress"])
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.subprocess
@pytest.mark.parametrize("module,args", [
    ("hw1lib.run", ["--profile", "smoke", "--only", " "]),
    ("hw1lib.verify", ["--profile", "quick", "--only", ""]),
    ("hw1lib.report", ["--profile", "smoke", ","]),
])
def test_an_empty_selection_is_an_error_not_everything(module, args):
    p = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 2 and "names nothing" in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.subprocess
def test_nb_comma_list_is_accepted_by_every_step():
    from hw1lib.experiments import names
    from hw1lib.report import resolve_notebooks

    assert [p.name for p in resolve_notebooks(names(["1-2b,1-3e"]))] == [
        "1-2b_gradient_norm.ipynb", "1-3e_sharpness.ipynb"]
    dry = subprocess.run(["make", "-n", "--no-print-directory", "report", "NB=1-2b,1-3e"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    assert "--only 1-2b,1-3e" in dry and dry.rstrip().endswith("1-2b,1-3e")


@pytest.mark.subprocess
def test_setup_with_an_unsupported_python_is_one_line_and_leaves_nothing(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3.10;; *) exit 1;; esac\n')
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    p = subprocess.run(["make", "-s", "--no-print-directory", "setup", f"PYTHON={fake}", f"VENV={venv}"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode != 0 and not venv.exists()
    lines = [l for l in p.stderr.splitlines() if not re.match(r"make(\[\d+\])?:", l)]   # make's own line
    assert lines == [f"error: {fake} is Python 3.10, and hw1lib supports 3.11 to 3.13; install one, or run "
                     "make PYTHON=/path/to/python3.x"], p.stderr


@pytest.mark.subprocess
def test_failed_setup_leaves_no_half_made_venv(tmp_path):
    bad = tmp_path / "bad.lock"
    bad.write_text(f"{tmp_path}/missing-1.0-py3-none-any.whl --hash=sha256:{'0' * 64}\n")
    venv = tmp_path / "venv"
    p = subprocess.run(["make", "-s", "--no-print-directory", "setup", f"VENV={venv}", f"LOCK={bad}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "removed the unfinished" in p.stderr, p.stderr
    assert not venv.exists()


@pytest.mark.subprocess
def test_make_test_simulates_another_machine():
    """`make test` checks the quick profile as a simulated machine (by default a CPU without AVX-512), not only
    natively, and CHECK_MACHINES chooses which."""
    dry = subprocess.run(["make", "-n", "--no-print-directory", "test"], cwd=ROOT, capture_output=True,
                         text=True).stdout
    assert "--machine avx2" in dry and "--machine native" in dry, dry
    dry = subprocess.run(["make", "-n", "--no-print-directory", "test", "CHECK_MACHINES=scalar"], cwd=ROOT,
                         capture_output=True, text=True).stdout
    assert "--machine scalar" in dry, dry
