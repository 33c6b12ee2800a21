"""Comparing scenarios: what an intervention does, with honest uncertainty.

Scenarios run with the same seed share their random numbers wherever they do not differ
(common random numbers: the same customers, arrivals and draws), so differences are taken
replication by replication (paired), and small effects show with few replications. Means get
t-based 95% intervals over replications; differences from the baseline get paired t intervals
and p-values (Welch's test when streams are independent), Holm-adjusted across the scenarios
and metrics of each persona; a bootstrap interval is available for skewed metrics.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sim.analysis.stats import CONFIDENCE
from sim.engine import CompiledScenario
from sim.errors import ScenarioError
from sim.events import EventLog
from sim.model.scenario import Scenario
from sim.results import RunResult
from sim.runner import check_count, check_seed, provenance, simulate_tasks

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


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    order = np.argsort(q)
    m = len(q)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * q[order])
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out


def _t_interval(x: np.ndarray) -> tuple[float, float, float]:
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(x, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def _bootstrap_interval(x: np.ndarray, seed: int) -> tuple[float, float]:
    if len(x) < 3 or np.all(x == x[0]):
        return (float(x[0]), float(x[0])) if len(x) and np.all(x == x[0]) else (math.nan,) * 2
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=2000,
        method="BCa",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _difference(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, float, float, float]:
    """Mean of y - x, its 95% interval and the p-value of 'no difference'."""
    if paired:
        d = y - x
        mean, low, high = _t_interval(d)
        if len(d) < 2:
            return mean, low, high, math.nan
        sd = np.std(d, ddof=1)
        if sd == 0:
            return mean, mean, mean, (1.0 if mean == 0 else 0.0)
        return mean, low, high, float(stats.ttest_1samp(d, 0.0).pvalue)
    mean = float(np.mean(y) - np.mean(x))
    if len(x) < 2 or len(y) < 2:
        return mean, math.nan, math.nan, math.nan
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    if vx + vy == 0:
        return mean, mean, mean, (1.0 if mean == 0 else 0.0)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * math.sqrt(vx + vy)
    p = float(stats.ttest_ind(y, x, equal_var=False).pvalue)
    return mean, mean - half, mean + half, p


@dataclass(eq=False)
class Comparison:
    """Scenarios run side by side. ``per_replication`` keeps every replication's metrics
    (scenario, replication, persona, metric, value); ``results`` each scenario's run."""

    scenarios: dict[str, Scenario]
    baseline: str
    results: dict[str, RunResult]
    per_replication: pd.DataFrame
    seed: int
    paired: bool
    replications: int
    converged: bool | None = None
    elapsed_seconds: float = 0.0
    _cache: dict[Any, pd.DataFrame] = field(default_factory=dict, repr=False)

    def summary(
        self,
        metrics: Sequence[str] | None = KEY_METRICS,
        persona: str | None = "all",
        bootstrap: bool = False,
    ) -> pd.DataFrame:
        """One tidy row per scenario, persona and metric: mean with 95% CI, difference from the
        baseline with its CI, relative uplift, p-value and Holm-adjusted p-value. ``metrics``
        None means all; ``persona`` None means every persona; ``bootstrap`` gives BCa intervals
        (for skewed metrics such as revenue) in place of t intervals."""
        key = (tuple(metrics) if metrics else None, persona, bootstrap)
        if key not in self._cache:
            self._cache[key] = self._summary(metrics, persona, bootstrap)
        return self._cache[key].copy()

    def _summary(self, metrics, persona, bootstrap) -> pd.DataFrame:
        data = self.per_replication
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
            base = block[self.baseline].to_numpy()
            for name in self.scenarios:
                y = block[name].to_numpy()
                keep = ~np.isnan(y) & ~np.isnan(base) if self.paired else ~np.isnan(y)
                mean, low, high = _t_interval(y[~np.isnan(y)])
                row = {
                    "scenario": name,
                    "persona": who,
                    "metric": metric,
                    "mean": mean,
                    "ci_low": low,
                    "ci_high": high,
                }
                if name == self.baseline:
                    row.update(
                        diff_vs_baseline=0.0,
                        diff_ci_low=0.0,
                        diff_ci_high=0.0,
                        relative_uplift=0.0,
                        p_value=math.nan,
                    )
                else:
                    x = base[keep] if self.paired else base[~np.isnan(base)]
                    diff, dlow, dhigh, p = _difference(x, y[keep], self.paired)
                    if bootstrap:
                        low, high = _bootstrap_interval(y[~np.isnan(y)], self.seed)
                        row.update(ci_low=low, ci_high=high)
                        if self.paired:
                            dlow, dhigh = _bootstrap_interval(y[keep] - x, self.seed)
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

    def roi(self) -> pd.DataFrame:
        """Per scenario against the baseline (means per replication, with 95% CIs on the
        increments): cost, incremental cost, incremental conversions (buyers), incremental
        revenue, incremental profit, cost per incremental conversion, and ROI = incremental
        profit / incremental cost."""
        data = self.per_replication[self.per_replication["persona"] == "all"]
        wide = data.pivot_table(
            index=["metric", "replication"], columns="scenario", values="value", observed=True
        )
        buyers = wide.loc["conversion"] * wide.loc["customers"]
        base = self.baseline
        rows = []
        for name in self.scenarios:
            if name == base:
                continue
            pieces = {}
            for label, frame in (
                ("cost", wide.loc["cost"]),
                ("conversions", buyers),
                ("revenue", wide.loc["revenue"]),
                ("profit", wide.loc["profit"]),
            ):
                diff, low, high, _ = _difference(
                    frame[base].to_numpy(), frame[name].to_numpy(), self.paired
                )
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
                        d_cost / pieces["conversions"][0]
                        if pieces["conversions"][0] > 0
                        else math.nan
                    ),
                    "roi": pieces["profit"][0] / d_cost if d_cost > 0 else math.nan,
                }
            )
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        from sim.display import html_block

        table = self.summary(
            metrics=("conversion", "active_day_90", "revenue_per_customer", "profit")
        )
        table = table[
            [
                "scenario",
                "metric",
                "mean",
                "diff_vs_baseline",
                "diff_ci_low",
                "diff_ci_high",
                "relative_uplift",
                "p_adjusted",
            ]
        ]
        roi = self.roi()[["scenario", "cost", "incremental_profit", "roi"]]
        return html_block(
            repr(self),
            [],
            {"Differences from the baseline (95% CI)": table, "Return on the interventions": roi},
        )

    def __repr__(self) -> str:
        kind = "paired (common random numbers)" if self.paired else "independent streams"
        return (
            f"Comparison of {len(self.scenarios)} scenarios against {self.baseline!r}: "
            f"{self.replications} replications each, seed {self.seed}, {kind}"
        )


