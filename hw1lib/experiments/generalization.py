"""Section 1-3: generalization.

1-3a  random labels: the same MLP on true and on random labels.
1-3b  number of parameters vs generalization: a width sweep, several seeds.
1-3c  flatness by interpolation between two trained models.
1-3d  sensitivity (input-Jacobian norm) vs batch size.
1-3e  epsilon-sharpness and top Hessian eigenvalue vs batch size (1-3d's models).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import cache
from ..analysis import evaluate_points, filter_normalized_direction, interpolate_flat
from ..config import make_config
from ..curvature import FlatLoss, top_eigenvalues
from ..errors import ConfigError
from ..data import Split, load_mnist, noisy_labels, random_labels
from ..ensemble import Ensemble
from ..measures import ensemble_loss_fn, epsilon_sharpness, epsilon_sharpness_lbfgsb, sensitivity
from ..models import count_params, mnist_mlp
from ..headline import (BOUNDED_INTERVALS, TEST, TRAIN, Check, ci, correlation, fmt_m, fmt_sp, md_table, nonneg_ci,
                        one_count, one_sample, pct, pct_ci, plural, rnd, rounded, vals)
from ..stats import crossing, geometric_ci, spearman_ci
from ..flatness import F1_CHUNK, fit_to_targets, keskar_f1, seeded_ensemble
from ..train import final_metrics, fit_classifier
from .common import Experiment, Unit, split_units, stack_units


# ------------------------------------------------------------------ 1-3a
@dataclass(frozen=True)
class RandomLabelsConfig:
    """Zhang et al.'s (2017) randomisation test on MNIST, as in their Figure 1: a
    fixed subset of training images whose labels are each, with probability
    `fraction`, replaced by a uniformly random label (which may equal the true
    one by chance; fraction 1: random labels), over several random labellings
    (`label_draws`) and initialisations (`seeds`, which also set the batch
    order). Every run trains until it fits the labels it is given (training
    accuracy against them >= fit_acc) or for max_epochs; its test accuracy is
    that of the fitted model. The true-label runs (fraction 0) are one per
    seed: there is nothing to draw. Each seed's runs start from the same
    weights and batch order at every fraction and draw (paired)."""
    hidden: tuple[int, ...] = (512, 512)  # 669,706 parameters: enough to memorise
    train_subset: int = 5_000             # the first n training images (a fixed subset)
    test_subset: int | None = None        # first n test images; None = all 10,000
    fractions: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)   # of labels randomised
    label_draws: tuple[int, ...] = (0, 1, 2)     # random labellings (see `draw_labels`)
    seeds: tuple[int, ...] = (0, 1, 2)    # initialisations and batch orders
    fit_acc: float = 0.99                 # "fitted": training accuracy against its labels at least this
    max_epochs: int = 100                 # the cap of a run that has not fitted
    batch_size: int = 128
    lr: float = 1e-3
    device: str = "auto"

    def check(self) -> None:
        f = list(self.fractions)
        if not f or f != sorted(set(f)) or f[0] < 0 or f[-1] > 1:
            raise ConfigError(f"RandomLabelsConfig.fractions = {self.fractions}: distinct, increasing, in [0, 1].")
        if not 0 < self.fit_acc <= 1:
            raise ConfigError(f"RandomLabelsConfig.fit_acc = {self.fit_acc}: a training accuracy in (0, 1].")
        if f[-1] > 0 and not self.label_draws:
            raise ConfigError("RandomLabelsConfig.label_draws: randomised fractions need at least one labelling.")


RANDOM_LABELS_PROFILES = {
    "smoke": dict(hidden=(32,), train_subset=256, fractions=(0.0, 1.0), label_draws=(0,), seeds=(0,), max_epochs=2),
    "quick": dict(train_subset=1_000, test_subset=2_000, fractions=(0.0, 0.5, 1.0), seeds=(0,), max_epochs=30),
    "full": dict(),
}


def draw_labels(y: torch.Tensor, fraction: float, draw: int) -> torch.Tensor:
    """Labelling `draw` at `fraction` randomised: each label replaced with
    probability `fraction` by a uniform one (`data.noisy_labels` with seed
    2 * draw for which labels, 2 * draw + 1 for their values, so no two draws
    share a generator). Within a draw the randomised sets are nested and the
    random values shared: raising the fraction only adds random labels."""
    return noisy_labels(y, fraction, 2 * draw)


FIT_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


def _fit_labels(cfg: RandomLabelsConfig, progress: bool) -> cache.Result:
    """One fraction (cfg.fractions == (f,)): every (draw, seed) run, one
    ensemble whose members have labels of their own, each leaving when it has
    fitted. Arrays [D, S] (D = 1 at fraction 0): epochs, reached, {train,
    test}_{loss,acc} of the fitted (or last) weights, the train metrics against
    the run's own labels; {loss,acc}_curve [E + 1, D, S] after every epoch (NaN
    once a run has left); agreement [D] (labels equal to the true ones)."""
    (f,) = cfg.fractions
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train, test = data.train.subset(cfg.train_subset), data.test.subset(cfg.test_subset)
    draws = cfg.label_draws if f > 0 else (None,)
    D, S = len(draws), len(cfg.seeds)
    per_draw = [train.y if d is None else draw_labels(train.y, f, d) for d in draws]
    labels = torch.stack([y for y in per_draw for _ in cfg.seeds])                    # [D * S, n]
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for _ in draws for s in cfg.seeds], dev)
    h, _ = fit_to_targets(ens, Split(train.x, labels), test, targets=[cfg.fit_acc], on="acc",
                          max_epochs=cfg.max_epochs, batch_size=cfg.batch_size, lr=cfg.lr, progress=progress,
                          desc=f"1-3a, {f:.0%} of labels random")
    arrays = {k: h[k][0].reshape(D, S) for k in ("epochs", "reached", *FIT_METRICS)}
    arrays |= {k: h[k].reshape(-1, D, S) for k in ("loss_curve", "acc_curve")}
    arrays["agreement"] = np.array([float((y == train.y).float().mean()) for y in per_draw])
    return cache.Result(arrays, {"params": count_params(ens)})


def random_labels_units(cfg: RandomLabelsConfig) -> list[Unit]:
    """One unit per fraction (its draws and seeds train as one ensemble); the
    true-label unit does not depend on the draws."""
    return [Unit("random_labels_fraction", dataclasses.replace(cfg, fractions=(f,), label_draws=cfg.label_draws
                                                               if f > 0 else ()), _fit_labels)
            for f in cfg.fractions]


def assemble_random_labels(cfg: RandomLabelsConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: fractions [F]; epochs, reached, {train,test}_{loss,acc} [F, D, S]
    and {loss,acc}_curve [F, max_epochs + 1, D, S] (NaN after a run left, or
    where no run went on), agreement [F, D]; the true-label runs (fraction 0)
    repeated over the draws (`runs` gives each run once)."""
    D, S, E = max(len(cfg.label_draws), 1), len(cfg.seeds), cfg.max_epochs + 1
    out: dict[str, list] = {}
    for p in parts:
        for k, v in p.arrays.items():
            if k.endswith("_curve"):
                v = np.concatenate([v, np.full((E - len(v), *v.shape[1:]), np.nan)])
            out.setdefault(k, []).append(np.broadcast_to(v, (*v.shape[:-2], D, S)) if k != "agreement"
                                         else np.broadcast_to(v, (D,)))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["fractions"] = np.array(cfg.fractions)
    return cache.Result(arrays, {"params": parts[0].summary["params"]})


def runs(a: dict, key: str, i: int) -> np.ndarray:
    """The values of every run at fraction index i, each run once (fraction 0:
    one per seed; otherwise one per draw and seed)."""
    v = a[key][i]
    return v[0] if a["fractions"][i] == 0 else v.reshape(-1)


# ------------------------------------------------------------------ 1-3b
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


# ------------------------------------------------------------------ 1-3c
@dataclass(frozen=True)
class InterpolationConfig:
    hidden: tuple[int, ...] = (64, 64)
    target_loss: float = 0.1              # every end trains until its full training loss <= this ...
    max_epochs: int = 60                  # ... or this many epochs
    small_batch: int = 64
    large_batch: int = 1024
    lr: float = 1e-3
    large_lr: float = 1e-2                # the learning-rate pairs (batch small_batch)
    pairs: int = 5                        # pairs per cell
    alphas: int = 61                      # the whole line, evenly spaced on [-1, 2] (0 and 1 included) ...
    curve_pairs: int = 1                  # ... for this many pairs per cell, on the whole training and test sets
    barrier_points: int = 21              # alpha on [0, 1] for the barrier of every pair ...
    line_subset: int = 10_000             # ... on the first n training images (and the init -> end lines)
    init_points: int = 21                 # the line from each end's initialisation to the end (Goodfellow)
    slice_points: int = 21                # filter-normalised slices around each end, t in [-1, 1] ...
    slice_directions: int = 10            # ... along this many random directions per end
    slice_subset: int = 5_000             # first n training images the slices are measured on
    train_subset: int | None = None
    seed: int = 0                         # pair k: initialisations seed + k (shared) and seed + pairs + k (the other)
    device: str = "auto"


INTERPOLATION_PROFILES = {
    "smoke": dict(hidden=(8,), target_loss=1.5, max_epochs=1, pairs=2, alphas=7, barrier_points=5, line_subset=256,
                  init_points=5, slice_points=5, slice_directions=2, slice_subset=256, train_subset=512),
    "quick": dict(target_loss=0.2, max_epochs=20, pairs=3, train_subset=5_000, line_subset=1_000,
                  slice_directions=4, slice_subset=500),
    "full": dict(),
}

# An end: (batch, lr, initialisation, order), each a field name or a role: init "shared" is seed + k,
# "other" seed + pairs + k; order "a" shuffles with the initialisation's seed, "b" with another.
END_KINDS = {"small": ("small_batch", "lr", "shared", "a"), "small_b": ("small_batch", "lr", "shared", "b"),
             "small_other": ("small_batch", "lr", "other", "a"),
             "large": ("large_batch", "lr", "shared", "a"), "large_b": ("large_batch", "lr", "shared", "b"),
             "large_other": ("large_batch", "lr", "other", "a"),
             "large_lr": ("small_batch", "large_lr", "shared", "a"),
             "large_lr_other": ("small_batch", "large_lr", "other", "a")}
# The cells of the factorial: (initialisation, comparison) -> (end 0, end 1), the same k for both.
CELLS = {("shared", "small-small"): ("small", "small_b"), ("shared", "small-large"): ("small", "large"),
         ("shared", "large-large"): ("large", "large_b"), ("shared", "lr"): ("small", "large_lr"),
         ("independent", "small-small"): ("small", "small_other"),
         ("independent", "small-large"): ("small", "large_other"),
         ("independent", "large-large"): ("large", "large_other"), ("independent", "lr"): ("small", "large_lr_other")}
# The ends whose surroundings are read (slices, the line from the initialisation): the shared initialisations.
PROBED = ("small", "small_b", "large", "large_b", "large_lr")
ORDER_B = 10_000      # order "b" of initialisation s shuffles with seed s + ORDER_B


