"""Per-replication metrics of a run: the numbers scenario comparisons are made of."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sim.analysis.customers import customer_arrays, customer_groups, reach_matrix
from sim.analysis.survival import kaplan_meier, lifetimes, median_lifetime, survival_at
from sim.events import ALL, EventLog
from sim.model.intervention import CapacityChange, Intervention, SatisfactionChange
from sim.model.journey import Journey
from sim.model.logit import credited_moves


def credited_purchases(
    log: EventLog, interventions: Sequence[Intervention], journey: Journey
) -> np.ndarray:
    """Rows x interventions booleans: the purchases each intervention is credited with.

    A purchase is credited to an intervention when the intervention acted on the decision
    behind it (its bit in the row's ``treatment``) and changed that decision
    (:func:`sim.model.logit.credited_moves`: an effect on the way out of, or the time in, the
    stage the customer left, or on the order's value). A later renewal made merely while the
    intervention's window is still open is not credited to it."""
    is_purchase = log.purchase_mask[log.to_stage] & (log.from_stage >= 0)
    source = np.where(log.from_stage >= 0, log.from_stage, 0)
    out = np.zeros((len(log), len(interventions)), dtype=bool)
    for i, iv in enumerate(interventions):
        moves = credited_moves(journey, iv)
        acted = (log.treatment >> i & 1).astype(bool)
        out[:, i] = is_purchase & acted & moves[source, log.to_stage]
    return out


def satisfaction_credits(log: EventLog, interventions: Sequence[Intervention]) -> np.ndarray:
    """Per replication x intervention: the satisfaction changes (goodwill credits) each
    intervention made, read from the log as the engine made them: one per
    ``satisfaction_change`` effect on each row that ends a visit (not an abandoned one) to its
    stage, with its outcome, while the intervention acted (its ``treatment`` bit)."""
    size = int(log.replication.max()) + 1 if len(log) else 0
    out = np.zeros((size, len(interventions)), dtype=np.int64)
    served = (log.from_stage >= 0) & ~log.abandoned
    for i, iv in enumerate(interventions):
        acted = served & (log.treatment >> i & 1).astype(bool)
        for e in iv.of_kind(SatisfactionChange):
            rows = acted
            if e.stage:
                rows = rows & (log.from_stage == log.stages.index(e.stage))
            if e.outcome:
                code = log.outcomes.index(e.outcome) if e.outcome in log.outcomes else -2
                rows = rows & (log.outcome == code)
            out[:, i] += np.bincount(log.replication[rows], minlength=size)
    return out


def intervention_costs(
    log: EventLog, interventions: Sequence[Intervention], journey: Journey | None = None
) -> pd.DataFrame:
    """Cost of each intervention in each replication, from the event log: ``fixed`` once,
    ``reached`` customers x the per-reached price (``reach_cost``), ``purchases`` credited
    to the intervention (see :func:`credited_purchases`) x its ``per_conversion`` price
    (``purchase_cost``), ``credits`` (satisfaction changes, :func:`satisfaction_credits`) x
    its ``per_credit`` price (``credit_cost``); ``total`` is their sum. ``journey`` (the
    scenario's) is needed when there are interventions."""
    if interventions and journey is None:
        raise TypeError("intervention_costs needs journey= (the scenario's journey)")
    credited = credited_purchases(log, interventions, journey) if interventions else None
    rep_ids = np.unique(log.replication)
    size = int(rep_ids.max()) + 1 if len(rep_ids) else 0
    counts = np.zeros((3, size, len(interventions)), dtype=np.int64)
    for i in range(len(interventions)):
        counts[0, :, i] = np.bincount(
            log.reach_replication[log.reach_intervention == i], minlength=size
        )
        counts[1, :, i] = np.bincount(log.replication[credited[:, i]], minlength=size)
        # a referred customer's entry row carries the interventions acting on their referrer
        referral = (log.from_stage < 0) & (log.referrer >= 0) & (log.treatment >> i & 1 > 0)
        counts[2, :, i] = np.bincount(log.replication[referral], minlength=size)
    credits = satisfaction_credits(log, interventions)
    return cost_table(interventions, log.horizon_days, rep_ids.tolist(), *counts, credits=credits)


def cost_table(
    interventions: Sequence[Intervention],
    horizon_days: float,
    replications: Sequence[int],
    reached: np.ndarray,
    purchases: np.ndarray,
    referrals: np.ndarray,
    credits: np.ndarray | None = None,
) -> pd.DataFrame:
    """The cost table from counts indexed [replication, intervention]: customers reached,
    purchases credited, customers referred and satisfaction credits (none when not given);
    capacity is charged per unit and day of the
    window within the horizon. Columns as :func:`intervention_costs`."""
    rows = []
    for i, iv in enumerate(interventions):
        start, end = (min(w, horizon_days) for w in iv.window_days)
        unit_days = sum(e.units for e in iv.of_kind(CapacityChange)) * (end - start)
        for r in replications:
            rows.append(
                {
                    "replication": int(r),
                    "intervention": iv.name,
                    "fixed": iv.cost.fixed,
                    "reached": int(reached[r, i]),
                    "reach_cost": reached[r, i] * iv.cost.per_reached,
                    "purchases": int(purchases[r, i]),
                    "purchase_cost": purchases[r, i] * iv.cost.per_conversion,
                    "referrals": int(referrals[r, i]),
                    "referral_cost": referrals[r, i] * iv.cost.per_referral,
                    "unit_days": unit_days,
                    "capacity_cost": unit_days * iv.cost.per_unit_day,
                    "credits": int(credits[r, i]) if credits is not None else 0,
                    "credit_cost": (credits[r, i] if credits is not None else 0)
                    * iv.cost.per_credit,
                }
            )
    frame = pd.DataFrame(
        rows,
        columns=[
            "replication",
            "intervention",
            "fixed",
            "reached",
            "reach_cost",
            "purchases",
            "purchase_cost",
            "referrals",
            "referral_cost",
            "unit_days",
            "capacity_cost",
            "credits",
            "credit_cost",
        ],
    )
    frame["total"] = (
        frame["fixed"]
        + frame["reach_cost"]
        + frame["purchase_cost"]
        + frame["referral_cost"]
        + frame["capacity_cost"]
        + frame["credit_cost"]
    )
    return frame


def replication_metrics(
    log: EventLog,
    interventions: Sequence[Intervention] = (),
    days: tuple[int, ...] = (30, 90, 180),
    customers: dict | None = None,
    journey: Journey | None = None,
) -> pd.DataFrame:
    """Long table: replication, persona ('all' and each persona), metric, value.

    Metrics: ``customers``; ``conversion`` (share who bought); ``reach_<stage>`` (share who
    entered each transient stage); ``time_to_first_purchase`` (mean days, purchasers);
    ``active_day_<d>`` (Kaplan-Meier share still active d days after first purchase) and
    ``median_lifetime_days``; ``purchases_per_customer``; ``repeat_purchase_rate`` (share of
    purchasers who bought again); ``revenue`` and ``revenue_per_customer``; and for 'all'
    only, ``cost`` (interventions), ``profit`` (revenue - cost) and ``profit_per_customer``.
    """
    c = customers if customers is not None else customer_arrays(log)
    reps = np.unique(c["replication"])
    horizon = log.horizon_days
    days = tuple(d for d in days if d < horizon)
    duration, observed, bought = lifetimes(c, horizon)
    bought_rep = c["replication"][bought]
    transient = np.flatnonzero(~log.end_mask).tolist()
    reached = reach_matrix(log)
    wait = c["first_purchase"] - c["arrival"]
    groups = customer_groups(log, "persona")
    n_rep = int(reps.max()) + 1 if len(reps) else 0
    rows: list[tuple[int, str, str, float]] = []

    def add(group: str, metric: str, values: np.ndarray) -> None:
        rows.extend((int(r), group, metric, float(values[r])) for r in reps)

    costs = intervention_costs(log, interventions, journey).groupby("replication")["total"].sum()
    cost = np.zeros(n_rep)
    if len(costs):
        cost[costs.index.to_numpy(dtype=np.int64)] = costs.to_numpy()
    for name, members in groups:
        rep = c["replication"][members]
        n = np.bincount(rep, minlength=n_rep).astype(float)
        buyers = members & ~np.isnan(c["first_purchase"])
        n_buy = np.bincount(c["replication"][buyers], minlength=n_rep).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            add(name, "customers", n)
            add(name, "conversion", n_buy / n)
            for s in transient:
                hits = np.bincount(rep, weights=reached[members, s], minlength=n_rep)
                add(name, f"reach_{log.stages[s]}", hits / n)
            total_wait = np.bincount(
                c["replication"][buyers], weights=wait[buyers], minlength=n_rep
            )
            add(name, "time_to_first_purchase", total_wait / n_buy)
            sel = members[bought]
            surv = np.full((n_rep, len(days)), np.nan)
            med = np.full(n_rep, np.nan)
            for r in reps:
                mine = sel & (bought_rep == r)
                if mine.any():
                    curve = kaplan_meier(duration[mine], observed[mine])
                    surv[r] = survival_at(curve, np.array(days, dtype=float))
                    med[r] = median_lifetime(curve)
            for j, d in enumerate(days):
                add(name, f"active_day_{d}", surv[:, j])
            add(name, "median_lifetime_days", med)
            purchases = np.bincount(rep, weights=c["purchases"][members], minlength=n_rep)
            add(name, "purchases_per_customer", purchases / n)
            repeaters = np.bincount(
                c["replication"][buyers], weights=c["purchases"][buyers] >= 2, minlength=n_rep
            )
            add(name, "repeat_purchase_rate", repeaters / n_buy)
            revenue = np.bincount(rep, weights=c["revenue"][members], minlength=n_rep)
            add(name, "revenue", revenue)
            add(name, "revenue_per_customer", revenue / n)
            if name == ALL:
                add(name, "cost", cost)
                add(name, "profit", revenue - cost)
                add(name, "profit_per_customer", (revenue - cost) / n)
    return pd.DataFrame(rows, columns=["replication", "persona", "metric", "value"])
