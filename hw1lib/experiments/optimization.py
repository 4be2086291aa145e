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
from ..headline import TEST, Check, ci, correlation, fmt_g, fmt_m, fmt_sp, md_table, one_sample, pct, plural, rnd, vals
from ..stats import partial_spearman_ci, spearman_ci
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
    starts = range(cfg.first_run, cfg.first_run + cfg.runs, cfg.runs_per_unit)
    end = cfg.first_run + cfg.runs
    return [Unit("critical_block", dataclasses.replace(cfg, first_run=s, runs=min(cfg.runs_per_unit, end - s)),
                 _compute_critical_block) for s in starts]


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last row up to `rows` (a block whose runs all stopped early
    keeps their final gradient norms: they no longer move)."""
    return np.concatenate([a, np.repeat(a[-1:], rows - len(a), 0)]) if len(a) < rows else a


def assemble_critical(cfg: CriticalConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays (one entry per run): phase1_loss [epochs + 1, R]; loss [R] (final
    loss of the original objective), grad_norm [R] (true, full-batch), reached
    [R], minimal_ratio [R] (fraction of Hessian eigenvalues > 0), eigenvalues
    [R, P]; trace [iters + 1, R] (||grad L|| during phase 2). Phase 3 (trust-region
    Newton on L from the phase-2 points): refined_loss, refined_grad_norm,
    refined_reached (||grad L|| <= refine_tol), refined_eigenvalues [R, P],
    refine_trace / refine_loss_trace [iters + 1, R], and at each of
    REFINE_CHECKPOINTS the spectrum where a run first got there, spectrum_at
    [T, R, P] and grad_norm_at [T, R] (NaN where it never did)."""
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

    out = {"runs": cfg.runs, "params": r.summary["params"],
           "final_test_acc": ci(100 * r.arrays["test_acc"][-1])}
    for key, layer in (("whole_model", None), ("small_layer", SMALL_LAYER)):
        ev = trajectory_pca(r, cfg, layer)["explained"]
        out[f"explained_{key}"] = [rnd(100 * ev[0]), rnd(100 * ev[1])]
    return out


def h_grad_norm(r, cfg) -> dict:

    out = {"seeds": len(cfg.seeds)}
    for task in ("function", "mnist"):
        gn, loss = r.arrays[f"{task}_grad_norm"], r.arrays[f"{task}_loss"]          # [iterations, seeds]
        first, last = first_tenth_median(gn), last_tenth_median(gn)
        out[task] = {"iterations": int(len(gn)), "grad_norm_first10": ci(first), "grad_norm_last10": ci(last),
                     "loss_first10": ci(first_tenth_median(loss)), "loss_last10": ci(last_tenth_median(loss)),
                     "grad_norm_drop": ci(first / last)}
    full = r.arrays["mnist_full_grad_norm"]                                         # [epochs + 1, seeds]
    out["mnist"]["full_batch_grad_norm_start_end"] = [ci(full[0]), ci(full[-1])]
    return out


CUT_FACTORS = (1, 10, 100, 1000)   # 1-2c: the cut factors the counts are shown for (1000: resolve_factor's default)


