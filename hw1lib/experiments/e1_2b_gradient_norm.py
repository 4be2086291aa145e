"""1-2b: gradient norm and loss per iteration (a 1-D function and MNIST)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..data import load_mnist
from ..ensemble import Ensemble
from ..functions import target
from ..models import mlp, mlp_widths_for_params, mnist_mlp
from ..train import eval_chunk, fit_classifier, fit_full_batch, member_cross_entropy
from ..headline import Check, fmt_interval, md_table, plural, pos_ci, vals
from .common import Experiment


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


def c_grad_norm(r, cfg) -> dict[str, Check]:

    a = r.arrays
    out = {}
    for task in ("function", "mnist"):
        for what in ("grad_norm", "loss"):
            out[f"{task}/{what}_last10"] = Check(f"1-2b/{task}_{what}_last10", "log",
                                                 vals(last_tenth_median(a[f"{task}_{what}"])))
    out["mnist/full_batch_grad_norm_end"] = Check("1-2b/full_grad_norm", "log", vals(a["mnist_full_grad_norm"][-1]))
    return out


def block_grad_norm(g: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    return md_table(["task", "iterations", "grad norm, first 10%", "grad norm, last 10%", "drop (first / last)",
                        "loss, first 10%", "loss, last 10%"], [
        [k + (" (minibatch)" if k == "mnist" else " (full batch)"), v["iterations"],
         *[_fmt_pos(v[m]) for m in ("grad_norm_first10", "grad_norm_last10", "grad_norm_drop", "loss_first10",
                                   "loss_last10")]]
        for k, v in g.items() if k != "seeds"]) + \
        f"\n\nEach run's median over its first and last 10% of iterations; geometric mean and 95% interval over " \
        f"{plural(g['seeds'], 'seed')} (one run per seed; the t-interval of the mean logarithm, mapped back). The MNIST " \
        f"runs' full-batch gradient norm (whole training set) goes from " \
        f"{_fmt_pos(g['mnist']['full_batch_grad_norm_start_end'][0])} at the start to " \
        f"{_fmt_pos(g['mnist']['full_batch_grad_norm_start_end'][1])} after the last epoch."


def _fmt_pos(d: dict) -> str:
    """A positive quantity's geometric mean and interval (pos_ci) to 3 significant digits."""
    return fmt_interval(d, 3, spec="g", n=False)


def summary_grad_norm(h: dict) -> str:
    f, m = h["function"], h["mnist"]
    return (f"full batch: the gradient norm falls {_fmt_pos(f['grad_norm_drop'])}x, then spikes; MNIST: the true "
            f"(full-batch) gradient norm goes {_fmt_pos(m['full_batch_grad_norm_start_end'][0])} -> "
            f"{_fmt_pos(m['full_batch_grad_norm_start_end'][1])}, far from 0")


GRAD_NORM = Experiment(
    "1-2b", "gradient norm", "1-2b_gradient_norm.ipynb", GradNormConfig, GRAD_NORM_PROFILES,
    key="grad_norm", compute=_compute_grad_norm,
    headline=h_grad_norm, block=block_grad_norm, checks=c_grad_norm, summary=summary_grad_norm)
