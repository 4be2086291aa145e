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
from ..data import load_mnist
from ..fashion import load_fashion
from ..ensemble import Ensemble
from ..errors import ConfigError
from ..functions import target
from ..stats import plateaued
from ..models import cnn_for_params, count_params, describe, mlp, mlp_widths_for_params
from ..train import fit_classifier, fit_full_batch
from ..headline import (DATASET_NAMES, TEST, Check, ci, fmt_m, md_table, one_sample, pct, plural, rnd,
                        vals)
from ..stats import last_window_drop
from .common import Experiment, stack_units


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

    def check(self) -> None:
        if self.min_epochs > self.max_epochs:
            raise ConfigError(f"FunctionFitConfig: min_epochs = {self.min_epochs} exceeds max_epochs = {self.max_epochs}.")


FUNCTION_FIT_PROFILES = {
    "smoke": dict(depths=(1, 3), min_epochs=30, max_epochs=60, check_every=10, seeds=(0,), n_points=64),
    "quick": dict(min_epochs=2_000, max_epochs=4_000, check_every=500, seeds=(0, 1)),
    "full": dict(),
}


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


def assemble_function_fit(cfg: FunctionFitConfig, parts: list[cache.Result]) -> cache.Result:
    """Every function fitted with every depth and seed.

    Arrays: x [n]; y [F, n]; loss [D, max_epochs + 1, F, S] (MSE per full-batch
    step; row t of a run that stopped after t steps is its final loss, later
    rows NaN); pred [D, F, S, n] (final fits); final_loss, stopped_at (steps
    taken) and converged (its plateau rule held) [D, F, S].
    """
    x = torch.linspace(-1, 1, cfg.n_points)
    arrays = {
        "x": x.numpy(),
        "y": torch.stack([target(f, x) for f in cfg.functions]).numpy(),
        **stack_units(parts, ("loss", "pred", "final_loss", "stopped_at", "converged")),
    }
    summary = {"models": [p.summary for p in parts], "config": dataclasses.asdict(cfg)}
    return cache.Result(arrays, summary)


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

    def check(self) -> None:
        unknown = set(self.datasets) - set(DATASETS)
        if unknown:
            raise ConfigError(f"MnistModelsConfig.datasets: unknown {sorted(unknown)}; choose from {', '.join(DATASETS)}.")


MNIST_MODELS_PROFILES = {
    "smoke": dict(depths=(1, 2), epochs=1, seeds=(0,), train_subset=512, test_subset=512),
    "quick": dict(epochs=2, seeds=(0,), train_subset=10_000),
    "full": dict(),
}


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


def assemble_mnist_models(cfg: MnistModelsConfig, parts: list[cache.Result]) -> cache.Result:
    """Every depth trained with every seed on every dataset. Arrays: train_loss,
    train_acc, test_loss, test_acc, each [datasets, D, epochs + 1, S] (epoch 0 =
    at initialisation)."""
    shape = (len(cfg.datasets), len(cfg.depths))
    arrays = {k: v.reshape(shape + v.shape[1:]) for k, v in stack_units(parts).items()}
    summary = {"models": [p.summary for p in parts], "config": dataclasses.asdict(cfg)}
    return cache.Result(arrays, summary)


# ================================================================== headline numbers, text, checks

# ------------------------------------------------------------ headline numbers per experiment
SPIKE = 2.0   # 1-1a: a run whose final loss is above this many times its best ended inside one of Adam's spikes


def h_function_fit(r, cfg) -> dict:

    models = function_fit_models(cfg)
    final, stopped, conv = (r.arrays[k] for k in ("final_loss", "stopped_at", "converged"))   # [depth, function, seed]
    loss = r.arrays["loss"]                                                                   # [depth, epoch, function, seed]

    def drop(i, j):   # how much the last 10% of epochs still lowered the best loss, median over unconverged runs
        d = [last_window_drop(loss[i, :, j, s], cfg.plateau_window) for s in range(len(cfg.seeds)) if not conv[i, j, s]]
        return rnd(np.median(d)) if d else None

    return {"min_epochs": cfg.min_epochs, "max_epochs": cfg.max_epochs, "plateau_window": cfg.plateau_window,
            "plateau_rtol": cfg.plateau_rtol, "seeds": len(cfg.seeds), "functions": list(cfg.functions), "models": [
        {"name": m["name"], "widths": list(m["widths"]), "params": m["params"],
         "final_mse": {f: {"median": rnd(np.median(final[i, j])), "min": rnd(final[i, j].min()),
                           "max": rnd(final[i, j].max())} for j, f in enumerate(cfg.functions)},
         "converged": {f: int(conv[i, j].sum()) for j, f in enumerate(cfg.functions)},
         "median_epochs": {f: int(np.median(stopped[i, j])) for j, f in enumerate(cfg.functions)},
         "unconverged_last_drop": {f: drop(i, j) for j, f in enumerate(cfg.functions)},
         "ended_on_spike": {f: int((final[i, j] > SPIKE * np.nanmin(loss[i, :, j], axis=0)).sum())
                            for j, f in enumerate(cfg.functions)}}
        for i, m in enumerate(models)], "best": best_depths(final, models, cfg.functions)}