def alpha_grid(n: int) -> np.ndarray:
    """n points on [-1, 2], rounded so that 0 and 1 are exact when n = 3k + 1."""
    return np.round(np.linspace(-1, 2, n), 10)


def cell_name(cell: tuple[str, str]) -> str:
    return f"{cell[0]}/{cell[1]}"


def _train_ends(cfg: InterpolationConfig, train: Split, test: Split, dev: torch.device, progress: bool):
    """Every end of every pair, trained to the matched loss: ends sharing a batch
    size train as one ensemble (each member its own initialisation, order and
    learning rate). Returns theta {(kind, k): [P]}, theta0 (its initialisation),
    metrics {(kind, k): {metric: value}} and an ensemble to unflatten with."""
    build = mnist_mlp(cfg.hidden)
    init = {"shared": lambda k: cfg.seed + k, "other": lambda k: cfg.seed + cfg.pairs + k}
    groups: dict[int, list[tuple[str, int]]] = {}
    for kind, (batch_f, _, _, _) in END_KINDS.items():
        for k in range(cfg.pairs):
            groups.setdefault(getattr(cfg, batch_f), []).append((kind, k))
    theta, theta0, metrics = {}, {}, {}
    for bs, ends in groups.items():
        inits = [init[END_KINDS[e][2]](k) for e, k in ends]
        orders = [s + (ORDER_B if END_KINDS[e][3] == "b" else 0) for s, (e, k) in zip(inits, ends)]
        ens = seeded_ensemble(build, inits, orders, dev)
        start = ens.flat_params()
        h, states = fit_to_targets(ens, train, test, targets=(cfg.target_loss,), max_epochs=cfg.max_epochs,
                                   batch_size=bs, lr=tuple(getattr(cfg, END_KINDS[e][1]) for e, _ in ends),
                                   progress=progress, desc=f"1-3c batch {bs}: {len(ends)} ends")
        flat = torch.cat([v[0].flatten(1) for v in states.values()], 1)      # [N, P], flat_params order
        for i, end in enumerate(ends):
            theta[end], theta0[end] = flat[i], start[i]
            metrics[end] = {m: float(h[m][0, i]) for m in END_METRICS}
    return theta, theta0, metrics, ens


def _compute_interpolation(cfg: InterpolationConfig, progress: bool) -> cache.Result:
    """Arrays, for the cells of CELLS (C) and pairs k (K):
    barrier_alpha [Ab] and barrier_loss [C, K, Ab] (training loss on [0, 1] on
    the line subset); alpha [A] and curve_{train,test}_{loss,acc} [C, Kc, A] (the
    whole line on the whole sets, the first Kc pairs); geometry [C, K, 5]
    (||a||, ||b||, ||a - b||, each end's distance from its initialisation);
    end_metrics [len(END_KINDS), K, len(END_METRICS)] at the matched loss;
    init_t [I], init_loss [len(PROBED), K, I] (training loss on the line from
    each end's initialisation to the end, line subset); slice_t [T],
    slice_loss [len(PROBED), K, D, T] (along D filter-normalised directions
    around each end, slice subset)."""
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    build = mnist_mlp(cfg.hidden)
    theta, theta0, metrics, template = _train_ends(cfg, train, data.test, dev, progress)
    K = cfg.pairs
    line_split, slice_split = train.subset(cfg.line_subset), train.subset(cfg.slice_subset)
    bar_alpha = np.round(np.linspace(0, 1, cfg.barrier_points), 10)
    alphas = alpha_grid(cfg.alphas)
    arrays = {"barrier_alpha": bar_alpha, "alpha": alphas}
    pts = torch.cat([interpolate_flat(theta[(e0, k)], theta[(e1, k)], bar_alpha)
                     for e0, e1 in CELLS.values() for k in range(K)])
    arrays["barrier_loss"] = evaluate_points(build, template, pts, line_split)[0].reshape(len(CELLS), K, -1)
    Kc = min(cfg.curve_pairs, K)
    pts = torch.cat([interpolate_flat(theta[(e0, k)], theta[(e1, k)], alphas)
                     for e0, e1 in CELLS.values() for k in range(Kc)])
    for split_name, split in (("train", train), ("test", data.test)):
        loss, acc = evaluate_points(build, template, pts, split)
        arrays[f"curve_{split_name}_loss"] = loss.reshape(len(CELLS), Kc, -1)
        arrays[f"curve_{split_name}_acc"] = acc.reshape(len(CELLS), Kc, -1)
    arrays["geometry"] = np.array([[[float(v) for v in (theta[(e0, k)].norm(), theta[(e1, k)].norm(),
                                                        (theta[(e0, k)] - theta[(e1, k)]).norm(),
                                                        (theta[(e0, k)] - theta0[(e0, k)]).norm(),
                                                        (theta[(e1, k)] - theta0[(e1, k)]).norm())]
                                     for k in range(K)] for e0, e1 in CELLS.values()])
    arrays["end_metrics"] = np.array([[[metrics[(e, k)][m] for m in END_METRICS] for k in range(K)]
                                      for e in END_KINDS])
    # Goodfellow et al.: the straight line from each end's own initialisation to the end.
    t_init = np.round(np.linspace(0, 1, cfg.init_points), 10)
    arrays["init_t"] = t_init
    pts = torch.cat([interpolate_flat(theta0[(e, k)], theta[(e, k)], t_init) for e in PROBED for k in range(K)])
    arrays["init_loss"] = evaluate_points(build, template, pts, line_split)[0].reshape(len(PROBED), K, -1)
    # Li et al.: filter-normalised random directions around each end, D per end.
    t = np.linspace(-1, 1, cfg.slice_points)
    arrays["slice_t"] = t
    tt = torch.as_tensor(t, dtype=template.dtype, device=dev)[:, None]
    pts = []
    for e in PROBED:
        for k in range(K):
            one = Ensemble.from_stacked(build, template.unflatten(theta[(e, k)][None]), dev)
            # the same raw draws for every end of pair index k (each normalised to its own end): paired contrasts
            gen = torch.Generator().manual_seed(cfg.seed + 7919 * k)
            for _ in range(cfg.slice_directions):
                pts.append(theta[(e, k)][None] + tt * filter_normalized_direction(one, 0, gen)[None])
    arrays["slice_loss"] = evaluate_points(build, template, torch.cat(pts), slice_split)[0].reshape(
        len(PROBED), K, cfg.slice_directions, -1)
    return cache.Result(arrays, {"cells": [cell_name(c) for c in CELLS], "ends": list(END_KINDS),
                                 "probed": list(PROBED), "end_metrics": list(END_METRICS)})


END_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "epochs", "reached")


# ------------------------------------------------------------------ 1-3d / 1-3e
@dataclass(frozen=True)
class BatchSweepConfig:
    hidden: tuple[int, ...] = (64, 64)
    batch_sizes: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    lr_rules: tuple[str, ...] = ("fixed", "linear")   # lr, or lr * batch / ref_batch (Goyal et al. 2017)
    ref_batch: int = 256
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    targets: tuple[float, ...] = (0.1, 0.05)    # each model is kept the first time its full training loss <= each
    max_epochs: int = 150                   # ... or after this many epochs (then reported as not reached)
    lr: float = 1e-3
    train_subset: int | None = None
    sensitivity_subset: int | None = None   # first n test images; None = all 10,000
    label_subset: int = 2_000               # true vs random labels (Novak et al.), both on the first n images ...
    label_batches: tuple[int, ...] = (16, 64, 256)   # ... at these batch sizes (learning rate lr) ...
    label_max_epochs: int = 600             # ... for at most this many epochs
    device: str = "auto"

    def check(self) -> None:
        bad = sorted(set(self.lr_rules) - set(LR_RULES))
        if bad:
            raise ConfigError(f"BatchSweepConfig.lr_rules: unknown rule(s) {', '.join(bad)}; choose from "
                              f"{', '.join(LR_RULES)}.")
        if list(self.targets) != sorted(self.targets, reverse=True):
            raise ConfigError("BatchSweepConfig.targets: give them from the highest loss to the lowest.")


LR_RULES = ("fixed", "linear")
LABELS = ("true", "random")


def rule_lr(cfg: BatchSweepConfig, rule: str, batch: int) -> float:
    """The learning rate of `rule` at `batch`: fixed, or scaled linearly with the batch from ref_batch."""
    return cfg.lr if rule == "fixed" else cfg.lr * batch / cfg.ref_batch


BATCH_SWEEP_PROFILES = {
    "smoke": dict(hidden=(8,), batch_sizes=(16, 256), seeds=(0,), targets=(1.8, 1.5), max_epochs=2,
                  train_subset=512, sensitivity_subset=64, label_subset=128, label_batches=(16,),
                  label_max_epochs=2),
    "quick": dict(batch_sizes=(64, 256, 1024), seeds=(0, 1), targets=(0.2, 0.15), max_epochs=60, train_subset=5_000,
                  sensitivity_subset=500, label_subset=500, label_batches=(16, 64), label_max_epochs=200),
    "full": dict(),
}


def _train_batch(cfg: BatchSweepConfig, progress: bool) -> cache.Result:
    """One batch size, every learning-rate rule and seed in one ensemble (rules
    that give the same rate here train once). Arrays [T, R, S]; weights
    [T * R * S, ...] in that order."""
    dev = torch.device(cfg.device)
    (bs,) = cfg.batch_sizes
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    lrs = sorted({rule_lr(cfg, r, bs) for r in cfg.lr_rules})
    members = [(lr, s) for lr in lrs for s in cfg.seeds]
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for _, s in members], dev)
    h, states = fit_to_targets(ens, train, data.test, targets=cfg.targets, max_epochs=cfg.max_epochs, batch_size=bs,
                               lr=tuple(lr for lr, _ in members), progress=progress,
                               desc=f"1-3d batch {bs}, lr {', '.join(f'{v:g}' for v in lrs)}")
    h["sensitivity"] = _sensitivities(mnist_mlp(cfg.hidden), states, data.test.subset(cfg.sensitivity_subset).x, dev)
    # member (lr, seed) -> rows (rule, seed)
    rows = [members.index((rule_lr(cfg, r, bs), s)) for r in cfg.lr_rules for s in cfg.seeds]
    R, S, T = len(cfg.lr_rules), len(cfg.seeds), len(cfg.targets)
    arrays = {k: v[:, rows].reshape(T, R, S, *v.shape[2:]) for k, v in h.items() if not k.endswith("_curve")}
    arrays["loss_curve"] = h["loss_curve"][:, rows].reshape(-1, R, S)
    weights = {k: v[:, rows].reshape(T * R * S, *v.shape[2:]) for k, v in states.items()}
    return cache.Result(arrays, {"batch_size": bs, "lr": {r: rule_lr(cfg, r, bs) for r in cfg.lr_rules}},
                        weights=weights)


def _sensitivities(build, states: dict[str, torch.Tensor], x: torch.Tensor, dev: torch.device) -> np.ndarray:
    """Mean sensitivity over x of every kept model: states [C, N, ...] -> [C, N]."""
    C = next(iter(states.values())).shape[0]
    out = []
    for c in range(C):
        kept = Ensemble.from_stacked(build, {k: v[c] for k, v in states.items()}, dev)
        out.append(sensitivity(kept, x).mean(1).cpu().numpy())
    return np.stack(out)


