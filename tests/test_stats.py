"""Statistics held against libraries nobody here wrote: lifelines (Kaplan-Meier curves, bands,
medians), statsmodels (Holm, t intervals, Welch, Wilson) and scipy (BCa bootstrap), on
simulated event logs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

import sim
from sim.analysis import customer_arrays, kaplan_meier, lifetimes, median_lifetime
from sim.analysis.stats import bootstrap_interval, difference, holm, mean_ci, proportion_ci
from tests.validation import SCENARIOS


@pytest.fixture(scope="module")
def lives() -> tuple[np.ndarray, np.ndarray]:
    """Active lifetimes after first purchase (days) and whether their end was seen, from a
    simulated subscription run (censored at the horizon)."""
    scenario = sim.load_scenario(SCENARIOS / "subscription.toml")
    log = sim.run(scenario, replications=1, seed=3).log
    duration, observed, _ = lifetimes(customer_arrays(log), log.horizon_days)
    assert observed.any() and not observed.all()
    return duration, observed


def _lifelines(duration, observed) -> KaplanMeierFitter:
    return KaplanMeierFitter().fit(duration, observed, alpha=0.05)


def test_kaplan_meier_curve_and_band_match_lifelines(lives):
    """Survival and its log-log 95% band agree with lifelines at every event day."""
    duration, observed = lives
    ours = kaplan_meier(duration, observed).iloc[1:]
    km = _lifelines(duration, observed)
    days = ours["day"].to_numpy()
    np.testing.assert_allclose(
        ours["survival"], km.survival_function_at_times(days).to_numpy(), rtol=1e-10
    )
    band = km.confidence_interval_survival_function_.loc[days]
    # where survival reaches 0 the log-log band is undefined: NaN here, 0 in lifelines
    finite = ours["survival"].to_numpy() > 0
    np.testing.assert_allclose(ours["ci_low"][finite], band.iloc[:, 0][finite], rtol=1e-8)
    np.testing.assert_allclose(ours["ci_high"][finite], band.iloc[:, 1][finite], rtol=1e-8)


def test_kaplan_meier_median_matches_lifelines(lives):
    """The median active lifetime is lifelines' median, on simulated lifetimes and per
    persona-sized subsamples."""
    duration, observed = lives
    for n in (len(duration), 997, 301, 57):
        d, o = duration[:n], observed[:n]
        ours = median_lifetime(kaplan_meier(d, o))
        theirs = _lifelines(d, o).median_survival_time_
        assert ours == pytest.approx(theirs, rel=1e-12) or (np.isinf(theirs) and np.isnan(ours))


def test_median_does_not_skip_a_survival_of_one_half_up_to_rounding():
    """Survival that is exactly 1/2 in exact arithmetic (fractions) but 0.5000000000000001 in
    floating point still gives the median at that day (7), not the next event (11). lifelines
    itself rounds the wrong way on this sample, so exact arithmetic is the oracle here."""
    d = np.array([11, 12, 6, 17, 4, 14, 2, 12, 5, 6, 7, 15, 16, 5], dtype=float)
    o = np.array([1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1], dtype=bool)
    exact, median = Fraction(1), None
    for t in np.unique(d[o]):
        at_risk, ended = int((d >= t).sum()), int(((d == t) & o).sum())
        exact *= Fraction(at_risk - ended, at_risk)
        if median is None and exact <= Fraction(1, 2):
            median = t
    assert median == 7.0
    curve = kaplan_meier(d, o)
    assert curve.loc[curve.day == 7, "survival"].iloc[0] > 0.5  # the rounding this is about
    assert median_lifetime(curve) == median


def test_holm_matches_statsmodels():
    """Holm's adjustment equals statsmodels' multipletests(method='holm'), ties included."""
    rng = np.random.default_rng(4)
    for m in (1, 2, 7, 40):
        p = rng.uniform(0, 0.2, m) ** 2
        p[: m // 3] = p[0]  # ties
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-14)


def test_holm_adjustment_by_hand():
    """Holm: sorted p-values times (m - rank), made monotone, capped at 1; NaN not counted."""
    np.testing.assert_allclose(
        holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.06, 0.06, np.nan]
    )


def test_t_intervals_match_statsmodels():
    """Mean intervals over replications (columns at once) and paired and Welch differences
    agree with statsmodels' t intervals, and the p-values with its t tests."""
    rng = np.random.default_rng(5)
    values = rng.gamma(2.0, 3.0, size=(12, 4))
    mean, low, high = mean_ci(values)
    for j in range(values.shape[1]):
        lo, hi = DescrStatsW(values[:, j]).tconfint_mean(alpha=0.05)
        assert (low[j], high[j]) == pytest.approx((lo, hi), rel=1e-12)
        assert mean[j] == pytest.approx(values[:, j].mean(), rel=1e-14)
    x, y = values[:, 0], values[:, 1] + 1.0
    diff, lo, hi, p = difference(x, y, paired=True)
    ref = DescrStatsW(y - x)
    assert diff == pytest.approx(ref.mean, rel=1e-12)
    assert (lo, hi) == pytest.approx(ref.tconfint_mean(alpha=0.05), rel=1e-12)
    assert p == pytest.approx(ref.ttest_mean(0.0)[1], rel=1e-10)
    y = rng.gamma(2.0, 6.0, size=7)  # unequal size and variance
    diff, lo, hi, p = difference(x, y, paired=False)
    assert diff == pytest.approx(y.mean() - x.mean(), rel=1e-12)
    ref = CompareMeans(DescrStatsW(y), DescrStatsW(x))
    assert (lo, hi) == pytest.approx(ref.tconfint_diff(alpha=0.05, usevar="unequal"), rel=1e-12)
    assert p == pytest.approx(ref.ttest_ind(usevar="unequal")[1], rel=1e-10)


def test_wilson_intervals_match_statsmodels():
    """Wilson intervals equal statsmodels' proportion_confint(method='wilson'), including
    0 and n successes; a normal (Wald) interval would fail this at the edges."""
    k = np.array([0, 1, 7, 50, 99, 100, 3])
    n = np.array([100, 100, 100, 100, 100, 100, 4])
    low, high = proportion_ci(k, n)
    ref_low, ref_high = proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(low, ref_low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(high, ref_high, rtol=1e-12, atol=1e-15)


def test_single_replication_funnel_uses_wilson_intervals(baseline):
    """With one replication the funnel's conversion intervals are Wilson intervals of the
    counts (checked with statsmodels on a simulated log)."""
    result = sim.run(baseline.with_customers(500), replications=1, seed=2)
    f = result.funnel(by=None)
    n = int(f["customers"].iloc[0])
    low, high = proportion_confint(f["customers"].round(), n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(f["conversion_ci_low"], low, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f["conversion_ci_high"], high, rtol=1e-12, atol=1e-15)


def test_bca_interval_is_scipys_and_follows_the_skew():
    """The bootstrap interval is scipy's BCa interval for the same seed (not a percentile or
    t interval), and for right-skewed data it reaches further above the mean than below."""
    x = np.random.default_rng(6).lognormal(0.0, 1.2, size=25)
    low, high = bootstrap_interval(x, seed=9)
    ref = scipy_stats.bootstrap(
        (x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(9)
    ).confidence_interval
    assert (low, high) == (ref.low, ref.high)
    percentile = scipy_stats.bootstrap(
        (x,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(9)
    ).confidence_interval
    assert (low, high) != (percentile.low, percentile.high)
    assert high - x.mean() > 1.2 * (x.mean() - low)
