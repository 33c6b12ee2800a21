"""The SimPy engine's event-driven path (reusable events on SimPy's kernel, numbers drawn by
block when needed) writes the log of the process-per-customer path, byte for byte."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings

import sim
from sim.engine import kernel, lazy_draws, simpy_engine, streams
from sim.engine.compiled import CompiledScenario
from tests.strategies import independent_scenarios, scenarios_with_interventions
from tests.test_log_digests import log_digest
from tests.validation import SCENARIOS


def _both(compiled: CompiledScenario, seed: int, replication: int = 0) -> tuple[str, str]:
    """Digests of the log from processes and from reusable events."""
    processes = simpy_engine.simulate(compiled, seed, replication, processes=True)
    events = kernel.simulate(compiled, seed, replication)
    return log_digest(processes), log_digest(events)


def _bundled(name: str, customers: int = 1500) -> sim.Scenario:
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml")
    if isinstance(scenario.acquisition, sim.Cohort):
        return scenario.with_customers(customers)
    return scenario.replace(horizon_days=120)  # arrivals: a shorter run, the same features


@pytest.mark.parametrize("name", ["baseline", "subscription", "discount", "loyalty"])
def test_reusable_events_write_the_process_paths_log(name):
    """Cohort, Poisson arrivals by channel, a budget served in time order and interventions
    with windows and lasting effects: the same log, two replications each."""
    compiled = CompiledScenario.build(_bundled(name))
    for replication in (0, 1):
        a, b = _both(compiled, 11, replication)
        assert a == b


def test_a_chunk_of_a_cohort_draws_the_same_numbers():
    """Customers 700..1199 simulated alone (streams skipped ahead) on both paths."""
    compiled = CompiledScenario.build(_bundled("loyalty", 2000)).chunk(700, 500)
    a, b = _both(compiled, 3)
    assert a == b


def test_dropped_and_sparse_blocks_change_no_number(monkeypatch):
    """With blocks of 16 customers swept every 64 numbers, blocks are dropped and kept
    sparse many times; every number is still the customer's own, and no block is drawn
    twice in a run (a sweep keeps every number a customer can still need)."""
    monkeypatch.setattr(lazy_draws, "BLOCK_SHIFT", 4)
    monkeypatch.setattr(lazy_draws, "BLOCK", 16)
    monkeypatch.setattr(lazy_draws, "SPARSE_AT", 4)
    monkeypatch.setattr(lazy_draws, "SWEEP_NUMBERS", 64)
    drawn, dropped, sparse = [], set(), set()
    draw_block, sweep = lazy_draws.LazyDraws._draw_block, lazy_draws.LazyDraws.sweep

    def spy_draw(self, key, *args):
        drawn[-1].append(key)
        return draw_block(self, key, *args)

    def spy_sweep(self):
        before = set(self._blocks)
        sweep(self)
        dropped.update(before - set(self._blocks))
        sparse.update(k for k, f in self._blocks.items() if isinstance(f[0], dict))

    monkeypatch.setattr(lazy_draws.LazyDraws, "_draw_block", spy_draw)
    monkeypatch.setattr(lazy_draws.LazyDraws, "sweep", spy_sweep)
    for name in ("baseline", "loyalty"):
        drawn.append([])
        a, b = _both(CompiledScenario.build(_bundled(name, 600)), 5)
        assert a == b
        assert len(drawn[-1]) == len(set(drawn[-1]))
    # the paths under test ran: blocks were dropped and made sparse
    assert dropped and sparse


def test_the_twin_a_sweep_that_drops_needed_numbers_draws_again(monkeypatch):
    """The twin of the test above has power: a sweep that misreads the visits customers have
    made (one more than they have) drops numbers still needed, and blocks are drawn again
    (the same numbers: the logs still agree)."""
    monkeypatch.setattr(lazy_draws, "BLOCK_SHIFT", 4)
    monkeypatch.setattr(lazy_draws, "BLOCK", 16)
    monkeypatch.setattr(lazy_draws, "SPARSE_AT", 4)
    monkeypatch.setattr(lazy_draws, "SWEEP_NUMBERS", 64)
    drawn = []
    draw_block, sweep = lazy_draws.LazyDraws._draw_block, lazy_draws.LazyDraws.sweep

    def spy_draw(self, key, *args):
        drawn.append(key)
        return draw_block(self, key, *args)

    def forgetful_sweep(self):
        view = self._visit_view
        self._visit_view = np.where(view == 0, 0, view + 1).astype(view.dtype)
        try:
            sweep(self)
        finally:
            self._visit_view = view

    monkeypatch.setattr(lazy_draws.LazyDraws, "_draw_block", spy_draw)
    monkeypatch.setattr(lazy_draws.LazyDraws, "sweep", forgetful_sweep)
    a, b = _both(CompiledScenario.build(_bundled("baseline", 600)), 5)
    assert a == b
    assert len(drawn) > len(set(drawn))


def test_a_cohort_that_starts_with_moves_that_take_no_time():
    """The cohort's first choices are made together only for customers no intervention can
    reach and who then wait. With an entry stage where half the customers do not wait at all
    (an empirical dwell of 0 or 2 days) and a discount with a budget reaching half of them,
    the others start one by one, in customer order, and the many first waits that end
    together on day 2 are served in customer order (served otherwise, the log differs): the
    log is the process path's."""
    import dataclasses

    from sim.model.distributions import Empirical

    scenario = _bundled("discount", 800)
    stages = list(scenario.journey.stages)
    stages[0] = dataclasses.replace(stages[0], dwell=Empirical((0.0, 2.0)))
    journey = dataclasses.replace(scenario.journey, stages=tuple(stages))
    a, b = _both(CompiledScenario.build(scenario.replace(journey=journey)), 9)
    assert a == b


