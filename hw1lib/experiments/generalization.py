"""Section 1-3: generalization.

1-3a  random labels: the same MLP on true and on random labels.
1-3b  number of parameters vs generalization: a width sweep, several seeds.
1-3c  flatness by interpolation between two trained models.
1-3d  sensitivity (input-Jacobian norm) vs batch size.
1-3e  epsilon-sharpness and top Hessian eigenvalue vs batch size (1-3d's models).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import cache
from ..analysis import evaluate_points, interpolate_flat
from ..config import make_config
from ..curvature import FlatLoss, top_eigenvalues
from ..data import Split, load_mnist, noisy_labels, random_labels
from ..ensemble import Ensemble
from ..measures import ensemble_loss_fn, epsilon_sharpness, epsilon_sharpness_lbfgsb, sensitivity
from ..models import count_params, mnist_mlp
from ..train import fit_classifier
from .common import Unit, final_metrics, resolved, run_units, split_units, stack_units


# ------------------------------------------------------------------ 1-3a
@dataclass(frozen=True)
class RandomLabelsConfig:
    hidden: tuple[int, ...] = (512, 512)  # 669,706 parameters: enough to memorise
    train_subset: int = 10_000            # the first n training images (a fixed subset)
    test_subset: int | None = None        # first n test images; None = all 10,000
    epochs: int = 150
    batch_size: int = 128
    lr: float = 1e-3
    label_seed: int = 0                   # the one-time relabelling
    seed: int = 0
    device: str = "auto"


RANDOM_LABELS_PROFILES = {
    "smoke": dict(hidden=(32,), train_subset=256, epochs=2),
    "quick": dict(train_subset=1_000, test_subset=2_000, epochs=25),
    "full": dict(),
}


def random_labels_config(profile: str = "quick", **overrides) -> RandomLabelsConfig:
    return make_config(RandomLabelsConfig, RANDOM_LABELS_PROFILES, profile, **overrides)


def _compute_random_labels(cfg: RandomLabelsConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    arrays, summary = {}, {}
    # Both runs (same initial weights, same batch order) train as one ensemble
    # whose members have labels of their own.
    kinds = ("random", "true")
    labels = torch.stack([random_labels(train.y, cfg.label_seed), train.y])   # [2, n]
    ens = Ensemble(mnist_mlp(cfg.hidden), [cfg.seed] * len(kinds), dev)
    h = fit_classifier(ens, Split(train.x, labels), data.test.subset(cfg.test_subset), epochs=cfg.epochs,
                       batch_size=cfg.batch_size, lr=cfg.lr, progress=progress, desc="1-3a random + true labels")
    for i, kind in enumerate(kinds):
        for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
            arrays[f"{kind}_{k}"] = h[k][:, i]
            summary[f"{kind}_final_{k}"] = float(h[k][-1, i])
    summary["params"] = count_params(ens)
    summary["agreement_random_vs_true"] = float((random_labels(train.y, cfg.label_seed) == train.y)
                                                .float().mean())
    return cache.Result(arrays, summary)


def random_labels_units(cfg: RandomLabelsConfig) -> list[Unit]:
    return [Unit("random_labels", resolved(cfg), _compute_random_labels)]


def run_random_labels(cfg: RandomLabelsConfig, progress: bool = True) -> cache.Result:
    """Arrays: {random,true}_{train,test}_{loss,acc} [epochs + 1]. The random
    run's train metrics are against its random labels; test labels stay true."""
    return random_labels_units(cfg)[0](progress)


# ------------------------------------------------------------------ 1-3b
@dataclass(frozen=True)
class ParamsSweepConfig:
    widths: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # 784-w-10 MLPs
    seeds: tuple[int, ...] = (0, 1, 2)
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


def params_sweep_config(profile: str = "quick", **overrides) -> ParamsSweepConfig:
    return make_config(ParamsSweepConfig, PARAMS_SWEEP_PROFILES, profile, **overrides)


def noisy_sweep_config(profile: str = "quick", **overrides) -> ParamsSweepConfig:
    return make_config(ParamsSweepConfig, NOISY_SWEEP_PROFILES, profile, **overrides)


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


def params_sweep_units(cfg: ParamsSweepConfig) -> list[Unit]:
    """One unit per width (its seeds train as one ensemble)."""
    return split_units("params_sweep_width", resolved(cfg), "widths", _train_width)


