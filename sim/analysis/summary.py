"""Summaries of an event log that add up over chunks of customers (streamed runs).

A :class:`LogSummary` keeps, per replication and per (persona, channel) cell, counts and
sums: customers, who reached each stage, purchases, revenue, time to first purchase, and the
retention lifetimes of purchasers as ended/censored counts on a grid of ``1/GRID`` day. Two
summaries of different customers merge by adding, so a log of ten million customers is
summarised chunk by chunk in bounded memory, and the funnel, retention, time to purchase,
costs and the per-replication metrics of comparisons come from the merged counts.

Against the same log held in memory: funnel counts and every count, share and mean are the
same (sums may differ in the last bits); Kaplan-Meier survival is computed on the grid (all
events within one ``1/GRID`` day step pooled, so shares at whole days agree with the exact
curve to within rounding of that pooling, and median lifetimes and time-to-purchase quartiles
are rounded up to the grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.customers import customer_arrays, reach_matrix
from sim.analysis.funnel import funnel_table
from sim.analysis.metrics import cost_table
from sim.analysis.stats import CONFIDENCE, mean_ci
from sim.analysis.survival import MEDIAN_TOLERANCE, lifetimes
from sim.events import ALL, EventLog
from sim.model.intervention import Intervention

#: Grid steps per day for retention lifetimes and times to purchase (a power of two, so
#: whole days fall exactly on the grid).
GRID = 64

#: Counts per cell (persona, channel) and what they hold after the cell axes.
_CELL_FIELDS = (
    "entrants",  # customers
    "buyers",  # customers with a purchase
    "wait_sum",  # sum of days from entry to first purchase, buyers
    "purchases",  # purchases
    "repeaters",  # buyers with two purchases or more
    "revenue",
)
_STAGE_FIELDS = ("reached", "before")  # per stage: reached it; reached a stage leading in
_GRID_FIELDS = ("wait_hist", "ended", "censored")  # per grid step
_IV_FIELDS = ("reached_by", "purchases_by", "referrals_by")  # per intervention, not per cell


def grid_size(horizon: float) -> int:
    """Grid steps covering [0, horizon] (step j holds times in ((j-1)/GRID, j/GRID])."""
    return int(np.ceil(horizon * GRID)) + 1


def _steps(days: np.ndarray, size: int) -> np.ndarray:
    return np.clip(np.ceil(days * GRID), 0, size - 1).astype(np.int64)


@dataclass(eq=False)
class LogSummary:
    """Mergeable counts of an event log (see the module documentation)."""

    stages: tuple[str, ...]
    personas: tuple[str, ...]
    channels: tuple[str, ...]
    end_stages: tuple[bool, ...]
    interventions: tuple[str, ...]
    horizon_days: float
    #: replication -> field -> array (cells are [persona, channel, ...])
    counts: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of_log(
        cls,
        log: EventLog,
        replications: Sequence[int] | None = None,
        credited: np.ndarray | None = None,
    ) -> LogSummary:
        """Summarise a log; ``replications`` renumbers its replications (a chunk of
        replication 7 is simulated as replication 0 of its own log). ``credited`` (rows x
        interventions, from :func:`sim.analysis.metrics.credited_purchases`) says which
        purchases each intervention is charged for; without it, none."""
        names = list(range(log.replications)) if replications is None else list(replications)
        out = cls(
            stages=tuple(log.stages),
            personas=tuple(log.personas),
            channels=tuple(log.channels),
            end_stages=tuple(bool(x) for x in log.end_mask),
            interventions=tuple(log.interventions),
            horizon_days=float(log.horizon_days),
        )
        c = customer_arrays(log)
        reached = reach_matrix(log)
        before = np.zeros_like(reached)
        for src, target in log.edges:
            before[:, target] |= reached[:, src]
        before[:, list(log.entry_stages)] = True
        duration, observed, bought = lifetimes(c, log.horizon_days)
        life_ended = np.zeros(len(bought), dtype=bool)
        life_steps = np.zeros(len(bought), dtype=np.int64)
        size = grid_size(log.horizon_days)
        life_ended[bought] = observed
        life_steps[bought] = _steps(duration, size)
        has_bought = ~np.isnan(c["first_purchase"])
        wait_steps = _steps(np.nan_to_num(c["first_purchase"] - c["arrival"]), size)
        n_p, n_c, n_s = len(log.personas), len(log.channels), len(log.stages)
        cell = c["persona"].astype(np.int64) * n_c + c["channel"]
        cells = n_p * n_c
        for r, name in enumerate(names):
            mine = c["replication"] == r
            k = cell[mine]

            def per_cell(weights: np.ndarray | None, k=k) -> np.ndarray:
                return np.bincount(k, weights=weights, minlength=cells)

            buy = has_bought[mine]
            d: dict[str, np.ndarray] = {
                "entrants": per_cell(None),
                "buyers": per_cell(buy.astype(float)),
                "wait_sum": per_cell(
                    np.where(buy, (c["first_purchase"] - c["arrival"])[mine], 0.0)
                ),
                "purchases": per_cell(c["purchases"][mine].astype(float)),
                "repeaters": per_cell((c["purchases"][mine] >= 2).astype(float)),
                "revenue": per_cell(c["revenue"][mine]),
            }
            # counts by bincount over flat (cell, column) indices: np.add.at does the same
            # several times slower, and this runs once per chunk of 200,000 customers
            for name_, matrix in (("reached", reached), ("before", before)):
                rows, cols = np.nonzero(matrix[mine])
                flat = k[rows] * n_s + cols
                d[name_] = np.bincount(flat, minlength=cells * n_s).reshape(cells, n_s)
            for name_, steps, weight in (
                ("wait_hist", wait_steps, buy),
                ("ended", life_steps, bought[mine] & life_ended[mine]),
                ("censored", life_steps, bought[mine] & ~life_ended[mine]),
            ):
                flat = k[weight] * size + steps[mine][weight]
                d[name_] = np.bincount(flat, minlength=cells * size).reshape(cells, size)
            d = {
                f: v.reshape(n_p, n_c, *v.shape[1:]).astype(
                    float if f in ("wait_sum", "revenue") else np.int64
                )
                for f, v in d.items()
            }
            in_rep_reach = log.reach_replication == r
            d["reached_by"] = np.bincount(
                log.reach_intervention[in_rep_reach].astype(np.int64),
                minlength=len(log.interventions),
            ).astype(np.int64)
            in_rep = log.replication == r
            n_iv = len(log.interventions)
            d["purchases_by"] = (
                credited[in_rep].sum(axis=0).astype(np.int64)
                if credited is not None and n_iv
                else np.zeros(n_iv, dtype=np.int64)
            )
            # a referred customer's entry row carries the interventions acting on the referrer
            referral = in_rep & (log.from_stage < 0) & (log.referrer >= 0)
            d["referrals_by"] = np.array(
                [int(np.count_nonzero(log.treatment[referral] >> i & 1)) for i in range(n_iv)],
                dtype=np.int64,
            )
            out.counts[int(name)] = d
        return out

    def __getstate__(self) -> dict[str, Any]:
        # grids are mostly zeros (a few thousand lifetimes over tens of thousands of steps):
        # sent between processes as their non-zero entries only
        state = dict(self.__dict__)
        state["counts"] = {
            r: {
                f: ("sparse", v.shape, np.flatnonzero(v), v.ravel()[np.flatnonzero(v)])
                if f in _GRID_FIELDS
                else v
                for f, v in d.items()
            }
            for r, d in self.counts.items()
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for d in state["counts"].values():
            for f, v in d.items():
                if isinstance(v, tuple):
                    _, shape, where, values = v
                    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
                    dense[where] = values
                    d[f] = dense.reshape(shape)
        self.__dict__.update(state)

    def merge(self, other: LogSummary) -> LogSummary:
        """Add another summary's counts (other customers, or other replications) into this
        one; returns self."""
        for r, d in other.counts.items():
            mine = self.counts.get(r)
            if mine is None:
                self.counts[r] = {f: v.copy() for f, v in d.items()}
            else:
                for f, v in d.items():
                    mine[f] += v
        return self

    @property
    def replications(self) -> int:
        """How many replications are summarised."""
        return len(self.counts)

    @property
    def customers(self) -> np.ndarray:
        """Customers of each replication, in order."""
        return np.array([int(self.counts[r]["entrants"].sum()) for r in self._reps()])

    def _reps(self) -> list[int]:
        return sorted(self.counts)

    # -- groups ------------------------------------------------------------------------------

    def _groups(self, by: str | None) -> list[tuple[str, tuple]]:
        groups: list[tuple[str, tuple]] = [(ALL, (slice(None), slice(None)))]
        if by is None:
            return groups
        if by == "persona":
            return groups + [
                (n, (slice(i, i + 1), slice(None))) for i, n in enumerate(self.personas)
            ]
        if by == "channel":
            return groups + [
                (n, (slice(None), slice(i, i + 1))) for i, n in enumerate(self.channels)
            ]
        raise ValueError(f"split by 'persona', 'channel' or None, not {by!r}")

    def _stack(self, name: str, where: tuple) -> np.ndarray:
        """[replication, ...] of a field summed over the cells of a group."""
        return np.stack([self.counts[r][name][where].sum(axis=(0, 1)) for r in self._reps()])

    # -- tables ------------------------------------------------------------------------------

    def funnel(self, by: str | None = "persona") -> pd.DataFrame:
        """The funnel table, as :func:`sim.analysis.funnel` gives for the same log."""
        groups = [
            (
                name,
                self._stack("reached", w).astype(float),
                self._stack("entrants", w).astype(float),
                self._stack("before", w).astype(float),
            )
            for name, w in self._groups(by)
        ]
        return funnel_table(groups, self.stages, np.array(self.end_stages), by)

    def _curve(self, ended: np.ndarray, censored: np.ndarray) -> pd.DataFrame:
        return grid_kaplan_meier(ended, censored)

    def retention(self, by: str | None = "persona") -> pd.DataFrame:
        """Kaplan-Meier survival since first purchase per group, pooled over replications, on
        the grid: group, day, survival, ci_low, ci_high, at_risk."""
        frames = []
        for name, w in self._groups(by):
            curve = self._curve(
                self._stack("ended", w).sum(axis=0), self._stack("censored", w).sum(axis=0)
            )
            curve.insert(0, by or "group", name)
            frames.append(curve)
        out = pd.concat(frames, ignore_index=True)
        return out.drop(columns="group") if by is None else out

    def retention_summary(
        self, by: str | None = "persona", days: tuple[int, ...] = (30, 90, 180, 365)
    ) -> pd.DataFrame:
        """As :func:`sim.analysis.retention_summary` on the same log (survival on the grid)."""
        days = tuple(d for d in days if d < self.horizon_days)
        reps = self.replications
        rows = []
        for name, w in self._groups(by):
            ended = self._stack("ended", w).sum(axis=0)
            censored = self._stack("censored", w).sum(axis=0)
            entrants = self._stack("entrants", w)
            revenue = self._stack("revenue", w)
            buyers = self._stack("buyers", w).sum()
            purchases = self._stack("purchases", w).sum()
            repeaters = self._stack("repeaters", w).sum()
            with np.errstate(invalid="ignore", divide="ignore"):
                rev, rev_lo, rev_hi = mean_ci(revenue / entrants)
            row: dict[str, Any] = {by or "group": name, "purchasers": buyers / reps}
            surv = grid_survival(ended, censored)
            for d, s in zip(days, survival_on_days(surv, days, buyers), strict=True):
                row[f"active_day_{d}"] = s
            row["median_lifetime_days"] = grid_median(surv) if buyers else np.nan
            row["repeat_purchase_rate"] = repeaters / buyers if buyers else np.nan
            row["purchases_per_purchaser"] = purchases / buyers if buyers else np.nan
            row.update(
                revenue_per_customer=float(rev),
                revenue_ci_low=float(rev_lo),
                revenue_ci_high=float(rev_hi),
            )
            rows.append(row)
        out = pd.DataFrame(rows)
        return out.drop(columns="group") if by is None else out

    def time_to_purchase(self, by: str | None = "persona") -> pd.DataFrame:
        """As :func:`sim.analysis.time_to_purchase` (quartiles rounded up to the grid)."""
        rows = []
        for name, w in self._groups(by):
            hist = self._stack("wait_hist", w).sum(axis=0)
            buyers = hist.sum()
            entrants = self._stack("entrants", w).sum()
            if buyers:
                cum = np.cumsum(hist) / buyers
                q = [np.searchsorted(cum, p - 1e-12) / GRID for p in (0.25, 0.5, 0.75)]
                mean = self._stack("wait_sum", w).sum() / buyers
            else:
                q, mean = [np.nan] * 3, np.nan
            rows.append(
                {
                    by or "group": name,
                    "share_purchased": buyers / max(entrants, 1),
                    "mean_days": mean,
                    "q25_days": q[0],
                    "median_days": q[1],
                    "q75_days": q[2],
                }
            )
        out = pd.DataFrame(rows)
        return out.drop(columns="group") if by is None else out

    def costs(self, interventions: Sequence[Intervention]) -> pd.DataFrame:
        """As :func:`sim.analysis.intervention_costs` on the same log."""
        reps = self._reps()
        size = max(reps) + 1 if reps else 0
        counts = np.zeros((3, size, len(interventions)), dtype=np.int64)
        for r in reps:
            for j, name in enumerate(_IV_FIELDS):
                counts[j, r] = self.counts[r][name][: len(interventions)]
        return cost_table(interventions, self.horizon_days, reps, *counts)

    def metrics(
        self,
        interventions: Sequence[Intervention] = (),
        days: tuple[int, ...] = (30, 90, 180),
    ) -> pd.DataFrame:
        """As :func:`sim.analysis.replication_metrics` on the same log: replication, persona,
        metric, value (survival on the grid)."""
        reps = self._reps()
        days = tuple(d for d in days if d < self.horizon_days)
        transient = [i for i, end in enumerate(self.end_stages) if not end]
        costs = self.costs(interventions).groupby("replication")["total"].sum()
        cost = costs.reindex(list(reps), fill_value=0.0).to_numpy(dtype=float)
        rows: list[tuple[int, str, str, float]] = []

        def add(group: str, metric: str, values: np.ndarray) -> None:
            rows.extend((r, group, metric, float(v)) for r, v in zip(reps, values, strict=True))

        for name, w in self._groups("persona"):
            n = self._stack("entrants", w).astype(float)
            n_buy = self._stack("buyers", w).astype(float)
            ended, censored = self._stack("ended", w), self._stack("censored", w)
            with np.errstate(invalid="ignore", divide="ignore"):
                add(name, "customers", n)
                add(name, "conversion", n_buy / n)
                reached = self._stack("reached", w)
                for s in transient:
                    add(name, f"reach_{self.stages[s]}", reached[:, s] / n)
                add(name, "time_to_first_purchase", self._stack("wait_sum", w) / n_buy)
                surv = np.full((len(reps), len(days)), np.nan)
                med = np.full(len(reps), np.nan)
                for j in range(len(reps)):
                    if n_buy[j]:
                        curve = grid_survival(ended[j], censored[j])
                        surv[j] = survival_on_days(curve, days, n_buy[j])
                        med[j] = grid_median(curve)
                for i, d in enumerate(days):
                    add(name, f"active_day_{d}", surv[:, i])
                add(name, "median_lifetime_days", med)
                add(name, "purchases_per_customer", self._stack("purchases", w) / n)
                add(name, "repeat_purchase_rate", self._stack("repeaters", w) / n_buy)
                revenue = self._stack("revenue", w)
                add(name, "revenue", revenue)
                add(name, "revenue_per_customer", revenue / n)
                if name == ALL:
                    add(name, "cost", cost)
                    add(name, "profit", revenue - cost)
                    add(name, "profit_per_customer", (revenue - cost) / n)
        return pd.DataFrame(rows, columns=["replication", "persona", "metric", "value"])


def grid_survival(ended: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival at the end of each grid step from ended and censored counts
    per step (censored at a step are at risk for its events, as in the exact estimator)."""
    total = ended.sum() + censored.sum()
    left = total - np.concatenate([[0], np.cumsum(ended + censored)[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        hazard = np.where(left > 0, ended / np.maximum(left, 1), 0.0)
    return np.cumprod(1.0 - hazard)


def survival_on_days(surv: np.ndarray, days: Sequence[float], n: float) -> np.ndarray:
    """Survival after whole days (NaN without purchasers)."""
    if not n:
        return np.full(len(days), np.nan)
    idx = np.minimum((np.asarray(days, dtype=float) * GRID).astype(np.int64), len(surv) - 1)
    return surv[idx]


def grid_median(surv: np.ndarray) -> float:
    """First grid day the survival is 0.5 or below, with the tolerance of
    :func:`sim.analysis.survival.median_lifetime` (NaN if never)."""
    below = np.flatnonzero(surv <= 0.5 + MEDIAN_TOLERANCE)
    return float(below[0] / GRID) if len(below) else float("nan")


def grid_kaplan_meier(
    ended: np.ndarray, censored: np.ndarray, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """The survival curve on the grid with a log-log (Greenwood) band: day, survival, ci_low,
    ci_high, at_risk; one row for day 0 and one per step with an ending."""
    from scipy import stats

    columns = ["day", "survival", "ci_low", "ci_high", "at_risk"]
    total = ended.sum() + censored.sum()
    if total == 0:
        return pd.DataFrame(columns=columns)
    left = total - np.concatenate([[0], np.cumsum(ended + censored)[:-1]])
    surv = grid_survival(ended, censored)
    with np.errstate(invalid="ignore", divide="ignore"):
        greenwood = np.cumsum(np.where(left > ended, ended / (left * (left - ended)), 0.0))
        z = stats.norm.ppf(0.5 + confidence / 2)
        se = np.sqrt(greenwood) / np.abs(np.log(surv))
        low = surv ** np.exp(z * se)
        high = surv ** np.exp(-z * se)
    steps = np.flatnonzero((ended > 0) & (np.arange(len(ended)) > 0))
    frame = pd.DataFrame(
        {
            "day": np.r_[0.0, steps / GRID],
            "survival": np.r_[1.0, surv[steps]],
            "ci_low": np.r_[1.0, low[steps]],
            "ci_high": np.r_[1.0, high[steps]],
            "at_risk": np.r_[total, left[steps]].astype(np.int64),
        }
    )
    return frame
