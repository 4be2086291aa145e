"""Section 1-1: deep vs shallow nets at equal parameter count.

1-1a fits 1-D functions with MLPs of several depths (full-batch Adam; every
(function, seed) pair of one depth trains at once as one vmapped ensemble).
1-1b trains CNNs of several depths on MNIST.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..data import load_mnist
from ..fashion import load_fashion
from ..ensemble import Ensemble
from ..errors import ConfigError
from ..functions import target
from ..stats import plateaued
from ..models import cnn_for_params, count_params, describe, mlp, mlp_widths_for_params
from ..train import fit_classifier, fit_full_batch, polish_lbfgs
from ..headline import (DATASET_NAMES, TEST, TRAIN, Check, ci, fmt_m, md_table, one_sample, pct, pct_ci, plural,
                        pos_ci, rnd, rounded, vals)
from ..stats import compare_log, fmt_interval, geometric_ci
from .common import Experiment, stack_units


# ------------------------------------------------------------------ 1-1a
@dataclass(frozen=True)
class FunctionFitConfig:
    """Each depth fitted at its own best learning rate. Per depth and function,
    a sweep over `lrs` on `sweep_seeds` picks the rate with the lowest median
    training loss at the end of the Adam phase; then `seeds` (disjoint from the sweep's, so the
    choice does not flatter the runs reported) train at that rate. Every run:
    `epochs` full-batch Adam steps with the rate decayed by a cosine to
    `decay_to` times itself, then `polish_iters` iterations of full-batch
    L-BFGS in float64 (`train.polish_lbfgs`). A run counts as converged only
    if it ends at a minimum: the polish's last `plateau_window` of loss evaluations
    lowered its best loss by less than `plateau_rtol`, the gradient norm is
    below `grad_tol`, and no Hessian eigenvalue is below -`hess_rtol` times
    the largest (a run stuck near a saddle, or still descending, is not)."""
    functions: tuple[str, ...] = ("sinc", "sign", "chirp")
    depths: tuple[int, ...] = (1, 3, 6)   # hidden layers: shallow, medium, deep
    target_params: int = 571               # the classic choice; matched within 1%
    n_points: int = 1000                   # evenly spaced on [-1, 1]
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2)   # the sweep, per depth and function
    sweep_seeds: tuple[int, ...] = (100, 101)
    seeds: tuple[int, ...] = tuple(range(10))
    epochs: int = 10_000                   # Adam steps (full batch), cosine-decayed ...
    decay_to: float = 0.01                 # ... to this fraction of the rate
    polish_iters: int = 500                # then L-BFGS iterations
    plateau_window: float = 0.1            # converged: the polish's last 10% of loss evaluations ...
    plateau_rtol: float = 0.01             # ... lowered its best loss by less than 1%,
    grad_tol: float = 1e-4                 # the gradient norm is below this,
    hess_rtol: float = 1e-3                # and lambda_min >= -hess_rtol * lambda_max
    check_every: int = 1_000               # divergence checks of the Adam phase
    device: str = "auto"

    def check(self) -> None:
        if set(self.seeds) & set(self.sweep_seeds):
            raise ConfigError("FunctionFitConfig: seeds and sweep_seeds must be disjoint (the runs reported must "
                              "not be those that chose the learning rate).")
        if not 0 < self.decay_to <= 1:
            raise ConfigError(f"FunctionFitConfig.decay_to = {self.decay_to}: a fraction of the rate in (0, 1].")


FUNCTION_FIT_PROFILES = {
    "smoke": dict(depths=(1, 3), lrs=(1e-3, 1e-2), sweep_seeds=(100,), seeds=(0,), epochs=40, polish_iters=10,
                  check_every=10, n_points=64),
    "quick": dict(lrs=(1e-3, 1e-2), sweep_seeds=(100,), seeds=(0, 1), epochs=1_000, polish_iters=100,
                  check_every=500, n_points=256),
    "full": dict(),
}


def function_fit_models(cfg: FunctionFitConfig) -> list[dict]:
    """One row per depth: name, hidden widths, parameter count."""
    rows = []
    for d in cfg.depths:
        widths = mlp_widths_for_params(d, cfg.target_params)
        rows.append(dict(name=f"{d}-hidden", depth=d, widths=widths,
                         params=count_params(mlp(1, widths, 1))))
    return rows


def _train_runs(cfg: FunctionFitConfig, build, members: list[tuple[str, float, int]], x: torch.Tensor,
                progress: bool, desc: str, polish: bool) -> dict[str, np.ndarray]:
    """Runs (function, rate, seed): the Adam phase as one ensemble, then (with
    `polish`) each run's L-BFGS polish and curvature. Arrays: adam_loss
    [epochs + 1, N]; and polish_lbfgs's."""
    dev = x.device
    ens = Ensemble(build, [s for _, _, s in members], dev)
    y = torch.stack([target(f, x) for f, _, _ in members])                 # [N, n, 1]
    xs = x.expand(len(members), -1, -1)
    fit = fit_full_batch(ens, xs, y, epochs=cfg.epochs, lr=[lr for _, lr, _ in members], decay_to=cfg.decay_to,
                         check_every=cfg.check_every, progress=progress, desc=desc)
    if not polish:
        return {"adam_loss": fit["loss"]}
    return {"adam_loss": fit["loss"], **polish_lbfgs(build, ens, xs, y, iters=cfg.polish_iters, progress=progress,
                                                     desc=f"{desc}, L-BFGS")}


