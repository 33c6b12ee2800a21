"""Funnel, retention and customer tables on hand-built event logs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sim
from sim.analysis import funnel, kaplan_meier
from sim.events import ENTRY, EventLog
from sim.results import RunResult

STAGES = ("visit", "buy", "active", "lost", "churned")
V, B, A, L, C = range(5)


def _journey() -> sim.Journey:
    return sim.Journey(
        stages=(
            sim.Stage(name="visit", dwell=sim.Exponential(mean=1), next={"buy": 0.5, "lost": 0.5}),
            sim.Stage(name="buy", purchase=True, next={"active": 1.0}),
            sim.Stage(
                name="active", dwell=sim.Exponential(mean=10), next={"buy": 0.5, "churned": 0.5}
            ),
            sim.Stage(name="lost", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )


def _log(rows: list[tuple], customers: list[int], horizon: float = 100.0) -> EventLog:
    """rows: (replication, customer, persona, time, from, to, value)."""
    a = np.array(rows, dtype=float)
    order = np.lexsort((np.arange(len(a)), a[:, 3], a[:, 0]))
    a = a[order]
    return EventLog(
        replication=a[:, 0].astype(np.int32),
        customer=a[:, 1].astype(np.int32),
        persona=a[:, 2].astype(np.int16),
        channel=np.zeros(len(a), dtype=np.int16),
        time=a[:, 3],
        from_stage=a[:, 4].astype(np.int16),
        to_stage=a[:, 5].astype(np.int16),
        value=a[:, 6],
        customers=np.array(customers),
        stages=STAGES,
        personas=("x", "y"),
        channels=("cohort",),
        horizon_days=horizon,
        purchase_stages=(False, True, False, False, False),
        end_stages=(False, False, False, True, True),
        edges=((V, B), (V, L), (B, A), (A, B), (A, C)),
    ).validate()


# replication 0: four customers
#  0 (x): visit -> lost                      never buys
#  1 (x): visit -> buy(10) -> active -> buy(20) -> active -> churned at 50
#  2 (y): visit -> buy(30) -> active ... still active at the horizon (censored)
#  3 (y): visit, still visiting at the horizon
ROWS = [
    (0, 0, 0, 0, ENTRY, V, 0),
    (0, 0, 0, 2, V, L, 0),
    (0, 1, 0, 0, ENTRY, V, 0),
    (0, 1, 0, 1, V, B, 10),
    (0, 1, 0, 1, B, A, 0),
    (0, 1, 0, 20, A, B, 20),
    (0, 1, 0, 20, B, A, 0),
    (0, 1, 0, 50, A, C, 0),
    (0, 2, 1, 0, ENTRY, V, 0),
    (0, 2, 1, 5, V, B, 30),
    (0, 2, 1, 5, B, A, 0),
    (0, 3, 1, 0, ENTRY, V, 0),
]


def _result(rows=ROWS, customers=(4,)) -> RunResult:
    scenario = sim.Scenario(
        name="t",
        journey=_journey(),
        acquisition=sim.Cohort(size=4),
        horizon_days=100,
        personas=(sim.Persona(name="x", share=0.5), sim.Persona(name="y", share=0.5)),
    )
    return RunResult(
        scenario=scenario, log=_log(rows, list(customers)), provenance={"seed": 0, "engine": "test"}
    )


def test_funnel_counts_each_customer_once_per_stage():
    """Reach counts customers, not visits: customer 1 buys twice but counts once."""
    f = funnel(_result().log, by=None).set_index("stage")
    assert f.loc["visit", "customers"] == 4
    assert f.loc["buy", "customers"] == 2
    assert f.loc["active", "customers"] == 2
    assert f.loc["lost", "customers"] == 1 and f.loc["churned", "customers"] == 1
    assert f.loc["buy", "conversion"] == 0.5
    # step into buy: of the customers who reached visit or active, the share who bought
    assert f.loc["buy", "step_conversion"] == 0.5
    assert f.loc["active", "step_conversion"] == 1.0
    assert np.isnan(f.loc["lost", "step_conversion"])


def test_funnel_per_persona_and_overall():
    """The persona split adds up to the overall row, stage by stage."""
    f = _result().funnel(by="persona")
    counts = f.pivot(index="stage", columns="persona", values="customers")
    np.testing.assert_array_equal(counts["all"], counts["x"] + counts["y"])
    assert counts.loc["buy", "x"] == 1 and counts.loc["buy", "y"] == 1


def test_single_replication_gets_binomial_intervals():
    """With one replication, conversion CIs are Wilson intervals of the counts: equal to
    statsmodels' proportion_confint(method='wilson') (a Wald or t interval would differ)."""
    from statsmodels.stats.proportion import proportion_confint

    f = _result().funnel(by=None)
    low, high = proportion_confint(f["customers"], 4, alpha=0.05, method="wilson")
    np.testing.assert_allclose(f["conversion_ci_low"], low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f["conversion_ci_high"], high, rtol=1e-12, atol=1e-15)
    ok = f["conversion_ci_low"].le(f["conversion"]) & f["conversion"].le(f["conversion_ci_high"])
    assert ok.all()


