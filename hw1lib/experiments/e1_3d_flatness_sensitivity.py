"""1-3d: sensitivity (input-Jacobian norm) vs batch size."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..errors import ConfigError
from ..data import Split, load_mnist, random_labels
from ..ensemble import Ensemble, by_rule
from ..measures import sensitivity
from ..models import mnist_mlp
from ..headline import (BOUNDED_INTERVALS, Check, TEST, acc_test_ci, ci, ci_finite, ci_reached, fmt_m, fmt_slope,
                        fmt_sp, law_fits, law_table, md_table, nonneg_ci, one_count, one_sample, pct, rnd, rounded,
                        seed_slopes, sign_of, sign_of_rho, slope_of, sp_round, vals, where)
from ..stats import centred_spearman_ci, geometric_ci
from ..train import fit_to_targets
from .common import Experiment, Unit, split_units, stack_units


@dataclass(frozen=True)
class BatchSweepConfig:
    hidden: tuple[int, ...] = (64, 64)
    batch_sizes: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    # lr, lr * batch / ref_batch (Goyal et al. 2017), lr / 4 and 4 lr; the last two train only at
    # grid_batch_sizes, where with the fixed rule they make a grid of 3 rates x 3 batch sizes (the rate-batch law)
    lr_rules: tuple[str, ...] = ("fixed", "linear", "quarter", "fourfold")
    ref_batch: int = 256
    grid_batch_sizes: tuple[int, ...] = (64, 256, 1024)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    targets: tuple[float, ...] = (0.1, 0.05)    # each model is kept the first time its full training loss <= each
    max_epochs: int = 150                   # ... or after this many epochs (then reported as not reached)
    lr: float = 1e-3
    train_subset: int | None = None
    sensitivity_subset: int | None = None   # first n test images; None = all 10,000
    label_subset: int = 2_000               # true vs random labels (Novak et al.), both on the first n images ...
    label_batch_sizes: tuple[int, ...] = (16, 64, 256)   # ... at these batch sizes (learning rate lr) ...
    label_max_epochs: int = 600             # ... for at most this many epochs
    device: str = "auto"

    def check(self) -> None:
        bad = sorted(set(self.lr_rules) - set(LR_RULES))
        if bad:
            raise ConfigError(f"BatchSweepConfig.lr_rules: unknown rule(s) {', '.join(bad)}; choose from "
                              f"{', '.join(LR_RULES)}.")
        if list(self.targets) != sorted(self.targets, reverse=True):
            raise ConfigError("BatchSweepConfig.targets: give them from the highest loss to the lowest.")
        off = sorted(set(self.grid_batch_sizes) - set(self.batch_sizes))
        if off and set(GRID_RULES) & set(self.lr_rules):
            raise ConfigError(f"BatchSweepConfig.grid_batch_sizes: {', '.join(map(str, off))} not among batch_sizes "
                              f"({', '.join(map(str, self.batch_sizes))}); the grid rules train only where both have them.")


LR_FACTORS = {"fixed": 1.0, "quarter": 0.25, "fourfold": 4.0}   # the rules that scale lr by a constant
LR_RULES = ("fixed", "linear", "quarter", "fourfold")
GRID_RULES = ("quarter", "fourfold")      # trained only at grid_batch_sizes
LABELS = ("true", "random")


def rule_lr(cfg: BatchSweepConfig, rule: str, batch_size: int) -> float:
    """The learning rate of `rule` at `batch_size`: lr scaled linearly with it from ref_batch, or by a constant."""
    return cfg.lr * batch_size / cfg.ref_batch if rule == "linear" else cfg.lr * LR_FACTORS[rule]


def rule_trained(cfg: BatchSweepConfig, rule: str, batch_size: int) -> bool:
    """Whether `rule` trains at `batch_size` (the grid rules only at grid_batch_sizes)."""
    return rule not in GRID_RULES or batch_size in cfg.grid_batch_sizes


def trained_cells(cfg: BatchSweepConfig, batch_sizes) -> np.ndarray:
    """[B, R]: whether each rule trains at each batch size."""
    return np.array([[rule_trained(cfg, r, int(b)) for r in cfg.lr_rules] for b in batch_sizes])


def rule_lrs(cfg: BatchSweepConfig, batch_sizes) -> np.ndarray:
    """[B, R]: each rule's learning rate at each batch size."""
    return np.array([[rule_lr(cfg, r, int(b)) for r in cfg.lr_rules] for b in batch_sizes])


