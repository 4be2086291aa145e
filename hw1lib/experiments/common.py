"""What every experiment module shares: resolving the device, units, stacking."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .. import cache
from ..device import resolve_device
from ..provenance import code_version


def resolved(cfg):
    """The config with device "auto" replaced by the device actually used, so
    that results from a CPU and a GPU never share a cache entry; a nested config
    (the models an experiment reads) goes on the same device, since they must
    live where it computes."""
    device = resolve_device(cfg.device).type
    nested = {f.name: dataclasses.replace(v, device=device) for f in dataclasses.fields(cfg)
              if dataclasses.is_dataclass(v := getattr(cfg, f.name)) and hasattr(v, "device")}
    return dataclasses.replace(cfg, device=device, **nested)


@dataclass(frozen=True)
class Unit:
    """One independently computable, separately cached piece of an experiment
    (a depth, a width, a batch size, or a whole small experiment).

    `compute(config, progress) -> cache.Result` is a module-level function and
    `config` a frozen dataclass, so a unit pickles: a process pool or a cluster
    executor can run it elsewhere, over a shared results directory.
    """
    key: str
    config: Any
    compute: Callable[[Any, bool], cache.Result]

    @property
    def version(self) -> str:
        """The code version of `compute` (part of the cache key)."""
        return code_version(self.compute)

    def __call__(self, progress: bool = False) -> cache.Result:
        return cache.cached(self.key, self.config, lambda: self.compute(self.config, progress),
                            version=self.version)

    def is_cached(self) -> bool:
        return cache.exists(self.key, self.config, self.version)

    def __str__(self) -> str:
        return f"{self.key}/{cache.entry_dir(self.key, self.config, self.version).name}"


def split_units(key: str, cfg, field: str, compute: Callable) -> list[Unit]:
    """One unit per value of the tuple field `field` (a depth, a width, a batch
    size), so an interrupted report resumes at the unit it was computing and
    independent units can run concurrently."""
    return [Unit(key, dataclasses.replace(cfg, **{field: (v,)}), compute) for v in getattr(cfg, field)]


def run_units(units: list[Unit], progress: bool) -> list[cache.Result]:
    return [u(progress) for u in units]


def stack_units(parts: list[cache.Result], keys=None) -> dict:
    """Stack the units' arrays along a new leading axis (one row per unit)."""
    return {k: np.stack([p.arrays[k] for p in parts]) for k in (keys or parts[0].arrays)}


def final_metrics(hist: dict) -> dict:
    """The last evaluation of a fit_classifier history: {train,test}_{loss,acc} [N]."""
    return {k: hist[k][-1] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
