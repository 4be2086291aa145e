"""Results cached under `results/<experiment>/<config hash>/`.

A cache entry is a directory holding `config.json`, `arrays.npz` (numpy
arrays, loaded with allow_pickle=False), optionally `weights.pt` (tensors,
loaded with weights_only=True) and `summary.json` (headline numbers). It is
written in a temporary directory and renamed into place, so an interrupted
run leaves no half-written entry: the next run simply recomputes it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import config_dict, config_hash
from .paths import results_dir


@dataclass
class Result:
    """What an experiment produces: arrays, optional tensors, a JSON summary."""
    arrays: dict[str, np.ndarray]
    summary: dict[str, Any]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    from_cache: bool = False
    path: Path | None = None


def entry_dir(experiment: str, config: Any) -> Path:
    return results_dir() / experiment / config_hash(config)


def save(experiment: str, config: Any, result: Result) -> Path:
    final = entry_dir(experiment, config)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config_dict(config), indent=2, sort_keys=True))
        np.savez(tmp / "arrays.npz", **result.arrays)
        if result.weights:
            torch.save({k: v.detach().cpu() for k, v in result.weights.items()}, tmp / "weights.pt")
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, sort_keys=True))
        if final.exists():  # a concurrent run finished first; keep ours as the newer
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.path = final
    return final


def exists(experiment: str, config: Any) -> bool:
    """Whether an entry for `config` is in place (summary.json is written last)."""
    return (entry_dir(experiment, config) / "summary.json").exists()


def load(experiment: str, config: Any) -> Result | None:
    path = entry_dir(experiment, config)
    if not exists(experiment, config):
        return None
    with np.load(path / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    weights = {}
    if (path / "weights.pt").exists():
        weights = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
    summary = json.loads((path / "summary.json").read_text())
    return Result(arrays, summary, weights, from_cache=True, path=path)


def cached(experiment: str, config: Any, compute: Callable[[], Result]) -> Result:
    """Load the entry for `config` if present, else compute and save it."""
    hit = load(experiment, config)
    if hit is not None:
        return hit
    result = compute()
    save(experiment, config, result)
    return result