BATCH_SWEEP_PROFILES = {
    "smoke": dict(hidden=(8,), batch_sizes=(16, 256), grid_batch_sizes=(16, 256), seeds=(0,), targets=(1.8, 1.5), max_epochs=2,
                  train_subset=512, sensitivity_subset=64, label_subset=128, label_batch_sizes=(16,),
                  label_max_epochs=2),
    "quick": dict(batch_sizes=(64, 256, 1024), seeds=(0, 1), targets=(0.2, 0.15), max_epochs=60, train_subset=5_000,
                  sensitivity_subset=500, label_subset=500, label_batch_sizes=(16, 64), label_max_epochs=200),
    "full": dict(),
}


def _train_batch(cfg: BatchSweepConfig, progress: bool) -> cache.Result:
    """One batch size, every learning-rate rule that trains here and every seed in
    one ensemble (rules that give the same rate train once: M distinct models).
    Arrays [T, R, S] (NaN, and reached False, for a rule that does not train
    here); member [R, S]: each row's model (-1: none); weights [T * M, ...]."""
    dev = torch.device(cfg.device)
    (batch_size,) = cfg.batch_sizes
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset)
    rules = [r for r in cfg.lr_rules if rule_trained(cfg, r, batch_size)]
    lrs = sorted({rule_lr(cfg, r, batch_size) for r in rules})
    members = [(lr, s) for lr in lrs for s in cfg.seeds]
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for _, s in members], dev)
    h, states = fit_to_targets(ens, train, data.test, targets=cfg.targets, max_epochs=cfg.max_epochs, batch_size=batch_size,
                               lr=tuple(lr for lr, _ in members), progress=progress,
                               desc=f"1-3d batch {batch_size}, lr {', '.join(f'{v:g}' for v in lrs)}")
    h["sensitivity"] = _sensitivities(mnist_mlp(cfg.hidden), states, data.test.subset(cfg.sensitivity_subset).x, dev)
    member = np.array([[members.index((rule_lr(cfg, r, batch_size), s)) if r in rules else -1 for s in cfg.seeds]
                       for r in cfg.lr_rules])
    arrays = {k: by_rule(v, member) for k, v in h.items() if not k.endswith("_curve")}
    arrays["loss_curve"] = by_rule(h["loss_curve"], member)
    arrays["member"] = member
    weights = {k: v.reshape(-1, *v.shape[2:]) for k, v in states.items()}
    return cache.Result(arrays, {"batch_size": batch_size, "lr": {r: rule_lr(cfg, r, batch_size) for r in rules}},
                        weights=weights)


def _sensitivities(build, states: dict[str, torch.Tensor], x: torch.Tensor, dev: torch.device) -> np.ndarray:
    """Mean sensitivity over x of every kept model: states [C, N, ...] -> [C, N]."""
    C = next(iter(states.values())).shape[0]
    out = []
    for c in range(C):
        kept = Ensemble.from_stacked(build, {k: v[c] for k, v in states.items()}, dev)
        out.append(sensitivity(kept, x).mean(1).cpu().numpy())
    return np.stack(out)


