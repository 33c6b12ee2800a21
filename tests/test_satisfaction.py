"""Satisfaction: a score per customer that waiting and abandonment move and that shifts
decisions by the log-odds rule. Held against the exact shifted probability (with a twin that
must fail); properties of the score; surveys against the truth they sample; the file."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.satisfaction import pain_points, survey
from sim.events import COLUMNS, ENTRY
from sim.model.logit import apply_log_odds, transition_matrices
from tests.strategies import scenarios_with_resources
from tests.validation import SCENARIOS, K

SATISFACTION = """
[satisfaction]
start = 0.2
persona_start = { bargain_hunter = -0.4 }
per_day_waited = -2.0
abandoned = -0.5
effects = [{ stage = "intent", to = "purchase", coefficient = 1.5 }]
"""


def _shifted_share(scenario: sim.Scenario, persona: int, coefficient: float) -> float:
    """Exact P(intent -> purchase) for a persona whose satisfaction stays at its start."""
    j = scenario.journey
    row = transition_matrices(j, scenario.personas, scenario.effects)[persona, j.index("intent")]
    shift = np.zeros(len(row))
    start = scenario.satisfaction.start_of(scenario.personas[persona].name)
    shift[j.index("purchase")] = coefficient * start
    return apply_log_odds(row, shift)[j.index("purchase")]


@pytest.mark.slow
def test_satisfaction_shifts_decisions_by_the_log_odds_rule():
    """With satisfaction fixed at each persona's start, the share of intent -> purchase
    moves per persona matches the persona's probability shifted by coefficient x score on the
    log-odds scale, within K binomial standard errors; with the coefficient moved from 1.5 to
    2.0 the check fails for some persona."""
    base = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(20_000)
    sat = sim.Satisfaction(
        start=0.6,
        persona_start={"bargain_hunter": -0.6},
        effects=(sim.SatisfactionEffect(stage="intent", to="purchase", coefficient=1.5),),
    )
    scenario = base.replace(satisfaction=sat, horizon_days=1e5)
    log = sim.run(scenario, seed=3).log
    intent = log.stages.index("intent")
    leaving = log.from_stage == intent
    bought = log.to_stage == log.stages.index("purchase")
    fails_twin = False
    for p in range(len(scenario.personas)):
        rows = leaving & (log.persona == p)
        n, share = rows.sum(), bought[rows].mean()
        exact = _shifted_share(scenario, p, 1.5)
        assert abs(share - exact) <= K * np.sqrt(exact * (1 - exact) / n)
        twin = _shifted_share(scenario, p, 2.0)
        fails_twin |= abs(share - twin) > K * np.sqrt(twin * (1 - twin) / n)
    assert fails_twin


@settings(max_examples=25)
@given(scenarios_with_resources(), st.floats(-5, 0), st.floats(-1, 0), st.floats(-1, 1))
def test_satisfaction_follows_waits_and_stays_in_bounds(scenario, per_day, abandoned, start):
    """Each customer's score starts at the start value and changes only on leaving a queue:
    by per_day x wait, or by the abandonment change, kept within [-1, 1]."""
    sat = sim.Satisfaction(start=start, per_day_waited=per_day, abandoned=abandoned)
    log = sim.run(scenario.replace(satisfaction=sat), seed=scenario.seed).log.validate()
    order = np.lexsort((np.arange(len(log)), log.customer))
    before = start
    for row in order:
        if log.from_stage[row] == ENTRY:
            assert log.satisfaction[row] == start
        else:
            change = abandoned if log.abandoned[row] else per_day * log.wait[row]
            assert np.isclose(log.satisfaction[row], np.clip(before + change, -1, 1))
        before = log.satisfaction[row]


@settings(max_examples=25)
@given(scenarios_with_resources(patience=False))
def test_a_neutral_satisfaction_changes_nothing(scenario):
    """A satisfaction section that starts at 0, never moves and has effects leaves every
    column of the log as without it."""
    stage = scenario.journey.stage(scenario.journey.entry)
    to = next(target for target, p in stage.next if p > 0)
    effect = sim.SatisfactionEffect(stage=stage.name, to=to, coefficient=2.0)
    neutral = sim.Satisfaction(effects=(effect,))
    a = sim.run(scenario.replace(satisfaction=neutral), seed=scenario.seed).log
    b = sim.run(scenario, seed=scenario.seed).log
    for column in COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column


def test_surveys_show_what_the_unhappy_say():
    """A survey of everyone (share 1, no bias) shows the truth; when the unhappy answer more
    it shows lower satisfaction and NPS than the truth."""
    scenario = sim.load_scenario(SCENARIOS / "support_staffing.toml").replace(
        horizon_days=90,
        satisfaction=sim.Satisfaction(start=0.4, per_day_waited=-10.0, abandoned=-0.6),
    )
    log = sim.run(scenario, seed=1).log
    everyone = survey(log, ("active",), share=1.0).iloc[0]
    assert everyone["survey_nps"] == everyone["true_nps"] and everyone["response_rate"] == 1
    biased = survey(log, ("active",), share=0.1, bias=3.0, seed=2).iloc[0]
    assert biased["survey_satisfaction"] < biased["true_satisfaction"]
    assert biased["survey_nps"] < biased["true_nps"]
    table = pain_points(log)
    assert {"end", "from_stage", "band", "waited", "abandoned", "customers"} <= set(table.columns)
    assert set(table["band"]) <= {"unhappy", "neutral", "happy"}


def test_satisfaction_section_round_trips_and_names_bad_fields(write_toml):
    """[satisfaction] loads and saves back equal; mistakes name the field."""
    text = (SCENARIOS / "baseline.toml").read_text()
    scenario = sim.load_scenario(write_toml(text + SATISFACTION))
    assert scenario.satisfaction.start_of("bargain_hunter") == -0.4
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "b.toml"))
    assert again == scenario
    cases = [
        ("start = 0.2", "start = 2", "satisfaction, field 'start'"),
        ('to = "purchase"', 'to = "lost2"', "satisfaction effect on 'intent' -> 'lost2'"),
        ("bargain_hunter = -0.4", "nobody = -0.4", "satisfaction, field 'persona_start'"),
    ]
    for old, new, field in cases:
        path = write_toml(text + SATISFACTION.replace(old, new), "bad.toml")
        with pytest.raises(sim.ScenarioError) as err:
            sim.load_scenario(path)
        assert field in str(err.value) and str(path) in str(err.value)
