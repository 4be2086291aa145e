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
from tqdm.auto import tqdm

from .. import cache
from ..analysis import evaluate_points, filter_normalized_direction, pca_2d, plane_grid
from ..config import make_config
from ..critical import CRITICAL as AT_CRITICAL, GRADIENT_FLAT as AT_GRADIENT_FLAT
from ..critical import (STATUS_NAMES, classify, endpoint_spectrum, find_critical, linear_autoencoder,
                        linear_autoencoder_critical_points, linear_autoencoder_starts, minimize_grad_norm,
                        refine_critical, resolved_spectrum)
from ..curvature import FlatLoss, loss_and_grad, minimal_ratio
from ..data import load_mnist
from ..errors import ConfigError
from ..ensemble import Ensemble
from ..functions import target
from ..models import count_params, mlp, mlp_widths_for_params, mnist_mlp
from ..train import eval_chunk, fit_classifier, fit_full_batch, member_cross_entropy
from ..headline import (TEST, Check, correlation, fmt_sp, md_table, one_sample, pct, pct_ci, plural, pos_ci, rnd,
                        rounded, vals)
from ..stats import fmt_interval, partial_spearman_ci, proportion_ci, spearman_ci
from .common import Experiment, Unit


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


def _compute_trajectory(cfg: TrajectoryConfig, progress: bool) -> cache.Result:
    """Arrays: the fit_classifier history ([epochs + 1, runs] each), snapshots
    [K, runs, P], snapshot_epochs [K], and `first_layer` = the slice [start, stop)
    of the first layer's weight in a flat vector."""
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


def _compute_grad_norm(cfg: GradNormConfig, progress: bool) -> cache.Result:
    """Arrays: function_loss, function_grad_norm [iterations, seeds] (full-batch,
    the loss and the L2 norm of the gradient over all parameters at the same
    step); mnist_loss, mnist_grad_norm [iterations, seeds] (minibatch, same
    step); mnist_full_grad_norm [epochs + 1, seeds] (the whole training set's
    gradient at the start and after every epoch, at mnist_full_grad_norm_step)."""
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


# ------------------------------------------------------------------ 1-2c
@dataclass(frozen=True)
class CriticalConfig:
    function: str = "sinc"
    widths: tuple[int, ...] = (10, 10)   # 1 -> 10 -> 10 -> 1: 141 parameters (the assignment's net)
    small_widths: tuple[int, ...] = (3,) # 1 -> 3 -> 1: 10 parameters, a net that cannot interpolate
    activation: str = "tanh"             # smooth, so the Hessian exists everywhere
    n_points: int = 256                  # the full training set, evenly spaced on [-1, 1]; more
                                         # points than parameters, so minima are not flat by construction
    runs: int = 100                      # seeds first_run .. first_run + runs - 1, for each net
    first_run: int = 0
    runs_per_unit: int = 10              # blocks of runs computed (and cached) independently, in
                                         # parallel (--jobs processes on a CPU; on a GPU run, the cores
                                         # its threads leave free); runs do not depend on it
    phase1_epochs: int = 5_000           # full-batch Adam on the loss
    phase1_lr: float = 1e-2
    grad_tol: float = 1e-4               # phase 2 (the assignment's method): minimise ||grad L||^2 until the
    max_iters: int = 200                 # TRUE ||grad L|| < grad_tol, Levenberg-Marquardt, at most max_iters
    start_epochs: tuple[int, ...] = (30, 100, 300, 1000)   # find_critical starts from the initial weights,
                                         # the weights after these phase-1 epochs and after the last one
    find_tol: float = 1e-8               # critical: ||grad L|| <= find_tol (float64)
    find_iters: int = 200                # find_critical iterations at most
    flat_ratio: float = 1e-2             # gradient-flat: ||H g|| <= flat_ratio ||H|| ||g|| where ||g|| stalled
    continue_iters: int = 800            # is gradient-flat more than a short budget? per block, the gradient-flat
                                         # end point from the latest start gets this many more iterations
    resolve_factor: float = 1e3          # an eigenvalue is resolved when |lambda| > this * ||grad L||
    oracle_per_point: int = 3            # linear-autoencoder oracle: starts 1e-2 from each critical set,
    oracle_random: int = 20              # and at random
    device: str = "cpu"                  # float64 small dense linear algebra: CPU is right


CRITICAL_PROFILES = {
    "smoke": dict(runs=4, runs_per_unit=2, phase1_epochs=50, start_epochs=(30,), max_iters=5, find_iters=5,
                  continue_iters=5, oracle_per_point=1, oracle_random=2),
    "quick": dict(runs=10, phase1_epochs=2_000, start_epochs=(30, 300), max_iters=20, find_iters=60,
                  continue_iters=100),
    "full": dict(),
}
NETS = ("wide", "small")                 # array prefixes: "" for the assignment's net, "small_" for the other
CUT_FACTORS = (1, 10, 100, 1000)         # the cut factors c in |lambda| > c ||grad L|| the index is shown for
FLAT_RATIOS_SHOWN = (1e-3, 1e-2, 1e-1)   # thresholds on ||H g|| / (||H|| ||g||) the gradient-flat count is shown for


def critical_problem(cfg: CriticalConfig):
    """(build, x [n, 1], y [n, 1], FlatLoss) of the 1-2c task, float64, for the net cfg.widths."""
    dev = torch.device(cfg.device)
    build = lambda: mlp(1, cfg.widths, 1, activation=cfg.activation)
    x = torch.linspace(-1, 1, cfg.n_points, dtype=torch.float64, device=dev).unsqueeze(1)
    y = target(cfg.function, x)
    f = FlatLoss(build().double().to(dev), nn.functional.mse_loss, x, y)
    return build, x, y, f


