r"""Adoption from a finite market: the adoption curve against the Bass curve, and how
customers were acquired (word of mouth, the market's external influence, other channels).

A customer came from the market when their channel is ``market`` (external influence),
``word_of_mouth`` or ``referral``. The Bass curve :math:`m F(t)` with
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
from sim.model.market import (
    MARKET_CHANNEL,
    REFERRAL_CHANNEL,
    WORD_OF_MOUTH_CHANNEL,
    bass_share,
)

#: How customers came, in the order tables list them.
SOURCES = ("word_of_mouth", "referral", "market", "other channels")


def _market_codes(log: EventLog) -> tuple[int, int, int]:
    """Channel codes of the market's external influence, word of mouth and referrals (-1:
    the log has no such channel)."""
    if MARKET_CHANNEL not in log.channels or WORD_OF_MOUTH_CHANNEL not in log.channels:
        raise EventLogError(
            "the log has no customers from a market",
            field="channels",
            fix=f"simulate a scenario with a [market] section (channels '{MARKET_CHANNEL}' and "
            f"'{WORD_OF_MOUTH_CHANNEL}')",
        )
    referral = log.channels.index(REFERRAL_CHANNEL) if REFERRAL_CHANNEL in log.channels else -1
    return log.channels.index(MARKET_CHANNEL), log.channels.index(WORD_OF_MOUTH_CHANNEL), referral


def _cumulative(log: EventLog, entry: np.ndarray, days: np.ndarray) -> np.ndarray:
    counts = np.zeros((log.replications, len(days)))
    for r in range(log.replications):
        times = np.sort(log.time[entry & (log.replication == r)])
        counts[r] = np.searchsorted(times, days, side="right")
    return counts


def adoption_counts(log: EventLog, days: np.ndarray) -> np.ndarray:
    """Per replication (rows) and day (columns): customers from the market who adopted by
    that day (entered the journey at or before it)."""
    codes = _market_codes(log)
    return _cumulative(log, (log.from_stage == ENTRY) & np.isin(log.channel, codes), days)


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
    _, wom, referral = _market_codes(log)
    entry = log.from_stage == ENTRY
    by_word = _cumulative(log, entry & (log.channel == wom), days)
    by_referral = _cumulative(log, entry & (log.channel == referral), days)
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
            "by_referral": by_referral.mean(axis=0),
            "bass": bass,
            "bass_per_day": np.diff(bass, prepend=0.0),
        }
    )
    frame.attrs["bass"] = fitted
    return frame


def acquisition_sources(log: EventLog) -> pd.DataFrame:
    """How customers came: by word of mouth, by referral, through the market's external
    influence, or through the scenario's other channels; mean customers per replication and
    share of all customers, with 95% CIs over replications."""
    market, wom, referral = _market_codes(log)
    entry = log.from_stage == ENTRY
    source = np.select(
        [log.channel == wom, log.channel == referral, log.channel == market], [0, 1, 2], 3
    )[entry]
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
    _, wom, _ = _market_codes(log)
    entry = log.from_stage == ENTRY
    return float(np.mean(log.channel[entry] == wom)) if entry.any() else 0.0


def _referral_links(log: EventLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer (across replications, by customer key): referrer key (-1: none), entry
    time, and replication."""
    key = log.customer_key()
    total = int(np.sum(log.customers))
    entry = log.from_stage == ENTRY
    offsets = np.concatenate([[0], np.cumsum(log.customers)[:-1]]).astype(np.int64)
    referrer = np.full(total, -1, dtype=np.int64)
    has = entry & (log.referrer >= 0)
    referrer[key[has]] = offsets[log.replication[has]] + log.referrer[has]
    arrival = np.zeros(total)
    arrival[key[entry]] = log.time[entry]
    replication = np.zeros(total, dtype=np.int64)
    replication[key[entry]] = log.replication[entry]
    return referrer, arrival, replication


def referral_depth(log: EventLog) -> np.ndarray:
    """Per customer (by :meth:`EventLog.customer_key`): generations of referrals behind them
    (0: not referred, 1: referred by a customer who was not, ...)."""
    referrer, arrival, _ = _referral_links(log)
    depth = np.zeros(len(referrer), dtype=np.int64)
    # referrers arrive before those they refer: settle depths in order of arrival
    for k in np.argsort(arrival, kind="stable"):
        if referrer[k] >= 0:
            depth[k] = depth[referrer[k]] + 1
    return depth


