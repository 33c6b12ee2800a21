"""Properties of the SimPy engine that hold for every valid scenario."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.engine import CompiledScenario, simulate
from sim.engine.streams import draw_customers
from sim.events import ENTRY
from tests.strategies import edge_mask, scenarios


def _log(scenario: sim.Scenario, seed: int | None = None, replication: int = 0):
    return simulate(
        CompiledScenario.build(scenario), scenario.seed if seed is None else seed, replication
    )


def _by_customer(log):
    order = np.lexsort((np.arange(len(log)), log.customer))
    return order, log.customer[order]


@given(scenarios())
def test_paths_follow_the_journey_graph(scenario):
    """Each customer starts with one entry row at the entry stage; every later row leaves the
    stage the previous row entered (one stage at a time) along an edge of the journey; nothing
    follows an absorbing stage."""
    log = _log(scenario)
    j = scenario.journey
    edges = edge_mask(scenario)
    absorbing = np.array([s.absorbing for s in j.stages])
    order, cust = _by_customer(log)
    first = np.r_[True, cust[1:] != cust[:-1]]
    frm, to = log.from_stage[order], log.to_stage[order]
    assert np.all((frm == ENTRY) == first)
    assert np.all(to[first] == j.index(j.entry))
    assert np.unique(cust[first]).size == log.customers[0] == scenario.acquisition.size
    later = ~first
    assert np.all(frm[later] == to[np.flatnonzero(later) - 1])
    assert np.all(edges[frm[later], to[later]])
    assert not np.any(absorbing[to[np.flatnonzero(later) - 1]])


@given(scenarios())
def test_times_never_go_back_and_stay_within_the_horizon(scenario):
    """The log is in time order, each customer's times never decrease, all are in
    [0, horizon)."""
    log = _log(scenario)
    assert np.all(np.diff(log.time) >= 0)
    order, cust = _by_customer(log)
    t = log.time[order]
    same = cust[1:] == cust[:-1]
    assert np.all(t[1:][same] >= t[:-1][same])
    assert np.all((log.time >= 0) & (log.time < scenario.horizon_days))


@given(scenarios())
def test_only_purchases_carry_value(scenario):
    """Order values are drawn on entering purchase stages and nowhere else."""
    log = _log(scenario)
    purchase = np.array([s.purchase for s in scenario.journey.stages])
    assert np.all(log.value[~purchase[log.to_stage]] == 0)
    assert np.all(log.value >= 0)


@settings(max_examples=25)
@given(scenarios(), st.integers(0, 2**31))
def test_same_seed_same_log(scenario, seed):
    """The same seed gives an identical event log; another replication number gives another."""
    a, b = _log(scenario, seed), _log(scenario, seed)
    for col in ("customer", "time", "from_stage", "to_stage", "value", "persona"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
    # and the randomness is really there: another replication or seed draws other numbers,
    # and where the entry stage's dwell is a continuous law, the first moves come at other times
    compiled = CompiledScenario.build(scenario)
    own = draw_customers(compiled, seed, 0).choice[0]
    for other_seed, other_rep in ((seed, 1), (seed + 1, 0)):
        other = draw_customers(compiled, other_seed, other_rep).choice[0]
        assert not np.array_equal(own, other)
        c = _log(scenario, other_seed, other_rep)
        entry = scenario.journey.stage(scenario.journey.entry)
        continuous = isinstance(entry.dwell, sim.Exponential | sim.Gamma | sim.Weibull) or (
            # a sigma so small that exp(mu + sigma z) rounds to exp(mu) is a fixed time
            isinstance(entry.dwell, sim.Lognormal) and entry.dwell.sigma > 1e-6
        )
        moved = len(a) > scenario.acquisition.size or len(c) > scenario.acquisition.size
        if continuous and moved:
            assert len(a) != len(c) or not np.array_equal(a.time, c.time)


@settings(max_examples=25)
@given(scenarios(max_customers=20), st.integers(1, 20))
def test_a_customers_journey_does_not_depend_on_other_customers(scenario, extra):
    """Adding customers to the cohort leaves the first customers' journeys exactly as they
    were: each customer draws from numbers of their own."""
    small = _log(scenario)
    large = _log(scenario.with_customers(scenario.acquisition.size + extra))
    keep = large.customer < scenario.acquisition.size
    for col in ("customer", "time", "from_stage", "to_stage", "value", "persona"):
        a = getattr(small, col)[np.lexsort((small.time, small.customer))]
        sub = np.flatnonzero(keep)
        b = getattr(large, col)[sub][np.lexsort((large.time[sub], large.customer[sub]))]
        np.testing.assert_array_equal(a, b)


def test_customers_beyond_the_pre_drawn_block_continue_on_their_own_stream():
    """A loop visited far more often than the pre-drawn block holds keeps going with valid,
    reproducible draws (no reuse of the block's numbers, no crash)."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="shop",
                dwell=sim.Exponential(mean=1),
                purchase=True,
                next={"shop": 0.9, "gone": 0.1},
            ),
            sim.Stage(name="gone", absorbing=True),
        )
    )
    scenario = sim.Scenario(
        name="loop",
        journey=journey,
        acquisition=sim.Cohort(size=2000),
        personas=(sim.Persona(name="p", order_value=sim.Exponential(mean=10)),),
        horizon_days=1e6,
    )
    a, b = _log(scenario), _log(scenario)
    np.testing.assert_array_equal(a.time, b.time)
    visits = np.bincount(a.customer[a.to_stage == 0])
    assert visits.max() > CompiledScenario.build(scenario).block[0]
    # values drawn beyond the block are still distinct draws, not repeats of earlier ones
    values = a.value[a.to_stage == 0]
    assert len(np.unique(values)) == len(values)