def run_params_sweep(cfg: ParamsSweepConfig, progress: bool = True) -> cache.Result:
    """Arrays: params [W]; train_loss, train_acc, test_loss, test_acc [W, S] (final;
    train metrics against the training labels, noisy ones included)."""
    cfg = resolved(cfg)

    def compute():
        parts = run_units(params_sweep_units(cfg), progress)
        arrays = stack_units(parts)
        arrays["params"] = np.array([p.summary["params"] for p in parts])
        return cache.Result(arrays, {"params": arrays["params"].tolist()})

    return cache.cached("params_sweep", cfg, compute)


# ------------------------------------------------------------------ 1-3c
@dataclass(frozen=True)
class InterpolationConfig:
    hidden: tuple[int, ...] = (64, 64)
    epochs: int = 10
    base_batch: int = 64
    large_batch: int = 1024
    base_lr: float = 1e-3
    large_lr: float = 1e-2
    alphas: int = 61                      # evenly spaced on [-1, 2], 0 and 1 included
    train_subset: int | None = None
    seed: int = 0
    device: str = "auto"


INTERPOLATION_PROFILES = {
    "smoke": dict(hidden=(8,), epochs=1, alphas=7, train_subset=512),
    "quick": dict(epochs=2, train_subset=10_000),
    "full": dict(),
}


def interpolation_config(profile: str = "quick", **overrides) -> InterpolationConfig:
    return make_config(InterpolationConfig, INTERPOLATION_PROFILES, profile, **overrides)


def alpha_grid(n: int) -> np.ndarray:
    """n points on [-1, 2], rounded so that 0 and 1 are exact when n = 3k + 1."""
    return np.round(np.linspace(-1, 2, n), 10)


