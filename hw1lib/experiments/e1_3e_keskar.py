"""1-3e, part 2: Keskar et al.'s (2017) network F1 trained their way, and our 1-3d network trained the same
way (the controlled variation): at their stopping rule and at a matched loss, with the mechanism test
(sharpness again after rescaling the weights that feed each batch norm). Its units are 1-3e's."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import cache
from ..errors import ConfigError
from ..headline import (Check, TEST, TRAIN, acc_test_ci, fmt_interval, fmt_m, md_table, nonneg_ci, one_sample, pct,
                        pct_ci, plural, rnd, sig2, vals)
from ..stats import compare_log

@dataclass(frozen=True)
class KeskarConfig:
    """Keskar et al.'s (2017) MNIST setup: network F1, Adam (their rate, Keras's default 1e-3), batch 256
    against 10% of the training set, trained until the training loss ceases to improve; and, as the controlled
    variation, our 1-3d MLP trained the same way. Both are also kept at 1-3d's lowest loss target."""
    networks: tuple[str, ...] = ("f1", "mlp")
    regimes: tuple[str, ...] = ("small", "large")
    small_batch: int = 256
    large_percent: int = 10               # the large batch: this percentage of the training set
    lr: float = 1e-3
    patience: int = 5                     # epochs without a lower training loss that stop a run
    max_epochs: int = 30                  # the cap, if the rule has not stopped it before
    target_loss: float = 0.05             # the matched-loss comparison (1-3d's lowest target)
    f1_seeds: tuple[int, ...] = (0, 1, 2)
    mlp_hidden: tuple[int, ...] = (64, 64)
    mlp_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    f1_width: int = 512                   # F1's hidden width (512: the paper's; smaller only in the smoke test)
    rescale: tuple[float, ...] = (0.5, 2.0)   # layers before F1's batch norms scaled by these: sharpness again
    train_subset: int | None = None
    device: str = "auto"

    def check(self) -> None:
        for field, allowed in (("networks", ("f1", "mlp")), ("regimes", ("small", "large"))):
            bad = sorted(set(getattr(self, field)) - set(allowed))
            if bad:
                raise ConfigError(f"KeskarConfig.{field}: unknown {', '.join(bad)}; choose from {', '.join(allowed)}.")
        if self.large_percent > 100:
            raise ConfigError("KeskarConfig.large_percent: at most 100.")


def keskar_parts(parts: list[cache.Result]) -> tuple[dict, dict]:
    """The Keskar units' arrays as keskar_{network}_{regime}_{metric}, and each run's batch size and size."""
    arrays, runs = {}, {}
    for p in parts:
        n, r = p.summary["network"], p.summary["regime"]
        arrays |= {f"keskar_{n}_{r}_{k}": v for k, v in p.arrays.items()}
        runs[f"{n}_{r}"] = {"batch_size": p.summary["batch_size"], "params": p.summary["params"]}
    return arrays, runs


KESKAR_PUBLISHED = {"sharpness_small": 1.23, "sharpness_large": 205.14, "test_acc_small": 98.03,
                    "test_acc_large": 97.81}   # Keskar et al. 2017, Tables 2 and 3 (network F1, epsilon 1e-3)