def start_marks(cfg: CriticalConfig) -> list[int]:
    """The phase-1 epochs whose weights find_critical starts from (0: the initial weights; the last:
    phase 1's end)."""
    return sorted({e for e in cfg.start_epochs if e < cfg.phase1_epochs} | {0, cfg.phase1_epochs})


def _compute_critical_block(cfg: CriticalConfig, progress: bool) -> cache.Result:
    """Phase 1 (full-batch Adam on L, the weights kept at each start mark), phase 2 (the
    assignment's ||grad L||^2 minimisation from phase 1's end) and find_critical from every
    mark, for runs first_run .. first_run + runs - 1 of the net cfg.widths."""
    build, x, y, f = critical_problem(cfg)
    R = cfg.runs
    ens = Ensemble(build, list(range(cfg.first_run, cfg.first_run + R)), x.device, dtype=torch.float64)
    # Adam is elementwise, so one optimizer over the [R, P] rows trains each net on its own.
    theta = nn.Parameter(ens.flat_params().clone())
    opt = torch.optim.Adam([theta], lr=cfg.phase1_lr)
    marks, snaps = start_marks(cfg), []
    phase1 = np.empty((cfg.phase1_epochs + 1, R))
    for e in tqdm(range(cfg.phase1_epochs + 1), desc="1-2c phase 1: L", disable=not progress, leave=False):
        loss, g = loss_and_grad(f, theta.detach())
        phase1[e] = loss.cpu().numpy()
        if e in marks:
            snaps.append(theta.detach().clone())
        if e < cfg.phase1_epochs:
            theta.grad = g
            opt.step()
    # Phase 2: the assignment's method, from the end of phase 1.
    out = minimize_grad_norm(f, snaps[-1], tol=cfg.grad_tol, max_iters=cfg.max_iters, progress=progress)
    loss2, g2 = loss_and_grad(f, out["theta"])
    eig2, flat2 = endpoint_spectrum(f, out["theta"], g2)
    # find_critical from every mark: [M * R] rows, mark-major.
    fc = find_critical(f, torch.cat(snaps), tol=cfg.find_tol, max_iters=cfg.find_iters, checkpoints=(1e-6,),
                       progress=progress, desc="1-2c find_critical")
    eig, flat = endpoint_spectrum(f, fc["theta"], fc["grad"])
    M = len(marks)
    grid = lambda t: t.cpu().numpy().reshape(M, R, *t.shape[1:])
    trace = fc["trace"].cpu().numpy()
    status = classify(fc["grad_norm"], flat, trace, fc["stalled"], tol=cfg.find_tol, flat_ratio_max=cfg.flat_ratio)
    # The gradient-flat end point from the latest start (rows are mark-major), given continue_iters more.
    flat_rows = np.flatnonzero(status == AT_GRADIENT_FLAT)[::-1][:1]
    more = find_critical(f, fc["theta"][torch.as_tensor(flat_rows.copy(), dtype=torch.long)], tol=cfg.find_tol,
                         max_iters=cfg.continue_iters, desc="1-2c find_critical, continued")
    _, flat_more = endpoint_spectrum(f, more["theta"], more["grad"])
    arrays = {"phase1_loss": phase1, "loss": loss2.cpu().numpy(),
              "grad_norm": out["grad_norm"].cpu().numpy(), "reached": out["reached"].cpu().numpy(),
              "minimal_ratio": minimal_ratio(eig2.cpu().numpy()), "eigenvalues": eig2.cpu().numpy(),
              "flat_ratio": flat2.cpu().numpy(), "trace": out["trace"].cpu().numpy(),
              # phase 2 stops by design (at its tolerance or its cap): its end points are classified by where
              # they are, as if stalled
              "status": classify(out["grad_norm"], flat2, out["trace"], np.ones(R, bool), tol=cfg.find_tol,
                                 flat_ratio_max=cfg.flat_ratio),
              "start_loss": np.stack([phase1[e] for e in marks]),
              "find_loss": grid(fc["loss"]), "find_grad_norm": grid(fc["grad_norm"]),
              "find_flat_ratio": grid(flat), "find_eigenvalues": grid(eig),
              "find_status": status.reshape(M, R),
              "continued_mark": flat_rows // R, "continued_run": cfg.first_run + flat_rows % R,
              "continued_grad_norm_before": fc["grad_norm"].cpu().numpy()[flat_rows],
              "continued_grad_norm": more["grad_norm"].cpu().numpy(), "continued_loss": more["loss"].cpu().numpy(),
              "continued_status": classify(more["grad_norm"], flat_more, more["trace"], more["stalled"],
                                           tol=cfg.find_tol, flat_ratio_max=cfg.flat_ratio),
              "find_trace": trace.reshape(len(trace), M, R),
              "find_spectrum_1e-6": grid(fc["spectrum_at"][0]), "find_grad_norm_1e-6": grid(fc["grad_norm_at"][0])}
    return cache.Result(arrays, {"params": count_params(f), "runs": R, "marks": marks})


