"""Checking a fitted scenario against data: simulate it over the data's window, side by side.

The fitted scenario is simulated ``replications`` times for as many customers as the data
hold, each simulated customer starting on the day an observed customer entered (so
arrivals and censoring at the end of the data are the same as in the data). For every
measure the simulated replications give a predictive interval; the observed value should lie
inside it about ``confidence`` of the time when the model is right. Measures: the share of
customers reaching each stage (the funnel), the share making 0, 1, 2, ... purchases, the
purchases made each week, and the retention curve (the share buying again at or after each
day since their start).

With ``holdout_from`` (an out-of-sample check of a scenario fitted on the data before that
day) the data's customers are not simulated from their entry: each one who entered before the
day is warm-started there (:mod:`sim.engine.warm`: their stage, the time already spent in it,
the never-again share updated by their silence) and the period after it is forecast; the
measures, and the total purchases of its whole weeks, are those of that period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from sim.engine import warm
from sim.engine.compiled import CompiledScenario
from sim.engine.registry import choose_engine, simulate_replication
from sim.errors import ScenarioError
from sim.events import ENTRY, EventLog
from sim.model.acquisition import Cohort
from sim.model.scenario import Scenario

#: a Calibrator (sim.calibrate.fit), named loosely here: fit.py imports this module
Calibrator = Any

#: Purchases per customer are tabulated 0, 1, ..., TOP_PURCHASES - 1 and "TOP_PURCHASES+".
TOP_PURCHASES = 5

#: A measure fails when the observed value is further than this many simulated standard
#: deviations from the simulated mean (about 1 in 16,000 by chance for a normal measure).
Z_LIMIT = 4.0


@dataclass(frozen=True)
class Arrays:
    """What the measures need from a log: per row customer, day, stage, purchase flag."""

    customers: int
    customer: np.ndarray
    time: np.ndarray
    stage: np.ndarray
    entry_time: np.ndarray  # per customer
    value: np.ndarray  # per row


def _arrays(log: EventLog) -> Arrays:
    key = log.customer_key()
    n = int(np.sum(log.customers))
    entry = log.from_stage == ENTRY
    entry_time = np.zeros(n)
    entry_time[key[entry]] = log.time[entry]
    return Arrays(n, key, log.time, log.to_stage.astype(np.int64), entry_time, log.value)


def _retention(
    a: Arrays, purchase: np.ndarray, grid: np.ndarray, horizon: float, warm: bool = False
) -> np.ndarray:
    """Per day d of ``grid``: the share of customers who buy (again) at or after d days from
    their start, among those whose start + d lies within the data (silent churn is never
    seen, so retention is read from purchases, as an analyst reads it from orders). A
    customer's entry purchase does not count; with a ``warm`` start every purchase does."""
    since = a.time - a.entry_time[a.customer]
    buy = purchase[a.stage] & ((since >= 0) if warm else (since > 0))
    last = np.full(a.customers, -np.inf)
    np.maximum.at(last, a.customer[buy], a.time[buy])
    out = np.empty(len(grid))
    for i, d in enumerate(grid.tolist()):
        seen = a.entry_time + d <= horizon
        out[i] = float(np.mean(last[seen] >= a.entry_time[seen] + d)) if seen.any() else np.nan
    return out


def _measures(
    a: Arrays, stages: list[int], purchase: np.ndarray, weeks: int, holdout: float
) -> dict[str, np.ndarray]:
    reached = np.zeros((a.customers, len(purchase)), dtype=bool)
    reached[a.customer, a.stage] = True
    buy = purchase[a.stage]
    counted = buy & (a.time >= holdout)
    per_customer = np.bincount(a.customer[counted], minlength=a.customers)
    buckets = np.bincount(np.minimum(per_customer, TOP_PURCHASES), minlength=TOP_PURCHASES + 1)
    week = np.floor(a.time[counted] / 7).astype(np.int64)
    return {
        "funnel": reached[:, stages].mean(axis=0),
        "purchases": buckets / max(a.customers, 1),
        "weekly": np.bincount(week, minlength=weeks)[:weeks].astype(float),
        "total": np.array([float(counted.sum())]),
    }


def _samples(a: Arrays, purchase: np.ndarray, holdout: float) -> dict[str, np.ndarray]:
    """Samples compared as distributions: days from entry to the first purchase, and order
    values (of the purchases counted)."""
    buy = purchase[a.stage]
    first = np.full(a.customers, np.inf)
    np.minimum.at(first, a.customer[buy], a.time[buy])
    bought = np.isfinite(first)
    return {
        "days to first purchase": (first - a.entry_time)[bought],
        "order value": a.value[buy & (a.time >= holdout)],
    }