def best_depths(final: np.ndarray, models: list[dict], functions) -> dict:
    """Per function, the model with the lowest median final loss, and whether it
    is separated from every other model (its worst seed better than their best
    seed). final: [model, function, seed]."""
    out = {}
    for j, f in enumerate(functions):
        med = np.median(final[:, j], axis=1)
        b = int(np.argmin(med))
        others = [i for i in range(len(models)) if i != b]
        out[f] = {"model": models[b]["name"],
                  "separated": bool(all(final[b, j].max() < final[i, j].min() for i in others))}
    return out


def h_mnist_models(r, cfg) -> dict:

    models = mnist_models(cfg)
    out = {"epochs": cfg.epochs, "seeds": len(cfg.seeds), "datasets": {}}
    for t, task in enumerate(cfg.datasets):
        a = {k: v[t] for k, v in r.arrays.items()}
        rows = [{"name": m["name"], "layers": m["layers"], "params": m["params"],
                 **{k: ci(a[k][i, -1] * (100 if "acc" in k else 1))
                    for k in ("train_loss", "test_loss", "train_acc", "test_acc")}} for i, m in enumerate(models)]
        acc = 100 * a["test_acc"][:, -1]                     # [depth, seed]: paired across seeds
        out["datasets"][task] = {"models": rows, "paired_test_acc_diff": {
            f"{models[i + 1]['name']} - {models[i]['name']}": ci(acc[i + 1] - acc[i]) for i in range(len(acc) - 1)}}
    return out


def _unconverged_note(ff: dict) -> str:
    """1-1a: how fast the runs stopped by the cap were still improving."""
    parts = [f"{m['name']} {f} {m['unconverged_last_drop'][f]:.0%}" for m in ff["models"] for f in ff["functions"]
             if m["unconverged_last_drop"][f] is not None]
    out = "" if not parts else (
        f" The runs stopped by the cap were still improving: over their last {ff['plateau_window']:.0%} of epochs "
        "the best loss fell by (median) " + ", ".join(parts) + ".")
    spikes = [f"{m['name']} {f} {m['ended_on_spike'][f]}" for m in ff["models"] for f in ff["functions"]
              if m["ended_on_spike"][f]]
    if spikes:
        out += (f" Runs that ended inside one of Adam's loss spikes (final loss above {SPIKE:g} times their best, so "
                "their final MSE overstates what they reached): " + ", ".join(spikes) + ".")
    return out


# ------------------------------------------------------------------ checked metrics per experiment
def c_function_fit(r, cfg) -> dict[str, Check]:

    final = r.arrays["final_loss"]                                   # [depth, function, seed]
    return {f"final_mse[{m['name']},{f}]": Check("1-1a/final_mse", "log", vals(final[i, j]))
            for i, m in enumerate(function_fit_models(cfg)) for j, f in enumerate(cfg.functions)}


def c_mnist_models(r, cfg) -> dict[str, Check]:

    out = {}
    for t, task in enumerate(cfg.datasets):
        for i, m in enumerate(mnist_models(cfg)):
            out[f"{task}/test_acc[{m['name']}]"] = Check("1-1b/test_acc", "lin", pct(r.arrays["test_acc"][t, i, -1]),
                                                         one_sample(cfg.test_subset, TEST))
            out[f"{task}/train_loss[{m['name']}]"] = Check("1-1b/train_loss", "log",
                                                           vals(r.arrays["train_loss"][t, i, -1]))
    return out


