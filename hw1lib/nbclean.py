"""One canonical form for a committed notebook, so that saving an unchanged
notebook in JupyterLab leaves `git diff` empty.

What JupyterLab (or another kernel) changes on a save without changing
content, and this undoes: the kernelspec's display name, `language_info`'s
Python version, cell `execution` timestamps and papermill's metadata, widget
state and widget-view outputs (tqdm bars), `trusted` flags, execution counts
that are not 1, 2, 3, ... in cell order, and JSON layout.

    python -m hw1lib.nbclean < in.ipynb > out.ipynb   (the git filter `make setup` installs)
    python -m hw1lib.nbclean --check notebooks/*.ipynb  (make test: every committed notebook is canonical)
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def normalize(nb: dict) -> dict:
    """The canonical form of notebook `nb` (a new dict; `nb` is not changed)."""
    nb = copy.deepcopy(nb)
    meta = nb.setdefault("metadata", {})
    for key in ("papermill", "widgets"):
        meta.pop(key, None)
    if "kernelspec" in meta:
        meta["kernelspec"] = dict(KERNELSPEC)
    meta.get("language_info", {}).pop("version", None)
    count = 0
    for cell in nb.get("cells", []):
        cm = cell.setdefault("metadata", {})
        for key in ("papermill", "execution", "trusted", "collapsed", "scrolled"):
            cm.pop(key, None)
        if cell.get("cell_type") != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            data = out.get("data")
            if data and WIDGET_VIEW in data:
                rest = {k: v for k, v in data.items() if k != WIDGET_VIEW and k != "text/plain"}
                if not rest:
                    continue              # a progress bar: nothing of it is content
                out = {**out, "data": rest}
            outputs.append(out)
        cell["outputs"] = outputs
        if cell.get("execution_count") is not None:
            count += 1
            cell["execution_count"] = count
            for out in outputs:
                if out.get("output_type") == "execute_result":
                    out["execution_count"] = count
    return nb


def dumps(nb: dict) -> str:
    """JSON as Jupyter writes it (indent 1, unicode kept, sorted keys, final newline)."""
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", nargs="+", metavar="NOTEBOOK", help="fail naming any notebook not in canonical form")
    args = ap.parse_args(argv)
    if args.check:
        bad = [p for p in args.check if Path(p).read_text() != dumps(normalize(json.loads(Path(p).read_text())))]
        for p in bad:
            print(f"error: {p} is not in canonical form; run `python -m hw1lib.nbclean < {p}` or `make notebooks`.",
                  file=sys.stderr)
        return 1 if bad else 0
    sys.stdout.write(dumps(normalize(json.loads(sys.stdin.read()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
