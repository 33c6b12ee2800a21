"""Capacity over time and queue disciplines: weekly schedules, changes from given days and
capacity-change interventions hold the capacity in force (a property); a closed day starts no
service; each constant-capacity period is an Erlang C queue; priority by persona matches
Cobham's non-preemptive M/M/c formula; the scenario file's fields and their errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

import sim
from sim.analysis.queues import capacity_at, queue_visits
from sim.events import COLUMNS
from tests.strategies import scenarios_with_capacity_plans
from tests.test_queues import erlang_c, mmc
from tests.validation import SCENARIOS, K

WEEK = {"mon": 3, "tue": 3, "wed": 3, "thu": 3, "fri": 3, "sat": 1, "sun": 0}


def _starts(log: sim.EventLog, replication: int, resource: str):
    """Service start and end of each served visit of one replication at one resource."""
    visits = queue_visits(log)
    served = visits[
        (visits["replication"] == replication)
        & (visits["resource"] == resource)
        & ~visits["abandoned"]
    ]
    begin = (served["joined"] + served["wait"]).to_numpy()
    return begin, begin + served["service"].to_numpy()


@settings(max_examples=40)
@given(scenarios_with_capacity_plans())
def test_service_starts_only_within_the_capacity_in_force(scenario):
    """Whatever the schedule, changes, interventions and discipline: when a customer starts
    service, the customers in service (them included) are at most the capacity in force
    then, as the log's capacity metadata gives it; the log keeps its contract."""
    log = sim.run(scenario, replications=1, seed=scenario.seed).log.validate()
    for code, name in enumerate(log.resources):
        begin, end = _starts(log, 0, name)
        # times are rounded (a start is joined + wait): a change within 1e-9 days counts
        force = np.maximum(capacity_at(log, code, begin), capacity_at(log, code, begin + 1e-9))
        for t, units in zip(begin, force, strict=True):
            in_service = np.sum((begin <= t + 1e-9) & (end > t + 1e-9))
            assert in_service <= units, (name, t, in_service, units)


def test_a_closed_day_starts_no_service():
    """Support closed on Sundays (day 0 a Monday): no service starts on days 6, 13, 20, ...,
    calls wait until Monday; on Saturdays at most one customer is in service."""
    scenario = mmc(2.0).replace(
        horizon_days=60.0, resources=(sim.Resource(name="agents", schedule=WEEK),)
    )
    log = sim.run(scenario, replications=2, seed=4).log.validate()
    for r in range(2):
        begin, end = _starts(log, r, "agents")
        weekday = np.floor(begin + 1e-12) % 7
        assert not (weekday == 6).any()
        assert ((begin % 7 == 0) & (begin > 0)).any()  # Sunday's calls start on Monday 0:00
        for t in begin[weekday == 5]:
            assert np.sum((begin <= t + 1e-9) & (end > t + 1e-9)) <= 1


def test_the_start_date_sets_day_zeros_weekday():
    """With start_date 2025-01-01 (a Wednesday), Sunday is day 4: closed then, open on day 6
    (a Monday)."""
    scenario = mmc(2.0).replace(
        horizon_days=30.0,
        start_date="2025-01-01",
        resources=(sim.Resource(name="agents", schedule=WEEK),),
    )
    assert scenario.first_weekday == 2
    log = sim.run(scenario, replications=1, seed=4).log
    begin, _ = _starts(log, 0, "agents")
    weekday = (np.floor(begin + 1e-12) + 2) % 7
    assert not (weekday == 6).any()
    assert capacity_at(log, 0, np.array([3.5, 4.5, 6.5])).tolist() == [1, 0, 3]


def test_the_same_units_every_day_is_a_fixed_capacity():
    """A schedule of 3 units on every day gives the log of capacity = 3, column for column."""
    fixed = mmc(2.4)
    weekly = fixed.replace(resources=(sim.Resource(name="agents", schedule=[3] * 7),))
    a, b = (sim.run(s, replications=2, seed=5).log for s in (fixed, weekly))
    for column in COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column


# -- Erlang C in each period of constant capacity -------------------------------------------
RHO, CHANGE, HORIZON, WARM_UP, REPLICATIONS = 0.85, 200.0, 400.0, 50.0, 20


