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
from ..errors import TrainingDiverged
from ..train import MinibatchTrainer, evaluate, fit_classifier, make_adam, shuffle_generator
from .common import Unit, final_metrics, resolved, run_units, split_units, stack_units


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


def random_labels_config(profile: str = "quick", **overrides) -> RandomLabelsConfig:
    return make_config(RandomLabelsConfig, RANDOM_LABELS_PROFILES, profile, **overrides)


KINDS = ("random", "true")


def _compute_random_labels(cfg: RandomLabelsConfig, progress: bool) -> cache.Result:
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


def random_labels_units(cfg: RandomLabelsConfig) -> list[Unit]:
    return [Unit("random_labels", resolved(cfg), _compute_random_labels)]


def run_random_labels(cfg: RandomLabelsConfig, progress: bool = True) -> cache.Result:
    """Arrays: {random,true}_{train,test}_{loss,acc} [epochs + 1, seeds]. The random
    runs' train metrics are against their random labels; test labels stay true."""
    return random_labels_units(cfg)[0](progress)


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


def interpolation_units(cfg: InterpolationConfig) -> list[Unit]:
    return [Unit("interpolation", resolved(cfg), _compute_interpolation)]


def run_interpolation(cfg: InterpolationConfig, progress: bool = True) -> cache.Result:
    """Arrays: alpha [A]; for each pair in PAIRS ('batch', 'lr': the protocol pairs,
    both ends from one initialisation; 'batch_ctrl', 'lr_ctrl': the control, the
    second end from an independent seed) {pair}_{train,test}_{loss,acc} [A] on the
    whole sets and {pair}_geometry [5] (||a||, ||b||, ||a - b||, each end's distance
    from its initialisation); slice_t [T] and slice_{end} [T] (training loss along a
    filter-normalised direction around each end); end_metrics [len(ENDS),
    len(END_METRICS)] at the matched training loss."""
    return interpolation_units(cfg)[0](progress)


# ------------------------------------------------------------------ 1-3c / 1-3d / 1-3e
def fit_to_loss(ens: Ensemble, train: Split, test: Split, *, target: float, max_epochs: int, batch_size: int,
                lr: float | tuple[float, ...], progress: bool = False, desc: str = "train") -> dict[str, np.ndarray]:
    """Train every member (Adam, cross-entropy, its own shuffling) until ITS loss on
    the whole of `train` first falls to `target` or below, checked after every
    epoch, and keep each member's weights from that epoch (the others train on;
    a member's weights are put back at the end). A member that never gets there by
    `max_epochs` keeps its last weights. Comparing models at a matched training
    loss is what separates a property of the solution (sharpness, sensitivity)
    from how far training got. Returns, per member: epochs, steps, reached and
    the final {train,test}_{loss,acc} of the kept weights."""
    N = len(ens)
    opt = make_adam(ens, lr)
    trainer = MinibatchTrainer(ens, opt, train, batch_size, [shuffle_generator(s) for s in ens.seeds])
    kept = {k: v.detach().clone() for k, v in ens.params.items()}
    epochs = np.full(N, max_epochs)
    reached = np.zeros(N, bool)
    bar = tqdm(range(1, max_epochs + 1), desc=desc, disable=not progress, leave=False)
    try:
        for epoch in bar:
            trainer.epoch()
            loss, _ = evaluate(ens, train)
            if not np.isfinite(loss).all():
                raise TrainingDiverged(f"{desc}: the training loss became {loss[~np.isfinite(loss)][0]} at epoch "
                                       f"{epoch}; lower the learning rate.")
            new = (loss <= target) & ~reached
            mask = torch.as_tensor(new, device=train.x.device)
            for k, v in ens.params.items():
                kept[k][mask] = v.detach()[mask]
            epochs[new], reached = epoch, reached | new
            bar.set_postfix(reached=f"{reached.sum()}/{N}", worst_loss=f"{loss[~reached].max() if (~reached).any() else 0:.3f}")
            if reached.all():
                break
    finally:
        trainer.close()
    mask = torch.as_tensor(reached, device=train.x.device)
    with torch.no_grad():
        for k, v in ens.params.items():
            v[mask] = kept[k][mask]
    out = {"epochs": epochs, "steps": epochs * -(-len(train) // batch_size), "reached": reached}
    for name, split in (("train", train), ("test", test)):
        out[f"{name}_loss"], out[f"{name}_acc"] = evaluate(ens, split)
    return out


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


def batch_sweep_config(profile: str = "quick", **overrides) -> BatchSweepConfig:
    return make_config(BatchSweepConfig, BATCH_SWEEP_PROFILES, profile, **overrides)


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
    cfg = resolved(cfg)
    return (split_units("batch_sweep_unit", cfg, "batch_sizes", _train_batch) +
            [Unit("batch_sweep_random", dataclasses.replace(cfg, batch_sizes=(b,)), _train_random_batch)
             for b in cfg.random_label_batches])


def run_batch_sweep(cfg: BatchSweepConfig, progress: bool = True) -> cache.Result:
    """Arrays: batch_size [B]; train_loss, train_acc, test_loss, test_acc,
    sensitivity, epochs, steps, reached [B, S] (at the matched training loss, see
    `fit_to_loss`; sensitivity = mean over the test images of the per-image
    Frobenius norm of d softmax / d input); the same with prefix random_ [Br, S]
    for the random-label models, random_batch_size [Br]."""
    cfg = resolved(cfg)

    def compute():
        parts = run_units(batch_sweep_units(cfg), progress)
        B = len(cfg.batch_sizes)
        arrays = stack_units(parts[:B])
        arrays |= {f"random_{k}": v for k, v in stack_units(parts[B:]).items()}
        arrays["batch_size"] = np.array(cfg.batch_sizes)
        arrays["random_batch_size"] = np.array(cfg.random_label_batches)
        return cache.Result(arrays, {"mean_sensitivity": arrays["sensitivity"].mean(1).tolist()})

    return cache.cached("batch_sweep", cfg, compute)


def batch_sweep_models(cfg: BatchSweepConfig, progress: bool = True) -> list[Ensemble]:
    """The trained ensembles of the sweep (one per batch size), from the cache."""
    cfg = resolved(cfg)
    parts = run_units(batch_sweep_units(cfg), progress)
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
