"""1-1b: CNNs of several depths at equal parameter count on MNIST, and 1-1b-long: the
same models on Fashion-MNIST under a schedule twice as long (the length control).
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
from ..models import cnn_for_params, count_params, describe
from ..train import fit_classifier
from ..headline import (Check, DATASET_NAMES, TEST, TRAIN, ci, fmt_interval, md_table, one_sample, pct, pct_ci,
                        plural, pos_ci, rnd, vals)
from .common import Experiment, stack_units


@dataclass(frozen=True)
class MnistModelsConfig:
    """Every depth trains with Adam at `lr`, decayed by a cosine over the
    `epochs` to `decay_to` times itself (epoch by epoch), so that the
    comparison is of where each depth gets to, not of how fast. Whether the
    curves did flatten is checked per run by the plateau rule (not forced):
    over the last `plateau_epochs` epochs the best test accuracy rose by less
    than `plateau_acc` points. Every metric is measured after every epoch on the
    whole test set, and on the training set's first `curve_subset` images (a
    fixed sample), except after the last epoch: on the whole training set."""
    depths: tuple[int, ...] = (1, 2, 4)   # conv blocks: shallow, medium, deep
    datasets: tuple[str, ...] = ("mnist",)   # the task; Fashion-MNIST, the second task, trains in 1-1b-long
    #   (under the longer schedule only: its 12-epoch arm, until b4e38af, left most runs short of their plateau)
    target_params: int = 10_000
    epochs: int = 12
    decay_to: float = 0.0
    batch_size: int = 128
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    plateau_epochs: int = 3
    plateau_acc: float = 0.1               # points
    train_subset: int | None = None       # first n training images; None = all 60,000
    test_subset: int | None = None        # first n test images; None = all 10,000
    curve_subset: int | None = 10_000     # the training curve's fixed sample before the last epoch; None = all
    device: str = "auto"

    def check(self) -> None:
        unknown = set(self.datasets) - set(DATASETS)
        if unknown:
            raise ConfigError(f"MnistModelsConfig.datasets: unknown {sorted(unknown)}; choose from {', '.join(DATASETS)}.")
        if not 0 < self.plateau_epochs < self.epochs:
            raise ConfigError(f"MnistModelsConfig.plateau_epochs must be between 1 and epochs - 1 "
                              f"({self.epochs - 1}); got {self.plateau_epochs}.")


MNIST_MODELS_PROFILES = {
    "smoke": dict(datasets=("mnist", "fashion"), depths=(1, 2), epochs=2, plateau_epochs=1, seeds=(0,),
                  train_subset=512, test_subset=512),
    "quick": dict(epochs=2, plateau_epochs=1, seeds=(0,), train_subset=10_000),
    "full": dict(),
}


# The length control (1-1b-long): Fashion-MNIST alone, the same depths, seeds (so the same initialisations)
# and rate, under a cosine twice as long; the plateau window is the same share of the schedule (its last
# quarter), so the rule is not made easier by a longer tail at a near-zero rate.
MNIST_MODELS_LONG_PROFILES = {
    "smoke": dict(datasets=("fashion",), depths=(1, 2), epochs=4, plateau_epochs=1, seeds=(0,), train_subset=512,
                  test_subset=512),
    "quick": dict(datasets=("fashion",), epochs=4, plateau_epochs=1, seeds=(0,), train_subset=5_000),
    "full": dict(datasets=("fashion",), epochs=24, plateau_epochs=6),
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
    train = data.train.subset(cfg.train_subset)
    hist = fit_classifier(ens, train, data.test.subset(cfg.test_subset), epochs=cfg.epochs,
                          batch_size=cfg.batch_size, lr=cfg.lr, decay_to=cfg.decay_to, progress=progress,
                          desc=f"1-1b {task} CNN-{depth}", curve_subset=cfg.curve_subset)
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


def plateau_gain(test_acc: np.ndarray, k: int) -> np.ndarray:
    """How far the best test accuracy rose in the last k evaluations over the
    best before them, per run: test_acc [E + 1, ...] -> [...], in the curve's
    units (a fall counts as 0: nothing gained)."""
    return np.maximum(test_acc[-k:].max(0) - test_acc[:-k].max(0), 0.0)


def h_mnist_models(r, cfg) -> dict:
    """Per task and depth: final losses (geometric means, log-scale intervals) and accuracies
    (t-intervals cut at 0 and 100, stats.proportion_ci), the plateau rule's count and
    the last window's gain, every seed's test accuracy; per pair of depths, the
    paired (by seed) test-accuracy difference."""
    models = mnist_models(cfg)
    n_test, n_train = cfg.test_subset or TEST, cfg.train_subset or TRAIN
    curve = cfg.curve_subset if cfg.curve_subset and cfg.curve_subset < n_train else None
    out = {"epochs": cfg.epochs, "lr": cfg.lr, "decay_to": cfg.decay_to, "seeds": len(cfg.seeds), "curve_subset": curve,
           "rule": {"plateau_epochs": cfg.plateau_epochs, "plateau_acc": cfg.plateau_acc}, "datasets": {}}
    for t, task in enumerate(cfg.datasets):
        a = {k: v[t] for k, v in r.arrays.items()}          # [depth, epoch, seed]
        gain = 100 * plateau_gain(a["test_acc"].transpose(1, 0, 2), cfg.plateau_epochs)   # [depth, seed]
        rows = [{"name": m["name"], "layers": m["layers"], "params": m["params"],
                 "train_loss": pos_ci(a["train_loss"][i, -1]), "test_loss": pos_ci(a["test_loss"][i, -1]),
                 "train_acc": pct_ci(a["train_acc"][i, -1], n_train), "test_acc": pct_ci(a["test_acc"][i, -1], n_test),
                 "plateau": int((gain[i] < cfg.plateau_acc).sum()), "last_window_gain": {
                     "median": rnd(np.median(gain[i])), "min": rnd(gain[i].min()), "max": rnd(gain[i].max())},
                 "per_seed_test_acc": [rnd(100 * v) for v in a["test_acc"][i, -1]]} for i, m in enumerate(models)]
        acc = 100 * a["test_acc"][:, -1]                     # [depth, seed]: paired across seeds
        out["datasets"][task] = {"models": rows, "paired_test_acc_diff": {
            f"{models[j]['name']} - {models[i]['name']}": ci(acc[j] - acc[i])
            for i in range(len(acc)) for j in range(i + 1, len(acc))}}
    return out


def c_mnist_models(r, cfg) -> dict[str, Check]:

    out = {}
    for t, task in enumerate(cfg.datasets):
        for i, m in enumerate(mnist_models(cfg)):
            out[f"{task}/test_acc[{m['name']}]"] = Check("1-1b/test_acc", "lin", pct(r.arrays["test_acc"][t, i, -1]),
                                                         one_sample(cfg.test_subset, TEST))
            out[f"{task}/train_loss[{m['name']}]"] = Check("1-1b/train_loss", "log",
                                                           vals(r.arrays["train_loss"][t, i, -1]))
    return out


def _resolved(d: dict) -> bool:
    """Whether a paired difference's t-interval excludes 0 (never with one seed)."""
    return d["ci95"] is not None and abs(d["mean"]) > d["ci95"]


