"""What declares an experiment, and the units it computes in.

An experiment module declares each of its experiments once, as an
`Experiment`: config dataclass and profiles, the compute function of one unit
and the fields units split on, how units assemble, its headline numbers, its
generated text block, its checked metrics and the published result it is
compared with. `hw1lib.experiments.REGISTRY` lists the declarations; the
runner, the report, `tables`, `verify`, the benchmarks and the tests read
everything from there.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .. import cache, exact
from ..config import make_config
from ..device import resolve_device
from ..errors import ConfigError
from ..provenance import code_version


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
        """The code version of `compute` (part of the cache key), marked when
        computed in exact mode (`hw1lib.exact`): its last bits are another mode's."""
        return exact.marked(code_version(self.compute))

    def __call__(self, progress: bool = False) -> cache.Result:
        return cache.cached(self.key, self.config, lambda: self.compute(self.config, progress),
                            version=self.version)

    def is_cached(self) -> bool:
        """Its entry is in place and sound (checked as a load checks it, nothing
        decoded: a damaged one is set aside here, so that it is recomputed like
        any missing unit)."""
        return cache.sound(self.key, self.config, self.version)

    def __str__(self) -> str:
        return f"{self.key}/{cache.entry_dir(self.key, self.config, self.version).name}"


def split_units(key: str, cfg, fields: tuple[str, ...], compute: Callable) -> list[Unit]:
    """One unit per combination of values of the tuple fields `fields` (a depth,
    a width, a batch size; the first field varies slowest), so an interrupted
    report resumes at the unit it was computing and independent units can run
    concurrently. No fields: the whole config is one unit."""
    combos = itertools.product(*(getattr(cfg, f) for f in fields))
    return [Unit(key, dataclasses.replace(cfg, **{f: (v,) for f, v in zip(fields, combo)}), compute)
            for combo in combos]


def stack_units(parts: list[cache.Result], keys=None) -> dict:
    """Stack the units' arrays along a new leading axis (one row per unit)."""
    return {k: np.stack([p.arrays[k] for p in parts]) for k in (keys or parts[0].arrays)}


def only_unit(cfg, parts: list[cache.Result]) -> cache.Result:
    """The assembly of an experiment that is one unit: that unit's result."""
    (part,) = parts
    return part


def _device_ready(cfg) -> None:
    """Configs carry a resolved device ("cpu", "cuda", "cuda:N"), and a nested
    config the same one: built by `Experiment.make_config`, the one place that
    resolves it. Anything else is refused here, not resolved again."""
    device = getattr(cfg, "device", "cpu")
    nested = [getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if dataclasses.is_dataclass(getattr(cfg, f.name)) and hasattr(getattr(cfg, f.name), "device")]
    if (device not in ("cpu", "cuda") and not str(device).startswith("cuda:")) or \
            any(n.device != device for n in nested):
        raise ConfigError(f"{type(cfg).__name__}.device = {device!r} (nested: {[n.device for n in nested]}) is not "
                          "one resolved device; build the config with experiment(NAME).make_config(profile, device), "
                          "which resolves it once.")


