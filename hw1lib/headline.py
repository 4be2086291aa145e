"""What every experiment's headline numbers, generated text and checked metrics share.

Each experiment module declares three functions next to its computation
(see `hw1lib.experiments.common.Experiment`):
- headline(result, cfg) -> dict: its numbers, rounded (`rnd`) into
  `figures/results.json`;
- block(headline) -> str: the markdown generated from that dict, for the
  README, RESULTS.md and its notebook;
- checks(result, cfg) -> {name: Check}: its per-seed values that
  `python -m hw1lib.verify` compares across machines.
This module holds their formatting helpers; it computes nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math

import numpy as np

from .stats import geometric_ci, mean_ci, proportion_ci

TRAIN, TEST = 60_000, 10_000    # MNIST's splits
DATASET_NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}


# ------------------------------------------------------------------ numbers
def fmt_interval(d: dict | None, digits: int = 2, scale: float = 1.0, key: str | None = None, spec: str = "f",
                 n: bool = True) -> str:
    """'99.42 [98.10, 99.80] (n = 5)' from an interval dict ({mean or gmean,
    lo, hi, n}: proportion_ci, pos_ci, geometric_ci, rounded or not; the
    centre is `key`, by default the geometric mean where the dict has one),
    times `scale` (e.g. 100 for percent), in format `spec` ('f' or 'e'),
    without '(n = ...)' when `n` is False; just the value where there is no
    interval (a bound None or NaN); 'n/a' for no result."""
    if d is None:
        return "n/a"
    key = key or ("gmean" if "gmean" in d else "mean")

    def f(v):
        return f"{v * scale:.{digits}{spec}}"
    tail = f" (n = {d['n']})" if n else ""
    if d["lo"] is None or d["hi"] is None or not (np.isfinite(d["lo"]) and np.isfinite(d["hi"])):
        return f(d[key]) + tail
    return f"{f(d[key])} [{f(d['lo'])}, {f(d['hi'])}]" + tail


def fmt_ci(mean: float, half: float, digits: int = 2) -> str:
    """'98.14 ± 0.05' (or just the mean where there is no interval)."""
    if half is None or not np.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def rnd(x: float, sig: int = 4) -> float | None:
    """A float rounded to `sig` significant digits (a stable JSON file); NaN -> None."""
    x = float(x)
    return None if not np.isfinite(x) else float(f"{x:.{sig}g}")


def rounded(d: dict) -> dict:
    """An interval dict (stats.geometric_ci, compare_log, ...) with its float values rounded by `rnd`."""
    return {k: (rnd(v) if isinstance(v, float) else v) for k, v in d.items()}


def ci(x) -> dict:
    """{mean, ci95, n} of the seeds in x [S]."""
    m, h = mean_ci(np.asarray(x, dtype=float))
    return {"mean": rnd(m), "ci95": rnd(h), "n": int(np.asarray(x).shape[-1])}


def pct_ci(p, n_items: int) -> dict:
    """stats.proportion_ci of accuracies p in [0, 1] (each of n_items), in percent, rounded."""
    c = proportion_ci(p, n_items)
    return {"mean": rnd(100 * c["mean"]), "lo": rnd(100 * c["lo"]), "hi": rnd(100 * c["hi"]), "n": c["n"]}


def pos_ci(x) -> dict:
    """Positive values x [S] (losses, errors): their geometric mean and its log-scale interval
    (stats.geometric_ci), rounded: {gmean, lo, hi, n}."""
    return rounded(geometric_ci(np.ravel(np.asarray(x, dtype=float))))


def nonneg_ci(x) -> dict:
    """Values that cannot be negative (losses, epochs, barriers, distances,
    sharpness): `pos_ci` (the geometric mean and the t-interval of the mean
    logarithm) when every value is above 0, {gmean, lo, hi, n}; with a 0 among
    them, where no logarithm exists, the mean and its t-interval with the lower
    end clipped at 0, {mean, lo, hi, n}. Rounded."""
    x = np.asarray(x, dtype=float).ravel()
    if (x < 0).any():
        raise ValueError("nonneg_ci takes values >= 0.")
    if (x > 0).all():
        return pos_ci(x)
    m, h = mean_ci(x)
    return {"mean": rnd(m), "lo": rnd(max(0.0, m - h)), "hi": rnd(m + h), "n": int(x.size)}


# How every interval of a bounded quantity is formed (stats.proportion_ci, pos_ci, nonneg_ci),
# for the blocks that mix them with signed ones.
BOUNDED_INTERVALS = ("accuracies as mean [95% t-interval, cut at 0 and 100]; quantities that cannot be negative "
                     "(losses, epochs, barriers, distances, sensitivity, sharpness, eigenvalues) as geometric mean [95% "
                     "t-interval of the mean logarithm, mapped back; where a value is 0: mean [t-interval clipped at "
                     "0]]; signed ones (gaps, rises, differences, slopes) as mean ± 95% t-interval")


def sp_round(d: dict) -> dict:
    """A Spearman result {rho, ci, n}, rounded."""
    return {"rho": rnd(d["rho"]), "ci": [rnd(c) for c in d["ci"]], "n": d["n"]}


def correlation(fn, *samples) -> dict:
    """sp_round(fn(*samples)) for a rank correlation with its bootstrap interval
    (`stats.spearman_ci`, `stats.partial_spearman_ci`). Where it is undefined
    (fewer than 3 points, or x or y constant: one batch size, one seed) rho and
    its interval are None, which the text says, instead of an error."""
    n = len(samples[0])
    if n < 3 or any(np.unique(np.asarray(s)).size < 2 for s in samples[:2]):
        return {"rho": None, "ci": [None, None], "n": int(n)}
    return sp_round(fn(*samples))


# ------------------------------------------------------------------ text
def escape(cell: Any) -> str:
    """A markdown table cell: a `|` in it would end the cell, so it is escaped."""
    return str(cell).replace("|", "\\|")


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; every cell and header escaped (`escape`)."""
    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_m(d: dict | None, digits: int = 2) -> str:
    """A {mean, ci95} as 'mean ± half-width', a bounded interval {mean or gmean,
    lo, hi} (pct_ci, pos_ci, nonneg_ci, geometric_ci) as 'mean [lo, hi]', to
    `digits` decimals ('n/a' where there is no value: no model met the
    condition)."""
    key = "gmean" if d is not None and "gmean" in d else "mean"
    if d is None or d[key] is None:
        return "n/a"
    if "lo" in d:
        return fmt_interval(d, digits, key=key, n=False)
    return fmt_ci(d["mean"], d["ci95"] if d["ci95"] is not None else float("nan"), digits)