DEAD_STD = 1e-6    # 1-1a: a net whose output varies by less than this over the inputs is dead (constant)


def converged_runs(cfg: FunctionFitConfig, polish_loss: np.ndarray, grad_norm, hess_min, hess_max,
                   pred) -> np.ndarray:
    """1-1a's rule, per run (see FunctionFitConfig): at a minimum, not stuck.
    A dead net (every ReLU path off: a constant output, a flat minimum of no
    use) is stuck, not converged. polish_loss [evaluations, ...], pred [..., n],
    the others [...] -> bool [...]."""
    flat = np.moveaxis(polish_loss, 0, -1)
    still = np.array([not plateaued(c, cfg.plateau_window, cfg.plateau_rtol) for c in flat.reshape(-1, flat.shape[-1])])
    return (~still.reshape(flat.shape[:-1]) & (np.asarray(grad_norm) <= cfg.grad_tol)
            & (np.asarray(hess_min) >= -cfg.hess_rtol * np.asarray(hess_max)) & (np.asarray(pred).std(-1) > DEAD_STD))


def _fit_one_depth(cfg: FunctionFitConfig, progress: bool) -> cache.Result:
    """One depth: the sweep (function x rate x sweep seed), then the reported
    runs (function x seed) at each function's chosen rate. Arrays: sweep_loss
    [F, L, Ssw] (final loss of the Adam phase, which chooses the rate); chosen_lr [F]; adam_loss [epochs + 1, F, S];
    polish_loss [evaluations, F, S] (train.polish_lbfgs); final_loss, adam_final, grad_norm,
    hess_min, hess_max, converged [F, S]; pred [F, S, n]."""
    dev = torch.device(cfg.device)
    (depth,) = cfg.depths
    widths = mlp_widths_for_params(depth, cfg.target_params)
    build = lambda: mlp(1, widths, 1)   # noqa: E731
    x = torch.linspace(-1, 1, cfg.n_points, device=dev).unsqueeze(-1)   # [n, 1]
    F_, L, Sw, S = len(cfg.functions), len(cfg.lrs), len(cfg.sweep_seeds), len(cfg.seeds)
    sweep = [(f, lr, s) for f in cfg.functions for lr in cfg.lrs for s in cfg.sweep_seeds]
    sw = _train_runs(cfg, build, sweep, x, progress, f"1-1a depth {depth}, rate sweep", polish=False)
    sweep_loss = sw["adam_loss"][-1].reshape(F_, L, Sw)
    chosen = np.array(cfg.lrs)[np.argmin(np.median(sweep_loss, axis=2), axis=1)]          # [F]
    runs = [(f, float(chosen[j]), s) for j, f in enumerate(cfg.functions) for s in cfg.seeds]
    r = _train_runs(cfg, build, runs, x, progress, f"1-1a depth {depth}, chosen rates", polish=True)
    arrays = {"sweep_loss": sweep_loss, "chosen_lr": chosen,
              "adam_loss": r["adam_loss"].reshape(-1, F_, S), "polish_loss": r["loss"].reshape(-1, F_, S),
              "final_loss": r["loss"][-1].reshape(F_, S), "adam_final": r["adam_loss"][-1].reshape(F_, S),
              **{k: r[k].reshape(F_, S) for k in ("grad_norm", "hess_min", "hess_max")},
              "pred": r["pred"][..., 0].reshape(F_, S, -1)}
    arrays["converged"] = converged_runs(cfg, arrays["polish_loss"], arrays["grad_norm"], arrays["hess_min"],
                                         arrays["hess_max"], arrays["pred"])
    return cache.Result(arrays, {"depth": depth, "widths": list(widths), "params": count_params(mlp(1, widths, 1))})