def test_channel_arrivals_follow_the_rate_and_mix(subscription):
    """With Poisson arrivals, each channel brings about rate x horizon customers (within 4
    Poisson standard deviations) and its own persona mix."""
    scenario = subscription.replace(horizon_days=200)
    log = _log(scenario)
    entries = log.from_stage == ENTRY
    for i, channel in enumerate(scenario.acquisition.channels):
        n = np.sum(log.channel[entries] == i)
        expected = channel.rate_per_day * scenario.horizon_days
        assert abs(n - expected) <= 4 * np.sqrt(expected)
        share = np.mean(log.persona[entries & (log.channel == i)] == 0)
        target = dict(channel.persona_mix)["power_user"]
        assert abs(share - target) <= 4 * np.sqrt(target * (1 - target) / n)
    arrivals = log.time[entries]
    assert arrivals.min() >= 0 and arrivals.max() < scenario.horizon_days


def test_higher_arrival_rate_keeps_the_same_first_customers(subscription):
    """Raising one channel's rate brings the same customers earlier plus new ones; the other
    channel's customers are untouched (common random numbers by channel)."""
    base = subscription.replace(horizon_days=60)
    search, social = base.acquisition.channels
    faster = base.replace(
        acquisition=sim.Arrivals(
            channels=(
                search.__class__(
                    name=search.name,
                    rate_per_day=search.rate_per_day * 2,
                    persona_mix=search.persona_mix,
                ),
                social,
            )
        )
    )
    a, b = _log(base), _log(faster)
    ea, eb = a.from_stage == ENTRY, b.from_stage == ENTRY
    social_a = a.time[ea & (a.channel == 1)]
    social_b = b.time[eb & (b.channel == 1)]
    np.testing.assert_array_equal(social_a, social_b)
    search_a = a.time[ea & (a.channel == 0)]
    search_b = b.time[eb & (b.channel == 0)]
    assert len(search_b) > len(search_a)
    np.testing.assert_allclose(
        search_b[: len(search_a) // 2 + 1] * 2, search_a[: len(search_a) // 2 + 1]
    )
