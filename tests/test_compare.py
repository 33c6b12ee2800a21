"""Scenario comparison: paired statistics, common random numbers, error rates, ROI."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.analysis.stats import holm
from sim.interventions import discount, loyalty_program
from tests.validation import SCENARIOS


@pytest.fixture(scope="module")
def shop() -> sim.Scenario:
    return sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(2000)


@pytest.fixture(scope="module")
def offer() -> sim.Intervention:
    return discount(depth=0.2, personas=["bargain_hunter"], reach=0.6, fixed=500, per_reached=0.5)


@pytest.fixture(scope="module")
def comparison(shop, offer) -> sim.Comparison:
    return sim.compare(
        {
            "baseline": shop,
            "discount": shop.with_interventions(offer),
            "loyalty": shop.with_interventions(loyalty_program(per_reached=1)),
        },
        replications=8,
        seed=5,
    )


def test_summary_is_one_tidy_table(comparison):
    """One row per scenario and metric with mean, CIs, difference, uplift and p-values; the
    baseline's difference is zero."""
    s = comparison.summary()
    assert list(s.columns) == [
        "scenario",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "diff_vs_baseline",
        "diff_ci_low",
        "diff_ci_high",
        "relative_uplift",
        "p_value",
        "p_adjusted",
    ]
    base = s[s.scenario == "baseline"]
    assert (base.diff_vs_baseline == 0).all() and base.p_value.isna().all()
    conv = s[s.metric == "conversion"].set_index("scenario")
    assert conv.loc["discount", "diff_ci_low"] > 0, "a 20% discount raises conversion"
    ok = (s.ci_low <= s["mean"]) & (s["mean"] <= s.ci_high)
    assert ok[s.metric != "cost"].all()
    assert (s.p_adjusted.dropna() >= s.p_value.dropna()).all()


def test_loyalty_cannot_change_anything_before_the_first_purchase(comparison):
    """Under common random numbers a programme joined at purchase leaves conversion and time
    to first purchase exactly equal, replication by replication."""
    s = comparison.summary().set_index(["scenario", "metric"])
    for metric in ("conversion", "time_to_first_purchase"):
        assert s.loc[("loyalty", metric), "diff_vs_baseline"] == 0
        assert s.loc[("loyalty", metric), "diff_ci_high"] == 0


def test_per_replication_values_are_kept(comparison):
    """The long table keeps every replication's value, and its means are the summary's."""
    per = comparison.per_replication
    assert set(per.columns) == {"scenario", "replication", "persona", "metric", "value"}
    conv = per[(per.metric == "conversion") & (per.persona == "all")]
    assert len(conv) == 3 * 8
    means = conv.groupby("scenario").value.mean()
    s = comparison.summary(metrics=["conversion"]).set_index("scenario")
    np.testing.assert_allclose(means.loc[s.index], s["mean"])


def test_comparison_runs_equal_single_runs(comparison, shop):
    """The baseline inside a comparison is exactly `sim.run` with the same seed."""
    alone = sim.run(shop, replications=8, seed=5)
    inside = comparison.results["baseline"]
    np.testing.assert_array_equal(alone.log.time, inside.log.time)
    np.testing.assert_array_equal(alone.log.to_stage, inside.log.to_stage)


def test_roi_adds_up(comparison):
    """Incremental profit = incremental revenue - incremental cost; ROI = profit / cost."""
    roi = comparison.roi().set_index("scenario")
    for name in ("discount", "loyalty"):
        r = roi.loc[name]
        assert np.isclose(r.incremental_profit, r.incremental_revenue - r.incremental_cost)
        assert np.isclose(r.roi, r.incremental_profit / r.incremental_cost)
    assert roi.loc["loyalty", "incremental_conversions"] == 0
    assert np.isnan(roi.loc["loyalty", "cost_per_incremental_conversion"])


