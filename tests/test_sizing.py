"""Sizes that would take the machine down are refused before anything is allocated: bounds on
the scenario, a memory estimate against what is available, workers capped at the CPUs, loops
that go round in zero time refused, and a cap on one customer's moves in the engine."""

from __future__ import annotations

import importlib
import math

import pytest

import sim
from sim.cli import main
from sim.engine.compiled import CompiledScenario
from sim.engine.sizing import check_memory, estimate_run
from tests.validation import SCENARIOS

BASELINE = str(SCENARIOS / "baseline.toml")
sizing = importlib.import_module("sim.engine.sizing")
limits = importlib.import_module("sim.engine.limits")

LOOP = """
[scenario]
name = "loop"
horizon_days = 30

[acquisition]
cohort = 50

[[stage]]
name = "browse"
dwell = "exponential(mean=1)"
next = {{ check = 1.0 }}

[[stage]]
name = "check"
dwell = "{dwell}"
next = {{ check = {p}, done = {q} }}

[[stage]]
name = "done"
absorbing = true
"""


def _loop(dwell: str, p: float) -> str:
    return LOOP.format(dwell=dwell, p=p, q=round(1 - p, 12))


# -- bounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit,words",
    [
        (("horizon_days = 365", "horizon_days = 1e12"), "horizon_days"),
        (("horizon_days = 365", "horizon_days = 1e300"), "horizon_days"),
        (("horizon_days = 365", "horizon_days = inf"), "horizon_days"),
        (("cohort = 10000", "cohort = 1_000_000_000_000"), "cohort size"),
    ],
)
def test_sizes_past_sensible_bounds_are_refused_in_the_file(edit, words, write_toml):
    """A horizon of 10^12 days or a cohort of 10^12 is refused at loading, naming the file and
    field and saying what to do, instead of a traceback or an allocation of terabytes."""
    text = (SCENARIOS / "baseline.toml").read_text()
    assert edit[0] in text
    path = write_toml(text.replace(edit[0], edit[1]))
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)) and words in message and ";" in message


def test_an_arrival_rate_past_the_bound_is_refused():
    """rate_per_day = 1e9 is refused with the field; the bound itself is accepted."""
    with pytest.raises(sim.ScenarioError, match="rate_per_day 1e\\+09 is more than"):
        sim.Channel(name="web", rate_per_day=1e9)
    assert sim.Channel(name="web", rate_per_day=1e7).rate_per_day == 1e7


# -- the memory estimate ----------------------------------------------------------------------


def test_the_estimate_of_a_fast_loop_counts_what_fits_in_the_horizon(write_toml):
    """A loop of 0.01-day stays going round a million times on average is cut by the horizon
    (30 days: about 3,000 moves), and so is its estimate: the run is not refused."""
    scenario = sim.load_scenario(write_toml(_loop("exponential(mean=0.01)", 0.999999)))
    estimate = estimate_run(CompiledScenario.build(scenario))
    result = sim.run(scenario, seed=2)
    assert len(result.log) <= estimate.events <= 1.5 * len(result.log)


def test_the_estimate_follows_the_run(baseline):
    """The estimated events of a replication cover what a run logs without overstating it
    threefold, and the customers and pre-drawn visits are the cohort's and the compiled
    layout's."""
    scenario = baseline.with_customers(3000)
    compiled = CompiledScenario.build(scenario)
    estimate = estimate_run(compiled)
    result = sim.run(scenario, seed=3)
    assert estimate.customers == 3000 and estimate.slots == compiled.slots
    assert len(result.log) <= estimate.events <= 3 * len(result.log)


