"""Summary statistics the report quotes: means with 95% intervals over seeds,
intervals that respect a quantity's bounds (accuracies in [0, 1], errors
above 0), bootstrap intervals of rank correlations, first crossings of a level.

Every number in a table or a conclusion goes through one of these (tested
against scipy and hand cases in tests/test_stats.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def mean_ci(x, axis: int = -1, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(mean, half-width of the Student-t interval) over `axis`. With one
    sample the half-width is NaN: one seed gives no interval."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    n = x.shape[axis]
    mean = x.mean(axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    sem = x.std(axis, ddof=1) / np.sqrt(n)
    return mean, sem * stats.t.ppf(0.5 + level / 2, n - 1)


def crossed_mean_ci(y, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of its t-interval) of a table y [R, C] whose rows and
    columns are crossed random factors: every seed (column) runs on every
    random labelling (row), so the row means share the seeds and the column
    means share the labellings, and an interval over either alone misses the
    other's spread. Two-way random-effects ANOVA without replication: the
    variance of the grand mean is s_r^2 / R + s_c^2 / C + s_e^2 / (R C), the
    components estimated from the mean squares and truncated at 0; degrees of
    freedom by Satterthwaite. One row or one column: the ordinary t-interval
    over the other (NaN half-width for a single value)."""
    from scipy import stats

    y = np.asarray(y, dtype=float)
    R, C = y.shape
    if R == 1 or C == 1:
        m, h = mean_ci(y.ravel(), level=level)
        return float(m), float(h)
    m = y.mean()
    rows, cols = y.mean(1), y.mean(0)
    ms_r = C * ((rows - m) ** 2).sum() / (R - 1)
    ms_c = R * ((cols - m) ** 2).sum() / (C - 1)
    ms_e = ((y - rows[:, None] - cols[None, :] + m) ** 2).sum() / ((R - 1) * (C - 1))
    # Var(mean) = sum of a_i MS_i / (R C): a row (column) component truncated at 0 drops its mean square and
    # gives back the residual's share
    keep_r, keep_c = int(ms_r > ms_e), int(ms_c > ms_e)
    terms = [(ms_r, R - 1)] * keep_r + [(ms_c, C - 1)] * keep_c
    a_e = 1 - keep_r - keep_c
    var_sum = sum(ms for ms, _ in terms) + a_e * ms_e
    if var_sum <= 0:
        return float(m), 0.0
    df_den = sum(ms ** 2 / df for ms, df in terms) + (a_e * ms_e) ** 2 / ((R - 1) * (C - 1))
    df = var_sum ** 2 / df_den
    return float(m), float(np.sqrt(var_sum / (R * C)) * stats.t.ppf(0.5 + level / 2, df))


