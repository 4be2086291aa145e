"""Section 1-1: deep vs shallow nets at equal parameter count.

1-1a fits 1-D functions with MLPs of several depths (full-batch Adam; every
(function, seed) pair of one depth trains at once as one vmapped ensemble).
1-1b trains CNNs of several depths on MNIST.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..config import make_config
from ..data import load_mnist
from ..fashion import load_fashion
from ..ensemble import Ensemble
from ..errors import ConfigError
from ..functions import target
from ..stats import plateaued
from ..models import cnn_for_params, count_params, describe, mlp, mlp_widths_for_params
from ..train import fit_classifier, fit_full_batch
from .common import Unit, resolved, run_units, split_units, stack_units


# ------------------------------------------------------------------ 1-1a
@dataclass(frozen=True)
class FunctionFitConfig:
    functions: tuple[str, ...] = ("sinc", "sign", "chirp")
    depths: tuple[int, ...] = (1, 3, 6)   # hidden layers: shallow, medium, deep
    target_params: int = 571               # the classic choice; matched within 1%
    n_points: int = 1000                   # evenly spaced on [-1, 1]
    min_epochs: int = 20_000               # full-batch steps every run takes (the classic length) ...
    max_epochs: int = 60_000               # ... then each trains on until its plateau rule holds, or this cap
    plateau_window: float = 0.1            # plateau rule: the last 10% of a run's epochs ...
    plateau_rtol: float = 0.01             # ... lowered its best loss by less than 1%
    check_every: int = 1_000               # the rule is checked every this many epochs
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    device: str = "auto"


FUNCTION_FIT_PROFILES = {
    "smoke": dict(depths=(1, 3), min_epochs=30, max_epochs=60, check_every=10, seeds=(0,), n_points=64),
    "quick": dict(min_epochs=2_000, max_epochs=4_000, check_every=500, seeds=(0, 1)),
    "full": dict(),
}


def function_fit_config(profile: str = "quick", **overrides) -> FunctionFitConfig:
    return make_config(FunctionFitConfig, FUNCTION_FIT_PROFILES, profile, **overrides)


def function_fit_models(cfg: FunctionFitConfig) -> list[dict]:
    """One row per depth: name, hidden widths, parameter count."""
    rows = []
    for d in cfg.depths:
        widths = mlp_widths_for_params(d, cfg.target_params)
        rows.append(dict(name=f"{d}-hidden", depth=d, widths=widths,
                         params=count_params(mlp(1, widths, 1))))
    return rows


def plateau_rule(cfg: FunctionFitConfig):
    """The stop rule of 1-1a for fit_full_batch: a run stops once it has
    trained `min_epochs` and its curve meets stats.plateaued."""
    def stop(history: np.ndarray) -> np.ndarray:        # [T, n] -> [n]
        if len(history) < cfg.min_epochs:
            return np.zeros(history.shape[1], dtype=bool)
        return np.array([plateaued(c, cfg.plateau_window, cfg.plateau_rtol) for c in history.T])
    return stop


def _fit_one_depth(cfg: FunctionFitConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    (depth,) = cfg.depths
    widths = mlp_widths_for_params(depth, cfg.target_params)
    F_, S = len(cfg.functions), len(cfg.seeds)
    members = [(f, s) for f in cfg.functions for s in cfg.seeds]
    ens = Ensemble(lambda: mlp(1, widths, 1), [s for _, s in members], dev)
    x = torch.linspace(-1, 1, cfg.n_points, device=dev).unsqueeze(-1)   # [n, 1]
    y = torch.stack([target(f, x) for f, _ in members])                  # [N, n, 1]
    fit = fit_full_batch(ens, x.expand(len(members), -1, -1), y, epochs=cfg.max_epochs, lr=cfg.lr,
                         check_every=cfg.check_every, stop=plateau_rule(cfg), progress=progress,
                         desc=f"1-1a depth {depth}")
    loss, stopped = fit["loss"], fit["stopped_at"]
    with torch.no_grad():
        pred = ens(x, shared=True)[..., 0]                                # [N, n]
    final = loss[stopped, np.arange(len(members))].reshape(F_, S)
    converged = np.array([plateaued(loss[:t, i], cfg.plateau_window, cfg.plateau_rtol)
                          for i, t in enumerate(stopped)])
    summary = {
        "depth": depth, "widths": list(widths), "params": count_params(ens),
        "final_loss_mean": {f: float(final[i].mean()) for i, f in enumerate(cfg.functions)},
        "final_loss_std": {f: float(final[i].std()) for i, f in enumerate(cfg.functions)},
        "converged": int(converged.sum()),
    }
    return cache.Result(
        arrays={"loss": loss.reshape(-1, F_, S), "pred": pred.cpu().numpy().reshape(F_, S, -1),
                "final_loss": final, "stopped_at": stopped.reshape(F_, S),
                "converged": converged.reshape(F_, S)},
        summary=summary, weights=ens.stacked_state())


def function_fit_units(cfg: FunctionFitConfig) -> list[Unit]:
    """One unit per depth (every function and seed of a depth is one ensemble)."""
    if cfg.min_epochs > cfg.max_epochs:
        raise ConfigError(f"FunctionFitConfig: min_epochs = {cfg.min_epochs} exceeds max_epochs = {cfg.max_epochs}.")
    return split_units("function_fit_depth", resolved(cfg), "depths", _fit_one_depth)


def run_function_fit(cfg: FunctionFitConfig, progress: bool = True) -> cache.Result:
    """Fit every function with every depth and seed.

    Arrays: x [n]; y [F, n]; loss [D, max_epochs + 1, F, S] (MSE per full-batch
    step; row t of a run that stopped after t steps is its final loss, later
    rows NaN); pred [D, F, S, n] (final fits); final_loss, stopped_at (steps
    taken) and converged (its plateau rule held) [D, F, S].
    """
    cfg = resolved(cfg)

    def compute() -> cache.Result:
        parts = run_units(function_fit_units(cfg), progress)
        x = torch.linspace(-1, 1, cfg.n_points)
        arrays = {
            "x": x.numpy(),
            "y": torch.stack([target(f, x) for f in cfg.functions]).numpy(),
            **stack_units(parts, ("loss", "pred", "final_loss", "stopped_at", "converged")),
        }
        summary = {"models": [p.summary for p in parts], "config": dataclasses.asdict(cfg)}
        return cache.Result(arrays, summary)

    return cache.cached("function_fit", cfg, compute)


# ------------------------------------------------------------------ 1-1b
@dataclass(frozen=True)
class MnistModelsConfig:
    depths: tuple[int, ...] = (1, 2, 4)   # conv blocks: shallow, medium, deep
    datasets: tuple[str, ...] = ("mnist", "fashion")   # the task, then a second one (Fashion-MNIST)
    target_params: int = 10_000
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    train_subset: int | None = None       # first n training images; None = all 60,000
    test_subset: int | None = None        # first n test images; None = all 10,000
    device: str = "auto"


MNIST_MODELS_PROFILES = {
    "smoke": dict(depths=(1, 2), epochs=1, seeds=(0,), train_subset=512, test_subset=512),
    "quick": dict(epochs=2, seeds=(0,), train_subset=10_000),
    "full": dict(),
}


def mnist_models_config(profile: str = "quick", **overrides) -> MnistModelsConfig:
    return make_config(MnistModelsConfig, MNIST_MODELS_PROFILES, profile, **overrides)


def mnist_models(cfg: MnistModelsConfig) -> list[dict]:
    rows = []
    for d in cfg.depths:
        spec = cnn_for_params(d, cfg.target_params)
        model = spec.build()
        rows.append(dict(name=f"CNN-{d}", depth=d, layers=describe(model), params=count_params(model)))
    return rows


# The tasks of 1-1b: same image size, classes and splits, so the same CNNs serve both.
DATASETS = {"mnist": load_mnist, "fashion": load_fashion}


def _train_one_depth(cfg: MnistModelsConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    (depth,), (task,) = cfg.depths, cfg.datasets
    spec = cnn_for_params(depth, cfg.target_params)
    data = DATASETS[task](dev)
    ens = Ensemble(spec.build, cfg.seeds, dev)
    hist = fit_classifier(ens, data.train.subset(cfg.train_subset), data.test.subset(cfg.test_subset),
                          epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                          progress=progress, desc=f"1-1b {task} CNN-{depth}")
    summary = {"dataset": task, "depth": depth, "params": count_params(ens), "channels": list(spec.channels),
               "hidden": spec.hidden}
    for k, v in hist.items():
        summary[f"final_{k}_mean"] = float(v[-1].mean())
        summary[f"final_{k}_std"] = float(v[-1].std())
    return cache.Result(hist, summary, weights=ens.stacked_state())


def mnist_models_units(cfg: MnistModelsConfig) -> list[Unit]:
    """One unit per (dataset, depth) (its seeds train as one ensemble)."""
    cfg = resolved(cfg)
    unknown = set(cfg.datasets) - set(DATASETS)
    if unknown:
        raise ConfigError(f"MnistModelsConfig.datasets: unknown {sorted(unknown)}; choose from {', '.join(DATASETS)}.")
    return [Unit("mnist_cnn_depth", dataclasses.replace(cfg, datasets=(task,), depths=(d,)), _train_one_depth)
            for task in cfg.datasets for d in cfg.depths]


def run_mnist_models(cfg: MnistModelsConfig, progress: bool = True) -> cache.Result:
    """Train every depth with every seed on every dataset. Arrays: train_loss,
    train_acc, test_loss, test_acc, each [datasets, D, epochs + 1, S] (epoch 0 =
    at initialisation)."""
    cfg = resolved(cfg)

    def compute() -> cache.Result:
        parts = run_units(mnist_models_units(cfg), progress)
        shape = (len(cfg.datasets), len(cfg.depths))
        arrays = {k: v.reshape(shape + v.shape[1:]) for k, v in stack_units(parts).items()}
        summary = {"models": [p.summary for p in parts], "config": dataclasses.asdict(cfg)}
        return cache.Result(arrays, summary)

    return cache.cached("mnist_models", cfg, compute)
