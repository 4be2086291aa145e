"""1-3b: number of parameters vs generalization: a width sweep, several seeds;
and its label-noise control 1-3b-noise (double descent, if any).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..data import Split, load_mnist, noisy_labels
from ..ensemble import Ensemble
from ..models import count_params, mnist_mlp
from ..headline import TEST, TRAIN, Check, fmt_m, md_table, one_sample, pct, pct_ci, plural
from ..train import final_metrics, fit_classifier
from .common import Experiment, stack_units


@dataclass(frozen=True)
class ParamsSweepConfig:
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # 784-w-10 MLPs
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    train_subset: int | None = None
    label_noise: float = 0.0              # fraction of training labels replaced by random ones
    noise_seed: int = 0
    device: str = "auto"


PARAMS_SWEEP_PROFILES = {
    "smoke": dict(widths=(2, 8), seeds=(0,), epochs=1, train_subset=256),
    "quick": dict(widths=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), seeds=(0,), epochs=2, train_subset=5_000),
    "full": dict(),
}


# The bonus: label noise on a small training subset, trained long enough to
# interpolate, where a test-error peak near the interpolation threshold
# (double descent) may show.
NOISY_SWEEP_PROFILES = {
    "smoke": dict(widths=(2, 8), seeds=(0,), epochs=2, train_subset=256, label_noise=0.2),
    "quick": dict(widths=(2, 8, 32, 128, 512), seeds=(0,), epochs=30, train_subset=500, label_noise=0.2),
    "full": dict(widths=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256, 512, 1024), epochs=150,
                 train_subset=4_000, label_noise=0.2),
}


def _train_width(cfg: ParamsSweepConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    (w,) = cfg.widths
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    if cfg.label_noise:
        train = Split(train.x, noisy_labels(train.y, cfg.label_noise, cfg.noise_seed))
    ens = Ensemble(mnist_mlp((w,)), cfg.seeds, dev)
    h = fit_classifier(ens, train, data.test, epochs=cfg.epochs,
                       batch_size=cfg.batch_size, lr=cfg.lr, eval_every=cfg.epochs, progress=progress,
                       desc=f"1-3b width {w}")
    return cache.Result(final_metrics(h), {"width": w, "params": count_params(ens)})


def assemble_params_sweep(cfg: ParamsSweepConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: params [W]; train_loss, train_acc, test_loss, test_acc [W, S] (final;
    train metrics against the training labels, noisy ones included)."""
    arrays = stack_units(parts)
    arrays["params"] = np.array([p.summary["params"] for p in parts])
    return cache.Result(arrays, {"params": arrays["params"].tolist()})


def h_params_sweep(r, cfg) -> dict:
    a = r.arrays
    n_train = cfg.train_subset or TRAIN
    rows = [{"width": w, "params": int(p), "train_acc": pct_ci(a["train_acc"][i], n_train),
             "test_acc": pct_ci(a["test_acc"][i], TEST), "test_err": pct_ci(1 - a["test_acc"][i], TEST),
             "train_err": pct_ci(1 - a["train_acc"][i], n_train)}
            for i, (w, p) in enumerate(zip(cfg.widths, a["params"]))]
    test_err = [row["test_err"]["mean"] for row in rows]
    train_err = [row["train_err"]["mean"] for row in rows]
    interp = next((row["params"] for row, e in zip(rows, train_err) if e <= 1.0), None)
    return {"label_noise": cfg.label_noise, "seeds": len(cfg.seeds), "epochs": cfg.epochs, "rows": rows,
            "min_test_err_params": rows[int(np.argmin(test_err))]["params"],
            "max_test_err_params": rows[int(np.argmax(test_err))]["params"],
            "interpolation_params": interp}


def c_params_sweep(r, cfg) -> dict[str, Check]:
    fam = "1-3b-noise" if cfg.label_noise else "1-3b"
    n = {"train": one_sample(cfg.train_subset, TRAIN), "test": one_sample(None, TEST)}
    return {f"{split}_acc[width={w}]": Check(f"{fam}/{split}_acc", "lin", pct(r.arrays[f"{split}_acc"][i]), n[split])
            for i, w in enumerate(cfg.widths) for split in ("train", "test")}


def block_params_sweep(p: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    what = "err" if p["label_noise"] else "acc"    # with label noise, the error shows the peak
    return md_table(["width", "params", f"train {what} (%)", f"test {what} (%)"], [
        [row["width"], f"{row['params']:,}", fmt_m(row[f"train_{what}"]), fmt_m(row[f"test_{what}"])]
        for row in p["rows"]]) + (
        f"\n\nLabel noise {p['label_noise']:.0%}, {plural(p['epochs'], 'epoch')}, mean and 95% interval over "
        f"{plural(p['seeds'], 'seed')} (a t-interval, cut at 0 and 100; one seed: Wilson's "
        f"interval for the images evaluated). Lowest test error at {p['min_test_err_params']:,} parameters, "
        f"highest at {p['max_test_err_params']:,}; " + (
            "training error never reaches 1%." if p["interpolation_params"] is None else
            f"training error first <= 1% at {p['interpolation_params']:,} parameters."))


def summary_params_sweep(h: dict) -> str:
    out = (f"lowest mean test error at {h['min_test_err_params']:,} parameters, highest at "
           f"{h['max_test_err_params']:,}; ")
    return out + ("training error never reaches 1%" if h["interpolation_params"] is None else
                  f"training error first <= 1% at {h['interpolation_params']:,}")


PARAMS_SWEEP = Experiment(
    "1-3b", "parameter sweep", "1-3b_parameters_vs_generalization.ipynb", ParamsSweepConfig, PARAMS_SWEEP_PROFILES,
    key="params_sweep_width", compute=_train_width, split=("widths",), assemble=assemble_params_sweep,
    headline=h_params_sweep, block=block_params_sweep, checks=c_params_sweep, summary=summary_params_sweep)


NOISY_SWEEP = dataclasses.replace(PARAMS_SWEEP, name="1-3b-noise", title="label-noise sweep",
                                  profiles=NOISY_SWEEP_PROFILES)
