"""A finite market with word of mouth: the scenario file, the engine against Bass's model
(exact finite-market expectation, twins that must fail), the mean-field curve, the analysis."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings

import sim
from sim.analysis.adoption import acquisition_sources, adoption_curve, word_of_mouth_share
from sim.model.market import bass_peak_day, bass_share
from tests.strategies import scenarios_with_market
from tests.validation import SCENARIOS, K, bass_scenario, pure_birth_moments

MARKET = """
[market]
size = 5000
external_rate = 0.002

[word_of_mouth]
stages = ["purchase", "post_purchase"]
rate = 0.3
"""

#: Bass (p, q) per period from the diffusion literature: the averages over many products in
#: Sultan, Farley and Lehmann (1990), and a fast-imitation case (Mahajan, Muller and Bass 1995).
PAIRS = [(0.03, 0.38), (0.01, 0.5)]
SIZE, REPLICATIONS = 500, 60
DAYS = np.array([3.0, 6.0, 9.0, 12.0, 16.0])


@functools.cache
def _bass_adopted(p: float, q: float) -> np.ndarray:
    """Per replication and day in DAYS: how many of a Bass market adopted by then (run once
    per (p, q) and shared by the check and its twin)."""
    result = sim.run(bass_scenario(SIZE, p, q, DAYS.max()), replications=REPLICATIONS, seed=5)
    return sim.analysis.adoption.adoption_counts(result.log, DAYS)


def _bass_gaps(adopted: np.ndarray, p: float, q: float) -> np.ndarray:
    """|simulated mean - exact finite-market mean| in standard errors of the mean."""
    mean, sd = pure_birth_moments(SIZE, p, q, DAYS)
    return np.abs(adopted.mean(axis=0) - mean) / (sd / np.sqrt(len(adopted)))


def test_market_sections_round_trip(write_toml, baseline):
    """[market] and [word_of_mouth] load into the scenario and save back to an equal one."""
    text = (SCENARIOS / "baseline.toml").read_text() + MARKET
    scenario = sim.load_scenario(write_toml(text))
    assert scenario.market == sim.Market(size=5000, external_rate=0.002)
    assert scenario.word_of_mouth.stages == ("purchase", "post_purchase")
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "again.toml"))
    assert again == scenario
    assert baseline.market is None and baseline.interacting is None
    assert "word of mouth" in scenario.interacting


def test_market_alone_needs_no_acquisition(write_toml):
    """Without [acquisition], customers come only from the market (a cohort of 0)."""
    text = (SCENARIOS / "baseline.toml").read_text()
    head, _, rest = text.partition("[acquisition]")
    rest = rest.split("\n", 2)[2] if rest.startswith("\ncohort") else rest
    scenario = sim.load_scenario(write_toml(head + rest + MARKET))
    assert scenario.acquisition == sim.Cohort(size=0)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("[word_of_mouth]\nstages = ['purchase']\nrate = 0.1\n", "word_of_mouth"),
        ("[market]\nsize = 0\n", "market, field 'size'"),
        ("[market]\nsize = 10\nexternal_rate = -1\n", "market, field 'external_rate'"),
        ("[market]\nsize = 10\nreach = 1\n", "market"),
        (
            "[market]\nsize = 10\n[word_of_mouth]\nstages = ['purchse']\nrate = 0.1\n",
            "word_of_mouth, field 'stages'",
        ),
        ("[market]\nsize = 10\n[word_of_mouth]\nrate = 0.1\n", "word_of_mouth, field 'stages'"),
        ("[market]\nsize = 10\n[word_of_mouth]\nstages = ['purchase']\n", "word_of_mouth"),
    ],
)
def test_bad_market_sections_name_the_field(write_toml, extra, field):
    """Each mistake in the market sections is a ScenarioError naming the file and field."""
    path = write_toml((SCENARIOS / "baseline.toml").read_text() + extra)
    with pytest.raises(sim.ScenarioError) as err:
        sim.load_scenario(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_an_empty_cohort_needs_a_market(baseline):
    """A cohort of 0 is an error unless customers can come from a market."""
    with pytest.raises(sim.ScenarioError, match="0 only beside a market"):
        baseline.with_customers(0)
    market = sim.Market(size=10, external_rate=0.1)
    assert baseline.replace(acquisition=sim.Cohort(size=0), market=market).market == market


@settings(max_examples=25)
@given(scenarios_with_market())
def test_market_logs_keep_the_contract(scenario):
    """Logs with customers from the market pass the event-log contract, customers are
    numbered in order of arrival, and no more of the market adopt than it holds."""
    log = sim.run(scenario, replications=2, seed=scenario.seed).log.validate()
    entry = log.from_stage == sim.events.ENTRY
    for r in range(2):
        rows = entry & (log.replication == r)
        assert np.all(np.diff(log.time[rows][np.argsort(log.customer[rows])]) >= 0)
    market = np.isin(
        log.channel, [log.channels.index("market"), log.channels.index("word_of_mouth")]
    )
    assert (entry & market).sum() <= 2 * scenario.market.size


@settings(max_examples=20)
@given(scenarios_with_market())
def test_a_silent_market_changes_nothing(scenario):
    """With external rate 0 and word-of-mouth rate 0 nobody comes from the market: every
    column of the log equals that of the same scenario without the market sections."""
    cohort = sim.Cohort(size=max(scenario.acquisition.size, 1))
    silent = scenario.replace(
        acquisition=cohort,
        market=sim.Market(size=scenario.market.size, external_rate=0.0),
        word_of_mouth=sim.WordOfMouth(stages=scenario.word_of_mouth.stages, rate=0.0),
    )
    plain = scenario.replace(acquisition=cohort, market=None, word_of_mouth=None)
    a = sim.run(silent, replications=1, seed=scenario.seed).log
    b = sim.run(plain, replications=1, seed=scenario.seed).log
    for column in sim.events.COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column


def test_market_runs_give_one_answer_at_any_worker_count(baseline):
    """Market customers' numbers are keyed by adoption number: two workers give the same
    log as one."""
    scenario = baseline.replace(
        acquisition=sim.Cohort(size=20),
        market=sim.Market(size=300, external_rate=0.01),
        word_of_mouth=sim.WordOfMouth(stages=("purchase", "post_purchase"), rate=0.4),
        horizon_days=60,
    )
    one = sim.run(scenario, replications=2, seed=4).log
    two = sim.run(scenario, replications=2, seed=4, workers=2).log
    for column in sim.events.COLUMNS:
        assert np.array_equal(getattr(one, column), getattr(two, column)), column


def test_the_same_adopter_gets_the_same_journey_when_word_of_mouth_changes():
    """Common random numbers: the first adopter's persona and path do not depend on q."""
    base = sim.load_scenario(SCENARIOS / "baseline.toml").replace(
        acquisition=sim.Cohort(size=0),
        market=sim.Market(size=200, external_rate=0.02),
        word_of_mouth=sim.WordOfMouth(stages=("post_purchase",), rate=0.1),
        horizon_days=400,
    )
    logs = [
        sim.run(
            base.replace(word_of_mouth=sim.WordOfMouth(stages=("post_purchase",), rate=q)), seed=9
        ).log
        for q in (0.1, 0.6)
    ]
    paths = []
    for log in logs:
        rows = log.customer == 0
        paths.append((log.persona[rows][0], tuple(log.to_stage[rows]), tuple(log.value[rows])))
    assert paths[0] == paths[1]


