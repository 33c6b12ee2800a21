"""The vectorised engine: the same event log as the SimPy engine for the same seed, agreement in
distribution with independent seeds (with the power to see a 0.05 change in one probability),
and the scenarios it leaves to SimPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import sim
from sim.engine import simpy_engine, vectorised
from sim.engine.compiled import CompiledScenario
from sim.engine.many_streams import uniforms
from sim.engine.registry import choose_engine
from sim.engine.streams import OVERFLOW, draw_customers, stream
from tests.strategies import independent_scenarios
from tests.test_log_digests import COLUMNS, DIGESTS, log_digest
from tests.validation import SCENARIOS, perturbed

#: Level of every two-sample test below: a false alarm has probability 0.001 (seeds are fixed).
ALPHA = 0.001


def _both(scenario: sim.Scenario, seed: int, replication: int = 0):
    c = CompiledScenario.build(scenario)
    return simpy_engine.simulate(c, seed, replication), vectorised.simulate(c, seed, replication)


def _differences(a: sim.EventLog, b: sim.EventLog) -> list[str]:
    return [name for name in COLUMNS if not np.array_equal(getattr(a, name), getattr(b, name))]


# -- the same log, row for row ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_simpy_engine_keeps_the_recorded_logs(name: str) -> None:
    """The bundled scenarios' recorded digests hold for the SimPy engine forced by name (the
    digest test runs ``engine='auto'``, which now picks the vectorised engine where it can):
    so both engines give these logs byte for byte."""
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml")
    customers = 2000 if isinstance(scenario.acquisition, sim.Cohort) else None
    result = sim.run(scenario, replications=2, seed=11, customers=customers, engine="simpy")
    assert log_digest(result.log) == DIGESTS[name]


@pytest.mark.parametrize("name", ["baseline", "loyalty", "referral", "subscription"])
def test_auto_picks_the_vectorised_engine_for_bundled_scenarios_without_budgets(name):
    """Scenarios without budgets run on the vectorised engine by default, and say so."""
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml")
    if isinstance(scenario.acquisition, sim.Cohort):
        scenario = scenario.with_customers(200)
    else:
        scenario = scenario.replace(horizon_days=30.0)
    result = sim.run(scenario, seed=3)
    assert result.provenance["engine"] == "vectorised"
    assert "engine vectorised" in repr(result)


@settings(max_examples=60, deadline=None)
@given(independent_scenarios(max_customers=40))
def test_same_log_as_simpy_for_generated_scenarios(scenario):
    """For any scenario whose customers share nothing (every dwell law, personas and effects,
    loops, interventions with windows, reach, targets and lasting effects, cohorts or channel
    arrivals with campaigns, censoring), both engines write the same log for the same seed:
    every column, every reach record, in the same order; and the logs pass the contract."""
    logs = []
    for replication in (0, 1):
        a, b = _both(scenario, scenario.seed, replication)
        assert _differences(a, b) == []
        logs.append(b)
    sim.EventLog.concat(logs).validate()


@pytest.mark.parametrize("name", ["loyalty", "referral"])
def test_large_channels_read_windows_of_the_streams(name, monkeypatch):
    """Streams of large channels are read in windows (``advance`` to the first customer
    needed) instead of whole: the log is the same."""
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml")
    if isinstance(scenario.acquisition, sim.Cohort):
        scenario = scenario.with_customers(1500)
    else:
        scenario = scenario.replace(horizon_days=200.0)
    c = CompiledScenario.build(scenario)
    whole = vectorised.simulate(c, 9, 0)
    monkeypatch.setattr(vectorised, "CACHED_STREAM", 0)
    assert _differences(whole, vectorised.simulate(c, 9, 0)) == []
    assert _differences(whole, simpy_engine.simulate(c, 9, 0)) == []


def test_ties_between_customers_follow_simpys_queue_order():
    """With fixed dwell times every customer of a cohort moves at the same instants; zero
    waits chain several moves at one instant; an intervention reaches everyone at day 0. Rows
    and reach records at equal times come in SimPy's order (starts first, then each wait in
    the order it was scheduled)."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="a", dwell=sim.Fixed(0), next={"b": 0.5, "c": 0.5}),
            sim.Stage(name="b", dwell=sim.Fixed(2), next={"c": 0.6, "a": 0.3, "end": 0.1}),
            sim.Stage(
                name="c", dwell=sim.Empirical((0, 1, 2)), purchase=True, next={"b": 0.7, "end": 0.3}
            ),
            sim.Stage(name="end", absorbing=True),
        )
    )
    scenario = sim.Scenario(
        name="ties",
        journey=journey,
        acquisition=sim.Cohort(size=300),
        personas=(sim.Persona(name="p", order_value=sim.Weibull(shape=2, mean=10)),),
        interventions=(
            sim.Intervention(
                name="nudge",
                effects=(sim.OddsRatio(stage="b", to="c", ratio=2.0),),
                window_days=(0, 5),
                reach=0.5,
            ),
        ),
        horizon_days=30.0,
    )
    a, b = _both(scenario, seed=5)
    assert len(np.unique(a.time)) < len(a.time) / 20  # many ties indeed
    assert _differences(a, b) == []