def _compute_interpolation(cfg: InterpolationConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    build = mnist_mlp(cfg.hidden)
    # Runs that share a batch size train as one ensemble, each member with its own
    # learning rate (same seed, so the same initial weights and batch order).
    groups = {cfg.base_batch: {"base": cfg.base_lr, "large_lr": cfg.large_lr},
              cfg.large_batch: {"large_batch": cfg.base_lr}}
    theta, end_test_acc = {}, {}
    theta0 = Ensemble(build, [cfg.seed], dev).flat_params()[0]   # the shared initialisation of every end
    for bs, members in groups.items():
        ens = Ensemble(build, [cfg.seed] * len(members), dev)
        h = fit_classifier(ens, train, data.test, epochs=cfg.epochs, batch_size=bs, lr=tuple(members.values()),
                           eval_every=cfg.epochs, progress=progress, desc=f"1-3c {' + '.join(members)}")
        for i, name in enumerate(members):
            theta[name], end_test_acc[name] = ens.flat_params()[i], float(h["test_acc"][-1, i])
    template = ens
    alphas = alpha_grid(cfg.alphas)
    arrays = {"alpha": alphas}
    summary = {}
    for pair, other in (("batch", "large_batch"), ("lr", "large_lr")):
        thetas = interpolate_flat(theta["base"], theta[other], alphas)
        for split_name, split in (("train", train), ("test", data.test)):
            loss, acc = evaluate_points(build, template, thetas, split)
            arrays[f"{pair}_{split_name}_loss"], arrays[f"{pair}_{split_name}_acc"] = loss, acc
        for end, name in ((0, "base"), (1, other)):
            summary[f"{pair}_end{end}_test_acc"] = end_test_acc[name]
        # The geometry beside the curves: weight norms, the distance between the ends (one unit of
        # alpha) and how far each end moved from the shared initialisation.
        a, b = theta["base"], theta[other]
        arrays[f"{pair}_geometry"] = torch.stack([a.norm(), b.norm(), (a - b).norm(), (a - theta0).norm(),
                                                  (b - theta0).norm()]).cpu().numpy()
    return cache.Result(arrays, summary)


def interpolation_units(cfg: InterpolationConfig) -> list[Unit]:
    return [Unit("interpolation", resolved(cfg), _compute_interpolation)]


def run_interpolation(cfg: InterpolationConfig, progress: bool = True) -> cache.Result:
    """Arrays: alpha [A]; for each pair ('batch': base_batch -> large_batch,
    'lr': base_lr -> large_lr) {pair}_{train,test}_{loss,acc} [A] on the whole sets."""
    return interpolation_units(cfg)[0](progress)


# ------------------------------------------------------------------ 1-3d / 1-3e
@dataclass(frozen=True)
class BatchSweepConfig:
    hidden: tuple[int, ...] = (64, 64)
    batch_sizes: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 10
    lr: float = 1e-3
    train_subset: int | None = None
    sensitivity_subset: int | None = None   # first n test images; None = all 10,000
    device: str = "auto"


BATCH_SWEEP_PROFILES = {
    "smoke": dict(hidden=(8,), batch_sizes=(16, 256), seeds=(0,), epochs=1, train_subset=512,
                  sensitivity_subset=64),
    "quick": dict(seeds=(0, 1), epochs=2, train_subset=10_000, sensitivity_subset=1_000),
    "full": dict(),
}


def batch_sweep_config(profile: str = "quick", **overrides) -> BatchSweepConfig:
    return make_config(BatchSweepConfig, BATCH_SWEEP_PROFILES, profile, **overrides)


def _train_batch(cfg: BatchSweepConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    (bs,) = cfg.batch_sizes
    data = load_mnist(dev)
    ens = Ensemble(mnist_mlp(cfg.hidden), cfg.seeds, dev)
    h = fit_classifier(ens, data.train.subset(cfg.train_subset), data.test, epochs=cfg.epochs,
                       batch_size=bs, lr=cfg.lr, eval_every=cfg.epochs, progress=progress,
                       desc=f"1-3d batch {bs}")
    sens = sensitivity(ens, data.test.subset(cfg.sensitivity_subset).x)   # [S, n]
    arrays = final_metrics(h)
    arrays["sensitivity"] = sens.mean(1).cpu().numpy()
    return cache.Result(arrays, {"batch_size": bs}, weights=ens.stacked_state())


def batch_sweep_units(cfg: BatchSweepConfig) -> list[Unit]:
    """One unit per batch size (its seeds train as one ensemble)."""
    return split_units("batch_sweep_unit", resolved(cfg), "batch_sizes", _train_batch)


def run_batch_sweep(cfg: BatchSweepConfig, progress: bool = True) -> cache.Result:
    """Arrays: batch_size [B]; train_loss, train_acc, test_loss, test_acc,
    sensitivity [B, S] (final; sensitivity = mean over the test images of the
    per-image Frobenius norm of d softmax / d input)."""
    cfg = resolved(cfg)

    def compute():
        parts = run_units(batch_sweep_units(cfg), progress)
        arrays = stack_units(parts)
        arrays["batch_size"] = np.array(cfg.batch_sizes)
        return cache.Result(arrays, {"mean_sensitivity": arrays["sensitivity"].mean(1).tolist()})

    return cache.cached("batch_sweep", cfg, compute)


def batch_sweep_models(cfg: BatchSweepConfig, progress: bool = True) -> list[Ensemble]:
    """The trained ensembles of the sweep (one per batch size), from the cache."""
    cfg = resolved(cfg)
    parts = run_units(batch_sweep_units(cfg), progress)
    dev = torch.device(cfg.device)
    return [Ensemble.from_stacked(mnist_mlp(cfg.hidden), {k: v.to(dev) for k, v in p.weights.items()}, dev)
            for p in parts]


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
    "smoke": dict(sweep=batch_sweep_config("smoke"), ascent_steps=3, loss_subset=256, hessian_subset=256),
    "quick": dict(sweep=batch_sweep_config("quick"), ascent_steps=10, loss_subset=2_000, hessian_subset=2_000),
    "full": dict(),
}


def sharpness_config(profile: str = "quick", **overrides) -> SharpnessConfig:
    return make_config(SharpnessConfig, SHARPNESS_PROFILES, profile, **overrides)


def _compute_sharpness(cfg: SharpnessConfig, progress: bool) -> cache.Result:
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


def sharpness_units(cfg: SharpnessConfig) -> list[Unit]:
    return [Unit("sharpness", resolved(cfg), _compute_sharpness)]


def run_sharpness(cfg: SharpnessConfig, progress: bool = True) -> cache.Result:
    """Arrays: batch_size [B]; sharpness [E, B, S] (Keskar epsilon-sharpness for
    each epsilon); top_eig [B, S] (largest Hessian eigenvalue of the training
    loss on the subset, from Hessian-vector products)."""
    return sharpness_units(cfg)[0](progress)