def _train_labels(cfg: BatchSweepConfig, progress: bool) -> cache.Result:
    """True and random labels on the same images (the first label_subset), one
    batch size, every seed, in one ensemble. Arrays [T, L, S]."""
    dev = torch.device(cfg.device)
    (bs,) = cfg.label_batches
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset).subset(cfg.label_subset)
    y = {"true": train.y, "random": random_labels(train.y, seed=0)}
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for _ in LABELS for s in cfg.seeds], dev)
    labels = torch.stack([y[lab] for lab in LABELS for _ in cfg.seeds])
    h, states = fit_to_targets(ens, Split(train.x, labels), data.test, targets=cfg.targets,
                               max_epochs=cfg.label_max_epochs, batch_size=bs, lr=cfg.lr, progress=progress,
                               desc=f"1-3d labels, batch {bs}")
    h["sensitivity"] = _sensitivities(mnist_mlp(cfg.hidden), states, data.test.subset(cfg.sensitivity_subset).x, dev)
    L, S, T = len(LABELS), len(cfg.seeds), len(cfg.targets)
    arrays = {k: v.reshape(T, L, S) for k, v in h.items() if not k.endswith("_curve")}
    arrays["loss_curve"] = h["loss_curve"].reshape(-1, L, S)
    return cache.Result(arrays, {"batch_size": bs, "agreement": float((y["random"] == y["true"]).float().mean())})


def batch_sweep_units(cfg: BatchSweepConfig) -> list[Unit]:
    """One unit per batch size (its rules and seeds train as one ensemble), then
    one per batch size of the label comparison."""
    return (split_units("batch_sweep_unit", cfg, ("batch_sizes",), _train_batch) +
            split_units("batch_sweep_labels", cfg, ("label_batches",), _train_labels))


