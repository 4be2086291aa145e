"""The committed notebooks are what runs when a user opens them: no injected
parameters, no machine paths, no volatile metadata."""
import json
import os

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
    assert out["metadata"] == {"kernelspec": {"name": "python3"}}
    assert out["cells"][0]["metadata"] == {"tags": ["parameters"]}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def test_html_export_has_an_index_and_hides_inputs(tmp_path):
    from hw1lib.report import export_html

    nbs = [repo_root() / "notebooks" / n for n in notebooks()[:2]]
    index = export_html(nbs, tmp_path / "html", {"profile": "quick", "device": "cpu", "git_commit": "abc",
                                                 "started": "now"})
    text = index.read_text()
    for nb in nbs:
        assert f'href="{nb.stem}.html"' in text
        page = (tmp_path / "html" / f"{nb.stem}.html").read_text()
        assert "data:image/png" in page                         # the figures are in the page
        code = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert "".join(code["source"]).strip().splitlines()[0] not in page   # inputs hidden
    assert "Profile <b>quick</b>" in text


@pytest.mark.parametrize("argv,message", [
    (["--device", "tpu"], "error: Unknown device 'tpu'"),
    (["9-9"], "error: Unknown experiment or notebook '9-9'"),
])
def test_report_cli_user_errors_are_one_sentence(argv, message):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "hw1lib.report", *argv], cwd=repo_root(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith(message) and len(p.stderr.strip().splitlines()) == 1


def test_verify_fails_when_a_headline_moves_beyond_its_tolerance(tmp_path):
    """The quick profile's numbers are checked as numbers, within tolerances
    (hw1lib.verify), not as printed digits: the committed values pass; the same
    file with one headline moved by twice its tolerance fails (exit 1)."""
    import subprocess
    import sys

    from hw1lib.verify import REFERENCE, family_spread, tolerance

    ref = json.loads((repo_root() / REFERENCE["quick"]).read_text())
    metric = ref["checks"]["1-2b"]["function/grad_norm_last10"]
    tol, _ = tolerance(metric["values"], metric["scale"], family_spread().get(metric["family"]))
    (tmp_path / "same.json").write_text(json.dumps(ref))
    metric["values"] = [v * 10 ** (2 * tol) for v in metric["values"]]      # log scale: a factor of 10^(2 tol)
    (tmp_path / "moved.json").write_text(json.dumps(ref))
    env = {**os.environ, "HW1LIB_RESULTS": str(repo_root() / "results"), "CUDA_VISIBLE_DEVICES": ""}
    for name, expect in (("same.json", 0), ("moved.json", 1)):
        p = subprocess.run([sys.executable, "-m", "hw1lib.verify", "--profile", "quick", "--only", "1-2b", "--cached",
                            "--reference", str(tmp_path / name), "--no-progress"], cwd=repo_root(), env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == expect, p.stdout[-3000:] + p.stderr[-2000:]
    assert "function/grad_norm_last10" in p.stdout and "OUTSIDE" in p.stdout
