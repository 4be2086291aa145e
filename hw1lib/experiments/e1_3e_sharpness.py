"""1-3e: epsilon-sharpness and top Hessian eigenvalue vs batch size (1-3d's models), and the rate-batch law;
Keskar et al.'s F1 comparison is in `e1_3e_keskar` (its units are this experiment's)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import cache
from ..curvature import FlatLoss, top_eigenvalues
from ..data import Split, load_mnist
from ..ensemble import Ensemble, by_rule
from ..headline import (BOUNDED_INTERVALS, Check, ci_finite, ci_reached, fmt_m, fmt_slope, law_fits, law_table,
                        md_table, nonneg_ci, rnd, seed_slopes, sign_of, slope_of, vals, where)
from ..measures import ensemble_loss_fn, epsilon_sharpness, lbfgsb_per_member
from ..models import F1_CHUNK, bn_fed_layers, bn_rescaled, count_params, keskar_f1, linear_layers, mnist_mlp
from ..train import fit_to_targets
from .common import Experiment, Unit, stack_units
from .e1_3d_flatness_sensitivity import BATCH_SWEEP, BatchSweepConfig, batch_sweep_models, rule_lrs, trained_cells
from .e1_3e_keskar import KeskarConfig, _gmean_ratio, _h_keskar, block_keskar, c_keskar, keskar_parts


@dataclass(frozen=True)
class SharpnessConfig:
    sweep: BatchSweepConfig = BatchSweepConfig()   # 1-3d's config (SHARPNESS reads it): its cached models
    keskar: KeskarConfig = KeskarConfig()
    epsilons: tuple[float, ...] = (1e-3, 5e-4)
    ascent_steps: int = 20                # projected gradient ascent iterations
    lbfgsb_iters: int = 10                # Keskar's maximiser, as a check of the ascent (first epsilon only)
    loss_subset: int = 10_000             # first n training images the loss is measured on
    hessian_subset: int = 10_000          # ... and the Hessian eigenvalue
    device: str = "auto"


SHARPNESS_PROFILES = {
    "smoke": dict(keskar=KeskarConfig(f1_seeds=(0,), mlp_seeds=(0,), mlp_hidden=(8,), f1_width=16, max_epochs=2,
                                      patience=1, rescale=(2.0,), train_subset=512, target_loss=1.5),
                  ascent_steps=3, loss_subset=256, hessian_subset=256),
    "quick": dict(keskar=KeskarConfig(f1_seeds=(0,), mlp_seeds=(0, 1), f1_width=64, max_epochs=10, patience=2,
                                      rescale=(2.0,), train_subset=5_000, target_loss=0.15),
                  ascent_steps=5, lbfgsb_iters=5, loss_subset=1_000, hessian_subset=1_000),
    "full": dict(),
}


def _sharpness_of(cfg: SharpnessConfig, build, ens: Ensemble, split: Split, hess_split: Split,
                  progress: bool, desc: str) -> dict[str, np.ndarray]:
    """sharpness [E, N] (projected ascent), sharpness_lbfgsb [N] (first epsilon),
    top_eig [N] of every member of `ens`."""
    f = ensemble_loss_fn(ens, split.x, split.y)
    out = {"sharpness": np.stack([epsilon_sharpness(f, ens.params, eps, steps=cfg.ascent_steps).cpu().numpy()
                                  for eps in cfg.epsilons]),
           "sharpness_lbfgsb": lbfgsb_per_member(build, ens, split, cfg.epsilons[0], cfg.lbfgsb_iters)}
    top = np.zeros(len(ens))
    for s in tqdm(range(len(ens)), desc=desc, disable=not progress, leave=False):
        model = build().to(ens.device)
        model.load_state_dict(ens.state_dict(s))
        fl = FlatLoss(model, F.cross_entropy, hess_split.x, hess_split.y)
        top[s] = top_eigenvalues(fl, fl.theta0, k=1, seed=s, tol=1e-3)[0]
    out["top_eig"] = top
    return out


def _compute_sharpness(cfg: SharpnessConfig, progress: bool) -> cache.Result:
    """One batch size of 1-3d: arrays sharpness [E, T, R, S] (Keskar
    epsilon-sharpness for each epsilon), sharpness_lbfgsb [T, R, S], top_eig
    [T, R, S] (largest Hessian eigenvalue of the training loss on the subset,
    from Hessian-vector products), reached [T, R, S] (the model met its target);
    each distinct model measured once (NaN: a rule that does not train here)."""
    dev = torch.device(cfg.device)
    (batch_size,) = cfg.sweep.batch_sizes
    data = load_mnist(dev)
    ens, part = batch_sweep_models(cfg.sweep, batch_size, progress)
    out = _sharpness_of(cfg, mnist_mlp(cfg.sweep.hidden), ens, data.train.subset(cfg.loss_subset),
                        data.train.subset(cfg.hessian_subset), progress, f"1-3e batch {batch_size}")
    T, member = len(cfg.sweep.targets), part.arrays["member"]
    arrays = {k: np.stack([by_rule(x, member) for x in v.reshape(-1, T, v.shape[-1] // T)]).reshape(
        *v.shape[:-1], T, *member.shape) for k, v in out.items()}
    arrays["reached"] = part.arrays["reached"]          # whether each model met its target (1-3d's flag)
    return cache.Result(arrays, {"batch_size": batch_size})


def _compute_keskar(cfg: SharpnessConfig, progress: bool) -> cache.Result:
    """One network and regime of the Keskar comparison, its seeds in one ensemble, kept at the matched loss
    and at the stopping rule (rows C = 2). Arrays [C, S]: epochs, reached, {train,test}_{loss,acc},
    sharpness_lbfgsb (their epsilon, the first, and their maximiser, L-BFGS-B); loss_curve [E + 1, S];
    weight_norms [C, S, layers]; sharpness_rescaled [len(rescale), S] (at the rule; NaN: no batch norm)."""
    k = cfg.keskar
    dev = torch.device(cfg.device)
    (net,), (regime,) = k.networks, k.regimes
    data = load_mnist(dev)
    train = data.train.subset(k.train_subset)
    batch_size = k.small_batch if regime == "small" else max(1, len(train) * k.large_percent // 100)
    if net == "f1":
        build, seeds, chunk = keskar_f1(k.f1_width), k.f1_seeds, F1_CHUNK
    else:
        build, seeds, chunk = mnist_mlp(k.mlp_hidden), k.mlp_seeds, None
    ens = Ensemble(build, seeds, dev)
    h, states = fit_to_targets(ens, train, data.test, targets=(k.target_loss,), patience=k.patience,
                               max_epochs=k.max_epochs, batch_size=batch_size, lr=k.lr, chunk=chunk, progress=progress,
                               desc=f"1-3e Keskar {net}, batch {batch_size}")
    loss_split = train.subset(cfg.loss_subset)
    kept = lambda c, w=states: Ensemble.from_stacked(build, {n: v[c] for n, v in w.items()}, dev)  # noqa: E731
    arrays = {k2: v for k2, v in h.items() if k2 not in ("steps", "acc_curve")}
    arrays["sharpness_lbfgsb"] = np.stack([lbfgsb_per_member(build, kept(c), loss_split, cfg.epsilons[0],
                                                             cfg.lbfgsb_iters) for c in range(2)])
    arrays["weight_norms"] = torch.stack([states[f"{i}.weight"].flatten(2).norm(dim=2) for i in linear_layers(build)],
                                         -1).cpu().numpy()                          # [C, S, layers]
    fed = bn_fed_layers(build)      # at the stopping rule (row 1), rescaled: the same function, another box
    arrays["sharpness_rescaled"] = np.stack([
        lbfgsb_per_member(build, kept(1, bn_rescaled(states, fed, c)), loss_split, cfg.epsilons[0], cfg.lbfgsb_iters)
        if fed else np.full(len(seeds), np.nan) for c in k.rescale]) if k.rescale else np.zeros((0, len(seeds)))
    return cache.Result(arrays, {"network": net, "regime": regime, "batch_size": batch_size, "params": count_params(ens)})


def sharpness_units(cfg: SharpnessConfig) -> list[Unit]:
    """One unit per batch size of 1-3d (reading its cached models), then one per Keskar network and regime."""
    # each unit's config holds only what it reads (the rest at its defaults): its entry ignores the rest's settings
    dev = cfg.device
    per_batch = [Unit("sharpness_batch", dataclasses.replace(
        cfg, sweep=dataclasses.replace(cfg.sweep, batch_sizes=(b,)), keskar=KeskarConfig(device=dev)),
        _compute_sharpness) for b in cfg.sweep.batch_sizes]
    keskar = [Unit("sharpness_keskar", dataclasses.replace(
        cfg, sweep=BatchSweepConfig(device=dev), keskar=dataclasses.replace(cfg.keskar, networks=(n,), regimes=(r,))),
        _compute_keskar) for n in cfg.keskar.networks for r in cfg.keskar.regimes]
    return per_batch + keskar


def assemble_sharpness(cfg: SharpnessConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: batch_size [B], epsilons [E]; sharpness [B, E, T, R, S],
    sharpness_lbfgsb, top_eig and reached [B, T, R, S] (1-3d's models); for each Keskar
    network n and regime r, keskar_{n}_{r}_{metric} (see `_compute_keskar`)."""
    B = len(cfg.sweep.batch_sizes)
    arrays = stack_units(parts[:B])
    arrays["batch_size"] = np.array(cfg.sweep.batch_sizes)
    arrays["epsilons"] = np.array(cfg.epsilons)
    keskar_arrays, keskar = keskar_parts(parts[B:])
    return cache.Result(arrays | keskar_arrays, {"keskar": keskar})