def test_common_random_numbers_narrow_the_interval(shop, offer):
    """On the same workload, the paired interval on the discount's conversion effect is less
    than half as wide as with independent streams."""
    scenarios = {"baseline": shop, "discount": shop.with_interventions(offer)}

    def half_width(crn: bool) -> float:
        res = sim.compare(scenarios, replications=10, seed=9, common_random_numbers=crn)
        row = res.summary(metrics=["conversion"]).set_index("scenario").loc["discount"]
        return (row.diff_ci_high - row.diff_ci_low) / 2

    paired, independent = half_width(True), half_width(False)
    assert paired < 0.5 * independent, (paired, independent)


@pytest.mark.slow
def test_aa_comparisons_reject_at_the_nominal_rate():
    """Two identical scenarios on independent streams: over 200 seeds the 5% test rejects
    'no difference in conversion' in about 5% of cases (within 4 binomial SDs: at most
    5% + 6.2%), and not never (the test is live)."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="visit", dwell=sim.Exponential(mean=1), next={"buy": 0.3, "gone": 0.7}),
            sim.Stage(name="buy", purchase=True, next={"gone": 1.0}),
            sim.Stage(name="gone", absorbing=True),
        )
    )
    a = sim.Scenario(name="a", journey=journey, acquisition=sim.Cohort(size=200), horizon_days=30)
    rejections = 0
    runs = 200
    for seed in range(runs):
        res = sim.compare(
            {"a": a, "b": a.replace(name="b")},
            replications=6,
            seed=seed,
            common_random_numbers=False,
        )
        p = res.summary(metrics=["conversion"]).set_index("scenario").loc["b", "p_value"]
        rejections += p < 0.05
    rate = rejections / runs
    assert 0 < rate <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / runs), rate


def test_auto_replications_stop_at_the_target(shop, offer):
    """'auto' adds batches until the interval is narrow enough, and says so; an unreachable
    target stops at the maximum, marked not converged."""
    scenarios = {"baseline": shop, "discount": shop.with_interventions(offer)}
    res = sim.compare(
        scenarios, "auto", seed=3, target_half_width=0.004, batch=4, max_replications=40
    )
    row = res.summary(metrics=["conversion"]).set_index("scenario").loc["discount"]
    assert res.converged and (row.diff_ci_high - row.diff_ci_low) / 2 <= 0.004
    assert res.replications % 4 == 0 and res.replications < 40
    hard = sim.compare(
        scenarios, "auto", seed=3, target_half_width=1e-6, batch=4, max_replications=8
    )
    assert hard.converged is False and hard.replications == 8


def test_bootstrap_intervals(comparison):
    """BCa bootstrap intervals are offered for skewed metrics and contain the mean."""
    s = comparison.summary(metrics=["revenue_per_customer"], bootstrap=True)
    assert ((s.ci_low <= s["mean"]) & (s["mean"] <= s.ci_high)).all()


def test_holm_adjustment():
    """Holm: sorted p-values times (m - rank), made monotone, capped at 1."""
    np.testing.assert_allclose(
        holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.06, 0.06, np.nan]
    )


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"replications": "auto"}, "target_half_width"),
        ({"baseline": "nope"}, "unknown baseline 'nope'"),
        ({"replications": 0}, "replications must be"),
    ],
)
def test_bad_comparison_arguments(shop, kwargs, words):
    """Impossible requests are refused with the fix."""
    with pytest.raises(sim.ScenarioError, match=words):
        sim.compare({"a": shop, "b": shop}, **kwargs)


def test_one_scenario_is_not_a_comparison(shop):
    """A comparison needs two scenarios."""
    with pytest.raises(sim.ScenarioError, match="at least two"):
        sim.compare([shop])


def test_comparison_summary_in_notebooks(comparison):
    """A comparison shows its differences and ROI as HTML tables, and a one-line repr."""
    page = comparison._repr_html_()
    assert page.count("<table") == 2 and "discount" in page and "roi" in page
    assert repr(comparison).startswith("Comparison of 3 scenarios against 'baseline'")
