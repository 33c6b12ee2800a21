"""Referrals: customers in chosen stages refer people of the market, who enter with their
referrer recorded. The scenario file, reduction to Bass (exact finite-market expectation and a
twin that must fail), properties of the referral records, reward costs, the analysis."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.analysis.adoption import (
    acquisition_sources,
    adoption_counts,
    k_factor_by_cohort,
    referral_depth,
    referral_summary,
)
from sim.events import COLUMNS, ENTRY
from tests.strategies import scenarios_with_referral_budget, scenarios_with_referrals
from tests.validation import SCENARIOS, K, bass_scenario, pure_birth_moments

SIZE, REPLICATIONS = 500, 60
DAYS = np.array([3.0, 6.0, 9.0, 12.0, 16.0])


def referral_bass(rate: float, conversion: float) -> sim.Scenario:
    """Bass's market with the imitation term made by referrals instead of word of mouth:
    everyone who adopted refers at ``rate`` with ``conversion``, so q = rate x conversion."""
    return bass_scenario(SIZE, 0.03, 0.0, DAYS.max()).replace(
        word_of_mouth=None,
        referrals=sim.Referrals(stages=("customer", "gone"), rate=rate, conversion=conversion),
    )


def test_referral_programme_file_round_trips(write_toml):
    """The bundled referral programme loads (extending the subscription scenario) and saves
    back to an equal scenario; it is an interacting scenario."""
    scenario = sim.load_scenario(SCENARIOS / "referral_programme.toml")
    assert scenario.referrals.stages == ("advocacy",)
    assert scenario.interventions[0].cost.per_referral == 20
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario)))
    assert again == scenario
    assert scenario.interacting is not None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[referrals]\nstages = ['purchase']\nrate = 0.1\n", "referrals"),
        (
            "[market]\nsize = 9\n[referrals]\nstages = ['purchse']\nrate = 0.1\n",
            "referrals, field 'stages'",
        ),
        (
            "[market]\nsize = 9\n[referrals]\nstages = ['purchase']\nrate = 0.1\nconversion = 2\n",
            "referrals, field 'conversion'",
        ),
        (
            "[market]\nsize = 9\n[referrals]\nstages = ['purchase']\nrate = 0.1\n"
            "persona_factors = { nobody = 2 }\n",
            "referrals, field 'persona_factors'",
        ),
        (
            "[[intervention]]\nname = 'reward'\neffects = [{ kind = 'referral_rate_factor', "
            "factor = 2 }]\n",
            "intervention 'reward'",
        ),
    ],
)
def test_bad_referral_sections_name_the_field(write_toml, text, field):
    """Each mistake is a ScenarioError naming the file and the field."""
    path = write_toml((SCENARIOS / "baseline.toml").read_text() + text)
    with pytest.raises(sim.ScenarioError) as err:
        sim.load_scenario(path)
    assert str(path) in str(err.value) and field in str(err.value)


@pytest.mark.slow
def test_referrals_reduce_to_bass():
    """When every adopter refers at rate r with conversion c, adoption is Bass's with
    q = r c: the mean adopted lies within K standard errors of the exact finite-market
    expectation at every checked day; the twin with c moved by 20% must fail."""
    result = sim.run(referral_bass(0.76, 0.5), replications=REPLICATIONS, seed=5)
    adopted = adoption_counts(result.log, DAYS)
    mean, sd = pure_birth_moments(SIZE, 0.03, 0.38, DAYS)
    se = sd / np.sqrt(REPLICATIONS)
    assert (np.abs(adopted.mean(axis=0) - mean) <= K * se).all()
    moved, sd_moved = pure_birth_moments(SIZE, 0.03, 0.38 * 1.2, DAYS)
    assert (np.abs(adopted.mean(axis=0) - moved) > K * sd_moved / np.sqrt(REPLICATIONS)).any()
    sources = acquisition_sources(result.log).set_index("source")
    assert sources.loc["referral", "share"] > 0.5 and sources.loc["word_of_mouth", "share"] == 0


@settings(max_examples=30)
@given(scenarios_with_referrals())
def test_referred_customers_follow_their_referrer(scenario):
    """Every referred customer came through the referral channel and entered no earlier than
    their referrer, who was then in a referring stage; every row of a customer names the same
    referrer; reward costs are the reward times the rewarded referrals."""
    log = sim.run(scenario, replications=2, seed=scenario.seed).log.validate()
    key = log.customer_key()
    entry = log.from_stage == ENTRY
    offsets = np.concatenate([[0], np.cumsum(log.customers)[:-1]]).astype(np.int64)
    referral = log.channels.index("referral")
    assert ((log.referrer[entry] >= 0) == (log.channel[entry] == referral)).all()
    referring = [log.stages.index(s) for s in scenario.referrals.stages]
    for row in np.flatnonzero(entry & (log.referrer >= 0)):
        who = offsets[log.replication[row]] + log.referrer[row]
        theirs = np.flatnonzero(key == who)
        before = theirs[log.time[theirs] <= log.time[row]]
        assert len(before) and before[0] < row
        assert log.to_stage[before[-1]] in referring
        assert (log.referrer[key == key[row]] == log.referrer[row]).all()
    if scenario.interventions:
        costs = sim.analysis.intervention_costs(log, scenario.interventions, scenario.journey)
        reward = scenario.interventions[0].cost.per_referral
        paid = costs["referral_cost"].to_numpy(dtype=float)
        assert np.allclose(paid, costs["referrals"].to_numpy(dtype=float) * reward)
        assert costs["referrals"].sum() <= (log.referrer[entry] >= 0).sum()


def test_referral_tables_describe_the_trees():
    """Depth is 0 for customers nobody referred and one more than the referrer's otherwise;
    the summary and the K-factor by cohort agree with the counts."""
    result = sim.run(referral_bass(0.76, 0.5), replications=2, seed=1)
    log = result.log
    depth = referral_depth(log)
    entry = log.from_stage == ENTRY
    key = log.customer_key()
    offsets = np.concatenate([[0], np.cumsum(log.customers)[:-1]]).astype(np.int64)
    for row in np.flatnonzero(entry):
        ref = log.referrer[row]
        expected = 0 if ref < 0 else depth[offsets[log.replication[row]] + ref] + 1
        assert depth[key[row]] == expected
    summary = referral_summary(log).set_index("metric")
    # numbers, not objects, so they sort, plot and compare like every other table
    assert all(summary[c].dtype == float for c in ("mean", "ci_low", "ci_high"))
    referred = (log.referrer[entry] >= 0).sum() / 2
    assert summary.loc["referred", "mean"] == referred
    assert summary.loc["max_depth", "mean"] >= 2
    cohorts = k_factor_by_cohort(log, period_days=4)
    made = (cohorts["customers"] * cohorts["k_factor"]).sum()
    assert np.isclose(made, referred * 2)


def test_a_referral_reward_costs_per_referral_and_raises_referrals():
    """The bundled programme: the reward's cost is 20 per referral it paid for, and the
    programme brings more referred customers than the same market without it (same seed,
    common random numbers)."""
    scenario = sim.load_scenario(SCENARIOS / "referral_programme.toml").replace(
        horizon_days=150, market=sim.Market(size=5000, external_rate=0.0002)
    )
    plain = scenario.replace(interventions=())
    with_reward = sim.run(scenario, replications=2, seed=2)
    without = sim.run(plain, replications=2, seed=2)
    costs = with_reward.costs()
    assert np.allclose(costs["referral_cost"], 20 * costs["referrals"])
    assert (costs["referrals"] > 0).all()

    def referred(log):
        return (log.referrer[log.from_stage == ENTRY] >= 0).sum()

    assert referred(with_reward.log) > referred(without.log)


def test_mean_field_of_referrals_is_bass():
    """The mean-field curve of the referral Bass market is Bass's with q = rate x conversion,
    labelled exact; `sim.expected` refuses the scenario."""
    from sim.model.market import bass_share

    scenario = referral_bass(0.76, 0.5)
    curve = sim.expected_adoption(scenario)
    assert np.allclose(curve["adopted_share"], bass_share(curve["day"], 0.03, 0.38), atol=1e-5)
    assert "exact" in curve.attrs["method"]
    with pytest.raises(sim.ScenarioError, match="referrals"):
        sim.expected(scenario)


def advocates(size: int = 2000) -> sim.Scenario:
    """A market whose adopters may become advocates, who refer; a lasting programme within
    reach of 60% triples the odds of becoming an advocate and doubles their referral rate.
    Dwell times are exponential, so the mean field's one approximation is replacing the number
    of referrers by its expectation."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="customer",
                dwell="exponential(mean=10)",
                next={"advocate": 0.3, "gone": 0.7},
            ),
            sim.Stage(name="advocate", dwell="exponential(mean=20)", next={"gone": 1}),
            sim.Stage(name="gone", absorbing=True),
        )
    )
    programme = sim.Intervention(
        name="reward",
        reach=0.6,
        lasting=True,
        effects=(
            sim.OddsRatio(stage="customer", to="advocate", ratio=3.0),
            sim.ReferralRateFactor(factor=2.0),
        ),
    )
    return sim.Scenario(
        name="advocates",
        journey=journey,
        acquisition=sim.Cohort(size=0),
        market=sim.Market(size=size, external_rate=0.005),
        referrals=sim.Referrals(stages=("advocate",), rate=0.3, conversion=0.5),
        interventions=(programme,),
        horizon_days=60,
    )