@pytest.mark.slow
@pytest.mark.parametrize(("p", "q"), PAIRS)
def test_adoption_matches_the_exact_finite_market_expectation(p, q):
    """Awareness leading straight to adoption: the mean number adopted over 60 replications
    lies within K standard errors (sd from the exact distribution of the pure-birth chain) of
    its exact expectation at every checked day; and that expectation is Bass's F(t) up to the
    finite market's own O(1/N) lag."""
    adopted = _bass_adopted(p, q)
    assert (_bass_gaps(adopted, p, q) <= K).all()
    mean, sd = pure_birth_moments(SIZE, p, q, DAYS)
    lag = np.abs(mean / SIZE - bass_share(DAYS, p, q))
    assert (lag < 0.02).all()
    # simulated against Bass's closed form, allowing the statistics and the derived lag
    tolerance = K * sd / np.sqrt(REPLICATIONS) / SIZE + lag
    assert (np.abs(adopted.mean(axis=0) / SIZE - bass_share(DAYS, p, q)) <= tolerance).all()


@pytest.mark.slow
@pytest.mark.parametrize(("p", "q"), PAIRS)
def test_adoption_check_fails_when_word_of_mouth_is_moved(p, q):
    """Twin: the same check against a market whose q is 20% higher must fail."""
    adopted = _bass_adopted(p, q)
    assert (_bass_gaps(adopted, p, q * 1.2) > K).any()