def _metric_frame(rows: list[dict]) -> pd.DataFrame:
    """metric, mean, ci_low, ci_high with float columns (mean_ci gives 0-d arrays, which
    would make object columns)."""
    return pd.DataFrame(rows, columns=["metric", "mean", "ci_low", "ci_high"]).astype(
        {"mean": float, "ci_low": float, "ci_high": float}
    )


def referral_summary(log: EventLog) -> pd.DataFrame:
    """Referrals per replication, as means with 95% CIs: customers referred, the viral
    coefficient (K-factor: customers referred per customer, which is also the referred
    customers' share of all customers), the
    deepest and mean depth of the referral trees, and the cycle time (days from a referrer's
    own arrival to the arrival of the customer they referred)."""
    referrer, arrival, replication = _referral_links(log)
    depth = referral_depth(log)
    reps = log.replications
    names = ("referred", "k_factor", "max_depth", "mean_depth", "cycle_days")
    metrics = {k: np.full(reps, np.nan) for k in names}
    for r in range(reps):
        mine = replication == r
        referred = mine & (referrer >= 0)
        n = mine.sum()
        metrics["referred"][r] = referred.sum()
        metrics["k_factor"][r] = referred.sum() / n if n else np.nan
        metrics["max_depth"][r] = depth[mine].max(initial=0)
        if referred.any():
            metrics["mean_depth"][r] = depth[referred].mean()
            metrics["cycle_days"][r] = (arrival[referred] - arrival[referrer[referred]]).mean()
    rows = []
    for name, values in metrics.items():
        ok = values[~np.isnan(values)]
        mean, low, high = mean_ci(ok) if len(ok) else (np.nan, np.nan, np.nan)
        rows.append({"metric": name, "mean": mean, "ci_low": low, "ci_high": high})
    return _metric_frame(rows)


def k_factor_by_cohort(log: EventLog, period_days: float = 30.0) -> pd.DataFrame:
    """The viral coefficient over time: for the customers who arrived in each period, the
    mean number of customers each referred within the horizon (later cohorts have had less
    time to refer, so their K-factor is censored)."""
    referrer, arrival, _ = _referral_links(log)
    made = np.bincount(referrer[referrer >= 0], minlength=len(referrer))
    edges = np.arange(0.0, log.horizon_days + period_days, period_days)
    cohort = np.clip(np.searchsorted(edges, arrival, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for i in range(len(edges) - 1):
        mine = cohort == i
        rows.append(
            {
                "from_day": edges[i],
                "to_day": min(edges[i + 1], log.horizon_days),
                "customers": int(mine.sum()),
                "k_factor": float(made[mine].mean()) if mine.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def detractor_summary(log: EventLog) -> pd.DataFrame:
    """Negative word of mouth per replication, as means with 95% CIs: ``detractors``
    (customers who churned dissatisfied and talked), ``people_reached`` (contacts with the
    market's people), ``reached_customers`` (contacts with someone already a customer, which
    change nothing), ``became_customers`` (people reached before they became customers:
    their last contact), and ``lost_conversions``: the conversions lost in expectation at the
    decisions of customers while put off (each decision's forward probability without the
    odds ratio less with it, summed)."""
    entry = log.from_stage == ENTRY
    key = log.customer_key()
    arrival = np.full(int(log.customers.sum()), np.nan)
    arrival[key[entry]] = log.time[entry]
    offsets = np.concatenate([[0], np.cumsum(log.customers)[:-1]]).astype(np.int64)
    rep = log.detractor_replication
    reached = log.detractor_reached >= 0
    whom = offsets[rep] + np.maximum(log.detractor_reached, 0)
    after = reached & (arrival[whom] >= log.detractor_time)
    metrics = {
        "detractors": [],
        "people_reached": [],
        "reached_customers": [],
        "became_customers": [],
        "lost_conversions": [],
    }
    for r in range(log.replications):
        mine = rep == r
        metrics["detractors"].append(len(np.unique(log.detractor_customer[mine])))
        metrics["people_reached"].append(mine.sum())
        metrics["reached_customers"].append((mine & reached & ~after).sum())
        metrics["became_customers"].append((mine & after).sum())
        metrics["lost_conversions"].append(log.detractor_lost[mine].sum())
    rows = []
    for name, values in metrics.items():
        mean, low, high = mean_ci(np.asarray(values, dtype=float))
        rows.append({"metric": name, "mean": mean, "ci_low": low, "ci_high": high})
    return _metric_frame(rows)