def test_mean_field_follows_referrals_and_the_programme():
    """With referrals from some stages only and an open-ended programme acting on them, the
    mean-field adoption lies within K standard errors of the simulated mean at each checked
    day (30 replications). Twins that must fail: the mean field that leaves the programme out
    (as it did before), and one with the referral conversion moved by 20%."""
    scenario = advocates()
    days = np.array([20.0, 40.0, 60.0])
    replications = 30
    adopted = adoption_counts(sim.run(scenario, replications=replications, seed=3).log, days)
    mean = adopted.mean(axis=0)
    se = adopted.std(axis=0, ddof=1) / np.sqrt(replications)

    def gap(s: sim.Scenario) -> np.ndarray:
        return np.abs(sim.expected_adoption(s, days=days)["adopted"].to_numpy() - mean) / se

    assert (gap(scenario) <= K).all()
    assert (gap(scenario.replace(interventions=())) > K).any()
    moved = sim.Referrals(stages=("advocate",), rate=0.3, conversion=0.6)
    assert (gap(scenario.replace(referrals=moved)) > K).any()
    curve = sim.expected_adoption(scenario, days=days)
    assert (curve["referrers"] > 0).all() and (curve["influencers"] == curve["referrers"]).all()
    assert "exact" not in curve.attrs["method"] and "left out" not in curve.attrs["method"]


