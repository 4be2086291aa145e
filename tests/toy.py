"""A toy experiment, declared in one place like the report's: the registry,
the runner, the executors, headlines, tables and verify are tested on it,
in seconds. A module of its own so that worker processes (a process pool,
Dask) can import its compute function when they unpickle a unit."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hw1lib import cache
from hw1lib.experiments.common import Experiment, stack_units
from hw1lib.headline import Check, ci, fmt_m, md_table, vals


@dataclass(frozen=True)
class ToyConfig:
    sizes: tuple[int, ...] = (2, 3)
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "auto"


def _toy_compute(cfg: ToyConfig, progress: bool) -> cache.Result:
    """Per seed: the size, plus a small float32 computation (a 64 x n product,
    a tanh and a mean) that rounds like the real units do."""
    (n,) = cfg.sizes
    rng = np.random.default_rng([n, *cfg.seeds])
    g = torch.Generator().manual_seed(n)
    x, w = torch.randn(len(cfg.seeds), 64, n, generator=g), torch.randn(n, 1, generator=g)
    wiggle = (x @ w).tanh().mean((1, 2)).double().numpy()
    return cache.Result({"value": n + (rng.standard_normal(len(cfg.seeds)) + wiggle) * 1e-3}, {"size": n})


def _toy_assemble(cfg: ToyConfig, parts: list[cache.Result]) -> cache.Result:
    return cache.Result(stack_units(parts), {"sizes": list(cfg.sizes)})


def _toy_headline(r, cfg) -> dict:
    return {"rows": [{"size": n, "value": ci(r.arrays["value"][i])} for i, n in enumerate(cfg.sizes)]}


def _toy_block(h: dict) -> str:
    return md_table(["size", "value | mean"], [[row["size"], fmt_m(row["value"])] for row in h["rows"]])


def _toy_checks(r, cfg) -> dict:
    return {f"value[size={n}]": Check("toy/value", "lin", vals(r.arrays["value"][i]))
            for i, n in enumerate(cfg.sizes)}


TOY = Experiment("toy", "toy experiment", "toy.ipynb", ToyConfig,
                 {"smoke": {}, "quick": {"sizes": (2, 3, 4)}, "full": {}},
                 key="toy_size", compute=_toy_compute, split=("sizes",), assemble=_toy_assemble,
                 headline=_toy_headline, block=_toy_block, checks=_toy_checks,
                 published=("Nobody 2026", "sizes are what they are"))
