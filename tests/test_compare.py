"""Scenario comparison: paired statistics, common random numbers, error rates, ROI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

import sim
from sim.analysis import KEY_METRICS
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
    """BCa intervals replace t intervals on every row, the baseline's too: each is scipy's BCa
    interval of the scenario's per-replication values, and differs from the t interval."""
    s = comparison.summary(metrics=["revenue_per_customer"], bootstrap=True)
    t = comparison.summary(metrics=["revenue_per_customer"]).set_index("scenario")
    values = comparison.per_replication.query(
        "persona == 'all' and metric == 'revenue_per_customer'"
    )
    assert set(s.scenario) == {"baseline", "discount", "loyalty"}
    for _, row in s.iterrows():
        x = values[values.scenario == row.scenario].sort_values("replication")["value"]
        ref = scipy_stats.bootstrap(
            (x.to_numpy(),),
            np.mean,
            n_resamples=2000,
            method="BCa",
            rng=np.random.default_rng(comparison.seed),
        ).confidence_interval
        assert (row.ci_low, row.ci_high) == (ref.low, ref.high), row.scenario
        assert (row.ci_low, row.ci_high) != (
            t.loc[row.scenario, "ci_low"],
            t.loc[row.scenario, "ci_high"],
        )


def test_holm_family_does_not_depend_on_the_metrics_shown(comparison):
    """Holm's family is every non-baseline scenario x KEY_METRICS per persona: a metric's
    adjusted p-value is the same whether one metric, the key metrics or all metrics are
    shown (as in the printed table and comparison.csv), and equals statsmodels' Holm over
    that family; metrics outside the family have none."""
    one = comparison.summary(metrics=["conversion"]).set_index("scenario")
    key = comparison.summary().query("metric == 'conversion'").set_index("scenario")
    every = comparison.summary(metrics=None)
    every_conv = every.query("metric == 'conversion'").set_index("scenario")
    for table in (key, every_conv):
        np.testing.assert_array_equal(one["p_adjusted"], table.loc[one.index, "p_adjusted"])
    family = comparison.summary().query("scenario != 'baseline'")
    assert len(family) == 2 * len(KEY_METRICS)
    expected = multipletests(family["p_value"], method="holm")[1]
    np.testing.assert_allclose(family["p_adjusted"], expected, rtol=1e-14)
    outside = every[~every.metric.isin(KEY_METRICS)]
    assert len(outside) and outside["p_adjusted"].isna().all()
    per_persona = comparison.summary(metrics=["conversion"], persona=None)
    both = comparison.summary(persona=None).query("metric == 'conversion'")
    np.testing.assert_array_equal(per_persona["p_adjusted"], both["p_adjusted"])


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
