"""Where the repo keeps data, cached results and figures.

Every path can be moved with an environment variable so that tests and
CI can point the library at a scratch directory.
"""
from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    return _ROOT


def data_dir() -> Path:
    return Path(os.environ.get("HW1LIB_DATA", _ROOT / "data"))


def results_dir() -> Path:
    return Path(os.environ.get("HW1LIB_RESULTS", _ROOT / "results"))


def figures_dir(profile: str) -> Path:
    """The committed `figures/` holds full-profile figures only; other
    profiles write to `build/figures/<profile>/` so a quick run can never
    overwrite the report's figures."""
    if "HW1LIB_FIGURES" in os.environ:
        return Path(os.environ["HW1LIB_FIGURES"])
    if profile == "full":
        return _ROOT / "figures"
    return _ROOT / "build" / "figures" / profile