def _h_keskar(a, runs: dict, k: KeskarConfig) -> dict:
    """Per network and regime, at the matched loss (row 0) and at the stopping
    rule (row 1): sharpness at the first epsilon (L-BFGS-B, Keskar's maximiser),
    accuracies, epochs; the large/small ratios."""
    out = {"published": KESKAR_PUBLISHED, "target_loss": k.target_loss, "patience": k.patience,
           "max_epochs": k.max_epochs, "lr": k.lr, "runs": {}, "ratios": {}}
    conds = ("matched", "stop")
    for key, info in runs.items():
        p = f"keskar_{key}_"
        run = {"batch_size": info["batch_size"], "params": info["params"]}
        for c, cond in enumerate(conds):
            run[cond] = {"reached": int(a[p + "reached"][c].sum()), "n": int(a[p + "reached"].shape[1]),
                         "epochs": nonneg_ci(a[p + "epochs"][c]), "train_loss": nonneg_ci(a[p + "train_loss"][c]),
                         "train_acc": pct_ci(a[p + "train_acc"][c], k.train_subset or TRAIN),
                         "test_acc": acc_test_ci(a[p + "test_acc"][c]),
                         "sharpness_lbfgsb": nonneg_ci(a[p + "sharpness_lbfgsb"][c]),
                         "per_seed_sharpness_lbfgsb": [rnd(v) for v in a[p + "sharpness_lbfgsb"][c]]}
            if p + "weight_norms" in a:        # per layer, the mean over seeds of each Linear weight's norm
                run[cond]["weight_norms"] = [rnd(v) for v in a[p + "weight_norms"][c].mean(0)]
        run["rule_met"] = [bool(v) for v in a[p + "reached"][1]]      # per seed: did the stopping rule fire
        if p + "sharpness_rescaled" in a and np.isfinite(a[p + "sharpness_rescaled"]).all():
            run["rescaled"] = {f"{f:g}": nonneg_ci(v) for f, v in zip(k.rescale, a[p + "sharpness_rescaled"])}
        out["runs"][key] = run
    for net in sorted({key.split("_")[0] for key in runs}):   # sorted: a set's order varies between processes
        if f"{net}_small" in runs and f"{net}_large" in runs:
            # at the matched loss the ratio is a matched comparison only if every run of both regimes got there
            met = (a[f"keskar_{net}_large_reached"][0].all() and a[f"keskar_{net}_small_reached"][0].all())
            out["ratios"][net] = {cond: rnd(np.exp(np.log(a[f"keskar_{net}_large_sharpness_lbfgsb"][c]).mean()
                                                   - np.log(a[f"keskar_{net}_small_sharpness_lbfgsb"][c]).mean()))
                                  if cond == "stop" or met else None for c, cond in enumerate(conds)}
    out["ratios"]["published"] = rnd(KESKAR_PUBLISHED["sharpness_large"] / KESKAR_PUBLISHED["sharpness_small"])
    return out


def c_keskar(a, runs: dict) -> dict[str, Check]:
    """Each run's sharpness and test accuracy, at the matched loss and at the stopping rule."""
    out = {}
    for key in runs:
        for c, cond in enumerate(("matched", "stop")):
            # at the stopping rule's point: the epoch the rule fires at moves with the last bits
            out[f"keskar {key}/sharpness_lbfgsb[{cond}]"] = Check(
                "1-3e/keskar_sharpness", "log", vals(a[f"keskar_{key}_sharpness_lbfgsb"][c]), chaotic=cond == "stop")
            out[f"keskar {key}/test_acc[{cond}]"] = Check("1-3e/keskar_test_acc", "lin",
                                                          pct(a[f"keskar_{key}_test_acc"][c]), one_sample(None, TEST))
    return out


