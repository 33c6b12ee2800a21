"""Confidence intervals and tests used across the analysis.

Every t-based interval (a mean over replications, a paired difference, Welch's difference)
comes from one place, :func:`_t_test`: scipy's test result objects and their
``confidence_interval()``, so the intervals and the p-values printed beside them are the same
computation. Proportions within one replication get Wilson score intervals; skewed metrics a
BCa bootstrap; families of p-values Holm's step-down adjustment.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _t_test(
    y: np.ndarray, x: np.ndarray | None = None, axis: int = 0, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t interval and p-value: of the mean of ``y`` (``x`` None), or of the difference of means
    ``y - x`` by Welch's test. Returns (low, high, p-value)."""
    with warnings.catch_warnings():
        # replications that agree exactly (a share that is 1 in every replication) make scipy
        # warn about precision; the interval it then gives, [mean, mean], is the honest answer
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "divide by zero", RuntimeWarning)
        if x is None:
            res = stats.ttest_1samp(y, 0.0, axis=axis)
        else:
            res = stats.ttest_ind(y, x, equal_var=False, axis=axis)
        ci = res.confidence_interval(confidence)
    return np.asarray(ci.low), np.asarray(ci.high), np.asarray(res.pvalue)


def mean_ci(
    values: np.ndarray, axis: int = 0, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and t-based confidence interval over replications along ``axis``.

    With a single replication the interval is undefined and returned as NaN.
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return mean, nan, nan
    low, high, _ = _t_test(values, axis=axis, confidence=confidence)
    return mean, low, high


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean of a 1-d sample and its 95% t interval (NaN below two values)."""
    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean, low, high = mean_ci(x)
    return float(mean), float(low), float(high)


def proportion_ci(
    successes: np.ndarray, trials: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    r"""Wilson score interval for binomial proportions (NaN where there are no trials).

    .. math:: \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n}
    """
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
    """Holm's step-down adjustment of p-values (NaN stays NaN and does not count)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    order = np.argsort(q, kind="stable")
    m = len(q)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * q[order])
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out


def bootstrap_interval(x: np.ndarray, seed: int) -> tuple[float, float]:
    """BCa bootstrap 95% interval of the mean (2,000 resamples drawn from ``seed``).

    All-equal samples give [value, value]; fewer than three values give NaN."""
    x = np.asarray(x, dtype=float)
    if len(x) and np.all(x == x[0]):
        return float(x[0]), float(x[0])
    if len(x) < 3:
        return math.nan, math.nan
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
    """Mean of y - x, its 95% interval and the p-value of 'no difference': a paired t test
    when ``paired`` (common random numbers), else Welch's test."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if paired:
        d = y - x
        mean = float(np.mean(d)) if len(d) else math.nan
        if len(d) < 2:
            return mean, math.nan, math.nan, math.nan
        if np.all(d == d[0]):
            return mean, mean, mean, (1.0 if mean == 0 else 0.0)
        low, high, p = _t_test(d)
        return mean, float(low), float(high), float(p)
    mean = float(np.mean(y) - np.mean(x)) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return mean, math.nan, math.nan, math.nan
    if np.all(x == x[0]) and np.all(y == y[0]):
        return mean, mean, mean, (1.0 if mean == 0 else 0.0)
    low, high, p = _t_test(y, x)
    return mean, float(low), float(high), float(p)