def _train_labels(cfg: BatchSweepConfig, progress: bool) -> cache.Result:
    """True and random labels on the same images (the first label_subset), one
    batch size, every seed, in one ensemble. Arrays [T, L, S]."""
    dev = torch.device(cfg.device)
    (batch_size,) = cfg.label_batch_sizes
    data = load_mnist(dev)
    train = data.train.subset(cfg.train_subset).subset(cfg.label_subset)
    y = {"true": train.y, "random": random_labels(train.y, seed=0)}
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for _ in LABELS for s in cfg.seeds], dev)
    labels = torch.stack([y[lab] for lab in LABELS for _ in cfg.seeds])
    h, states = fit_to_targets(ens, Split(train.x, labels), data.test, targets=cfg.targets,
                               max_epochs=cfg.label_max_epochs, batch_size=batch_size, lr=cfg.lr, progress=progress,
                               desc=f"1-3d labels, batch {batch_size}")
    h["sensitivity"] = _sensitivities(mnist_mlp(cfg.hidden), states, data.test.subset(cfg.sensitivity_subset).x, dev)
    L, S, T = len(LABELS), len(cfg.seeds), len(cfg.targets)
    arrays = {k: v.reshape(T, L, S) for k, v in h.items() if not k.endswith("_curve")}
    arrays["loss_curve"] = h["loss_curve"].reshape(-1, L, S)
    return cache.Result(arrays, {"batch_size": batch_size, "agreement": float((y["random"] == y["true"]).float().mean())})


def batch_sweep_units(cfg: BatchSweepConfig) -> list[Unit]:
    """The model units (`model_units`), then one per batch size of the label comparison."""
    return model_units(cfg) + split_units("batch_sweep_labels", cfg, ("label_batch_sizes",), _train_labels)


def model_units(cfg: BatchSweepConfig) -> list[Unit]:
    """One unit per batch size, its rules and seeds trained as one ensemble (1-3e reads their models)."""
    return split_units("batch_sweep_unit", cfg, ("batch_sizes",), _train_batch)


def batch_sweep_models(cfg: BatchSweepConfig, batch_size: int, progress: bool = True) -> tuple[Ensemble, cache.Result]:
    """The trained models of one batch size of the sweep, from the cache: members
    in the order (target, model), its array `member` mapping rows (rule, seed)
    to models; and that batch size's unit result."""
    (unit,) = model_units(dataclasses.replace(cfg, batch_sizes=(batch_size,)))
    part = unit(progress)
    dev = torch.device(cfg.device)
    ens = Ensemble.from_stacked(mnist_mlp(cfg.hidden), {k: v.to(dev) for k, v in part.weights.items()}, dev)
    return ens, part


