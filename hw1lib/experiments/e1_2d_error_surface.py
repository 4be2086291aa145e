"""1-2d: loss surface around a trained 1-2a model: random filter-normalised
directions and the PCA plane of its trajectory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..landscape import evaluate_points, filter_normalized_direction, pca_2d, plane_grid
from ..data import load_mnist
from ..ensemble import Ensemble
from ..models import mnist_mlp
from ..headline import Check, pct, rnd
from .common import Experiment, Unit
from .e1_2a_optimization_trajectory import TRAJECTORY, TrajectoryConfig, _compute_trajectory


@dataclass(frozen=True)
class SurfaceConfig:
    trajectory: TrajectoryConfig = TrajectoryConfig()   # 1-2a's config (SURFACE reads it): the runs to look around
    run: int = 0                         # which of them
    grid: int = 31                       # points per axis
    span: float = 1.0                    # random plane: coefficients in [-span, span]
    margin: float = 0.25                 # PCA plane: extra room around the trajectory
    eval_subset: int = 10_000            # first n training images the loss is measured on
    direction_seed: int = 0
    device: str = "auto"


SURFACE_PROFILES = {
    "smoke": dict(grid=5, eval_subset=256),
    "quick": dict(grid=15, eval_subset=2_000),
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


def h_surface(r, cfg) -> dict:
    return {"centre_loss": rnd(r.summary["centre_loss"]), "random_plane_max": rnd(r.arrays["random_loss"].max()),
            "pca_explained": [rnd(100 * e) for e in r.arrays["explained"]], "grid": cfg.grid}


def c_surface(r, cfg) -> dict[str, Check]:
    out = {"centre_loss": Check("1-2d/loss", "log", [float(r.summary["centre_loss"])]),
           "random_plane_max": Check("1-2d/loss", "log", [float(r.arrays["random_loss"].max())])}
    for k in range(2):
        out[f"pca_explained[PC{k + 1}]"] = Check("1-2d/explained", "lin", pct(r.arrays["explained"][k]))
    return out


def block_surface(s: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return (f"Loss at the trained weights {s['centre_loss']:.4f}; highest loss on the random plane "
                 f"{s['random_plane_max']:.3g}; the PCA plane holds {s['pca_explained'][0]:.1f}% + "
                 f"{s['pca_explained'][1]:.1f}% of the trajectory's variance; {s['grid']} x {s['grid']} points per plane.")


def summary_surface(h: dict) -> str:
    return (f"loss {h['centre_loss']:.3g} at the trained weights, up to {h['random_plane_max']:.3g} on a random "
            f"filter-normalised plane; the trajectory's PCA plane holds {h['pca_explained'][0]:.0f}% + "
            f"{h['pca_explained'][1]:.0f}% of its variance")


SURFACE = Experiment(
    "1-2d", "error surface", "1-2d_error_surface.ipynb", SurfaceConfig, SURFACE_PROFILES,
    key="surface", compute=_compute_surface, reads=(("trajectory", TRAJECTORY),),
    headline=h_surface, block=block_surface, checks=c_surface, summary=summary_surface,
    published=("Li et al. 2018", "filter-normalised random planes show the loss basin around a trained net"))