def h_sharpness(r, cfg) -> dict:
    a = r.arrays
    eps = [float(e) for e in a["epsilons"]]
    sw = cfg.sweep
    out = {"epsilons": eps, "lbfgsb_iters": cfg.lbfgsb_iters, "targets": list(sw.targets),
           "lr_rules": list(sw.lr_rules), "cells": [], "slopes": {},
           "per_seed": {}}
    ok = a["reached"].astype(bool)                        # [B, T, R, S]: whether each model met its target
    bsz = a["batch_size"]
    trained = trained_cells(sw, bsz)                      # [B, R]: whether each rule trains at each batch size
    # Keskar's small batch against the sweep's largest, where the sweep has both
    small, large = cfg.keskar.small_batch, int(bsz.max())
    si = list(bsz).index(small) if small in bsz and small < large else None     # their rows
    li = list(bsz).index(large)
    out["contrast"] = {"batch_sizes": [small, large], "ratios": {}}
    for t, target in enumerate(sw.targets):
        for ri, rule in enumerate(sw.lr_rules):
            key = f"{rule}/{target:g}"
            for b, batch_size in enumerate(bsz):
                if not trained[b, ri]:
                    continue
                out["cells"].append({"target": target, "rule": rule, "batch_size": int(batch_size), "reached": int(ok[b, t, ri].sum()),
                                     "n": int(ok.shape[-1]),
                                     "sharpness": [ci_reached(a["sharpness"][b, e, t, ri], ok[b, t, ri], nonneg_ci)
                                                   for e in range(len(eps))],
                                     "sharpness_lbfgsb": ci_reached(a["sharpness_lbfgsb"][b, t, ri], ok[b, t, ri],
                                                                    nonneg_ci),
                                     "top_eig": ci_reached(a["top_eig"][b, t, ri], ok[b, t, ri], nonneg_ci)})
            o = ok[:, t, ri]
            out["slopes"][key] = {**{f"sharpness_eps{e:g}": ci_finite(seed_slopes(bsz, a["sharpness"][:, i, t, ri], o))
                                     for i, e in enumerate(eps)},
                                  "sharpness_lbfgsb": ci_finite(seed_slopes(bsz, a["sharpness_lbfgsb"][:, t, ri], o)),
                                  "top_eig": ci_finite(seed_slopes(bsz, a["top_eig"][:, t, ri], o))}
            out["per_seed"][key] = {"sharpness": [[rnd(v) for v in row] for row in a["sharpness"][:, 0, t, ri]],
                                    "sharpness_lbfgsb": [[rnd(v) for v in row] for row in a["sharpness_lbfgsb"][:, t, ri]],
                                    "top_eig": [[rnd(v) for v in row] for row in a["top_eig"][:, t, ri]]}
            if si is not None and trained[si, ri] and trained[li, ri]:
                out["contrast"]["ratios"][key] = rnd(np.exp(np.log(a["sharpness_lbfgsb"][li, t, ri]).mean()
                                                            - np.log(a["sharpness_lbfgsb"][si, t, ri]).mean()))
    # log S = c + a log B + b log lr, on the grid and over every cell
    lrs = rule_lrs(sw, bsz)                               # [B, R]
    out["law"] = {f"{target:g}": {m: law_fits(sw.grid_batch_sizes, bsz, lrs, v[:, t], ok[:, t]) for m, v in (
        ("sharpness_lbfgsb", a["sharpness_lbfgsb"]), (f"sharpness_eps{eps[0]:g}", a["sharpness"][:, 0]),
        ("top_eig", a["top_eig"]))} for t, target in enumerate(sw.targets)}
    out["keskar_f1"] = _h_keskar(a, r.summary["keskar"], cfg.keskar)
    return out