def assemble_batch_sweep(cfg: BatchSweepConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: batch_size [B]; lr, trained [B, R] (each rule's rate, and whether it trains, at each batch
    size); train_loss, train_acc, test_loss, test_acc, sensitivity, epochs, steps, reached [B, T, R, S]
    (targets T, rules R, seeds S; at each matched training loss, see `train.fit_to_targets`; sensitivity =
    mean over the test images of the per-image Frobenius norm of d softmax / d input); loss_curve [B]
    objects; label_batch_size [Bl] and label_{metric} [Bl, T, L, S] for the label comparison (true, random)."""
    B = len(cfg.batch_sizes)
    metrics = ("train_loss", "train_acc", "test_loss", "test_acc", "sensitivity", "epochs", "steps", "reached")
    arrays = stack_units(parts[:B], metrics)
    arrays |= {f"label_{k}": v for k, v in stack_units(parts[B:], metrics).items()}
    arrays["batch_size"] = np.array(cfg.batch_sizes)
    arrays["label_batch_size"] = np.array(cfg.label_batch_sizes)
    arrays["lr"] = rule_lrs(cfg, cfg.batch_sizes)
    arrays["trained"] = trained_cells(cfg, cfg.batch_sizes)
    return cache.Result(arrays, {"lr_rules": list(cfg.lr_rules), "targets": list(cfg.targets),
                                 "labels": list(LABELS)})


def h_batch_sweep(r, cfg) -> dict:
    a = r.arrays
    rules, targets = r.summary["lr_rules"], r.summary["targets"]
    gap = a["test_loss"] - a["train_loss"]                                     # [B, T, R, S]
    agap = 100 * (a["train_acc"] - a["test_acc"])
    ok = a["reached"].astype(bool)
    trained = trained_cells(cfg, a["batch_size"])
    out = {"targets": targets, "lr_rules": rules, "ref_batch": cfg.ref_batch, "lr": cfg.lr,
           "max_epochs": cfg.max_epochs, "seeds": len(cfg.seeds), "cells": [], "per_seed": {}, "slopes": {}}
    for t, target in enumerate(targets):
        for ri, rule in enumerate(rules):
            key = f"{rule}/{target:g}"
            for b, batch_size in enumerate(a["batch_size"]):
                sl = (b, t, ri)
                if not trained[b, ri]:
                    continue
                out["cells"].append({
                    "target": target, "rule": rule, "batch_size": int(batch_size), "lr": rnd(a["lr"][b, ri]),
                    "reached": int(ok[sl].sum()), "epochs": nonneg_ci(a["epochs"][sl]),
                    "train_loss": nonneg_ci(a["train_loss"][sl]),
                    "test_acc": ci_reached(a["test_acc"][sl], ok[sl], acc_test_ci),
                    "loss_gap": ci_reached(gap[sl], ok[sl]), "acc_gap": ci_reached(agap[sl], ok[sl]),
                    "sensitivity": ci_reached(a["sensitivity"][sl], ok[sl], nonneg_ci)})
            out["per_seed"][key] = {k: [[rnd(v) for v in row] for row in arr[:, t, ri]] for k, arr in (
                ("sensitivity", a["sensitivity"]), ("loss_gap", gap), ("acc_gap", agap),
                ("train_loss", a["train_loss"]), ("reached", a["reached"].astype(float)))}
            o = ok[:, t, ri]
            out["slopes"][key] = {
                "sensitivity": ci_finite(seed_slopes(a["batch_size"], a["sensitivity"][:, t, ri], o)),
                # the gaps can be negative: per doubling of the batch, on a linear scale
                "loss_gap": ci_finite(np.log(2) * seed_slopes(a["batch_size"], gap[:, t, ri], o, log_y=False)),
                "acc_gap": ci_finite(np.log(2) * seed_slopes(a["batch_size"], agap[:, t, ri], o, log_y=False))}
    out["law"] = {f"{target:g}": {"sensitivity": law_fits(cfg.grid_batch_sizes, a["batch_size"], a["lr"], a["sensitivity"][:, t],
                                                          ok[:, t])} for t, target in enumerate(targets)}
    # within each rule (at the batch sizes it trains at), after centring by batch size and by seed (the
    # design's factors move both)
    out["spearman_sensitivity_gap"] = {f"{target:g}": {rule: within_cells(*(v[trained[:, ri], t, ri] for v in (
        a["sensitivity"], gap, ok))) for ri, rule in enumerate(rules)} for t, target in enumerate(targets)}
    # true vs random labels on the same images
    la = {k[6:]: v for k, v in a.items() if k.startswith("label_")}
    lgap = la["test_loss"] - la["train_loss"]                                  # [Bl, T, L, S]
    lagap = 100 * (la["train_acc"] - la["test_acc"])                           # the error gap, in points
    lok = la["reached"].astype(bool)
    labels = r.summary["labels"]
    out["labels"] = {"subset": cfg.label_subset, "max_epochs": cfg.label_max_epochs, "rows": [], "spearman": {},
                     "contrast": {}}
    for t, target in enumerate(targets):
        for li, lab in enumerate(labels):
            for b, batch_size in enumerate(la["batch_size"]):
                sl = (b, t, li)
                out["labels"]["rows"].append({
                    "target": target, "labels": lab, "batch_size": int(batch_size), "reached": int(lok[sl].sum()),
                    "epochs": nonneg_ci(la["epochs"][sl]), "train_loss": nonneg_ci(la["train_loss"][sl]),
                    "test_acc": ci_reached(la["test_acc"][sl], lok[sl], acc_test_ci),
                    "loss_gap": ci_reached(lgap[sl], lok[sl]), "acc_gap": ci_reached(lagap[sl], lok[sl]),
                    "sensitivity": ci_reached(la["sensitivity"][sl], lok[sl], nonneg_ci)})
        sens = la["sensitivity"][:, t]
        out["labels"]["spearman"][f"{target:g}"] = {
            lab: {"loss_gap": within_cells(sens[:, li], lgap[:, t, li], lok[:, t, li]),
                  "acc_gap": within_cells(sens[:, li], lagap[:, t, li], lok[:, t, li])} for li, lab in enumerate(labels)}
        # across the two conditions: two separated clusters, so a contrast (random - true), paired by batch and seed
        out["labels"]["contrast"][f"{target:g}"] = label_contrast(sens, lgap[:, t], lagap[:, t], lok[:, t],
                                                                   labels.index("random"), labels.index("true"))
    out["labels"]["per_seed"] = {f"{target:g}/{lab}": {
        "sensitivity": [[rnd(v) for v in row] for row in la["sensitivity"][:, t, li]],
        "loss_gap": [[rnd(v) for v in row] for row in lgap[:, t, li]],
        "reached": [[float(v) for v in row] for row in lok[:, t, li]]}
        for t, target in enumerate(targets) for li, lab in enumerate(labels)}
    out["labels"]["batch_sizes"] = [int(b) for b in la["batch_size"]]
    return out


def within_cells(x, y, ok) -> dict:
    """Spearman of x and y [B, S] (batch sizes x seeds) after centring by batch size and by seed
    (`stats.centred_spearman_ci`, seeds resampled), over the seeds that reached the target at every batch
    size; undefined below 3 such seeds."""
    full = np.asarray(ok, bool).all(0)
    if full.sum() < 3:
        return {"rho": None, "ci": [None, None], "n": int(full.sum()), "points": int(full.sum() * len(x))}
    d = centred_spearman_ci(np.asarray(x)[:, full].T, np.asarray(y)[:, full].T)
    return sp_round(d) | {"points": d["points"]}


def label_contrast(sens, gap, agap, ok, rand: int, true: int) -> dict:
    """Random against true labels, paired by batch size and seed ([B, L, S] arrays, where both reached):
    per seed, the geometric mean over batch sizes of the sensitivity ratio and the mean differences of the
    loss and error gaps; then their intervals over seeds."""
    both = ok[:, rand] & ok[:, true]
    seeds = both.any(0)
    if seeds.sum() < 2:
        return {"sensitivity_ratio": None, "loss_gap": None, "acc_gap": None, "n": int(seeds.sum())}
    per = lambda v: np.array([v[both[:, s], s].mean() for s in np.flatnonzero(seeds)])
    return {"sensitivity_ratio": rounded(geometric_ci(np.exp(per(np.log(sens[:, rand] / sens[:, true]))))),
            "loss_gap": ci(per(gap[:, rand] - gap[:, true])), "acc_gap": ci(per(agap[:, rand] - agap[:, true])),
            "n": int(seeds.sum())}


def c_batch_sweep(r, cfg) -> dict[str, Check]:
    a = r.arrays
    out, trained = {}, trained_cells(cfg, a["batch_size"])
    for t, target in enumerate(cfg.targets):
        for ri, rule in enumerate(cfg.lr_rules):
            for b, batch_size in enumerate(a["batch_size"]):
                if not trained[b, ri]:
                    continue
                where = f"[{rule},target={target:g},batch_size={int(batch_size)}]"
                out[f"test_acc{where}"] = Check("1-3d/test_acc", "lin", pct(a["test_acc"][b, t, ri]),
                                                one_sample(None, TEST))
                for k in ("train_loss", "sensitivity", "epochs"):
                    v = vals(a[k][b, t, ri])
                    out[f"{k}{where}"] = Check(f"1-3d/{k}", "log", v, one_count(v) if k == "epochs" else 0.0)
        for li, lab in enumerate(LABELS):
            for b, batch_size in enumerate(a["label_batch_size"]):
                where = f"[{lab} labels,target={target:g},batch_size={int(batch_size)}]"
                for k in ("train_loss", "sensitivity", "epochs"):
                    v = vals(a[f"label_{k}"][b, t, li])
                    out[f"{k}{where}"] = Check(f"1-3d/{k}", "log", v, one_count(v) if k == "epochs" else 0.0)
    return out


def block_batch_sweep(h: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    head = ["target", "lr rule", "batch", "lr", "reached", "epochs", "test acc (%)", "loss gap", "acc gap (points)",
            "sensitivity"]
    t1 = md_table(head, [
        [f"{c['target']:g}", c["rule"], c["batch_size"], f"{c['lr']:g}", f"{c['reached']}/{h['seeds']}",
         fmt_m(c["epochs"], 1), fmt_m(c["test_acc"]), fmt_m(c["loss_gap"], 3), fmt_m(c["acc_gap"]),
         fmt_m(c["sensitivity"], 3)] for c in h["cells"]])
    t2 = md_table(["target / rule", "slope of log sensitivity on log batch", "loss gap per doubling of batch",
                   "acc gap per doubling (points)"], [
        [k, fmt_slope(v["sensitivity"]), fmt_slope(v["loss_gap"], 4), fmt_slope(v["acc_gap"])]
        for k, v in h["slopes"].items()])
    lab = h["labels"]
    t3 = md_table(["target", "labels", "batch", "reached", "epochs", "test acc (%)", "loss gap", "error gap (points)",
                   "sensitivity"], [
        [f"{row['target']:g}", row["labels"], row["batch_size"], f"{row['reached']}/{h['seeds']}", fmt_m(row["epochs"], 1),
         fmt_m(row["test_acc"]), fmt_m(row["loss_gap"], 3), fmt_m(row["acc_gap"]), fmt_m(row["sensitivity"], 3)]
        for row in lab["rows"]])
    t4 = md_table(["target", "labels", "Spearman(sensitivity, loss gap), centred", "Spearman(sensitivity, error gap), centred"],
                  [[t, name, _fmt_within(v["loss_gap"]), _fmt_within(v["acc_gap"])]
                   for t, s in lab["spearman"].items() for name, v in s.items()])
    t5 = md_table(["target", "sensitivity, random / true", "loss gap, random - true", "error gap, random - true (points)"],
                  [[t, fmt_m(c["sensitivity_ratio"]), fmt_m(c["loss_gap"], 3), fmt_m(c["acc_gap"])]
                   for t, c in lab["contrast"].items()])
    return (t1 + "\n\n" + t2 + law_table(h.get("law")) +
            f"\n\nEvery model kept the first time its training loss (whole training set) reached each target (at most "
            f"{h['max_epochs']} epochs; 'reached' counts the seeds that did; the others are left out of the slopes). "
            f"Learning rate {h['lr']:g}, fixed or scaled linearly with the batch from batch {h['ref_batch']}. "
            f"Over the seeds (of {h['seeds']}) that reached the target (epochs and training loss: over all), "
            f"{BOUNDED_INTERVALS}. Slopes: least squares per seed over the batch "
            "sizes it reached, then the t-interval over seeds. Spearman(sensitivity, loss gap) within each learning-rate "
            "rule, after centring by batch size and by seed (the batch size moves both; so does the initialisation), "
            "with a bootstrap that resamples seeds: " +
            "; ".join(f"target {t}: " + ", ".join(f"{rule} lr {_fmt_within(v)}" for rule, v in d.items())
                      for t, d in h["spearman_sensitivity_gap"].items()) +
            f".\n\nTrue vs random labels on the same {lab['subset']:,} training images (test labels true), "
            f"learning rate {h['lr']:g}, at most {lab['max_epochs']} epochs:\n\n" + t3 +
            "\n\nWithin each label condition, after centring by batch size and by seed (bootstrap over seeds; "
            "only seeds that reached the target at every batch size):\n\n" + t4 +
            "\n\nAcross the conditions the models form two separated clusters, so a correlation over both would "
            "restate their difference; the difference itself, paired by batch size and seed (per seed: the geometric "
            "mean over batch sizes of the ratio, the mean of the differences; then the interval over seeds):\n\n" + t5 +
            _novak_tests(h))


def _fmt_within(d: dict) -> str:
    return fmt_sp(d) + (f", {d['points']} points" if d.get("points") else "")


def _novak_tests(h: dict) -> str:
    """What the numbers say about Novak et al.'s claim, per target (generated)."""
    lines = ["\n\n**What each comparison tests** (interval, and where it lies):\n"]
    for t, sp in h["labels"]["spearman"].items():
        c = h["labels"]["contrast"][t]
        ratio = c["sensitivity_ratio"]
        parts = [f"- training loss {t}: within true labels, centred Spearman(sensitivity, loss gap) "
                 f"{where(fmt_sp(sp['true']['loss_gap']), sign_of_rho(sp['true']['loss_gap']))}, within random labels "
                 f"{where(fmt_sp(sp['random']['loss_gap']), sign_of_rho(sp['random']['loss_gap']))}; random against true "
                 f"labels: sensitivity x {fmt_m(ratio)}"
                 + ("" if ratio is None else f" ({'above 1' if ratio['lo'] > 1 else 'below 1' if ratio['hi'] < 1 else 'contains 1'})")
                 + f", loss gap {where(fmt_m(c['loss_gap'], 3), sign_of(c['loss_gap']) if c['loss_gap'] else 'undefined')}"]
        fixed, linear = h["slopes"].get(f"fixed/{t}"), h["slopes"].get(f"linear/{t}")
        if fixed and linear:
            parts.append(f"; sensitivity on batch size (log-log slope), fixed lr {where(fmt_slope(fixed['sensitivity']), sign_of(fixed['sensitivity']))}"
                         f", linear lr {where(fmt_slope(linear['sensitivity']), sign_of(linear['sensitivity']))}"
                         f"; loss gap per doubling, fixed lr "
                         f"{where(fmt_slope(fixed['loss_gap'], 4), sign_of(fixed['loss_gap']))}, linear lr "
                         f"{where(fmt_slope(linear['loss_gap'], 4), sign_of(linear['loss_gap']))}; accuracy gap per "
                         f"doubling, fixed lr {where(fmt_slope(fixed['acc_gap']), sign_of(fixed['acc_gap']))}, linear lr "
                         f"{where(fmt_slope(linear['acc_gap']), sign_of(linear['acc_gap']))}")
        lines.append("".join(parts) + ".")
    return "\n".join(lines)


def summary_batch_sweep(h: dict) -> str:
    t = f"{h['targets'][-1]:g}"
    s, c = h["labels"]["spearman"][t], h["labels"]["contrast"][t]
    return (f"at training loss {t}: log-log slope of sensitivity on batch, fixed lr "
            f"{slope_of(h['slopes'], f'fixed/{t}', 'sensitivity')}, linearly scaled lr "
            f"{slope_of(h['slopes'], f'linear/{t}', 'sensitivity')}; on one image set, random against true labels: "
            f"sensitivity x {fmt_m(c['sensitivity_ratio'])}, loss gap {fmt_m(c['loss_gap'], 3)}; Spearman(sensitivity, "
            f"loss gap) within a condition, centred by batch and seed: true {fmt_sp(s['true']['loss_gap'])}, random "
            f"{fmt_sp(s['random']['loss_gap'])}")


BATCH_SWEEP = Experiment(
    "1-3d", "batch sweep", "1-3d_flatness_sensitivity.ipynb", BatchSweepConfig, BATCH_SWEEP_PROFILES,
    key="", compute=None, plan=batch_sweep_units, assemble=assemble_batch_sweep,
    headline=h_batch_sweep, block=block_batch_sweep, checks=c_batch_sweep, summary=summary_batch_sweep,
    published=("Novak et al. 2018", "input-Jacobian norm grows with the generalization gap; large batches and "
                                    "random labels raise it"))