def _distances(observed: dict, simulated: dict) -> pd.DataFrame:
    rows = []
    for name, x in observed.items():
        y = np.concatenate(simulated[name])
        if len(x) and len(y):
            test = stats.ks_2samp(x, y)
            ks, p = float(test.statistic), float(test.pvalue)
        else:
            ks = p = math.nan
        rows.append(
            {
                "measure": name,
                "observed_n": len(x),
                "simulated_n": len(y),
                "observed_mean": float(np.mean(x)) if len(x) else math.nan,
                "simulated_mean": float(np.mean(y)) if len(y) else math.nan,
                "ks_statistic": ks,
                "p_value": p,
            }
        )
    return pd.DataFrame(rows)


def _shifted(log: EventLog, entry_days: np.ndarray, horizon: float) -> Arrays:
    """A simulated log moved so that customer k starts on day ``entry_days[k]``, cut at the
    end of the data."""
    # one replication: its customers are numbered 0.. whatever its replication number
    customer = log.customer.astype(np.int64)
    t = log.time + entry_days[customer]
    keep = t <= horizon
    stage = log.to_stage.astype(np.int64)
    value = log.value[keep]
    return Arrays(len(entry_days), customer[keep], t[keep], stage[keep], entry_days, value)


@dataclass(frozen=True)
class CheckResult:
    """Observed beside simulated: one table per measure and whether all lie within limits."""

    funnel: pd.DataFrame
    purchases: pd.DataFrame
    weekly: pd.DataFrame
    #: share of customers buying again at or after each day since their start (with a warm
    #: start: since the start of the held-out period)
    retention: pd.DataFrame
    #: two-sample KS distances of days to first purchase and order values (reported, not
    #: part of ``passed``: with thousands of orders a KS test rejects any small misfit)
    distances: pd.DataFrame
    replications: int
    confidence: float
    #: total purchases of the compared period (one row)
    total: pd.DataFrame | None = None
    #: the day of the warm start (``--from``), None when the data's customers were simulated
    #: from their entry
    warm_start: float | None = None

    @property
    def table(self) -> pd.DataFrame:
        """All measures in one long table (what ``sim check`` writes as CSV)."""
        parts = [
            self.funnel.assign(measure="reached stage"),
            self.purchases.assign(measure="purchases per customer"),
            self.weekly.assign(measure="purchases in week"),
        ]
        if self.total is not None:
            parts.append(self.total.assign(measure="purchases in total"))
        parts.append(self.retention.assign(measure="buying again at day"))
        return pd.concat(parts, ignore_index=True)[
            ["measure", "item", "observed", "simulated", "low", "high", "difference", "z", "ok"]
        ]

    @property
    def passed(self) -> bool:
        """True when every measure lies within Z_LIMIT simulated standard deviations."""
        return bool(self.table["ok"].all())

    @property
    def coverage(self) -> float:
        """Share of measures whose observed value lies inside its predictive interval."""
        t = self.table
        return float(((t["observed"] >= t["low"]) & (t["observed"] <= t["high"])).mean())

    def __repr__(self) -> str:
        verdict = "passes" if self.passed else "fails"
        return (
            f"CheckResult({verdict}: {len(self.table)} measures, {self.coverage:.0%} inside "
            f"their {self.confidence:.0%} predictive intervals over {self.replications} "
            "replications)"
        )


def _table(
    items: list, observed: np.ndarray, sims: np.ndarray, confidence: float, customers: int = 0
) -> pd.DataFrame:
    """Observed beside simulated. The observed value is one more draw of what a replication
    gives, so the standard deviation of (observed - simulated mean) is the replications' sd
    times sqrt(1 + 1/R). With few replications that sd is itself noisy: it is held at least
    at the binomial sd of a share of ``customers`` (or the Poisson sd of a count)."""
    mean = sims.mean(axis=0)
    sd = sims.std(axis=0, ddof=1) if len(sims) > 1 else np.zeros_like(mean)
    floor = np.sqrt(mean * (1 - mean) / customers) if customers else np.sqrt(mean)
    sd = np.maximum(sd, floor) * np.sqrt(1 + 1 / len(sims))
    tail = (1 - confidence) / 2
    low, high = np.quantile(sims, [tail, 1 - tail], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (observed - mean) / sd, np.where(observed == mean, 0.0, np.inf))
    return pd.DataFrame(
        {
            "item": items,
            "observed": observed,
            "simulated": mean,
            "low": low,
            "high": high,
            "difference": observed - mean,
            "z": z,
            "ok": np.abs(z) <= Z_LIMIT,
        }
    )