FIT_ARRAYS = ("sweep_loss", "chosen_lr", "adam_loss", "polish_loss", "final_loss", "adam_final",
              "grad_norm", "hess_min", "hess_max", "converged", "pred")


def assemble_function_fit(cfg: FunctionFitConfig, parts: list[cache.Result]) -> cache.Result:
    """Every function fitted with every depth: x [n]; y [F, n]; and each of
    `_fit_one_depth`'s arrays with a leading depth axis [D, ...]."""
    x = torch.linspace(-1, 1, cfg.n_points)
    arrays = {
        "x": x.numpy(),
        "y": torch.stack([target(f, x) for f in cfg.functions]).numpy(),
        **stack_units(parts, FIT_ARRAYS),
    }
    summary = {"models": [p.summary for p in parts], "config": dataclasses.asdict(cfg)}
    return cache.Result(arrays, summary)


# ------------------------------------------------------------------ 1-1b
@dataclass(frozen=True)
class MnistModelsConfig:
    """Every depth trains with Adam at `lr`, decayed by a cosine over the
    `epochs` to `decay_to` times itself (epoch by epoch), so that the
    comparison is of where each depth gets to, not of how fast. Whether the
    curves did flatten is checked per run by the plateau rule (not forced):
    over the last `plateau_epochs` epochs the best test accuracy rose by less
    than `plateau_acc` points. Every metric is measured after every epoch on the
    whole training and test sets."""
    depths: tuple[int, ...] = (1, 2, 4)   # conv blocks: shallow, medium, deep
    datasets: tuple[str, ...] = ("mnist", "fashion")   # the task, then a second one (Fashion-MNIST)
    target_params: int = 10_000
    epochs: int = 12
    decay_to: float = 0.0
    batch_size: int = 128
    lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    plateau_epochs: int = 3
    plateau_acc: float = 0.1               # points
    train_subset: int | None = None       # first n training images; None = all 60,000
    test_subset: int | None = None        # first n test images; None = all 10,000
    device: str = "auto"

    def check(self) -> None:
        unknown = set(self.datasets) - set(DATASETS)
        if unknown:
            raise ConfigError(f"MnistModelsConfig.datasets: unknown {sorted(unknown)}; choose from {', '.join(DATASETS)}.")
        if not 0 < self.plateau_epochs < self.epochs:
            raise ConfigError(f"MnistModelsConfig.plateau_epochs must be between 1 and epochs - 1 "
                              f"({self.epochs - 1}); got {self.plateau_epochs}.")


MNIST_MODELS_PROFILES = {
    "smoke": dict(depths=(1, 2), epochs=2, plateau_epochs=1, seeds=(0,), train_subset=512, test_subset=512),
    "quick": dict(epochs=2, plateau_epochs=1, seeds=(0,), train_subset=10_000),
    "full": dict(),
}

# The length control (1-1b-long): Fashion-MNIST alone, the same depths, seeds (so the same initialisations)
# and rate, under a cosine twice as long; the plateau window is the same share of the schedule (its last
# quarter), so the rule is not made easier by a longer tail at a near-zero rate.
MNIST_MODELS_LONG_PROFILES = {
    "smoke": dict(datasets=("fashion",), depths=(1, 2), epochs=4, plateau_epochs=1, seeds=(0,), train_subset=512,
                  test_subset=512),
    "quick": dict(datasets=("fashion",), epochs=4, plateau_epochs=1, seeds=(0,), train_subset=5_000),
    "full": dict(datasets=("fashion",), epochs=24, plateau_epochs=6),
}