def _period_means(since: float, until: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Three agents, a fourth from day 200: (mean, se) of P(wait) and of the mean wait of
    customers who joined in [since, until), batch means over replications."""
    scenario = mmc(RHO * 3).replace(
        resources=(
            sim.Resource(name="agents", capacity=3, changes=({"day": CHANGE, "capacity": 4},)),
        )
    )
    log = sim.run(scenario, replications=REPLICATIONS, seed=12).log
    visits = queue_visits(log, since=since, until=until)
    out = []
    for values in (visits["wait"] > 0, visits["wait"]):
        per_rep = values.astype(float).groupby(visits["replication"].to_numpy()).mean()
        out.append((per_rep.mean(), per_rep.std(ddof=1) / math.sqrt(len(per_rep))))
    return tuple(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("since", "until", "agents"),
    [(WARM_UP, CHANGE - 20, 3), (CHANGE + WARM_UP, HORIZON - 20, 4)],
)
def test_each_constant_capacity_period_is_erlang_c(since, until, agents):
    """Before the change an M/M/3 queue, after it (and a warm-up) an M/M/4 queue: P(wait)
    and mean wait within K standard errors of Erlang C."""
    exact = erlang_c(RHO * 3, 1.0, agents)
    for (mean, se), e in zip(_period_means(since, until), exact, strict=True):
        assert abs(mean - e) <= K * se, (mean, e, se)


@pytest.mark.slow
def test_erlang_c_after_the_change_fails_with_the_old_capacity():
    """Twin: the period after the change held against M/M/3 must fail."""
    exact = erlang_c(RHO * 3, 1.0, 3)
    means = _period_means(CHANGE + WARM_UP, HORIZON - 20)
    assert any(abs(m - e) > K * se for (m, se), e in zip(means, exact, strict=True))


# -- priority by persona: Cobham's formula ---------------------------------------------------
AGENTS, LOAD, VIP_SHARE = 3, 0.8, 0.4


def cobham_waits(arrivals: list[float], service_rate: float, c: int) -> list[float]:
    r"""Mean waits of non-preemptive priority classes (highest first) in an M/M/c queue with
    one service rate (Cobham 1954): :math:`W_k = C(c, a) / (c\mu (1 - \sigma_{k-1})(1 -
    \sigma_k))`, :math:`\sigma_k` the load of classes 1..k and :math:`C` Erlang C's
    probability of waiting at the total load."""
    p_wait, _ = erlang_c(sum(arrivals), service_rate, c)
    waits, sigma = [], 0.0
    for lam in arrivals:
        before, sigma = sigma, sigma + lam / (c * service_rate)
        waits.append(p_wait / (c * service_rate * (1 - before) * (1 - sigma)))
    return waits


def _priority_scenario(ranks: dict[str, int]) -> sim.Scenario:
    base = mmc(LOAD * AGENTS)
    return base.replace(
        personas=(
            sim.Persona(name="vip", share=VIP_SHARE),
            sim.Persona(name="regular", share=1 - VIP_SHARE),
        ),
        resources=(
            sim.Resource(name="agents", capacity=AGENTS, discipline="priority", priority=ranks),
        ),
    )


def _waits_by_persona(ranks: dict[str, int]) -> dict[str, tuple[float, float]]:
    log = sim.run(_priority_scenario(ranks), replications=REPLICATIONS, seed=21).log
    visits = queue_visits(log, since=WARM_UP, until=HORIZON - 20)
    out = {}
    for persona in ("vip", "regular"):
        mine = visits[visits["persona"] == persona]
        per_rep = mine["wait"].groupby(mine["replication"].to_numpy()).mean()
        out[persona] = (per_rep.mean(), per_rep.std(ddof=1) / math.sqrt(len(per_rep)))
    return out


def _cobham() -> dict[str, float]:
    lam = LOAD * AGENTS
    vip, regular = cobham_waits([lam * VIP_SHARE, lam * (1 - VIP_SHARE)], 1.0, AGENTS)
    return {"vip": vip, "regular": regular}


@pytest.mark.slow
def test_priority_by_persona_matches_cobham():
    """VIPs (priority 1) before regulars (2), no pre-emption: each persona's mean wait lies
    within K standard errors of Cobham's formula, and VIPs wait less."""
    waits, exact = _waits_by_persona({"vip": 1, "regular": 2}), _cobham()
    for persona, (mean, se) in waits.items():
        assert abs(mean - exact[persona]) <= K * se, (persona, mean, exact[persona], se)
    assert waits["vip"][0] < waits["regular"][0]


@pytest.mark.slow
def test_cobham_check_fails_when_priorities_are_swapped():
    """Twin: with regulars served first, the same check against the VIP-first formula fails
    (and so does first come, first served, whose waits are Erlang C's for everyone)."""
    exact = _cobham()
    swapped = _waits_by_persona({"vip": 2, "regular": 1})
    assert any(abs(m - exact[p]) > K * se for p, (m, se) in swapped.items())
    _, fifo_wait = erlang_c(LOAD * AGENTS, 1.0, AGENTS)
    assert any(abs(fifo_wait - exact[p]) > K * se for p, (_, se) in swapped.items())


def test_unnamed_personas_queue_last():
    """A persona missing from the priority table ranks after every named one."""
    r = sim.Resource(name="a", capacity=1, discipline="priority", priority={"x": 3})
    assert r.rank("x") == 3 and r.rank("y") == 4


# -- the scenario file -----------------------------------------------------------------------
PLANNED = """
[[resource]]
name = "sales"
schedule = { mon = 5, tue = 5, wed = 5, thu = 5, fri = 5, sat = 2, sun = 0 }
changes = [{ day = 90, capacity = 6 }, { day = 120, schedule = [6, 6, 6, 6, 6, 3, 0] }]
discipline = "priority"
priority = { bargain_hunter = 2, brand_loyal = 1 }
"""


def test_capacity_plans_and_priorities_round_trip(write_toml):
    """Schedules (a table or a list of 7), changes and priorities load and save back equal."""
    text = (SCENARIOS / "baseline.toml").read_text() + PLANNED
    text = text.replace('name = "intent"', 'name = "intent"\nuses = "sales"')
    scenario = sim.load_scenario(write_toml(text))
    sales = scenario.resources[0]
    assert sales.schedule == (5, 5, 5, 5, 5, 2, 0)
    assert sales.changes[1] == sim.CapacityFrom(day=120.0, schedule=(6, 6, 6, 6, 6, 3, 0))
    assert sales.plan(10.0)[:3] == ((0.0, 5), (5.0, 2), (6.0, 0))
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "again.toml"))
    assert again == scenario


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (", sun = 0 }", " }", "no units for sun"),
        ("sun = 0 }", "sun = 0, sunday = 1 }", "unknown day 'sunday'"),
        ("sat = 2,", "sat = -2,", "0 or more"),
        ("sat = 2,", "sat = 2.5,", "whole number"),
        (
            "schedule = { mon = 5, tue = 5, wed = 5, thu = 5, fri = 5, sat = 2, sun = 0 }",
            "schedule = [1, 2, 3]",
            "7 days",
        ),
        (
            "mon = 5, tue = 5, wed = 5, thu = 5, fri = 5, sat = 2",
            "mon = 0, tue = 0, wed = 0, thu = 0, fri = 0, sat = 0",
            "no units on any day",
        ),
        ('name = "sales"\n', 'name = "sales"\ncapacity = 4\n', "either a capacity or a schedule"),
        ("day = 120", "day = 80", "increasing order"),
        ("day = 90, capacity = 6", "day = 90", "either capacity or schedule"),
        ("day = 90, capacity = 6", "day = 90, capacity = 6, units = 2", "unknown field 'units'"),
        ('discipline = "priority"', 'discipline = "lifo"', "unknown queue discipline"),
        ('discipline = "priority"\n', "", "needs discipline"),
        ("brand_loyal = 1", "brand_loyals = 1", "unknown persona 'brand_loyals'"),
        ("brand_loyal = 1", 'brand_loyal = "high"', "whole number"),
    ],
)
def test_bad_capacity_fields_name_the_field(write_toml, old, new, message):
    """Each mistake is a ScenarioError naming the file, the resource and the field."""
    text = (SCENARIOS / "baseline.toml").read_text() + PLANNED.replace(old, new, 1)
    with pytest.raises(sim.ScenarioError, match=message) as err:
        sim.load_scenario(write_toml(text))
    assert "resource 'sales'" in str(err.value) and "scenario.toml" in str(err.value)


def test_a_resource_needs_capacity_or_schedule(write_toml):
    """Neither field: the error says to add one."""
    text = (SCENARIOS / "baseline.toml").read_text() + '[[resource]]\nname = "sales"\n'
    with pytest.raises(sim.ScenarioError, match="missing field 'capacity'"):
        sim.load_scenario(write_toml(text))
