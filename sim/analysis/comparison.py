"""Comparison tables: scenarios side by side from their per-replication metrics.

Scenarios run with the same seed share their random numbers wherever they do not differ
(common random numbers), so differences are taken replication by replication (paired) and
small effects show with few replications. Means get t-based 95% intervals over replications;
differences from the baseline get paired t intervals and p-values (Welch's test when streams
are independent), Holm-adjusted across the scenarios and metrics of each persona; a bootstrap
interval is available for skewed metrics.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sim.analysis.stats import bootstrap_interval, difference, holm, t_interval
from sim.events import ALL

#: Metrics compared by default (see :func:`sim.analysis.metrics.replication_metrics`).
KEY_METRICS = (
    "conversion",
    "time_to_first_purchase",
    "active_day_90",
    "median_lifetime_days",
    "purchases_per_customer",
    "revenue_per_customer",
    "revenue",
    "cost",
    "profit",
)


def comparison_summary(
    per_replication: pd.DataFrame,
    scenarios: Sequence[str],
    baseline: str,
    paired: bool,
    seed: int,
    metrics: Sequence[str] | None = KEY_METRICS,
    persona: str | None = ALL,
    bootstrap: bool = False,
) -> pd.DataFrame:
    """One tidy row per scenario, persona and metric from per-replication metrics (scenario,
    replication, persona, metric, value): mean with 95% CI, difference from the baseline with
    its CI (paired when the scenarios shared random numbers, else Welch), relative uplift,
    p-value and Holm-adjusted p-value across the scenarios and metrics of each persona.
    ``bootstrap`` gives BCa intervals in place of t intervals."""
    data = per_replication
    if metrics:
        data = data[data["metric"].isin(metrics)]
    if persona is not None:
        data = data[data["persona"] == persona]
    wide = data.pivot_table(
        index=["persona", "metric", "replication"],
        columns="scenario",
        values="value",
        observed=True,
        dropna=False,
    )
    # rows in reading order: 'all' then personas as defined, metrics as asked
    order = list(metrics) if metrics else list(dict.fromkeys(data["metric"]))
    present = set(zip(data["persona"], data["metric"], strict=True))
    rows = []
    for who, metric in itertools.product(dict.fromkeys(data["persona"]), order):
        if (who, metric) not in present:
            continue
        block = wide.loc[(who, metric)]
        base = block[baseline].to_numpy()
        for name in scenarios:
            y = block[name].to_numpy()
            keep = ~np.isnan(y) & ~np.isnan(base) if paired else ~np.isnan(y)
            mean, low, high = t_interval(y[~np.isnan(y)])
            row = {
                "scenario": name,
                "persona": who,
                "metric": metric,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
            }
            if name == baseline:
                row.update(
                    diff_vs_baseline=0.0,
                    diff_ci_low=0.0,
                    diff_ci_high=0.0,
                    relative_uplift=0.0,
                    p_value=math.nan,
                )
            else:
                x = base[keep] if paired else base[~np.isnan(base)]
                diff, dlow, dhigh, p = difference(x, y[keep], paired)
                if bootstrap:
                    low, high = bootstrap_interval(y[~np.isnan(y)], seed)
                    row.update(ci_low=low, ci_high=high)
                    if paired:
                        dlow, dhigh = bootstrap_interval(y[keep] - x, seed)
                known = base[~np.isnan(base)]
                base_mean = float(known.mean()) if len(known) else math.nan
                row.update(
                    diff_vs_baseline=diff,
                    diff_ci_low=dlow,
                    diff_ci_high=dhigh,
                    relative_uplift=diff / base_mean if base_mean else math.nan,
                    p_value=p,
                )
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_adjusted"] = np.nan
    for idx in out.groupby("persona").groups.values():
        out.loc[idx, "p_adjusted"] = holm(out.loc[idx, "p_value"].to_numpy())
    if persona is not None:
        out = out.drop(columns="persona")
    return out


def comparison_roi(
    per_replication: pd.DataFrame, scenarios: Sequence[str], baseline: str, paired: bool
) -> pd.DataFrame:
    """Per scenario against the baseline (means per replication, with 95% CIs on the
    increments): cost, incremental cost, incremental conversions (buyers), incremental
    revenue, incremental profit, cost per incremental conversion, and ROI = incremental
    profit / incremental cost."""
    data = per_replication[per_replication["persona"] == ALL]
    wide = data.pivot_table(
        index=["metric", "replication"], columns="scenario", values="value", observed=True
    )
    buyers = wide.loc["conversion"] * wide.loc["customers"]
    base = baseline
    rows = []
    for name in scenarios:
        if name == base:
            continue
        pieces = {}
        for label, frame in (
            ("cost", wide.loc["cost"]),
            ("conversions", buyers),
            ("revenue", wide.loc["revenue"]),
            ("profit", wide.loc["profit"]),
        ):
            diff, low, high, _ = difference(frame[base].to_numpy(), frame[name].to_numpy(), paired)
            pieces[label] = (diff, low, high)
        cost = float(wide.loc["cost"][name].mean())
        d_cost = pieces["cost"][0]
        rows.append(
            {
                "scenario": name,
                "cost": cost,
                "incremental_cost": d_cost,
                "incremental_conversions": pieces["conversions"][0],
                "incremental_conversions_ci_low": pieces["conversions"][1],
                "incremental_conversions_ci_high": pieces["conversions"][2],
                "incremental_revenue": pieces["revenue"][0],
                "incremental_revenue_ci_low": pieces["revenue"][1],
                "incremental_revenue_ci_high": pieces["revenue"][2],
                "incremental_profit": pieces["profit"][0],
                "incremental_profit_ci_low": pieces["profit"][1],
                "incremental_profit_ci_high": pieces["profit"][2],
                "cost_per_incremental_conversion": (
                    d_cost / pieces["conversions"][0] if pieces["conversions"][0] > 0 else math.nan
                ),
                "roi": pieces["profit"][0] / d_cost if d_cost > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)
