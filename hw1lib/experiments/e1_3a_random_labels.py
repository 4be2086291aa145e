"""1-3a: random labels: the same MLP on true and on randomised labels."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import cache
from ..errors import ConfigError
from ..data import Split, load_mnist, noisy_labels
from ..ensemble import Ensemble
from ..models import count_params, mnist_mlp
from ..headline import (TEST, TRAIN, Check, fmt_m, md_table, one_count, one_sample, pct, pct_ci, plural, rnd,
                        rounded, vals)
from ..stats import crossing, geometric_ci
from ..train import fit_to_targets
from .common import Experiment, Unit


@dataclass(frozen=True)
class RandomLabelsConfig:
    """Zhang et al.'s (2017) randomisation test on MNIST, as in their Figure 1: a
    fixed subset of training images whose labels are each, with probability
    `fraction`, replaced by a uniformly random label (which may equal the true
    one by chance; fraction 1: random labels), over several random labellings
    (`label_draws`) and initialisations (`seeds`, which also set the batch
    order). Every run trains until it fits the labels it is given (training
    accuracy against them >= fit_acc) or for max_epochs; its test accuracy is
    that of the fitted model. The true-label runs (fraction 0) are one per
    seed: there is nothing to draw. Each seed's runs start from the same
    weights and batch order at every fraction and draw (paired)."""
    hidden: tuple[int, ...] = (512, 512)  # 669,706 parameters: enough to memorise
    train_subset: int = 5_000             # the first n training images (a fixed subset)
    test_subset: int | None = None        # first n test images; None = all 10,000
    fractions: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)   # of labels randomised
    label_draws: tuple[int, ...] = (0, 1, 2)     # random labellings (see `draw_labels`)
    seeds: tuple[int, ...] = (0, 1, 2)    # initialisations and batch orders
    fit_acc: float = 0.99                 # "fitted": training accuracy against its labels at least this
    max_epochs: int = 100                 # the cap of a run that has not fitted
    batch_size: int = 128
    lr: float = 1e-3
    device: str = "auto"

    def check(self) -> None:
        f = list(self.fractions)
        if not f or f != sorted(set(f)) or f[0] < 0 or f[-1] > 1:
            raise ConfigError(f"RandomLabelsConfig.fractions = {self.fractions}: distinct, increasing, in [0, 1].")
        if not 0 < self.fit_acc <= 1:
            raise ConfigError(f"RandomLabelsConfig.fit_acc = {self.fit_acc}: a training accuracy in (0, 1].")
        if f[-1] > 0 and not self.label_draws:
            raise ConfigError("RandomLabelsConfig.label_draws: randomised fractions need at least one labelling.")


RANDOM_LABELS_PROFILES = {
    "smoke": dict(hidden=(32,), train_subset=256, fractions=(0.0, 1.0), label_draws=(0,), seeds=(0,), max_epochs=2),
    "quick": dict(train_subset=1_000, test_subset=2_000, fractions=(0.0, 0.5, 1.0), seeds=(0,), max_epochs=30),
    "full": dict(),
}


def draw_labels(y: torch.Tensor, fraction: float, draw: int) -> torch.Tensor:
    """Labelling `draw` at `fraction` randomised: each label replaced with
    probability `fraction` by a uniform one (`data.noisy_labels` with seed
    2 * draw for which labels, 2 * draw + 1 for their values, so no two draws
    share a generator). Within a draw the randomised sets are nested and the
    random values shared: raising the fraction only adds random labels."""
    return noisy_labels(y, fraction, 2 * draw)


FIT_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


def _fit_labels(cfg: RandomLabelsConfig, progress: bool) -> cache.Result:
    """One fraction (cfg.fractions == (f,)): every (draw, seed) run, one
    ensemble whose members have labels of their own, each leaving when it has
    fitted. Arrays [D, S] (D = 1 at fraction 0): epochs, reached, {train,
    test}_{loss,acc} of the fitted (or last) weights, the train metrics against
    the run's own labels; {loss,acc}_curve [E + 1, D, S] after every epoch (NaN
    once a run has left); agreement [D] (labels equal to the true ones)."""
    (f,) = cfg.fractions
    dev = torch.device(cfg.device)
    data = load_mnist(dev)
    train, test = data.train.subset(cfg.train_subset), data.test.subset(cfg.test_subset)
    draws = cfg.label_draws if f > 0 else (None,)
    D, S = len(draws), len(cfg.seeds)
    per_draw = [train.y if d is None else draw_labels(train.y, f, d) for d in draws]
    labels = torch.stack([y for y in per_draw for _ in cfg.seeds])                    # [D * S, n]
    ens = Ensemble(mnist_mlp(cfg.hidden), [s for _ in draws for s in cfg.seeds], dev)
    h, _ = fit_to_targets(ens, Split(train.x, labels), test, targets=[cfg.fit_acc], on="acc",
                          max_epochs=cfg.max_epochs, batch_size=cfg.batch_size, lr=cfg.lr, progress=progress,
                          desc=f"1-3a, {f:.0%} of labels random")
    arrays = {k: h[k][0].reshape(D, S) for k in ("epochs", "reached", *FIT_METRICS)}
    arrays |= {k: h[k].reshape(-1, D, S) for k in ("loss_curve", "acc_curve")}
    arrays["agreement"] = np.array([float((y == train.y).float().mean()) for y in per_draw])
    return cache.Result(arrays, {"params": count_params(ens)})


def random_labels_units(cfg: RandomLabelsConfig) -> list[Unit]:
    """One unit per fraction (its draws and seeds train as one ensemble); the
    true-label unit does not depend on the draws."""
    return [Unit("random_labels_fraction", dataclasses.replace(cfg, fractions=(f,), label_draws=cfg.label_draws
                                                               if f > 0 else ()), _fit_labels)
            for f in cfg.fractions]


def assemble_random_labels(cfg: RandomLabelsConfig, parts: list[cache.Result]) -> cache.Result:
    """Arrays: fractions [F]; epochs, reached, {train,test}_{loss,acc} [F, D, S]
    and {loss,acc}_curve [F, max_epochs + 1, D, S] (NaN after a run left, or
    where no run went on), agreement [F, D]; the true-label runs (fraction 0)
    repeated over the draws (`runs` gives each run once)."""
    D, S, E = max(len(cfg.label_draws), 1), len(cfg.seeds), cfg.max_epochs + 1
    out: dict[str, list] = {}
    for p in parts:
        for k, v in p.arrays.items():
            if k.endswith("_curve"):
                v = np.concatenate([v, np.full((E - len(v), *v.shape[1:]), np.nan)])
            out.setdefault(k, []).append(np.broadcast_to(v, (*v.shape[:-2], D, S)) if k != "agreement"
                                         else np.broadcast_to(v, (D,)))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["fractions"] = np.array(cfg.fractions)
    return cache.Result(arrays, {"params": parts[0].summary["params"]})


def runs(a: dict, key: str, i: int) -> np.ndarray:
    """The values of every run at fraction index i, each run once (fraction 0:
    one per seed; otherwise one per draw and seed)."""
    v = a[key][i]
    return v[0] if a["fractions"][i] == 0 else v.reshape(-1)


# ================================================================== headline numbers, text, checks

ZHANG_SLOWDOWN = "a small constant factor"   # Zhang et al. (2017), CIFAR-10 (their Figure 1b), in words


def fit_times(a: dict, i: int, level: float) -> np.ndarray:
    """Epochs each run at fraction index i took to reach training accuracy
    `level` against its labels, interpolated between epochs (see
    `stats.crossing`); NaN for a run that never did. [D, S]"""
    c = a["acc_curve"][i]                                           # [E + 1, D, S]
    return np.array([[crossing(c[:, d, s], level) for s in range(c.shape[2])] for d in range(c.shape[1])])


def h_random_labels(r, cfg) -> dict:
    a = r.arrays
    n_train, n_test = cfg.train_subset, cfg.test_subset or TEST
    rows = []
    for i, f in enumerate(cfg.fractions):
        # fraction 0: one run per seed; otherwise a table [labellings, seeds] of crossed factors (every seed on
        # every labelling), whose intervals count both spreads (stats.crossed_mean_ci)
        one = (lambda v: v[0]) if f == 0 else (lambda v: v)
        t = one(fit_times(a, i, cfg.fit_acc))
        ok = np.isfinite(t)
        rows.append({"fraction": float(f), "runs": int(t.size), "fitted": int(ok.sum()),
                     "epochs_to_fit": rounded(geometric_ci(t if ok.all() else t[ok])) if ok.any() else None,
                     "epochs_to_fit_per_run": [rnd(v) if np.isfinite(v) else None for v in t.ravel()],
                     "test_acc": pct_ci(one(a["test_acc"][i]), n_test),
                     "train_acc": pct_ci(one(a["train_acc"][i]), n_train),
                     "agreement": rnd(100 * float(a["agreement"][i].mean()))})
    out = {"params": r.summary["params"], "train_subset": cfg.train_subset, "max_epochs": cfg.max_epochs,
           "fit_acc": rnd(100 * cfg.fit_acc), "seeds": len(cfg.seeds), "label_draws": len(cfg.label_draws),
           "rows": rows}
    fr = list(cfg.fractions)
    if fr[0] == 0 and fr[-1] == 1:
        # the slowdown, paired by seed: epochs to fit run (draw d, seed s) on random labels over seed s's
        # true-label run; a table [labellings, seeds] of crossed factors, like the rows above
        t0, t1 = fit_times(a, 0, cfg.fit_acc)[0], fit_times(a, len(fr) - 1, cfg.fit_acc)
        ratio = t1 / t0[None, :]                                         # [labellings, seeds]
        ok = np.isfinite(ratio) & (ratio > 0)
        out["slowdown"] = ({**rounded(geometric_ci(ratio if ok.all() else ratio[ok])),
                            "pairs_fitted": int(ok.sum()), "pairs": int(ratio.size), "published": ZHANG_SLOWDOWN}
                           if ok.any() else None)
        # test accuracy on random labels against chance: one labelling alone can sit off 10% (its class
        # frequencies), so each labelling is shown and the interval counts their spread
        acc = a["test_acc"][-1]                                          # [labellings, seeds]
        chance = pct_ci(acc, n_test)
        out["random_test_acc"] = {"per_draw": [rnd(100 * float(v)) for v in acc.mean(1)], "all": chance,
                                  "contains_chance": bool(chance["lo"] <= 10 <= chance["hi"])}
    return out


def c_random_labels(r, cfg) -> dict[str, Check]:
    n = {"train": one_sample(cfg.train_subset, TRAIN), "test": one_sample(cfg.test_subset, TEST)}
    out = {}
    for i, f in enumerate(cfg.fractions):
        for split in ("train", "test"):
            out[f"{split}_acc[random={f:g}]"] = Check(f"1-3a/{split}_acc", "lin", pct(runs(r.arrays, f"{split}_acc", i)),
                                                      n[split])
        epochs = vals(runs(r.arrays, "epochs", i))
        out[f"epochs[random={f:g}]"] = Check("1-3a/epochs", "log", epochs, one_count(epochs))
    return out


def block_random_labels(rl: dict) -> str:
    """Its generated markdown, from its headline numbers."""
    table = md_table(["labels randomised", "runs fitted", "epochs to fit", "test acc at fit (%)",
                      "train labels equal to the true ones (%)"], [
        [f"{row['fraction']:.0%}", f"{row['fitted']}/{row['runs']}", fmt_m(row["epochs_to_fit"], 1),
         fmt_m(row["test_acc"]), f"{row['agreement']:.1f}"] for row in rl["rows"]])
    text = (f"\n\n{rl['params']:,} parameters, {rl['train_subset']:,} training images. A run has fitted when its "
            f"training accuracy against the labels it trains on reaches {rl['fit_acc']:g}% (within "
            f"{rl['max_epochs']} epochs); epochs to fit are interpolated between epochs (geometric mean of the runs "
            f"that fitted), test accuracy is the fitted model's (the last one's if it did not fit). Brackets: 95% "
            f"intervals, over {plural(rl['seeds'], 'seed')} on the true labels; where labels are randomised, over "
            f"{plural(rl['label_draws'], 'random labelling')} x {plural(rl['seeds'], 'seed')} as crossed factors "
            "(every seed runs on every labelling; two-way random-effects ANOVA, Satterthwaite's degrees of "
            "freedom), so the spread of labellings and of seeds both count. Accuracies: mean and its interval; epochs "
            "and their ratio: geometric mean and the interval of the mean logarithm.")
    sd = rl.get("slowdown")
    if sd is not None:
        text += (f"\n\n**Slowdown** (epochs to fit random labels over true labels, paired by seed): "
                 f"{fmt_m(sd, 2)}, geometric mean of {sd['pairs_fitted']} of {sd['pairs']} pairs "
                 f"(labelling x seed); Zhang et al. (2017) report {sd['published']} on CIFAR-10.")
    ch = rl.get("random_test_acc")
    if ch is not None:
        verdict = " (contains chance, 10%)" if ch["contains_chance"] else " (excludes chance, 10%)"
        text += (f"\n\n**Test accuracy on random labels**, per labelling: "
                 f"{', '.join(f'{v:.2f}' for v in ch['per_draw'])}% (mean of its seeds); all runs "
                 f"{fmt_m(ch['all'])}%{verdict}.")
    return table + text


def summary_random_labels(h: dict) -> str:
    rows = {row["fraction"]: row for row in h["rows"]}
    out = ""
    if h.get("slowdown") is not None:
        out += (f"random labels take {fmt_m(h['slowdown'], 1)} times the epochs of true labels to fit (to "
                f"{h['fit_acc']:g}% training accuracy); ")
    if 1.0 in rows and 0.0 in rows:
        r, t = rows[1.0], rows[0.0]
        out += (f"fitted to {h['fit_acc']:g}% {r['fitted']}/{r['runs']}, test acc at fit {fmt_m(r['test_acc'])}% (chance 10%); "
                f"true labels {fmt_m(t['test_acc'])}%")
    return out


RANDOM_LABELS = Experiment(
    "1-3a", "random labels", "1-3a_random_labels.ipynb", RandomLabelsConfig, RANDOM_LABELS_PROFILES,
    key="", compute=None, plan=random_labels_units, assemble=assemble_random_labels,
    headline=h_random_labels, block=block_random_labels, checks=c_random_labels, summary=summary_random_labels,
    published=("Zhang et al. 2017", "random labels are fitted (to 100% train accuracy; the "
               "column to the left says to what accuracy these runs were), by a small constant factor more "
               "slowly than true labels; test accuracy falls with the fraction of labels randomised, to chance (~10%)"))
