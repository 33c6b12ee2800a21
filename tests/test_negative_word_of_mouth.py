"""Negative word of mouth: customers who churn dissatisfied put the market's people off. The
conversion of customers put off matches the log-odds rule exactly (with a twin that must
fail), the lost conversions recorded are the exact expected loss, an odds ratio of 1 leaves
the log as without the section (a property), the scenario file's fields and their errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.adoption import detractor_summary
from sim.events import COLUMNS, ENTRY
from tests.strategies import scenarios_with_market
from tests.validation import K

P_ON, RATIO, LASTING = 0.5, 0.5, 30.0


def detractor_market(odds_ratio: float = RATIO, rate: float = 0.5) -> sim.Scenario:
    """A market of 3,000 (word of mouth from active customers); half of those aware buy; every
    customer is unhappy (satisfaction -0.2 < threshold 0), so all who churn talk."""
    stages = (
        sim.Stage(
            name="awareness", dwell="exponential(mean=2)", next={"purchase": P_ON, "lost": 0.5}
        ),
        sim.Stage(name="purchase", purchase=True, dwell="fixed(0)", next={"active": 1.0}),
        sim.Stage(name="active", dwell="exponential(mean=10)", next={"churned": 1.0}),
        sim.Stage(name="lost", absorbing=True),
        sim.Stage(name="churned", absorbing=True),
    )
    return sim.Scenario(
        name="detractors",
        journey=sim.Journey(stages=stages),
        acquisition=sim.Cohort(size=0),
        market=sim.Market(size=3000, external_rate=0.002),
        word_of_mouth=sim.WordOfMouth(
            stages=("active",),
            rate=0.3,
            negative=sim.NegativeWordOfMouth(
                rate=rate, threshold=0.0, odds_ratio=odds_ratio, lasting=LASTING
            ),
        ),
        satisfaction=sim.Satisfaction(start=-0.2),
        horizon_days=120,
    )


def _put_off(log: sim.EventLog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer (all replications): put off when they decided at awareness (reached
    within LASTING days before arriving), decided before the horizon, bought."""
    key = log.customer_key()
    total = int(log.customers.sum())
    entry = log.from_stage == ENTRY
    arrival = np.zeros(total)
    arrival[key[entry]] = log.time[entry]
    decided = np.zeros(total, dtype=bool)
    leaves = log.from_stage == log.stages.index("awareness")
    decided[key[leaves]] = True
    bought = np.zeros(total, dtype=bool)
    bought[key[log.to_stage == log.stages.index("purchase")]] = True
    offsets = np.concatenate([[0], np.cumsum(log.customers)[:-1]]).astype(np.int64)
    hit = log.detractor_reached >= 0
    whom = offsets[log.detractor_replication[hit]] + log.detractor_reached[hit]
    since = arrival[whom] - log.detractor_time[hit]
    put_off = np.zeros(total, dtype=bool)
    put_off[whom[(since >= 0) & (since < LASTING)]] = True
    return put_off, decided, bought


def test_put_off_customers_convert_by_the_log_odds_rule():
    """Customers a detractor reached within 30 days before they decide buy with probability
    OR p / (1 - p + OR p) = 1/3 (p = 0.5, OR = 0.5), within K binomial standard errors; the
    others with p. The lost conversions recorded sum to (p - 1/3) per decision put off, and
    the summary counts them."""
    log = sim.run(detractor_market(), replications=2, seed=3).log.validate()
    put_off, decided, bought = _put_off(log)
    exact = RATIO * P_ON / (1 - P_ON + RATIO * P_ON)
    for group, p in ((put_off & decided, exact), (~put_off & decided, P_ON)):
        n = group.sum()
        assert n > 500
        assert abs(bought[group].mean() - p) <= K * math.sqrt(p * (1 - p) / n)
    n_put_off = (put_off & decided).sum()
    assert math.isclose(log.detractor_lost.sum(), n_put_off * (P_ON - exact), rel_tol=1e-9)
    table = detractor_summary(log)
    assert all(table[c].dtype == float for c in ("mean", "ci_low", "ci_high"))
    summary = table.set_index("metric")["mean"]
    assert math.isclose(summary["lost_conversions"] * 2, log.detractor_lost.sum())
    assert summary["people_reached"] > summary["became_customers"] > 0
    broken = dataclasses.replace(log, detractor_reached=log.detractor_reached + 10**6)
    with pytest.raises(sim.EventLogError, match="detractor_reached"):
        broken.validate()


