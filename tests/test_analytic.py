"""The analytic solver against closed forms worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

import sim


def _shop(repeat: float = 0.4, buy: float = 0.3) -> sim.Scenario:
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="browse", dwell=sim.Exponential(mean=2), next={"buy": buy, "lost": 1 - buy}
            ),
            sim.Stage(name="buy", dwell=sim.Fixed(0), purchase=True, next={"active": 1.0}),
            sim.Stage(
                name="active",
                dwell=sim.Gamma(shape=2, mean=10),
                next={"buy": repeat, "churned": 1 - repeat},
            ),
            sim.Stage(name="lost", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    return sim.Scenario(
        name="shop",
        journey=journey,
        acquisition=sim.Cohort(size=1),
        personas=(sim.Persona(name="p", order_value=sim.Fixed(25)),),
    )


def test_geometric_repeat_purchases():
    """With conversion b and repeat probability r, purchases are b / (1 - r) and revenue is
    that times the order value; time is 2 + b (10 / (1 - r))."""
    b, r = 0.3, 0.4
    row = sim.expected(_shop(r, b)).summary.iloc[0]
    assert np.isclose(row.conversion, b)
    assert np.isclose(row.purchases, b / (1 - r))
    assert np.isclose(row.revenue, 25 * b / (1 - r))
    assert np.isclose(row.time_to_end, 2 + b * 10 / (1 - r))
    assert np.isclose(row.p_lost, 1 - b) and np.isclose(row.p_churned, b)


def test_time_spread_of_one_exponential_stage():
    """A single exponential stage before the end: the time's sd equals its mean."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="a", dwell=sim.Exponential(mean=5), next={"end": 1.0}),
            sim.Stage(name="end", absorbing=True),
        )
    )
    s = sim.Scenario(name="one", journey=journey, acquisition=sim.Cohort(size=1))
    row = sim.expected(s).summary.iloc[0]
    assert np.isclose(row.time_to_end, 5) and np.isclose(row.time_to_end_sd, 5)


def test_geometric_sum_of_exponentials_has_exponential_spread():
    """A stage repeated a geometric number of times (exponential dwell) gives an exponential
    total: sd equals mean = m / (1 - r)."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="a", dwell=sim.Exponential(mean=3), next={"a": 0.75, "end": 0.25}),
            sim.Stage(name="end", absorbing=True),
        )
    )
    row = sim.expected(
        sim.Scenario(name="g", journey=journey, acquisition=sim.Cohort(size=1))
    ).summary.iloc[0]
    assert np.isclose(row.time_to_end, 12) and np.isclose(row.time_to_end_sd, 12)


def test_reach_counts_a_looped_stage_once():
    """Reach is the probability of ever entering; visits count every entry."""
    stages = sim.expected(_shop(0.5, 0.2)).stages.set_index(["persona", "stage"])
    assert np.isclose(stages.loc[("p", "buy"), "reach"], 0.2)
    assert np.isclose(stages.loc[("p", "buy"), "visits"], 0.4)


def test_population_mixes_personas_by_channel_rates():
    """With arrivals, personas weigh by sum over channels of rate x mix."""
    s = _shop()
    personas = (sim.Persona(name="a", share=0.5), sim.Persona(name="b", share=0.5))
    channels = (
        sim.Channel(name="x", rate_per_day=30, persona_mix={"a": 1.0, "b": 0.0}),
        sim.Channel(name="y", rate_per_day=10, persona_mix={"a": 0.0, "b": 1.0}),
    )
    s = s.replace(personas=personas, acquisition=sim.Arrivals(channels=channels))
    summary = sim.expected(s).summary.set_index("persona")
    assert np.isclose(summary.loc["a", "share"], 0.75)


def test_persona_effect_follows_the_logit_rule():
    """A coefficient c on attribute value v multiplies the odds of its transition by e^(cv)."""
    s = _shop(0.4, 0.3).replace(
        personas=(sim.Persona(name="p", attributes={"x": 2.0}),),
        effects=(sim.Effect(stage="browse", to="buy", attribute="x", coefficient=0.5),),
    )
    conv = sim.expected(s).summary.iloc[0].conversion
    odds = 0.3 / 0.7 * np.exp(1.0)
    assert np.isclose(conv, odds / (1 + odds))


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_dwell_factor_scales_time_not_probabilities(factor):
    """A persona's dwell factor on a stage scales its time contribution only."""
    base = sim.expected(_shop()).summary.iloc[0]
    s = _shop().replace(personas=(sim.Persona(name="p", dwell_factors={"browse": factor}),))
    row = sim.expected(s).summary.iloc[0]
    assert np.isclose(row.conversion, base.conversion)
    assert np.isclose(row.time_to_end - base.time_to_end, 2 * (factor - 1))
