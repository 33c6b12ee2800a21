"""The log-odds rule: any stack of effects still gives probabilities, and odds move as stated."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sim.model.logit import apply_log_odds, transition_matrices
from tests.strategies import scenarios

rows = st.integers(2, 6).flatmap(
    lambda k: st.tuples(
        hnp.arrays(float, k, elements=st.floats(0, 1)).filter(lambda p: p.sum() > 1e-3),
        hnp.arrays(float, k, elements=st.floats(-30, 30)),
    )
)


@given(rows)
def test_probabilities_stay_valid_under_any_effects(row):
    """After any log-odds shifts, probabilities lie in [0, 1] and sum to 1."""
    p, delta = row
    p = p / p.sum()
    q = apply_log_odds(p, delta)
    assert np.all((q >= 0) & (q <= 1))
    assert abs(q.sum() - 1) < 1e-12


@given(rows)
def test_zero_effect_changes_nothing(row):
    """A log-odds shift of 0 (odds ratio 1) leaves the base probabilities unchanged."""
    p, _ = row
    p = p / p.sum()
    np.testing.assert_allclose(apply_log_odds(p, np.zeros_like(p)), p, rtol=1e-12, atol=1e-15)


@given(rows, st.floats(-5, 5), st.floats(-5, 5))
def test_effects_on_one_transition_multiply_odds_ratios(row, d1, d2):
    """Two effects on a transition act as one with the product of their odds ratios, and the
    odds of that transition against any other alternative move by exactly that ratio."""
    p, _ = row
    p = (p + 0.01) / (p + 0.01).sum()
    one = np.zeros_like(p)
    one[0] = d1
    two = np.zeros_like(p)
    two[0] = d2
    stacked = apply_log_odds(apply_log_odds(p, one), two)
    together = apply_log_odds(p, one + two)
    np.testing.assert_allclose(stacked, together, rtol=1e-9)
    ratio = (together[0] / together[1]) / (p[0] / p[1])
    assert np.isclose(ratio, np.exp(d1 + d2), rtol=1e-9)


def test_zero_probability_transitions_stay_closed():
    """An effect cannot open a transition whose base probability is zero."""
    q = apply_log_odds(np.array([0.0, 0.5, 0.5]), np.array([50.0, 0.0, 0.0]))
    assert q[0] == 0 and np.isclose(q.sum(), 1)


@given(scenarios())
def test_persona_matrices_are_stochastic(scenario):
    """Every persona's transition matrix has rows summing to 1 (transient) or 0 (absorbing)."""
    m = transition_matrices(scenario.journey, scenario.personas, scenario.effects)
    absorbing = np.array([s.absorbing for s in scenario.journey.stages])
    sums = m.sum(axis=-1)
    assert np.allclose(sums[:, ~absorbing], 1) and np.all(sums[:, absorbing] == 0)
    assert np.all((m >= 0) & (m <= 1))
