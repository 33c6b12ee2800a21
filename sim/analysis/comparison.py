"""Comparison tables: scenarios side by side from their per-replication metrics.

Scenarios run with the same seed share their random numbers wherever they do not differ
(common random numbers), so differences are taken replication by replication (paired) and
small effects show with few replications. Means get t-based 95% intervals over replications;
differences from the baseline get paired t intervals and p-values (Welch's test when streams
are independent); a bootstrap interval is available for skewed metrics.

Holm's family is fixed, whatever a table shows: for each persona, every scenario other than
the baseline times every metric of :data:`KEY_METRICS` that the runs produced. ``p_adjusted``
is the Holm-adjusted p-value within that family, so a number printed by ``sim compare`` (key
metrics) and the same number in ``comparison.csv`` (all metrics) agree, and asking for one
metric does not make its p-value look smaller. Metrics outside the family (the ``reach_*``
shares, ``customers``, ...) are descriptive: their ``p_adjusted`` is NaN and their
``p_value`` is unadjusted.
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
    p-value and Holm-adjusted p-value (the family is every non-baseline scenario x
    :data:`KEY_METRICS` of each persona, whichever ``metrics`` are asked for; NaN outside it).
    ``bootstrap`` gives BCa intervals in place of t intervals, for every row."""
    data = per_replication
    if persona is not None:
        data = data[data["persona"] == persona]
    asked = list(metrics) if metrics else list(dict.fromkeys(data["metric"]))
    out = _rows(data, scenarios, baseline, paired, seed, asked, bootstrap)
    if out.empty:
        return out
    family = _holm_family(data, scenarios, baseline, paired)
    keys = zip(out["persona"], out["metric"], out["scenario"], strict=True)
    out["p_adjusted"] = [family.get(k, math.nan) for k in keys]
    if persona is not None:
        out = out.drop(columns="persona")
    return out


def _wide(data: pd.DataFrame) -> pd.DataFrame:
    return data.pivot_table(
        index=["persona", "metric", "replication"],
        columns="scenario",
        values="value",
        observed=True,
        dropna=False,
    )


def _pair(base: np.ndarray, y: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """The baseline's and a scenario's values that enter their difference."""
    if paired:
        keep = ~np.isnan(y) & ~np.isnan(base)
        return base[keep], y[keep]
    return base[~np.isnan(base)], y[~np.isnan(y)]


def _holm_family(
    data: pd.DataFrame, scenarios: Sequence[str], baseline: str, paired: bool
) -> dict[tuple[str, str, str], float]:
    """Holm-adjusted p-values of the fixed family: per persona, every non-baseline scenario x
    every metric of :data:`KEY_METRICS` present."""
    data = data[data["metric"].isin(KEY_METRICS)]
    if data.empty:
        return {}
    wide = _wide(data)
    present = set(zip(data["persona"], data["metric"], strict=True))
    adjusted: dict[tuple[str, str, str], float] = {}
    for who in dict.fromkeys(data["persona"]):
        keys, p_values = [], []
        for metric in KEY_METRICS:
            if (who, metric) not in present:
                continue
            block = wide.loc[(who, metric)]
            base = block[baseline].to_numpy()
            for name in scenarios:
                if name == baseline:
                    continue
                x, y = _pair(base, block[name].to_numpy(), paired)
                keys.append((who, metric, name))
                p_values.append(difference(x, y, paired)[3])
        adjusted.update(zip(keys, holm(np.array(p_values, dtype=float)), strict=True))
    return adjusted


def _rows(
    data: pd.DataFrame,
    scenarios: Sequence[str],
    baseline: str,
    paired: bool,
    seed: int,
    asked: list[str],
    bootstrap: bool,
) -> pd.DataFrame:
    data = data[data["metric"].isin(asked)]
    wide = _wide(data)
    # rows in reading order: 'all' then personas as defined, metrics as asked
    present = set(zip(data["persona"], data["metric"], strict=True))
    rows = []
    for who, metric in itertools.product(dict.fromkeys(data["persona"]), asked):
        if (who, metric) not in present:
            continue
        block = wide.loc[(who, metric)]
        base = block[baseline].to_numpy()
        for name in scenarios:
            y = block[name].to_numpy()
            known = y[~np.isnan(y)]
            mean, low, high = t_interval(known)
            if bootstrap:
                low, high = bootstrap_interval(known, seed)
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
                x, yy = _pair(base, y, paired)
                diff, dlow, dhigh, p = difference(x, yy, paired)
                if bootstrap and paired:
                    dlow, dhigh = bootstrap_interval(yy - x, seed)
                base_known = base[~np.isnan(base)]
                base_mean = float(base_known.mean()) if len(base_known) else math.nan
                row.update(
                    diff_vs_baseline=diff,
                    diff_ci_low=dlow,
                    diff_ci_high=dhigh,
                    relative_uplift=diff / base_mean if base_mean else math.nan,
                    p_value=p,
                )
            rows.append(row)
    return pd.DataFrame(rows)


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