def c_sharpness(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out, trained = {}, trained_cells(cfg.sweep, a["batch_size"])
    for t, target in enumerate(cfg.sweep.targets):
        for ri, rule in enumerate(cfg.sweep.lr_rules):
            for b, batch_size in enumerate(a["batch_size"]):
                if not trained[b, ri]:
                    continue
                where = f"{rule},target={target:g},batch_size={int(batch_size)}"
                for e, eps in enumerate(a["epsilons"]):
                    out[f"sharpness[eps={eps:g},{where}]"] = Check("1-3e/sharpness", "log", vals(a["sharpness"][b, e, t, ri]))
                out[f"sharpness_lbfgsb[{where}]"] = Check("1-3e/sharpness", "log", vals(a["sharpness_lbfgsb"][b, t, ri]))
                out[f"top_eig[{where}]"] = Check("1-3e/top_eig", "log", vals(a["top_eig"][b, t, ri]))
    return out | c_keskar(a, r.summary["keskar"])


def block_sharpness(sh: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    eps = sh["epsilons"]
    t1 = md_table(["target", "lr rule", "batch", "reached", *[f"sharpness, eps {e:g}" for e in eps],
                   f"eps {eps[0]:g}, L-BFGS-B", "top Hessian eigenvalue"], [
        [f"{c['target']:g}", c["rule"], c["batch_size"], f"{c['reached']}/{c['n']}", *[fmt_m(v) for v in c["sharpness"]],
         fmt_m(c["sharpness_lbfgsb"]), fmt_m(c["top_eig"])] for c in sh["cells"]])
    keys = next(iter(sh["slopes"].values())).keys()
    small, large = sh["contrast"]["batch_sizes"]
    t2 = md_table(["target / rule", *[f"log-log slope: {k}" for k in keys],
                   f"L-BFGS-B sharpness, {large} / {small} (geometric means)"], [
        [k, *[fmt_slope(v[m]) for m in keys], sh["contrast"]["ratios"].get(k, "n/a")] for k, v in sh["slopes"].items()])
    return (t1 + "\n\n" + t2 + law_table(sh.get("law")) +
            f"\n\nThe models of 1-3d at each target and learning-rate rule; over the seeds that met the target, "
            f"{BOUNDED_INTERVALS} ('reached' counts them; the others are left out, here and in the slopes). Sharpness "
            "maximised by "
            f"projected sign ascent and, as Keskar et al., by {sh['lbfgsb_iters']} iterations of L-BFGS-B in the "
            "same box. Slopes: "
            "least squares of log measure on log batch per seed, t-interval over seeds.\n\n" +
            block_keskar(sh["keskar_f1"], eps[0]) + _keskar_tests(sh))


def _keskar_tests(sh: dict) -> str:
    """What the numbers say about Keskar et al.'s claim (generated)."""
    lines = ["\n\n**What each comparison tests:**\n"]
    for key, sl in sh["slopes"].items():
        rule, t = key.split("/")
        lines.append(f"- sharpness (L-BFGS-B) on batch size, {rule} lr, training loss {t}: log-log slope "
                     f"{where(fmt_slope(sl['sharpness_lbfgsb']), sign_of(sl['sharpness_lbfgsb']))}; top Hessian "
                     f"eigenvalue {where(fmt_slope(sl['top_eig']), sign_of(sl['top_eig']))}.")
    for t, ms in (sh.get("law") or {}).items():
        for m in ("sharpness_lbfgsb", "top_eig"):
            fits = "; ".join(f"{k} ({f['cells']} cells) " + where(fmt_slope(f["a_plus_b"]), sign_of(f["a_plus_b"]))
                             for k, f in ms[m].items())
            lines.append(f"- does only lr / batch matter (a + b = 0)? {m}, training loss {t}: a + b {fits}.")
    return "\n".join(lines)


def summary_sharpness(h: dict) -> str:
    t = f"{h['targets'][-1]:g}"
    kf = h["keskar_f1"]
    f1 = kf["ratios"].get("f1", {})
    law = h["law"][t]["sharpness_lbfgsb"]["grid"]
    return (f"log-log slope of sharpness (L-BFGS-B) on batch at loss {t}: fixed lr "
            f"{slope_of(h['slopes'], f'fixed/{t}', 'sharpness_lbfgsb')}, linear lr "
            f"{slope_of(h['slopes'], f'linear/{t}', 'sharpness_lbfgsb')}; on the grid of rates x batch sizes "
            f"({law['cells']} cells reached), log S = a log B + b log lr: a {fmt_slope(law['a'])}, b {fmt_slope(law['b'])}, a + b "
            f"{fmt_slope(law['a_plus_b'])}; Keskar's F1, large/small sharpness "
            f"{_gmean_ratio(kf, 'f1') or f1.get('stop') or 'n/a (no F1 in the design)'} after their training (stopping rule, or the epoch cap where "
            f"it did not fire), published {kf['ratios']['published']}")


SHARPNESS = Experiment(
    "1-3e", "sharpness", "1-3e_sharpness.ipynb", SharpnessConfig, SHARPNESS_PROFILES,
    key="", compute=None, plan=sharpness_units, assemble=assemble_sharpness, reads=(("sweep", BATCH_SWEEP),),
    headline=h_sharpness, block=block_sharpness, checks=c_sharpness, summary=summary_sharpness,
    published=("Keskar et al. 2017", "MNIST fully connected: sharpness at eps 1e-3 about 1.2 (small batch) vs "
                                     "205 (large batch); test accuracy 98.0% vs 97.8%"))
