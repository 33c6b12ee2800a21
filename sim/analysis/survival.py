"""Retention of active customers after their first purchase (Kaplan-Meier, censored)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from sim.analysis.stats import CONFIDENCE


def lifetimes(
    cust: dict[str, np.ndarray], horizon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Days active since the first purchase, whether the end was observed, and the purchaser mask.

    A customer's active life ends when they enter an absorbing stage after purchasing; a
    customer still active at the horizon is censored there.
    """
    bought = ~np.isnan(cust["first_purchase"])
    start = cust["first_purchase"][bought]
    observed = cust["ended"][bought]
    stop = np.where(observed, cust["end_time"][bought], horizon)
    return stop - start, observed, bought


def kaplan_meier(
    duration: np.ndarray, observed: np.ndarray, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Survival curve with log-log confidence band and the number at risk at each time.

    The first row is day 0 with survival 1.
    """
    from scipy import stats  # imported when used: it is slow to import

    columns = ["day", "survival", "ci_low", "ci_high", "at_risk"]
    if len(duration) == 0:
        # typed, so a group without purchasers does not turn the pooled table into objects
        return pd.DataFrame(
            {c: np.zeros(0, dtype=np.int64 if c == "at_risk" else float) for c in columns}
        )
    data = stats.CensoredData(uncensored=duration[observed], right=duration[~observed])
    if observed.any():
        sf = stats.ecdf(data).sf
        with warnings.catch_warnings():
            # where survival reaches 0 the log-log band is undefined; scipy warns and gives NaN,
            # which is the honest value to report there
            warnings.filterwarnings(
                "ignore", "The confidence interval is undefined", RuntimeWarning
            )
            ci = sf.confidence_interval(confidence, method="log-log")
        days = sf.quantiles
        surv, low, high = sf.probabilities, ci.low.probabilities, ci.high.probabilities
        # before the first end survival is 1 with no variance: the band is [1, 1] there (as
        # lifelines gives it), not the NaN of log(-log(1))
        low = np.where(surv == 1, 1.0, low)
        high = np.where(surv == 1, 1.0, high)
    else:
        days = np.unique(duration)
        surv = low = high = np.ones(len(days))
    ordered = np.sort(duration)
    at_risk = len(ordered) - np.searchsorted(ordered, days, side="left")
    frame = pd.DataFrame(
        {"day": days, "survival": surv, "ci_low": low, "ci_high": high, "at_risk": at_risk}
    )
    start = pd.DataFrame(
        {
            "day": [0.0],
            "survival": [1.0],
            "ci_low": [1.0],
            "ci_high": [1.0],
            "at_risk": [len(duration)],
        }
    )
    return pd.concat([start, frame[frame["day"] > 0]], ignore_index=True)


def survival_at(curve: pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """Survival read off a step curve at given days."""
    if curve.empty:
        return np.full(len(days), np.nan)
    idx = np.searchsorted(curve["day"].to_numpy(), days, side="right") - 1
    return curve["survival"].to_numpy()[idx]


#: Survival within this of 0.5 counts as 0.5 when reading the median: a product of many
#: factors (1 - d/n) that is exactly 0.5 in exact arithmetic lands a few ulps either side in
#: floating point, and on the wrong side the median would move to the next event.
MEDIAN_TOLERANCE = 1e-9


def median_lifetime(curve: pd.DataFrame) -> float:
    """First day the survival drops to 0.5 or below, up to :data:`MEDIAN_TOLERANCE` (NaN if
    it never does within the data); the convention of lifelines and of most textbooks."""
    below = curve[curve["survival"] <= 0.5 + MEDIAN_TOLERANCE]
    return float(below["day"].iloc[0]) if len(below) else float("nan")
