"""Satisfaction: a score per customer that waiting and abandonment move and that shifts
decisions by the log-odds rule. Held against the exact shifted probability (with a twin that
must fail); properties of the score; surveys against the truth they sample; the file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.satisfaction import pain_points, survey
from sim.events import COLUMNS, ENTRY
from sim.model.logit import apply_log_odds, transition_matrices
from tests.strategies import scenarios_with_outcomes, scenarios_with_resources
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


# -- service outcomes and interventions on satisfaction ----------------------------------------

DELIVERY_SHARES = {"on_time": 0.6, "late": 0.25, "failed": 0.1}  # the other 5%: nothing of note


def delivery(customers: int, credit: float | None = None, ratio: float = 1.0) -> sim.Scenario:
    """A cohort's one delivery: on time (+0.3), late (-0.3), failed (-0.8) or nothing of
    note; afterwards a satisfaction coefficient of -2 on delivery -> churned makes the unhappy
    churn more. ``credit``: a goodwill credit of that amount after a failed delivery (costing
    5 each); ``ratio``: an odds ratio on a failed delivery (quality)."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="delivery",
                dwell="exponential(mean=1)",
                next={"kept": 0.8, "churned": 0.2},
            ),
            sim.Stage(name="kept", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    deltas = {"on_time": 0.3, "late": -0.3, "failed": -0.8}
    sat = sim.Satisfaction(
        effects=(sim.SatisfactionEffect(stage="delivery", to="churned", coefficient=-2.0),),
        outcomes={
            "delivery": {
                name: {"share": share, "satisfaction": deltas[name]}
                for name, share in DELIVERY_SHARES.items()
            }
        },
    )
    effects = []
    if credit is not None:
        effects.append(sim.SatisfactionChange(amount=credit, stage="delivery", outcome="failed"))
    if ratio != 1.0:
        effects.append(sim.OutcomeOddsRatio(stage="delivery", outcome="failed", ratio=ratio))
    interventions = (
        (
            sim.Intervention(
                name="care",
                effects=tuple(effects),
                cost=sim.Cost(per_credit=5 if credit is not None else 0),
            ),
        )
        if effects
        else ()
    )
    return sim.Scenario(
        name="delivery",
        journey=journey,
        acquisition=sim.Cohort(size=customers),
        satisfaction=sat,
        interventions=interventions,
        horizon_days=1000,
    )


def _churn_probability(score: float) -> float:
    """P(delivery -> churned) of a customer with this score, by the log-odds rule."""
    return float(apply_log_odds(np.array([0.8, 0.2]), np.array([0.0, -2.0 * score]))[1])


@pytest.mark.parametrize("share", [-0.05, 1.5])
def test_an_impossible_outcome_share_gets_a_fix_about_shares(share):
    """A share outside [0, 1] is refused with the field and a fix about shares, not the
    satisfaction score's range."""
    with pytest.raises(sim.ScenarioError) as info:
        sim.Outcome(name="failed", share=share, satisfaction=-0.5)
    message = str(info.value)
    assert "outcome 'failed', field 'share'" in message and "from 0 to 1" in message
    assert "furious" not in message


def test_outcome_shares_match_the_scenario_and_the_odds_ratio():
    """The share of deliveries ending with each outcome lies within K binomial standard
    errors of its share in the scenario, and under an odds ratio of 3 on a failed delivery,
    of the shares the log-odds rule gives (sim.model.logit.outcome_shares); twins that must
    fail: the shares of the other scenario in each case."""
    from sim.analysis.satisfaction import outcome_table
    from sim.model.logit import outcome_shares

    outcomes = delivery(1).satisfaction.outcomes[0][1]
    plain = np.array([*DELIVERY_SHARES.values(), 0.05])
    better = outcome_shares(outcomes, "delivery", delivery(1, ratio=3.0).interventions)
    assert better[2] > plain[2]
    for ratio, exact, twin in ((1.0, plain, better), (3.0, better, plain)):
        table = outcome_table(sim.run(delivery(10_000, ratio=ratio), seed=4).log)
        observed = table.set_index("outcome").loc[[*DELIVERY_SHARES, ""], "share"].to_numpy()
        n = table["visits"].iloc[0]
        assert n == 10_000
        assert (np.abs(observed - exact) <= K * np.sqrt(exact * (1 - exact) / n)).all()
        assert (np.abs(observed - twin) > K * np.sqrt(twin * (1 - twin) / n)).any()


def test_a_goodwill_credit_lowers_churn_as_the_logit_rule_predicts():
    """A credit of 0.5 after a failed delivery moves those customers' score from -0.8 to
    -0.3. The same customers draw the same outcomes and choices with and without it (common
    random numbers), so the churners it saves are exactly those whose choice falls between
    the two churn probabilities: their number lies within K binomial standard errors of
    N x P(failed) x (p(-0.8) - p(-0.3)); the twin predicted for a credit of 0.3 must fail.
    Each credit costs 5, one per failed delivery."""
    n = 10_000
    without = sim.run(delivery(n), seed=5)
    with_credit = sim.run(delivery(n, credit=0.5), seed=5)
    churned = without.log.stages.index("churned")

    def churners(log: sim.EventLog) -> int:
        return int((log.to_stage == churned).sum())

    saved = churners(without.log) - churners(with_credit.log)
    failed = DELIVERY_SHARES["failed"]

    def predicted(credit: float) -> float:
        return failed * (_churn_probability(-0.8) - _churn_probability(-0.8 + credit))

    d = predicted(0.5)
    assert abs(saved - n * d) <= K * np.sqrt(n * d * (1 - d))
    d_twin = predicted(0.3)
    assert abs(saved - n * d_twin) > K * np.sqrt(n * d_twin * (1 - d_twin))
    log = with_credit.log
    code = log.outcomes.index("failed")
    assert np.isclose(log.satisfaction[log.outcome == code], -0.3).all()
    costs = with_credit.costs()
    assert costs["credits"].iloc[0] == (log.outcome == code).sum()
    assert np.isclose(costs["credit_cost"].iloc[0], 5 * costs["credits"].iloc[0])


@settings(max_examples=30)
@given(scenarios_with_outcomes())
def test_outcomes_move_satisfaction_within_its_bounds(scenario):
    """Whatever the outcomes and credits (changes up to +-3), every score lies in [-1, 1]:
    each row's score is the previous one plus the wait or abandonment change, the outcome's
    change and any credit, kept within the bounds; abandoned visits and stages without
    outcomes draw none; the log keeps its contract."""
    log = sim.run(scenario, seed=scenario.seed).log.validate()
    sat = scenario.satisfaction
    delta = {o.name: o.satisfaction for _, outs in sat.outcomes for o in outs}
    with_outcomes = [log.stages.index(stage) for stage, _ in sat.outcomes]
    credits = [
        (i, e)
        for i, iv in enumerate(scenario.interventions)
        for e in iv.of_kind(sim.SatisfactionChange)
    ]
    assert ((log.satisfaction >= -1) & (log.satisfaction <= 1)).all()
    assert (log.outcome[log.abandoned] == -1).all()
    assert (log.outcome[~np.isin(log.from_stage, with_outcomes)] == -1).all()
    order = np.lexsort((np.arange(len(log)), log.customer))
    before = sat.start
    for row in order:
        if log.from_stage[row] == ENTRY:
            assert log.satisfaction[row] == sat.start
            before = sat.start
            continue
        if log.abandoned[row]:
            change = sat.abandoned
        else:
            change = sat.per_day_waited * log.wait[row]
            code = log.outcome[row]
            name = log.outcomes[code] if code >= 0 else ""
            change += delta.get(name, 0.0)
            for i, e in credits:
                if log.treatment[row] >> i & 1 and e.stage in ("", log.stages[log.from_stage[row]]):
                    change += e.amount if e.outcome in ("", name) else 0.0
        assert np.isclose(log.satisfaction[row], np.clip(before + change, -1, 1))
        before = log.satisfaction[row]


#: digests of support_staffing (60 days) and referral_programme (90 days, market 3,000),
#: two replications, seed 11, over every column but outcome: taken before service outcomes
#: existed (support_staffing's since its support team follows a weekly schedule)
BEFORE_OUTCOMES = {
    "support_staffing": "4539ff27fe61b71250bc90d46486ca7dc2cd90831ff4568033da5458182b7311",
    "referral_programme": "35b118c85f313496cb8a2acbf7ec778fd550eb149d79b825aa5c11cdd7974559",
}


@pytest.mark.parametrize("name", sorted(BEFORE_OUTCOMES))
def test_logs_without_outcomes_are_as_before(name):
    """Scenarios with satisfaction, queues and referrals but no outcomes give the same log,
    byte for byte, as before outcomes existed, and an outcome column of -1 only."""
    import hashlib

    changes = {
        "support_staffing": {"horizon_days": 60},
        "referral_programme": {
            "horizon_days": 90,
            "market": sim.Market(size=3000, external_rate=0.002),
        },
    }[name]
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml").replace(**changes)
    log = sim.run(scenario, replications=2, seed=11).log
    h = hashlib.sha256()
    for column in (c for c in COLUMNS if c != "outcome"):
        values = np.ascontiguousarray(getattr(log, column))
        h.update(column.encode())
        h.update(str(values.dtype).encode())
        h.update(values.tobytes())
    for column in ("reach_replication", "reach_customer", "reach_intervention", "reach_time"):
        values = np.ascontiguousarray(getattr(log, column))
        h.update(column.encode())
        h.update(str(values.dtype).encode())
        h.update(values.tobytes())
    assert h.hexdigest() == BEFORE_OUTCOMES[name]
    assert (log.outcome == -1).all()


def test_outcome_sections_round_trip_and_name_bad_fields(write_toml):
    """[satisfaction.outcomes.STAGE] and the satisfaction effects of interventions load and
    save back equal; shares over 1, an end stage, an unknown outcome and a credit without a
    satisfaction section name the field."""
    text = (
        (SCENARIOS / "support_staffing.toml").read_text()
        + """
[satisfaction.outcomes.support]
resolved = { share = 0.7, satisfaction = 0.3 }
unresolved = { share = 0.2, satisfaction = -0.5 }

[[intervention]]
name = "goodwill"
effects = [
  { kind = "satisfaction_change", stage = "support", outcome = "unresolved", amount = 0.4 },
  { kind = "outcome_odds_ratio", stage = "support", outcome = "resolved", ratio = 1.5 },
]
cost = { per_credit = 10 }
"""
    )
    scenario = sim.load_scenario(write_toml(text))
    assert [o.name for o in scenario.satisfaction.outcomes[0][1]] == ["resolved", "unresolved"]
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "b.toml"))
    assert again == scenario
    cases = [
        ("share = 0.7", "share = 0.9", "outcomes', stage 'support'"),
        ("outcomes.support]", "outcomes.churned]", "satisfaction, field 'outcomes'"),
        ('outcome = "resolved"', 'outcome = "solved"', "effect outcome_odds_ratio"),
    ]
    for old, new, field in cases:
        path = write_toml(text.replace(old, new), "bad.toml")
        with pytest.raises(sim.ScenarioError) as err:
            sim.load_scenario(path)
        assert field in str(err.value) and str(path) in str(err.value)
    no_score = sim.load_scenario(SCENARIOS / "baseline.toml")
    credit = sim.Intervention(name="g", effects=(sim.SatisfactionChange(amount=0.2),))
    with pytest.raises(sim.ScenarioError, match="satisfaction"):
        no_score.with_interventions(credit)


