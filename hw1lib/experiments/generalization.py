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
from tqdm.auto import tqdm

from .. import cache
from ..analysis import evaluate_points, filter_normalized_direction, interpolate_flat
from ..config import make_config
from ..curvature import FlatLoss, top_eigenvalues
from ..data import Split, load_mnist, noisy_labels, random_labels
from ..ensemble import Ensemble
from ..measures import ensemble_loss_fn, epsilon_sharpness, epsilon_sharpness_lbfgsb, sensitivity
from ..models import count_params, mnist_mlp
from ..headline import (TEST, TRAIN, Check, ci, correlation, fmt_m, fmt_sp, md_table, one_sample, pct, plural, rnd,
                        vals)
from ..stats import first_at_least, spearman_ci
from ..train import final_metrics, fit_classifier, fit_to_loss
from .common import Experiment, Unit, split_units, stack_units


# ------------------------------------------------------------------ 1-3a
@dataclass(frozen=True)
class RandomLabelsConfig:
    hidden: tuple[int, ...] = (512, 512)  # 669,706 parameters: enough to memorise
    train_subset: int = 10_000            # the first n training images (a fixed subset)
    test_subset: int | None = None        # first n test images; None = all 10,000
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    label_seed: int = 0                   # the one-time relabelling
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)   # initialisations (and batch orders), one pair of runs each
    device: str = "auto"


RANDOM_LABELS_PROFILES = {
    "smoke": dict(hidden=(32,), train_subset=256, epochs=2, seeds=(0,)),
    "quick": dict(train_subset=1_000, test_subset=2_000, epochs=25, seeds=(0, 1)),
    "full": dict(),
}


KINDS = ("random", "true")