@dataclass(frozen=True)
class Experiment:
    """One experiment of the report, declared in its own module.

    name: the id `--only` and `--set` take; title; notebook: file name in notebooks/.
    config, profiles: the config dataclass and its named profiles (smoke, quick, full).
    key, compute, split: units are `compute(unit_config, progress) -> Result`,
      cached under results/<key>/, one per combination of values of the tuple
      fields `split` (none: one unit); `plan(cfg) -> [Unit]` instead where the
      units are not values of fields.
    assemble(cfg, [unit results]) -> Result: the experiment's result (cheap, not cached).
    headline(result, cfg) -> dict; block(headline) -> markdown; checks(result, cfg)
      -> {metric: Check}; published: (who, what) it is compared with; summary(headline)
      -> its one-line result for the README's table. See hw1lib.headline.
    Its figures and what the full profile's numbers say in words are written
    once, in its notebook (`hw1lib.tables.notebook_parts` reads them for RESULTS.md).
    reads: (field, experiment) pairs: that field of its config is the other
      experiment's config for the same profile and `--set`s, not a copy (1-3e's
      `sweep` is 1-3d's), so a change of one reaches both; its units read that
      experiment's cached results, which are computed first.
    after: experiments whose cached results its units read (computed first;
      `reads` adds its own).
    host: it computes on the CPU whatever device a run or notebook asks for
      (1-2c: float64 Hessians and eigendecompositions of 141 x 141 matrices, a
      chain of small dependent steps that is latency-bound on a GPU: a 10-run
      block took 82-94 s on an H200 shared with 5 others, about 43 s on one CPU
      thread; benchmarks/README.md).
    """
    name: str
    title: str
    notebook: str
    config: type
    profiles: Mapping[str, Mapping[str, Any]]
    key: str
    compute: Callable[[Any, bool], cache.Result] | None
    headline: Callable[[cache.Result, Any], dict]
    block: Callable[[dict], str]
    checks: Callable[[cache.Result, Any], dict]
    assemble: Callable[[Any, list[cache.Result]], cache.Result] = only_unit
    split: tuple[str, ...] = ()
    plan: Callable[[Any], list[Unit]] | None = None
    published: tuple[str, str] | None = None
    summary: Callable[[dict], str] | None = None
    reads: tuple[tuple[str, "Experiment"], ...] = ()
    after: tuple[str, ...] = ()
    host: bool = False

    def __post_init__(self):
        object.__setattr__(self, "after", tuple(dict.fromkeys(self.after + tuple(e.name for _, e in self.reads))))
        # units come from (key, compute, split) or from a plan, never both: an unused one would mislead
        if (self.plan is None) == (self.compute is None) or (self.plan is None) != bool(self.key):
            raise ValueError(f"Experiment {self.name}: give key and compute, or a plan, not both.")

    def make_config(self, profile: str = "quick", device: str = "auto",
                    sets: Mapping[str, Mapping[str, Any]] | None = None, **overrides):
        """The config of `profile` with the `--set`s of every experiment (`sets`:
        {name: {field: value}}, what `--set` and a notebook's `overrides` give)
        and `overrides` of its own, its device resolved here, once ("cpu" for a
        host experiment); nested configs go on the same device. A field it
        `reads` is the other experiment's config, built the same way."""
        sets = sets or {}
        if sets:
            from . import REGISTRY        # (the registry imports this module)

            unknown = sorted(set(sets) - {e.name for e in REGISTRY})
            if unknown:
                raise ConfigError(f"overrides for unknown experiment(s) {', '.join(map(repr, unknown))}; choose from: "
                                  f"{', '.join(e.name for e in REGISTRY)}.")
        dev = "cpu" if self.host else str(resolve_device(device))
        fields = {**sets.get(self.name, {}), **overrides}
        for field, other in self.reads:
            given = [k for k in fields if k == field or k.startswith(field + ".")]
            if given:
                raise ConfigError(f"{self.name}.{given[0]}: {self.name}'s {field} is {other.name}'s config "
                                  f"({self.name} reads {other.name}'s models); set it there, e.g. --set "
                                  f"{other.name}.{given[0].partition('.')[2] or 'FIELD'}=VALUE, and both use it.")
            fields[field] = other.make_config(profile, dev, sets)
        return make_config(self.config, self.profiles, profile, device=dev, **fields)

    def units(self, cfg) -> list[Unit]:
        """The independently computed, separately cached pieces of `cfg`."""
        _device_ready(cfg)
        if hasattr(cfg, "check"):
            cfg.check()
        return self.plan(cfg) if self.plan else split_units(self.key, cfg, self.split, self.compute)

    def run(self, cfg, progress: bool = True) -> cache.Result:
        """The experiment's result: its units (loaded, or computed and cached), assembled."""
        parts = [u(progress) for u in self.units(cfg)]
        result = self.assemble(cfg, parts)
        result.from_cache = all(p.from_cache for p in parts)      # nothing was computed to get it
        return result

    def headlines(self, cfg, result: cache.Result | None = None) -> dict:
        """Its headline numbers for `cfg`, from `result` (default: from the cache,
        computed if missing)."""
        return self.headline(result if result is not None else self.run(cfg, progress=False), cfg)

    def text(self, cfg, result: cache.Result | None = None) -> str:
        """Its generated block for `cfg` (from `result` if given): what its notebook
        shows under the figures."""
        return self.block(self.headlines(cfg, result))