def _diff_verdict(d: dict) -> str:
    """A paired difference in words: its interval and whether it excludes 0."""
    if d["ci95"] is None:
        return f"{d['mean']:+.2f} (one seed: not tested)"
    lo, hi = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    return f"{d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]" + (" (resolved)" if _resolved(d) else "")


def _fmt_range(d: dict) -> str:
    """'0.12 [0.00, 0.31]': a median and the range over seeds (just the value for one seed)."""
    return f"{d['median']:.2f}" + ("" if d["min"] == d["max"] else f" [{d['min']:.2f}, {d['max']:.2f}]")


def block_mnist_models(mm: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    parts = []
    rule = mm["rule"]
    for task, d in mm["datasets"].items():
        parts.append(f"**{DATASET_NAMES.get(task, task)}**\n\n" + md_table(
            ["model", "layers", "params", "train loss", "test loss", "train acc (%)", "test acc (%)",
             f"test acc gain, last {plural(rule['plateau_epochs'], 'epoch')} (points)", "at plateau"], [
                [m["name"], m["layers"].replace(" | ", ", "), f"{m['params']:,}",
                 fmt_interval(m["train_loss"], 3, n=False), fmt_interval(m["test_loss"], 3, n=False),
                 fmt_interval(m["train_acc"], n=False), fmt_interval(m["test_acc"], n=False),
                 _fmt_range(m["last_window_gain"]), f"{m['plateau']}/{mm['seeds']}"] for m in d["models"]]) +
            "\n\nPaired test-accuracy differences (points, 95% t-interval over seeds): " +
            "; ".join(f"{k}: {_diff_verdict(v)}" for k, v in d["paired_test_acc_diff"].items()) + ".")
    end = "zero" if mm["decay_to"] == 0 else f"{mm['decay_to']:g}"
    sched = (f"the rate {mm['lr']:g} times a cosine factor set each epoch, from 1 in the first to {end} after the last"
             if mm["decay_to"] is not None else f"a constant rate {mm['lr']:g}")
    intervals = ("Losses: geometric mean and the t-interval of the mean logarithm, mapped back; accuracies: mean and "
                 "its t-interval (cut at 0 and 100)" if mm["seeds"] > 1 else
                 "One seed: no interval over seeds; accuracies with Wilson's interval for the images evaluated")
    return "\n\n".join(parts) + (
        f"\n\nAfter {mm['epochs']} epochs of Adam, {sched}; {plural(mm['seeds'], 'seed')}. {intervals}; "
        + ("final metrics on the whole training and test sets (the training curves before the last epoch on the "
           f"first {mm['curve_subset']:,} training images, a fixed sample)" if mm.get("curve_subset") else
           "every metric on the whole training or test set") + ". At plateau: the best test "
        f"accuracy of the last {plural(rule['plateau_epochs'], 'epoch')} is less than {rule['plateau_acc']:g} points "
        "above the best before them (the gain column: median [min, max] over seeds; a gain is never below 0). A paired "
        "difference compares two depths "
        "seed by seed (a seed fixes the order of the batches; the weights of different depths share nothing).")


def summary_mnist_models(h: dict) -> str:
    parts = []
    for task, d in h["datasets"].items():
        accs = ", ".join(f"{m['name']} {m['test_acc']['mean']:.2f}" for m in d["models"])
        resolved = [k for k, v in d["paired_test_acc_diff"].items() if _resolved(v)]
        plateau, runs = sum(m["plateau"] for m in d["models"]), h["seeds"] * len(d["models"])
        parts.append(f"{DATASET_NAMES.get(task, task)} test acc (%) {accs}; resolved: "
                     f"{', '.join(resolved) if resolved else 'none'}; at plateau {plateau}/{runs}")
    return "; ".join(parts)


MNIST_MODELS = Experiment(
    "1-1b", "MNIST CNNs", "1-1b_train_on_mnist.ipynb", MnistModelsConfig, MNIST_MODELS_PROFILES,
    key="mnist_cnn_depth", compute=_train_one_depth, split=("datasets", "depths"), assemble=assemble_mnist_models,
    headline=h_mnist_models, block=block_mnist_models, checks=c_mnist_models, summary=summary_mnist_models)


MNIST_MODELS_LONG = dataclasses.replace(
    MNIST_MODELS, name="1-1b-long", title="Fashion-MNIST, twice the schedule", profiles=MNIST_MODELS_LONG_PROFILES)