def block_function_fit(ff: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    fns = ff["functions"]
    return md_table(["model", "hidden widths", "params", *[f"{f} MSE, median [min, max]" for f in fns]], [
        [m["name"], ", ".join(map(str, m["widths"])), m["params"],
         *[f"{m['final_mse'][f]['median']:.1e} [{m['final_mse'][f]['min']:.1e}, {m['final_mse'][f]['max']:.1e}]"
           for f in fns]] for m in ff["models"]]) + \
        f"\n\nFinal training MSE over {plural(ff['seeds'], 'seed')}. Every run trains {ff['min_epochs']:,} full-batch " \
        f"epochs, then on until its plateau rule holds (the last {ff['plateau_window']:.0%} of its epochs lowered " \
        f"its best loss by less than {ff['plateau_rtol']:.0%}), checked as it trains, or until {ff['max_epochs']:,} " \
        "epochs. Converged runs (median epochs trained), per model and function: " + \
        "; ".join(f"{m['name']} " + ", ".join(f"{f} {m['converged'][f]}/{ff['seeds']} ({m['median_epochs'][f]:,})"
                                              for f in fns) for m in ff["models"]) + "." + \
        _unconverged_note(ff) + " Lowest median per function: " + \
        "; ".join(f"{f} {ff['best'][f]['model']} (" + ("every seed better than every seed of the other depths"
                  if ff["best"][f]["separated"] else "seed ranges overlap another depth's") + ")" for f in fns) + "."


def block_mnist_models(mm: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    parts = []
    for task, d in mm["datasets"].items():
        parts.append(f"**{DATASET_NAMES.get(task, task)}**\n\n" + md_table(
            ["model", "layers", "params", "train loss", "test loss", "train acc (%)", "test acc (%)"], [
                [m["name"], m["layers"].replace(" | ", ", "), f"{m['params']:,}", fmt_m(m["train_loss"], 3),
                 fmt_m(m["test_loss"], 3), fmt_m(m["train_acc"]), fmt_m(m["test_acc"])] for m in d["models"]]) +
            "\n\nPaired test-accuracy differences (points): " +
            "; ".join(f"{k}: {fmt_m(v)}" for k, v in d["paired_test_acc_diff"].items()) + ".")
    return "\n\n".join(parts) + f"\n\nAfter {mm['epochs']} epochs; mean ± 95% t-interval over " \
        f"{plural(mm['seeds'], 'seed')}; a paired difference compares two depths seed by seed."


def summary_function_fit(h: dict) -> str:
    best = h["best"]
    sep = [f for f in h["functions"] if best[f]["separated"]]
    return ("lowest median MSE: " + ", ".join(f"{f} {best[f]['model']}" for f in h["functions"]) + "; " +
            ("separated from every other depth: " + ", ".join(sep) if sep else
             "on no function are its seeds separated from another depth's"))


def summary_mnist_models(h: dict) -> str:
    parts = []
    for task, d in h["datasets"].items():
        accs = ", ".join(f"{m['name']} {m['test_acc']['mean']:.2f}" for m in d["models"])
        parts.append(f"{DATASET_NAMES.get(task, task)} test acc (%) {accs}")
    return "; ".join(parts)


FUNCTION_FIT = Experiment(
    "1-1a", "function fit", "1-1a_simulate_function.ipynb", FunctionFitConfig, FUNCTION_FIT_PROFILES,
    key="function_fit_depth", compute=_fit_one_depth, split=("depths",), assemble=assemble_function_fit,
    headline=h_function_fit, block=block_function_fit, checks=c_function_fit, summary=summary_function_fit,
    figures=("1-1a_loss", "1-1a_predictions"),
    reading="""Trained to a plateau rule instead of for equal epochs, no depth wins: each function has a different depth
with the lowest median, and for every function that depth's seeds overlap another depth's (last sentence of
the block). The shallow net is the one the rule stops least: most of its runs were still improving when the
cap ended them (block), so for it the comparison is at the cap, not at convergence, while most runs of the
deeper nets converged. The classic claim that depth wins at equal parameter count is not supported by these
fits.""")

MNIST_MODELS = Experiment(
    "1-1b", "MNIST CNNs", "1-1b_train_on_mnist.ipynb", MnistModelsConfig, MNIST_MODELS_PROFILES,
    key="mnist_cnn_depth", compute=_train_one_depth, split=("datasets", "depths"), assemble=assemble_mnist_models,
    headline=h_mnist_models, block=block_mnist_models, checks=c_mnist_models, summary=summary_mnist_models,
    figures=("1-1b_mnist_curves",),
    reading="""The paired differences say which depth gains are larger than the seed-to-seed spread (an interval that
contains 0 cannot be told apart from it). With five seeds, one gain is resolved on MNIST: 2 convolution blocks
beat 1. Going from 2 to 4 blocks brings nothing measurable on MNIST and costs accuracy on Fashion-MNIST, where
2 vs 1 is not resolved. At this parameter budget the deepest CNN does not win on either task; a moderate depth
helps on MNIST only (the deeper net pays for its depth with narrower layers).""")