def assemble_batch_sweep(cfg: BatchSweepConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: batch_size [B]; lr [B, R]; train_loss, train_acc, test_loss,
    test_acc, sensitivity, epochs, steps, reached [B, T, R, S] (targets T, rules
    R, seeds S; at each matched training loss, see `flatness.fit_to_targets`;
    sensitivity = mean over the test images of the per-image Frobenius norm of
    d softmax / d input); loss_curve [B] objects; label_batch_size [Bl] and
    label_{metric} [Bl, T, L, S] for the label comparison (true, random)."""
    B = len(cfg.batch_sizes)
    metrics = ("train_loss", "train_acc", "test_loss", "test_acc", "sensitivity", "epochs", "steps", "reached")
    arrays = stack_units(parts[:B], metrics)
    arrays |= {f"label_{k}": v for k, v in stack_units(parts[B:], metrics).items()}
    arrays["batch_size"] = np.array(cfg.batch_sizes)
    arrays["label_batch_size"] = np.array(cfg.label_batches)
    arrays["lr"] = np.array([[rule_lr(cfg, r, b) for r in cfg.lr_rules] for b in cfg.batch_sizes])
    return cache.Result(arrays, {"lr_rules": list(cfg.lr_rules), "targets": list(cfg.targets),
                                 "labels": list(LABELS)})


def batch_sweep_models(cfg: BatchSweepConfig, batch: int, progress: bool = True) -> tuple[Ensemble, cache.Result]:
    """The trained models of one batch size of the sweep, from the cache: members
    in the order (target, rule, seed); and that batch size's unit result."""
    unit = split_units("batch_sweep_unit", dataclasses.replace(cfg, batch_sizes=(batch,)), (), _train_batch)[0]
    part = unit(progress)
    dev = torch.device(cfg.device)
    ens = Ensemble.from_stacked(mnist_mlp(cfg.hidden), {k: v.to(dev) for k, v in part.weights.items()}, dev)
    return ens, part


@dataclass(frozen=True)
class KeskarConfig:
    """Keskar et al.'s (2017) MNIST setup: network F1, Adam (their rate, Keras's
    default 1e-3), batch 256 against 10% of the training set, trained until the
    training loss ceases to improve; and, as the controlled variation, our
    1-3d MLP trained the same way. Both are also kept at 1-3d's lowest loss target."""
    networks: tuple[str, ...] = ("f1", "mlp")
    regimes: tuple[str, ...] = ("small", "large")
    small_batch: int = 256
    large_percent: int = 10               # the large batch: this percentage of the training set
    lr: float = 1e-3
    patience: int = 5                     # epochs without a lower training loss that stop a run
    max_epochs: int = 30                  # the cap, if the rule has not stopped it before
    target_loss: float = 0.05             # the matched-loss comparison (1-3d's lowest target)
    f1_seeds: tuple[int, ...] = (0, 1)
    mlp_hidden: tuple[int, ...] = (64, 64)
    mlp_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    f1_width: int = 512                   # F1's hidden width (512: the paper's; smaller only in the smoke test)
    train_subset: int | None = None
    device: str = "auto"

    def check(self) -> None:
        for field, allowed in (("networks", ("f1", "mlp")), ("regimes", ("small", "large"))):
            bad = sorted(set(getattr(self, field)) - set(allowed))
            if bad:
                raise ConfigError(f"KeskarConfig.{field}: unknown {', '.join(bad)}; choose from {', '.join(allowed)}.")
        if self.large_percent > 100:
            raise ConfigError("KeskarConfig.large_percent: at most 100.")


def keskar_batch(cfg: KeskarConfig, regime: str, n_train: int) -> int:
    return cfg.small_batch if regime == "small" else max(1, n_train * cfg.large_percent // 100)


@dataclass(frozen=True)
class SharpnessConfig:
    sweep: BatchSweepConfig = BatchSweepConfig()   # the models (reused from 1-3d's cache)
    keskar: KeskarConfig = KeskarConfig()
    epsilons: tuple[float, ...] = (1e-3, 5e-4)
    ascent_steps: int = 20                # projected gradient ascent iterations
    lbfgsb_iters: int = 10                # Keskar's maximiser, as a check of the ascent (first epsilon only)
    loss_subset: int = 10_000             # first n training images the loss is measured on
    hessian_subset: int = 10_000          # ... and the Hessian eigenvalue
    device: str = "auto"


SHARPNESS_PROFILES = {
    "smoke": dict(sweep=make_config(BatchSweepConfig, BATCH_SWEEP_PROFILES, "smoke"),
                  keskar=KeskarConfig(f1_seeds=(0,), mlp_seeds=(0,), mlp_hidden=(8,), f1_width=16, max_epochs=2,
                                      patience=1, train_subset=512, target_loss=1.5),
                  ascent_steps=3, loss_subset=256, hessian_subset=256),
    "quick": dict(sweep=make_config(BatchSweepConfig, BATCH_SWEEP_PROFILES, "quick"),
                  keskar=KeskarConfig(f1_seeds=(0,), mlp_seeds=(0, 1), f1_width=64, max_epochs=10, patience=2,
                                      train_subset=5_000, target_loss=0.15),
                  ascent_steps=5, lbfgsb_iters=5, loss_subset=1_000, hessian_subset=1_000),
    "full": dict(),
}


def lbfgsb_per_member(build, ens: Ensemble, split: Split, eps: float, iters: int) -> np.ndarray:
    """Keskar's L-BFGS-B sharpness of every member [N], each maximised on an
    ensemble of that member alone (so that an evaluation computes one model's
    loss, not the whole ensemble's)."""
    out = np.zeros(len(ens))
    for i in range(len(ens)):
        one = Ensemble.from_stacked(build, {k: v[i:i + 1].detach() for k, v in ens.params.items()}, ens.device)
        out[i] = epsilon_sharpness_lbfgsb(ensemble_loss_fn(one, split.x, split.y), one, eps, iters=iters)[0]
    return out


def _sharpness_of(cfg: SharpnessConfig, build, ens: Ensemble, split: Split, hess_split: Split,
                  progress: bool, desc: str) -> dict[str, np.ndarray]:
    """sharpness [E, N] (projected ascent), sharpness_lbfgsb [N] (first epsilon),
    top_eig [N] of every member of `ens`."""
    f = ensemble_loss_fn(ens, split.x, split.y)
    out = {"sharpness": np.stack([epsilon_sharpness(f, ens.params, eps, steps=cfg.ascent_steps).cpu().numpy()
                                  for eps in cfg.epsilons]),
           "sharpness_lbfgsb": lbfgsb_per_member(build, ens, split, cfg.epsilons[0], cfg.lbfgsb_iters)}
    top = np.zeros(len(ens))
    for s in tqdm(range(len(ens)), desc=desc, disable=not progress, leave=False):
        model = build().to(ens.device)
        model.load_state_dict(ens.state_dict(s))
        fl = FlatLoss(model, F.cross_entropy, hess_split.x, hess_split.y)
        top[s] = top_eigenvalues(fl, fl.theta0, k=1, seed=s, tol=1e-3)[0]
    out["top_eig"] = top
    return out


def _compute_sharpness(cfg: SharpnessConfig, progress: bool) -> cache.Result:
    """One batch size of 1-3d: arrays sharpness [E, T, R, S] (Keskar
    epsilon-sharpness for each epsilon), sharpness_lbfgsb [T, R, S], top_eig
    [T, R, S] (largest Hessian eigenvalue of the training loss on the subset,
    from Hessian-vector products), reached [T, R, S] (the model met its target)."""
    dev = torch.device(cfg.device)
    (bs,) = cfg.sweep.batch_sizes
    data = load_mnist(dev)
    ens, part = batch_sweep_models(cfg.sweep, bs, progress)
    shape = (len(cfg.sweep.targets), len(cfg.sweep.lr_rules), len(cfg.sweep.seeds))
    out = _sharpness_of(cfg, mnist_mlp(cfg.sweep.hidden), ens, data.train.subset(cfg.loss_subset),
                        data.train.subset(cfg.hessian_subset), progress, f"1-3e batch {bs}")
    arrays = {k: v.reshape(*v.shape[:-1], *shape) for k, v in out.items()}
    arrays["reached"] = part.arrays["reached"]          # whether each model met its target (1-3d's flag)
    return cache.Result(arrays, {"batch_size": bs})


def _compute_keskar(cfg: SharpnessConfig, progress: bool) -> cache.Result:
    """One network and regime of the Keskar comparison, its seeds in one
    ensemble, kept at the matched loss and at the stopping rule (rows C = 2).
    Arrays [C, S]: epochs, reached, {train,test}_{loss,acc}, sharpness_lbfgsb
    (their epsilon, the first, and their maximiser, L-BFGS-B); loss_curve [E + 1, S]."""
    k = cfg.keskar
    dev = torch.device(cfg.device)
    (net,), (regime,) = k.networks, k.regimes
    data = load_mnist(dev)
    train = data.train.subset(k.train_subset)
    bs = keskar_batch(k, regime, len(train))
    if net == "f1":
        build, seeds, chunk = keskar_f1(k.f1_width), k.f1_seeds, F1_CHUNK
    else:
        build, seeds, chunk = mnist_mlp(k.mlp_hidden), k.mlp_seeds, None
    ens = Ensemble(build, seeds, dev)
    h, states = fit_to_targets(ens, train, data.test, targets=(k.target_loss,), patience=k.patience,
                               max_epochs=k.max_epochs, batch_size=bs, lr=k.lr, chunk=chunk, progress=progress,
                               desc=f"1-3e Keskar {net}, batch {bs}")
    loss_split = train.subset(cfg.loss_subset)
    lbfgsb = [lbfgsb_per_member(build, Ensemble.from_stacked(build, {n: v[c] for n, v in states.items()}, dev),
                                loss_split, cfg.epsilons[0], cfg.lbfgsb_iters) for c in range(2)]
    arrays = {k2: v for k2, v in h.items() if k2 not in ("steps", "acc_curve")}
    arrays["sharpness_lbfgsb"] = np.stack(lbfgsb)
    return cache.Result(arrays, {"network": net, "regime": regime, "batch_size": bs, "params": count_params(ens)})


def sharpness_units(cfg: SharpnessConfig) -> list[Unit]:
    """One unit per batch size of 1-3d (reading its cached models), then one per
    network and regime of the Keskar comparison."""
    # each unit's config holds only what it reads (the other part at its defaults), so that its cache
    # entry does not change when the other part's settings do
    dev = cfg.device
    per_batch = [Unit("sharpness_batch", dataclasses.replace(
        cfg, sweep=dataclasses.replace(cfg.sweep, batch_sizes=(b,)), keskar=KeskarConfig(device=dev)),
        _compute_sharpness) for b in cfg.sweep.batch_sizes]
    keskar = [Unit("sharpness_keskar", dataclasses.replace(
        cfg, sweep=BatchSweepConfig(device=dev), keskar=dataclasses.replace(cfg.keskar, networks=(n,), regimes=(r,))),
        _compute_keskar) for n in cfg.keskar.networks for r in cfg.keskar.regimes]
    return per_batch + keskar


def assemble_sharpness(cfg: SharpnessConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: batch_size [B], epsilons [E]; sharpness [B, E, T, R, S],
    sharpness_lbfgsb, top_eig and reached [B, T, R, S] (1-3d's models); for each Keskar
    network n and regime r, keskar_{n}_{r}_{metric} (see `_compute_keskar`)."""
    B = len(cfg.sweep.batch_sizes)
    arrays = stack_units(parts[:B])
    arrays["batch_size"] = np.array(cfg.sweep.batch_sizes)
    arrays["epsilons"] = np.array(cfg.epsilons)
    keskar = {}
    for p in parts[B:]:
        n, r = p.summary["network"], p.summary["regime"]
        arrays |= {f"keskar_{n}_{r}_{k}": v for k, v in p.arrays.items()}
        keskar[f"{n}_{r}"] = {"batch_size": p.summary["batch_size"], "params": p.summary["params"]}
    return cache.Result(arrays, {"keskar": keskar})


# ================================================================== headline numbers, text, checks

ZHANG_SLOWDOWN = "a small constant factor"   # Zhang et al. (2017), CIFAR-10 (their Figure 1b), in words


def fit_times(a: dict, i: int, level: float) -> np.ndarray:
    """Epochs each run at fraction index i took to reach training accuracy
    `level` against its labels, interpolated between epochs (see
    `stats.crossing`); NaN for a run that never did. [D, S]"""
    c = a["acc_curve"][i]                                           # [E + 1, D, S]
    return np.array([[crossing(c[:, d, s], level) for s in range(c.shape[2])] for d in range(c.shape[1])])


def h_random_labels(r, cfg) -> dict:
    a = r.arrays
    n_train, n_test = cfg.train_subset, cfg.test_subset or TEST
    rows = []
    for i, f in enumerate(cfg.fractions):
        # fraction 0: one run per seed; otherwise a table [labellings, seeds] of crossed factors (every seed on
        # every labelling), whose intervals count both spreads (stats.crossed_mean_ci)
        one = (lambda v: v[0]) if f == 0 else (lambda v: v)
        t = one(fit_times(a, i, cfg.fit_acc))
        ok = np.isfinite(t)
        rows.append({"fraction": float(f), "runs": int(t.size), "fitted": int(ok.sum()),
                     "epochs_to_fit": rounded(geometric_ci(t if ok.all() else t[ok])) if ok.any() else None,
                     "epochs_to_fit_per_run": [rnd(v) if np.isfinite(v) else None for v in t.ravel()],
                     "test_acc": pct_ci(one(a["test_acc"][i]), n_test),
                     "train_acc": pct_ci(one(a["train_acc"][i]), n_train),
                     "agreement": rnd(100 * float(a["agreement"][i].mean()))})
    out = {"params": r.summary["params"], "train_subset": cfg.train_subset, "max_epochs": cfg.max_epochs,
           "fit_acc": rnd(100 * cfg.fit_acc), "seeds": len(cfg.seeds), "label_draws": len(cfg.label_draws),
           "rows": rows}
    fr = list(cfg.fractions)
    if fr[0] == 0 and fr[-1] == 1:
        # the slowdown, paired by seed: epochs to fit run (draw d, seed s) on random labels over seed s's
        # true-label run; a table [labellings, seeds] of crossed factors, like the rows above
        t0, t1 = fit_times(a, 0, cfg.fit_acc)[0], fit_times(a, len(fr) - 1, cfg.fit_acc)
        ratio = t1 / t0[None, :]                                         # [labellings, seeds]
        ok = np.isfinite(ratio) & (ratio > 0)
        out["slowdown"] = ({**rounded(geometric_ci(ratio if ok.all() else ratio[ok])),
                            "pairs_fitted": int(ok.sum()), "pairs": int(ratio.size), "published": ZHANG_SLOWDOWN}
                           if ok.any() else None)
        # test accuracy on random labels against chance: one labelling alone can sit off 10% (its class
        # frequencies), so each labelling is shown and the interval counts their spread
        acc = a["test_acc"][-1]                                          # [labellings, seeds]
        chance = pct_ci(acc, n_test)
        out["random_test_acc"] = {"per_draw": [rnd(100 * float(v)) for v in acc.mean(1)], "all": chance,
                                  "contains_chance": bool(chance["lo"] <= 10 <= chance["hi"])}
    return out


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


def slice_rise(t, loss, at: float = 0.5) -> np.ndarray:
    """How much the training loss rises a filter-normalised distance `at` from an
    end: the mean of the losses at t = -at and t = +at (nearest grid points)
    minus the loss at t = 0, over the last axis of `loss` [..., T]."""
    t, loss = np.asarray(t), np.asarray(loss)
    i = lambda v: int(np.argmin(np.abs(t - v)))
    return (loss[..., i(-at)] + loss[..., i(at)]) / 2 - loss[..., i(0)]


def barrier(alpha, loss) -> np.ndarray:
    """The loss barrier on a line between two ends (Frankle et al. 2020): the
    largest excess of the loss over the straight interpolation of the two end
    losses, max over alpha in [0, 1] of L(alpha) - ((1 - alpha) L(0) + alpha L(1)),
    over the last axis of `loss` [..., A] (alpha [A] from 0 to 1)."""
    alpha, loss = np.asarray(alpha), np.asarray(loss)
    chord = (1 - alpha) * loss[..., :1] + alpha * loss[..., -1:]
    return (loss - chord).max(-1)


def rising_steps(loss) -> np.ndarray:
    """The largest rise between consecutive points of a line [..., A] (<= 0: the
    loss never rises along it, Goodfellow et al.'s monotone path)."""
    return np.diff(np.asarray(loss), axis=-1).max(-1)


def seed_slopes(x, y, ok=None, log_y: bool = True) -> np.ndarray:
    """The least-squares slope of (log) y against log x, one per seed: x [B],
    y [B, S], ok [B, S] which points count (a model that reached its target).
    NaN for a seed with fewer than three points that count."""
    x, y = np.log(np.asarray(x, float)), np.asarray(y, float)
    y = np.log(y) if log_y else y
    ok = np.ones(y.shape, bool) if ok is None else np.asarray(ok, bool)
    out = np.full(y.shape[1], np.nan)
    for s in range(y.shape[1]):
        m = ok[:, s] & np.isfinite(y[:, s])
        if m.sum() >= 3:
            out[s] = np.polyfit(x[m], y[m, s], 1)[0]
    return out


def ci_reached(x, ok, fn=ci) -> dict:
    """fn (ci, or a bounded interval: acc_test_ci, nonneg_ci) over the models that
    reached their target (ok), the others left out of a matched comparison; n
    says how many remain."""
    return ci_finite(np.where(np.asarray(ok, bool), np.asarray(x, float), np.nan), fn)


def ci_finite(x, fn=ci) -> dict:
    """fn (default ci) of the finite values of x (n says how many)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return fn(x) if x.size else {"mean": None, "ci95": None, "n": 0}


def acc_test_ci(p) -> dict:
    """Test accuracies p in [0, 1] (the whole test set) in percent, on the logit scale (pct_ci)."""
    return pct_ci(p, TEST)


def h_interpolation(r, cfg) -> dict:
    a = r.arrays
    cells = r.summary["cells"]
    bars = barrier(a["barrier_alpha"], a["barrier_loss"])                      # [C, K]
    out = {"target_loss": cfg.target_loss, "max_epochs": cfg.max_epochs, "pairs_per_cell": cfg.pairs,
           "batches": [cfg.small_batch, cfg.large_batch], "lrs": [cfg.lr, cfg.large_lr], "cells": {}, "pairs": {}}
    geo = ("norm_end0", "norm_end1", "distance", "moved_end0", "moved_end1")
    for c, name in enumerate(cells):
        out["cells"][name] = {"barrier": nonneg_ci(bars[c]), "distance": nonneg_ci(a["geometry"][c, :, 2])}
        out["pairs"][name] = [{"barrier": rnd(bars[c, k]), **{g: rnd(a["geometry"][c, k, j]) for j, g in enumerate(geo)}}
                              for k in range(bars.shape[1])]
    idx = {n: i for i, n in enumerate(cells)}
    # paired by k: each contrast is a difference of barriers of the same pair index
    contrasts = {"shared: small-large minus small-small": ("shared/small-large", "shared/small-small"),
                 "shared: large-large minus small-small": ("shared/large-large", "shared/small-small"),
                 "independent: small-large minus small-small": ("independent/small-large", "independent/small-small"),
                 "independent: large-large minus small-small": ("independent/large-large", "independent/small-small"),
                 "small-small: independent minus shared": ("independent/small-small", "shared/small-small"),
                 "small-large: independent minus shared": ("independent/small-large", "shared/small-large")}
    out["barrier_contrasts"] = {k: ci(bars[idx[p]] - bars[idx[q]]) for k, (p, q) in contrasts.items()}
    em = a["end_metrics"]                                                      # [ends, K, metrics]
    m = {n: i for i, n in enumerate(END_METRICS)}
    out["ends"] = {e: {"train_loss": nonneg_ci(em[i, :, m["train_loss"]]),
                       "test_acc": acc_test_ci(em[i, :, m["test_acc"]]), "epochs": nonneg_ci(em[i, :, m["epochs"]]),
                       "reached": int(em[i, :, m["reached"]].sum())}
                   for i, e in enumerate(r.summary["ends"])}
    rises = slice_rise(a["slice_t"], a["slice_loss"])                          # [probed, K, D]
    steps = rising_steps(a["init_loss"])                                       # [probed, K]
    probed = r.summary["probed"]
    out["probed"] = {e: {"slice_rise": ci(rises[i].mean(1)), "slice_rise_per_end": [rnd(v) for v in rises[i].mean(1)],
                         "slice_rise_direction_spread": nonneg_ci(rises[i].std(1, ddof=1)) if rises.shape[2] > 1
                                                        else {"mean": None, "ci95": None, "n": int(rises.shape[1])},
                         "init_line_monotone": int((steps[i] <= 0).sum()), "init_line_max_rise": ci(steps[i])}
                     for i, e in enumerate(probed)}
    p = {n: i for i, n in enumerate(probed)}
    out["slice_contrasts"] = {"large minus small": ci(rises[p["large"]].mean(1) - rises[p["small"]].mean(1)),
                              "small_b minus small": ci(rises[p["small_b"]].mean(1) - rises[p["small"]].mean(1)),
                              "large_lr minus small": ci(rises[p["large_lr"]].mean(1) - rises[p["small"]].mean(1))}
    out["slice_directions"], out["init_points"] = int(rises.shape[2]), int(a["init_loss"].shape[-1])
    out["per_seed"] = {"barrier": {name: [rnd(v) for v in bars[c]] for c, name in enumerate(cells)},
                       "slice_rise": {e: [rnd(v) for v in rises[i].mean(1)] for i, e in enumerate(probed)},
                       "init_line_max_rise": {e: [rnd(v) for v in steps[i]] for i, e in enumerate(probed)}}
    out["ends_total"] = int(em.shape[0] * em.shape[1])
    out["ends_reached"] = int(em[:, :, m["reached"]].sum())
    return out


def h_batch_sweep(r, cfg) -> dict:
    a = r.arrays
    rules, targets = r.summary["lr_rules"], r.summary["targets"]
    gap = a["test_loss"] - a["train_loss"]                                     # [B, T, R, S]
    agap = 100 * (a["train_acc"] - a["test_acc"])
    ok = a["reached"].astype(bool)
    out = {"targets": targets, "lr_rules": rules, "ref_batch": cfg.ref_batch, "lr": cfg.lr,
           "max_epochs": cfg.max_epochs, "seeds": len(cfg.seeds), "cells": [], "per_seed": {}, "slopes": {}}
    for t, target in enumerate(targets):
        for ri, rule in enumerate(rules):
            key = f"{rule}/{target:g}"
            for b, bs in enumerate(a["batch_size"]):
                sl = (b, t, ri)
                out["cells"].append({
                    "target": target, "rule": rule, "batch": int(bs), "lr": rnd(a["lr"][b, ri]),
                    "reached": int(ok[sl].sum()), "epochs": nonneg_ci(a["epochs"][sl]),
                    "train_loss": nonneg_ci(a["train_loss"][sl]),
                    "test_acc": ci_reached(a["test_acc"][sl], ok[sl], acc_test_ci),
                    "loss_gap": ci_reached(gap[sl], ok[sl]), "acc_gap": ci_reached(agap[sl], ok[sl]),
                    "sensitivity": ci_reached(a["sensitivity"][sl], ok[sl], nonneg_ci)})
            out["per_seed"][key] = {k: [[rnd(v) for v in row] for row in arr[:, t, ri]] for k, arr in (
                ("sensitivity", a["sensitivity"]), ("loss_gap", gap), ("acc_gap", agap),
                ("train_loss", a["train_loss"]), ("reached", a["reached"].astype(float)))}
            o = ok[:, t, ri]
            out["slopes"][key] = {
                "sensitivity": ci_finite(seed_slopes(a["batch_size"], a["sensitivity"][:, t, ri], o)),
                # the gaps can be negative: per doubling of the batch, on a linear scale
                "loss_gap": ci_finite(np.log(2) * seed_slopes(a["batch_size"], gap[:, t, ri], o, log_y=False)),
                "acc_gap": ci_finite(np.log(2) * seed_slopes(a["batch_size"], agap[:, t, ri], o, log_y=False))}
    out["spearman_sensitivity_gap"] = {
        f"{target:g}": correlation(spearman_ci, a["sensitivity"][:, t][ok[:, t]], gap[:, t][ok[:, t]])
        for t, target in enumerate(targets)}
    # true vs random labels on the same images
    la = {k[6:]: v for k, v in a.items() if k.startswith("label_")}
    lgap = la["test_loss"] - la["train_loss"]                                  # [Bl, T, L, S]
    lok = la["reached"].astype(bool)
    labels = r.summary["labels"]
    out["labels"] = {"subset": cfg.label_subset, "max_epochs": cfg.label_max_epochs, "rows": [], "spearman": {}}
    for t, target in enumerate(targets):
        for li, lab in enumerate(labels):
            for b, bs in enumerate(la["batch_size"]):
                sl = (b, t, li)
                out["labels"]["rows"].append({
                    "target": target, "labels": lab, "batch": int(bs), "reached": int(lok[sl].sum()),
                    "epochs": nonneg_ci(la["epochs"][sl]), "train_loss": nonneg_ci(la["train_loss"][sl]),
                    "test_acc": ci_reached(la["test_acc"][sl], lok[sl], acc_test_ci),
                    "loss_gap": ci_reached(lgap[sl], lok[sl]),
                    "sensitivity": ci_reached(la["sensitivity"][sl], lok[sl], nonneg_ci)})
        m = lok[:, t]
        within = {lab: correlation(spearman_ci, la["sensitivity"][:, t, li][m[:, li]], lgap[:, t, li][m[:, li]])
                  for li, lab in enumerate(labels)}
        out["labels"]["spearman"][f"{target:g}"] = {**within, "across": correlation(
            spearman_ci, la["sensitivity"][:, t][m], lgap[:, t][m])}
    out["labels"]["per_seed"] = {f"{target:g}/{lab}": {
        "sensitivity": [[rnd(v) for v in row] for row in la["sensitivity"][:, t, li]],
        "loss_gap": [[rnd(v) for v in row] for row in lgap[:, t, li]],
        "reached": [[float(v) for v in row] for row in lok[:, t, li]]}
        for t, target in enumerate(targets) for li, lab in enumerate(labels)}
    out["labels"]["batches"] = [int(b) for b in la["batch_size"]]
    return out


KESKAR_PUBLISHED = {"sharpness_small": 1.23, "sharpness_large": 205.14, "test_acc_small": 98.03,
                    "test_acc_large": 97.81}   # Keskar et al. 2017, Tables 2 and 3 (network F1, epsilon 1e-3)


def h_sharpness(r, cfg) -> dict:
    a = r.arrays
    eps = [float(e) for e in a["epsilons"]]
    sw = cfg.sweep
    out = {"epsilons": eps, "lbfgsb_iters": cfg.lbfgsb_iters, "targets": list(sw.targets),
           "lr_rules": list(sw.lr_rules), "cells": [], "slopes": {},
           "per_seed": {}, "contrast_256_4096": {}}
    ok = a["reached"].astype(bool)                        # [B, T, R, S]: whether each model met its target
    bsz = a["batch_size"]
    for t, target in enumerate(sw.targets):
        for ri, rule in enumerate(sw.lr_rules):
            key = f"{rule}/{target:g}"
            for b, bs in enumerate(bsz):
                out["cells"].append({"target": target, "rule": rule, "batch": int(bs), "reached": int(ok[b, t, ri].sum()),
                                     "n": int(ok.shape[-1]),
                                     "sharpness": [ci_reached(a["sharpness"][b, e, t, ri], ok[b, t, ri], nonneg_ci)
                                                   for e in range(len(eps))],
                                     "sharpness_lbfgsb": ci_reached(a["sharpness_lbfgsb"][b, t, ri], ok[b, t, ri],
                                                                    nonneg_ci),
                                     "top_eig": ci_reached(a["top_eig"][b, t, ri], ok[b, t, ri], nonneg_ci)})
            o = ok[:, t, ri]
            out["slopes"][key] = {**{f"sharpness_eps{e:g}": ci_finite(seed_slopes(bsz, a["sharpness"][:, i, t, ri], o))
                                     for i, e in enumerate(eps)},
                                  "sharpness_lbfgsb": ci_finite(seed_slopes(bsz, a["sharpness_lbfgsb"][:, t, ri], o)),
                                  "top_eig": ci_finite(seed_slopes(bsz, a["top_eig"][:, t, ri], o))}
            out["per_seed"][key] = {"sharpness": [[rnd(v) for v in row] for row in a["sharpness"][:, 0, t, ri]],
                                    "sharpness_lbfgsb": [[rnd(v) for v in row] for row in a["sharpness_lbfgsb"][:, t, ri]],
                                    "top_eig": [[rnd(v) for v in row] for row in a["top_eig"][:, t, ri]]}
            if 256 in bsz and 4096 in bsz:
                i, j = list(bsz).index(256), list(bsz).index(4096)
                out["contrast_256_4096"][key] = rnd(a["sharpness_lbfgsb"][j, t, ri].mean() /
                                                    a["sharpness_lbfgsb"][i, t, ri].mean())
    out["keskar_f1"] = _h_keskar(a, r.summary["keskar"], cfg.keskar)
    return out


def _h_keskar(a, runs: dict, k: KeskarConfig) -> dict:
    """Per network and regime, at the matched loss (row 0) and at the stopping
    rule (row 1): sharpness at the first epsilon (L-BFGS-B, Keskar's maximiser),
    accuracies, epochs; the large/small ratios."""
    out = {"published": KESKAR_PUBLISHED, "target_loss": k.target_loss, "patience": k.patience,
           "max_epochs": k.max_epochs, "lr": k.lr, "runs": {}, "ratios": {}}
    conds = ("matched", "stop")
    for key, info in runs.items():
        p = f"keskar_{key}_"
        run = {"batch_size": info["batch_size"], "params": info["params"]}
        for c, cond in enumerate(conds):
            run[cond] = {"reached": int(a[p + "reached"][c].sum()), "n": int(a[p + "reached"].shape[1]),
                         "epochs": nonneg_ci(a[p + "epochs"][c]), "train_loss": nonneg_ci(a[p + "train_loss"][c]),
                         "train_acc": pct_ci(a[p + "train_acc"][c], k.train_subset or TRAIN),
                         "test_acc": acc_test_ci(a[p + "test_acc"][c]),
                         "sharpness_lbfgsb": nonneg_ci(a[p + "sharpness_lbfgsb"][c]),
                         "per_seed_sharpness_lbfgsb": [rnd(v) for v in a[p + "sharpness_lbfgsb"][c]]}
        out["runs"][key] = run
    for net in sorted({key.split("_")[0] for key in runs}):   # sorted: a set's order varies between processes
        if f"{net}_small" in runs and f"{net}_large" in runs:
            # at the matched loss the ratio is a matched comparison only if every run of both regimes got there
            met = (a[f"keskar_{net}_large_reached"][0].all() and a[f"keskar_{net}_small_reached"][0].all())
            out["ratios"][net] = {cond: rnd(a[f"keskar_{net}_large_sharpness_lbfgsb"][c].mean() /
                                            a[f"keskar_{net}_small_sharpness_lbfgsb"][c].mean())
                                  if cond == "stop" or met else None for c, cond in enumerate(conds)}
    out["ratios"]["published"] = rnd(KESKAR_PUBLISHED["sharpness_large"] / KESKAR_PUBLISHED["sharpness_small"])
    return out


def c_random_labels(r, cfg) -> dict[str, Check]:
    n = {"train": one_sample(cfg.train_subset, TRAIN), "test": one_sample(cfg.test_subset, TEST)}
    out = {}
    for i, f in enumerate(cfg.fractions):
        for split in ("train", "test"):
            out[f"{split}_acc[random={f:g}]"] = Check(f"1-3a/{split}_acc", "lin", pct(runs(r.arrays, f"{split}_acc", i)),
                                                      n[split])
        epochs = vals(runs(r.arrays, "epochs", i))
        out[f"epochs[random={f:g}]"] = Check("1-3a/epochs", "log", epochs, one_count(epochs))
    return out


def c_params_sweep(r, cfg) -> dict[str, Check]:
    fam = "1-3b-noise" if cfg.label_noise else "1-3b"
    n = {"train": one_sample(cfg.train_subset, TRAIN), "test": one_sample(None, TEST)}
    return {f"{split}_acc[width={w}]": Check(f"{fam}/{split}_acc", "lin", pct(r.arrays[f"{split}_acc"][i]), n[split])
            for i, w in enumerate(cfg.widths) for split in ("train", "test")}


def c_interpolation(r, cfg) -> dict[str, Check]:
    a = r.arrays
    bars = barrier(a["barrier_alpha"], a["barrier_loss"])
    out = {f"{name}/barrier": Check("1-3c/barrier", "lin", vals(bars[c])) for c, name in enumerate(r.summary["cells"])}
    m = {n: i for i, n in enumerate(END_METRICS)}
    for i, e in enumerate(r.summary["ends"]):
        out[f"end {e}/test_acc"] = Check("1-3c/test_acc", "lin", pct(a["end_metrics"][i, :, m["test_acc"]]),
                                         one_sample(None, TEST))
        out[f"end {e}/train_loss"] = Check("1-3c/train_loss", "log", vals(a["end_metrics"][i, :, m["train_loss"]]))
    return out


def c_batch_sweep(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out = {}
    for t, target in enumerate(cfg.targets):
        for ri, rule in enumerate(cfg.lr_rules):
            for b, bs in enumerate(a["batch_size"]):
                where = f"[{rule},target={target:g},batch={int(bs)}]"
                out[f"test_acc{where}"] = Check("1-3d/test_acc", "lin", pct(a["test_acc"][b, t, ri]),
                                                one_sample(None, TEST))
                for k in ("train_loss", "sensitivity", "epochs"):
                    v = vals(a[k][b, t, ri])
                    out[f"{k}{where}"] = Check(f"1-3d/{k}", "log", v, one_count(v) if k == "epochs" else 0.0)
        for li, lab in enumerate(LABELS):
            for b, bs in enumerate(a["label_batch_size"]):
                where = f"[{lab} labels,target={target:g},batch={int(bs)}]"
                for k in ("train_loss", "sensitivity", "epochs"):
                    v = vals(a[f"label_{k}"][b, t, li])
                    out[f"{k}{where}"] = Check(f"1-3d/{k}", "log", v, one_count(v) if k == "epochs" else 0.0)
    return out


def c_sharpness(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out = {}
    for t, target in enumerate(cfg.sweep.targets):
        for ri, rule in enumerate(cfg.sweep.lr_rules):
            for b, bs in enumerate(a["batch_size"]):
                where = f"{rule},target={target:g},batch={int(bs)}"
                for e, eps in enumerate(a["epsilons"]):
                    out[f"sharpness[eps={eps:g},{where}]"] = Check("1-3e/sharpness", "log", vals(a["sharpness"][b, e, t, ri]))
                out[f"sharpness_lbfgsb[{where}]"] = Check("1-3e/sharpness", "log", vals(a["sharpness_lbfgsb"][b, t, ri]))
                out[f"top_eig[{where}]"] = Check("1-3e/top_eig", "log", vals(a["top_eig"][b, t, ri]))
    for key in r.summary["keskar"]:
        for c, cond in enumerate(("matched", "stop")):
            # at the stopping rule's point: the epoch the rule fires at moves with the last bits
            out[f"keskar {key}/sharpness_lbfgsb[{cond}]"] = Check(
                "1-3e/keskar_sharpness", "log", vals(a[f"keskar_{key}_sharpness_lbfgsb"][c]), chaotic=cond == "stop")
            out[f"keskar {key}/test_acc[{cond}]"] = Check("1-3e/keskar_test_acc", "lin",
                                                          pct(a[f"keskar_{key}_test_acc"][c]), one_sample(None, TEST))
    return out


def block_random_labels(rl: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    table = md_table(["labels randomised", "runs fitted", "epochs to fit", "test acc at fit (%)",
                      "train labels equal to the true ones (%)"], [
        [f"{row['fraction']:.0%}", f"{row['fitted']}/{row['runs']}", fmt_m(row["epochs_to_fit"], 1),
         fmt_m(row["test_acc"]), f"{row['agreement']:.1f}"] for row in rl["rows"]])
    text = (f"\n\n{rl['params']:,} parameters, {rl['train_subset']:,} training images. A run has fitted when its "
            f"training accuracy against the labels it trains on reaches {rl['fit_acc']:g}% (within "
            f"{rl['max_epochs']} epochs); epochs to fit are interpolated between epochs (geometric mean of the runs "
            f"that fitted), test accuracy is the fitted model's (the last one's if it did not fit). Brackets: 95% "
            f"intervals, over {plural(rl['seeds'], 'seed')} on the true labels; where labels are randomised, over "
            f"{plural(rl['label_draws'], 'random labelling')} x {plural(rl['seeds'], 'seed')} as crossed factors "
            "(every seed runs on every labelling; two-way random-effects ANOVA, Satterthwaite's degrees of "
            "freedom), so the spread of labellings and of seeds both count. Accuracies: on the logit scale; epochs "
            "and their ratio: on the log scale.")
    sd = rl.get("slowdown")
    if sd is not None:
        text += (f"\n\n**Slowdown** (epochs to fit random labels over true labels, paired by seed): "
                 f"{fmt_m(sd, 2)}, geometric mean of {sd['pairs_fitted']} of {sd['pairs']} pairs "
                 f"(labelling x seed); Zhang et al. (2017) report {sd['published']} on CIFAR-10.")
    ch = rl.get("random_test_acc")
    if ch is not None:
        verdict = " (contains chance, 10%)" if ch["contains_chance"] else " (excludes chance, 10%)"
        text += (f"\n\n**Test accuracy on random labels**, per labelling: "
                 f"{', '.join(f'{v:.2f}' for v in ch['per_draw'])}% (mean of its seeds); all runs "
                 f"{fmt_m(ch['all'])}%{verdict}.")
    return table + text


def block_interpolation(ip: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    small, large = ip["batches"]
    lr, large_lr = ip["lrs"]
    words = {"small-small": f"batch {small} vs {small}", "small-large": f"batch {small} vs {large}",
             "large-large": f"batch {large} vs {large}", "lr": f"lr {lr:g} vs {large_lr:g} (batch {small})"}
    rows = []
    for name, c in ip["cells"].items():
        init, comp = name.split("/")
        rows.append([init, words[comp], fmt_m(c["barrier"], 3), fmt_m(c["distance"], 3)])
    t1 = md_table(["initialisation", "ends", "barrier (train loss)", "distance between ends"], rows)
    t2 = md_table(["contrast (paired by pair index)", "barrier difference"],
                  [[k, fmt_m(v, 3)] for k, v in ip["barrier_contrasts"].items()])
    names = {"small": f"batch {small}", "small_b": f"batch {small}, other order", "large": f"batch {large}",
             "large_b": f"batch {large}, other order", "large_lr": f"lr {large_lr:g}"}
    t3 = md_table(["end (shared initialisations)", "slice rise at |t| = 0.5", "spread over directions (sd)",
                   "init -> end line monotone", "largest rise on it"], [
        [names[e], fmt_m(v["slice_rise"], 3), fmt_m(v["slice_rise_direction_spread"], 3),
         f"{v['init_line_monotone']}/{v['slice_rise']['n']}", fmt_m(v["init_line_max_rise"], 3)]
        for e, v in ip["probed"].items()])
    t4 = md_table(["slice contrast (paired)", "difference of rises"],
                  [[k, fmt_m(v, 3)] for k, v in ip["slice_contrasts"].items()])
    bc, sc, pr = ip["barrier_contrasts"], ip["slice_contrasts"], ip["probed"]
    mono = sum(v["init_line_monotone"] for v in pr.values())
    n_lines = sum(v["slice_rise"]["n"] for v in pr.values())
    tests = (
        "\n\n**What each contrast tests** (interval of the paired difference, and where it lies):\n\n"
        f"- Frankle et al. (2020), linear mode connectivity: barrier of independent minus shared initialisation, "
        f"batch {small} vs {small}: {where(fmt_m(bc['small-small: independent minus shared'], 3), sign_of(bc['small-small: independent minus shared']))}"
        f"; batch {small} vs {large}: "
        f"{where(fmt_m(bc['small-large: independent minus shared'], 3), sign_of(bc['small-large: independent minus shared']))}.\n"
        f"- Batch size on the barrier, against the same-batch baseline: {small}-{large} minus {small}-{small}, "
        f"shared {where(fmt_m(bc['shared: small-large minus small-small'], 3), sign_of(bc['shared: small-large minus small-small']))}"
        f", independent "
        f"{where(fmt_m(bc['independent: small-large minus small-small'], 3), sign_of(bc['independent: small-large minus small-small']))}"
        f"; {large}-{large} minus {small}-{small}, "
        f"shared {where(fmt_m(bc['shared: large-large minus small-small'], 3), sign_of(bc['shared: large-large minus small-small']))}"
        f", independent "
        f"{where(fmt_m(bc['independent: large-large minus small-small'], 3), sign_of(bc['independent: large-large minus small-small']))}"
        f".\n"
        f"- Sharpness by slices (Li et al. 2018; Keskar et al.'s direction is large batch sharper): batch {large} "
        f"minus batch {small} {where(fmt_m(sc['large minus small'], 3), sign_of(sc['large minus small']))}; the other "
        f"batch order at batch {small}, the noise floor of this contrast, {where(fmt_m(sc['small_b minus small'], 3), sign_of(sc['small_b minus small']))}"
        f"; lr {large_lr:g} minus {lr:g} {where(fmt_m(sc['large_lr minus small'], 3), sign_of(sc['large_lr minus small']))}"
        f".\n"
        f"- Goodfellow et al. (2015), a monotone path from initialisation to solution: {mono} of {n_lines} lines "
        "never rise.")
    return (t1 + "\n\n" + t2 + "\n\n" + t3 + "\n\n" + t4 + tests +
            f"\n\n{ip['pairs_per_cell']} pairs per cell; over pairs (or ends), {BOUNDED_INTERVALS}. Every end "
            "trained until "
            f"its training loss reached {ip['target_loss']:g} (at most {ip['max_epochs']} epochs; "
            f"{ip['ends_reached']}/{ip['ends_total']} ends did). Shared: both ends from one initialisation, "
            "different batch orders; independent: the second end from another initialisation. Barrier: the largest "
            "excess of the training loss on the line over the straight interpolation of the two end losses "
            "(alpha in [0, 1]). Slice rise: training loss a filter-normalised step of 0.5 from the end (mean of both "
            f"sides) minus the loss at the end, averaged over {ip['slice_directions']} random directions per end "
            f"(Li et al. 2018). Init -> end line: the training loss at {ip['init_points']} points from the end's "
            "initialisation to the end; monotone when it never rises (Goodfellow et al. 2015).")


def sign_of(d: dict) -> str:
    """Where a mean's 95% interval lies: "above 0", "below 0", "contains 0"
    (or "undefined": one value, no interval)."""
    if d.get("mean") is None or d.get("ci95") is None:
        return "undefined"
    lo, hi = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "contains 0"


def where(text: str, place: str) -> str:
    """`text (place)`, or just `text` when the place is undefined (its text says so already)."""
    return text if place == "undefined" else f"{text} ({place})"


def sign_of_rho(d: dict) -> str:
    """The same for a rank correlation's bootstrap interval."""
    if d.get("rho") is None:
        return "undefined"
    lo, hi = d["ci"]
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "contains 0"


def _fmt_slope(d: dict, digits: int = 2) -> str:
    return "n/a" if d["mean"] is None else f"{fmt_m(d, digits)} (n={d['n']})"


def block_batch_sweep(bs: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    head = ["target", "lr rule", "batch", "lr", "reached", "epochs", "test acc (%)", "loss gap", "acc gap (points)",
            "sensitivity"]
    t1 = md_table(head, [
        [f"{c['target']:g}", c["rule"], c["batch"], f"{c['lr']:g}", f"{c['reached']}/{bs['seeds']}",
         fmt_m(c["epochs"], 1), fmt_m(c["test_acc"]), fmt_m(c["loss_gap"], 3), fmt_m(c["acc_gap"]),
         fmt_m(c["sensitivity"], 3)] for c in bs["cells"]])
    t2 = md_table(["target / rule", "slope of log sensitivity on log batch", "loss gap per doubling of batch",
                   "acc gap per doubling (points)"], [
        [k, _fmt_slope(v["sensitivity"]), _fmt_slope(v["loss_gap"], 4), _fmt_slope(v["acc_gap"])]
        for k, v in bs["slopes"].items()])
    lab = bs["labels"]
    t3 = md_table(["target", "labels", "batch", "reached", "epochs", "test acc (%)", "loss gap", "sensitivity"], [
        [f"{row['target']:g}", row["labels"], row["batch"], f"{row['reached']}/{bs['seeds']}", fmt_m(row["epochs"], 1),
         fmt_m(row["test_acc"]), fmt_m(row["loss_gap"], 3), fmt_m(row["sensitivity"], 3)] for row in lab["rows"]])
    t4 = md_table(["target", "Spearman(sensitivity, loss gap): true labels", "random labels", "across both"], [
        [t, fmt_sp(s["true"]), fmt_sp(s["random"]), fmt_sp(s["across"])] for t, s in lab["spearman"].items()])
    return (t1 + "\n\n" + t2 +
            f"\n\nEvery model kept the first time its training loss (whole training set) reached each target (at most "
            f"{bs['max_epochs']} epochs; 'reached' counts the seeds that did; the others are left out of the slopes). "
            f"Learning rate {bs['lr']:g}, fixed or scaled linearly with the batch from batch {bs['ref_batch']}. "
            f"Over the seeds (of {bs['seeds']}) that reached the target (epochs and training loss: over all), "
            f"{BOUNDED_INTERVALS}. Slopes: least squares per seed over the batch "
            "sizes it reached, then the t-interval over seeds. Spearman(sensitivity, loss gap) among all models "
            "that reached each target: " +
            "; ".join(f"target {t}: {fmt_sp(v)}" for t, v in bs["spearman_sensitivity_gap"].items()) +
            f".\n\nTrue vs random labels on the same {lab['subset']:,} training images (test labels true), "
            f"learning rate {bs['lr']:g}, at most {lab['max_epochs']} epochs:\n\n" + t3 + "\n\n" + t4 +
            _novak_tests(bs))


def _novak_tests(bs: dict) -> str:
    """What the numbers say about Novak et al.'s claim, per target (generated)."""
    lines = ["\n\n**What each comparison tests** (interval, and where it lies):\n"]
    for t, sp in bs["labels"]["spearman"].items():
        slopes = bs["slopes"]
        fixed, linear = slopes.get(f"fixed/{t}"), slopes.get(f"linear/{t}")
        parts = [f"- training loss {t}: Spearman(sensitivity, loss gap) within true labels {where(fmt_sp(sp['true']), sign_of_rho(sp['true']))}"
                 f", within random labels {where(fmt_sp(sp['random']), sign_of_rho(sp['random']))}"
                 f", across both {where(fmt_sp(sp['across']), sign_of_rho(sp['across']))}"]
        if fixed and linear:
            parts.append(f"; sensitivity on batch size (log-log slope), fixed lr {where(_fmt_slope(fixed['sensitivity']), sign_of(fixed['sensitivity']))}"
                         f", linear lr {where(_fmt_slope(linear['sensitivity']), sign_of(linear['sensitivity']))}"
                         f"; loss gap per doubling, fixed lr "
                         f"{where(_fmt_slope(fixed['loss_gap'], 4), sign_of(fixed['loss_gap']))}, linear lr "
                         f"{where(_fmt_slope(linear['loss_gap'], 4), sign_of(linear['loss_gap']))}; accuracy gap per "
                         f"doubling, fixed lr {where(_fmt_slope(fixed['acc_gap']), sign_of(fixed['acc_gap']))}, linear lr "
                         f"{where(_fmt_slope(linear['acc_gap']), sign_of(linear['acc_gap']))}")
        lines.append("".join(parts) + ".")
    return "\n".join(lines)


def block_sharpness(sh: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    eps = sh["epsilons"]
    t1 = md_table(["target", "lr rule", "batch", "reached", *[f"sharpness, eps {e:g}" for e in eps],
                   f"eps {eps[0]:g}, L-BFGS-B", "top Hessian eigenvalue"], [
        [f"{c['target']:g}", c["rule"], c["batch"], f"{c['reached']}/{c['n']}", *[fmt_m(v) for v in c["sharpness"]],
         fmt_m(c["sharpness_lbfgsb"]), fmt_m(c["top_eig"])] for c in sh["cells"]])
    keys = next(iter(sh["slopes"].values())).keys()
    t2 = md_table(["target / rule", *[f"log-log slope: {k}" for k in keys], "L-BFGS-B sharpness, 4096 / 256"], [
        [k, *[_fmt_slope(v[m]) for m in keys], sh["contrast_256_4096"].get(k, "n/a")] for k, v in sh["slopes"].items()])
    kf = sh["keskar_f1"]
    net_names = {"f1": "F1 (Keskar)", "mlp": "784-64-64-10 (1-3d)"}
    rows = []
    for key, run in kf["runs"].items():
        net, regime = key.split("_")
        for cond in ("stop", "matched"):
            v = run[cond]
            rows.append([net_names.get(net, net), f"{regime} ({run['batch_size']:,})",
                         "their stopping rule" if cond == "stop" else f"training loss {kf['target_loss']:g}",
                         f"{v['reached']}/{v['n']}", fmt_m(v["epochs"], 1), fmt_m(v["train_loss"], 4),
                         fmt_m(v["test_acc"]), fmt_m(v["sharpness_lbfgsb"])])
    t3 = md_table(["network", "batch", "kept at", "rule met", "epochs", "train loss", "test acc (%)",
                   f"sharpness eps {eps[0]:g}, L-BFGS-B"], rows)
    pub = kf["published"]
    ratios = "; ".join(f"{net_names.get(n, n)}: {r['stop']} at their stopping rule (or the cap), "
                       + (f"{r['matched']} at loss {kf['target_loss']:g}" if r["matched"] is not None else
                          f"none at loss {kf['target_loss']:g} (a run missed it: not a matched comparison)")
                       for n, r in kf["ratios"].items() if n != "published")
    return (t1 + "\n\n" + t2 +
            f"\n\nThe models of 1-3d at each target and learning-rate rule; over the seeds that met the target, "
            f"{BOUNDED_INTERVALS} ('reached' counts them; the others are left out, here and in the slopes). Sharpness "
            "maximised by "
            f"projected sign ascent and, as Keskar et al., by {sh['lbfgsb_iters']} iterations of L-BFGS-B in the "
            "same box. Slopes: "
            "least squares of log measure on log batch per seed, t-interval over seeds.\n\n"
            f"**Keskar et al.'s network F1** (Adam, lr {kf['lr']:g}, batch 256 vs 10% of the training set), trained "
            f"until the training loss has not improved for {plural(kf['patience'], 'epoch')} (their stopping rule; at most "
            f"{kf['max_epochs']} epochs: 'rule met' says how many stopped by the rule), and the same runs kept when "
            f"their training loss first reached {kf['target_loss']:g}; beside it our 1-3d network trained the same "
            "way (the controlled variation):\n\n" + t3 +
            f"\n\nKeskar et al. report sharpness {pub['sharpness_small']} (small batch) vs {pub['sharpness_large']} "
            f"(large), a ratio of {kf['ratios']['published']}, and test accuracy {pub['test_acc_small']}% vs "
            f"{pub['test_acc_large']}%. Large/small ratio of mean L-BFGS-B sharpness here: {ratios}." +
            _keskar_tests(sh))


def _keskar_tests(sh: dict) -> str:
    """What the numbers say about Keskar et al.'s claim (generated)."""
    lines = ["\n\n**What each comparison tests:**\n"]
    for key, sl in sh["slopes"].items():
        rule, t = key.split("/")
        lines.append(f"- sharpness (L-BFGS-B) on batch size, {rule} lr, training loss {t}: log-log slope "
                     f"{where(_fmt_slope(sl['sharpness_lbfgsb']), sign_of(sl['sharpness_lbfgsb']))}; top Hessian "
                     f"eigenvalue {where(_fmt_slope(sl['top_eig']), sign_of(sl['top_eig']))}.")
    r = sh["keskar_f1"]["ratios"]
    if "f1" in r and "mlp" in r:
        m = lambda v: "n/a, not matched" if v is None else v  # noqa: E731
        lines.append(f"- what separates F1's contrast from ours: the network, at their stopping rule or the cap "
                     f"(F1 {r['f1']['stop']} vs ours {r['mlp']['stop']}) and at the matched loss "
                     f"({m(r['f1']['matched'])} vs {m(r['mlp']['matched'])}); how long it trains, F1 "
                     f"({r['f1']['stop']} at their rule or the cap vs {m(r['f1']['matched'])} at the matched loss) "
                     f"and ours ({r['mlp']['stop']} vs {m(r['mlp']['matched'])}). Large/small ratios of mean "
                     "sharpness (L-BFGS-B).")
    return "\n".join(lines)


def block_params_sweep(p: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    what = "err" if p["label_noise"] else "acc"    # with label noise, the error shows the peak
    return md_table(["width", "params", f"train {what} (%)", f"test {what} (%)"], [
        [row["width"], f"{row['params']:,}", fmt_m(row[f"train_{what}"]), fmt_m(row[f"test_{what}"])]
        for row in p["rows"]]) + (
        f"\n\nLabel noise {p['label_noise']:.0%}, {plural(p['epochs'], 'epoch')}, mean and 95% interval over "
        f"{plural(p['seeds'], 'seed')} (a t-interval of the logits, inside [0, 100]; one seed: Wilson's "
        f"interval for the images evaluated). Lowest test error at {p['min_test_err_params']:,} parameters, "
        f"highest at {p['max_test_err_params']:,}; " + (
            "training error never reaches 1%." if p["interpolation_params"] is None else
            f"training error first <= 1% at {p['interpolation_params']:,} parameters."))


def summary_random_labels(h: dict) -> str:
    rows = {row["fraction"]: row for row in h["rows"]}
    out = ""
    if h.get("slowdown") is not None:
        out += f"random labels take {fmt_m(h['slowdown'], 1)} times the epochs of true labels to fit; "
    if 1.0 in rows and 0.0 in rows:
        r, t = rows[1.0], rows[0.0]
        out += (f"fitted {r['fitted']}/{r['runs']}, test acc at fit {fmt_m(r['test_acc'])}% (chance 10%); "
                f"true labels {fmt_m(t['test_acc'])}%")
    return out


def summary_params_sweep(h: dict) -> str:
    out = (f"lowest mean test error at {h['min_test_err_params']:,} parameters, highest at "
           f"{h['max_test_err_params']:,}; ")
    return out + ("training error never reaches 1%" if h["interpolation_params"] is None else
                  f"training error first <= 1% at {h['interpolation_params']:,}")


def summary_interpolation(h: dict) -> str:
    c = h["cells"]
    small, large = h["batches"]
    return (f"training-loss barrier, batch {small} vs {large}: shared initialisation "
            f"{fmt_m(c['shared/small-large']['barrier'], 3)}, independent {fmt_m(c['independent/small-large']['barrier'], 3)}; "
            f"same-batch baselines {small}-{small} {fmt_m(c['shared/small-small']['barrier'], 3)} / "
            f"{fmt_m(c['independent/small-small']['barrier'], 3)} ({h['pairs_per_cell']} pairs per cell)")


def summary_batch_sweep(h: dict) -> str:
    t = f"{h['targets'][-1]:g}"
    s = h["labels"]["spearman"][t]
    return (f"at training loss {t}: log-log slope of sensitivity on batch, fixed lr "
            f"{_fmt_slope(h['slopes'][f'fixed/{t}']['sensitivity'])}, linearly scaled lr "
            f"{_fmt_slope(h['slopes'][f'linear/{t}']['sensitivity'])}; Spearman(sensitivity, gap) on one image set: "
            f"true labels {fmt_sp(s['true'])}, random {fmt_sp(s['random'])}, across {fmt_sp(s['across'])}")


def summary_sharpness(h: dict) -> str:
    t = f"{h['targets'][-1]:g}"
    kf = h["keskar_f1"]
    f1 = kf["ratios"].get("f1", {})
    return (f"log-log slope of sharpness (L-BFGS-B) on batch at loss {t}: fixed lr "
            f"{_fmt_slope(h['slopes'][f'fixed/{t}']['sharpness_lbfgsb'])}, linear lr "
            f"{_fmt_slope(h['slopes'][f'linear/{t}']['sharpness_lbfgsb'])}; Keskar's F1, large/small sharpness "
            f"{f1.get('stop')} after their training (stopping rule, or the epoch cap where it did not fire), "
            f"published {kf['ratios']['published']}")


RANDOM_LABELS = Experiment(
    "1-3a", "random labels", "1-3a_random_labels.ipynb", RandomLabelsConfig, RANDOM_LABELS_PROFILES,
    key="", compute=None, plan=random_labels_units, assemble=assemble_random_labels,
    headline=h_random_labels, block=block_random_labels, checks=c_random_labels, summary=summary_random_labels,
    figures=("1-3a_random_labels",),
    reading="""Every run fits its labels, random ones included, and the fitted models' test accuracy falls with the
fraction of labels randomised, to chance for random labels: the interval over labellings and seeds contains 10%,
while one labelling alone can sit off it (the per-labelling values under the table), which is why one draw is not
enough. As in Zhang et al.'s (2017) Figure 1b the time to fit grows with the fraction randomised, but it levels off
over the highest fractions instead of growing on, and the slowdown of random over true labels is several times
larger than the small constant factor they report: on this subset of MNIST the true labels are fitted within a
few epochs, so the ratio is large. That explanation is not tested here; the setting also differs from theirs
(Adam, an MLP, MNIST; their CIFAR-10 networks were trained with SGD).""",
    published=("Zhang et al. 2017", "random labels are fitted (100% train accuracy), by a small constant factor more "
               "slowly than true labels; test accuracy falls with the fraction of labels randomised, to chance (~10%)"))

PARAMS_SWEEP = Experiment(
    "1-3b", "parameter sweep", "1-3b_parameters_vs_generalization.ipynb", ParamsSweepConfig, PARAMS_SWEEP_PROFILES,
    key="params_sweep_width", compute=_train_width, split=("widths",), assemble=assemble_params_sweep,
    headline=h_params_sweep, block=block_params_sweep, checks=c_params_sweep, summary=summary_params_sweep,
    figures=("1-3b_parameters",),
    reading="""With clean labels, test accuracy rises with size and then saturates, and the accuracy gap stops growing
although the largest nets have many more parameters than there are training images.""")

NOISY_SWEEP = dataclasses.replace(PARAMS_SWEEP, name="1-3b-noise", title="label-noise sweep",
                                  profiles=NOISY_SWEEP_PROFILES, figures=("1-3b_label_noise",), reading="""\
Bonus, label noise: a subset of MNIST with a fraction of random labels, trained much longer. In the means, the
test error falls, rises again to a local peak just before the interpolation threshold (where the training
error first reaches about 1%), then falls well below its first minimum: the double-descent shape. With these
seeds the peak's interval still overlaps that of the first minimum, so the peak itself is not resolved.""")

INTERPOLATION = Experiment(
    "1-3c", "interpolation", "1-3c_flatness_interpolation.ipynb", InterpolationConfig, INTERPOLATION_PROFILES,
    key="interpolation", compute=_compute_interpolation,
    headline=h_interpolation, block=block_interpolation, checks=c_interpolation, summary=summary_interpolation,
    published=("Frankle et al. 2020; Goodfellow et al. 2015", "a loss barrier between independently initialised "
               "solutions, none from a shared start; a monotone loss along the line from initialisation to solution"),
    figures=("1-3c_interpolation", "1-3c_barriers", "1-3c_slices"),
    reading="""Linear mode connectivity (Frankle et al. 2020) holds here: ends that share an initialisation are joined
by a small barrier, ends from independent initialisations by a large one, whatever the batch sizes (the
independent-minus-shared contrasts lie above 0). Against its same-batch baseline, the small-vs-large-batch
pair shows no batch effect on the barrier with either initialisation (intervals contain 0); only between
independent ends is the large-large barrier above the small-small one. So the low barrier of the
assignment's pair measures the shared start, not flatness. Read at each end's own scale, the
filter-normalised slices rise more around large-batch ends than around small-batch ends (paired contrast
above 0, while the other batch order, the noise floor of that contrast, contains 0): Keskar et al.'s
direction, with an interval. The large-learning-rate ends rise far more, and their weights lie much farther
apart (distance column). The straight line from initialisation to the end never rises for any small- or
large-batch end (Goodfellow et al. 2015); it rises slightly for most large-learning-rate ends.""")

BATCH_SWEEP = Experiment(
    "1-3d", "batch sweep", "1-3d_flatness_sensitivity.ipynb", BatchSweepConfig, BATCH_SWEEP_PROFILES,
    key="", compute=None, plan=batch_sweep_units, assemble=assemble_batch_sweep,
    headline=h_batch_sweep, block=block_batch_sweep, checks=c_batch_sweep, summary=summary_batch_sweep,
    figures=("1-3d_sensitivity", "1-3d_gap_vs_sensitivity"),
    reading="""Every model reached both training-loss targets. With the learning rate fixed, sensitivity rises with batch
size (log-log slope above 0 at both targets); with the rate scaled linearly with the batch it falls slightly
(slope below 0): the trend follows the ratio of learning rate to batch size (Smith and Le 2018), not the
batch size itself. The loss gap does not change with batch size under the fixed rule (interval contains 0)
and grows under the linear one; the accuracy gap grows with batch size at the lower target under both
rules. Among the true-label models on the whole training set, sensitivity and loss gap are not
rank-correlated (intervals contain 0). On one set of images, the correlation across true and random labels
is strongly positive, Novak et al.'s (2018) direction, and it is positive within the true-label models too;
within the random-label models it is negative (its interval is below 0 at the lower target). Novak et al.'s
relation holds between conditions and among these small-data true-label models, not inside the memorised
regime, and not across batch sizes on the full data.""",
    published=("Novak et al. 2018", "input-Jacobian norm grows with the generalization gap; large batches and "
                                    "random labels raise it"))

SHARPNESS = Experiment(
    "1-3e", "sharpness", "1-3e_sharpness.ipynb", SharpnessConfig, SHARPNESS_PROFILES,
    key="", compute=None, plan=sharpness_units, assemble=assemble_sharpness, after=("1-3d",),
    headline=h_sharpness, block=block_sharpness, checks=c_sharpness, summary=summary_sharpness,
    figures=("1-3e_sharpness", "1-3e_keskar"),
    reading="""At a fixed learning rate, sharpness (the two maximisers agree) and the top Hessian eigenvalue rise with
batch size at both training-loss targets (log-log slopes above 0), the direction Keskar et al. (2017) report;
with the learning rate scaled linearly with the batch, both fall with batch size (slopes below 0). Across these
runs sharpness follows the ratio of learning rate to batch size, not the batch size itself. Keskar's own
network F1, trained their way, gives a contrast far larger than ours, larger even than the published one,
with test accuracies close to theirs and in the same order. No F1 run met their stopping rule within the
epoch cap (the training loss was still falling), so its 'stopping rule' rows are the runs at the cap. The
controlled variation locates the gap: kept when it first reaches the matched training loss, F1's contrast is
small, of the order of our 1-3d contrasts; the long training past that loss, in which the small-batch runs
flatten and the large-batch runs sharpen, produces Keskar's contrast. Our network trained the same way
shows a much smaller contrast at the cap, and its large-batch runs never reached the matched loss, so the
network's share is read at the cap only. Epsilon-sharpness away from a minimum includes the first-order rise
along the gradient, which is part of why models kept at a matched, non-minimal loss read sharper than the
small-batch F1 at the cap.""",
    published=("Keskar et al. 2017", "MNIST fully connected: sharpness at eps 1e-3 about 1.2 (small batch) vs "
                                     "205 (large batch); test accuracy 98.0% vs 97.8%"))