def mnist_models(cfg: MnistModelsConfig) -> list[dict]:
    rows = []
    for d in cfg.depths:
        spec = cnn_for_params(d, cfg.target_params)
        model = spec.build()
        rows.append(dict(name=f"CNN-{d}", depth=d, layers=describe(model), params=count_params(model)))
    return rows


# The tasks of 1-1b: same image size, classes and splits, so the same CNNs serve both.
DATASETS = {"mnist": load_mnist, "fashion": load_fashion}


def _train_one_depth(cfg: MnistModelsConfig, progress: bool) -> cache.Result:
    dev = torch.device(cfg.device)
    (depth,), (task,) = cfg.depths, cfg.datasets
    spec = cnn_for_params(depth, cfg.target_params)
    data = DATASETS[task](dev)
    ens = Ensemble(spec.build, cfg.seeds, dev)
    train = data.train.subset(cfg.train_subset)
    hist = fit_classifier(ens, train, data.test.subset(cfg.test_subset), epochs=cfg.epochs,
                          batch_size=cfg.batch_size, lr=cfg.lr, decay_to=cfg.decay_to, progress=progress,
                          desc=f"1-1b {task} CNN-{depth}")
    summary = {"dataset": task, "depth": depth, "params": count_params(ens), "channels": list(spec.channels),
               "hidden": spec.hidden}
    for k, v in hist.items():
        summary[f"final_{k}_mean"] = float(v[-1].mean())
        summary[f"final_{k}_std"] = float(v[-1].std())
    return cache.Result(hist, summary, weights=ens.stacked_state())


def assemble_mnist_models(cfg: MnistModelsConfig, parts: list[cache.Result]) -> cache.Result:
    """Every depth trained with every seed on every dataset. Arrays: train_loss,
    train_acc, test_loss, test_acc, each [datasets, D, epochs + 1, S] (epoch 0 =
    at initialisation)."""
    shape = (len(cfg.datasets), len(cfg.depths))
    arrays = {k: v.reshape(shape + v.shape[1:]) for k, v in stack_units(parts).items()}
    summary = {"models": [p.summary for p in parts], "config": dataclasses.asdict(cfg)}
    return cache.Result(arrays, summary)


# ================================================================== headline numbers, text, checks

# ------------------------------------------------------------ headline numbers per experiment
def h_function_fit(r, cfg) -> dict:
    """Per depth and function: the rate sweep and the chosen rate; the best run
    (what the depth can express, as far as training finds it), the median and
    the geometric mean with its interval (what a typical run reaches), how many
    runs converged by the rule. Per function and pair of depths: Welch's test
    on log10 MSE with the difference it could detect."""
    models = function_fit_models(cfg)
    a = r.arrays
    final = a["final_loss"]                                                  # [depth, function, seed]
    hess_neg = a["hess_min"] < -cfg.hess_rtol * a["hess_max"]
    out = {"epochs": cfg.epochs, "decay_to": cfg.decay_to, "polish_iters": cfg.polish_iters, "lrs": list(cfg.lrs),
           "sweep_seeds": len(cfg.sweep_seeds), "seeds": len(cfg.seeds), "functions": list(cfg.functions),
           "rule": {"plateau_window": cfg.plateau_window, "plateau_rtol": cfg.plateau_rtol, "grad_tol": cfg.grad_tol,
                    "hess_rtol": cfg.hess_rtol}, "models": []}
    for i, m in enumerate(models):
        row = {"name": m["name"], "widths": list(m["widths"]), "params": m["params"], "fits": {}}
        for j, f in enumerate(cfg.functions):
            v = final[i, j]
            row["fits"][f] = {
                "lr_sweep": {f"{lr:g}": rnd(float(np.median(a["sweep_loss"][i, j, k])))
                             for k, lr in enumerate(cfg.lrs)},
                "chosen_lr": float(a["chosen_lr"][i, j]),
                "best": rnd(float(v.min())), "median": rnd(float(np.median(v))), "max": rnd(float(v.max())),
                "gmean": rounded(geometric_ci(v)),
                "adam_median": rnd(float(np.median(a["adam_final"][i, j]))),
                "converged": int(a["converged"][i, j].sum()), "negative_curvature": int(hess_neg[i, j].sum()),
                "dead": int((a["pred"][i, j].std(-1) <= DEAD_STD).sum()),
                "grad_norm_median": rnd(float(np.median(a["grad_norm"][i, j])))}
        out["models"].append(row)
    # a test needs two runs of each (None: not tested)
    out["comparisons"] = {f: {f"{models[p]['name']} vs {models[q]['name']}":
        rounded(compare_log(final[p, j], final[q, j])) if len(cfg.seeds) > 1 else None
        for p in range(len(models)) for q in range(p + 1, len(models))} for j, f in enumerate(cfg.functions)}
    out["best"] = {f: {"expressivity": models[int(np.argmin(final[:, j].min(1)))]["name"],
                       "trainability": models[int(np.argmin(np.median(final[:, j], 1)))]["name"]}
                   for j, f in enumerate(cfg.functions)}
    return out


