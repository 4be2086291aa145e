"""The committed notebooks are what runs when a user opens them: no injected
parameters, no machine paths, no volatile metadata."""
import json
import re

import pytest

from hw1lib.experiments import notebooks
from hw1lib.paths import repo_root


@pytest.mark.parametrize("name", notebooks())
def test_committed_notebook_has_no_injected_cell_nor_machine_paths(name):
    text = (repo_root() / "notebooks" / name).read_text()
    nb = json.loads(text)
    tags = [t for c in nb["cells"] for t in c.get("metadata", {}).get("tags", [])]
    assert "injected-parameters" not in tags, "papermill's cell would override the parameters cell"
    assert tags.count("parameters") == 1
    assert "papermill" not in nb["metadata"] and "widgets" not in nb["metadata"]
    for cell in nb["cells"]:
        assert not {"papermill", "execution"} & set(cell.get("metadata", {})), "volatile cell metadata"
    for machine in (str(repo_root()), "/home/", "/tmp/", "site-packages", "TqdmWarning"):
        assert machine not in text, f"{machine!r} in {name}"
    # no cache entry (config hash - code version): it would change whenever code changes
    assert not re.search(r"[0-9a-f]{16}-[0-9a-f]{16}", text), f"a cache path in {name}"


def test_clean_notebook_strips_what_must_not_be_committed(tmp_path):
    from hw1lib.report import clean_notebook

    nb = {"metadata": {"papermill": {"input_path": "/x/y.ipynb"}, "kernelspec": {"name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5,
          "cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"], "papermill": {"duration": 1},
                                                       "execution": {"iopub.status.idle": "t"}},
                     "source": "profile = 'quick'", "outputs": [], "execution_count": 1, "id": "a"},
                    {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                     "source": "profile = 'full'", "outputs": [], "execution_count": 2, "id": "b"}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    clean_notebook(path)
    out = json.loads(path.read_text())
    assert [c["id"] for c in out["cells"]] == ["a"]
    assert out["metadata"] == {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                              "name": "python3"}}
    assert out["cells"][0]["metadata"] == {"tags": ["parameters"]}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.subprocess
