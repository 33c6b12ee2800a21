r"""Exact expectations from the absorbing Markov chain of a scenario.

For persona *p* with transition matrix :math:`P` split into transient block :math:`Q` and
absorbing block :math:`R`, the fundamental matrix :math:`N = (I - Q)^{-1}` gives the expected
visits to each stage from the entry stage, :math:`B = N R` the absorption probabilities, and
with mean dwell times :math:`m` the expected time to absorption :math:`t = N m`; its second
moment solves :math:`(I - Q) s = E[D^2] + 2\, m \circ (Q t)`. Reach (the probability of ever
entering a stage) is a hitting probability. Time-to-purchase is computed in the chain
conditioned on purchasing (Doob's h-transform). Expectations ignore the horizon: they describe
whole journeys, which a simulation approaches as the horizon grows. Mean times do not depend on
the shape of the dwell laws, only on their means; the spread does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.model.acquisition import Arrivals
from sim.model.logit import transition_matrices
from sim.model.scenario import Scenario

ALL = "all"


def hitting_probability(P: np.ndarray, targets: np.ndarray, absorbing: np.ndarray) -> np.ndarray:
    """Probability of ever entering ``targets`` (a boolean mask) from each stage."""
    free = ~targets & ~absorbing
    h = targets.astype(float)
    if free.any():
        A = np.eye(free.sum()) - P[np.ix_(free, free)]
        b = P[np.ix_(free, targets)].sum(axis=1)
        h[free] = np.linalg.solve(A, b)
    return h


@dataclass(frozen=True)
class PersonaChain:
    """Exact results for one persona (or the population mix, when ``persona == 'all'``)."""

    persona: str
    weight: float
    reach: np.ndarray  # per stage, P(ever enter)
    visits: np.ndarray  # per stage, expected entries (absorbing: = reach)
    conversion: float  # P(at least one purchase)
    purchases: float  # expected purchases
    revenue: float  # expected revenue per customer
    time_mean: float  # expected days to absorption
    time_second_moment: float
    time_to_purchase: float  # expected days to first purchase, among purchasers


def _persona_chain(P: np.ndarray, scenario: Scenario, p_index: int, weight: float) -> PersonaChain:
    journey = scenario.journey
    persona = scenario.personas[p_index]
    absorbing = np.array([s.absorbing for s in journey.stages])
    purchase = np.array([s.purchase for s in journey.stages])
    tr = ~absorbing
    entry = journey.index(journey.entry)
    Q = P[np.ix_(tr, tr)]
    I_Q = np.eye(tr.sum()) - Q
    start = np.zeros(tr.sum())
    start[np.flatnonzero(tr).tolist().index(entry)] = 1.0
    visits_t = np.linalg.solve(I_Q.T, start)  # row of N for the entry stage
    visits = np.zeros(len(journey.stages))
    visits[tr] = visits_t
    visits[absorbing] = visits_t @ P[np.ix_(tr, absorbing)]
    reach = np.array(
        [hitting_probability(P, np.arange(len(P)) == j, absorbing)[entry] for j in range(len(P))]
    )
    mean_dwell = np.array([s.dwell.mean * persona.dwell_factor(s.name) for s in journey.stages])
    second_dwell = np.array(
        [
            (s.dwell.variance + s.dwell.mean**2) * persona.dwell_factor(s.name) ** 2
            for s in journey.stages
        ]
    )
    t = np.linalg.solve(I_Q, mean_dwell[tr])
    s2 = np.linalg.solve(I_Q, second_dwell[tr] + 2 * mean_dwell[tr] * (Q @ t))
    entry_t = start.astype(bool)
    conversion = 0.0
    time_to_purchase = float("nan")
    if purchase.any():
        h = hitting_probability(P, purchase, absorbing)
        conversion = float(h[entry])
        if conversion > 0:
            # chain conditioned on reaching a purchase: P~_ij = P_ij h_j / h_i over stages
            # that can still reach one; purchase stages are made absorbing
            live = (h > 0) & ~purchase & ~absorbing
            if live[entry]:
                Pc = P[np.ix_(live, live)] * h[live][None, :] / h[live][:, None]
                tc = np.linalg.solve(np.eye(live.sum()) - Pc, mean_dwell[live])
                time_to_purchase = float(tc[np.flatnonzero(live).tolist().index(entry)])
            else:
                time_to_purchase = 0.0
    purchases = float(visits[purchase].sum())
    return PersonaChain(
        persona=persona.name,
        weight=weight,
        reach=reach,
        visits=visits,
        conversion=conversion,
        purchases=purchases,
        revenue=purchases * persona.order_value.mean,
        time_mean=float(t[entry_t][0]),
        time_second_moment=float(s2[entry_t][0]),
        time_to_purchase=time_to_purchase,
    )


def population_weights(scenario: Scenario) -> np.ndarray:
    """Share of each persona among all customers (channel rates times channel mixes)."""
    acq = scenario.acquisition
    if isinstance(acq, Arrivals):
        w = sum(np.array(scenario.persona_mix(c.name)) * c.rate_per_day for c in acq.channels)
        return w / w.sum()
    return np.array(scenario.persona_mix())


@dataclass(frozen=True)
class Expectation:
    """Exact expectations of a scenario, per persona and for the population (``'all'``).

    ``stages``: one row per (persona, stage) with ``reach`` (probability of ever entering) and
    ``visits`` (expected entries). ``summary``: one row per persona with ``share``,
    ``conversion`` (probability of at least one purchase), ``purchases``, ``revenue`` (per
    customer), ``time_to_end`` and ``time_to_end_sd`` (days until the journey ends),
    ``time_to_first_purchase`` (mean days, among purchasers) and ``p_<end>`` for each absorbing
    stage.
    """

    scenario: Scenario
    chains: tuple[PersonaChain, ...]

    def _rows(self) -> list[PersonaChain]:
        return [self.population(), *self.chains]

    def population(self) -> PersonaChain:
        """The mixture over personas, weighted by their share of customers."""
        w = np.array([c.weight for c in self.chains])
        purchasers = np.array([c.weight * c.conversion for c in self.chains])

        def mix(attr: str) -> float | np.ndarray:
            return sum(wi * getattr(c, attr) for wi, c in zip(w, self.chains, strict=True))

        ttp = (
            sum(
                pw * c.time_to_purchase
                for pw, c in zip(purchasers, self.chains, strict=True)
                if pw > 0
            )
            / purchasers.sum()
            if purchasers.sum() > 0
            else float("nan")
        )
        return PersonaChain(
            persona=ALL,
            weight=1.0,
            reach=mix("reach"),
            visits=mix("visits"),
            conversion=float(mix("conversion")),
            purchases=float(mix("purchases")),
            revenue=float(mix("revenue")),
            time_mean=float(mix("time_mean")),
            time_second_moment=float(mix("time_second_moment")),
            time_to_purchase=float(ttp),
        )

    @property
    def stages(self) -> pd.DataFrame:
        """Reach and expected visits per persona and stage."""
        names = self.scenario.journey.names
        return pd.DataFrame(
            [
                {"persona": c.persona, "stage": n, "reach": c.reach[i], "visits": c.visits[i]}
                for c in self._rows()
                for i, n in enumerate(names)
            ]
        )

    @property
    def summary(self) -> pd.DataFrame:
        """One row per persona (and 'all') of exact whole-journey expectations."""
        journey = self.scenario.journey
        rows = []
        for c in self._rows():
            row = {
                "persona": c.persona,
                "share": c.weight,
                "conversion": c.conversion,
                "purchases": c.purchases,
                "revenue": c.revenue,
                "time_to_end": c.time_mean,
                "time_to_end_sd": float(np.sqrt(max(c.time_second_moment - c.time_mean**2, 0.0))),
                "time_to_first_purchase": c.time_to_purchase,
            }
            for end in journey.absorbing:
                row[f"p_{end}"] = float(c.reach[journey.index(end)])
            rows.append(row)
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"Expectation({self.scenario.name!r})\n{self.summary.to_string(index=False)}"


def expected(scenario: Scenario) -> Expectation:
    """Exact expectations of a scenario from its absorbing Markov chain (no simulation)."""
    matrices = transition_matrices(scenario.journey, scenario.personas, scenario.effects)
    weights = population_weights(scenario)
    chains = tuple(
        _persona_chain(matrices[i], scenario, i, float(weights[i]))
        for i in range(len(scenario.personas))
    )
    return Expectation(scenario=scenario, chains=chains)