def _compute_critical_oracle(cfg: CriticalConfig, progress: bool) -> cache.Result:
    """The three methods on the linear autoencoder whose critical points are known
    (`critical.linear_autoencoder`): the assignment's ||grad L||^2 minimisation (to
    find_tol, phase 2's iteration cap), the descent refinement (trust-region Newton on
    L) and find_critical, from the same starts near every critical set and at random."""
    f, U = linear_autoencoder(ORACLE_EIGENVALUES, (2,))
    points = linear_autoencoder_critical_points(ORACLE_EIGENVALUES, 2)
    S, near = linear_autoencoder_starts(U, points, (2,), per_point=cfg.oracle_per_point, random=cfg.oracle_random)
    runs = {"min_grad_norm_sq": minimize_grad_norm(f, S, tol=cfg.find_tol, max_iters=cfg.max_iters),
            "descent_on_L": refine_critical(f, S, tol=cfg.find_tol, max_iters=cfg.find_iters),
            "find_critical": find_critical(f, S, tol=cfg.find_tol, max_iters=cfg.find_iters)}
    arrays = {"oracle_values": np.array([p["value"] for p in points]),
              "oracle_index": np.array([p["index"] for p in points]), "oracle_start_near": near}
    for m, r in runs.items():
        loss, g = loss_and_grad(f, r["theta"])
        ev, flat = endpoint_spectrum(f, r["theta"], g)
        stalled = r.get("stalled", torch.ones(len(S), dtype=torch.bool))
        arrays |= {f"oracle_{m}_loss": loss.numpy(), f"oracle_{m}_grad_norm": g.norm(dim=1).numpy(),
                   f"oracle_{m}_eigenvalues": ev.numpy(),
                   f"oracle_{m}_status": classify(g.norm(dim=1), flat, r["trace"], stalled, tol=cfg.find_tol,
                                                  flat_ratio_max=cfg.flat_ratio)}
    return cache.Result(arrays, {"params": int(S.shape[1]), "starts": int(len(S))})


ORACLE_EIGENVALUES = (8.0, 4.0, 2.0, 1.0)     # the oracle's data covariance (Baldi and Hornik 1989)


def critical_units(cfg: CriticalConfig) -> list[Unit]:
    """The oracle, then blocks of `runs_per_unit` runs of each net (every run is
    independent of the others)."""
    starts = range(cfg.first_run, cfg.first_run + cfg.runs, cfg.runs_per_unit)
    end = cfg.first_run + cfg.runs
    units = [Unit("critical_oracle", cfg, _compute_critical_oracle)]
    for widths in (cfg.widths, cfg.small_widths):
        units += [Unit("critical_block", dataclasses.replace(cfg, widths=widths, first_run=s,
                                                             runs=min(cfg.runs_per_unit, end - s)),
                       _compute_critical_block) for s in starts]
    return units


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last row up to `rows` (a block whose runs all stopped early
    keeps their final gradient norms: they no longer move)."""
    return np.concatenate([a, np.repeat(a[-1:], rows - len(a), 0)]) if len(a) < rows else a


def assemble_critical(cfg: CriticalConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays, for the assignment's net (no prefix) and the small one ("small_" prefix),
    one entry per run (R) or per start mark and run (M, R):
    phase1_loss [epochs + 1, R]; phase 2 (minimise ||grad L||^2 from phase 1's end):
    loss, grad_norm, reached (its own tolerance), minimal_ratio (raw), eigenvalues [R, P],
    flat_ratio (||H g|| / (||H|| ||g||)), status (critical.classify), trace [iters + 1, R];
    find_critical from the weights after each epoch of `start_epochs` and phase 1's end:
    start_loss, find_loss, find_grad_norm, find_flat_ratio, find_status [M, R],
    find_eigenvalues [M, R, P], find_trace [iters + 1, M, R], and the spectrum where a run
    first passed ||grad L|| <= 1e-6: find_spectrum_1e-6 [M, R, P], find_grad_norm_1e-6 [M, R]
    (NaN where none). The oracle's arrays (oracle_*) come from `_compute_critical_oracle`."""
    oracle, blocks = parts[0], parts[1:]
    n = len(blocks) // 2
    arrays = dict(oracle.arrays)
    for prefix, bl in (("", blocks[:n]), ("small_", blocks[n:])):
        for k in bl[0].arrays:
            first = bl[0].arrays[k]
            if k in ("trace", "find_trace"):
                rows = max(len(p.arrays[k]) for p in bl)
                arrays[prefix + k] = np.concatenate([_pad_rows(p.arrays[k], rows) for p in bl], first.ndim - 1)
            else:
                axis = 1 if k == "phase1_loss" or first.ndim >= 2 and k not in ("eigenvalues",) else 0
                arrays[prefix + k] = np.concatenate([p.arrays[k] for p in bl], axis)
    summary = {"params": blocks[0].summary["params"], "small_params": blocks[n].summary["params"],
               "runs": cfg.runs, "marks": blocks[0].summary["marks"], "oracle_starts": oracle.summary["starts"],
               "oracle_params": oracle.summary["params"]}
    return cache.Result(arrays, summary)


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
    "smoke": dict(trajectory=make_config(TrajectoryConfig, TRAJECTORY_PROFILES, "smoke"), grid=5, eval_subset=256),
    "quick": dict(trajectory=make_config(TrajectoryConfig, TRAJECTORY_PROFILES, "quick"), grid=15, eval_subset=2_000),
    "full": dict(),
}


def _compute_surface(cfg: SurfaceConfig, progress: bool) -> cache.Result:
    """Arrays: random_a, random_b [G]; random_loss [G, G] (rows: b); pca_a, pca_b
    [G]; pca_loss [G, G]; path [K, 2] (the run's snapshots in the PCA plane);
    path_loss [K]; explained [2]."""
    dev = torch.device(cfg.device)
    traj = Unit("trajectory", cfg.trajectory, _compute_trajectory)(progress)     # 1-2a's cached runs
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