def _names(scenarios: Mapping[str, Scenario] | Sequence[Scenario]) -> dict[str, Scenario]:
    if isinstance(scenarios, Mapping):
        named = dict(scenarios)
    else:
        named = {}
        for s in scenarios:
            if s.name in named:
                raise ScenarioError(
                    f"two scenarios are named '{s.name}'",
                    field="scenario name",
                    fix="give them different names, or pass a dict of names",
                )
            named[s.name] = s
    if len(named) < 2:
        raise ScenarioError("a comparison needs at least two scenarios", field="scenarios")
    for name, s in named.items():
        if not isinstance(s, Scenario):
            raise ScenarioError(f"'{name}' is not a Scenario: {s!r}", field="scenarios")
    return named


def compare(
    scenarios: Mapping[str, Scenario] | Sequence[Scenario],
    replications: int | str = 30,
    *,
    seed: int | None = None,
    baseline: str | None = None,
    customers: int | None = None,
    workers: int = 1,
    common_random_numbers: bool = True,
    metric: str = "conversion",
    target_half_width: float | None = None,
    max_replications: int = 300,
    batch: int = 10,
    days: tuple[int, ...] = (30, 90, 180),
    progress: bool | None = None,
) -> Comparison:
    """Run scenarios side by side and compare them with the baseline (the first, unless
    named).

    ``replications="auto"`` adds ``batch`` replications at a time until the 95% interval of
    every scenario's difference from the baseline in ``metric`` (all customers) is narrower
    than +/- ``target_half_width``, or ``max_replications`` is reached (``converged`` says
    which). With ``common_random_numbers=False`` each scenario gets independent streams (and
    differences use Welch's test): only useful to see what common random numbers buy.
    ``progress`` shows a progress bar (None: in notebooks and terminals only).
    """
    named = _names(scenarios)
    base = baseline or next(iter(named))
    if base not in named:
        raise ScenarioError(
            f"unknown baseline '{base}'", field="baseline", fix=f"one of {', '.join(named)}"
        )
    if customers is not None:
        named = {n: s.with_customers(customers) for n, s in named.items()}
    seed = check_seed(named[base].seed if seed is None else seed)
    check_count(workers, "workers")
    auto = replications == "auto"
    if auto:
        if target_half_width is None or not target_half_width > 0:
            raise ScenarioError(
                "replications='auto' needs a positive target_half_width",
                field="target_half_width",
                fix="e.g. 0.005 for conversion",
            )
        check_count(batch, "batch")
        check_count(max_replications, "max_replications")
    else:
        check_count(replications, "replications")
    compiled = {n: CompiledScenario.build(s) for n, s in named.items()}
    seeds = {
        n: seed
        if common_random_numbers
        else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        for i, n in enumerate(named)
    }
    started = time.perf_counter()
    logs: dict[Hashable, EventLog] = {}
    done = 0
    goal = batch if auto else replications
    converged = None
    while True:
        tasks = [((n, r), compiled[n], seeds[n], r) for r in range(done, goal) for n in named]
        simulate_tasks(tasks, workers, logs, progress)
        done = goal
        result = _assemble(
            named, logs, done, seeds, started, days, base, seed, common_random_numbers
        )
        if not auto:
            break
        table = result.summary(metrics=[metric])
        widths = (table["diff_ci_high"] - table["diff_ci_low"]) / 2
        widths = widths[table["scenario"] != base]
        converged = bool(len(widths) and (widths <= target_half_width).all())
        if converged or done >= max_replications:
            break
        goal = min(done + batch, max_replications)
    result.converged = converged
    result.elapsed_seconds = round(time.perf_counter() - started, 3)
    return result


def _assemble(named, logs, reps, seeds, started, days, base, seed, paired) -> Comparison:
    results, frames = {}, []
    for name, scenario in named.items():
        log = EventLog.concat([logs[(name, r)] for r in range(reps)])
        res = RunResult(
            scenario=scenario,
            log=log,
            provenance=provenance(
                scenario,
                seeds[name],
                reps,
                reps,
                int(log.customers.sum()),
                time.perf_counter() - started,
            ),
        )
        results[name] = res
        frames.append(res.metrics(days).assign(scenario=name))
    per_rep = pd.concat(frames, ignore_index=True)[
        ["scenario", "replication", "persona", "metric", "value"]
    ]
    return Comparison(
        scenarios=dict(named),
        baseline=base,
        results=results,
        per_replication=per_rep,
        seed=seed,
        paired=paired,
        replications=reps,
    )
