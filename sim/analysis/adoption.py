r"""Adoption from a finite market: the adoption curve against the Bass curve, and how
customers were acquired (word of mouth, the market's external influence, other channels).

A customer came from the market when their channel is ``market`` (external influence) or
``word_of_mouth``. The Bass curve :math:`m F(t)` with
:math:`F(t) = (1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t})` is drawn for given :math:`p, q`
and market size :math:`m`, or fitted to the mean simulated (or observed) curve by least
squares, as Bass (1969) fitted it to sales data.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

from sim.analysis.stats import mean_ci
from sim.errors import EventLogError
from sim.events import ENTRY, EventLog
from sim.model.market import MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL, bass_share

#: How customers came, in the order tables list them.
SOURCES = ("word_of_mouth", "market", "other channels")


def _market_codes(log: EventLog) -> tuple[int, int]:
    if MARKET_CHANNEL not in log.channels or WORD_OF_MOUTH_CHANNEL not in log.channels:
        raise EventLogError(
            "the log has no customers from a market",
            field="channels",
            fix=f"simulate a scenario with a [market] section (channels '{MARKET_CHANNEL}' and "
            f"'{WORD_OF_MOUTH_CHANNEL}')",
        )
    return log.channels.index(MARKET_CHANNEL), log.channels.index(WORD_OF_MOUTH_CHANNEL)


def adoption_counts(log: EventLog, days: np.ndarray) -> np.ndarray:
    """Per replication (rows) and day (columns): customers from the market who adopted by
    that day (entered the journey at or before it)."""
    codes = _market_codes(log)
    entry = (log.from_stage == ENTRY) & np.isin(log.channel, codes)
    counts = np.zeros((log.replications, len(days)))
    for r in range(log.replications):
        times = np.sort(log.time[entry & (log.replication == r)])
        counts[r] = np.searchsorted(times, days, side="right")
    return counts


def fit_bass(
    days: np.ndarray, adopted: np.ndarray, market_size: float | None = None
) -> dict[str, float]:
    """Least-squares Bass parameters ``p``, ``q`` (per day) and ``size`` (fitted too unless
    ``market_size`` is given) for a cumulative adoption curve."""
    days = np.asarray(days, dtype=float)
    adopted = np.asarray(adopted, dtype=float)
    top = float(adopted.max(initial=0.0))
    if top <= 0:
        return {"size": float(market_size or 0.0), "p": 0.0, "q": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        if market_size is None:
            (size, p, q), _ = curve_fit(
                lambda t, m, p, q: m * bass_share(t, p, q),
                days,
                adopted,
                p0=(top * 1.5, 0.01, 0.1),
                bounds=([top, 1e-9, 0.0], [np.inf, 10.0, 10.0]),
            )
        else:
            size = float(market_size)
            (p, q), _ = curve_fit(
                lambda t, p, q: size * bass_share(t, p, q),
                days,
                adopted,
                p0=(0.01, 0.1),
                bounds=([1e-9, 0.0], [10.0, 10.0]),
            )
    return {"size": float(size), "p": float(p), "q": float(q)}


def adoption_curve(
    log: EventLog,
    market_size: int | None = None,
    p: float | None = None,
    q: float | None = None,
    days: np.ndarray | None = None,
) -> pd.DataFrame:
    """The adoption curve per day: mean cumulative customers from the market (``adopted``,
    95% CI over replications), of them by word of mouth, new ones per day, and the Bass curve
    (``bass`` cumulative, ``bass_per_day``) for the given ``p``, ``q`` and ``market_size``, or
    for those fitted to the mean curve when not given (in ``attrs["bass"]``)."""
    if days is None:
        days = np.arange(0.0, np.floor(log.horizon_days) + 1)
    days = np.asarray(days, dtype=float)
    counts = adoption_counts(log, days)
    mean, low, high = mean_ci(counts, axis=0)
    _, wom = _market_codes(log)
    word = (log.from_stage == ENTRY) & (log.channel == wom)
    by_word = np.zeros((log.replications, len(days)))
    for r in range(log.replications):
        times = np.sort(log.time[word & (log.replication == r)])
        by_word[r] = np.searchsorted(times, days, side="right")
    if p is None or q is None or market_size is None:
        fitted = fit_bass(days, mean, market_size)
    else:
        fitted = {"size": float(market_size), "p": float(p), "q": float(q)}
    bass = fitted["size"] * bass_share(days, fitted["p"], fitted["q"])
    frame = pd.DataFrame(
        {
            "day": days,
            "adopted": mean,
            "adopted_ci_low": low,
            "adopted_ci_high": high,
            "adopted_per_day": np.diff(mean, prepend=0.0),
            "by_word_of_mouth": by_word.mean(axis=0),
            "bass": bass,
            "bass_per_day": np.diff(bass, prepend=0.0),
        }
    )
    frame.attrs["bass"] = fitted
    return frame


def acquisition_sources(log: EventLog) -> pd.DataFrame:
    """How customers came: by word of mouth, through the market's external influence, or
    through the scenario's other channels; mean customers per replication and share of all
    customers, with 95% CIs over replications."""
    market, wom = _market_codes(log)
    entry = log.from_stage == ENTRY
    source = np.where(log.channel == wom, 0, np.where(log.channel == market, 1, 2))[entry]
    counts = np.zeros((log.replications, len(SOURCES)))
    np.add.at(counts, (log.replication[entry], source), 1)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    c_mean, c_low, c_high = mean_ci(counts)
    s_mean, s_low, s_high = mean_ci(share)
    return pd.DataFrame(
        {
            "source": list(SOURCES),
            "customers": c_mean,
            "customers_ci_low": c_low,
            "customers_ci_high": c_high,
            "share": s_mean,
            "share_ci_low": s_low,
            "share_ci_high": s_high,
        }
    )


def word_of_mouth_share(log: EventLog) -> float:
    """Share of all customers acquired by word of mouth (pooled over replications)."""
    _, wom = _market_codes(log)
    entry = log.from_stage == ENTRY
    return float(np.mean(log.channel[entry] == wom)) if entry.any() else 0.0
