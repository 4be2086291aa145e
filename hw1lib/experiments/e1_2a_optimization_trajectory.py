"""1-2a: 8 runs of one MNIST DNN trained together; weight snapshots for one PCA."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..landscape import pca_2d
from ..data import load_mnist
from ..errors import ConfigError
from ..ensemble import Ensemble
from ..models import count_params, mnist_mlp
from ..train import fit_classifier
from ..headline import Check, TEST, fmt_interval, one_sample, pct, pct_ci, rnd
from .common import Experiment


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


# ================================================================== headline numbers, text, checks

def h_trajectory(r, cfg) -> dict:

    out = {"runs": cfg.runs, "params": r.summary["params"], "final_test_acc": pct_ci(r.arrays["test_acc"][-1], TEST)}
    for key, layer in (("whole_model", None), ("small_layer", SMALL_LAYER)):
        ev = trajectory_pca(r, cfg, layer)["explained"]
        out[f"explained_{key}"] = [rnd(100 * ev[0]), rnd(100 * ev[1])]
    return out


def c_trajectory(r, cfg) -> dict[str, Check]:

    out = {"final_test_acc": Check("1-2a/test_acc", "lin", pct(r.arrays["test_acc"][-1]), one_sample(None, TEST))}
    for key, layer in (("whole_model", None), ("small_layer", SMALL_LAYER)):
        ev = trajectory_pca(r, cfg, layer)["explained"]
        for k in range(2):
            out[f"explained_{key}[PC{k + 1}]"] = Check("1-2a/explained", "lin", pct(ev[k]))
    return out


def block_trajectory(t: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return (f"Explained variance of the joint PCA: whole model {t['explained_whole_model'][0]:.1f}% + "
                 f"{t['explained_whole_model'][1]:.1f}%, hidden-to-hidden layer {t['explained_small_layer'][0]:.1f}% + "
                 f"{t['explained_small_layer'][1]:.1f}%; final test accuracy "
                 f"{fmt_interval(t['final_test_acc'], n=False)}% (mean and its t-interval) over {t['runs']} runs.")


def summary_trajectory(h: dict) -> str:
    w = h["explained_whole_model"]
    return (f"final test accuracy {fmt_interval(h['final_test_acc'], n=False)}% over {h['runs']} runs; one PCA of "
            f"all runs' snapshots holds {w[0] + w[1]:.1f}% of their variance in 2 components")


TRAJECTORY = Experiment(
    "1-2a", "trajectories", "1-2a_optimization_trajectory.ipynb", TrajectoryConfig, TRAJECTORY_PROFILES,
    key="trajectory", compute=_compute_trajectory,
    headline=h_trajectory, block=block_trajectory, checks=c_trajectory, summary=summary_trajectory)