def check(
    fit: Calibrator | Scenario,
    log: EventLog,
    *,
    replications: int = 20,
    seed: int = 0,
    confidence: float = 0.95,
    holdout_from: float = 0.0,
) -> CheckResult:
    """Simulate a fitted scenario (``fit.scenario_``, or a scenario such as one loaded from
    the file ``sim fit`` wrote) over ``log``'s window and compare it with ``log``.

    ``holdout_from`` (days, > 0): an out-of-sample check of a scenario fitted on the data
    before that day. Every customer who entered before it is warm-started there (their stage
    and the time already spent in it, see :mod:`sim.engine.warm`) and the held-out period is
    forecast, not simulated from new cohorts; weekly and total purchases, purchases per
    customer, the stages reached and the retention curve of the held-out period are compared
    for those customers (customers who enter later are not forecast and not counted).
    """
    if isinstance(fit, Scenario):
        scenario = fit
    else:
        fit._fitted()
        scenario = fit.scenario_
    if not isinstance(scenario.acquisition, Cohort):
        raise ScenarioError(
            "check simulates the data's own customers; this scenario has arrivals by channel",
            field="acquisition",
            fix="check a scenario fitted by sim fit (a cohort)",
        )
    if replications < 2:
        raise ScenarioError(
            f"replications must be >= 2 for intervals, got {replications}", field="replications"
        )
    names = scenario.journey.names
    missing = [s for s in log.stages if s not in names]
    if missing:
        raise ScenarioError(
            f"the data name stages the fitted scenario lacks: {', '.join(missing)}",
            field="stage",
            fix="check with data mapped to the same stages as the data the fit used",
        )
    if holdout_from > 0:
        return _check_warm(scenario, log, replications, seed, confidence, holdout_from)
    observed_log = _arrays(log)
    horizon = log.horizon_days
    code = {n: i for i, n in enumerate(names)}
    # the funnel over stages the data can show: silent ends are never in the data
    rows_into = np.bincount(log.to_stage, minlength=len(log.stages))
    shown = [n for i, n in enumerate(log.stages) if rows_into[i] > 0]
    sim_stages = [code[n] for n in shown]
    obs_stages = [log.stages.index(n) for n in shown]
    # whole weeks only: a last partial week compares counts over a sliver of days (and the
    # data often end on their last event, which biases that sliver)
    weeks = max(math.floor(horizon / 7), 1)
    first_week = int(holdout_from // 7)
    grid = _grid(horizon)
    observed = _measures(observed_log, obs_stages, log.purchase_mask, weeks, holdout_from)
    observed["retention"] = _retention(observed_log, log.purchase_mask, grid, horizon)
    observed_samples = _samples(observed_log, log.purchase_mask, holdout_from)
    purchase = np.array([s.purchase for s in scenario.journey.stages])
    run_scenario = scenario.replace(
        acquisition=Cohort(size=observed_log.customers),
        horizon_days=max(horizon, 1e-9),
    )
    engine = choose_engine(run_scenario, "auto")
    compiled = CompiledScenario.build(run_scenario)
    sims: dict[str, list[np.ndarray]] = {k: [] for k in observed}
    samples: dict[str, list[np.ndarray]] = {k: [] for k in observed_samples}
    for r in range(replications):
        sim_log = simulate_replication(engine.name, compiled, seed, r)
        shifted = _shifted(sim_log, observed_log.entry_time, horizon)
        for k, v in _measures(shifted, sim_stages, purchase, weeks, holdout_from).items():
            sims[k].append(v)
        sims["retention"].append(_retention(shifted, purchase, grid, horizon))
        for k, v in _samples(shifted, purchase, holdout_from).items():
            samples[k].append(v)
    stack = {k: np.stack(v) for k, v in sims.items()}
    n = observed_log.customers
    labels = [str(i) for i in range(TOP_PURCHASES)] + [f"{TOP_PURCHASES}+"]
    week_items = list(range(first_week, weeks))
    return CheckResult(
        retention=_table(grid.tolist(), observed["retention"], stack["retention"], confidence, n),
        funnel=_table(shown, observed["funnel"], stack["funnel"], confidence, n),
        purchases=_table(labels, observed["purchases"], stack["purchases"], confidence, n),
        weekly=_table(
            week_items,
            observed["weekly"][first_week:],
            stack["weekly"][:, first_week:],
            confidence,
        ),
        distances=_distances(observed_samples, samples),
        replications=replications,
        confidence=confidence,
    )


#: Points of the retention curve compared.
RETENTION_POINTS = 8


def _grid(span: float) -> np.ndarray:
    """Days at which retention is compared: whole days spread over the first 7/8 of
    ``span`` (the last stretch holds too few customers' starts to say much)."""
    return np.unique(np.floor(np.linspace(0, span * 7 / 8, RETENTION_POINTS)))


def _check_warm(
    scenario: Scenario,
    log: EventLog,
    replications: int,
    seed: int,
    confidence: float,
    start: float,
) -> CheckResult:
    """The out-of-sample check: every customer warm-started at day ``start``."""
    horizon = log.horizon_days
    if start >= horizon:
        raise ScenarioError(
            f"--from day {start:g} is not before the end of the data (day {horizon:g})",
            field="--from",
            fix="give a date inside the data's period",
        )
    reason = warm.cannot_warm_start(scenario, "vectorised")
    if reason is not None:
        raise ScenarioError(f"cannot forecast from --from: {reason}", field="--from")
    state = warm.warm_state(scenario, log, start)
    if len(state) == 0:
        raise ScenarioError(
            f"no customer entered the data before day {start:g}",
            field="--from",
            fix="give a later date",
        )
    names = scenario.journey.names
    code = np.array([names.index(n) for n in log.stages])
    # the observed held-out period of the customers carried over, numbered as in the state
    full = _arrays(log)
    mine = np.isin(full.customer, state.customer) & (full.time >= start)
    number = np.searchsorted(state.customer, full.customer[mine])
    n = len(state)
    observed_log = Arrays(
        n, number, full.time[mine], code[full.stage[mine]], np.full(n, start), full.value[mine]
    )
    purchase = np.array([s.purchase for s in scenario.journey.stages])
    rows_into = np.bincount(log.to_stage, minlength=len(log.stages))
    shown = [
        i for i, n_ in enumerate(names) if n_ in log.stages and rows_into[log.stages.index(n_)]
    ]
    weeks = max(math.floor(horizon / 7), 1)
    first_week = int(start // 7)
    span = horizon - start
    grid = _grid(span)
    observed = _measures(observed_log, shown, purchase, weeks, start)
    observed["retention"] = _retention(observed_log, purchase, grid, horizon, warm=True)
    observed_samples = _samples_after(observed_log, purchase, start)
    compiled = CompiledScenario.build(scenario.replace(horizon_days=max(span, 1e-9)))
    sims: dict[str, list[np.ndarray]] = {k: [] for k in observed}
    samples: dict[str, list[np.ndarray]] = {k: [] for k in observed_samples}
    for r in range(replications):
        out = warm.simulate_warm(compiled, state, seed, r)
        moves = out.from_stage != ENTRY  # entry rows are the state at the start, not events
        # the held-out data end at the horizon: a move exactly there is in them
        a = Arrays(
            n,
            out.customer[moves].astype(np.int64),
            out.time[moves],
            out.to_stage[moves].astype(np.int64),
            np.full(n, start),
            out.value[moves],
        )
        for k, v in _measures(a, shown, purchase, weeks, start).items():
            sims[k].append(v)
        sims["retention"].append(_retention(a, purchase, grid, horizon, warm=True))
        for k, v in _samples_after(a, purchase, start).items():
            samples[k].append(v)
    stack = {k: np.stack(v) for k, v in sims.items()}
    labels = [str(i) for i in range(TOP_PURCHASES)] + [f"{TOP_PURCHASES}+"]
    return CheckResult(
        funnel=_table(
            [names[i] for i in shown], observed["funnel"], stack["funnel"], confidence, n
        ),
        purchases=_table(labels, observed["purchases"], stack["purchases"], confidence, n),
        weekly=_table(
            list(range(first_week, weeks)),
            observed["weekly"][first_week:],
            stack["weekly"][:, first_week:],
            confidence,
        ),
        retention=_table(
            (start + grid).tolist(), observed["retention"], stack["retention"], confidence, n
        ),
        total=_table(
            [f"weeks {first_week}-{weeks - 1}"],
            observed["weekly"][first_week:].sum(keepdims=True),
            stack["weekly"][:, first_week:].sum(axis=1, keepdims=True),
            confidence,
        ),
        distances=_distances(observed_samples, samples),
        replications=replications,
        confidence=confidence,
        warm_start=start,
    )


def _samples_after(a: Arrays, purchase: np.ndarray, start: float) -> dict[str, np.ndarray]:
    """Days from the warm start to each customer's next purchase, and order values."""
    buy = purchase[a.stage] & (a.time >= start)
    first = np.full(a.customers, np.inf)
    np.minimum.at(first, a.customer[buy], a.time[buy])
    bought = np.isfinite(first)
    return {"days to next purchase": first[bought] - start, "order value": a.value[buy]}