def _compute_random_labels(cfg: RandomLabelsConfig, progress: bool) -> cache.Result:
    """Arrays: {random,true}_{train,test}_{loss,acc} [epochs + 1, seeds]. The random
    runs' train metrics are against their random labels; test labels stay true."""
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    # Every seed's random-label and true-label runs (same initial weights, same batch
    # order) train in one ensemble whose members have labels of their own.
    S = len(cfg.seeds)
    labels = torch.stack([random_labels(train.y, cfg.label_seed), train.y]).repeat(S, 1)   # [S * 2, n]
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for s in cfg.seeds for _ in KINDS], dev)
    h = fit_classifier(ens, Split(train.x, labels), data.test.subset(cfg.test_subset), epochs=cfg.epochs,
                       batch_size=cfg.batch_size, lr=cfg.lr, progress=progress, desc="1-3a random + true labels")
    arrays = {f"{kind}_{k}": h[k][:, i::len(KINDS)] for i, kind in enumerate(KINDS)
              for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    summary = {"params": count_params(ens),
               "agreement_random_vs_true": float((random_labels(train.y, cfg.label_seed) == train.y).float().mean())}
    return cache.Result(arrays, summary)


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
    max_epochs: int = 40                  # ... or this many epochs
    base_batch: int = 64
    large_batch: int = 1024
    base_lr: float = 1e-3
    large_lr: float = 1e-2
    alphas: int = 61                      # evenly spaced on [-1, 2], 0 and 1 included
    slice_points: int = 41                # 1-D filter-normalised slice around each end, t in [-1, 1]
    slice_subset: int = 10_000            # first n training images the slices are measured on
    train_subset: int | None = None
    seed: int = 0                         # the shared initialisation of the protocol pairs
    control_seed: int = 1                 # the other end of each control pair starts here instead
    device: str = "auto"


INTERPOLATION_PROFILES = {
    "smoke": dict(hidden=(8,), target_loss=1.5, max_epochs=1, alphas=7, slice_points=5, slice_subset=256,
                  train_subset=512),
    "quick": dict(target_loss=0.15, max_epochs=20, train_subset=10_000, slice_points=21, slice_subset=2_000),
    "full": dict(),
}

# The ends: name -> (seed field, batch field, lr field). Pairs: (name, end 0, end 1).
ENDS = {"base": ("seed", "base_batch", "base_lr"), "large_batch": ("seed", "large_batch", "base_lr"),
        "large_lr": ("seed", "base_batch", "large_lr"),
        "large_batch_ctrl": ("control_seed", "large_batch", "base_lr"),
        "large_lr_ctrl": ("control_seed", "base_batch", "large_lr")}
PAIRS = (("batch", "base", "large_batch"), ("lr", "base", "large_lr"),
         ("batch_ctrl", "base", "large_batch_ctrl"), ("lr_ctrl", "base", "large_lr_ctrl"))


def alpha_grid(n: int) -> np.ndarray:
    """n points on [-1, 2], rounded so that 0 and 1 are exact when n = 3k + 1."""
    return np.round(np.linspace(-1, 2, n), 10)


def _compute_interpolation(cfg: InterpolationConfig, progress: bool) -> cache.Result:
    """Arrays: alpha [A]; for each pair in PAIRS ('batch', 'lr': the protocol pairs,
    both ends from one initialisation; 'batch_ctrl', 'lr_ctrl': the control, the
    second end from an independent seed) {pair}_{train,test}_{loss,acc} [A] on the
    whole sets and {pair}_geometry [5] (||a||, ||b||, ||a - b||, each end's distance
    from its initialisation); slice_t [T] and slice_{end} [T] (training loss along a
    filter-normalised direction around each end); end_metrics [len(ENDS),
    len(END_METRICS)] at the matched training loss."""
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    build = mnist_mlp(cfg.hidden)
    # Ends that share a batch size train as one ensemble, each member with its seed and learning rate;
    # each is kept at the first epoch its training loss reaches the target (fit_to_loss).
    groups: dict[int, list[str]] = {}
    for name, (seed_f, batch_f, _) in ENDS.items():
        groups.setdefault(getattr(cfg, batch_f), []).append(name)
    theta, theta0, ends = {}, {}, {}
    for bs, names in groups.items():
        seeds = [getattr(cfg, ENDS[n][0]) for n in names]
        ens = Ensemble(build, seeds, dev)
        start = ens.flat_params()
        h = fit_to_loss(ens, train, data.test, target=cfg.target_loss, max_epochs=cfg.max_epochs, batch_size=bs,
                        lr=tuple(getattr(cfg, ENDS[n][2]) for n in names), progress=progress,
                        desc=f"1-3c {' + '.join(names)}")
        for i, n in enumerate(names):
            theta[n], theta0[n] = ens.flat_params()[i], start[i]
            ends[n] = {k: float(v[i]) for k, v in h.items()}
        template = ens
    alphas = alpha_grid(cfg.alphas)
    arrays = {"alpha": alphas}
    for pair, a_name, b_name in PAIRS:
        thetas = interpolate_flat(theta[a_name], theta[b_name], alphas)
        for split_name, split in (("train", train), ("test", data.test)):
            loss, acc = evaluate_points(build, template, thetas, split)
            arrays[f"{pair}_{split_name}_loss"], arrays[f"{pair}_{split_name}_acc"] = loss, acc
        # The geometry beside the curves: weight norms, the distance between the ends (one unit of
        # alpha) and how far each end moved from its own initialisation.
        a, b = theta[a_name], theta[b_name]
        arrays[f"{pair}_geometry"] = torch.stack([a.norm(), b.norm(), (a - b).norm(), (a - theta0[a_name]).norm(),
                                                  (b - theta0[b_name]).norm()]).cpu().numpy()
    # Sharpness read at one scale: a 1-D slice along a filter-normalised random direction around each end.
    t = np.linspace(-1, 1, cfg.slice_points)
    arrays["slice_t"] = t
    slice_split = train.subset(cfg.slice_subset)
    for n in ENDS:
        one = Ensemble.from_stacked(build, template.unflatten(theta[n][None]), dev)
        d = filter_normalized_direction(one, 0, torch.Generator().manual_seed(cfg.seed))
        pts = theta[n][None] + torch.as_tensor(t, dtype=d.dtype, device=dev)[:, None] * d[None]
        arrays[f"slice_{n}"] = evaluate_points(build, template, pts, slice_split)[0]
    arrays["end_metrics"] = np.array([[ends[n][k] for k in END_METRICS] for n in ENDS])
    return cache.Result(arrays, {"ends": list(ENDS), "end_metrics": list(END_METRICS)})


END_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "epochs", "reached")


# ------------------------------------------------------------------ 1-3c / 1-3d / 1-3e
@dataclass(frozen=True)
class BatchSweepConfig:
    hidden: tuple[int, ...] = (64, 64)
    batch_sizes: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    target_loss: float = 0.05               # every model trains until its full training loss <= this ...
    max_epochs: int = 150                   # ... or this many epochs (then it is reported as not reached)
    lr: float = 1e-3
    train_subset: int | None = None
    sensitivity_subset: int | None = None   # first n test images; None = all 10,000
    random_label_batches: tuple[int, ...] = (64, 1024)   # models on random labels too (Novak et al.) ...
    random_label_subset: int = 2_000        # ... on the first n training images (memorisable), same target
    device: str = "auto"