@pytest.mark.slow
@pytest.mark.parametrize(("p", "q"), PAIRS)
def test_adoptions_per_day_peak_near_the_bass_peak(p, q):
    """New adopters per day (mean over replications, in half-day bins) peak within one day of
    ln(q/p)/(p+q)."""
    scenario = bass_scenario(2000, p, q, 20.0)
    result = sim.run(scenario, replications=10, seed=3)
    days = np.arange(0.0, 20.5, 0.5)
    curve = adoption_curve(result.log, 2000, p, q, days=days)
    rate = np.diff(curve["adopted"].to_numpy())
    peak = days[np.argmax(rate)] + 0.25
    assert abs(peak - bass_peak_day(p, q)) <= 1.0


def test_expected_refuses_and_mean_field_is_bass(baseline):
    """sim.expected refuses interacting scenarios and points to expected_adoption; where
    every stage influences others the mean-field curve is Bass's closed form, labelled exact;
    on a general journey it is labelled an approximation."""
    bass = bass_scenario(1000, 0.03, 0.38, 20.0)
    with pytest.raises(sim.ScenarioError, match="expected_adoption"):
        sim.expected(bass)
    curve = sim.expected_adoption(bass)
    assert np.allclose(curve["adopted_share"], bass_share(curve["day"], 0.03, 0.38), atol=1e-5)
    assert "exact" in curve.attrs["method"]
    general = baseline.replace(
        acquisition=sim.Cohort(size=1),
        market=sim.Market(size=3000, external_rate=0.002),
        word_of_mouth=sim.WordOfMouth(stages=("purchase", "post_purchase"), rate=0.3),
    )
    assert "approximation" in sim.expected_adoption(general).attrs["method"]


def test_mean_field_is_near_the_simulation_on_a_general_journey(baseline):
    """On the baseline journey (non-exponential dwell) the mean-field curve stays within 10%
    of the market of the simulated mean: a sanity bound for an approximation, not a test of
    exactness."""
    scenario = baseline.replace(
        acquisition=sim.Cohort(size=1),
        market=sim.Market(size=1000, external_rate=0.002),
        word_of_mouth=sim.WordOfMouth(stages=("purchase", "post_purchase"), rate=0.3),
        horizon_days=120,
    )
    days = np.array([30.0, 60.0, 90.0, 120.0])
    simulated = adoption_curve(sim.run(scenario, replications=6, seed=2).log, days=days)
    expected = sim.expected_adoption(scenario, days=days)
    assert np.all(np.abs(simulated["adopted"] - expected["adopted"]) < 100)


def test_adoption_tables_split_customers_by_source():
    """The adoption curve is non-decreasing, counts word of mouth within it, and the sources
    table's shares sum to 1 and agree with the pooled word-of-mouth share."""
    result = sim.run(bass_scenario(300, 0.03, 0.38, 15.0), replications=3, seed=1)
    curve = adoption_curve(result.log)
    assert (np.diff(curve["adopted"]) >= 0).all()
    assert (curve["by_word_of_mouth"] <= curve["adopted"]).all()
    assert curve.attrs["bass"]["q"] > curve.attrs["bass"]["p"]
    sources = acquisition_sources(result.log)
    assert np.isclose(sources["share"].sum(), 1)
    assert abs(sources["share"].iloc[0] - word_of_mouth_share(result.log)) < 0.05


def test_adoption_of_a_log_without_a_market_is_a_clear_error(baseline):
    """Asking a plain log for its adoption curve names what is missing."""
    log = sim.run(baseline, seed=1, customers=20).log
    with pytest.raises(sim.EventLogError, match="market"):
        adoption_curve(log)


def test_adoption_plot_draws_the_simulated_and_bass_curves():
    """sim.plot.adoption draws the simulated curve, word of mouth and the Bass curve
    (cumulative), or bars per day beside the Bass rate."""
    from sim import plot

    result = sim.run(bass_scenario(200, 0.03, 0.38, 10.0), replications=2, seed=1)
    fig = plot.adoption(result)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["simulated (95% CI)", "of them by word of mouth", "Bass"]
    fig = plot.adoption(result, per_day=True)
    assert len(fig.axes[0].patches) == 11