def test_forcing_the_vectorised_engine_on_a_budget_names_the_intervention():
    """A budget couples customers: 'auto' runs such a scenario on SimPy, and forcing the
    vectorised engine is a ScenarioError that names the intervention and its budget."""
    discount = sim.load_scenario(SCENARIOS / "discount.toml")
    assert choose_engine(discount, "auto").name == "simpy"
    with pytest.raises(sim.ScenarioError, match="launch_discount' has a budget"):
        sim.run(discount, customers=10, engine="vectorised")
    assert vectorised.cannot_run(sim.load_scenario(SCENARIOS / "loyalty.toml")) is None


# -- the pieces it shares with the SimPy engine ---------------------------------------------


def test_many_streams_at_once_are_numpys_streams():
    """SeedSequence and PCG64 on arrays give bit for bit the numbers of numpy's generators,
    for small and large seeds and keys."""
    last = np.array([0, 1, 7, 123_456, 2**31 + 5, 2**32 - 1])
    for seed in (0, 11, 2**33 + 1):
        key = (1, 2_998_274_565, OVERFLOW)
        want = np.array([stream(seed, *key, int(x)).random(9) for x in last])
        np.testing.assert_array_equal(uniforms(seed, key, last, 9), want)


def test_lazy_draws_match_the_pre_drawn_tables(subscription):
    """Customers (arrival order, persona, channel, reach draws) and windows of the choice and
    dwell streams equal what :func:`draw_customers` pre-draws for the SimPy engine."""
    scenario = sim.load_scenario(SCENARIOS / "referral.toml").replace(horizon_days=60.0)
    c = CompiledScenario.build(scenario)
    full = draw_customers(c, 4, 1)
    lazy = vectorised._Draws(c, 4, 1)
    for name in ("arrival", "persona", "channel", "local", "eligible"):
        np.testing.assert_array_equal(getattr(lazy, name), getattr(full, name))
    stage = c.names.index("consideration")
    local = np.array([3, 5, 40, 41])
    for ch in range(len(lazy.keys)):
        key = lazy.stage_keys[stage]
        got = lazy.uniforms(ch, local, 2, key, 1)  # CHOICE, stage, visit 1
        np.testing.assert_array_equal(got, full.choice[ch][local, c.first_slot[stage] + 1])


@given(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5, 7.0]), max_size=60))
def test_the_fast_time_order_is_a_stable_sort(times):
    """Moves are put in time order by a quicksort whose runs of equal times are then restored
    to their original order: exactly numpy's stable argsort."""
    time = np.array(times)
    np.testing.assert_array_equal(vectorised._stable_order(time), np.argsort(time, kind="stable"))


def test_start_times_follow_simpys_clock():
    """SimPy's arrival process advances its clock by ``arrival - now``, which can miss the
    arrival by an ulp; the engine starts customers at the same clock readings."""
    arrival = np.sort(np.random.default_rng(2).exponential(0.3, 2000).cumsum() / 7)
    arrival = np.concatenate([[1e-9, 0.1, 0.35], arrival + 0.4])
    now, want = 0.0, []
    for day in arrival.tolist():
        if day > now:
            now = now + (day - now)
        want.append(now)
    np.testing.assert_array_equal(vectorised._start_times(arrival), want)


# -- agreement in distribution, with independent seeds --------------------------------------