def test_put_off_conversion_check_fails_without_the_odds_ratio():
    """Twin: the conversion of customers put off is not that of the others (p = 0.5): held
    against p, the same check fails; and the more detractors talk, the fewer buy."""
    log = sim.run(detractor_market(), replications=2, seed=3).log
    put_off, decided, bought = _put_off(log)
    group = put_off & decided
    assert abs(bought[group].mean() - P_ON) > K * math.sqrt(P_ON * (1 - P_ON) / group.sum())
    quiet = sim.run(detractor_market(rate=0.05), replications=2, seed=3).log
    _, decided_q, bought_q = _put_off(quiet)
    loud, quiet_share = bought[decided].mean(), bought_q[decided_q].mean()
    n = decided.sum() + decided_q.sum()
    assert quiet_share - loud > K * math.sqrt(2 * 0.25 * 2 / n)


@st.composite
def _neutral_detractors(draw):
    scenario = draw(scenarios_with_market())
    negative = sim.NegativeWordOfMouth(
        rate=draw(st.floats(0.5, 5)),
        threshold=draw(st.sampled_from([1.0, 0.0, -0.5])),
        odds_ratio=1.0,
        lasting=draw(st.floats(0.1, 50)),
    )
    wom = scenario.word_of_mouth
    plain = scenario.replace(satisfaction=sim.Satisfaction(start=draw(st.floats(-1, 1))))
    try:
        loud = plain.replace(
            word_of_mouth=sim.WordOfMouth(stages=wom.stages, rate=wom.rate, negative=negative)
        )
    except sim.ScenarioError:
        assume(False)
    return plain, loud


@settings(max_examples=30)
@given(_neutral_detractors())
def test_an_odds_ratio_of_one_changes_nothing(pair):
    """Detractors who put people off with odds ratio 1 leave every column of the log as in
    the same scenario without negative word of mouth (they still talk: records are kept)."""
    plain, loud = pair
    a = sim.run(plain, seed=plain.seed).log
    b = sim.run(loud, seed=plain.seed).log.validate()
    for column in COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column
    assert (b.detractor_lost == 0).all()


NEGATIVE = """
[word_of_mouth.negative]
rate = 0.5
threshold = -0.2
odds_ratio = 0.7
lasting = 30
talking_days = 60
stages = ["awareness"]
"""


def _file(text: str) -> str:
    from tests.validation import SCENARIOS

    base = (SCENARIOS / "baseline.toml").read_text()
    return base + (
        "\n[market]\nsize = 1000\nexternal_rate = 0.01\n\n[satisfaction]\nstart = 0.1\n" + text
    )


def test_negative_word_of_mouth_round_trips(write_toml):
    """[word_of_mouth.negative] alone (no positive word of mouth) loads and saves back equal."""
    scenario = sim.load_scenario(write_toml(_file(NEGATIVE)))
    neg = scenario.word_of_mouth.negative
    assert neg.odds_ratio == 0.7 and neg.talking == 60 and scenario.word_of_mouth.rate == 0
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "again.toml"))
    assert again == scenario


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("odds_ratio = 0.7", "odds_ratio = 0", "odds_ratio must be a number > 0"),
        ("threshold = -0.2", "threshold = -2", "threshold must be a satisfaction score"),
        ("lasting = 30", "lasting = -1", "lasting must be a number of days > 0"),
        ("rate = 0.5", "rate = -1", "must be a number >= 0"),
        ('stages = ["awareness"]', 'stages = ["awarenes"]', "unknown stage 'awarenes'"),
        ('stages = ["awareness"]', 'stages = ["churned"]', "leads toward a purchase"),
        ("lasting = 30", "lasting = 30\nlast = 3", "unknown field 'last'"),
        ("lasting = 30", "", "missing field 'lasting'"),
    ],
)
def test_bad_negative_fields_name_the_field(write_toml, old, new, message):
    """Each mistake is a ScenarioError naming the file and word_of_mouth.negative."""
    with pytest.raises(sim.ScenarioError, match=message) as err:
        sim.load_scenario(write_toml(_file(NEGATIVE.replace(old, new))))
    assert "word_of_mouth.negative" in str(err.value) and "scenario.toml" in str(err.value)


def test_negative_word_of_mouth_needs_satisfaction(write_toml):
    """Detractors are those who churn below a satisfaction threshold: no scores, an error."""
    text = _file(NEGATIVE).replace("[satisfaction]\nstart = 0.1\n", "")
    with pytest.raises(sim.ScenarioError, match=r"add a \[satisfaction\] section"):
        sim.load_scenario(write_toml(text))
