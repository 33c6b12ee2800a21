"""The SimPy engine against the exact absorbing-chain answers (statistical, fixed seeds).

Each agreement test has a twin that holds the same simulation against a scenario with one
probability moved by 0.05 and requires the check to fail: the tolerance has power.
"""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.analysis.survival import kaplan_meier, lifetimes, survival_at
from tests.validation import SCENARIOS, K, disagreements, perturbed

LONG = 1e6  # days: every journey ends well before, so nothing is censored
N = 20_000


def _run(scenario: sim.Scenario, n: int = N, seed: int = 2024) -> sim.RunResult:
    return sim.run(scenario.replace(horizon_days=LONG), seed=seed, customers=n)


@pytest.fixture(scope="module")
def baseline_run() -> tuple[sim.Scenario, sim.RunResult]:
    # 80,000 customers: 4 standard errors on conversion (about 0.005) are well below the 0.013
    # a 0.05 change in intent -> purchase makes, so the power tests below can fail
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml")
    return scenario, _run(scenario, n=80_000)


@pytest.mark.slow
def test_baseline_agrees_with_the_exact_chain(baseline_run):
    """Personas with different effects, gamma/lognormal/Weibull dwell times, a repeat-purchase
    loop: reach, conversion, purchases and time to the end agree per persona."""
    scenario, result = baseline_run
    assert disagreements(result, sim.expected(scenario)) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage,to",
    [("awareness", "consideration"), ("intent", "purchase"), ("post_purchase", "purchase")],
)
def test_baseline_check_detects_a_probability_off_by_005(baseline_run, stage, to):
    """The same simulation fails against a chain with one probability moved by 0.05."""
    scenario, result = baseline_run
    assert disagreements(result, sim.expected(perturbed(scenario, stage, to, 0.05)))


def _same_means(journey: sim.Journey) -> sim.Journey:
    """The journey with every dwell law replaced by another family of the same mean."""
    swap = {
        sim.Exponential: lambda d: sim.Weibull(shape=0.7, mean=d.mean),
        sim.Gamma: lambda d: sim.Lognormal(mean=d.mean, sigma=1.0),
        sim.Lognormal: lambda d: sim.Fixed(d.mean),
        sim.Weibull: lambda d: sim.Gamma(shape=0.5, mean=d.mean),
        sim.Fixed: lambda d: d,
    }
    return sim.Journey(
        entry=journey.entry,
        stages=tuple(
            st
            if st.absorbing
            else sim.Stage(
                name=st.name,
                next=dict(st.next),
                purchase=st.purchase,
                dwell=swap[type(st.dwell)](st.dwell),
            )
            for st in journey.stages
        ),
    )


def test_mean_time_to_the_end_does_not_depend_on_the_dwell_law(baseline_run):
    """Swapping every dwell law for one of another shape and the same mean keeps the exact
    mean time (and the simulation agrees with it); the spread changes."""
    scenario, _ = baseline_run
    other = scenario.replace(journey=_same_means(scenario.journey))
    a, b = sim.expected(scenario).summary, sim.expected(other).summary
    np.testing.assert_allclose(a["time_to_end"], b["time_to_end"], rtol=1e-12)
    assert not np.allclose(a["time_to_end_sd"], b["time_to_end_sd"])
    result = _run(other, seed=99)
    assert disagreements(result, sim.expected(other)) == []
    assert disagreements(result, sim.expected(perturbed(other, "consideration", "intent", 0.05)))


@pytest.fixture(scope="module")
def loop_scenario() -> sim.Scenario:
    """A journey whose loop is visited far more often than the engine's pre-drawn block."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="trial", dwell=sim.Exponential(mean=7), next={"paid": 0.4, "lost": 0.6}),
            sim.Stage(
                name="paid",
                dwell=sim.Gamma(shape=3, mean=30),
                purchase=True,
                next={"paid": 0.85, "churned": 0.15},
            ),
            sim.Stage(name="lost", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    personas = (
        sim.Persona(name="keen", share=0.3, attributes={"fit": 1.0}, order_value="fixed(20)"),
        sim.Persona(
            name="unsure",
            share=0.7,
            attributes={"fit": 0.0},
            order_value="fixed(20)",
            dwell_factors={"trial": 2.0},
        ),
    )
    effects = (sim.Effect(stage="paid", to="churned", attribute="fit", coefficient=-1.0),)
    return sim.Scenario(
        name="loop",
        journey=journey,
        personas=personas,
        effects=effects,
        acquisition=sim.Cohort(size=N),
    )


def test_long_loops_agree_with_the_exact_chain(loop_scenario):
    """Customers renewing many times (beyond the pre-drawn block) still follow the chain."""
    result = _run(loop_scenario, seed=5)
    assert result._customers["purchases"].max() > 20
    assert disagreements(result, sim.expected(loop_scenario)) == []
    assert disagreements(result, sim.expected(perturbed(loop_scenario, "paid", "paid", -0.05)))


def test_time_to_first_purchase_agrees_with_the_conditioned_chain(baseline_run):
    """Mean days from entry to first purchase among purchasers matches the h-transformed
    chain."""
    scenario, result = baseline_run
    exact = sim.expected(scenario).population().time_to_purchase
    c = result._customers
    wait = (c["first_purchase"] - c["arrival"])[~np.isnan(c["first_purchase"])]
    assert abs(wait.mean() - exact) <= K * wait.std(ddof=1) / np.sqrt(len(wait))
    # and a chain whose awareness stage is 30% slower is rejected
    slower = scenario.replace(
        personas=tuple(
            p.__class__(
                name=p.name,
                share=p.share,
                attributes=dict(p.attributes),
                order_value=p.order_value,
                dwell_factors={**dict(p.dwell_factors), "awareness": 1.3},
            )
            for p in scenario.personas
        )
    )
    assert abs(wait.mean() - sim.expected(slower).population().time_to_purchase) > (
        K * wait.std(ddof=1) / np.sqrt(len(wait))
    )


@pytest.mark.slow
def test_retention_curve_matches_the_exponential_closed_form():
    """In the built-in five-stage journey an active customer's life is a geometric number of
    exponential gaps, so it is exponential with mean 45 / 0.55 days; the Kaplan-Meier curve
    (censored at a one-year horizon) matches it, and rejects a mean of 45 / 0.5."""
    scenario = sim.Scenario(name="five", journey=sim.five_stage(), acquisition=sim.Cohort(size=1))
    result = sim.run(scenario, seed=3, customers=60_000)
    duration, observed, _ = lifetimes(result._customers, scenario.horizon_days)
    assert (~observed).any(), "the horizon should censor some lifetimes"
    curve = kaplan_meier(duration, observed)
    days = np.array([20.0, 60.0, 120.0, 200.0])
    surv = survival_at(curve, days)
    idx = np.searchsorted(curve["day"].to_numpy(), days, side="right") - 1
    # standard error from the 95% band (log-log band: half-width / 1.96 is close to Greenwood)
    se = (curve["ci_high"].to_numpy()[idx] - curve["ci_low"].to_numpy()[idx]) / (2 * 1.96)
    exact = np.exp(-days * 0.55 / 45)
    assert np.all(np.abs(surv - exact) <= K * se)
    wrong = np.exp(-days * 0.5 / 45)
    assert np.any(np.abs(surv - wrong) > K * se)