def sig2(x: float) -> str:
    """x to two significant figures, without a trailing exponent where none is needed ('1100', '0.0042')."""
    return f"{float(f'{x:.2g}'):g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def fmt_sp(d: dict) -> str:
    if d["rho"] is None:
        return f"undefined (n = {d['n']})"
    return f"{d['rho']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}] (n = {d['n']})"


# ------------------------------------------------------------------ checked metrics
@dataclass(frozen=True)
class Check:
    """One checked metric: `values` per seed (or run), `scale` "lin" or "log"
    (log10 before comparing), `family` the group whose measured machine spread
    sets its machine tolerance (e.g. "1-3b/test_acc" for every width), and
    `resolution` the smallest change it can show (an accuracy: one sample of
    the evaluated set, 100 / n points), which no tolerance goes below.
    `chaotic`: its value jumps between discrete outcomes under a change of
    the last bits (a stopping rule that fires an epoch earlier or later), so
    no machine spread bounds it: `verify` checks it only where it has seeds
    (n >= 2) to take a spread from, and says so where it has one."""
    family: str
    scale: str
    values: tuple[float, ...]
    resolution: float = 0.0
    chaotic: bool = False


def one_sample(n: int | None, full: int) -> float:
    """One sample of a split of n images (None: the whole split of `full`), in percentage points."""
    return 100 / (n or full)


def one_count(values) -> float:
    """The smallest change of a count's mean on the log scale: one more count
    (an epoch) on one of the n seeds moves the mean by 1/n, log10(1 + 1/sum)."""
    total = float(np.nansum(np.ravel(values)))
    return math.log10(1 + 1 / total) if total > 0 else 0.0


def pct(x) -> list[float]:
    return [100 * float(v) for v in np.ravel(x)]


def vals(x) -> list[float]:
    return [float(v) for v in np.ravel(x)]


# ------------------------------------------------------------------ shared by several experiments' headlines
def seed_slopes(x, y, ok=None, log_y: bool = True) -> np.ndarray:
    """The least-squares slope of (log) y against log x, one per seed: x [B],
    y [B, S], ok [B, S] which points count (a model that reached its target).
    NaN for a seed with fewer than three points that count."""
    x, y = np.log(np.asarray(x, float)), np.asarray(y, float)
    y = np.log(y) if log_y else y
    ok = np.ones(y.shape, bool) if ok is None else np.asarray(ok, bool)
    out = np.full(y.shape[1], np.nan)
    for s in range(y.shape[1]):
        m = ok[:, s] & np.isfinite(y[:, s])
        if m.sum() >= 3:
            out[s] = np.polyfit(x[m], y[m, s], 1)[0]
    return out