def plateau_gain(test_acc: np.ndarray, k: int) -> np.ndarray:
    """How far the best test accuracy rose in the last k evaluations over the
    best before them, per run: test_acc [E + 1, ...] -> [...], in the curve's
    units (a fall counts as 0: nothing gained)."""
    return np.maximum(test_acc[-k:].max(0) - test_acc[:-k].max(0), 0.0)


def h_mnist_models(r, cfg) -> dict:
    """Per task and depth: final losses (log-scale intervals) and accuracies
    (logit-scale intervals, stats.proportion_ci), the plateau rule's count and
    the last window's gain, every seed's test accuracy; per pair of depths, the
    paired (by seed) test-accuracy difference."""
    models = mnist_models(cfg)
    n_test, n_train = cfg.test_subset or TEST, cfg.train_subset or TRAIN
    out = {"epochs": cfg.epochs, "lr": cfg.lr, "decay_to": cfg.decay_to, "seeds": len(cfg.seeds),
           "rule": {"plateau_epochs": cfg.plateau_epochs, "plateau_acc": cfg.plateau_acc}, "datasets": {}}
    for t, task in enumerate(cfg.datasets):
        a = {k: v[t] for k, v in r.arrays.items()}          # [depth, epoch, seed]
        gain = 100 * plateau_gain(a["test_acc"].transpose(1, 0, 2), cfg.plateau_epochs)   # [depth, seed]
        rows = [{"name": m["name"], "layers": m["layers"], "params": m["params"],
                 "train_loss": pos_ci(a["train_loss"][i, -1]), "test_loss": pos_ci(a["test_loss"][i, -1]),
                 "train_acc": pct_ci(a["train_acc"][i, -1], n_train), "test_acc": pct_ci(a["test_acc"][i, -1], n_test),
                 "plateau": int((gain[i] < cfg.plateau_acc).sum()), "last_window_gain": {
                     "median": rnd(np.median(gain[i])), "min": rnd(gain[i].min()), "max": rnd(gain[i].max())},
                 "per_seed_test_acc": [rnd(100 * v) for v in a["test_acc"][i, -1]]} for i, m in enumerate(models)]
        acc = 100 * a["test_acc"][:, -1]                     # [depth, seed]: paired across seeds
        out["datasets"][task] = {"models": rows, "paired_test_acc_diff": {
            f"{models[j]['name']} - {models[i]['name']}": ci(acc[j] - acc[i])
            for i in range(len(acc)) for j in range(i + 1, len(acc))}}
    return out


# ------------------------------------------------------------------ checked metrics per experiment
def c_function_fit(r, cfg) -> dict[str, Check]:

    final = r.arrays["final_loss"]                                   # [depth, function, seed]
    return {f"final_mse[{m['name']},{f}]": Check("1-1a/final_mse", "log", vals(final[i, j]))
            for i, m in enumerate(function_fit_models(cfg)) for j, f in enumerate(cfg.functions)}


