"""One module per report section: config dataclass, PROFILES, run function."""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from .. import cache
from ..device import resolve_device


def resolved(cfg):
    """The config with device "auto" replaced by the device actually used, so
    that results from a CPU and a GPU never share a cache entry."""
    return dataclasses.replace(cfg, device=resolve_device(cfg.device).type)


def stack_units(parts: list[cache.Result], keys=None) -> dict:
    """Stack the units' arrays along a new leading axis (one row per unit)."""
    return {k: np.stack([p.arrays[k] for p in parts]) for k in (keys or parts[0].arrays)}


def final_metrics(hist: dict) -> dict:
    """The last evaluation of a fit_classifier history: {train,test}_{loss,acc} [N]."""
    return {k: hist[k][-1] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}


def per_unit(experiment: str, cfg, field: str, compute_one: Callable, progress: bool) -> list[cache.Result]:
    """One cache entry per value of the tuple field `field` (a depth, a width, a
    batch size), so an interrupted report resumes at the unit it was computing."""
    out = []
    for v in getattr(cfg, field):
        one = dataclasses.replace(cfg, **{field: (v,)})
        out.append(cache.cached(experiment, one, lambda one=one: compute_one(one, progress)))
    return out