def test_mean_field_names_the_interventions_it_leaves_out():
    """An intervention with a window has no place in the mean field: the curve's label names
    it, and the curve equals the one without it."""
    scenario = advocates()
    windowed = sim.Intervention(
        name="launch",
        window_days=(0, 10),
        effects=(sim.ReferralRateFactor(factor=3.0),),
    )
    both = scenario.with_interventions(windowed)
    curve = sim.expected_adoption(both, days=np.array([30.0]))
    assert "launch" in curve.attrs["method"]
    alone = sim.expected_adoption(scenario, days=np.array([30.0]))
    assert np.allclose(curve["adopted"], alone["adopted"])


@settings(max_examples=25)
@given(scenarios_with_referral_budget())
def test_referral_rewards_never_exceed_the_budget(scenario):
    """Whatever the programme pays for (customers reached, conversions, referrals), its total
    cost in each replication stays within its budget, and every referral credited to it is
    paid one reward."""
    programme = scenario.interventions[0]
    result = sim.run(scenario, replications=2, seed=scenario.seed)
    costs = result.costs()
    total, referrals = (costs[c].to_numpy(float) for c in ("total", "referrals"))
    assert (total <= programme.budget + 1e-6).all()
    paid = costs["referral_cost"].to_numpy(float)
    assert np.allclose(paid, referrals * programme.cost.per_referral)


