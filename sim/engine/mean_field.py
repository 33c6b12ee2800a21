r"""The mean-field adoption curve of a scenario with a finite market (no simulation).

The expected number of the market's people still to adopt, :math:`S`, and the expected number
of customers in each stage, :math:`x`, follow the ordinary differential equations

.. math::

    \dot S = -S \,(p + q A / N), \qquad A = \textstyle\sum_{s \in \text{influencing}} x_s,

    \dot x_j = \text{inflow}_j + \textstyle\sum_i \frac{x_i}{m_i} L_{ij} - \frac{x_j}{m_j},

with :math:`m_i` the mean dwell of stage *i* (per persona) and :math:`L` the persona's
transition matrix with stages of zero dwell passed through at once. Inflow is the market's
adoptions :math:`S(p + qA/N)` into the entry stage, plus channel arrivals; a cohort is the
starting occupancy. Referrals add :math:`c\,r\,W/N` to the rate, with :math:`W` the
persona-weighted number of customers in referring stages. Interventions are left out.

Where every stage influences others the equations reduce to Bass's
:math:`\dot F = (1 - F)(p + qF)`: the curve is then exact in expectation for an infinite
market (a market of *N* people adopts slightly later, by O(1/N)). Elsewhere it replaces each
stage's dwell law by an exponential one of the same mean and the number of influencers by
its expectation, which makes it an approximation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from sim.errors import ScenarioError
from sim.model.acquisition import Arrivals, Cohort
from sim.model.logit import transition_matrices
from sim.model.scenario import Scenario

#: How the curve is labelled, in its frame's ``attrs["method"]``.
BASS_EXACT = "Bass model: exact in expectation for an infinite market"
APPROXIMATION = "mean-field approximation (exponential dwell, expected influencers)"


def is_bass(scenario: Scenario) -> bool:
    """True where the mean-field curve is Bass's: every stage influences others (by word of
    mouth, or by referrals at the same rate for every persona), and customers come only from
    the market (and a cohort at day 0). Then q = word-of-mouth rate + referral rate x
    conversion."""
    names = set(scenario.journey.names)
    wom, ref = scenario.word_of_mouth, scenario.referrals
    if (wom is None and ref is None) or not isinstance(scenario.acquisition, Cohort):
        return False
    if wom is not None and not names <= set(wom.stages):
        return False
    return ref is None or (
        names <= set(ref.stages) and all(ref.factor(p.name) == 1 for p in scenario.personas)
    )


def _flows(scenario: Scenario, persona: int, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean dwell, the matrix with zero-dwell stages passed through, and the entry vector."""
    journey = scenario.journey
    factor = scenario.personas[persona]
    mean = np.array(
        [
            np.inf if st.absorbing else float(st.dwell.mean) * factor.dwell_factor(st.name)
            for st in journey.stages
        ]
    )
    instant = mean <= 0
    P = matrix.copy()
    if instant.any():
        # landing stages after passing instantly through zero-dwell ones
        through = np.linalg.solve(np.eye(instant.sum()) - P[np.ix_(instant, instant)], P[instant])
        P = P + P[:, instant] @ through
        P[:, instant] = 0
    entry = np.zeros(len(mean))
    entry[journey.index(journey.entry)] = 1
    if instant[journey.index(journey.entry)]:
        entry = P[journey.index(journey.entry)].copy()
    return mean, P, entry


def expected_adoption(scenario: Scenario, days: np.ndarray | None = None) -> pd.DataFrame:
    """Mean-field adoption curve of a scenario with a ``market``: per day, the expected
    cumulative number of the market's people who became customers (``adopted``), the same as
    a share of the market (``adopted_share``), adoptions per day and customers influencing
    others. ``attrs["method"]`` says whether it is exact (Bass) or an approximation."""
    if scenario.market is None:
        raise ScenarioError(
            "an adoption curve needs a market of people who are not yet customers",
            field="market",
            fix="add a [market] section with size and external_rate",
        )
    if days is None:
        days = np.arange(0.0, np.floor(scenario.horizon_days) + 1)
    days = np.asarray(days, dtype=float)
    N, p = scenario.market.size, scenario.market.external_rate
    wom = scenario.word_of_mouth
    q = wom.rate if wom is not None else 0.0
    influencing = np.array([wom is not None and n in wom.stages for n in scenario.journey.names])
    ref = scenario.referrals
    referring = np.array([ref is not None and n in ref.stages for n in scenario.journey.names])
    refer_rate = ref.rate * ref.conversion if ref is not None else 0.0
    # referral weight per persona (intervention factors are left out, as interventions are)
    weight = np.array([ref.factor(p.name) if ref is not None else 0.0 for p in scenario.personas])
    personas = len(scenario.personas)
    shares = np.array(scenario.persona_mix())
    matrices = transition_matrices(scenario.journey, scenario.personas, scenario.effects)
    parts = [_flows(scenario, i, matrices[i]) for i in range(personas)]
    mean = np.stack([m for m, _, _ in parts])  # (personas, S)
    P = np.stack([P for _, P, _ in parts])
    entry = np.stack([e for _, _, e in parts])
    leaving = np.where(np.isfinite(mean) & (mean > 0), 1 / np.where(mean > 0, mean, 1), 0.0)
    arrivals = np.zeros_like(entry)
    x0 = np.zeros_like(entry)
    acq = scenario.acquisition
    if isinstance(acq, Cohort):
        x0 += acq.size * shares[:, None] * entry
    elif isinstance(acq, Arrivals):
        for c in acq.channels:
            arrivals += c.rate_per_day * np.array(scenario.persona_mix(c.name))[:, None] * entry

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        S, x = y[0], y[1:].reshape(entry.shape)
        referrers = (weight @ x[:, referring]).sum()
        rate = S * (p + (q * x[:, influencing].sum() + refer_rate * referrers) / N)
        out = x * leaving
        dx = rate * shares[:, None] * entry + arrivals + np.einsum("ks,kst->kt", out, P) - out
        return np.concatenate([[-rate], dx.ravel()])

    solution = solve_ivp(
        rhs,
        (0.0, float(days.max(initial=0.0))),
        np.concatenate([[float(N)], x0.ravel()]),
        t_eval=np.sort(days),
        method="LSODA",
        rtol=1e-8,
        atol=1e-6,
    )
    S = solution.y[0]
    x = solution.y[1:].reshape((*entry.shape, -1))
    adopted = N - S
    influencers = x[:, influencing].sum(axis=(0, 1))
    referrers = np.einsum("k,kst->t", weight, x[:, referring])
    frame = pd.DataFrame(
        {
            "day": solution.t,
            "adopted": adopted,
            "adopted_share": adopted / N,
            "adopted_per_day": S * (p + (q * influencers + refer_rate * referrers) / N),
            "influencers": influencers,
        }
    )
    frame.attrs["method"] = BASS_EXACT if is_bass(scenario) else APPROXIMATION
    return frame