def block_keskar(kf: dict, eps: float) -> str:
    """The Keskar comparison's markdown (its table, the published values, the ratios, the mechanism)."""
    net_names = {"f1": "F1 (Keskar)", "mlp": "784-64-64-10 (1-3d)"}
    rows = []
    for key, run in kf["runs"].items():
        net, regime = key.split("_")
        for cond in ("stop", "matched"):
            v = run[cond]
            rows.append([net_names.get(net, net), f"{regime} ({run['batch_size']:,})",
                         "their stopping rule" if cond == "stop" else f"training loss {kf['target_loss']:g}",
                         f"{v['reached']}/{v['n']}", fmt_m(v["epochs"], 1), fmt_m(v["train_loss"], 4),
                         fmt_m(v["test_acc"]), fmt_m(v["sharpness_lbfgsb"])])
    t3 = md_table(["network", "batch", "kept at", "rule met", "epochs", "train loss", "test acc (%)",
                   f"sharpness eps {eps:g}, L-BFGS-B"], rows)
    pub = kf["published"]
    mech = _keskar_mechanism(kf)
    ratios = "; ".join(f"{net_names.get(n, n)}: {sig2(r['stop'])} at their stopping rule (or the cap), "
                       + (f"{sig2(r['matched'])} at loss {kf['target_loss']:g}" if r["matched"] is not None else
                          f"none at loss {kf['target_loss']:g} (a run missed it: not a matched comparison)")
                       for n, r in kf["ratios"].items() if n != "published")
    return (f"**Keskar et al.'s network F1** (Adam, lr {kf['lr']:g}, batch 256 vs 10% of the training set), trained "
            f"until the training loss has not improved for {plural(kf['patience'], 'epoch')} (their stopping rule; at most "
            f"{kf['max_epochs']} epochs: 'rule met' says how many stopped by the rule), and the same runs kept when "
            f"their training loss first reached {kf['target_loss']:g}; beside it our 1-3d network trained the same "
            "way (the controlled variation):\n\n" + t3 +
            f"\n\nKeskar et al. report sharpness {pub['sharpness_small']} (small batch) vs {pub['sharpness_large']} "
            f"(large), a ratio of {kf['ratios']['published']}, and test accuracy {pub['test_acc_small']}% vs "
            f"{pub['test_acc_large']}%. Large/small ratio of the geometric means of L-BFGS-B sharpness here: {ratios}." + mech)


def _keskar_mechanism(kf: dict) -> str:
    """Ratios with their log-scale intervals, the runs that met the rule, sharpness with BN inputs rescaled."""
    txt = "".join(f" {net_name}: ratio of geometric means at the stopping rule (or the cap) {g}." for net_name, g in (
        (n.upper() if n == "f1" else n, _gmean_ratio(kf, n)) for n in kf["ratios"] if n != "published") if g)
    met = "; ".join(f"{k}: " + "".join("yn"[not m] for m in r["rule_met"]) for k, r in kf["runs"].items() if "rule_met" in r)
    txt += f" Stopping rule met, per seed (y/n): {met}." if met else ""
    by_c = {key: sorted({**run["rescaled"], "1": run["stop"]["sharpness_lbfgsb"]}.items(), key=lambda kv: float(kv[0]))
            for key, run in kf["runs"].items() if "rescaled" in run}
    rows = [[key, *[fmt_interval(v, 2, spec="g", n=False) for _, v in cs],
             " / ".join(f"{w:.3g}" for w in kf["runs"][key]["stop"]["weight_norms"])]
            for key, cs in by_c.items()]
    if rows:
        factors = [c for c, _ in next(iter(by_c.values()))]
        txt += ("\n\n**The mechanism, without new training.** With batch normalisation the loss does not change "
                "when the layers feeding it are scaled, but the box eps (|x| + 1) does: larger weights make the "
                "absolute term relatively smaller. Sharpness at the stopping rule with those layers scaled by c "
                "(c = 1: as trained), and each Linear layer's weight norm:\n\n" + md_table(
                    ["run", *[f"c = {f}" for f in factors], "weight norms by layer (mean over seeds)"], rows))
    return txt


def _gmean_ratio(kf: dict, net: str) -> str | None:
    """Large/small sharpness at the stopping rule: ratio of geometric means, Welch's log interval (or None,
    also where the design left out either regime of `net`)."""
    if f"{net}_large" not in kf["runs"] or f"{net}_small" not in kf["runs"]:
        return None
    large, small = (kf["runs"][f"{net}_{r}"]["stop"]["per_seed_sharpness_lbfgsb"] for r in ("large", "small"))
    if min(len(large), len(small)) < 2 or min(large + small) <= 0:
        return None
    g = compare_log(large, small)
    return (f"{sig2(10 ** g['diff'])} [{sig2(10 ** g['lo'])}, {sig2(10 ** g['hi'])}] (Welch, log scale; "
            f"n = {g['n'][0]}, {g['n'][1]}; p = {g['p']:.2g})")
