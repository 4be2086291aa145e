"""Section 1-2: optimization.

1-2a  8 runs of one MNIST DNN trained together; weight snapshots for one PCA.
1-2b  gradient norm and loss per iteration (a 1-D function and MNIST).
1-2c  100 small float64 nets driven to near-zero-gradient points; full Hessian.
1-2d  loss surface around a trained 1-2a model: random filter-normalised
      directions and the PCA plane of its trajectory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import vmap

from .. import cache
from ..analysis import evaluate_points, filter_normalized_direction, pca_2d, plane_grid
from ..config import make_config
from ..critical import hessian_spectrum, minimize_grad_norm, refine_critical
from ..curvature import FlatLoss, minimal_ratio
from ..data import load_mnist
from ..errors import ConfigError
from ..ensemble import Ensemble
from ..functions import target
from ..models import count_params, mlp, mlp_widths_for_params, mnist_mlp
from ..train import eval_chunk, fit_classifier, fit_full_batch, member_cross_entropy
from .common import Unit, resolved, run_units


# ------------------------------------------------------------------ 1-2a
@dataclass(frozen=True)
class TrajectoryConfig:
    hidden: tuple[int, ...] = (32, 32)   # DNN 784 -> hidden -> 10
    runs: int = 8                        # seeds 0 .. runs-1, trained together
    epochs: int = 24
    snapshot_every: int = 3              # epochs between weight snapshots (epoch 0 included)
    batch_size: int = 128
    lr: float = 1e-3
    train_subset: int | None = None      # first n training images; None = all 60,000
    device: str = "auto"


TRAJECTORY_PROFILES = {
    "smoke": dict(hidden=(8,), runs=2, epochs=2, snapshot_every=1, train_subset=512),
    "quick": dict(epochs=8, snapshot_every=1, train_subset=10_000),
    "full": dict(),
}


def trajectory_config(profile: str = "quick", **overrides) -> TrajectoryConfig:
    return make_config(TrajectoryConfig, TRAJECTORY_PROFILES, profile, **overrides)


def _compute_trajectory(cfg: TrajectoryConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    ens = Ensemble(mnist_mlp(cfg.hidden), list(range(cfg.runs)), dev)
    hist = fit_classifier(ens, data.train.subset(cfg.train_subset), data.test, epochs=cfg.epochs,
                          batch_size=cfg.batch_size, lr=cfg.lr, snapshot_every=cfg.snapshot_every,
                          progress=progress, desc="1-2a 8 runs")
    first = ens.param_slices()["1.weight"]
    hist["first_layer"] = np.array([first.start, first.stop])
    summary = {"params": count_params(ens), "snapshots_per_run": int(len(hist["snapshot_epochs"])),
               "final_train_acc_mean": float(hist["train_acc"][-1].mean()),
               "final_test_acc_mean": float(hist["test_acc"][-1].mean())}
    return cache.Result(hist, summary, weights=ens.stacked_state())


def trajectory_units(cfg: TrajectoryConfig) -> list[Unit]:
    return [Unit("trajectory", resolved(cfg), _compute_trajectory)]


def run_trajectory(cfg: TrajectoryConfig, progress: bool = True) -> cache.Result:
    """Arrays: the fit_classifier history ([epochs + 1, runs] each), snapshots
    [K, runs, P], snapshot_epochs [K], and `first_layer` = the slice [start, stop)
    of the first layer's weight in a flat vector."""
    return trajectory_units(cfg)[0](progress)


# The layer panel of 1-2a: the hidden-to-hidden weights (32 x 32, about 4% of the parameters), not the
# first layer, which holds 95% of them and so looks like the whole model.
SMALL_LAYER = "3.weight"


def param_slice(model: torch.nn.Module, name: str) -> slice:
    """Where parameter `name` lies in the model's flat parameter vector
    (`named_parameters` order, as in Ensemble.flat_params)."""
    start = 0
    for n, p in model.named_parameters():
        if n == name:
            return slice(start, start + p.numel())
        start += p.numel()
    raise ConfigError(f"No parameter {name!r}; the model has: {', '.join(n for n, _ in model.named_parameters())}.")