def c_mnist_models(r, cfg) -> dict[str, Check]:

    out = {}
    for t, task in enumerate(cfg.datasets):
        for i, m in enumerate(mnist_models(cfg)):
            out[f"{task}/test_acc[{m['name']}]"] = Check("1-1b/test_acc", "lin", pct(r.arrays["test_acc"][t, i, -1]),
                                                         one_sample(cfg.test_subset, TEST))
            out[f"{task}/train_loss[{m['name']}]"] = Check("1-1b/train_loss", "log",
                                                           vals(r.arrays["train_loss"][t, i, -1]))
    return out


def _verdict(c: dict) -> str:
    """A depth comparison in words: which is lower, by what factor, or what the test could not see."""
    if c.get("p") is None:
        return "not tested (one run of each)"
    if c["lo"] > 0 or c["hi"] < 0:
        first, second = c["pair"]
        # diff = mean log10 (first) - mean log10 (second): the factor by which the lower one is lower
        lower, (f, lo, hi) = ((second, (c["diff"], c["lo"], c["hi"])) if c["diff"] > 0
                              else (first, (-c["diff"], -c["hi"], -c["lo"])))
        return f"{lower} lower, x{10 ** f:.3g} [{10 ** lo:.3g}, {10 ** hi:.3g}] (p = {c['p']:.2g})"
    return (f"no difference detected (p = {c['p']:.2g}; the test would detect x{10 ** c['detectable']:.3g} with 80% "
            "power)")