# ================================================================== headline numbers, text, checks

def h_trajectory(r, cfg) -> dict:

    out = {"runs": cfg.runs, "params": r.summary["params"], "final_test_acc": pct_ci(r.arrays["test_acc"][-1], TEST)}
    for key, layer in (("whole_model", None), ("small_layer", SMALL_LAYER)):
        ev = trajectory_pca(r, cfg, layer)["explained"]
        out[f"explained_{key}"] = [rnd(100 * ev[0]), rnd(100 * ev[1])]
    return out


def h_grad_norm(r, cfg) -> dict:

    out = {"seeds": len(cfg.seeds)}
    for task in ("function", "mnist"):
        gn, loss = r.arrays[f"{task}_grad_norm"], r.arrays[f"{task}_loss"]          # [iterations, seeds]
        first, last = first_tenth_median(gn), last_tenth_median(gn)
        out[task] = {"iterations": int(len(gn)), "grad_norm_first10": pos_ci(first), "grad_norm_last10": pos_ci(last),
                     "loss_first10": pos_ci(first_tenth_median(loss)), "loss_last10": pos_ci(last_tenth_median(loss)),
                     "grad_norm_drop": pos_ci(first / last)}
    full = r.arrays["mnist_full_grad_norm"]                                         # [epochs + 1, seeds]
    out["mnist"]["full_batch_grad_norm_start_end"] = [pos_ci(full[0]), pos_ci(full[-1])]
    return out


def _counts(status) -> dict:
    """{critical, gradient_flat, not_converged}: how many end points have each status."""
    st = np.asarray(status).ravel()
    return {name: int((st == k).sum()) for k, name in enumerate(STATUS_NAMES)}


def _index_at_critical(res: dict, loss, params: int) -> dict:
    """The index (resolved negative eigenvalues, `resolved_spectrum`'s `res`) and its relation to the
    loss over critical points (of nets with `params` parameters)."""
    index = res["negative"]
    return {"index_positive": int((index > 0).sum()),
            "index_median": rnd(np.median(index)) if len(index) else None,
            "index_max": int(index.max()) if len(index) else None,
            "near_zero_median": rnd(np.median(res["near_zero"])) if len(index) else None,
            # a fraction of the resolved eigenvalues, over critical points: logit-scale interval, inside [0, 1]
            "resolved_ratio": (rounded(proportion_ci(res["resolved_ratio"][np.isfinite(res["resolved_ratio"])],
                                                     params)) if np.isfinite(res["resolved_ratio"]).any() else None),
            "index_vs_loss": correlation(spearman_ci, index, _loss_levels(loss))}


def _loss_levels(loss, rel: float = 1e-6) -> np.ndarray:
    """Each loss replaced by the smallest loss of its level: critical points whose losses agree to a
    relative 1e-6 (rounding, not a different critical value) are one level, tied in a rank correlation."""
    v = np.asarray(loss, float)
    order = np.argsort(v)
    new = np.r_[True, np.diff(v[order]) > rel * np.maximum(np.abs(v[order][1:]), 1e-300)] if len(v) else np.zeros(0, bool)
    out = np.empty_like(v)
    out[order] = v[order][np.flatnonzero(new)[np.cumsum(new) - 1]]
    return out


def _levels(loss, index, top: int = 8) -> list[dict]:
    """Per loss level of a set of critical points (`_loss_levels`), by falling loss: its loss, how many
    points and their index (min, median, max); the `top` most populated levels."""
    lv = _loss_levels(loss)
    out = [{"loss": rnd(v), "n": int((lv == v).sum()), "index": [int(index[lv == v].min()),
                                                                 rnd(np.median(index[lv == v])),
                                                                 int(index[lv == v].max())]}
           for v in np.unique(lv)]
    return sorted(sorted(out, key=lambda d: -d["n"])[:top], key=lambda d: -d["loss"])