BATCH_SWEEP_PROFILES = {
    "smoke": dict(hidden=(8,), batch_sizes=(16, 256), seeds=(0,), target_loss=1.5, max_epochs=2, train_subset=512,
                  sensitivity_subset=64, random_label_batches=(16,), random_label_subset=128),
    "quick": dict(seeds=(0, 1), target_loss=0.1, max_epochs=60, train_subset=10_000, sensitivity_subset=1_000,
                  random_label_batches=(64,), random_label_subset=500),
    "full": dict(),
}


def _train_batch(cfg: BatchSweepConfig, progress: bool, random: bool = False) -> cache.Result:
    dev = torch.device(cfg.device)
    (bs,) = cfg.batch_sizes
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    if random:
        train = train.subset(cfg.random_label_subset)
        train = Split(train.x, random_labels(train.y, seed=0))
    ens = Ensemble(mnist_mlp(cfg.hidden), cfg.seeds, dev)
    arrays = fit_to_loss(ens, train, data.test, target=cfg.target_loss, max_epochs=cfg.max_epochs, batch_size=bs,
                         lr=cfg.lr, progress=progress, desc=f"1-3d batch {bs}{' random labels' if random else ''}")
    arrays["sensitivity"] = sensitivity(ens, data.test.subset(cfg.sensitivity_subset).x).mean(1).cpu().numpy()
    return cache.Result(arrays, {"batch_size": bs, "random_labels": random}, weights=ens.stacked_state())


def _train_random_batch(cfg: BatchSweepConfig, progress: bool) -> cache.Result:
    return _train_batch(cfg, progress, random=True)


def batch_sweep_units(cfg: BatchSweepConfig) -> list[Unit]:
    """One unit per batch size (its seeds train as one ensemble), then one per
    random-label batch size."""
    return (split_units("batch_sweep_unit", cfg, ("batch_sizes",), _train_batch) +
            [Unit("batch_sweep_random", dataclasses.replace(cfg, batch_sizes=(b,)), _train_random_batch)
             for b in cfg.random_label_batches])