def test_a_spent_referral_budget_stops_rewards_and_the_rate_factor():
    """The bundled programme with a budget of 2,300 (fixed cost 2,000, reward 20) pays exactly
    (2300 - 2000) / 20 = 15 rewards per replication, though referrals go on; after the last
    paid one no referral is credited to it, and with its rate factor gone fewer customers are
    referred than with no cap (same seed, common random numbers)."""
    scenario = sim.load_scenario(SCENARIOS / "referral_programme.toml").replace(
        horizon_days=150, market=sim.Market(size=5000, external_rate=0.0002)
    )
    capped = scenario.replace(interventions=(replace(scenario.interventions[0], budget=2300.0),))
    free = sim.run(scenario, replications=2, seed=2)
    paid = sim.run(capped, replications=2, seed=2)
    costs = paid.costs()
    assert (costs["referrals"] == 15).all() and (costs["total"] == 2300).all()
    assert (free.costs()["referrals"] > 15).all()
    log = paid.log
    referred = (log.from_stage == ENTRY) & (log.referrer >= 0)
    for r in range(2):
        mine = referred & (log.replication == r)
        credited = mine & (log.treatment & 1 > 0)
        last_paid = log.time[credited].max()
        assert (log.time[mine] > last_paid).any()  # referrals go on, unpaid
        assert not (credited & (log.time > last_paid)).any()

    def n_referred(log):
        return ((log.from_stage == ENTRY) & (log.referrer >= 0)).sum()

    assert n_referred(paid.log) < n_referred(free.log)


# -- satisfaction moves the referral rate ----------------------------------------------------

FANS, FAN_DAYS, FAN_RATE = 200, 10.0, 0.05


