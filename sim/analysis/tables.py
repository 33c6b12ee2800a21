"""Retention and time-to-purchase tables of an event log, per persona or channel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.customers import customer_arrays, customer_groups
from sim.analysis.stats import mean_ci
from sim.analysis.survival import kaplan_meier, lifetimes, median_lifetime, survival_at
from sim.errors import ScenarioError
from sim.events import EventLog

#: Days after the first purchase at which retention summaries report the share still active.
RETENTION_DAYS = (30, 90, 180, 365)


def check_days(days: object) -> tuple[float, ...]:
    """Days after the first purchase at which to read retention: finite numbers >= 0, or a
    ScenarioError naming the offending value."""
    if isinstance(days, str | bytes) or not isinstance(days, Iterable):
        raise ScenarioError(
            f"days must be a list of numbers of days, got {days!r}",
            field="days",
            fix="e.g. days=(30, 90, 180)",
        )
    out = tuple(days)
    for d in out:
        if (
            isinstance(d, bool)
            or not isinstance(d, int | float | np.integer | np.floating)
            or not np.isfinite(d)
            or d < 0
        ):
            raise ScenarioError(
                f"days must be numbers of days >= 0, got {d!r}",
                field="days",
                fix="give days after the first purchase, e.g. days=(30, 90, 180)",
            )
    return out


def _finish(rows_or_frames: list, by: str | None, frames: bool = False) -> pd.DataFrame:
    out = pd.concat(rows_or_frames, ignore_index=True) if frames else pd.DataFrame(rows_or_frames)
    return out.drop(columns="group") if by is None else out


def retention_grid(horizon_days: float, points: int = 1000) -> np.ndarray:
    """Days 0, 1, 2, ... up to the horizon, or a coarser whole-day step when that would be
    more than ``points`` days: the fixed grid retention curves are written on."""
    last = int(np.floor(horizon_days)) if np.isfinite(horizon_days) else 0
    step = max(1, int(np.ceil(last / points))) if last else 1
    return np.arange(0, last + 1, step, dtype=float)


def retention(
    log: EventLog,
    by: str | None = "persona",
    customers: dict | None = None,
    days: np.ndarray | None = None,
) -> pd.DataFrame:
    """Kaplan-Meier survival of active customers since their first purchase, censored at the
    log's horizon (a customer who has not reached an end stage is still active), pooled over
    replications: columns group, day, survival, ci_low, ci_high, at_risk. With ``days`` None
    the full curve (a row per day on which an active life ended or was censored); else the
    curve read at those days (e.g. :func:`retention_grid`), ``at_risk`` counting the
    customers still active and observed at each."""
    c = customers if customers is not None else customer_arrays(log)
    duration, observed, bought = lifetimes(c, log.horizon_days)
    frames = []
    for name, rows in customer_groups(log, by):
        sel = rows[bought]
        curve = kaplan_meier(duration[sel], observed[sel])
        if days is not None:
            curve = _read_at(curve, np.sort(duration[sel]), np.asarray(days, dtype=float))
        curve.insert(0, by or "group", name)
        frames.append(curve)
    return _finish(frames, by, frames=True)


def _read_at(curve: pd.DataFrame, ordered: np.ndarray, days: np.ndarray) -> pd.DataFrame:
    """A step curve read at given days (right-continuous: the value after any drop that day)."""
    out = pd.DataFrame({"day": days})
    if curve.empty:
        for col in ("survival", "ci_low", "ci_high"):
            out[col] = np.nan
        out["at_risk"] = 0
        return out
    idx = np.searchsorted(curve["day"].to_numpy(), days, side="right") - 1
    for col in ("survival", "ci_low", "ci_high"):
        out[col] = curve[col].to_numpy()[idx]
    out["at_risk"] = len(ordered) - np.searchsorted(ordered, days, side="left")
    return out


def retention_summary(
    log: EventLog,
    by: str | None = "persona",
    days: tuple[int, ...] = RETENTION_DAYS,
    customers: dict | None = None,
) -> pd.DataFrame:
    """Per group: purchasers, share still active at chosen days after first purchase
    (Kaplan-Meier), median active lifetime, repeat-purchase rate, purchases per purchaser,
    and revenue per customer (mean with 95% CI over replications)."""
    check_days(days)
    c = customers if customers is not None else customer_arrays(log)
    horizon = log.horizon_days
    duration, observed, bought = lifetimes(c, horizon)
    days = tuple(d for d in days if d < horizon)
    reps = log.replications
    rows = []
    for name, members in customer_groups(log, by):
        sel = members[bought]
        curve = kaplan_meier(duration[sel], observed[sel])
        rep = c["replication"][members]
        entrants = np.bincount(rep, minlength=reps)
        revenue = np.bincount(rep, weights=c["revenue"][members], minlength=reps)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_customer = revenue / entrants
        rev, rev_lo, rev_hi = mean_ci(per_customer)
        purchases = c["purchases"][members & bought]
        row: dict[str, Any] = {by or "group": name, "purchasers": sel.sum() / reps}
        for d, s in zip(days, survival_at(curve, np.array(days, dtype=float)), strict=True):
            row[f"active_day_{d}"] = s
        row["median_lifetime_days"] = median_lifetime(curve)
        row["repeat_purchase_rate"] = (purchases >= 2).mean() if len(purchases) else np.nan
        row["purchases_per_purchaser"] = purchases.mean() if len(purchases) else np.nan
        row.update(
            revenue_per_customer=float(rev),
            revenue_ci_low=float(rev_lo),
            revenue_ci_high=float(rev_hi),
        )
        rows.append(row)
    return _finish(rows, by)


def time_to_purchase(
    log: EventLog, by: str | None = "persona", customers: dict | None = None
) -> pd.DataFrame:
    """Days from entry to first purchase among customers who bought within the horizon:
    share who bought, mean, median and quartiles."""
    c = customers if customers is not None else customer_arrays(log)
    wait = c["first_purchase"] - c["arrival"]
    rows = []
    for name, members in customer_groups(log, by):
        w = wait[members]
        w = w[~np.isnan(w)]
        q = np.quantile(w, [0.25, 0.5, 0.75]) if len(w) else [np.nan] * 3
        rows.append(
            {
                by or "group": name,
                "share_purchased": len(w) / max(members.sum(), 1),
                "mean_days": w.mean() if len(w) else np.nan,
                "q25_days": q[0],
                "median_days": q[1],
                "q75_days": q[2],
            }
        )
    return _finish(rows, by)
