"""The result of a run: the event log and the analyses an analyst asks of it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.customers import customer_arrays, customer_groups, customer_table
from sim.analysis.funnel import funnel
from sim.analysis.retention import kaplan_meier, lifetimes, median_lifetime, survival_at
from sim.analysis.stats import mean_ci
from sim.events import EventLog
from sim.model.scenario import Scenario

RETENTION_DAYS = (30, 90, 180, 365)


@dataclass(frozen=True, eq=False)
class RunResult:
    """Replications of one scenario: the event log (``log``, ``events``) and its analyses.

    ``complete`` is False when a run was interrupted and holds only the replications that
    finished. ``provenance`` records seed, package version, engine and scenario hash.
    """

    scenario: Scenario
    log: EventLog
    provenance: dict[str, Any]
    complete: bool = True

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """The event log as a DataFrame (one row per transition; entry rows have no from_stage)."""
        return self.log.to_frame()

    @property
    def replications(self) -> int:
        """Number of replications held."""
        return self.log.replications

    @functools.cached_property
    def _flags(self) -> tuple[np.ndarray, np.ndarray]:
        stages = self.scenario.journey.stages
        return (np.array([s.absorbing for s in stages]), np.array([s.purchase for s in stages]))

    @functools.cached_property
    def _customers(self) -> dict[str, np.ndarray]:
        return customer_arrays(self.log, *self._flags)

    def customers(self) -> pd.DataFrame:
        """One row per customer and replication: persona, channel, arrival, final stage, whether
        the journey ended, first purchase day, number of purchases and revenue."""
        return customer_table(self.log, *self._flags)

    def funnel(self, by: str | None = "persona") -> pd.DataFrame:
        """Customers reaching each stage with overall and step conversion (see
        :func:`sim.analysis.funnel`); ``by`` is 'persona', 'channel' or None."""
        return funnel(self.log, self.scenario.journey, by=by)

    def _groups(self, by: str | None) -> list[tuple[str, np.ndarray]]:
        return customer_groups(self.log, by)

    def retention(self, by: str | None = "persona") -> pd.DataFrame:
        """Kaplan-Meier survival of active customers since their first purchase, censored at
        the horizon, pooled over replications: columns group, day, survival, ci_low, ci_high,
        at_risk."""
        c = self._customers
        duration, observed, bought = lifetimes(c, self.log.horizon_days)
        frames = []
        for name, rows in self._groups(by):
            sel = rows[bought]
            curve = kaplan_meier(duration[sel], observed[sel])
            curve.insert(0, by or "group", name)
            frames.append(curve)
        out = pd.concat(frames, ignore_index=True)
        return out.drop(columns="group") if by is None else out

    def retention_summary(
        self, by: str | None = "persona", days: tuple[int, ...] = RETENTION_DAYS
    ) -> pd.DataFrame:
        """Per group: purchasers, share still active at chosen days after first purchase
        (Kaplan-Meier), median active lifetime, repeat-purchase rate, purchases per purchaser,
        and revenue per customer (mean with 95% CI over replications)."""
        c = self._customers
        horizon = self.log.horizon_days
        duration, observed, bought = lifetimes(c, horizon)
        days = tuple(d for d in days if d < horizon)
        reps = self.log.replications
        rows = []
        for name, members in self._groups(by):
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
            row.update(revenue_per_customer=rev, revenue_ci_low=rev_lo, revenue_ci_high=rev_hi)
            rows.append(row)
        out = pd.DataFrame(rows)
        return out.drop(columns="group") if by is None else out

    def time_to_purchase(self, by: str | None = "persona") -> pd.DataFrame:
        """Days from entry to first purchase among customers who bought within the horizon:
        share who bought, mean, median and quartiles."""
        c = self._customers
        wait = c["first_purchase"] - c["arrival"]
        rows = []
        for name, members in self._groups(by):
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
        out = pd.DataFrame(rows)
        return out.drop(columns="group") if by is None else out

    def costs(self) -> pd.DataFrame:
        """Cost of each intervention per replication (fixed, per reached, per conversion)."""
        from sim.analysis.metrics import intervention_costs

        return intervention_costs(self.log, self.scenario)

    def metrics(self, days: tuple[int, ...] = (30, 90, 180)) -> pd.DataFrame:
        """Per-replication metrics as a long table (replication, persona, metric, value)."""
        from sim.analysis.metrics import replication_metrics

        return replication_metrics(self, days)

    def _repr_html_(self) -> str:
        from sim.display import html_block, percent

        funnel = self.funnel(by=None)[["stage", "customers", "conversion", "step_conversion"]]
        retention = self.retention_summary(by="persona")
        keep = [c for c in retention.columns if c.startswith("active_day_")] + [
            "persona",
            "purchasers",
            "median_lifetime_days",
            "repeat_purchase_rate",
            "revenue_per_customer",
        ]
        retention = retention[[c for c in retention.columns if c in keep]]
        shares = {
            c: percent
            for c in (
                "conversion",
                "step_conversion",
                "repeat_purchase_rate",
                *[c for c in keep if c.startswith("active_day_")],
            )
        }
        return html_block(
            repr(self),
            [],
            {"Funnel (mean per replication)": funnel, "Retention after first purchase": retention},
            shares,
        )

    def __repr__(self) -> str:
        p = self.provenance
        state = "" if self.complete else ", INCOMPLETE"
        return (
            f"RunResult({self.scenario.name!r}: {self.replications} replication(s), "
            f"{int(self.log.customers.sum()):,} customers, {len(self.log):,} events, "
            f"seed {p.get('seed')}, engine {p.get('engine')}{state})"
        )