def test_replications_give_t_intervals():
    """Across replications the mean and a t interval over replications are reported."""
    # replication 1 repeats customers 0, 1 and 3 of replication 0, numbered 0, 1, 2
    renumber = {0: 0, 1: 1, 3: 2}
    rows = ROWS + [(1, renumber[c], p, t, f, to, v) for (_, c, p, t, f, to, v) in ROWS if c != 2]
    f = _result(rows, customers=(4, 3)).funnel(by=None).set_index("stage")
    # buy: 2 of 4 in replication 0, 1 of 3 in replication 1
    assert np.isclose(f.loc["buy", "conversion"], (0.5 + 1 / 3) / 2)
    assert f.loc["buy", "conversion_ci_low"] < f.loc["buy", "conversion"]


def test_customer_table():
    """Per customer: purchases, revenue, first purchase day, whether and when the journey
    ended."""
    c = _result().customers().set_index("customer")
    assert list(c["purchases"]) == [0, 2, 1, 0]
    assert list(c["revenue"]) == [0, 30, 30, 0]
    assert c.loc[1, "first_purchase"] == 1 and np.isnan(c.loc[0, "first_purchase"])
    assert list(c["ended"]) == [True, True, False, False]
    assert c.loc[1, "end_time"] == 50
    assert list(c["final_stage"]) == ["lost", "churned", "active", "visit"]


def test_retention_censors_at_the_horizon():
    """Customer 1 churns 49 days after first buying (an event); customer 2 is still active at
    the horizon, 95 days in (censored): survival is 1 until day 49, then 1/2."""
    r = _result().retention(by=None)
    assert r["survival"].iloc[0] == 1.0
    day = r.set_index("day")
    assert day.loc[49.0, "survival"] == 0.5
    assert day.loc[49.0, "at_risk"] == 2
    s = _result().retention_summary(by=None).iloc[0]
    assert s.purchasers == 2 and s.repeat_purchase_rate == 0.5
    assert s.median_lifetime_days == 49
    assert s.revenue_per_customer == 60 / 4


def test_time_to_first_purchase():
    """Only purchasers count: days 1 and 5."""
    t = _result().time_to_purchase(by=None).iloc[0]
    assert t.share_purchased == 0.5 and t.mean_days == 3 and t.median_days == 3


def test_kaplan_meier_matches_a_hand_computation():
    """Events at 1, 2, 3 and 5, censored at 4 and 6: S = 5/6, 4/6, 3/6, then 3/6 x 1/2."""
    km = kaplan_meier(
        np.array([1, 2, 3, 5, 4, 6.0]), np.array([True, True, True, True, False, False])
    )
    s = km.set_index("day")["survival"]
    assert np.allclose([s[1], s[2], s[3], s[5]], [5 / 6, 4 / 6, 3 / 6, 3 / 12])


def test_events_frame_has_the_documented_columns():
    """The event log DataFrame has the documented columns; entries have an empty from_stage."""
    ev = _result().events
    assert list(ev.columns) == [
        "replication",
        "customer",
        "persona",
        "channel",
        "time",
        "from_stage",
        "to_stage",
        "value",
    ]
    first = ev.groupby("customer", observed=True).head(1)
    assert first["from_stage"].isna().all()
    assert isinstance(ev["to_stage"].dtype, pd.CategoricalDtype)


def test_unknown_split_is_refused():
    """Asking for a split the log does not have is an error, not a silent default."""
    with pytest.raises(ValueError, match="persona"):
        _result().funnel(by="region")


def test_retention_stays_numeric_when_a_persona_never_buys():
    """A persona without purchasers gets an empty curve; the pooled table keeps numeric
    columns (object columns broke the retention plot of small runs)."""
    rows = [r for r in ROWS if r[1] in (0, 1)]  # persona y's customers left out
    curve = _result(rows, customers=(2,)).retention(by="persona")
    assert set(curve["persona"]) == {"all", "x"}
    for column in ("day", "survival", "ci_low", "ci_high"):
        assert curve[column].dtype == float, column