def trajectory_pca(result: cache.Result, cfg: TrajectoryConfig | None = None,
                   layer: str | None = None) -> dict[str, np.ndarray]:
    """ONE PCA over the snapshots of all runs together: the whole model, or one
    named parameter of it (`layer`, with the `cfg` that built the model).
    Returns coords [K, runs, 2] and explained [2]."""
    snaps = result.arrays["snapshots"]                          # [K, R, P]
    if layer is not None:
        with torch.device("meta"):
            snaps = snaps[..., param_slice(mnist_mlp(cfg.hidden)(), layer)]
    K, R, P = snaps.shape
    coords, _, explained = pca_2d(snaps.reshape(K * R, P))
    return {"coords": coords.reshape(K, R, 2), "explained": explained}


# ------------------------------------------------------------------ 1-2b
@dataclass(frozen=True)
class GradNormConfig:
    function: str = "sinc"
    function_depth: int = 1              # hidden layers, ~571 parameters as in 1-1a (the best sinc fit there)
    function_epochs: int = 5_000         # full-batch steps = iterations
    function_lr: float = 1e-3
    n_points: int = 1000
    mnist_hidden: tuple[int, ...] = (32, 32)
    mnist_epochs: int = 5
    mnist_batch_size: int = 128
    mnist_lr: float = 1e-3
    train_subset: int | None = None
    # Every seed trains its own run (one ensemble per task). One run's late gradient norm is chaotic:
    # under full-batch Adam it spikes, and a last-bit change on another CPU moved the median over the
    # last 10% of iterations of a single run by 44%. The headline is the mean over seeds.
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    device: str = "auto"


GRAD_NORM_PROFILES = {
    "smoke": dict(function_epochs=50, n_points=64, mnist_hidden=(8,), mnist_epochs=1, train_subset=512, seeds=(0,)),
    "quick": dict(function_epochs=3_000, mnist_epochs=2, train_subset=20_000, seeds=(0, 1, 2)),
    "full": dict(),
}


def grad_norm_config(profile: str = "quick", **overrides) -> GradNormConfig:
    return make_config(GradNormConfig, GRAD_NORM_PROFILES, profile, **overrides)