def satisfied_referrers(per_point: float, score: float = 0.8) -> sim.Scenario:
    """A cohort of fans who all start at ``score`` and refer for exactly FAN_DAYS days; the
    market is so large that hardly anyone is reached twice."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="fan", dwell=f"fixed({FAN_DAYS:g})", next={"gone": 1}),
            sim.Stage(name="gone", absorbing=True),
        )
    )
    return sim.Scenario(
        name="satisfied referrers",
        journey=journey,
        acquisition=sim.Cohort(size=FANS),
        market=sim.Market(size=10_000_000, external_rate=0.0),
        referrals=sim.Referrals(stages=("fan",), rate=FAN_RATE, conversion=1.0),
        satisfaction=sim.Satisfaction(start=score, referral_rate_per_point=per_point),
        horizon_days=FAN_DAYS + 1,
    )


def _referred_by_the_cohort(scenario: sim.Scenario, seed: int) -> int:
    log = sim.run(scenario, seed=seed).log
    return int(((log.from_stage == ENTRY) & (log.referrer >= 0) & (log.referrer < FANS)).sum())


def test_satisfaction_moves_the_referral_rate_by_its_log_rate():
    """Each of the cohort's fans refers at rate x exp(b x score) for FAN_DAYS days, so those
    they bring in are Poisson with mean FANS x rate x exp(b s) x days (the market's depletion,
    under 1e-4, is far below the noise); summed over 4 seeds, the count lies within 4 standard
    deviations. The twin with b = 0 (mean 100 per seed against 223) must fail the check."""
    b, score, seeds = 1.0, 0.8, 4

    def within(per_point: float) -> bool:
        mean = seeds * FANS * FAN_RATE * FAN_DAYS * math.exp(b * score)
        count = sum(
            _referred_by_the_cohort(satisfied_referrers(per_point, score), s) for s in range(seeds)
        )
        return abs(count - mean) < 4 * math.sqrt(mean)

    assert within(b)
    assert not within(0.0)


@settings(max_examples=15, deadline=None)
@given(scenarios_with_referrals())
def test_a_zero_referral_rate_per_point_changes_nothing(scenario):
    """With satisfaction present and referral_rate_per_point = 0 the log is the same as with
    no coefficient given, and with a coefficient each referrer's rate moves but the log keeps
    its contract."""
    sat = sim.Satisfaction(start=0.5)
    a = sim.run(scenario.replace(satisfaction=sat), seed=scenario.seed).log
    zero = dataclasses.replace(sat, referral_rate_per_point=0.0)
    b = sim.run(scenario.replace(satisfaction=zero), seed=scenario.seed).log
    for column in COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column
    moved = dataclasses.replace(sat, referral_rate_per_point=-2.0)
    sim.run(scenario.replace(satisfaction=moved), seed=scenario.seed).log.validate()


def test_referral_rate_per_point_round_trips_and_names_bad_values(write_toml):
    """referral_rate_per_point loads and saves back equal; a bad value or one without
    referrals names the field."""
    text = sim.save_scenario(sim.load_scenario(SCENARIOS / "referral_programme.toml"))
    good = text + "\n[satisfaction]\nstart = 0.3\nreferral_rate_per_point = 0.7\n"
    scenario = sim.load_scenario(write_toml(good))
    assert scenario.satisfaction.referral_rate_per_point == 0.7
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "b.toml"))
    assert again == scenario
    field = "satisfaction, field 'referral_rate_per_point'"
    for bad in ("11", "nan", '"high"', "true"):
        path = write_toml(good.replace("= 0.7", f"= {bad}"), "bad.toml")
        with pytest.raises(sim.ScenarioError) as err:
            sim.load_scenario(path)
        assert "referral_rate_per_point" in str(err.value) and str(path) in str(err.value)
    with pytest.raises(sim.ScenarioError, match=field):
        scenario.replace(referrals=None, interventions=())


@settings(max_examples=15, deadline=None)
@given(scenarios_with_referral_budget(), st.floats(-3, 3), st.floats(-1, 1))
def test_satisfied_referrers_keep_the_budget(scenario, per_point, start):
    """With satisfaction moving the referral rate, a programme whose budget runs out still
    stops its rate factor for the referrers of every score, and never overspends."""
    sat = sim.Satisfaction(start=start, referral_rate_per_point=per_point)
    scenario = scenario.replace(satisfaction=sat)
    programme = scenario.interventions[0]
    costs = sim.run(scenario, replications=2, seed=scenario.seed).costs()
    assert (costs["total"].to_numpy(float) <= programme.budget + 1e-6).all()


def test_mean_field_of_satisfied_referrers_is_bass_with_the_factor():
    """When nothing moves the score, satisfied referrers make Bass's market with
    q = rate x conversion x exp(b x score); the curve without the factor (the twin) is
    another, and the label says what was assumed."""
    from sim.model.market import bass_share

    sat = sim.Satisfaction(start=0.5, referral_rate_per_point=1.2)
    curve = sim.expected_adoption(referral_bass(0.76, 0.5).replace(satisfaction=sat))
    q = 0.38 * math.exp(1.2 * 0.5)
    assert np.allclose(curve["adopted_share"], bass_share(curve["day"], 0.03, q), atol=1e-5)
    plain = bass_share(curve["day"], 0.03, 0.38)
    assert not np.allclose(curve["adopted_share"], plain, atol=1e-3)
    assert "starting satisfaction" in curve.attrs["method"]