def test_the_event_driven_estimate_covers_the_run_without_overstating_it(baseline):
    """Customers who do not interact are sized for the SimPy engine's event-driven path: the
    estimate, beyond the fixed allowance for drawn numbers, covers the memory the run
    allocates (traced; measured 1.6 times it) and overstates it less than 3 times (the figures
    of a process per customer with pre-drawn tables, still used for other engines, overstate
    it more than 4 times here: the twin)."""
    import tracemalloc

    from sim.engine.simpy_engine import simulate

    compiled = CompiledScenario.build(baseline.with_customers(20_000))
    event_driven = estimate_run(compiled, "simpy")
    assert event_driven.event_driven and not estimate_run(compiled).event_driven
    simulate(CompiledScenario.build(baseline.with_customers(100)), 4, 0)  # imports done
    tracemalloc.start()
    try:
        simulate(compiled, 4, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= event_driven.running_bytes - sizing.KERNEL_DRAWN_BYTES <= 3 * peak
    assert estimate_run(compiled).running_bytes > 4 * peak


def test_customers_who_interact_keep_the_process_figures():
    """A scenario whose customers share capacity runs a process per customer: its estimate
    for the SimPy engine keeps the process figures."""
    support_staffing = sim.load_scenario(SCENARIOS / "support_staffing.toml")
    compiled = CompiledScenario.build(support_staffing)
    assert support_staffing.interacting is not None
    assert not estimate_run(compiled, "simpy").event_driven


def test_the_estimate_counts_arrival_rate_factors(subscription):
    """An ad campaign that doubles a channel's arrivals over the whole horizon raises the
    expected customers accordingly (the channels' rates x the horizon, with factors)."""
    base = estimate_run(CompiledScenario.build(subscription))
    channels = subscription.channel_names
    boosted = subscription.with_interventions(
        *(
            sim.interventions.ad_campaign(channel=c, rate_factor=2.0, name=f"ads_{c}")
            for c in channels
        )
    )
    more = estimate_run(CompiledScenario.build(boosted))
    expected = (
        sum(c.rate_per_day for c in subscription.acquisition.channels) * subscription.horizon_days
    )
    assert base.customers == pytest.approx(expected + 6 * math.sqrt(expected))
    assert more.customers == pytest.approx(2 * expected + 6 * math.sqrt(2 * expected))


def test_a_run_too_big_for_the_memory_is_refused_before_allocating(baseline, monkeypatch):
    """With 200 MiB available, 200,000 customers (about 230 MiB on the event-driven path) are
    refused with the estimate and how many customers fit; 2,000 run (the twin)."""
    monkeypatch.setattr(sizing, "available_memory", lambda: 200 * 2**20)
    with pytest.raises(sim.ScenarioError) as info:
        sim.run(baseline, customers=200_000)
    message = str(info.value)
    assert "needs about" in message and "MiB of memory" in message
    assert "200.0 MiB available" in message and "customers: about" in message
    assert "fit" in message
    assert sim.run(baseline, customers=2_000).log.customers.sum() == 2_000


def test_many_kept_replications_are_refused_with_the_replications_fix(baseline):
    """When one replication fits but all of them do not, the fix is fewer replications."""
    estimate = estimate_run(CompiledScenario.build(baseline.with_customers(1000)))
    one = check_memory([(estimate, 1)], 1, available=10**12)
    with pytest.raises(sim.ScenarioError, match="fewer replications"):
        check_memory([(estimate, 10_000)], 1, available=int(one * 3))


def test_a_billion_customers_are_refused_on_the_command_line(capsys):
    """`sim run --customers 1000000000` exits 2 at once with the memory it would need."""
    if (sizing.available_memory() or 0) > 2**42:
        pytest.skip("this machine has more than 4 TiB free")
    assert main(["run", BASELINE, "--customers", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "TiB of memory" in err and "fit" in err and BASELINE in err


def test_compare_checks_memory_before_running(baseline, monkeypatch):
    """A comparison too big for the memory is refused before its first batch."""
    monkeypatch.setattr(sizing, "available_memory", lambda: 50 * 2**20)
    pair = [baseline, baseline.replace(name="b")]
    with pytest.raises(sim.ScenarioError, match="of memory"):
        sim.compare(pair, 2, customers=100_000)


# -- workers ----------------------------------------------------------------------------------


def test_workers_are_capped_at_the_cpus_with_a_warning(baseline):
    """workers=1000 warns and uses the CPUs there are; the results are those of one worker."""
    run = importlib.import_module("sim.run.replications")
    with pytest.warns(UserWarning, match="more than the .* CPUs available"):
        capped = sim.run(baseline, replications=2, customers=300, workers=1000)
    assert run.available_cpus() >= 1
    one = sim.run(baseline, replications=2, customers=300, workers=1)
    assert (capped.log.time == one.log.time).all()


# -- loops in zero time -----------------------------------------------------------------------


def test_a_loop_that_goes_round_in_zero_time_is_refused(write_toml):
    """fixed(0) with a self-loop at 0.999999 would spin without the clock moving: refused at
    loading, naming the stage and the loop."""
    path = write_toml(_loop("fixed(0)", 0.999999))
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    message = str(info.value)
    assert "stage 'check'" in message and "'check' -> 'check'" in message
    assert "zero time" in message and "dwell time that is not zero" in message


def test_a_zero_time_loop_through_two_stages_is_refused(write_toml):
    """The loop may run through several stages; an empirical law with zeros counts."""
    text = _loop("fixed(0)", 0.5).replace(
        "next = { check = 0.5, done = 0.5 }", "next = { recheck = 0.9999, done = 0.0001 }"
    )
    text += '\n[[stage]]\nname = "recheck"\ndwell = "empirical(0, 0)"\nnext = { check = 1.0 }\n'
    with pytest.raises(sim.ScenarioError, match="'check' -> 'recheck' -> 'check'"):
        sim.load_scenario(write_toml(text))


@pytest.mark.parametrize("dwell,p", [("fixed(0)", 0.5), ("exponential(mean=0.01)", 0.999999)])
def test_short_or_timed_loops_are_accepted(dwell, p, write_toml):
    """The twins: a zero-time loop left after a few turns, or a loop that takes time (the
    horizon stops it), load."""
    assert sim.load_scenario(write_toml(_loop(dwell, p))).name == "loop"


@pytest.mark.parametrize("engine", ["simpy", "vectorised"])
def test_the_engine_stops_a_customer_going_round_without_end(engine, write_toml, monkeypatch):
    """An intervention can make a zero-time loop nearly certain after validation; the engine
    then stops at its cap on one customer's moves with an error naming the loop."""
    scenario = sim.load_scenario(write_toml(_loop("fixed(0)", 0.5)))
    spin = sim.Intervention(
        name="spin", effects=[sim.OddsRatio(stage="check", to="check", ratio=1e12)]
    )
    monkeypatch.setattr(limits, "MAX_MOVES_PER_CUSTOMER", 2_000)
    assert sim.run(scenario, seed=1, engine=engine).log.customers.sum() == 50
    with pytest.raises(sim.ScenarioError) as info:
        sim.run(scenario.with_interventions(spin), seed=1, engine=engine)
    message = str(info.value)
    assert "more than 2,000 moves" in message and "'check' -> 'check'" in message


# -- curves by day on a bounded grid -----------------------------------------------------------


def test_plots_of_a_very_long_horizon_stay_small(baseline):
    """With a horizon of 10 million days the retention plot draws a handful of ticks (it drew
    one every 180 days), and occupancy is computed on a bounded grid of days."""
    plot = importlib.import_module("sim.plot")
    result = sim.run(baseline.replace(horizon_days=1e7), customers=300)
    fig = plot.retention(result, by=None)
    ax = fig.axes[0]
    assert 2 <= len(ax.get_xticks()) <= 13 and len(ax.texts) <= 14
    assert len(plot.stage_occupancy(result)) <= sizing.GRID_POINTS
    assert len(plot.day_ticks(365)) == 13 and plot.day_ticks(365)[1] == 30


def test_strong_components_agree_with_scipy():
    """The loop finder's strongly connected components (a transitive closure, so reading a
    scenario needs no scipy.sparse) are scipy's on 300 random graphs of 1 to 11 stages; a
    graph with one edge removed from a loop splits it (the check can fail)."""
    import numpy as np
    from scipy.sparse.csgraph import connected_components

    from sim.model.loops import strong_components

    rng = np.random.default_rng(4)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        edges = rng.random((n, n)) < rng.random() * 0.4
        count, label = connected_components(edges, directed=True, connection="strong")
        expected = sorted(tuple(np.flatnonzero(label == c)) for c in range(count))
        assert sorted(tuple(m) for m in strong_components(edges)) == expected
    ring = np.roll(np.eye(4, dtype=bool), 1, axis=1)
    assert [list(m) for m in strong_components(ring)] == [[0, 1, 2, 3]]
    ring[3, 0] = False
    assert len(strong_components(ring)) == 4