def h_critical(r, cfg) -> dict:
    a, s = r.arrays, r.summary
    out = {"runs": int(cfg.runs), "start_epochs": s["marks"], "grad_tol": cfg.grad_tol, "find_tol": cfg.find_tol,
           "find_iters": cfg.find_iters, "flat_ratio": cfg.flat_ratio, "resolve_factor": cfg.resolve_factor,
           "cut_factors": list(CUT_FACTORS)}
    reached = a["reached"].astype(bool)
    out["phase2"] = {"reached": int(reached.sum()), "classified": _counts(a["status"]),
                     "loss_median": rnd(np.median(a["loss"])),
                     "grad_norm_median": rnd(np.median(a["grad_norm"])),
                     "flat_ratio_median": rnd(np.median(a["flat_ratio"])),
                     "minimal_ratio_raw": (rounded(proportion_ci(a["minimal_ratio"][reached], s["params"]))
                                           if reached.any() else None),
                     "spearman_ratio_loss_reached": correlation(spearman_ci, a["minimal_ratio"][reached],
                                                                a["loss"][reached])}
    for net, prefix, params in (("wide", "", s["params"]), ("small", "small_", s["small_params"])):
        st = a[prefix + "find_status"]
        crit = st == AT_CRITICAL
        ev, gn, loss = a[prefix + "find_eigenvalues"][crit], a[prefix + "find_grad_norm"][crit], a[prefix + "find_loss"][crit]
        res = {c: resolved_spectrum(ev, gn, c) for c in sorted({*CUT_FACTORS, cfg.resolve_factor})}
        by_cut = {f"{c:g}": _index_at_critical(rc, loss, params) for c, rc in res.items()}
        main = by_cut[f"{cfg.resolve_factor:g}"]
        # Does an eigenvalue resolved at ||g|| <= 1e-6 keep its sign down to the end (<= find_tol)? The
        # negative count over the eigenvalues beyond the 1e-6 cut, there and at the end (same cut), per critical
        # point whose spectrum was recorded between 1e-6 and find_tol (NaN for those that jumped straight below it).
        at6 = crit & np.isfinite(a[prefix + "find_grad_norm_1e-6"])
        cut6 = cfg.resolve_factor * a[prefix + "find_grad_norm_1e-6"][at6][:, None]
        neg6 = (a[prefix + "find_spectrum_1e-6"][at6] < -cut6).sum(1)
        neg_end = (a[prefix + "find_eigenvalues"][at6] < -cut6).sum(1)
        sig = lambda d: None if d["rho"] is None else (0 if d["ci"][0] <= 0 <= d["ci"][1] else int(np.sign(d["rho"])))
        signs = [sig(v["index_vs_loss"]) for v in by_cut.values()]
        out[net] = {"params": int(params), "find_critical": _counts(st), "phase2": _counts(a[prefix + "status"]),
                    "by_start": {str(e): _counts(st[k]) for k, e in enumerate(s["marks"])},
                    "index_positive": main["index_positive"], "index_vs_loss": main["index_vs_loss"],
                    "by_cut": by_cut,
                    "critical_loss_levels": int(len(np.unique(_loss_levels(loss)))),
                    # each loss level (at most 8, the most populated) with its critical points' index range
                    "levels": _levels(loss, res[cfg.resolve_factor]["negative"]),
                    "critical_loss_range": [rnd(loss.min()), rnd(loss.max())] if len(loss) else None,
                    "index_same_at_1e-6": [int((neg6 == neg_end).sum()), int(at6.sum())],
                    "gradient_flat_ratio_median": rnd(np.median(a[prefix + "find_flat_ratio"][st == AT_GRADIENT_FLAT]))
                    if (st == AT_GRADIENT_FLAT).any() else None,
                    # how many end points the rule calls gradient-flat at other thresholds on ||H g|| / (||H|| ||g||)
                    # (stall read from the trace alone: a run that stopped repeats its last ||g||)
                    "gradient_flat_at_ratio": {f"{t:g}": int((classify(
                        a[prefix + "find_grad_norm"], a[prefix + "find_flat_ratio"], a[prefix + "find_trace"],
                        np.zeros(st.shape, bool), tol=cfg.find_tol, flat_ratio_max=t) == AT_GRADIENT_FLAT).sum())
                        for t in FLAT_RATIOS_SHOWN},
                    # gradient-flat end points given continue_iters more iterations: what became of them
                    "continued": {"n": int(len(a[prefix + "continued_status"])), "iters": cfg.continue_iters,
                                  **_counts(a[prefix + "continued_status"]),
                                  "grad_norm_drop_median": rnd(np.median(a[prefix + "continued_grad_norm_before"]
                                                                         / a[prefix + "continued_grad_norm"]))
                                  if len(a[prefix + "continued_status"]) else None},
                    "not_critical_grad_norm_median": rnd(np.median(a[prefix + "find_grad_norm"][~crit]))
                    if (~crit).any() else None,
                    # the conclusions every cut factor agrees on
                    "survives_all_cuts": {"saddles_found": all(v["index_positive"] > 0 for v in by_cut.values()),
                                          "index_loss_sign": signs[0] if len(set(signs)) == 1 else "differs"}}
    out["oracle"] = _h_oracle(a, cfg)
    return out


def _h_oracle(a, cfg) -> dict:
    """Per method on the linear autoencoder: end points at ||g|| <= find_tol, how many sit on an
    analytic critical value (to 1e-6) with the analytic index, how many of those are saddles, and
    how many distinct critical values were found."""
    values, index = a["oracle_values"], a["oracle_index"]
    out = {"starts": int(len(a["oracle_start_near"])), "critical_values": len(values),
           "saddle_values": int((index > 0).sum())}
    for m in ("min_grad_norm_sq", "descent_on_L", "find_critical"):
        loss, gn = a[f"oracle_{m}_loss"], a[f"oracle_{m}_grad_norm"]
        crit = a[f"oracle_{m}_status"] == AT_CRITICAL
        k = np.abs(loss[:, None] - values[None]).argmin(1)
        on = crit & (np.abs(loss - values[k]) <= 1e-6)
        neg = resolved_spectrum(a[f"oracle_{m}_eigenvalues"], gn, cfg.resolve_factor)["negative"]
        out[m] = {**_counts(a[f"oracle_{m}_status"]), "on_analytic_value": int(on.sum()),
                  "analytic_index": int((on & (neg == index[k])).sum()),
                  "saddles": int((on & (index[k] > 0)).sum()), "values_found": int(len(set(k[on].tolist()))),
                  "saddle_values_found": int(len(set(k[on & (index[k] > 0)].tolist())))}
    return out


def h_surface(r, cfg) -> dict:
    return {"centre_loss": rnd(r.summary["centre_loss"]), "random_plane_max": rnd(r.arrays["random_loss"].max()),
            "pca_explained": [rnd(100 * e) for e in r.arrays["explained"]], "grid": cfg.grid}


