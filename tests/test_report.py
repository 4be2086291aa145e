"""Drills on the report: every notebook renders in the smoke profile (whatever
its numbers), nothing half-written is published, `make html` exports exactly
one complete report or says what is missing, a one-section render updates the
report, Ctrl-C stops a render promptly and quietly, and paths from the
environment are resolved once, against the directory a command started in."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw1lib.data import sha256
from hw1lib.experiments import notebooks
from hw1lib.paths import repo_root

ROOT = repo_root()


def _cmd(args, env, cwd, timeout=600):
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smoke_cache):
    """The smoke profile computed and every notebook rendered from a directory
    that is not the repository, with the paths given as a user would type them:
    relative (results, build) and with `~` (figures). The session's smoke cache
    is copied there first, all but 1-2d's entry (its key `surface`), which the
    runner computes into ./res: the smoke profile is not computed twice."""
    import shutil

    home = tmp_path_factory.mktemp("smoke")
    shutil.copytree(smoke_cache / "results", home / "res", ignore=lambda d, names: ["surface"] if d == str(
        smoke_cache / "results") else [])
    env = {**os.environ, "HOME": str(home), "HW1LIB_RESULTS": "res", "HW1LIB_BUILD": "out",
           "HW1LIB_FIGURES": "~/figs", "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg"}
    run = _cmd(["-m", "hw1lib.run", "--profile", "smoke", "--device", "cpu", "--jobs", "2", "--no-progress"],
               env, home)
    assert run.returncode == 0, run.stdout + run.stderr
    entries = sorted(p.relative_to(home) for p in (home / "res").rglob("meta.json"))
    report = _cmd(["-m", "hw1lib.report", "--profile", "smoke", "--device", "cpu", "--jobs", "2"], env, home)
    return {"home": home, "env": env, "entries": entries, "run": run, "report": report}


def _record(home: Path) -> dict:
    return json.loads((home / "out" / "run_record.json").read_text())


def _html(smoke):
    return _cmd(["-m", "hw1lib.report", "--html"], smoke["env"], smoke["home"])


@pytest.mark.subprocess
def test_every_notebook_renders_in_the_smoke_profile(smoke):
    """No run of 1-2c reaches its tolerance in the smoke profile (all-NaN ratios on a log axis): the
    figure says so instead of failing. Every notebook of the report renders."""
    home, report = smoke["home"], smoke["report"]
    assert report.returncode == 0, report.stdout + report.stderr
    rec = _record(home)
    assert rec["settings"]["profile"] == "smoke"
    assert sorted(rec["notebooks"]) == sorted(notebooks())
    for name, e in rec["notebooks"].items():
        nb = json.loads((home / "out" / e["path"]).read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, name
    assert list((home / "figs").glob("*.png"))
    # every output file has one mode, the umask respected (executed notebooks were mkstemp's 0600)
    mask = os.umask(0)
    os.umask(mask)
    outputs = [p for d in ("out", "figs", "res") for p in (home / d).rglob("*")
               if p.is_file() and not p.name.startswith(".")]
    assert outputs and {oct(p.stat().st_mode & 0o777) for p in outputs} == {oct(0o666 & ~mask)}


@pytest.mark.subprocess
def test_relative_and_home_paths_are_resolved_once_for_every_process(smoke):
    """HW1LIB_RESULTS=res from another directory: the runner fills ./res and the notebooks (whose kernels run
    in notebooks/) read that same cache instead of recomputing into notebooks/res; `~/figs` is $HOME/figs,
    not a directory named `~`."""
    home = smoke["home"]
    assert smoke["entries"] and sorted(p.relative_to(home) for p in (home / "res").rglob("meta.json")) == \
        smoke["entries"]                                   # rendering computed nothing more
    assert any(p.parts[1] == "surface" for p in smoke["entries"])     # the runner wrote 1-2d's entry there
    assert not (ROOT / "notebooks" / "res").exists() and not (ROOT / "notebooks" / "out").exists()
    assert not (home / "~").exists() and (home / "figs").is_dir()
    assert str(home / "res") in smoke["run"].stdout      # the runner says where the results are
    # a child started elsewhere inherits the absolute path
    child = _cmd(["-c", "import hw1lib.paths, os, subprocess, sys; print(os.environ['HW1LIB_RESULTS']); "
                        "sys.stdout.flush(); subprocess.run([sys.executable, '-c', 'import hw1lib.paths as p; "
                        "print(p.results_dir())'], cwd='/')"], smoke["env"], home)
    assert child.stdout.split() == [str(home / "res")] * 2, child.stdout + child.stderr


@pytest.mark.subprocess
def test_html_exports_the_complete_report(smoke):
    out = _html(smoke)
    assert out.returncode == 0, out.stderr
    site = smoke["home"] / "out" / "html"
    assert {p.name for p in site.glob("*.html")} == {Path(n).stem + ".html" for n in notebooks()} | {
        "index.html", "results.html"}
    assert "Profile <b>smoke</b>" in (site / "index.html").read_text()


def _render(smoke, *names, extra=()):
    return _cmd(["-m", "hw1lib.report", "--profile", "smoke", "--device", "cpu", *extra, *names],
                smoke["env"], smoke["home"])


@pytest.mark.subprocess
def test_killed_render_publishes_nothing_half_written(smoke):
    """SIGKILL while a notebook renders: its executed file is the earlier complete one (the new one was
    being written under a temporary name), the record still describes what is on disk, and `make html`
    exports the one complete report."""
    home, env = smoke["home"], smoke["env"]
    before = _record(home)["notebooks"]
    proc = subprocess.Popen([sys.executable, "-m", "hw1lib.report", "--profile", "smoke", "--device", "cpu",
                             "1-1a,1-1b"], env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    assert "started" in proc.stdout.readline()
    time.sleep(4)                                   # inside the first notebook's execution
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    rec = _record(home)
    for name, e in rec["notebooks"].items():
        path = home / "out" / e["path"]
        json.loads(path.read_text())                # whole notebooks only
        assert sha256(path) == e["sha256"], name
    assert sorted(rec["notebooks"]) == sorted(before)
    assert _html(smoke).returncode == 0
    left = list((home / "out" / "notebooks").glob(".*.rendering.ipynb"))
    assert left                                     # the killed render's temporary ...
    again = _render(smoke, "1-2b")
    assert again.returncode == 0 and "left by a render that was killed" in again.stdout, again.stdout
    assert not list((home / "out" / "notebooks").glob(".*.rendering.ipynb"))   # ... removed by the next render


@pytest.mark.subprocess
def test_a_render_that_cannot_write_stops_with_one_sentence_and_publishes_nothing_partial(smoke):
    """A write limit (here `ulimit -f`; a full disk is the same error path) while notebooks render: one
    message naming the directory and the errno, no traceback, the other queued notebooks not started,
    no truncated notebook under any name, and the record still describes what is on disk."""
    import resource

    home, env = smoke["home"], smoke["env"]
    before = _record(home)["notebooks"]
    limit = 40_000                       # bytes: below every executed notebook with a figure

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run([sys.executable, "-m", "hw1lib.report", "--profile", "smoke", "--device", "cpu",
                          "1-2b,1-3b"], env=env, cwd=home, capture_output=True, text=True, timeout=300,
                         preexec_fn=limited)
    assert out.returncode == 2, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot write" in errors[0] and "[Errno 27]" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout.count("started") == 1, out.stdout         # the queue stopped at the first
    for p in (home / "out" / "notebooks").glob("*.ipynb"):
        json.loads(p.read_text())                               # whole notebooks only, failed ones included
    rec = _record(home)
    assert sorted(rec["notebooks"]) == sorted(before)
    for name, e in rec["notebooks"].items():
        assert sha256(home / "out" / e["path"]) == e["sha256"], name


@pytest.mark.subprocess
def test_failed_section_is_missing_until_rendered_again_and_a_section_updates_the_report(smoke, tmp_path):
    home = smoke["home"]
    name = next(n for n in notebooks() if n.startswith("1-2d"))      # a notebook that renders in seconds
    broken = tmp_path / name
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    nb["cells"].insert(0, {"cell_type": "code", "execution_count": None, "id": "boom", "metadata": {},
                           "outputs": [], "source": "raise RuntimeError('a failing cell')"})
    broken.write_text(json.dumps(nb))
    failed = _render(smoke, str(broken))
    assert failed.returncode == 1 and "FAILED" in failed.stderr
    out = _html(smoke)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{name}: its last render failed" in out.stderr
    assert f"NB={name.split('_')[0]}" in out.stderr      # says how to render what is missing
    again = _render(smoke, name.split("_")[0])
    assert again.returncode == 0, again.stderr
    rec = _record(home)
    assert sorted(rec["notebooks"]) == sorted(notebooks())   # updated, not replaced by one section
    assert _html(smoke).returncode == 0


@pytest.mark.subprocess
def test_damaged_record_is_one_sentence(smoke):
    path = smoke["home"] / "out" / "run_record.json"
    saved = path.read_text()
    try:
        path.write_text("")
        out = _html(smoke)
        assert out.returncode == 2 and "damaged" in out.stderr and "Traceback" not in out.stderr
    finally:
        path.write_text(saved)


@pytest.mark.subprocess
def test_ctrl_c_stops_a_render_promptly_and_quietly(smoke):
    """Ctrl-C at a terminal (SIGINT to the whole process group) during a 2-job render: exit 130 within
    seconds, no traceback, no notebook started after it, no process (kernels included) left behind."""
    home, env = smoke["home"], smoke["env"]
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, "
                             "signal.default_int_handler); from hw1lib.errors import command; "
                             "from hw1lib.report import main; command(main, sys.argv[1:])",
                             "--profile", "smoke", "--device", "cpu", "--jobs", "2"], env=env, cwd=home,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = proc.stdout.readline()
    assert "started" in first
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.time()
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert time.time() - t0 < 10
    assert "Traceback" not in err and "interrupted" in err, err
    assert (first + out).count("started") <= 2, out     # the two that were running; nothing queued started
    time.sleep(1)
    left = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(proc.pid)], capture_output=True,
                          text=True).stdout.splitlines()
    assert not [p for p in left if "Z" not in p.split()[1]], left    # (an exited one not yet reaped is gone)


@pytest.mark.parametrize("xs,ys", [
    ([], []),                                   # nothing at all
    ([float("nan")] * 3, [1e-3, 1e-2, 1e-1]),   # all NaN (1-2c in the smoke profile)
    ([0.5], [0.0]),                             # a single point, not positive on a log axis
    ([0.2, 0.4], [1e-3, 1e-2]),                 # ordinary data: left as is
])
def test_every_panel_saves_whatever_its_data(tmp_path, monkeypatch, xs, ys, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hw1lib.plotting import save_figure

    monkeypatch.setenv("HW1LIB_FIGURES", str(tmp_path))
    fig, (a, b) = plt.subplots(1, 2)
    a.scatter(xs, ys)
    a.set(yscale="log", xscale="log", title="panel")
    b.plot([1, 2], [1, 2])
    save_figure(fig, "f", "smoke")
    plt.close(fig)
    png = (tmp_path / "f.png").read_bytes()
    assert png.startswith(b"\x89PNG") and not list(tmp_path.glob(".f-*"))   # whole, no temporary left
    said = capsys.readouterr().out
    ordinary = len(xs) == 2
    assert ("panel 'panel'" in said) != ordinary
    assert (a.get_yscale() == "log") == ordinary