CUSTOMERS = 20_000


def _shop() -> sim.Scenario:
    """A shop whose time to purchase, lifetime, revenue and retention hang on probabilities:
    browsing loops on itself, buyers come back to buy again; two personas, a welcome offer."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="browse",
                dwell=sim.Exponential(mean=2),
                next={"browse": 0.5, "purchase": 0.4, "lost": 0.1},
            ),
            sim.Stage(name="purchase", dwell=sim.Fixed(0), purchase=True, next={"active": 1.0}),
            sim.Stage(
                name="active",
                dwell=sim.Weibull(shape=1.5, mean=20),
                next={"purchase": 0.5, "churned": 0.5},
            ),
            sim.Stage(name="lost", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    return sim.Scenario(
        name="shop",
        journey=journey,
        acquisition=sim.Cohort(size=CUSTOMERS),
        personas=(
            sim.Persona(name="thrifty", share=0.6, order_value=sim.Lognormal(mean=30, sigma=0.5)),
            sim.Persona(
                name="keen",
                share=0.4,
                order_value=sim.Gamma(shape=3, mean=60),
                dwell_factors={"active": 0.8},
            ),
        ),
        interventions=(
            sim.Intervention(
                name="welcome",
                effects=(
                    sim.OrderValueFactor(factor=0.9),
                    sim.DwellFactor(stage="active", factor=0.9),
                ),
                stages=("purchase",),
                window_days=(0, 30),
                reach=0.6,
            ),
        ),
        horizon_days=1000.0,
    )


def _summary(log: sim.EventLog) -> dict[str, np.ndarray]:
    """Per customer: the end stage, time to first purchase, lifetime as a buyer (first
    purchase to churn), revenue; and whether a buyer is still active 60 days after buying."""
    n = int(log.customers[0])
    end = np.full(n, -1)
    end[log.customer] = log.to_stage  # rows are in time order: the last one wins
    buys = log.purchase_mask[log.to_stage]
    first = np.full(n, np.nan)
    first[log.customer[buys][::-1]] = log.time[buys][::-1]
    churned = log.to_stage == log.stages.index("churned")
    leave = np.full(n, np.nan)
    leave[log.customer[churned]] = log.time[churned]
    revenue = np.bincount(log.customer, weights=log.value, minlength=n)
    bought = ~np.isnan(first)
    return {
        "end": end,
        "time_to_purchase": first[bought],
        "lifetime": (leave - first)[bought],
        "revenue": revenue,
        "active_60": (leave - first)[bought] > 60,
    }


@pytest.fixture(scope="module")
def shop_runs() -> dict[str, dict[str, np.ndarray]]:
    """SimPy and the vectorised engine on the shop with different seeds, and the vectorised
    engine on the shop with one probability moved by 0.05 (one run per moved probability)."""
    shop = _shop()
    c = CompiledScenario.build(shop)
    runs = {
        "simpy": _summary(simpy_engine.simulate(c, 101, 0)),
        "vectorised": _summary(vectorised.simulate(c, 202, 0)),
    }
    for label, (stage, to) in {
        "more_buyers": ("browse", "purchase"),
        "slower_browsing": ("browse", "browse"),
        "more_repeat": ("active", "purchase"),
    }.items():
        moved = CompiledScenario.build(perturbed(shop, stage, to, 0.05))
        runs[label] = _summary(vectorised.simulate(moved, 303, 0))
    return runs


def _chi_square(a: np.ndarray, b: np.ndarray) -> float:
    codes = np.union1d(a, b)
    table = np.array([[np.sum(x == k) for k in codes] for x in (a, b)])
    return stats.chi2_contingency(table).pvalue


@pytest.mark.slow
def test_end_stages_agree_chi_square(shop_runs):
    """Where customers end (lost, churned): chi-square test of homogeneity at level 0.001
    between the engines; with P(browse -> purchase) up by 0.05 the test rejects."""
    r = shop_runs
    assert _chi_square(r["simpy"]["end"], r["vectorised"]["end"]) > ALPHA
    assert _chi_square(r["simpy"]["end"], r["more_buyers"]["end"]) < ALPHA


@pytest.mark.slow
def test_time_to_purchase_agrees_ks(shop_runs):
    """Time to first purchase: two-sample KS test at level 0.001; with the browsing loop's
    probability up by 0.05 (more visits before buying) the test rejects."""
    r = shop_runs
    key = "time_to_purchase"
    assert stats.ks_2samp(r["simpy"][key], r["vectorised"][key]).pvalue > ALPHA
    assert stats.ks_2samp(r["simpy"][key], r["slower_browsing"][key]).pvalue < ALPHA


@pytest.mark.slow
def test_lifetime_dwell_agrees_ks(shop_runs):
    """Time a buyer spends active (dwell in the repeat loop, first purchase to churn): two-sample
    KS at level 0.001; with P(active -> purchase) up by 0.05 the test rejects."""
    r = shop_runs
    key = "lifetime"
    assert stats.ks_2samp(r["simpy"][key], r["vectorised"][key]).pvalue > ALPHA
    assert stats.ks_2samp(r["simpy"][key], r["more_repeat"][key]).pvalue < ALPHA


@pytest.mark.slow
def test_revenue_agrees_welch(shop_runs):
    """Revenue per customer: Welch's t-test at level 0.001 (20,000 customers a side, so the
    means are close to normal); with P(active -> purchase) up by 0.05 the test rejects."""
    r = shop_runs
    assert (
        stats.ttest_ind(r["simpy"]["revenue"], r["vectorised"]["revenue"], equal_var=False).pvalue
        > ALPHA
    )
    assert (
        stats.ttest_ind(r["simpy"]["revenue"], r["more_repeat"]["revenue"], equal_var=False).pvalue
        < ALPHA
    )


@pytest.mark.slow
def test_retention_agrees_two_proportions(shop_runs):
    """Share of buyers still active 60 days after their first purchase: two-proportion z-test
    at level 0.001; with P(active -> purchase) up by 0.05 the test rejects."""

    def p_value(a: np.ndarray, b: np.ndarray) -> float:
        pooled = (a.sum() + b.sum()) / (len(a) + len(b))
        se = np.sqrt(pooled * (1 - pooled) * (1 / len(a) + 1 / len(b)))
        return 2 * stats.norm.sf(abs(a.mean() - b.mean()) / se)

    r = shop_runs
    assert p_value(r["simpy"]["active_60"], r["vectorised"]["active_60"]) > ALPHA
    assert p_value(r["simpy"]["active_60"], r["more_repeat"]["active_60"]) < ALPHA


def test_cli_engine_option_says_which_engine_ran(capsys):
    """`sim run --engine` forces an engine and the summary line names it; forcing the
    vectorised engine on a budget exits with status 2 and one line naming the budget."""
    from sim.cli import main

    base = str(SCENARIOS / "baseline.toml")
    assert main(["run", base, "--customers", "50", "--engine", "simpy"]) == 0
    assert "(simpy engine" in capsys.readouterr().out
    assert main(["run", base, "--customers", "50"]) == 0
    assert "(vectorised engine" in capsys.readouterr().out
    code = main(["run", str(SCENARIOS / "discount.toml"), "--engine", "vectorised"])
    err = capsys.readouterr().err
    assert code == 2 and "has a budget" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_bundled_baseline_stage_reach_agrees_chi_square():
    """On the bundled baseline (20,000 customers, independent seeds), the number of customers
    reaching each stage is the same in law on both engines: chi-square test at level 0.001 on
    the furthest stage of the funnel each customer reaches (awareness, consideration, intent,
    purchase, post-purchase are in funnel order); with P(consideration -> intent) up by 0.05
    the test rejects."""
    baseline = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(CUSTOMERS)

    def standing(scenario: sim.Scenario, engine, seed: int) -> np.ndarray:
        log = engine.simulate(CompiledScenario.build(scenario), seed, 0)
        funnel = ~log.end_mask[log.to_stage]
        furthest = np.zeros(CUSTOMERS, dtype=np.int64)
        np.maximum.at(furthest, log.customer[funnel], log.to_stage[funnel])
        return furthest

    reference = standing(baseline, simpy_engine, 1)
    same = standing(baseline, vectorised, 2)
    moved = standing(perturbed(baseline, "consideration", "intent", 0.05), vectorised, 3)
    assert _chi_square(reference, same) > ALPHA
    assert _chi_square(reference, moved) < ALPHA