def c_trajectory(r, cfg) -> dict[str, Check]:

    out = {"final_test_acc": Check("1-2a/test_acc", "lin", pct(r.arrays["test_acc"][-1]), one_sample(None, TEST))}
    for key, layer in (("whole_model", None), ("small_layer", SMALL_LAYER)):
        ev = trajectory_pca(r, cfg, layer)["explained"]
        for k in range(2):
            out[f"explained_{key}[PC{k + 1}]"] = Check("1-2a/explained", "lin", pct(ev[k]))
    return out


def c_grad_norm(r, cfg) -> dict[str, Check]:

    a = r.arrays
    out = {}
    for task in ("function", "mnist"):
        for what in ("grad_norm", "loss"):
            out[f"{task}/{what}_last10"] = Check(f"1-2b/{task}_{what}_last10", "log",
                                                 vals(last_tenth_median(a[f"{task}_{what}"])))
    out["mnist/full_batch_grad_norm_end"] = Check("1-2b/full_grad_norm", "log", vals(a["mnist_full_grad_norm"][-1]))
    return out


def c_critical(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out = {"phase2_reached": Check("1-2c/reached", "lin", pct(a["reached"].astype(bool))),
           "phase2_loss": Check("1-2c/loss", "log", vals(a["loss"]))}
    for net, prefix in (("wide", ""), ("small", "small_")):
        st = a[prefix + "find_status"]
        out[f"{net}/critical"] = Check("1-2c/reached", "lin", pct(st == AT_CRITICAL))
        out[f"{net}/gradient_flat"] = Check("1-2c/reached", "lin", pct(st == AT_GRADIENT_FLAT))
        out[f"{net}/critical_loss"] = Check("1-2c/loss", "log", vals(a[prefix + "find_loss"][st == AT_CRITICAL]))
    return out


def c_surface(r, cfg) -> dict[str, Check]:
    out = {"centre_loss": Check("1-2d/loss", "log", [float(r.summary["centre_loss"])]),
           "random_plane_max": Check("1-2d/loss", "log", [float(r.arrays["random_loss"].max())])}
    for k in range(2):
        out[f"pca_explained[PC{k + 1}]"] = Check("1-2d/explained", "lin", pct(r.arrays["explained"][k]))
    return out


def block_trajectory(t: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return (f"Explained variance of the joint PCA: whole model {t['explained_whole_model'][0]:.1f}% + "
                 f"{t['explained_whole_model'][1]:.1f}%, hidden-to-hidden layer {t['explained_small_layer'][0]:.1f}% + "
                 f"{t['explained_small_layer'][1]:.1f}%; final test accuracy "
                 f"{fmt_interval(t['final_test_acc'], n=False)}% (mean, t-interval of the logits) over {t['runs']} runs.")


def block_grad_norm(g: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return md_table(["task", "iterations", "grad norm, first 10%", "grad norm, last 10%", "drop (first / last)",
                        "loss, first 10%", "loss, last 10%"], [
        [k + (" (minibatch)" if k == "mnist" else " (full batch)"), v["iterations"],
         *[_fmt_pos(v[m]) for m in ("grad_norm_first10", "grad_norm_last10", "grad_norm_drop", "loss_first10",
                                   "loss_last10")]]
        for k, v in g.items() if k != "seeds"]) + \
        f"\n\nEach run's median over its first and last 10% of iterations; mean and 95% interval over " \
        f"{plural(g['seeds'], 'seed')} (one run per seed; a t-interval of the logarithms, above 0). The MNIST " \
        f"runs' full-batch gradient norm (whole training set) goes from " \
        f"{_fmt_pos(g['mnist']['full_batch_grad_norm_start_end'][0])} at the start to " \
        f"{_fmt_pos(g['mnist']['full_batch_grad_norm_start_end'][1])} after the last epoch."


def _fmt_counts(c: dict) -> str:
    return f"{c['critical']} critical, {c['gradient_flat']} gradient-flat, {c['not_converged']} not converged"


def block_critical(c: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    o, p2 = c["oracle"], c["phase2"]
    names = {"min_grad_norm_sq": f"min ||grad L||^2 (Levenberg-Marquardt, to {c['find_tol']:g})", "descent_on_L": "descent on L (trust region)",
             "find_critical": "find_critical"}
    txt = (f"**The method decides what is found.** On the linear autoencoder with known critical points "
           f"({o['critical_values']} critical values, {o['saddle_values']} of them saddles), from the same {o['starts']} "
           "starts (near every critical set and at random), end points at ||grad L|| <= "
           f"{c['find_tol']:g}:\n\n" + md_table(
               ["method", "critical", "gradient-flat", "not converged", "on an analytic value with its analytic index",
                "saddles among them", "values found (saddle values)"],
               [[names[m], v["critical"], v["gradient_flat"], v["not_converged"], v["analytic_index"], v["saddles"],
                 f"{v['values_found']} of {o['critical_values']} ({v['saddle_values_found']} of {o['saddle_values']})"]
                for m, v in ((m, o[m]) for m in names)]))
    txt += ("\n\n**The nets.** End points of each method, classified (critical: ||grad L|| <= "
            f"{c['find_tol']:g}; gradient-flat: ||grad L|| stalled with ||H g|| <= {c['flat_ratio']:g} ||H|| ||g||; "
            "otherwise not converged), and among the critical ones the index (eigenvalues below "
            f"-{c['resolve_factor']:g} ||grad L||) against the loss:\n\n")
    rows = []
    for net in ("wide", "small"):
        v = c[net]
        rows.append([f"{net} ({v['params']} parameters)", "phase 2: min ||grad L||^2 from phase 1's end",
                     _fmt_counts(v["phase2"]), "", "", ""])
        lo = v["critical_loss_range"]
        rows.append(["", f"find_critical from {len(c['start_epochs'])} points along training",
                     _fmt_counts(v["find_critical"]), v["index_positive"],
                     f"{v['critical_loss_levels']}" + (f" ({lo[0]:.3g} to {lo[1]:.3g})" if lo else ""),
                     fmt_sp(v["index_vs_loss"])])
    txt += md_table(["net", "method", "end points", "critical with index > 0", "loss levels (range)",
                     "Spearman(index, loss) [bootstrap 95%]"], rows)
    txt += (f"\n\nPhase 2 (the assignment's method, {c['runs']} runs of the wide net): {p2['reached']} reached "
            f"||grad L|| < {c['grad_tol']:g}; its end points have a median ||grad L|| of {p2['grad_norm_median']:.1e} and "
            f"a median ||H g|| / (||H|| ||g||) of {p2['flat_ratio_median']:.1e}")
    if p2["minimal_ratio_raw"]:
        txt += (f"; raw minimal ratio at those that reached it {fmt_interval(p2['minimal_ratio_raw'], 3, n=False)} "
                "(mean, t-interval of the logits), Spearman with the "
                f"loss {fmt_sp(p2['spearman_ratio_loss_reached'])}")
    txt += (". How many find_critical end points the rule calls gradient-flat at other thresholds on "
            "||H g|| / (||H|| ||g||): " + "; ".join(
                f"**{net}** " + ", ".join(f"{t}: {n}" for t, n in c[net]["gradient_flat_at_ratio"].items())
                for net in ("wide", "small")))
    for net in ("wide", "small"):
        k = c[net]["continued"]
        if k["n"]:
            txt += (f". {net.capitalize()} net: of {plural(k['n'], 'gradient-flat end point')} (one per block, from "
                    f"the latest start that had one) given {k['iters']} more iterations, {k['critical']} became critical, "
                    f"{k['gradient_flat']} stayed gradient-flat and {k['not_converged']} were still moving; "
                    f"their ||grad L|| fell by a median factor of {k['grad_norm_drop_median']:.3g}")
    txt += ".\n\nfind_critical end points by start (epochs of phase 1: critical / gradient-flat / not converged): " + \
        "; ".join(f"**{net}** " + ", ".join(f"{e}: {v['critical']}/{v['gradient_flat']}/{v['not_converged']}"
                                            for e, v in sorted(c[net]["by_start"].items(), key=lambda kv: int(kv[0])))
        for net in ("wide", "small")) + "."
    txt += ("\n\n**Resolution.** An eigenvalue is counted as negative or positive only when |lambda| > c ||grad L||. "
            "Near a non-degenerate critical point g ~ H d, so the distance d along a direction of curvature lambda is "
            "about ||g|| / |lambda| < 1 / c, and lambda itself moves by at most (third derivative) x d: the larger c, "
            "the safer the sign. The index at each cut factor:\n\n")
    rows = []
    for net in ("wide", "small"):
        for k, v in c[net]["by_cut"].items():
            rows.append([net, k, v["index_positive"], "" if v["index_median"] is None else f"{v['index_median']:g}",
                         "" if v["near_zero_median"] is None else f"{v['near_zero_median']:g}",
                         fmt_interval(v["resolved_ratio"], 3) if v["resolved_ratio"] else "",
                         fmt_sp(v["index_vs_loss"])])
    txt += md_table(["net", "c", "critical with index > 0", "median index", "median near-zero",
                     "minimal ratio over resolved eigenvalues", "Spearman(index, loss)"], rows)
    for net in ("wide", "small"):
        v = c[net]
        same, n = v["index_same_at_1e-6"]
        sv = v["survives_all_cuts"]
        sign = {1: "positive: higher loss, higher index", -1: "negative", 0: "not distinguishable from 0",
                None: "undefined", "differs": "not the same at every cut"}[sv["index_loss_sign"]]
        txt += (f"\n\n**{net}**: at every cut factor, saddles (index > 0) {'are' if sv['saddles_found'] else 'are not'} "
                f"found among the critical points; the index-loss rank correlation is {sign} (losses equal to a "
                f"relative 1e-6 are one level: {v['critical_loss_levels']} here; by level, loss: points, index "
                "min / median / max: " + "; ".join(f"{d['loss']:.3g}: {d['n']}, {d['index'][0]} / {d['index'][1]:g} / "
                                                     f"{d['index'][2]}" for d in v["levels"]) + "). Counting the eigenvalues beyond "
                f"the cut at ||grad L|| <= 1e-6 (c = {c['resolve_factor']:g}), the number of negative ones is the same "
                f"there and at the end for {same} of the {n} critical points whose spectrum was recorded on the way "
                f"(between 1e-6 and {c['find_tol']:g}).")
    return txt


def block_surface(s: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return (f"Loss at the trained weights {s['centre_loss']:.4f}; highest loss on the random plane "
                 f"{s['random_plane_max']:.3g}; the PCA plane holds {s['pca_explained'][0]:.1f}% + "
                 f"{s['pca_explained'][1]:.1f}% of the trajectory's variance; {s['grid']} x {s['grid']} points per plane.")


def _fmt_pos(d: dict) -> str:
    """A positive quantity's mean and interval (pos_ci) to 3 significant digits."""
    return fmt_interval(d, 3, spec="g", n=False)


def summary_trajectory(h: dict) -> str:
    w = h["explained_whole_model"]
    return (f"final test accuracy {fmt_interval(h['final_test_acc'], n=False)}% over {h['runs']} runs; one PCA of "
            f"all runs' snapshots holds {w[0] + w[1]:.1f}% of their variance in 2 components")


def summary_grad_norm(h: dict) -> str:
    f, m = h["function"], h["mnist"]
    return (f"full batch: the gradient norm falls {_fmt_pos(f['grad_norm_drop'])}x, then spikes; MNIST: the true "
            f"(full-batch) gradient norm goes {_fmt_pos(m['full_batch_grad_norm_start_end'][0])} -> "
            f"{_fmt_pos(m['full_batch_grad_norm_start_end'][1])}, far from 0")


def summary_critical(h: dict) -> str:
    w, sm = h["wide"], h["small"]
    return (f"find_critical ends at a critical point in {w['find_critical']['critical']} of "
            f"{sum(w['find_critical'].values())} starts on the {w['params']}-parameter net "
            f"({w['find_critical']['gradient_flat']} gradient-flat) and {sm['find_critical']['critical']} of "
            f"{sum(sm['find_critical'].values())} on the {sm['params']}-parameter one; Spearman(index, loss) "
            f"{fmt_sp(w['index_vs_loss'])} and {fmt_sp(sm['index_vs_loss'])}; the assignment's phase 2 reaches "
            f"{h['phase2']['reached']}/{h['runs']} below {h['grad_tol']:g} and {h['phase2']['classified']['critical']} "
            f"critical points")


def summary_surface(h: dict) -> str:
    return (f"loss {h['centre_loss']:.3g} at the trained weights, up to {h['random_plane_max']:.3g} on a random "
            f"filter-normalised plane; the trajectory's PCA plane holds {h['pca_explained'][0]:.0f}% + "
            f"{h['pca_explained'][1]:.0f}% of its variance")


TRAJECTORY = Experiment(
    "1-2a", "trajectories", "1-2a_optimization_trajectory.ipynb", TrajectoryConfig, TRAJECTORY_PROFILES,
    key="trajectory", compute=_compute_trajectory,
    headline=h_trajectory, block=block_trajectory, checks=c_trajectory, summary=summary_trajectory,
    figures=("1-2a_trajectory_pca",))

GRAD_NORM = Experiment(
    "1-2b", "gradient norm", "1-2b_gradient_norm.ipynb", GradNormConfig, GRAD_NORM_PROFILES,
    key="grad_norm", compute=_compute_grad_norm,
    headline=h_grad_norm, block=block_grad_norm, checks=c_grad_norm, summary=summary_grad_norm,
    figures=("1-2b_gradient_norm",),
    reading="""Full batch: the gradient norm falls by the factor in the table, then Adam's periodic spikes appear (each with
a small bump in the loss). Minibatch MNIST: the minibatch gradient norm rises early and then stays near 1,
set by sampling noise; the full-batch gradient norm (green dots, the true gradient over the whole training
set, at the start and after every epoch) is several times smaller and is not heading for 0 within these
epochs: the run is far from a critical point, whatever the minibatch norm suggests.""")

CRITICAL = Experiment(
    "1-2c", "critical points", "1-2c_gradient_near_zero.ipynb", CriticalConfig, CRITICAL_PROFILES,
    key="", compute=None, plan=critical_units, assemble=assemble_critical,
    headline=h_critical, block=block_critical, checks=c_critical, host=True, summary=summary_critical,
    figures=("1-2c_minimal_ratio", "1-2c_index_vs_loss", "1-2c_spectrum"),
    reading="""On the linear autoencoder, whose critical points are known (first table), the descent refinement ends
at the global minimum from every start, even those next to a saddle, while find_critical ends on the analytic
critical values with their analytic indices, saddles included. Levenberg-Marquardt on ||grad L||^2, taken to the
same 1e-8 tolerance, finds those saddles as well: what keeps the assignment's method from critical points on the
nets is where it stops, not its merit. At its own tolerance its end points are gradient-flat or still moving,
none critical (second table). On the tanh nets, find_critical started near initialisation mostly reaches
saddles at the loss of a constant prediction; started later in training it mostly stalls in gradient-flat
regions, as Frye et al. (2021) report for Newton-MR on deep networks; gradient-flat end points given 800 more
iterations almost all stay so (block), so the class is not an artefact of the iteration cap. The critical
points found therefore sit at
few loss levels (the per-level sentences give them): on the wide net at one, where an index-loss correlation is
undefined; on the small net at a few, where the sign of the correlation is the one Dauphin et al. (2014) report,
but it is carried by a handful of minima at the lowest level against many saddles at the constant-prediction
level. That is agreement in sign on thin evidence, not a test of their curve; the many gradient-flat end points
say what the usual near-zero-gradient scatter plots are made of.""",
    published=("Dauphin et al. 2014; Frye et al. 2021",
               "at critical points, training error falls as the fraction of positive eigenvalues (minimal ratio) "
               "rises (Dauphin); Newton-type critical-point finders on neural-network losses often end in "
               "gradient-flat regions, not at critical points (Frye)"))

SURFACE = Experiment(
    "1-2d", "error surface", "1-2d_error_surface.ipynb", SurfaceConfig, SURFACE_PROFILES,
    key="surface", compute=_compute_surface, after=("1-2a",),
    headline=h_surface, block=block_surface, checks=c_surface, summary=summary_surface,
    figures=("1-2d_error_surface_contour", "1-2d_error_surface_3d"),
    published=("Li et al. 2018", "filter-normalised random planes show the loss basin around a trained net"))
