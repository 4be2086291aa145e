"""1-3c: flatness by interpolation between two trained models."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..landscape import evaluate_points, filter_normalized_direction, interpolate_flat
from ..data import Split, load_mnist
from ..ensemble import Ensemble, seeded_ensemble
from ..models import mnist_mlp
from ..headline import (BOUNDED_INTERVALS, Check, TEST, acc_test_ci, ci, fmt_m, md_table, nonneg_ci, one_sample, pct,
                        rnd, sign_of, vals, where)
from ..train import fit_to_targets
from .common import Experiment


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
    "quick": dict(target_loss=0.2, max_epochs=20, pairs=3, alphas=31, train_subset=5_000, line_subset=1_000,
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


def summary_interpolation(h: dict) -> str:
    c = h["cells"]
    small, large = h["batches"]
    return (f"training-loss barrier, batch {small} vs {large}: shared initialisation "
            f"{fmt_m(c['shared/small-large']['barrier'], 3)}, independent {fmt_m(c['independent/small-large']['barrier'], 3)}; "
            f"same-batch baselines {small}-{small} {fmt_m(c['shared/small-small']['barrier'], 3)} / "
            f"{fmt_m(c['independent/small-small']['barrier'], 3)} ({h['pairs_per_cell']} pairs per cell)")


INTERPOLATION = Experiment(
    "1-3c", "interpolation", "1-3c_flatness_interpolation.ipynb", InterpolationConfig, INTERPOLATION_PROFILES,
    key="interpolation", compute=_compute_interpolation,
    headline=h_interpolation, block=block_interpolation, checks=c_interpolation, summary=summary_interpolation,
    published=("Frankle et al. 2020; Goodfellow et al. 2015", "a loss barrier between independently initialised "
               "solutions, none from a shared start; a monotone loss along the line from initialisation to solution"))