def assemble_batch_sweep(cfg: BatchSweepConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: batch_size [B]; train_loss, train_acc, test_loss, test_acc,
    sensitivity, epochs, steps, reached [B, S] (at the matched training loss, see
    `train.fit_to_loss`; sensitivity = mean over the test images of the per-image
    Frobenius norm of d softmax / d input); the same with prefix random_ [Br, S]
    for the random-label models, random_batch_size [Br]."""
    B = len(cfg.batch_sizes)
    arrays = stack_units(parts[:B])
    arrays |= {f"random_{k}": v for k, v in stack_units(parts[B:]).items()}
    arrays["batch_size"] = np.array(cfg.batch_sizes)
    arrays["random_batch_size"] = np.array(cfg.random_label_batches)
    return cache.Result(arrays, {"mean_sensitivity": arrays["sensitivity"].mean(1).tolist()})


def batch_sweep_models(cfg: BatchSweepConfig, progress: bool = True) -> list[Ensemble]:
    """The trained ensembles of the sweep (one per batch size), from the cache."""
    parts = [u(progress) for u in batch_sweep_units(cfg)]
    dev = torch.device(cfg.device)
    return [Ensemble.from_stacked(mnist_mlp(cfg.hidden), {k: v.to(dev) for k, v in p.weights.items()}, dev)
            for p in parts[:len(cfg.batch_sizes)]]


@dataclass(frozen=True)
class SharpnessConfig:
    sweep: BatchSweepConfig = BatchSweepConfig()   # the models (reused from 1-3d's cache)
    epsilons: tuple[float, ...] = (1e-3, 5e-4)
    ascent_steps: int = 20                # projected gradient ascent iterations
    lbfgsb_iters: int = 10                # Keskar's maximiser, as a check of the ascent (first epsilon only)
    loss_subset: int = 10_000             # first n training images the loss is measured on
    hessian_subset: int = 10_000          # ... and the Hessian eigenvalue
    device: str = "auto"


SHARPNESS_PROFILES = {
    "smoke": dict(sweep=make_config(BatchSweepConfig, BATCH_SWEEP_PROFILES, "smoke"), ascent_steps=3, loss_subset=256, hessian_subset=256),
    "quick": dict(sweep=make_config(BatchSweepConfig, BATCH_SWEEP_PROFILES, "quick"), ascent_steps=10, loss_subset=2_000, hessian_subset=2_000),
    "full": dict(),
}


def _compute_sharpness(cfg: SharpnessConfig, progress: bool) -> cache.Result:
    """Arrays: batch_size [B]; sharpness [E, B, S] (Keskar epsilon-sharpness for
    each epsilon); top_eig [B, S] (largest Hessian eigenvalue of the training
    loss on the subset, from Hessian-vector products)."""
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    loss_split = data.train.subset(cfg.loss_subset)
    hess_split = data.train.subset(cfg.hessian_subset)
    models = batch_sweep_models(cfg.sweep, progress)
    sharp = np.zeros((len(cfg.epsilons), len(models), len(cfg.sweep.seeds)))
    top = np.zeros((len(models), len(cfg.sweep.seeds)))
    lbfgsb = np.zeros((len(models), len(cfg.sweep.seeds)))
    for b, ens in enumerate(tqdm(models, desc="1-3e sharpness", disable=not progress, leave=False)):
        f = ensemble_loss_fn(ens, loss_split.x, loss_split.y)
        for e, eps in enumerate(cfg.epsilons):
            sharp[e, b] = epsilon_sharpness(f, ens.params, eps, steps=cfg.ascent_steps).cpu().numpy()
        lbfgsb[b] = epsilon_sharpness_lbfgsb(f, ens, cfg.epsilons[0], iters=cfg.lbfgsb_iters)
        for s in range(len(ens)):
            model = mnist_mlp(cfg.sweep.hidden)().to(dev)
            model.load_state_dict(ens.state_dict(s))
            fl = FlatLoss(model, F.cross_entropy, hess_split.x, hess_split.y)
            top[b, s] = top_eigenvalues(fl, fl.theta0, k=1, seed=s, tol=1e-3)[0]
    arrays = {"batch_size": np.array(cfg.sweep.batch_sizes), "sharpness": sharp, "top_eig": top,
              "epsilons": np.array(cfg.epsilons), "sharpness_lbfgsb": lbfgsb}
    summary = {"sharpness_mean": sharp.mean(2).tolist(), "top_eig_mean": top.mean(1).tolist()}
    return cache.Result(arrays, summary)


# ================================================================== headline numbers, text, checks

def h_random_labels(r, cfg) -> dict:
    a = r.arrays
    out = {"params": r.summary["params"], "train_subset": cfg.train_subset, "epochs": cfg.epochs,
           "seeds": len(cfg.seeds)}
    for kind in ("true", "random"):
        acc = a[f"{kind}_train_acc"]                                    # [epochs + 1, seeds]
        first = [first_at_least(acc[:, s], 0.99) for s in range(acc.shape[1])]
        out[kind] = {"train_acc": ci(100 * acc[-1]), "test_acc": ci(100 * a[f"{kind}_test_acc"][-1]),
                     "first_epoch_train_acc_99": first}
    return out


def h_params_sweep(r, cfg) -> dict:
    a = r.arrays
    rows = [{"width": w, "params": int(p), "train_acc": ci(100 * a["train_acc"][i]),
             "test_acc": ci(100 * a["test_acc"][i]), "test_err": ci(100 * (1 - a["test_acc"][i])),
             "train_err": ci(100 * (1 - a["train_acc"][i]))}
            for i, (w, p) in enumerate(zip(cfg.widths, a["params"]))]
    test_err = [row["test_err"]["mean"] for row in rows]
    train_err = [row["train_err"]["mean"] for row in rows]
    interp = next((row["params"] for row, e in zip(rows, train_err) if e <= 1.0), None)
    return {"label_noise": cfg.label_noise, "seeds": len(cfg.seeds), "epochs": cfg.epochs, "rows": rows,
            "min_test_err_params": rows[int(np.argmin(test_err))]["params"],
            "max_test_err_params": rows[int(np.argmax(test_err))]["params"],
            "interpolation_params": interp}


def slice_rise(t, loss, at: float = 0.5) -> float:
    """How much the training loss rises a filter-normalised distance `at` from an
    end: the mean of the losses at t = -at and t = +at (nearest grid points)
    minus the loss at t = 0."""
    t, loss = np.asarray(t), np.asarray(loss)
    i = lambda v: int(np.argmin(np.abs(t - v)))
    return float((loss[i(-at)] + loss[i(at)]) / 2 - loss[i(0)])


def h_interpolation(r, cfg) -> dict:

    a = r.arrays
    al = a["alpha"]
    inside = (al >= 0) & (al <= 1)
    ends = {n: {**dict(zip(END_METRICS, (rnd(v) for v in row))),
                "slice_rise": rnd(slice_rise(a["slice_t"], a[f"slice_{n}"]))}
            for n, row in zip(r.summary["ends"], a["end_metrics"])}
    out = {"target_loss": cfg.target_loss, "max_epochs": cfg.max_epochs, "ends": ends, "pairs": {}}
    for pair, end0, end1 in PAIRS:
        tl = a[f"{pair}_train_loss"]
        top = max(tl[np.argmin(np.abs(al))], tl[np.argmin(np.abs(al - 1))])
        out["pairs"][pair] = {"ends": [end0, end1],
                              "test_acc_end0": rnd(100 * a[f"{pair}_test_acc"][np.argmin(np.abs(al))]),
                              "test_acc_end1": rnd(100 * a[f"{pair}_test_acc"][np.argmin(np.abs(al - 1))]),
                              "barrier": rnd(tl[inside].max() - top),
                              "min_test_acc_between": rnd(100 * a[f"{pair}_test_acc"][inside].min()),
                              **dict(zip(("norm_end0", "norm_end1", "distance", "moved_end0", "moved_end1"),
                                         (rnd(v) for v in a[f"{pair}_geometry"])))}
    return out


def h_batch_sweep(r, cfg) -> dict:
    a = r.arrays

    def rows(prefix, sizes):
        gap = a[f"{prefix}test_loss"] - a[f"{prefix}train_loss"]
        return [{"batch": int(b), "test_acc": ci(100 * a[f"{prefix}test_acc"][i]),
                 "train_acc": ci(100 * a[f"{prefix}train_acc"][i]), "train_loss": ci(a[f"{prefix}train_loss"][i]),
                 "gap": ci(gap[i]), "sensitivity": ci(a[f"{prefix}sensitivity"][i]),
                 "epochs": ci(a[f"{prefix}epochs"][i]), "steps_median": int(np.median(a[f"{prefix}steps"][i])),
                 "reached": int(a[f"{prefix}reached"][i].sum())} for i, b in enumerate(sizes)], gap

    true_rows, gap = rows("", a["batch_size"])
    random_rows, rgap = rows("random_", a["random_batch_size"])
    sens_all = np.concatenate([a["sensitivity"].ravel(), a["random_sensitivity"].ravel()])
    gap_all = np.concatenate([gap.ravel(), rgap.ravel()])
    return {"target_loss": cfg.target_loss, "max_epochs": cfg.max_epochs, "seeds": len(cfg.seeds),
            "random_label_subset": cfg.random_label_subset, "rows": true_rows, "random_rows": random_rows,
            "spearman_sensitivity_gap": correlation(spearman_ci, a["sensitivity"].ravel(), gap.ravel()),
            "spearman_sensitivity_gap_with_random": correlation(spearman_ci, sens_all, gap_all)}


def h_sharpness(r, cfg) -> dict:
    a = r.arrays
    return {"epsilons": [float(e) for e in a["epsilons"]], "target_loss": cfg.sweep.target_loss, "rows": [
        {"batch": int(b), "sharpness": [ci(a["sharpness"][e, i]) for e in range(len(a["epsilons"]))],
         "sharpness_lbfgsb": ci(a["sharpness_lbfgsb"][i]),
         "top_eig": ci(a["top_eig"][i])} for i, b in enumerate(a["batch_size"])],
        "spearman_sharpness_batch": correlation(spearman_ci, np.repeat(a["batch_size"], a["sharpness"].shape[2]),
                                                a["sharpness"][0].ravel())}


def c_random_labels(r, cfg) -> dict[str, Check]:
    n = {"train": one_sample(cfg.train_subset, TRAIN), "test": one_sample(cfg.test_subset, TEST)}
    return {f"{kind}/{split}_acc": Check(f"1-3a/{split}_acc", "lin", pct(r.arrays[f"{kind}_{split}_acc"][-1]), n[split])
            for kind in ("true", "random") for split in ("train", "test")}


def c_params_sweep(r, cfg) -> dict[str, Check]:
    fam = "1-3b-noise" if cfg.label_noise else "1-3b"
    n = {"train": one_sample(cfg.train_subset, TRAIN), "test": one_sample(None, TEST)}
    return {f"{split}_acc[width={w}]": Check(f"{fam}/{split}_acc", "lin", pct(r.arrays[f"{split}_acc"][i]), n[split])
            for i, w in enumerate(cfg.widths) for split in ("train", "test")}


def c_interpolation(r, cfg) -> dict[str, Check]:

    a = r.arrays
    al = a["alpha"]
    i0, i1 = int(np.argmin(np.abs(al))), int(np.argmin(np.abs(al - 1)))
    inside = (al >= 0) & (al <= 1)
    out = {}
    for pair, _, _ in PAIRS:
        tl = a[f"{pair}_train_loss"]
        out[f"{pair}/barrier"] = Check("1-3c/barrier", "lin", [float(tl[inside].max() - max(tl[i0], tl[i1]))])
        out[f"{pair}/min_test_acc_between"] = Check("1-3c/test_acc", "lin", pct(a[f"{pair}_test_acc"][inside].min()),
                                                    one_sample(None, TEST))
    for n, row in zip(r.summary["ends"], a["end_metrics"]):
        out[f"end {n}/test_acc"] = Check("1-3c/test_acc", "lin", pct(row[END_METRICS.index("test_acc")]),
                                         one_sample(None, TEST))
        out[f"end {n}/train_loss"] = Check("1-3c/train_loss", "log", [float(row[END_METRICS.index("train_loss")])])
    return out


def c_batch_sweep(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out = {}
    for label, p, sizes in (("true", "", a["batch_size"]), ("random", "random_", a["random_batch_size"])):
        for i, b in enumerate(sizes):
            out[f"{label}/test_acc[batch={int(b)}]"] = Check("1-3d/test_acc", "lin", pct(a[f"{p}test_acc"][i]),
                                                             one_sample(None, TEST))
            for k in ("train_loss", "sensitivity", "epochs"):
                out[f"{label}/{k}[batch={int(b)}]"] = Check(f"1-3d/{k}", "log", vals(a[f"{p}{k}"][i]))
    return out


def c_sharpness(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out = {}
    for i, b in enumerate(a["batch_size"]):
        for e, eps in enumerate(a["epsilons"]):
            out[f"sharpness[eps={eps:g},batch={int(b)}]"] = Check("1-3e/sharpness", "log", vals(a["sharpness"][e, i]))
        out[f"sharpness_lbfgsb[batch={int(b)}]"] = Check("1-3e/sharpness", "log", vals(a["sharpness_lbfgsb"][i]))
        out[f"top_eig[batch={int(b)}]"] = Check("1-3e/top_eig", "log", vals(a["top_eig"][i]))
    return out


def block_random_labels(rl: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return md_table(["labels", "train acc (%)", "test acc (%)", "first epoch with train acc >= 99%, per seed"], [
        [k, fmt_m(rl[k]["train_acc"]), fmt_m(rl[k]["test_acc"]),
         ", ".join("never" if e is None else str(e) for e in rl[k]["first_epoch_train_acc_99"])]
        for k in ("true", "random")]) + f"\n\n{rl['params']:,} parameters, {rl['train_subset']:,} training " \
        f"images, {rl['epochs']} epochs; mean ± 95% interval over {plural(rl['seeds'], 'seed')}."


def block_interpolation(ip: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return md_table(["pair", "ends (alpha 0 / 1)", "test acc, alpha 0 / 1 (%)", "lowest test acc between (%)",
                        "barrier (train loss)", "norm, alpha 0 / 1", "distance 0-1",
                        "moved from own init, alpha 0 / 1"], [
        [k, " / ".join(v["ends"]), f"{v['test_acc_end0']:.2f} / {v['test_acc_end1']:.2f}",
         f"{v['min_test_acc_between']:.2f}", f"{v['barrier']:.3g}", f"{v['norm_end0']:.3g} / {v['norm_end1']:.3g}",
         f"{v['distance']:.3g}", f"{v['moved_end0']:.3g} / {v['moved_end1']:.3g}"]
        for k, v in ip["pairs"].items()]) + "\n\n" + md_table(
        ["end", "train loss", "epochs", "reached target", "test acc (%)", "slice rise at |t| = 0.5"], [
        [k, f"{v['train_loss']:.3f}", f"{v['epochs']:.0f}", "yes" if v["reached"] else "no",
         f"{100 * v['test_acc']:.2f}", f"{v['slice_rise']:.3g}"] for k, v in ip["ends"].items()]) + \
        f"\n\nEvery end trained until its training loss reached {ip['target_loss']:g} (at most " \
        f"{ip['max_epochs']} epochs). Pairs `batch` and `lr` share one initialisation (the protocol); in the " \
        "`_ctrl` pairs the second end starts from an independent seed (the control). Barrier: highest training " \
        "loss on [0, 1] minus the higher end. Slice rise: training loss a filter-normalised step of 0.5 away " \
        "from the end (mean of both sides) minus the loss at the end (Li et al. 2018), one random direction."


def block_batch_sweep(bs: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    head = ["labels", "batch", "epochs", "reached", "train loss", "train acc (%)", "test acc (%)",
            "test - train loss", "sensitivity"]
    return md_table(head, [
        [lab, row["batch"], fmt_m(row["epochs"], 1), f"{row['reached']}/{bs['seeds']}", fmt_m(row["train_loss"], 3),
         fmt_m(row["train_acc"]), fmt_m(row["test_acc"]), fmt_m(row["gap"], 3), fmt_m(row["sensitivity"], 3)]
        for lab, rows in (("true", bs["rows"]), ("random", bs["random_rows"])) for row in rows]) + \
        f"\n\nEvery model trained until its training loss reached {bs['target_loss']:g} (at most " \
        f"{bs['max_epochs']} epochs; 'reached' counts the seeds that did). Mean ± 95% interval over " \
        f"{plural(bs['seeds'], 'seed')}. Random-label models: the first {bs['random_label_subset']:,} training " \
        "images with random labels, test labels true. Spearman of sensitivity and gap (bootstrap 95% " \
        f"interval), true labels: {fmt_sp(bs['spearman_sensitivity_gap'])}; with the random-label models: " \
        f"{fmt_sp(bs['spearman_sensitivity_gap_with_random'])}."


def block_sharpness(sh: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return md_table(["batch", *[f"sharpness, eps {e:g}" for e in sh["epsilons"]],
                        f"sharpness, eps {sh['epsilons'][0]:g}, L-BFGS-B", "top Hessian eigenvalue"], [
        [row["batch"], *[fmt_m(v) for v in row["sharpness"]], fmt_m(row["sharpness_lbfgsb"]), fmt_m(row["top_eig"])]
        for row in sh["rows"]]) + \
        f"\n\nThe true-label models of 1-3d (training loss {sh['target_loss']:g}); mean ± 95% interval over " \
        "their seeds. Sharpness maximised by projected sign ascent, and (as Keskar et al.) by 10 iterations of " \
        "L-BFGS-B in the same box. Spearman of sharpness (first epsilon) and batch size: " \
        f"{fmt_sp(sh['spearman_sharpness_batch'])}."


def block_params_sweep(p: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    what = "err" if p["label_noise"] else "acc"    # with label noise, the error shows the peak
    return md_table(["width", "params", f"train {what} (%)", f"test {what} (%)"], [
        [row["width"], f"{row['params']:,}", fmt_m(row[f"train_{what}"]), fmt_m(row[f"test_{what}"])]
        for row in p["rows"]]) + (
        f"\n\nLabel noise {p['label_noise']:.0%}, {p['epochs']} epochs, mean ± 95% interval over "
        f"{plural(p['seeds'], 'seed')}. Lowest test error at {p['min_test_err_params']:,} parameters, highest at "
        f"{p['max_test_err_params']:,}; " + (
            "training error never reaches 1%." if p["interpolation_params"] is None else
            f"training error first <= 1% at {p['interpolation_params']:,} parameters."))


def summary_random_labels(h: dict) -> str:
    r, t = h["random"], h["true"]
    return (f"random labels: train acc {fmt_m(r['train_acc'])}%, test {fmt_m(r['test_acc'])}% (chance 10%); "
            f"true labels: test {fmt_m(t['test_acc'])}%")


def summary_params_sweep(h: dict) -> str:
    out = (f"lowest mean test error at {h['min_test_err_params']:,} parameters, highest at "
           f"{h['max_test_err_params']:,}; ")
    return out + ("training error never reaches 1%" if h["interpolation_params"] is None else
                  f"training error first <= 1% at {h['interpolation_params']:,}")


def summary_interpolation(h: dict) -> str:
    p = h["pairs"]
    return ("training-loss barrier on the line, shared initialisation vs independent seeds: "
            f"batch {p['batch']['barrier']:.3g} vs {p['batch_ctrl']['barrier']:.3g}, "
            f"learning rate {p['lr']['barrier']:.3g} vs {p['lr_ctrl']['barrier']:.3g}")


def summary_batch_sweep(h: dict) -> str:
    return (f"Spearman(sensitivity, gap): true labels {fmt_sp(h['spearman_sensitivity_gap'])}; with the "
            f"random-label models {fmt_sp(h['spearman_sensitivity_gap_with_random'])}")


def summary_sharpness(h: dict) -> str:
    lo, hi = h["rows"][0], h["rows"][-1]
    return (f"sharpness (eps {h['epsilons'][0]:g}) batch {lo['batch']} {fmt_m(lo['sharpness'][0])} vs batch "
            f"{hi['batch']} {fmt_m(hi['sharpness'][0])}; Spearman with batch size "
            f"{fmt_sp(h['spearman_sharpness_batch'])}")


RANDOM_LABELS = Experiment(
    "1-3a", "random labels", "1-3a_random_labels.ipynb", RandomLabelsConfig, RANDOM_LABELS_PROFILES,
    key="random_labels", compute=_compute_random_labels,
    headline=h_random_labels, block=block_random_labels, checks=c_random_labels, summary=summary_random_labels,
    figures=("1-3a_random_labels",),
    reading="""Random labels are memorised while test accuracy stays at chance, as Zhang et al. (2017) report; they take
many more epochs to fit than the true labels (first epoch at 99% training accuracy, per seed, in the table).""",
    published=("Zhang et al. 2017", "random labels reach 100% train accuracy; test accuracy at chance (~10%)"))

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
    figures=("1-3c_interpolation", "1-3c_slices"),
    reading="""The control changes the reading. The two batch-size ends that share an initialisation are joined by a low
barrier; the same comparison from independent seeds has a far higher one, so a low barrier along the line
reflects the shared start, not flatness. The filter-normalised slices, which read each end at its own scale,
rise more around the large-batch ends (from both seeds) than around the small-batch end, and far more around
the large-learning-rate ends, whose weights are also an order of magnitude larger (norm column: raw
interpolation does not account for that, the slices do). One random direction and one seed per end make this
a hint, not a measurement; 1-3e measures sharpness with intervals.""")

BATCH_SWEEP = Experiment(
    "1-3d", "batch sweep", "1-3d_flatness_sensitivity.ipynb", BatchSweepConfig, BATCH_SWEEP_PROFILES,
    key="", compute=None, plan=batch_sweep_units, assemble=assemble_batch_sweep,
    headline=h_batch_sweep, block=block_batch_sweep, checks=c_batch_sweep, summary=summary_batch_sweep,
    figures=("1-3d_sensitivity", "1-3d_gap_vs_sensitivity"),
    reading="""At a matched training loss (every true-label seed reached it), sensitivity still rises with batch size, but
the generalization gap no longer falls with it: among the true-label models the rank correlation of
sensitivity and gap has an interval containing 0. With the random-label models, whose gap and sensitivity
are both far larger, the correlation is clearly positive, Novak et al.'s direction; in these runs it comes
from the random-label models, not from the batch size.""",
    published=("Novak et al. 2018", "input-Jacobian norm grows with the generalization gap; large batches and "
                                    "random labels raise it"))

SHARPNESS = Experiment(
    "1-3e", "sharpness", "1-3e_sharpness.ipynb", SharpnessConfig, SHARPNESS_PROFILES,
    key="sharpness", compute=_compute_sharpness, after=("1-3d",),
    headline=h_sharpness, block=block_sharpness, checks=c_sharpness, summary=summary_sharpness,
    figures=("1-3e_sharpness",),
    reading="""At a matched training loss both measures still grow with batch size (a rank correlation close to 1, with its
interval in the block), the direction Keskar et al. (2017) report, so the trend is not an artefact of the
large batches being less trained. The contrast is far weaker than theirs (published values above), and the
maximiser is not the reason: their L-BFGS-B, in the same box, gives the same values as our projected ascent.
Their large-batch models were trained to convergence on the full network of their paper; ours are small MLPs
stopped at a common, moderate training loss.""",
    published=("Keskar et al. 2017", "MNIST fully connected: sharpness at eps 1e-3 about 1.2 (small batch) vs "
                                     "205 (large batch); test accuracy 98.0% vs 97.8%"))