def bootstrap_ci(stat: Callable[..., float], *samples, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat(*samples)`, resampling the rows of
    all samples together (paired), with a seeded generator."""
    rng = np.random.default_rng(seed)
    samples = [np.asarray(s) for s in samples]
    n = len(samples[0])
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = stat(*(s[idx] for s in samples))
        if np.isfinite(v):
            values.append(v)
    if not values:          # the statistic is undefined on every resample (constant or empty input)
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


# ---------------------------------------------------------------- bounded quantities
# One rule for the whole report: the number quoted is the centre of the interval printed beside it.
# An error or loss (> 0, spread over decades) is quoted as its geometric mean with the Student-t interval
# of the mean logarithm, mapped back (`geometric_ci`): above 0 and wider upwards, as the spread of a loss
# over seeds is. An accuracy (a proportion of n_items, in [0, 1]) is quoted as its mean with the
# Student-t interval of that mean, cut at 0 and 1 (a handful of seeds near 100% can reach past it); one
# measurement of one model (no seeds) gets Wilson's score interval for its n_items trials.

def wilson_ci(k, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for k successes in n trials (a proportion in
    [0, 1]; inside it even at k = 0 or k = n)."""
    from scipy import stats

    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _as_runs(x) -> np.ndarray:
    """x as a table [R, C] of crossed factors when it is one (both sides > 1), else flat [n]."""
    x = np.asarray(x, dtype=float)
    return x if x.ndim == 2 and min(x.shape) > 1 else x.ravel()


def _centre_and_half(t: np.ndarray, level: float) -> tuple[float, float]:
    """(mean, t-interval half-width) of values t [n], or of a crossed table t [R, C]."""
    return crossed_mean_ci(t, level) if t.ndim == 2 else mean_ci(t, level=level)


def proportion_ci(p, n_items: int | None = None, level: float = 0.95) -> dict:
    """Mean of proportions p [S] (one per seed, each a fraction of n_items), or
    of a table p [R, C] of crossed factors (labellings x seeds, see
    `crossed_mean_ci`), and the t-interval of that mean cut at 0 and 1. One
    run: Wilson's interval for its n_items trials (NaN bounds without
    n_items). Returns {mean, lo, hi, n}."""
    p = _as_runs(p)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("proportion_ci takes proportions in [0, 1] (an accuracy in percent: divide by 100).")
    out = {"mean": float(p.mean()), "n": int(p.size)}
    if p.size < 2:
        lo, hi = wilson_ci(round(p.ravel()[0] * n_items), n_items, level) if n_items else (float("nan"),) * 2
        return out | {"lo": lo, "hi": hi}
    m, h = _centre_and_half(p, level)
    return out | {"lo": max(0.0, m - h), "hi": min(1.0, m + h)}


def geometric_ci(x, level: float = 0.95) -> dict:
    """Geometric mean of positive values (losses, errors, ratios such as a
    slowdown) and the Student-t interval of their mean logarithm, mapped back. x [n]: independent
    values; x [R, C]: a table of crossed factors (labellings x seeds, see
    `crossed_mean_ci`). Returns {gmean, lo, hi, n}; NaN bounds for one value."""
    x = _as_runs(x)
    if not x.size or (x <= 0).any() or not np.isfinite(x).all():
        raise ValueError("geometric_ci takes at least one finite value above 0.")
    m, h = _centre_and_half(np.log(x), level)
    return {"gmean": float(np.exp(m)), "lo": float(np.exp(m - h)), "hi": float(np.exp(m + h)), "n": int(x.size)}


def compare_log(a, b, level: float = 0.95, power: float = 0.8) -> dict:
    """Welch's two-sample t-test of log10 a against log10 b (positive values,
    such as final losses of two independent groups of runs): diff = mean
    log10 a - mean log10 b with its interval, the two-sided p-value, and the
    smallest |diff| the test would detect with probability `power` at this
    level (for two groups of these sizes and their pooled spread; in decades):
    a difference the test does not find is "not detected", never "absent",
    and `detectable` says how large one would have had to be."""
    from scipy import stats

    la, lb = np.log10(np.asarray(a, dtype=float).ravel()), np.log10(np.asarray(b, dtype=float).ravel())
    res = stats.ttest_ind(la, lb, equal_var=False)
    lo, hi = res.confidence_interval(level)
    na, nb = len(la), len(lb)
    df = na + nb - 2
    sp = np.sqrt(((na - 1) * la.var(ddof=1) + (nb - 1) * lb.var(ddof=1)) / df)
    detect = (stats.t.ppf(0.5 + level / 2, df) + stats.t.ppf(power, df)) * sp * np.sqrt(1 / na + 1 / nb)
    return {"diff": float(la.mean() - lb.mean()), "lo": float(lo), "hi": float(hi), "p": float(res.pvalue),
            "detectable": float(detect), "n": [na, nb]}


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values of a family of tests p [m] (in the input's order): the k-th
    smallest is multiplied by m - k + 1, made non-decreasing in that order, and capped at 1. A test
    whose adjusted p is below alpha is rejected with the family-wise error held at alpha."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(p)
    out[order] = adj
    return out


def spearman(x, y) -> float:
    """Spearman's rho; NaN (silently) where either input is constant, as a
    bootstrap resample of a few points can be."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(x, y).statistic)


def spearman_ci(x, y, **kwargs) -> dict:
    """Spearman's rho with its bootstrap 95% interval and the number of points."""
    return {"rho": spearman(x, y), "ci": list(bootstrap_ci(spearman, x, y, **kwargs)), "n": int(len(x))}


def partial_spearman(x, y, z) -> float:
    """Spearman's rho of x and y controlling for z: the Pearson correlation of
    the residuals of rank(x) and rank(y) after a linear fit on rank(z)."""
    from scipy import stats

    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    A = np.column_stack([np.ones_like(rz), rz])
    res = [r - A @ np.linalg.lstsq(A, r, rcond=None)[0] for r in (rx, ry)]
    den = np.linalg.norm(res[0]) * np.linalg.norm(res[1])
    return float(res[0] @ res[1] / den) if den > 0 else float("nan")


def partial_spearman_ci(x, y, z, **kwargs) -> dict:
    """partial_spearman with its bootstrap 95% interval and the number of points."""
    return {"rho": partial_spearman(x, y, z), "ci": list(bootstrap_ci(partial_spearman, x, y, z, **kwargs)),
            "n": int(len(x))}


def centred_spearman(x, y) -> float:
    """Spearman's rho of x and y [S, C] (seeds x design cells, every cell of every seed present) after
    two-way centring: each value less its seed's mean and its cell's mean, plus the grand mean. What is
    left is the association within seeds and cells, not the one the design's factors (a batch size, an
    initialisation) put into both."""
    res = [v - v.mean(0) - v.mean(1, keepdims=True) + v.mean() for v in (np.asarray(x, float), np.asarray(y, float))]
    return spearman(res[0].ravel(), res[1].ravel())


def centred_spearman_ci(x, y, **kwargs) -> dict:
    """centred_spearman with a bootstrap 95% interval that resamples seeds (the rows), never single points:
    the points of one seed share its initialisation. n: the seeds; points: the values correlated."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return {"rho": centred_spearman(x, y), "ci": list(bootstrap_ci(centred_spearman, x, y, **kwargs)),
            "n": int(x.shape[0]), "points": int(x.size)}


def first_at_least(values, level: float) -> int | None:
    """The first index where `values` >= level (an epoch), or None if never."""
    hit = np.nonzero(np.asarray(values) >= level)[0]
    return int(hit[0]) if len(hit) else None


def crossing(values, level: float) -> float:
    """Where a curve sampled at 0, 1, 2, ... (epochs) first reaches `level`,
    interpolated linearly between the sample below and the first at or above
    it: 0.0 if it starts there, NaN if it never gets there (NaN samples never
    count as reaching it)."""
    v = np.asarray(values, dtype=float)
    i = first_at_least(v, level)
    if i is None:
        return float("nan")
    if i == 0:
        return 0.0
    return float(i - 1 + (level - v[i - 1]) / (v[i] - v[i - 1]))


def last_window_drop(curve, window: float = 0.1) -> float:
    """How much the last `window` fraction of a loss curve [T] lowered the best
    loss so far, relative to it: 1 - min(last part) / min(before). NaN rows (a
    run that stopped) are ignored. Compares minima, not ends, so Adam's late
    spikes do not count as progress or regress."""
    curve = np.asarray(curve, dtype=float)
    curve = curve[np.isfinite(curve)]
    cut = len(curve) - max(1, int(round(window * len(curve))))
    before, after = curve[:cut].min(), curve[cut:].min()
    return float(1 - after / before) if before > 0 else 0.0


def plateaued(curve, window: float = 0.1, rtol: float = 0.01) -> bool:
    """The plateau rule of 1-1a: a loss curve [T] has converged when its last
    `window` fraction of epochs lowered the best loss so far by less than `rtol`
    (relative); see last_window_drop."""
    return bool(last_window_drop(curve, window) <= rtol)