def test_outcome_draws_do_not_depend_on_the_order_of_events():
    """Outcomes are keyed by customer, stage and visit: with two support agents or eight the
    calls are served in another order and at other times, yet each customer's sequence of
    outcomes is the same; with another seed it is not (the twin), and runs on one worker or
    two agree. Customers here never give up and no effect reads the score, so both scenarios
    make the same moves."""
    base = sim.load_scenario(SCENARIOS / "support_staffing.toml")
    stages = tuple(
        dataclasses.replace(st, patience=None, abandon_to=None)
        for st in base.journey.stages
        if st.name != "at_risk"  # reached only by giving up
    )
    sat = sim.Satisfaction(
        outcomes={
            "support": {
                "resolved": {"share": 0.6, "satisfaction": 0.2},
                "unresolved": {"share": 0.3, "satisfaction": -0.4},
            }
        }
    )
    scenario = base.replace(journey=sim.Journey(stages=stages), satisfaction=sat, horizon_days=40)
    wide = scenario.replace(
        resources=tuple(
            dataclasses.replace(r, capacity=8, schedule=None, changes=())
            for r in scenario.resources
        )
    )

    def sequences(log: sim.EventLog) -> list[tuple[int, ...]]:
        order = np.lexsort((np.arange(len(log)), log.customer))
        served = order[log.from_stage[order] == log.stages.index("support")]
        return [tuple(log.outcome[served[log.customer[served] == k]]) for k in range(50)]

    narrow_log = sim.run(scenario, seed=2).log
    wide_log = sim.run(wide, seed=2).log
    assert not np.array_equal(narrow_log.time, wide_log.time)
    assert sum(len(s) for s in sequences(narrow_log)) >= 10
    assert sequences(narrow_log) == sequences(wide_log)
    assert sequences(narrow_log) != sequences(sim.run(scenario, seed=3).log)
    two = sim.run(scenario, replications=2, seed=2, workers=2).log
    one = sim.run(scenario, replications=2, seed=2).log
    assert np.array_equal(one.outcome, two.outcome)