def test_make_lab_starts_and_serves_a_notebook_over_rest():
    """`make lab` as this user (root in most containers) starts JupyterLab, which
    serves a committed notebook through its contents API."""
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    port, token = _free_port(), "hw1lib-test-token"
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=repo_root(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    name = notebooks()[0]
    url = f"http://127.0.0.1:{port}/api/contents/{name}?token={token}"
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None, proc.stdout.read()
        assert body is not None, "JupyterLab did not answer within 90 s"
        assert body["name"] == name and body["type"] == "notebook"
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in body["content"]["cells"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def quick_site(tmp_path_factory):
    """The site of the committed (quick-profile) notebooks."""
    from hw1lib.site import export_html

    nbs = [repo_root() / "notebooks" / n for n in notebooks()]
    return export_html(nbs, tmp_path_factory.mktemp("site") / "html", {"profile": "quick", "device": "cpu",
                                                                       "git_commit": "abc", "started": "now"})


@pytest.mark.subprocess
def test_html_report_reads_offline_navigates_and_renders_math_and_tables(quick_site):
    nbs = [repo_root() / "notebooks" / n for n in notebooks()]
    tmp_path = quick_site.parent.parent
    index = quick_site
    text = index.read_text()
    assert "Profile <b>quick</b>" in text and 'href="results.html"' in text
    assert "These are the committed full-profile numbers" in (tmp_path / "html" / "results.html").read_text()
    assert "(the config this page ran with)</summary>" in (tmp_path / "html" / f"{nbs[-1].stem}.html").read_text()
    pages = sorted((tmp_path / "html").glob("*.html"))
    assert {p.name for p in pages} == {f"{nb.stem}.html" for nb in nbs} | {"index.html", "results.html"}
    for p in pages:
        page = p.read_text()
        # nothing is fetched from the network: no remote script, stylesheet or module import
        assert not re.search(r"""<(?:script|link)[^>]*(?:src|href)=["']https?://""", page), p.name
        assert not re.search(r"""\bfrom\s+["']https?://""", page), p.name
        assert not re.search(r"""\bimport\s*\(\s*["']https?://""", page), p.name     # mermaid's, never fired
        assert "img{max-width:100%" in page, p.name                 # figures scale to the column
        assert "<b>quick profile</b>" in page and "Results (full profile)" in page, p.name
        # a reader sees no working output: no config dumped as one line, no "saved <path>" lines, and no
        # output line wider than a 1280 px column holds in monospace (about 120 characters)
        import html as _html
        for pre in re.findall(r"<pre>(.*?)</pre>", page, re.S):
            lines = _html.unescape(re.sub("<[^>]+>", "", pre)).splitlines()
            assert not [x for x in lines if len(x) > 120 or x.startswith("saved ")], (p.name, lines[:3])
        assert 'href="index.html"' in page and 'href="results.html"' in page, p.name
        assert "../RESULTS.md" not in page, p.name
        assert not re.search(r"<p>\s*\|", page), f"{p.name}: a table rendered as a paragraph of pipes"
    for i, nb in enumerate(nbs):
        page = (tmp_path / "html" / f"{nb.stem}.html").read_text()
        assert f'href="{nb.stem}.html"' in text
        assert "data:image/png" in page                         # the figures are in the page
        code = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert "".join(code["source"]).strip().splitlines()[0] not in page   # inputs hidden
        if i + 1 < len(nbs):
            assert f'href="{nbs[i + 1].stem}.html" rel="next"' in page
        if i:
            assert f'href="{nbs[i - 1].stem}.html" rel="prev"' in page
        source_math = sum("$" in "".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                          if c["cell_type"] == "markdown")
        assert page.count("<math") >= source_math, nb.name       # every formula is MathML
    results_page = (tmp_path / "html" / "results.html").read_text()
    assert results_page.count("<table>") >= 10
    for src in re.findall(r'src="([^"]+)"', results_page):             # every figure is in the site
        assert (tmp_path / "html" / src).is_file(), src


@pytest.mark.subprocess
def test_the_site_fits_a_1280_px_window_in_a_headless_browser(quick_site, tmp_path):
    """Every page of the quick-profile site, opened in headless Chromium at 1280 px (two pages at a time):
    no figure wider than its column, no output line wider than its column, nothing loaded from the network,
    no horizontal scroll (a wider window only widens the column: what fits at 1280 px fits wider). The same
    probe fails a results page without the site's fit rule, with a 300-character output line and a remote
    script (so it can fail)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from browser import chromium, layout

    if chromium() is None:
        if os.environ.get("HW1LIB_REQUIRE_BROWSER"):
            pytest.fail("HW1LIB_REQUIRE_BROWSER is set and no chromium is installed (Debian: apt-get install chromium)")
        pytest.skip("no headless browser here (Debian: apt-get install chromium); CI installs one")
    site = quick_site.parent
    pages = sorted(site.glob("*.html"))
    with ThreadPoolExecutor(2) as pool:
        seen_all = list(pool.map(layout, pages))
    for page, seen in zip(pages, seen_all):
        assert seen["width"] == 1280, (page.name, seen)
        assert not (seen["overflow"] or seen["wide_images"] or seen["wide_lines"] or seen["remote"]), (page.name, seen)
        if page.stem != "index":
            assert seen["images"] > 0, (page.name, seen)
    broken = tmp_path / "results.html"
    (tmp_path / "figures").symlink_to(site / "figures")
    broken.write_text((site / "results.html").read_text().replace("img{max-width:100%;height:auto}", "").replace(
        "</body>", "<pre>" + "x" * 300 + '</pre><script src="https://cdn.example.org/x.js"></script></body>'))
    seen = layout(broken, 1280)
    assert seen["overflow"] and seen["wide_lines"] and seen["remote"] == ["https://cdn.example.org/x.js"] * 2
    assert len(seen["wide_images"]) > 10, seen           # the figures saved wider than the column


def test_math_becomes_mathml_and_dollars_that_are_not_math_stay():
    from hw1lib.site import math_to_mathml

    out = math_to_mathml(r"a $\|\nabla L\|^2$ b $$\theta_k$$ c")
    assert out.count("<math") == 2 and "$" not in out and 'display="block"' in out
    assert math_to_mathml("costs 5 dollars") == "costs 5 dollars"


def test_every_generated_table_renders_as_a_table_in_the_report_engine():
    """The blocks go to the README, RESULTS.md and the notebooks (nbconvert's
    markdown engine, mistune): every table of every block must come out as an
    HTML table with all its header cells (a `|` inside a cell is escaped)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from hw1lib.tables import RESULTS_MD, blocks

    results = json.loads((repo_root() / "figures" / "results.json").read_text())
    texts = {**blocks(results), "RESULTS.md": (repo_root() / RESULTS_MD).read_text()}
    for name, block in texts.items():
        html = markdown2html_mistune(block)
        lines = block.splitlines()
        headers = [line for line, nxt in zip(lines, lines[1:]) if line.startswith("|") and nxt.startswith("| ---")]
        assert html.count("<table>") == len(headers), name
        assert html.count("<th>") == sum(len(re.split(r"(?<!\\)\|", h)) - 2 for h in headers), name
        assert not re.search(r"<p>\s*\|", html), name


def test_committed_notebooks_are_canonical_and_a_jupyterlab_save_changes_nothing():
    """What JupyterLab changes on saving an unchanged notebook (kernel display
    name, Python version, timestamps, widget state and progress-bar outputs,
    trusted flags) is undone by the git filter `make setup` installs."""
    from hw1lib.nbclean import dumps, normalize

    for name in notebooks():
        text = (repo_root() / "notebooks" / name).read_text()
        nb = json.loads(text)
        assert dumps(normalize(nb)) == text, f"{name} is not canonical"
        saved = json.loads(text)
        saved["metadata"]["kernelspec"]["display_name"] = "Python 3 (hw1lib venv)"
        saved["metadata"].setdefault("language_info", {})["version"] = "3.12.9"
        saved["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        for cell in saved["cells"]:
            cell["metadata"]["trusted"] = True
            if cell["cell_type"] == "code":
                cell["metadata"]["execution"] = {"iopub.status.idle": "2026-11-30T20:00:00Z"}
                cell["outputs"].insert(0, {"output_type": "display_data", "metadata": {},
                                           "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                    "text/plain": "  0%|          | 0/10"}})
        assert dumps(normalize(saved)) == text, name
        assert (repo_root() / ".gitattributes").read_text().count("filter=hw1lib-notebook")


@pytest.mark.subprocess
@pytest.mark.parametrize("argv,message", [
    (["--device", "tpu"], "error: Unknown device 'tpu'"),
    (["9-9"], "error: Unknown experiment or notebook '9-9'"),
    (["--set", "1-3d.sedes=0,1"], "error: Unknown BatchSweepConfig key(s) sedes"),
    (["--set", "1-3d.seeds=-1"], "error: BatchSweepConfig.seeds = -1: must be an integer >= 0"),
])
def test_report_cli_user_errors_are_one_sentence(argv, message):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "hw1lib.report", *argv], cwd=repo_root(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith(message) and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.subprocess
def test_verify_fails_when_a_headline_moves_beyond_its_tolerance(tmp_path, monkeypatch, capsys):
    """The quick profile's numbers are checked as numbers, within tolerances
    (hw1lib.verify), not as printed digits: the committed values pass; the same
    file with one headline moved by twice its tolerance fails (exit 1). In this
    process: the command line's own path, without starting Python twice."""
    from hw1lib import verify
    from hw1lib.verify import REFERENCE, family_spread, tolerance

    ref = json.loads((repo_root() / REFERENCE["quick"]).read_text())
    metric = ref["checks"]["1-2b"]["function/grad_norm_last10"]
    tol, _ = tolerance(metric["values"], metric["scale"], family_spread("quick").get(metric["family"]))
    (tmp_path / "same.json").write_text(json.dumps(ref))
    metric["values"] = [v * 10 ** (2 * tol) for v in metric["values"]]      # log scale: a factor of 10^(2 tol)
    (tmp_path / "moved.json").write_text(json.dumps(ref))
    monkeypatch.setenv("HW1LIB_RESULTS", str(repo_root() / "results"))     # the quick profile make test computed
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    for name, expect in (("same.json", 0), ("moved.json", 1)):
        got = verify.main(["--profile", "quick", "--only", "1-2b", "--cached", "--reference", str(tmp_path / name),
                           "--no-progress"])
        out = capsys.readouterr().out
        assert got == expect, out[-3000:]
    assert "function/grad_norm_last10" in out and "OUTSIDE" in out