def test_the_twin_another_seed_gives_another_log():
    """The comparison has power: the event-driven log differs from the process path's of
    another seed."""
    compiled = CompiledScenario.build(_bundled("baseline", 300))
    a = log_digest(simpy_engine.simulate(compiled, 11, 0, processes=True))
    assert a != log_digest(kernel.simulate(compiled, 12, 0))


@settings(max_examples=30)
@given(independent_scenarios())
def test_generated_scenarios_give_the_same_log(scenario):
    """Any scenario whose customers do not interact (interventions, budgets, loops, channels
    and cohorts drawn by hypothesis): the same log on both paths."""
    a, b = _both(CompiledScenario.build(scenario), scenario.seed)
    assert a == b


@settings(max_examples=30)
@given(scenarios_with_interventions())
def test_generated_budgets_are_spent_in_the_same_order(scenario):
    """Interventions with budgets, reach, windows and lasting effects on a cohort: budgets are
    shared, served in time order, and both paths serve them alike."""
    a, b = _both(CompiledScenario.build(scenario), scenario.seed)
    assert a == b


def test_interacting_customers_keep_their_processes():
    """Shared staff couple customers: the engine runs them one process each, and the
    event-driven path refuses them."""
    scenario = sim.load_scenario(SCENARIOS / "support_staffing.toml")
    assert scenario.interacting is not None
    with pytest.raises(ValueError, match="interact"):
        kernel.simulate(CompiledScenario.build(scenario), 1)


def _regulars(order_value: sim.distributions.Distribution, dwell=None) -> sim.Scenario:
    """Shoppers who come back far more often than the base chain says (their persona's
    effect): most buy beyond their pre-drawn purchases and visit beyond their pre-drawn
    visits, so they draw on their own streams."""
    shop = sim.Stage(
        name="shop",
        next={"shop": 0.5, "gone": 0.5},
        dwell=dwell or sim.Exponential(mean=2),
        purchase=True,
    )
    journey = sim.Journey(stages=(shop, sim.Stage(name="gone", absorbing=True)))
    regular = sim.Persona(name="regular", attributes={"loyal": 1.0}, order_value=order_value)
    return sim.Scenario(
        name="regulars",
        journey=journey,
        personas=(regular,),
        effects=(sim.Effect(stage="shop", to="shop", attribute="loyal", coefficient=3.0),),
        acquisition=sim.Cohort(size=200),
        horizon_days=200,
    )


@pytest.mark.parametrize(
    "value, dwell",
    [
        (sim.Fixed(10), None),
        (sim.Fixed(10), sim.Fixed(1)),
        (sim.Exponential(mean=10), sim.Fixed(1)),
    ],
)
def test_own_streams_past_fixed_numbers(value, dwell):
    """A fixed price or a fixed wait reads no number of a customer's own stream, but takes
    its place: numbers passed over before the stream is made are skipped when it is. The same
    log as the process path, which draws every one of them; and the run does go past the
    pre-drawn purchases and visits of most customers."""
    compiled = CompiledScenario.build(_regulars(value, dwell))
    a, b = _both(compiled, 4)
    assert a == b
    log = kernel.simulate(compiled, 4)
    visits = np.bincount(log.customer[log.to_stage == 0], minlength=200)
    assert np.mean(visits > compiled.block[0]) > 0.5
    assert np.mean(visits > streams.VALUE_BLOCK) > 0.5


def test_a_journey_of_more_stages_than_a_byte_holds():
    """Stages are recorded as bytes where they fit; a journey of 300 stages (a chain a
    customer may leave at every step) is recorded in 16 bits: the same log on both paths."""
    names = [f"step{i}" for i in range(299)]
    stages = [
        sim.Stage(name=name, next={following: 0.99, "left": 0.01}, dwell=sim.Exponential(mean=1))
        for name, following in itertools.pairwise(names)
    ]
    stages.append(sim.Stage(name=names[-1], next={"left": 1.0}, dwell=sim.Exponential(mean=1)))
    journey = sim.Journey(stages=(*stages, sim.Stage(name="left", absorbing=True)))
    scenario = sim.Scenario(
        name="long", journey=journey, acquisition=sim.Cohort(size=60), horizon_days=400
    )
    compiled = CompiledScenario.build(scenario)
    a, b = _both(compiled, 2)
    assert a == b
    log = kernel.simulate(compiled, 2)
    assert log.to_stage.max() > 256
