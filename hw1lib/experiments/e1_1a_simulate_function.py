"""1-1a: fitting 1-D functions with MLPs of several depths at equal parameter count.

Full-batch Adam, then an L-BFGS polish; every (function, seed) pair of one depth
trains at once as one vmapped ensemble.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..ensemble import Ensemble
from ..errors import ConfigError
from ..functions import target
from ..stats import compare_log, geometric_ci, holm, plateaued
from ..headline import Check, fmt_interval, md_table, plural, rnd, rounded, vals
from ..models import count_params, mlp, mlp_widths_for_params
from ..train import fit_full_batch, polish_lbfgs
from .common import Experiment, stack_units


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
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)   # the sweep, per depth and function (wide
                                           # enough that no chosen rate sits at an edge: the headline counts them)
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
    "quick": dict(lrs=(1e-3, 1e-2), sweep_seeds=(100,), seeds=(0, 1), epochs=600, polish_iters=60,
                  check_every=300, n_points=256),
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


# ================================================================== headline numbers, text, checks

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
    out["chosen_at_edge"] = int(sum(m["fits"][f]["chosen_lr"] in (min(cfg.lrs), max(cfg.lrs))
                                    for m in out["models"] for f in cfg.functions))
    out["best"] = {f: {"expressivity": models[int(np.argmin(final[:, j].min(1)))]["name"],
                       "trainability": models[int(np.argmin(np.median(final[:, j], 1)))]["name"]}
                   for j, f in enumerate(cfg.functions)}
    return out


def c_function_fit(r, cfg) -> dict[str, Check]:

    final = r.arrays["final_loss"]                                   # [depth, function, seed]
    return {f"final_mse[{m['name']},{f}]": Check("1-1a/final_mse", "log", vals(final[i, j]))
            for i, m in enumerate(function_fit_models(cfg)) for j, f in enumerate(cfg.functions)}


def holm_adjusted(comparisons: dict) -> dict:
    """Holm's adjusted p of every depth comparison ({function: {pair: compare_log or None}}), over the
    whole family (every function and pair tested): {function: {pair: p}}."""
    keys = [(f, k) for f, comps in comparisons.items() for k, c in comps.items() if c is not None]
    adj = holm([comparisons[f][k]["p"] for f, k in keys]) if keys else []
    return {f: {k: float(p) for (g, k), p in zip(keys, adj) if g == f} for f in comparisons}


def _verdict(c: dict) -> str:
    """A depth comparison in words: which is lower, by what factor (95% interval, unadjusted), or what the
    test could not see; resolved only where Holm's adjusted p is below 0.05."""
    if c.get("p") is None:
        return "not tested (one run of each)"
    if c["p_holm"] < 0.05:
        first, second = c["pair"]
        # diff = mean log10 (first) - mean log10 (second): the factor by which the lower one is lower
        lower, (f, lo, hi) = ((second, (c["diff"], c["lo"], c["hi"])) if c["diff"] > 0
                              else (first, (-c["diff"], -c["hi"], -c["lo"])))
        return f"{lower} lower, x{10 ** f:.3g} [{10 ** lo:.3g}, {10 ** hi:.3g}] (p = {c['p']:.2g}, Holm {c['p_holm']:.2g})"
    return (f"no difference resolved (p = {c['p']:.2g}, Holm {c['p_holm']:.2g}; the test would detect "
            f"x{10 ** c['detectable']:.3g} with 80% power)")


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
        comps, adj = ff["comparisons"][f], holm_adjusted(ff["comparisons"])[f]
        parts.append(f"**{f}**\n\n" + md_table(
            ["model", "params", f"sweep: median MSE at rate {' / '.join(f'{lr:g}' for lr in lrs)}", "rate",
             "best MSE", "median MSE", "geometric mean [95%]", "converged"], rows) + "\n\n" +
            "; ".join(f"{k}: {_verdict({**(c or {}), 'pair': k.split(' vs ')} | ({'p_holm': adj[k]} if c else {}))}"
                      for k, c in comps.items()) + ".")
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
        "log10 MSE (factor between geometric means, 95% interval), resolved only where Holm's adjusted p over all "
        f"{sum(c is not None for comps in ff['comparisons'].values() for c in comps.values())} comparisons is "
        "below 0.05." + (f" Chosen rates at an edge of the sweep: {ff['chosen_at_edge']} of "
                         f"{len(ff['models']) * len(fns)}." if "chosen_at_edge" in ff else ""))


def summary_function_fit(h: dict) -> str:
    best = h["best"]
    adj = holm_adjusted(h["comparisons"])
    resolved = [f"{f} {k}" for f, comps in h["comparisons"].items() for k, c in comps.items()
                if c is not None and adj[f][k] < 0.05]
    return ("lowest best-of-seeds MSE (expressivity): " + ", ".join(f"{f} {best[f]['expressivity']}"
                                                                    for f in h["functions"]) +
            "; lowest median (trainability): " + ", ".join(f"{f} {best[f]['trainability']}" for f in h["functions"]) +
            "; depth differences resolved by Welch's test, Holm-adjusted over all comparisons: "
            + (", ".join(resolved) if resolved else "none"))


FUNCTION_FIT = Experiment(
    "1-1a", "function fit", "1-1a_simulate_function.ipynb", FunctionFitConfig, FUNCTION_FIT_PROFILES,
    key="function_fit_depth", compute=_fit_one_depth, split=("depths",), assemble=assemble_function_fit,
    headline=h_function_fit, block=block_function_fit, checks=c_function_fit, summary=summary_function_fit,
    published=("Eldan and Shamir 2016; Telgarsky 2016", "depth separations for functions built for them (high "
               "dimension, exponentially many oscillations); none predicted for three 1-D functions at 571 parameters"))
