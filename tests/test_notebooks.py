"""The committed notebooks are what runs when a user opens them: no injected
parameters, no machine paths, no volatile metadata."""
import json

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
