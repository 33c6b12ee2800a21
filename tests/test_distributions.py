"""Distributions: parametrisation, moments, sampling and the text form used in files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import sim
from sim.model.distributions import parse_distribution
from tests.strategies import distributions

# each of our laws next to the scipy law it must equal
CASES = [
    (sim.Exponential(mean=4), stats.expon(scale=4)),
    (sim.Exponential(rate=0.25), stats.expon(scale=4)),
    (sim.Gamma(shape=2.5, mean=10), stats.gamma(a=2.5, scale=4)),
    (sim.Lognormal(mean=40, sigma=0.5), stats.lognorm(s=0.5, scale=40 * np.exp(-0.125))),
    (sim.Weibull(shape=1.5, mean=10), stats.weibull_min(c=1.5, scale=10 / 0.9027452929509336)),
]


@pytest.mark.parametrize("ours,reference", CASES, ids=[repr(c[0]) for c in CASES])
def test_moments_and_quantiles_match_scipy(ours, reference):
    """Mean, variance and quantile function equal scipy's for the same law."""
    assert np.isclose(ours.mean, reference.mean(), rtol=1e-9)
    assert np.isclose(ours.variance, reference.var(), rtol=1e-9)
    u = np.linspace(0.001, 0.999, 50)
    np.testing.assert_allclose(ours.quantile(u), reference.ppf(u), rtol=1e-8)


@pytest.mark.parametrize("ours,reference", CASES, ids=[repr(c[0]) for c in CASES])
def test_samples_follow_the_law(ours, reference):
    """20,000 draws pass a Kolmogorov-Smirnov test at level 0.001 (fixed seed); the same draws
    fail against a law with a 10% larger mean, so the test has power."""
    x = ours.sample(np.random.default_rng(11), 20_000)
    assert stats.kstest(x, reference.cdf).pvalue > 0.001
    wrong = ours.scaled(1.1)
    assert stats.kstest(x, lambda v: _cdf(wrong, v)).pvalue < 0.001


def _cdf(d, v):
    grid = np.sort(d.sample(np.random.default_rng(99), 200_000))
    return np.searchsorted(grid, v, side="right") / len(grid)


@given(distributions(), st.floats(0.1, 10))
def test_scaling_multiplies_time(d, factor):
    """``scaled(f)`` (an accelerated-failure-time factor) multiplies the mean by f, the variance
    by f squared, and every quantile by f."""
    s = d.scaled(factor)
    assert np.isclose(s.mean, d.mean * factor, rtol=1e-9, atol=1e-12)
    assert np.isclose(s.variance, d.variance * factor**2, rtol=1e-7, atol=1e-9)
    u = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(s.quantile(u), d.quantile(u) * factor, rtol=1e-7, atol=1e-12)


@given(distributions(), st.floats(0, 1, exclude_min=True, exclude_max=True))
def test_the_quantile_at_one_probability_is_the_arrays(d, u):
    """``at(u)`` (the engine's scalar path) is the very float ``quantile`` gives at the
    scalar ``u``, bit for bit, for every family (not always the array's: numpy may compute
    an array by other instructions, so a path keeps to one form)."""
    assert d.at(u) == float(d.quantile(u))
    assert type(d.at(u)) is float


@given(distributions())
def test_text_form_reads_back_equal(d):
    """A law written as text in a scenario file reads back as an equal law."""
    assert parse_distribution(d.spec()) == d


def test_empirical_resamples_the_observed_values():
    """An empirical law draws only observed values, each about equally often, and knows the
    sample mean and (population) variance."""
    d = sim.Empirical((1.0, 2.0, 4.0, 8.0))
    x = d.sample(np.random.default_rng(1), 40_000)
    values, counts = np.unique(x, return_counts=True)
    assert list(values) == [1, 2, 4, 8]
    assert np.all(np.abs(counts / 40_000 - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 40_000))
    assert d.mean == 3.75 and np.isclose(d.variance, np.var([1, 2, 4, 8]))


@pytest.mark.parametrize(
    "text,words",
    [
        ("exponential(mean=3, rate=1)", "exactly one of rate or mean"),
        ("exponential()", "exactly one of rate or mean"),
        ("gamma(shape=2)", "missing mean"),
        ("gamma(shape=2, mean=5, scale=1)", "no parameter 'scale'"),
        ("weibul(shape=2, mean=1)", "did you mean 'weibull'"),
        ("lognormal(mean=40, sigma=-1)", "sigma must be zero or more"),
        ("fixed(-2)", "value must be zero or more, got -2"),
        ("gamma shape 2", "cannot read distribution"),
        ("empirical()", "at least one value"),
    ],
)
def test_bad_distribution_text_is_explained(text, words):
    """A malformed distribution names the field and says what is wrong."""
    with pytest.raises(sim.ScenarioError) as info:
        parse_distribution(text, field="stage 'x', field 'dwell'")
    assert words in str(info.value) and "stage 'x', field 'dwell'" in str(info.value)


def test_repr_shows_parameters():
    """``repr`` shows the parameters as given."""
    assert repr(sim.Exponential(rate=2)) == "Exponential(rate=2)"
    assert repr(sim.Gamma(shape=2, mean=5)) == "Gamma(shape=2.0, mean=5.0)"