def h_critical(r, cfg) -> dict:
    from ..critical import resolved_spectrum

    a = r.arrays
    reached = a["reached"].astype(bool)
    ev = a["eigenvalues"]
    out = {"runs": int(len(reached)), "reached": int(reached.sum()), "grad_tol": cfg.grad_tol,
           "params": r.summary["params"]}
    if reached.any():    # a short profile may leave phase 2 short of its tolerance everywhere
        out |= {"max_grad_norm_reached": rnd(a["grad_norm"][reached].max()),
                "minimal_ratio_raw": ci(a["minimal_ratio"][reached]),
                "minimal_ratio_range": [rnd(a["minimal_ratio"][reached].min()), rnd(a["minimal_ratio"][reached].max())],
                "flat_eigenvalues_median": rnd(np.median((np.abs(ev[reached]) < 1e-8).sum(1))),
                "negative_eigenvalues_median": rnd(np.median((ev[reached] < -1e-8).sum(1))),
                "spearman_ratio_loss_reached": correlation(spearman_ci, a["minimal_ratio"][reached], a["loss"][reached])}
    # Phase 3: trust-region Newton on L from the phase-2 points.
    ok = a["refined_reached"].astype(bool)
    gn, loss = a["refined_grad_norm"], a["refined_loss"]
    res = resolved_spectrum(a["refined_eigenvalues"], gn, cfg.resolve_factor)
    out |= {"refine_tol": cfg.refine_tol, "refine_iters": cfg.refine_iters, "resolve_factor": cfg.resolve_factor,
            "refined_reached": int(ok.sum()),
            "refined_grad_norm_median_not_reached": rnd(np.median(gn[~ok])) if (~ok).any() else None,
            # what stopped the others: the iteration of each one's last accepted step (the cap, or a stall)
            "refined_not_reached_last_step": [_last_change(a["refine_trace"][:, i]) for i in np.flatnonzero(~ok)],
            "refined_loss_over_phase2_loss_median": rnd(np.median(loss / a["loss"])),
            "refined_loss_median": rnd(np.median(loss))}
    # Where phase 3 ended (all runs): the eigenvalues the residual gradient cannot flip.
    out["end_counts_median"] = {k: rnd(np.median(res[k])) for k in ("negative", "near_zero", "positive")}
    # ... and how those counts depend on the cut factor c in |lambda| > c ||grad L||
    out["end_counts_by_cut"] = {
        f"{c:g}": {k: rnd(np.median(v[k])) for k in ("negative", "near_zero", "positive")}
        for c, v in ((c, resolved_spectrum(a["refined_eigenvalues"], gn, c)) for c in CUT_FACTORS)}
    # The spectrum recorded where each run first passed each tolerance ([T, R, P]; NaN where it never did),
    # counted once: per tolerance over the runs that got there, and run by run for the stability check.
    at = resolved_spectrum(a["spectrum_at"], a["grad_norm_at"], cfg.resolve_factor)
    out["checkpoints"] = {}
    for k, t in enumerate(REFINE_CHECKPOINTS):
        got = ~np.isnan(a["grad_norm_at"][k])
        out["checkpoints"][f"{t:g}"] = {
            "runs": int(got.sum()),
            "resolved_ratio": rnd(np.nanmean(at["resolved_ratio"][k][got])) if got.any() else None,
            "negative_median": rnd(np.median(at["negative"][k][got])) if got.any() else None}
    if ok.any():
        tr = a["refine_trace"][:, ok]
        its = (tr <= cfg.refine_tol).argmax(0)                     # first iteration at the tolerance
        out["refine_iterations_reached"] = {"median": rnd(np.median(its)),
                                            "p10_p90": [rnd(v) for v in np.percentile(its, [10, 90])]}
        out |= {"max_grad_norm_refined": rnd(gn[ok].max()),
                "minimal_ratio_resolved_mean": ci(res["resolved_ratio"][ok]),
                "minimal_ratio_refined_raw": ci(res["raw_ratio"][ok])}
        # Stability: how far a run's resolved ratio moved between the 1e-6 and the 1e-8 checkpoints.
        ratio, last = at["resolved_ratio"], ~np.isnan(a["grad_norm_at"][-1])
        out["resolved_ratio_max_change_1e-6_to_1e-8"] = rnd(np.max(np.abs(ratio[-1][last] - ratio[-3][last])))
    varies = ok.sum() >= 4 and np.ptp(res["resolved_ratio"][ok]) > 0
    if ok.sum() >= 4 and not varies:
        # a correlation needs the ratio to vary: say what it is instead
        out["resolved_ratio_all_equal"] = rnd(res["resolved_ratio"][ok][0])
    if varies:
        out["spearman_resolved_ratio_loss"] = correlation(spearman_ci, res["resolved_ratio"][ok], loss[ok])
        out["partial_spearman_resolved_ratio_loss_given_grad_norm"] = correlation(
            partial_spearman_ci, res["resolved_ratio"][ok], loss[ok], np.log(gn[ok]))
    return out


def _last_change(trace) -> int:
    """The last iteration at which a run's ||grad L|| trace [iters + 1] changed (0: never)."""
    moved = np.flatnonzero(np.diff(trace))
    return int(moved[-1] + 1) if len(moved) else 0


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
    from ..critical import resolved_spectrum

    a = r.arrays
    reached, ok = a["reached"].astype(bool), a["refined_reached"].astype(bool)
    out = {"phase2_reached": Check("1-2c/reached", "lin", pct(reached)),
           "phase2_loss": Check("1-2c/loss", "log", vals(a["loss"])),
           "phase3_reached": Check("1-2c/reached", "lin", pct(ok)),
           "phase3_loss": Check("1-2c/loss", "log", vals(a["refined_loss"])),
           "phase3_grad_norm": Check("1-2c/grad_norm", "log", vals(a["refined_grad_norm"]))}
    if reached.any():
        out["phase2_minimal_ratio"] = Check("1-2c/ratio", "lin", pct(a["minimal_ratio"][reached]))
    if ok.any():
        res = resolved_spectrum(a["refined_eigenvalues"], a["refined_grad_norm"], cfg.resolve_factor)
        out["phase3_resolved_ratio"] = Check("1-2c/ratio", "lin", pct(res["resolved_ratio"][ok]))
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
                 f"{t['explained_small_layer'][1]:.1f}%; final test accuracy {fmt_m(t['final_test_acc'])}% over "
                 f"{t['runs']} runs.")