def rate_batch_law(batch, lr, y, ok) -> dict:
    """log y = c + a log(batch) + b log(lr), fitted by least squares per seed over the distinct (batch, lr)
    cells it reached (batch [B], lr [B, R]: each learning-rate rule's rate at each batch size; y, ok [B, R, S];
    two rules with one rate at a batch size are one model, counted once), then a, b and a + b with
    t-intervals over seeds, and a + b's one-sample t-test p. Only the ratio lr / batch matters (the noise
    scale of SGD, Smith and Le 2018) if a = -b: a + b = 0. cells: the most distinct cells of a seed."""
    from scipy.stats import ttest_1samp    # here: scipy.stats takes half a second to import
    X = np.log(np.broadcast_to(np.asarray(batch, float)[:, None], np.shape(lr))).ravel()
    L = np.log(np.asarray(lr, float)).ravel()
    y, ok = np.asarray(y, float), np.asarray(ok, bool)
    coef, cells = np.full((y.shape[-1], 2), np.nan), 0
    for s in range(y.shape[-1]):
        ys = y[..., s].ravel()
        idx = np.flatnonzero(ok[..., s].ravel() & np.isfinite(ys) & (ys > 0))
        _, first = np.unique(np.round(np.column_stack([X[idx], L[idx]]), 9), axis=0, return_index=True)
        idx = idx[np.sort(first)]
        cells = max(cells, idx.size)
        A = np.column_stack([np.ones(idx.size), X[idx], L[idx]])
        if idx.size >= 4 and np.linalg.matrix_rank(A) == 3:
            coef[s] = np.linalg.lstsq(A, np.log(ys[idx]), rcond=None)[0][1:]
    both = coef.sum(1)[np.isfinite(coef.sum(1))]
    p = float(ttest_1samp(both, 0.0).pvalue) if both.size >= 2 else None
    return {"a": ci_finite(coef[:, 0]), "b": ci_finite(coef[:, 1]),
            "a_plus_b": ci_finite(coef.sum(1)) | {"p": None if p is None else rnd(p, 2)}, "cells": int(cells)}


def law_fits(grid_batch_sizes, batch, lr, y, ok) -> dict:
    """`rate_batch_law` over every distinct (batch, lr) cell, and over the grid alone (the batch sizes
    where every rate trains: 1-3d's 3 rates x 3 batch sizes); y, ok [B, R, S]."""
    g = np.isin(np.asarray(batch), grid_batch_sizes)
    grid = {"grid": rate_batch_law(np.asarray(batch)[g], np.asarray(lr)[g], np.asarray(y)[g], np.asarray(ok)[g])}
    return grid if g.all() else {"all": rate_batch_law(batch, lr, y, ok)} | grid    # (all = grid: once)


def law_table(law: dict | None) -> str:
    """The fitted rate-batch law ({target: {measure: law_fits}}) as a table, or nothing."""
    if not law:
        return ""
    p = lambda d: "" if d.get("p") is None else f", p = {d['p']:.2g}"  # noqa: E731
    return ("\n\nlog y = c + a log(batch) + b log(lr), fitted per seed over the distinct (batch, lr) cells it "
            "reached ('all': both rules at every batch size and the grid; 'grid': the batch sizes where every rate "
            "trains), t-intervals over seeds; only the ratio lr / batch matters if a + b = 0 (p: one-sample t-test "
            "over seeds):\n\n" + md_table(
                ["target", "measure", "cells", "a (batch)", "b (learning rate)", "a + b"],
                [[t, m, f"{k} ({v['cells']})", fmt_slope(v["a"]), fmt_slope(v["b"]),
                  where(fmt_slope(v["a_plus_b"]) + p(v["a_plus_b"]), sign_of(v["a_plus_b"]))]
                 for t, ms in law.items() for m, fits in ms.items() for k, v in fits.items()]))


def sign_of_rho(d: dict) -> str:
    """The same for a rank correlation's bootstrap interval."""
    if d.get("rho") is None:
        return "undefined"
    lo, hi = d["ci"]
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "contains 0"


def fmt_slope(d: dict, digits: int = 2) -> str:
    return "n/a" if d["mean"] is None else f"{fmt_m(d, digits)} (n={d['n']})"


def slope_of(slopes: dict, key: str, measure: str) -> str:
    """fmt_slope of slopes[key][measure] ("rule/target"), or "n/a" where the design has no such rule."""
    return fmt_slope(slopes[key][measure]) if key in slopes else "n/a"


def ci_reached(x, ok, fn=ci) -> dict:
    """fn (ci, or a bounded interval: acc_test_ci, nonneg_ci) over the models that
    reached their target (ok), the others left out of a matched comparison; n
    says how many remain."""
    return ci_finite(np.where(np.asarray(ok, bool), np.asarray(x, float), np.nan), fn)


def ci_finite(x, fn=ci) -> dict:
    """fn (default ci) of the finite values of x (n says how many)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return fn(x) if x.size else {"mean": None, "ci95": None, "n": 0}


def acc_test_ci(p) -> dict:
    """Test accuracies p in [0, 1] (the whole test set) in percent, with their interval (pct_ci)."""
    return pct_ci(p, TEST)


def sign_of(d: dict) -> str:
    """Where a mean's 95% interval lies: "above 0", "below 0", "contains 0"
    (or "undefined": one value, no interval)."""
    if d.get("mean") is None or d.get("ci95") is None:
        return "undefined"
    lo, hi = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    return "above 0" if lo > 0 else "below 0" if hi < 0 else "contains 0"


def where(text: str, place: str) -> str:
    """`text (place)`, or just `text` when the place is undefined (its text says so already)."""
    return text if place == "undefined" else f"{text} ({place})"
