"""Fault drills: the cache never lies, never races, never executes a pickle;
killed runs resume bit-identically; a results directory that cannot be
written is reported before anything is computed."""
import dataclasses
import errno
import json
import os
import pickle
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
    other = dataclasses.replace(CFG, lr=0.5)
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
    import hw1lib.experiments.deep_vs_shallow as s1
    from hw1lib import cache
    from hw1lib.experiments import experiment
    e = experiment("1-1a")
    real, calls = s1.fit_full_batch, []

    def killed_in_second_unit(*a, **k):
        calls.append(1)
        if len(calls) == 2 and sys.argv[1] == "compute":
            os.kill(os.getpid(), signal.SIGKILL)        # mid-unit: nothing of it written
        return real(*a, **k)

    def killed_while_saving(*a, **k):
        if sys.argv[1] == "save":
            os.kill(os.getpid(), signal.SIGKILL)        # mid-save: a temp dir left behind
    def interrupted_in_second_unit(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)         # Ctrl-C mid-unit, through the runner
        return real(*a, **k)

    if sys.argv[1] == "sigint":
        from hw1lib import run
        # as at a terminal: a shell without job control starts background jobs with
        # SIGINT ignored, and Python then never turns it into KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
        s1.fit_full_batch = interrupted_in_second_unit
        sys.exit(run.main(["--profile", "smoke", "--device", "cpu", "--only", "1-1a", "--jobs", "1",
                           "--no-progress", "--out", os.devnull]))
    s1.fit_full_batch = killed_in_second_unit
    units = e.units(e.make_config("smoke", "cpu"))
    units[0]()
    if sys.argv[1] == "save":
        cache.np.savez = killed_while_saving
    units[1]()
""")


@pytest.mark.parametrize("when", ["compute", "save", "sigint"])
def test_killed_or_interrupted_mid_unit_then_resume_gives_identical_arrays(tmp_path, monkeypatch, when):
    """SIGKILL while a unit computes or saves, or Ctrl-C through the runner
    (exit 130, a sentence saying how to resume): finished units are reused
    untouched and the result equals an uninterrupted run bit for bit."""
    env = {**os.environ, "HW1LIB_RESULTS": str(tmp_path / "results")}
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
    libs, own = provenance.dependencies(fit)
    assert {"hw1lib.train", "hw1lib.models", "hw1lib.ensemble", "hw1lib.functions"} <= set(libs)
    assert not set(libs) & provenance.NOT_COMPUTE and "_train_width" not in own
    before = {f: provenance.code_version(f) for f in (fit, width)}
    real = provenance._source.__wrapped__
    code, comment = "\n_EDITED = 1\n", "\n# edited\n"

    def versions(module, edit=code):
        monkeypatch.setattr(provenance, "_source", lambda m: real(m) + (edit if m == module else ""))
        provenance._parsed.cache_clear()
        provenance._version.cache_clear()
        return {f: provenance.code_version(f) for f in (fit, width)}

    assert versions("hw1lib.functions") == {fit: versions("hw1lib.functions")[fit], width: before[width]}
    assert versions("hw1lib.functions")[fit] != before[fit]        # 1-1a's target functions: 1-1a only
    assert versions("hw1lib.train") != before and all(versions("hw1lib.train")[f] != before[f] for f in before)
    assert versions("hw1lib.plotting") == before                    # presentation invalidates nothing
    assert versions("hw1lib.train", comment) == before              # a comment is not code
    monkeypatch.undo()
    provenance._parsed.cache_clear()
    provenance._version.cache_clear()


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