def _compute_grad_norm(cfg: GradNormConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    widths = mlp_widths_for_params(cfg.function_depth, 571)
    seeds = list(cfg.seeds)
    ens = Ensemble(lambda: mlp(1, widths, 1), seeds, dev)
    x = torch.linspace(-1, 1, cfg.n_points, device=dev).view(1, -1, 1).expand(len(seeds), -1, -1).contiguous()
    fit = fit_full_batch(ens, x, target(cfg.function, x), epochs=cfg.function_epochs, lr=cfg.function_lr,
                         record_grad_norm=True, progress=progress, desc="1-2b function")
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    build = mnist_mlp(cfg.mnist_hidden)
    ens2 = Ensemble(build, seeds, dev)
    h = fit_classifier(ens2, train, None, epochs=cfg.mnist_epochs, batch_size=cfg.mnist_batch_size,
                       lr=cfg.mnist_lr, record_steps=True, snapshot_every=1, progress=progress,
                       desc="1-2b MNIST")
    # The minibatch gradient is mostly sampling noise; the true (full-batch) gradient norm at the
    # start and after every epoch says how close the weights are to a critical point.
    full = [full_batch_grad_norm(Ensemble.from_stacked(build, ens2.unflatten(torch.as_tensor(s).to(dev)), dev),
                                 train) for s in h["snapshots"]]
    steps_per_epoch = len(h["step_loss"]) // cfg.mnist_epochs
    arrays = {"function_loss": fit["loss"][:-1], "function_grad_norm": fit["grad_norm"],
              "mnist_loss": h["step_loss"], "mnist_grad_norm": h["grad_norm"],
              "mnist_full_grad_norm": np.array(full),
              "mnist_full_grad_norm_step": h["snapshot_epochs"] * steps_per_epoch}
    summary = {k + "_final_mean": float(v[-1].mean()) for k, v in arrays.items() if k != "mnist_full_grad_norm_step"}
    return cache.Result(arrays, summary)


def first_tenth_median(curve: np.ndarray) -> np.ndarray:
    """[S]: the median of each run's first 10% of iterations (at least one); curve [iterations, S]."""
    return np.median(curve[:max(1, len(curve) // 10)], axis=0)


def last_tenth_median(curve: np.ndarray) -> np.ndarray:
    """[S]: the median of each run's last 10% of iterations (at least one); curve [iterations, S]."""
    return np.median(curve[-max(1, len(curve) // 10):], axis=0)


def full_batch_grad_norm(ens: Ensemble, split, chunk: int | None = None) -> np.ndarray:
    """[N] norm of each member's gradient of the mean cross-entropy over the
    WHOLE split (not a minibatch), accumulated chunk by chunk. The members'
    .grad are left as they were found (None)."""
    n = len(split)
    chunk = chunk or eval_chunk(split.x.device)
    for p in ens.parameters():
        p.grad = None
    for s in range(0, n, chunk):
        out = ens(split.x[s:s + chunk], shared=True)
        (member_cross_entropy(out, split.y[..., s:s + chunk]).sum(1) / n).sum().backward()
    norms = ens.grad_norms().detach().cpu().numpy().astype(np.float64)
    for p in ens.parameters():
        p.grad = None
    return norms


def grad_norm_units(cfg: GradNormConfig) -> list[Unit]:
    return [Unit("grad_norm", resolved(cfg), _compute_grad_norm)]


def run_grad_norm(cfg: GradNormConfig, progress: bool = True) -> cache.Result:
    """Arrays: function_loss, function_grad_norm [iterations, seeds] (full-batch,
    the loss and the L2 norm of the gradient over all parameters at the same
    step); mnist_loss, mnist_grad_norm [iterations, seeds] (minibatch, same
    step); mnist_full_grad_norm [epochs + 1, seeds] (the whole training set's
    gradient at the start and after every epoch, at mnist_full_grad_norm_step)."""
    return grad_norm_units(cfg)[0](progress)


# ------------------------------------------------------------------ 1-2c
@dataclass(frozen=True)
class CriticalConfig:
    function: str = "sinc"
    widths: tuple[int, ...] = (10, 10)   # 1 -> 10 -> 10 -> 1: 141 parameters
    activation: str = "tanh"             # smooth, so the Hessian exists everywhere
    n_points: int = 256                  # the full training set, evenly spaced on [-1, 1]; more
                                         # points than parameters, so minima are not flat by construction
    runs: int = 100                      # seeds first_run .. first_run + runs - 1
    first_run: int = 0
    runs_per_unit: int = 10              # blocks of runs computed (and cached) independently, in
                                         # parallel (--jobs processes on a CPU; on a GPU run, the cores
                                         # its threads leave free); runs do not depend on it
    phase1_epochs: int = 5_000           # full-batch Adam on the loss
    phase1_lr: float = 1e-2
    grad_tol: float = 1e-4               # stop when the TRUE ||grad L|| < grad_tol
    max_iters: int = 200                 # phase-2 Levenberg-Marquardt iterations at most
    refine_tol: float = 1e-8             # phase 3, trust-region Newton on L: stop at ||grad L|| <= this
    refine_iters: int = 5_000            # phase-3 iterations at most (runs stop when they reach refine_tol;
                                         # most need 1,000-3,000: long valleys of slowly falling loss)
    resolve_factor: float = 1e3          # an eigenvalue is resolved when |lambda| > this * ||grad L||
    device: str = "cpu"                  # float64 small dense linear algebra: CPU is right


CRITICAL_PROFILES = {
    "smoke": dict(runs=4, runs_per_unit=2, phase1_epochs=50, max_iters=5, refine_iters=5),
    "quick": dict(runs=20, phase1_epochs=2_000, max_iters=20, refine_iters=20),
    "full": dict(),
}


def critical_config(profile: str = "quick", **overrides) -> CriticalConfig:
    return make_config(CriticalConfig, CRITICAL_PROFILES, profile, **overrides)


def critical_problem(cfg: CriticalConfig):
    """(build, x [n, 1], y [n, 1], FlatLoss) of the 1-2c task, float64."""
    dev = torch.device(cfg.device)
    build = lambda: mlp(1, cfg.widths, 1, activation=cfg.activation)
    x = torch.linspace(-1, 1, cfg.n_points, dtype=torch.float64, device=dev).unsqueeze(1)
    y = target(cfg.function, x)
    f = FlatLoss(build().double().to(dev), nn.functional.mse_loss, x, y)
    return build, x, y, f


def _compute_critical_block(cfg: CriticalConfig, progress: bool) -> cache.Result:
    build, x, y, f = critical_problem(cfg)
    R = cfg.runs
    ens = Ensemble(build, list(range(cfg.first_run, cfg.first_run + R)), x.device, dtype=torch.float64)
    phase1 = fit_full_batch(ens, x.expand(R, -1, -1), y.expand(R, -1, -1), epochs=cfg.phase1_epochs,
                            lr=cfg.phase1_lr, progress=progress, desc="1-2c phase 1: L")["loss"]
    out = minimize_grad_norm(f, ens.flat_params(), tol=cfg.grad_tol, max_iters=cfg.max_iters,
                             progress=progress)
    theta = out["theta"]
    eig = hessian_spectrum(f, theta)
    ref = refine_critical(f, theta, tol=cfg.refine_tol, max_iters=cfg.refine_iters,
                          checkpoints=REFINE_CHECKPOINTS, progress=progress)
    arrays = {"phase1_loss": phase1, "loss": vmap(f)(theta).cpu().numpy(),
              "grad_norm": out["grad_norm"].cpu().numpy(), "reached": out["reached"].cpu().numpy(),
              "minimal_ratio": minimal_ratio(eig.cpu().numpy()),
              "eigenvalues": eig.cpu().numpy(), "trace": out["trace"].cpu().numpy(),
              "refined_loss": ref["loss"].cpu().numpy(), "refined_grad_norm": ref["grad_norm"].cpu().numpy(),
              "refined_reached": ref["reached"].cpu().numpy(),
              "refined_eigenvalues": hessian_spectrum(f, ref["theta"]).cpu().numpy(),
              "refine_trace": ref["trace"].cpu().numpy(), "refine_loss_trace": ref["loss_trace"].cpu().numpy(),
              "spectrum_at": ref["spectrum_at"].cpu().numpy(), "grad_norm_at": ref["grad_norm_at"].cpu().numpy()}
    summary = {"params": count_params(f), "runs": R, "reached": int(out["reached"].sum()),
               "grad_tol": cfg.grad_tol, "refined_reached": int(ref["reached"].sum())}
    return cache.Result(arrays, summary)


# ||grad L|| levels at which phase 3 records the spectrum (is the ratio stable as the tolerance tightens?)
REFINE_CHECKPOINTS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8)


def critical_units(cfg: CriticalConfig) -> list[Unit]:
    """Blocks of `runs_per_unit` runs: every run is independent of the others."""
    cfg = resolved(cfg)
    starts = range(cfg.first_run, cfg.first_run + cfg.runs, cfg.runs_per_unit)
    end = cfg.first_run + cfg.runs
    return [Unit("critical_block", dataclasses.replace(cfg, first_run=s, runs=min(cfg.runs_per_unit, end - s)),
                 _compute_critical_block) for s in starts]


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last row up to `rows` (a block whose runs all stopped early
    keeps their final gradient norms: they no longer move)."""
    return np.concatenate([a, np.repeat(a[-1:], rows - len(a), 0)]) if len(a) < rows else a


def run_critical(cfg: CriticalConfig, progress: bool = True) -> cache.Result:
    """Arrays (one entry per run): phase1_loss [epochs + 1, R]; loss [R] (final
    loss of the original objective), grad_norm [R] (true, full-batch), reached
    [R], minimal_ratio [R] (fraction of Hessian eigenvalues > 0), eigenvalues
    [R, P]; trace [iters + 1, R] (||grad L|| during phase 2). Phase 3 (trust-region
    Newton on L from the phase-2 points): refined_loss, refined_grad_norm,
    refined_reached (||grad L|| <= refine_tol), refined_eigenvalues [R, P],
    refine_trace / refine_loss_trace [iters + 1, R], and at each of
    REFINE_CHECKPOINTS the spectrum where a run first got there, spectrum_at
    [T, R, P] and grad_norm_at [T, R] (NaN where it never did)."""
    cfg = resolved(cfg)

    def compute() -> cache.Result:
        parts = run_units(critical_units(cfg), progress)
        arrays = {k: np.concatenate([p.arrays[k] for p in parts]) for k in
                  ("loss", "grad_norm", "reached", "minimal_ratio", "eigenvalues", "refined_loss",
                   "refined_grad_norm", "refined_reached", "refined_eigenvalues")}
        for k in ("phase1_loss", "spectrum_at", "grad_norm_at"):
            arrays[k] = np.concatenate([p.arrays[k] for p in parts], 1)
        for k in ("trace", "refine_trace", "refine_loss_trace"):
            n = max(len(p.arrays[k]) for p in parts)
            arrays[k] = np.concatenate([_pad_rows(p.arrays[k], n) for p in parts], 1)
        summary = {**parts[0].summary, "runs": cfg.runs, "reached": int(arrays["reached"].sum()),
                   "refined_reached": int(arrays["refined_reached"].sum())}
        return cache.Result(arrays, summary)

    return cache.cached("critical", cfg, compute)


# ------------------------------------------------------------------ 1-2d
@dataclass(frozen=True)
class SurfaceConfig:
    trajectory: TrajectoryConfig = TrajectoryConfig()   # the trained runs to look around (cached)
    run: int = 0                         # which of them
    grid: int = 31                       # points per axis
    span: float = 1.0                    # random plane: coefficients in [-span, span]
    margin: float = 0.25                 # PCA plane: extra room around the trajectory
    eval_subset: int = 10_000            # first n training images the loss is measured on
    direction_seed: int = 0
    device: str = "auto"


SURFACE_PROFILES = {
    "smoke": dict(trajectory=trajectory_config("smoke"), grid=5, eval_subset=256),
    "quick": dict(trajectory=trajectory_config("quick"), grid=15, eval_subset=2_000),
    "full": dict(),
}


def surface_config(profile: str = "quick", **overrides) -> SurfaceConfig:
    return make_config(SurfaceConfig, SURFACE_PROFILES, profile, **overrides)


def _compute_surface(cfg: SurfaceConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    traj = run_trajectory(cfg.trajectory, progress=progress)
    build = mnist_mlp(cfg.trajectory.hidden)
    template = Ensemble.from_stacked(build, {k: v.to(dev) for k, v in traj.weights.items()}, dev)
    centre = template.flat_params()[cfg.run]                       # [P], final weights
    split = load_mnist(dev).train.subset(cfg.eval_subset)
    g = torch.Generator().manual_seed(cfg.direction_seed)
    d1 = filter_normalized_direction(template, cfg.run, g)
    d2 = filter_normalized_direction(template, cfg.run, g)
    a = b = np.linspace(-cfg.span, cfg.span, cfg.grid)
    rl, _ = evaluate_points(build, template, plane_grid(centre, d1, d2, a, b), split)
    # PCA plane of this run's trajectory (Li et al.: PCA of theta_k - theta_final).
    snaps = torch.as_tensor(traj.arrays["snapshots"][:, cfg.run], device=dev)
    _, comps, explained = pca_2d((snaps - centre).cpu().numpy())
    comps = torch.as_tensor(comps, dtype=centre.dtype, device=dev)
    path = ((snaps - centre) @ comps.T).cpu().numpy()              # [K, 2]
    lo, hi = path.min(0), path.max(0)
    pad = cfg.margin * (hi - lo) + 1e-3
    pa = np.linspace(lo[0] - pad[0], hi[0] + pad[0], cfg.grid)
    pb = np.linspace(lo[1] - pad[1], hi[1] + pad[1], cfg.grid)
    pl, _ = evaluate_points(build, template, plane_grid(centre, comps[0], comps[1], pa, pb), split)
    path_loss, _ = evaluate_points(build, template, snaps, split)
    centre_loss, _ = evaluate_points(build, template, centre.unsqueeze(0), split)
    arrays = {"random_a": a, "random_b": b, "random_loss": rl.reshape(cfg.grid, cfg.grid),
              "pca_a": pa, "pca_b": pb, "pca_loss": pl.reshape(cfg.grid, cfg.grid),
              "path": path, "path_loss": path_loss, "explained": explained}
    summary = {"centre_loss": float(centre_loss[0]),
               "explained": [float(e) for e in explained]}
    return cache.Result(arrays, summary)


def surface_units(cfg: SurfaceConfig) -> list[Unit]:
    return [Unit("surface", resolved(cfg), _compute_surface)]


def run_surface(cfg: SurfaceConfig, progress: bool = True) -> cache.Result:
    """Arrays: random_a, random_b [G]; random_loss [G, G] (rows: b); pca_a, pca_b
    [G]; pca_loss [G, G]; path [K, 2] (the run's snapshots in the PCA plane);
    path_loss [K]; explained [2]."""
    return surface_units(cfg)[0](progress)