def block_grad_norm(g: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return md_table(["task", "iterations", "grad norm, first 10%", "grad norm, last 10%", "drop (first / last)",
                        "loss, first 10%", "loss, last 10%"], [
        [k + (" (minibatch)" if k == "mnist" else " (full batch)"), v["iterations"],
         *[fmt_g(v[m]) for m in ("grad_norm_first10", "grad_norm_last10", "grad_norm_drop", "loss_first10",
                              "loss_last10")]]
        for k, v in g.items() if k != "seeds"]) + \
        f"\n\nEach run's median over its first and last 10% of iterations; mean ± 95% t-interval over " \
        f"{plural(g['seeds'], 'seed')} (one run per seed). The MNIST runs' full-batch gradient norm (whole " \
        f"training set) goes from {fmt_g(g['mnist']['full_batch_grad_norm_start_end'][0])} at the start to " \
        f"{fmt_g(g['mnist']['full_batch_grad_norm_start_end'][1])} after the last epoch."


def block_critical(c: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    txt = (f"**Phase 2** (minimise ||grad L||^2): {c['reached']} of {c['runs']} runs reached ||grad L|| < "
           f"{c['grad_tol']:g}")
    if c["reached"]:
        txt += (f" (largest among them {c['max_grad_norm_reached']:.2e}). Raw minimal ratio there: "
                f"{fmt_m(c['minimal_ratio_raw'])} (range {c['minimal_ratio_range'][0]:.2f} to {c['minimal_ratio_range'][1]:.2f}); "
                f"per run, a median of {c['negative_eigenvalues_median']:.0f} eigenvalues below -1e-8 and "
                f"{c['flat_eigenvalues_median']:.0f} with |lambda| < 1e-8, of {c['params']}; Spearman of raw ratio and "
                f"loss: {fmt_sp(c['spearman_ratio_loss_reached'])}")
    txt += (".\n\n"
           f"**Phase 3** (trust-region Newton on L, at most {c['refine_iters']} iterations): "
           f"{c['refined_reached']} of {c['runs']} runs reached ||grad L|| <= {c['refine_tol']:g}")
    if c["refined_grad_norm_median_not_reached"] is not None:
        last = c["refined_not_reached_last_step"]
        # still moving: an accepted step in the last tenth of the iterations
        capped = sum(i >= 0.9 * c["refine_iters"] for i in last)
        stalled = sorted(i for i in last if i < 0.9 * c["refine_iters"])
        txt += ((f"; the other {len(last)} stopped at a median ||grad L|| of " if len(last) > 1 else
                 "; the other one stopped at ||grad L|| = ") + f"{c['refined_grad_norm_median_not_reached']:.1e} ("
                + ", ".join(([f"{capped} still moving at the cap, with an accepted step in the last tenth of the iterations"] if capped else [])
                            + ([f"{len(stalled)} with no accepted step after iteration "
                                + (", ".join(str(i) for i in stalled) if len(stalled) <= 4
                                   else f"{stalled[0]} to {stalled[-1]}")] if stalled else [])) + ")")
    drop = c["refined_loss_over_phase2_loss_median"]
    txt += (f". Meanwhile the loss fell to a median {drop:.2g} times its phase-2 value (median "
            f"{c['refined_loss_median']:.2g})" + (": the phase-2 points were not near critical points of L."
                                                  if drop <= 0.1 else "."))
    ec = c["end_counts_median"]
    txt += (f" Where phase 3 ended, counting an eigenvalue only where |lambda| > {c['resolve_factor']:g} ||grad L||, "
            f"a run has a median of {ec['negative']:.0f} negative, {ec['near_zero']:.0f} near-zero and "
            f"{ec['positive']:.0f} positive eigenvalues" + (
                " (negative / near-zero / positive with other factors c in |lambda| > c ||grad L||: " + "; ".join(
                    f"c = {k}: {v['negative']:.0f} / {v['near_zero']:.0f} / {v['positive']:.0f}"
                    for k, v in c["end_counts_by_cut"].items()) + ")" if "end_counts_by_cut" in c else "") +
            ". Resolved ratio at each tolerance phase 3 passed (runs that "
            "got there): " + ", ".join(f"||grad L|| <= {t}: {v['resolved_ratio']:.3f} ({v['runs']} runs)"
                                       if v["runs"] else f"{t}: no run" for t, v in c["checkpoints"].items()) + ".")
    if c["refined_reached"]:
        ri = c["refine_iterations_reached"]
        txt += (f" The runs that reached it needed a median of {ri['median']:.0f} iterations (10th to 90th "
                f"percentile {ri['p10_p90'][0]:.0f} to {ri['p10_p90'][1]:.0f}).")
        txt += (f" At the {c['refined_reached']} resolved points (largest ||grad L|| {c['max_grad_norm_refined']:.1e}): "
                f"minimal ratio over the resolved eigenvalues {fmt_m(c['minimal_ratio_resolved_mean'])} (raw "
                f"{fmt_m(c['minimal_ratio_refined_raw'])}); largest change of one run's resolved ratio from 1e-6 to "
                f"1e-8: {c['resolved_ratio_max_change_1e-6_to_1e-8']:.3g}.")
    if "resolved_ratio_all_equal" in c:
        txt += (f" Every resolved point has the same resolved ratio, {c['resolved_ratio_all_equal']:.3f}, so there is "
                "no variation to correlate with the loss" + (
                    ": no resolved eigenvalue is negative, so as far as the Hessian can tell these are local "
                    "minima. Phase 3 accepts only steps that lower L, so it is drawn to minima, not saddles; "
                    "saddles would need a method attracted to every critical point (Newton on grad L = 0)."
                    if c["resolved_ratio_all_equal"] == 1 else "."))
    if "spearman_resolved_ratio_loss" in c:
        txt += (f" Spearman of resolved ratio and loss (resolved runs, bootstrap 95% interval): "
                f"{fmt_sp(c['spearman_resolved_ratio_loss'])}; controlling for log ||grad L||: "
                f"{fmt_sp(c['partial_spearman_resolved_ratio_loss_given_grad_norm'])}.")
    return txt


def block_surface(s: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return (f"Loss at the trained weights {s['centre_loss']:.4f}; highest loss on the random plane "
                 f"{s['random_plane_max']:.3g}; the PCA plane holds {s['pca_explained'][0]:.1f}% + "
                 f"{s['pca_explained'][1]:.1f}% of the trajectory's variance; {s['grid']} x {s['grid']} points per plane.")


def summary_trajectory(h: dict) -> str:
    w = h["explained_whole_model"]
    return (f"final test accuracy {fmt_m(h['final_test_acc'])}% over {h['runs']} runs; one PCA of all runs' "
            f"snapshots holds {w[0] + w[1]:.1f}% of their variance in 2 components")


def summary_grad_norm(h: dict) -> str:
    f, m = h["function"], h["mnist"]
    return (f"full batch: the gradient norm falls {fmt_g(f['grad_norm_drop'])}x, then spikes; MNIST: the true "
            f"(full-batch) gradient norm goes {fmt_g(m['full_batch_grad_norm_start_end'][0])} -> "
            f"{fmt_g(m['full_batch_grad_norm_start_end'][1])}, far from 0")


def summary_critical(h: dict) -> str:
    out = f"phase 2 (min ||grad L||^2): {h['reached']}/{h['runs']} runs below {h['grad_tol']:g}"
    out += f"; phase 3 (Newton on L): {h['refined_reached']}/{h['runs']} at ||grad L|| <= {h['refine_tol']:g}"
    if "resolved_ratio_all_equal" in h:
        out += f", resolved ratio {h['resolved_ratio_all_equal']:.2f} everywhere"
        out += " (minima only: no saddle found)" if h["resolved_ratio_all_equal"] == 1 else ""
    elif "spearman_resolved_ratio_loss" in h:
        out += f", Spearman(resolved ratio, loss) {fmt_sp(h['spearman_resolved_ratio_loss'])}"
    return out


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
    figures=("1-2c_minimal_ratio", "1-2c_spectrum"),
    reading="""The phase-2 points are not critical points of L: phase 3 lowers their loss by orders of magnitude (block).
Phase 3 gets the runs to ||grad L|| <= 1e-8 (the block gives how many, and the iterations it took) after a
long descent along a nearly flat valley of slowly falling loss, and there every eigenvalue large enough to be
resolved is positive: local minima, most of whose eigenvalues are near zero, and whose resolved ratio does not
move as the tolerance tightens. Phase 3 accepts only steps that lower L, so it finds minima, not saddles; the
phase-2 ratio and its correlation with the loss (the sign Dauphin et al. 2014 report) describe where
||grad L||^2 minimisation stops. Their claim is about saddles, which this section does not locate, so it
neither confirms nor contradicts it.""",
    published=("Dauphin et al. 2014", "at critical points, training error falls as the fraction of positive "
                                      "eigenvalues (minimal ratio) rises"))

SURFACE = Experiment(
    "1-2d", "error surface", "1-2d_error_surface.ipynb", SurfaceConfig, SURFACE_PROFILES,
    key="surface", compute=_compute_surface, after=("1-2a",),
    headline=h_surface, block=block_surface, checks=c_surface, summary=summary_surface,
    figures=("1-2d_error_surface_contour", "1-2d_error_surface_3d"),
    published=("Li et al. 2018", "filter-normalised random planes show the loss basin around a trained net"))
