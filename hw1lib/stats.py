"""Summary statistics the report quotes: means with 95% intervals over seeds,
bootstrap intervals of rank correlations, first crossings of a level.

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
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


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


def first_at_least(values, level: float) -> int | None:
    """The first index where `values` >= level (an epoch), or None if never."""
    hit = np.nonzero(np.asarray(values) >= level)[0]
    return int(hit[0]) if len(hit) else None


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


def fmt_ci(mean: float, half: float, digits: int = 2) -> str:
    """'98.14 ± 0.05' (or just the mean where there is no interval)."""
    if half is None or not np.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"