def block_function_fit(ff: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    fns, lrs = ff["functions"], ff["lrs"]
    parts = []
    for f in fns:
        rows = []
        for m in ff["models"]:
            d = m["fits"][f]
            gm = fmt_interval(d["gmean"], 2, key="gmean", spec="e", n=False)
            rows.append([m["name"], m["params"], " / ".join(f"{d['lr_sweep'][f'{lr:g}']:.1e}" for lr in lrs),
                         f"{d['chosen_lr']:g}", f"{d['best']:.2e}", f"{d['median']:.2e}", gm,
                         f"{d['converged']}/{ff['seeds']}"])
        comps = ff["comparisons"][f]
        parts.append(f"**{f}**\n\n" + md_table(
            ["model", "params", f"sweep: median MSE at rate {' / '.join(f'{lr:g}' for lr in lrs)}", "rate",
             "best MSE", "median MSE", "geometric mean [95%]", "converged"], rows) + "\n\n" +
            "; ".join(f"{k}: {_verdict({**(c or {}), 'pair': k.split(' vs ')})}" for k, c in comps.items()) + ".")
    rule = ff["rule"]
    return "\n\n".join(parts) + (
        f"\n\nEach depth at its own rate: per function, the rate with the lowest median MSE after the Adam phase over "
        f"{plural(ff['sweep_seeds'], 'sweep seed')} (not among the {ff['seeds']} seeds reported). Every run: "
        f"{ff['epochs']:,} full-batch Adam steps, the rate decayed by a cosine to {ff['decay_to']:g} times itself, "
        f"then {ff['polish_iters']:,} L-BFGS iterations (float64). Best: the lowest MSE over seeds (what training "
        "finds the depth can express); median and geometric mean: a typical run (trainability). Converged: at a "
        "local minimum (not necessarily a good one) by the rule: the polish's last "
        f"{rule['plateau_window']:.0%} of loss evaluations lowered the best loss by "
        f"less than {rule['plateau_rtol']:.0%}, gradient norm below {rule['grad_tol']:g}, and no Hessian eigenvalue "
        f"below -{rule['hess_rtol']:g} times the largest; a run stuck near a saddle or still descending is not "
        "converged. Depths share no weights, so seeds do not pair them: each comparison is Welch's t-test on "
        "log10 MSE (factor between geometric means, 95% interval).")


def _resolved(d: dict) -> bool:
    """Whether a paired difference's t-interval excludes 0 (never with one seed)."""
    return d["ci95"] is not None and abs(d["mean"]) > d["ci95"]


def _diff_verdict(d: dict) -> str:
    """A paired difference in words: its interval and whether it excludes 0."""
    if d["ci95"] is None:
        return f"{d['mean']:+.2f} (one seed: not tested)"
    lo, hi = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    return f"{d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]" + (" (resolved)" if _resolved(d) else "")


def _fmt_range(d: dict) -> str:
    """'0.12 [0.00, 0.31]': a median and the range over seeds (just the value for one seed)."""
    return f"{d['median']:.2f}" + ("" if d["min"] == d["max"] else f" [{d['min']:.2f}, {d['max']:.2f}]")


def block_mnist_models(mm: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    parts = []
    rule = mm["rule"]
    for task, d in mm["datasets"].items():
        parts.append(f"**{DATASET_NAMES.get(task, task)}**\n\n" + md_table(
            ["model", "layers", "params", "train loss", "test loss", "train acc (%)", "test acc (%)",
             f"test acc gain, last {plural(rule['plateau_epochs'], 'epoch')} (points)", "at plateau"], [
                [m["name"], m["layers"].replace(" | ", ", "), f"{m['params']:,}",
                 fmt_interval(m["train_loss"], 3, n=False), fmt_interval(m["test_loss"], 3, n=False),
                 fmt_interval(m["train_acc"], n=False), fmt_interval(m["test_acc"], n=False),
                 _fmt_range(m["last_window_gain"]), f"{m['plateau']}/{mm['seeds']}"] for m in d["models"]]) +
            "\n\nPaired test-accuracy differences (points, 95% t-interval over seeds): " +
            "; ".join(f"{k}: {_diff_verdict(v)}" for k, v in d["paired_test_acc_diff"].items()) + ".")
    end = "zero" if mm["decay_to"] == 0 else f"{mm['decay_to']:g}"
    sched = (f"the rate {mm['lr']:g} times a cosine factor set each epoch, from 1 in the first to {end} after the last"
             if mm["decay_to"] is not None else f"a constant rate {mm['lr']:g}")
    intervals = ("Losses: mean and the t-interval of their logarithms; accuracies: mean and the t-interval of their "
                 "logits (inside [0, 100])" if mm["seeds"] > 1 else
                 "One seed: no interval over seeds; accuracies with Wilson's interval for the images evaluated")
    return "\n\n".join(parts) + (
        f"\n\nAfter {mm['epochs']} epochs of Adam, {sched}; {plural(mm['seeds'], 'seed')}. {intervals}; "
        "every metric on the whole training or test set. At plateau: the best test "
        f"accuracy of the last {plural(rule['plateau_epochs'], 'epoch')} is less than {rule['plateau_acc']:g} points "
        "above the best before them (the gain column: median [min, max] over seeds; a gain is never below 0). A paired "
        "difference compares two depths "
        "seed by seed (a seed fixes the order of the batches; the weights of different depths share nothing).")


def summary_function_fit(h: dict) -> str:
    best = h["best"]
    resolved = [f"{f} {k}" for f, comps in h["comparisons"].items() for k, c in comps.items()
                if c is not None and (c["lo"] > 0 or c["hi"] < 0)]
    return ("lowest best-of-seeds MSE (expressivity): " + ", ".join(f"{f} {best[f]['expressivity']}"
                                                                    for f in h["functions"]) +
            "; lowest median (trainability): " + ", ".join(f"{f} {best[f]['trainability']}" for f in h["functions"]) +
            "; depth differences resolved by Welch's test: " + (", ".join(resolved) if resolved else "none"))


def summary_mnist_models(h: dict) -> str:
    parts = []
    for task, d in h["datasets"].items():
        accs = ", ".join(f"{m['name']} {m['test_acc']['mean']:.2f}" for m in d["models"])
        resolved = [k for k, v in d["paired_test_acc_diff"].items() if _resolved(v)]
        plateau, runs = sum(m["plateau"] for m in d["models"]), h["seeds"] * len(d["models"])
        parts.append(f"{DATASET_NAMES.get(task, task)} test acc (%) {accs}; resolved: "
                     f"{', '.join(resolved) if resolved else 'none'}; at plateau {plateau}/{runs}")
    return "; ".join(parts)


FUNCTION_FIT = Experiment(
    "1-1a", "function fit", "1-1a_simulate_function.ipynb", FunctionFitConfig, FUNCTION_FIT_PROFILES,
    key="function_fit_depth", compute=_fit_one_depth, split=("depths",), assemble=assemble_function_fit,
    headline=h_function_fit, block=block_function_fit, checks=c_function_fit, summary=summary_function_fit,
    figures=("1-1a_final", "1-1a_loss", "1-1a_predictions"),
    published=("Eldan and Shamir 2016; Telgarsky 2016", "depth separations for functions built for them (high "
               "dimension, exponentially many oscillations); none predicted for three 1-D functions at 571 parameters"),
    reading="""Each depth at its own rate, with a decaying schedule and an L-BFGS polish, the comparison separates
what a depth can express (its best run) from what a typical run reaches (median, geometric mean). On sinc the
3-hidden net's typical run ends at a local minimum far above the 1-hidden and 6-hidden nets' (the rule finds a
vanishing gradient and no negative curvature there, and Welch's test resolves both gaps), while its best run is
within an order of magnitude of theirs: a failure of training, not of expressivity. On sign and chirp no depth
difference is detected; the block gives the size each test could have detected. Every sign run ends with a
gradient far from zero, so none is counted converged there (L-BFGS stalls, as it does at a kink of the ReLU loss,
where the gradient need not vanish; not tested further); chirp's runs also end short of the gradient tolerance.
The classic claim that depth wins at equal parameter count is not supported by these fits: the only resolved
differences (sinc) put the middle depth behind both the shallower and the deeper net, and the depth with the
lowest best run differs between functions. Depth-separation results (Eldan and Shamir 2016; Telgarsky 2016)
concern functions built so that a shallow net needs exponentially many units, in dimension or oscillations; these
three 1-D functions at 571 parameters are not such functions, so they do not predict a gap here. What was not
varied: the schedule's length. The report's earlier runs (one rate, no decay, up to many more steps) reached lower
medians for some depth and function pairs (sign with 1 and with 3 hidden layers, chirp with 6), so these are each
depth's best within this budget of steps, not the best it can reach.""")

MNIST_MODELS = Experiment(
    "1-1b", "MNIST CNNs", "1-1b_train_on_mnist.ipynb", MnistModelsConfig, MNIST_MODELS_PROFILES,
    key="mnist_cnn_depth", compute=_train_one_depth, split=("datasets", "depths"), assemble=assemble_mnist_models,
    headline=h_mnist_models, block=block_mnist_models, checks=c_mnist_models, summary=summary_mnist_models,
    figures=("1-1b_mnist_curves",),
    reading="""Every depth trains under the same decaying schedule, and the plateau rule says, run by run, whether the
last epochs still raised the test accuracy. On MNIST both deeper CNNs beat the one-block CNN, with paired intervals
that exclude 0, and cannot be told apart from each other; most MNIST runs meet the rule, and what the others still
gained over the plateau window is smaller than those differences. On Fashion-MNIST few runs meet the rule: the
curves still rise at the end, so that comparison stays partly one of speed. There, after these epochs, the deepest
CNN trails both shallower ones and the two shallower ones cannot be told apart; the length control below (the
same seeds under a schedule twice as long) shows how much of that was speed. At this parameter budget the deepest
CNN wins on neither task under either schedule, and the two-block CNN is the best or tied for the best in every
comparison.""")

MNIST_MODELS_LONG = dataclasses.replace(
    MNIST_MODELS, name="1-1b-long", title="Fashion-MNIST, twice the schedule", profiles=MNIST_MODELS_LONG_PROFILES,
    figures=("1-1b_fashion_long",), reading="""The length control: Fashion-MNIST again, with the same seeds (the same
initialisations and batch orders) under a cosine schedule twice as long, the plateau window again the last quarter.
It changes the comparison. The deepest CNN's deficit against the one-block CNN, resolved after the short schedule,
is gone (the paired interval contains 0), and its deficit against the two-block CNN is smaller than before but
still resolved; the two-block CNN, tied with the one-block one before, now beats it, as on MNIST. So most of the
deep net's short-schedule deficit was speed, not what it can reach. The rule still fails for every two- and
four-block run: over the last quarter of the schedule they still gained up to about as much as the differences that
remain between them, so those differences may move again with a longer schedule; most one-block runs have
stopped. What the short schedule and this one agree on: the deepest CNN is not the best depth at this parameter
budget.""")

