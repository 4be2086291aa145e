#!/usr/bin/env bash
# `make setup`: a virtual environment with every package of the lock file and hw1lib itself,
# or one line saying why not. A failed or interrupted first setup leaves no half-made
# environment behind; a failed update keeps the working one (the next `make setup` retries).
# Usage: tools/setup.sh PYTHON VENV LOCK
set -uo pipefail
python="$1" venv="$2" lock="$3"

supported() { "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' >/dev/null 2>&1; }
version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "not runnable"; }

if [ -z "$python" ]; then
    echo "error: no Python 3.11, 3.12 or 3.13 found; install one, or run make PYTHON=/path/to/python3.x" >&2
    exit 1
fi
if ! supported "$python"; then
    echo "error: $python is Python $(version "$python"), and hw1lib supports 3.11 to 3.13; install one, or run make PYTHON=/path/to/python3.x" >&2
    exit 1
fi

made=0
if [ -e "$venv" ] && { [ ! -e "$venv/.installed" ] || ! supported "$venv/bin/python"; }; then
    echo "[setup] $venv was left unfinished or has no supported Python; making it again" >&2
    rm -rf "$venv"
fi
if [ ! -e "$venv" ]; then
    made=1
fi
fail() {
    trap - INT TERM
    if [ "$made" = 1 ]; then
        rm -rf "$venv"
        echo "error: make setup failed ($1); removed the unfinished $venv, nothing else changed" >&2
    else
        echo "error: make setup failed ($1); $venv is as it was, and the next make setup tries again" >&2
    fi
    exit 1
}
trap 'fail "interrupted"' INT TERM

if [ "$made" = 1 ]; then
    "$python" -m venv "$venv" || fail "$python -m venv"
fi
# uv installs the lock (hashes required, as pip would) several times faster than pip; where no uv wheel
# exists for this platform, pip installs it. --compile-bytecode, as pip does: without .pyc files every
# process compiles what it imports, each time where PYTHONDONTWRITEBYTECODE is set (import torch: 2.7 s,
# not 1.4 s; make test's subprocesses measured 120 s slower).
here="$(dirname "$0")"
if "$venv/bin/python" -m pip install --quiet --require-hashes -r "$here/uv.txt" >/dev/null 2>&1; then
    "$venv/bin/python" -m uv pip install --quiet --compile-bytecode --python "$venv/bin/python" --require-hashes -r "$lock" \
        || fail "installing $lock"
else
    "$venv/bin/python" -m pip install --quiet --require-hashes -r "$lock" || fail "installing $lock"
fi
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e . || fail "installing hw1lib"
# a save in JupyterLab of an unchanged notebook leaves no diff (.gitattributes names the filter)
git config filter.hw1lib-notebook.clean "$venv/bin/python -m hw1lib.nbclean" 2>/dev/null || true
git config filter.hw1lib-notebook.smudge cat 2>/dev/null || true
touch "$venv/.installed"
