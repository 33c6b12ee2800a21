"""Confidence intervals used across the analysis (scipy does the distributions)."""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95


def mean_ci(
    values: np.ndarray, axis: int = 0, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and t-based confidence interval over replications along ``axis``.

    With a single replication the interval is undefined and returned as NaN.
    """
    from scipy import stats  # imported when used: it is slow to import

    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    sem = values.std(axis=axis, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * sem
    return mean, mean - half, mean + half


def proportion_ci(
    successes: np.ndarray, trials: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions (NaN where there are no trials)."""
    from scipy import stats  # imported when used: it is slow to import

    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low = np.where(n > 0, np.clip(centre - half, 0, 1), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), np.nan)
    return low, high


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    order = np.argsort(q)
    m = len(q)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * q[order])
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    from scipy import stats  # imported when used: it is slow to import

    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def bootstrap_interval(x: np.ndarray, seed: int) -> tuple[float, float]:
    from scipy import stats  # imported when used: it is slow to import

    if len(x) < 3 or np.all(x == x[0]):
        return (float(x[0]), float(x[0])) if len(x) and np.all(x == x[0]) else (math.nan,) * 2
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=2000,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def difference(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, float, float, float]:
    """Mean of y - x, its 95% interval and the p-value of 'no difference'."""
    from scipy import stats  # imported when used: it is slow to import

    if paired:
        d = y - x
        mean, low, high = t_interval(d)
        if len(d) < 2:
            return mean, low, high, math.nan
        sd = np.std(d, ddof=1)
        if sd == 0:
            return mean, mean, mean, (1.0 if mean == 0 else 0.0)
        return mean, low, high, float(stats.ttest_1samp(d, 0.0).pvalue)
    mean = float(np.mean(y) - np.mean(x))
    if len(x) < 2 or len(y) < 2:
        return mean, math.nan, math.nan, math.nan
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    if vx + vy == 0:
        return mean, mean, mean, (1.0 if mean == 0 else 0.0)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(vx + vy)
    p = float(stats.ttest_ind(y, x, equal_var=False).pvalue)
    return mean, mean - half, mean + half, p
