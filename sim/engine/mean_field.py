r"""The mean-field adoption curve of a scenario with a finite market (no simulation).

The expected number of the market's people still to adopt, :math:`S`, and the expected number
of customers in each state, :math:`x`, follow the ordinary differential equations

.. math::

    \dot S = -S \,(p + q A / N + c\, r\, W / N), \qquad
    A = \textstyle\sum_{s \in \text{influencing}} x_s, \qquad
    W = \textstyle\sum_{s \in \text{referring}} w_s x_s,

    \dot x_j = \text{inflow}_j + \textstyle\sum_i \frac{x_i}{m_i} L_{ij} - \frac{x_j}{m_j},

with :math:`m_i` the mean dwell of state *i* and :math:`L` the transition matrix with states of
zero dwell passed through at once. A state is a persona, a stage and, for each open-ended
intervention (no window, no budget), whether the customer is outside its reach, within it but
not yet reached, or reached: reaching happens on entering one of its stages, and from then on
its odds ratios, dwell factors and referral-rate factors act, as in the engines. Referrals are
a contact term: a customer in a referring stage with weight :math:`w` (persona factor times the
referral-rate factors acting) makes referrals at rate :math:`r w`, each reaching one of the
:math:`N` people and converting a non-customer with probability :math:`c`. Inflow is the
market's adoptions into the entry stage, plus channel arrivals; a cohort is the starting
occupancy. Interventions with a window or a budget are left out (and named in the label).

Where every stage influences others the equations reduce to Bass's
:math:`\dot F = (1 - F)(p + qF)`: the curve is then exact in expectation for an infinite
market (a market of *N* people adopts slightly later, by O(1/N)). Elsewhere it replaces each
stage's dwell law by an exponential one of the same mean and the number of influencers by
its expectation, which makes it an approximation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.integrate import solve_ivp

from sim.errors import ScenarioError
from sim.model.acquisition import COHORT_CHANNEL, Arrivals, Cohort
from sim.model.intervention import ArrivalRateFactor, ReferralRateFactor
from sim.model.logit import intervention_factors, treated_matrix
from sim.model.market import MARKET_CHANNEL, REFERRAL_CHANNEL, WORD_OF_MOUTH_CHANNEL
from sim.model.scenario import Scenario

#: How the curve is labelled, in its frame's ``attrs["method"]``.
BASS_EXACT = "Bass model: exact in expectation for an infinite market"
APPROXIMATION = "mean-field approximation (exponential dwell, expected influencers)"
#: Open-ended interventions followed state by state (3 ** n states per stage); beyond that
#: the state space grows too fast and they are left out, as those with windows are.
MAX_INTERVENTIONS = 5
#: Per intervention: the customer is outside its reach, within it and not yet reached, reached.
OUTSIDE, WAITING, REACHED = range(3)


def is_bass(scenario: Scenario) -> bool:
    """True where the mean-field curve is Bass's: every stage influences others (by word of
    mouth, or by referrals at the same rate for every persona), customers come only from the
    market (and a cohort at day 0), and no intervention acts on customers. Then
    q = word-of-mouth rate + referral rate x conversion."""
    names = set(scenario.journey.names)
    wom, ref = scenario.word_of_mouth, scenario.referrals
    if (wom is None and ref is None) or not isinstance(scenario.acquisition, Cohort):
        return False
    if any(not iv.capacity_only for iv in scenario.interventions):
        return False
    if wom is not None and not names <= set(wom.stages):
        return False
    return ref is None or (
        names <= set(ref.stages) and all(ref.factor(p.name) == 1 for p in scenario.personas)
    )


def followed_interventions(scenario: Scenario) -> tuple[list[int], list[str]]:
    """Indices of the interventions the mean field follows (open-ended ones that act on
    customers), and the names of those it leaves out (a window or a budget, or too many)."""
    acting = [i for i, iv in enumerate(scenario.interventions) if not iv.capacity_only]
    followed = [i for i in acting if scenario.interventions[i].open_ended][:MAX_INTERVENTIONS]
    left = [scenario.interventions[i].name for i in acting if i not in followed]
    return followed, left


class _Chain:
    """The augmented chain of one persona: states (intervention statuses, stage)."""

    def __init__(self, scenario: Scenario, persona: int, followed: list[int]) -> None:
        s = scenario
        journey = s.journey
        n_stages = len(journey.stages)
        ivs = [s.interventions[i] for i in followed]
        p = s.personas[persona]
        self.combos = list(itertools.product(range(3), repeat=len(ivs)))
        index = {c: k for k, c in enumerate(self.combos)}
        targets = [{journey.index(n) for n in iv.stages} or None for iv in ivs]
        n = len(self.combos) * n_stages
        mean = np.empty(n)
        matrix = np.zeros((n, n))
        weight = np.zeros(n)
        ref = s.referrals
        base_weight = ref.factor(p.name) if ref is not None else 0.0
        dwell_mean = np.array(
            [
                np.inf if st.absorbing else float(st.dwell.mean) * p.dwell_factor(st.name)
                for st in journey.stages
            ]
        )

        def promote(combo: tuple[int, ...], stage: int) -> int:
            """State on entering ``stage``: who is waiting and targets it reaches them."""
            c = tuple(
                REACHED if st == WAITING and (t is None or stage in t) else st
                for st, t in zip(combo, targets, strict=True)
            )
            return index[c] * n_stages + stage

        self.promote = promote
        for k, combo in enumerate(self.combos):
            acting = [iv for iv, st in zip(ivs, combo, strict=True) if st == REACHED]
            rows = treated_matrix(journey, p, s.effects, acting)
            dwell, _ = intervention_factors(journey, acting)
            w = base_weight
            for iv in acting:
                for e in iv.of_kind(ReferralRateFactor):
                    w *= e.factor
            at = slice(k * n_stages, (k + 1) * n_stages)
            mean[at] = dwell_mean * dwell
            weight[at] = w
            for a in range(n_stages):
                for b in np.flatnonzero(rows[a]):
                    matrix[k * n_stages + a, promote(combo, int(b))] += rows[a, b]
        self.n_stages = n_stages
        self.ivs = ivs
        self.persona = p
        self.weight = weight
        instant = mean <= 0
        if instant.any():
            # landing states after passing instantly through zero-dwell ones
            through = np.linalg.solve(
                np.eye(instant.sum()) - matrix[np.ix_(instant, instant)], matrix[instant]
            )
            matrix = matrix + matrix[:, instant] @ through
            matrix[:, instant] = 0
        self.instant = instant
        self.matrix = matrix
        self.leaving = np.where(np.isfinite(mean) & (mean > 0), 1 / np.where(mean > 0, mean, 1), 0)

    def entry(self, scenario: Scenario, channel: str) -> np.ndarray:
        """Where a new customer of this persona from ``channel`` starts (a distribution)."""
        entry_stage = scenario.journey.index(scenario.journey.entry)
        out = np.zeros(len(self.leaving))
        for combo in self.combos:
            share = 1.0
            for iv, st in zip(self.ivs, combo, strict=True):
                eligible = iv.reach * (not iv.personas or self.persona.name in iv.personas)
                eligible *= not iv.channels or channel in iv.channels
                share *= {OUTSIDE: 1 - eligible, WAITING: eligible, REACHED: 0.0}[st]
            if share > 0:
                out[self.promote(combo, entry_stage)] += share
        if self.instant.any():
            out = out + out[self.instant] @ self.matrix[self.instant]
            out[self.instant] = 0
        return out

    def stages_of(self, mask: np.ndarray) -> np.ndarray:
        """Per state: the stage is in ``mask`` (a per-stage boolean array)."""
        return np.tile(mask, len(self.combos))


def expected_adoption(scenario: Scenario, days: np.ndarray | None = None) -> pd.DataFrame:
    """Mean-field adoption curve of a scenario with a ``market``: per day, the expected
    cumulative number of the market's people who became customers (``adopted``), the same as
    a share of the market (``adopted_share``), adoptions per day and those of them brought by
    referrals (``referred_per_day``), customers influencing others by word of mouth or
    referrals (``influencers``) and customers making referrals (``referrers``).
    ``attrs["method"]`` says whether it is exact (Bass) or an approximation, and names the
    interventions left out."""
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
    names = scenario.journey.names
    wom = scenario.word_of_mouth
    q = wom.rate if wom is not None else 0.0
    ref = scenario.referrals
    refer_rate = ref.rate * ref.conversion if ref is not None else 0.0
    followed, left_out = followed_interventions(scenario)
    chains = [_Chain(scenario, k, followed) for k in range(len(scenario.personas))]
    wom_on = chains[0].stages_of(np.array([wom is not None and n in wom.stages for n in names]))
    ref_on = chains[0].stages_of(np.array([ref is not None and n in ref.stages for n in names]))
    influencing = wom_on | ref_on
    weight = np.stack([c.weight for c in chains]) * ref_on  # (personas, states)
    sat = scenario.satisfaction
    scored = sat is not None and sat.referral_rate_per_point != 0 and ref is not None
    if scored:
        # satisfaction's factor on referrals, at each persona's starting score (exact while
        # nothing moves the score)
        start = [sat.referral_factor(sat.start_of(n)) for n in scenario.persona_names]
        weight = weight * np.array(start)[:, None]
    P = np.stack([c.matrix for c in chains])
    leaving = np.stack([c.leaving for c in chains])
    shares = np.array(scenario.persona_mix())
    # a market adopter's channel is their source: external influence, word of mouth, referral
    sources = [
        shares[:, None] * np.stack([c.entry(scenario, ch) for c in chains])
        for ch in (MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL, REFERRAL_CHANNEL)
    ]
    arrivals = np.zeros_like(leaving)
    x0 = np.zeros_like(leaving)
    acq = scenario.acquisition
    if isinstance(acq, Cohort):
        start = np.stack([c.entry(scenario, COHORT_CHANNEL) for c in chains])
        x0 += acq.size * shares[:, None] * start
    elif isinstance(acq, Arrivals):
        for ch in acq.channels:
            rate = ch.rate_per_day
            for i in followed:
                for e in scenario.interventions[i].of_kind(ArrivalRateFactor):
                    rate *= e.factor if e.channel == ch.name else 1.0
            mix = np.array(scenario.persona_mix(ch.name))[:, None]
            arrivals += rate * mix * np.stack([c.entry(scenario, ch.name) for c in chains])

    def rates(S: float, x: np.ndarray) -> tuple[float, float, float]:
        word = S * q * x[:, wom_on].sum() / N
        referred = S * refer_rate * (weight * x).sum() / N
        return S * p, word, referred

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        S, x = y[0], y[1:].reshape(leaving.shape)
        external, word, referred = rates(S, x)
        out = x * leaving
        dx = external * sources[0] + word * sources[1] + referred * sources[2] + arrivals
        dx += np.einsum("ks,kst->kt", out, P) - out
        return np.concatenate([[-(external + word + referred)], dx.ravel()])

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
    x = solution.y[1:].reshape((*leaving.shape, -1))
    per_day = np.array([rates(S[t], x[..., t]) for t in range(len(S))]).reshape(-1, 3)
    frame = pd.DataFrame(
        {
            "day": solution.t,
            "adopted": N - S,
            "adopted_share": (N - S) / N,
            "adopted_per_day": per_day.sum(axis=1),
            "referred_per_day": per_day[:, 2],
            "influencers": x[:, influencing].sum(axis=(0, 1)),
            "referrers": x[:, ref_on].sum(axis=(0, 1)),
        }
    )
    method = BASS_EXACT if is_bass(scenario) else APPROXIMATION
    if left_out:
        method += (
            f"; interventions left out (a window, a budget or too many): {', '.join(left_out)}"
        )
    if scored:
        method += "; referral rates at each persona's starting satisfaction"
    frame.attrs["method"] = method
    return frame
