r"""Queues for shared capacity, read from the log: waiting times, abandonment, utilisation.

A row leaving a stage that uses a resource (``stage_resources``) closes one queue visit: the
customer joined the queue when they entered the stage (their previous row), waited ``wait``
days, then either gave up (``abandoned``) or held one unit for the rest of their time in the
stage (the service). Visits still under way at the horizon have no closing row and are left
out; keep ``until`` some service times before the horizon when that matters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.stats import mean_ci
from sim.errors import EventLogError
from sim.events import ENTRY, EventLog


def queue_visits(log: EventLog, since: float = 0.0, until: float | None = None) -> pd.DataFrame:
    """One row per completed queue visit of customers who joined the queue in
    [``since``, ``until``): replication, customer, persona, stage, resource, joined (day),
    wait (days), abandoned, service (days)."""
    if not log.resources:
        raise EventLogError(
            "the log has no resources: no stage queues for shared capacity",
            field="resources",
            fix='simulate a scenario with [[resource]] tables and uses = "..." on a stage',
        )
    until = log.horizon_days if until is None else until
    key = log.customer_key()
    order = np.lexsort((np.arange(len(key)), key))
    same = np.r_[False, key[order][1:] == key[order][:-1]]
    previous = np.full(len(key), np.nan)
    previous[order[same]] = log.time[order][np.flatnonzero(same) - 1]
    uses = np.array(log.stage_resources, dtype=np.int64)
    leaving = (log.from_stage != ENTRY) & (uses[np.maximum(log.from_stage, 0)] >= 0)
    rows = np.flatnonzero(leaving & (previous >= since) & (previous < until))
    stage = log.from_stage[rows].astype(np.int64)
    joined = previous[rows]
    wait = log.wait[rows]
    abandoned = log.abandoned[rows]
    return pd.DataFrame(
        {
            "replication": log.replication[rows],
            "customer": log.customer[rows],
            "persona": pd.Categorical.from_codes(
                log.persona[rows].astype(np.int64), categories=list(log.personas)
            ),
            "stage": pd.Categorical.from_codes(stage, categories=list(log.stages)),
            "resource": pd.Categorical.from_codes(uses[stage], categories=list(log.resources)),
            "joined": joined,
            "wait": wait,
            "abandoned": abandoned,
            "service": np.where(abandoned, 0.0, log.time[rows] - joined - wait),
        }
    )


def capacity_at(log: EventLog, resource: int, days: np.ndarray) -> np.ndarray:
    """Units of a resource (by code) in force on each of ``days``, capacity changes included."""
    days = np.asarray(days, dtype=float)
    units = np.full(days.shape, float(log.capacities[resource]))
    for code, start, end, added in log.capacity_changes:
        if code == resource:
            units += added * ((days >= start) & (days < end))
    return units


def capacity_days(log: EventLog, resource: int, since: float, until: float) -> float:
    """Unit-days of a resource in force over [``since``, ``until``)."""
    total = log.capacities[resource] * (until - since)
    for code, start, end, added in log.capacity_changes:
        if code == resource:
            total += added * max(min(end, until) - max(start, since), 0.0)
    return float(total)


def capacity_range(
    log: EventLog, resource: int, since: float, until: float
) -> tuple[float, float, float]:
    """Units of a resource over [``since``, ``until``): fewest, time average and most (a
    schedule or capacity changes move them; otherwise all three are the capacity)."""
    changes = [
        day
        for code, start, end, _ in log.capacity_changes
        if code == resource
        for day in (start, end)
        if since < day < until
    ]
    units = capacity_at(log, resource, np.array([since, *changes]))
    mean = (
        capacity_days(log, resource, since, until) / (until - since) if until > since else units[0]
    )
    return float(units.min()), float(mean), float(units.max())


def _busy_days(visits: pd.DataFrame, start: float, end: float) -> np.ndarray:
    begin = (visits["joined"] + visits["wait"]).to_numpy()
    finish = begin + visits["service"].to_numpy()
    return np.clip(np.minimum(finish, end) - np.maximum(begin, start), 0.0, None)


def queue_summary(log: EventLog, since: float = 0.0, until: float | None = None) -> pd.DataFrame:
    """Per resource, over customers who joined a queue in [``since``, ``until``): mean queue
    visits per replication, probability of waiting, mean wait (days), abandonment rate and
    utilisation (busy unit-days over the unit-days in force in the window), each a mean over
    replications with a 95% CI (batch means: one batch per replication). ``capacity`` is the
    time-averaged units in force over the window, ``capacity_min`` / ``capacity_max`` the
    fewest and most (a schedule or capacity changes move them)."""
    until = log.horizon_days if until is None else until
    visits = queue_visits(log, since, until)
    reps = log.replications
    rows = []
    for code, name in enumerate(log.resources):
        mine = visits[visits["resource"] == name]
        stats: dict[str, np.ndarray] = {
            k: np.full(reps, np.nan)
            for k in ("visits", "p_wait", "mean_wait", "abandonment", "utilisation")
        }
        busy = _busy_days(mine, since, until)
        for r in range(reps):
            sel = (mine["replication"] == r).to_numpy()
            n = sel.sum()
            stats["visits"][r] = n
            unit_days = capacity_days(log, code, since, until)
            # no units in force at all (a closed window): utilisation is undefined, not inf
            stats["utilisation"][r] = busy[sel].sum() / unit_days if unit_days > 0 else np.nan
            if n:
                wait = mine["wait"].to_numpy()[sel]
                stats["p_wait"][r] = np.mean(wait > 0)
                stats["mean_wait"][r] = wait.mean()
                stats["abandonment"][r] = mine["abandoned"].to_numpy()[sel].mean()
        low, mean, high = capacity_range(log, code, since, until)
        row: dict[str, object] = {
            "resource": name,
            "capacity": mean,
            "capacity_min": low,
            "capacity_max": high,
        }
        for k, values in stats.items():
            ok = values[~np.isnan(values)]
            mean, low, high = mean_ci(ok) if len(ok) else (np.nan, np.nan, np.nan)
            row.update({k: float(mean), f"{k}_ci_low": float(low), f"{k}_ci_high": float(high)})
        rows.append(row)
    return pd.DataFrame(rows)


def waiting_time_distribution(
    log: EventLog, since: float = 0.0, until: float | None = None, quantiles=(0.5, 0.8, 0.9, 0.95)
) -> pd.DataFrame:
    """Per resource: quantiles of the wait (days) over all completed queue visits pooled over
    replications, and the share who waited at all."""
    visits = queue_visits(log, since, until)
    rows = []
    for name in log.resources:
        wait = visits.loc[visits["resource"] == name, "wait"].to_numpy()
        row: dict[str, object] = {"resource": name, "visits": len(wait)}
        row["waited"] = float(np.mean(wait > 0)) if len(wait) else np.nan
        for q in quantiles:
            row[f"wait_q{round(q * 100)}"] = float(np.quantile(wait, q)) if len(wait) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def queue_over_time(log: EventLog, days: np.ndarray | None = None) -> pd.DataFrame:
    """Per resource and day: customers waiting (``queue``) and units busy (``busy``, and as a
    share of capacity, ``utilisation``) at that instant, means over replications. Visits
    still under way at the horizon are not in the log, so the last days undercount."""
    visits = queue_visits(log)
    if days is None:
        days = np.arange(0.0, np.floor(log.horizon_days) + 1)
    days = np.asarray(days, dtype=float)
    joined = visits["joined"].to_numpy()
    begin = joined + visits["wait"].to_numpy()
    end = begin + visits["service"].to_numpy()

    def inside(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.sort(start), days, side="right") - np.searchsorted(
            np.sort(stop), days, side="right"
        )

    frames = []
    reps = max(log.replications, 1)
    for code, name in enumerate(log.resources):
        mine = (visits["resource"] == name).to_numpy()
        served = mine & ~visits["abandoned"].to_numpy()
        busy = inside(begin[served], end[served]) / reps
        units = capacity_at(log, code, days)
        # a day with no units scheduled (e.g. sun = 0) has no utilisation: NaN, no warning
        utilisation = np.divide(busy, units, out=np.full(len(days), np.nan), where=units > 0)
        frames.append(
            pd.DataFrame(
                {
                    "resource": name,
                    "day": days,
                    "queue": inside(joined[mine], begin[mine]) / reps,
                    "busy": busy,
                    "utilisation": utilisation,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
