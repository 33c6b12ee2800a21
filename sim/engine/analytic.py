r"""Exact expectations from the absorbing Markov chain of a scenario.

For persona *p* with transition matrix :math:`P` split into transient block :math:`Q` and
absorbing block :math:`R`, the fundamental matrix :math:`N = (I - Q)^{-1}` gives the expected
visits to each stage from the entry stage, :math:`B = N R` the absorption probabilities, and
with mean dwell times :math:`m` the expected time to absorption :math:`t = N m`; its second
moment solves :math:`(I - Q) s = E[D^2] + 2\, m \circ (Q t)`. Reach (the probability of ever
entering a stage) is a hitting probability. Time to first purchase is computed in the chain
conditioned on purchasing (Doob's h-transform).

Interventions: a customer's state is (stage, interventions that have reached them). A
customer is eligible for intervention *i* with probability reach x P(targeted channel), drawn
once; an eligible customer is reached on first entering one of its stages. The expected values
are mixtures over channels and eligibility sets of chains on these expanded states, which is
exact for interventions without time windows or budgets (the Markov part of a scenario).

Expectations ignore the horizon: they describe whole journeys, which a simulation approaches as
the horizon grows. Mean times do not depend on the shape of the dwell laws, only on their means.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import ScenarioError
from sim.events import ALL
from sim.model.acquisition import COHORT_CHANNEL, Arrivals
from sim.model.intervention import ArrivalRateFactor
from sim.model.logit import intervention_factors, treated_matrix
from sim.model.scenario import Scenario

if TYPE_CHECKING:  # pandas loads where a table is built (sim.engine loads with every run)
    import pandas as pd

#: Interventions that may reach one persona: the exact mixture has 2**n parts.
MAX_EXACT_INTERVENTIONS = 10


def hitting_probability(P: np.ndarray, targets: np.ndarray, absorbing: np.ndarray) -> np.ndarray:
    """Probability of ever entering ``targets`` (a boolean mask) from each state."""
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


def _mix(chains: list[tuple[float, PersonaChain]], name: str, weight: float) -> PersonaChain:
    """Mixture of chains with the given weights (conditional time weighs by conversion)."""
    w = np.array([wi for wi, _ in chains])
    w = w / w.sum()

    def avg(attr: str):
        return sum(wi * getattr(c, attr) for wi, (_, c) in zip(w, chains, strict=True))

    buyers = np.array([wi * c.conversion for wi, (_, c) in zip(w, chains, strict=True)])
    ttp = (
        (
            sum(b * c.time_to_purchase for b, (_, c) in zip(buyers, chains, strict=True) if b > 0)
            / buyers.sum()
        )
        if buyers.sum() > 0
        else float("nan")
    )
    return PersonaChain(
        persona=name,
        weight=weight,
        reach=avg("reach"),
        visits=avg("visits"),
        conversion=float(avg("conversion")),
        purchases=float(avg("purchases")),
        revenue=float(avg("revenue")),
        time_mean=float(avg("time_mean")),
        time_second_moment=float(avg("time_second_moment")),
        time_to_purchase=float(ttp),
    )


def _expanded_chain(scenario: Scenario, p: int, eligible: tuple[int, ...]) -> PersonaChain:
    """The chain of one persona's customers eligible for the given interventions."""
    journey = scenario.journey
    persona = scenario.personas[p]
    ivs = scenario.interventions
    n_stages = len(journey.stages)
    absorbing_stage = np.array([s.absorbing for s in journey.stages])
    purchase_stage = np.array([s.purchase for s in journey.stages])
    targets = [frozenset(journey.index(n) for n in ivs[i].stages) or None for i in range(len(ivs))]

    def reached_on(stage: int, already: frozenset) -> frozenset:
        return already | {i for i in eligible if targets[i] is None or stage in targets[i]}

    tables: dict[frozenset, tuple[np.ndarray, np.ndarray, float]] = {}

    def table(active: frozenset) -> tuple[np.ndarray, np.ndarray, float]:
        if active not in tables:
            chosen = [ivs[i] for i in sorted(active)]
            dwell, value = intervention_factors(journey, chosen)
            factor = np.array([persona.dwell_factor(n) for n in journey.names]) * dwell
            matrix = treated_matrix(journey, persona, scenario.effects, chosen)
            tables[active] = (matrix, factor, value)
        return tables[active]

    entry = journey.index(journey.entry)
    start = (entry, reached_on(entry, frozenset()))
    states, index = [start], {start: 0}
    edges: list[tuple[int, int, float, float]] = []  # from, to, probability, value factor
    todo = [start]
    while todo:
        stage, active = todo.pop()
        if absorbing_stage[stage]:
            continue
        matrix, _, value = table(active)
        for target in np.flatnonzero(matrix[stage] > 0):
            nxt = (int(target), reached_on(int(target), active))
            if nxt not in index:
                index[nxt] = len(states)
                states.append(nxt)
                todo.append(nxt)
            edges.append((index[(stage, active)], index[nxt], matrix[stage, target], value))
    n = len(states)
    P = np.zeros((n, n))
    for a, b, prob, _ in edges:
        P[a, b] += prob
    stage_of = np.array([s for s, _ in states])
    absorbing = absorbing_stage[stage_of]
    purchase = purchase_stage[stage_of]
    dwell = np.array([journey.stages[s].dwell for s, _ in states], dtype=object)
    factor = np.array([table(a)[1][s] for s, a in states])
    mean = np.array([d.mean for d in dwell]) * factor
    second = np.array([d.variance + d.mean**2 for d in dwell]) * factor**2

    tr = ~absorbing
    Q = P[np.ix_(tr, tr)]
    I_Q = np.eye(tr.sum()) - Q
    start_t = np.zeros(tr.sum())
    start_t[0] = 1.0  # the start state is transient and first
    visits_t = np.linalg.solve(I_Q.T, start_t)
    visits = np.zeros(n)
    visits[tr] = visits_t
    visits[absorbing] = visits_t @ P[np.ix_(tr, absorbing)]
    t = np.linalg.solve(I_Q, mean[tr])
    s2 = np.linalg.solve(I_Q, second[tr] + 2 * mean[tr] * (Q @ t))
    reach = np.array(
        [
            hitting_probability(P, stage_of == j, absorbing)[0] if (stage_of == j).any() else 0.0
            for j in range(n_stages)
        ]
    )
    reach[entry] = 1.0
    stage_visits = np.bincount(stage_of, weights=visits, minlength=n_stages)
    # revenue flows along edges into purchase stages, at the value factor of the decision
    revenue = sum(visits[a] * prob * value for a, b, prob, value in edges if purchase[b])
    conversion, time_to_purchase = 0.0, float("nan")
    if purchase.any():
        h = hitting_probability(P, purchase, absorbing)
        conversion = float(h[0])
        if purchase[0]:
            conversion, time_to_purchase = 1.0, 0.0
        elif conversion > 0:
            # chain conditioned on reaching a purchase: P~_ij = P_ij h_j / h_i over states that
            # can still reach one; purchase states are made absorbing
            live = (h > 0) & ~purchase & ~absorbing
            Pc = P[np.ix_(live, live)] * h[live][None, :] / h[live][:, None]
            tc = np.linalg.solve(np.eye(live.sum()) - Pc, mean[live])
            time_to_purchase = float(tc[0])
    return PersonaChain(
        persona=persona.name,
        weight=1.0,
        reach=reach,
        visits=stage_visits,
        conversion=conversion,
        purchases=float(stage_visits[purchase_stage].sum()),
        revenue=float(revenue * persona.order_value.mean),
        time_mean=float(t[0]),
        time_second_moment=float(s2[0]),
        time_to_purchase=time_to_purchase,
    )


def channel_rates(scenario: Scenario) -> dict[str, float]:
    """Arrival rate per channel with open-ended arrival-rate factors applied (cohort: 1)."""
    acq = scenario.acquisition
    if not isinstance(acq, Arrivals):
        return {COHORT_CHANNEL: 1.0}
    rates = {c.name: c.rate_per_day for c in acq.channels}
    for iv in scenario.interventions:
        for e in iv.of_kind(ArrivalRateFactor):
            rates[e.channel] *= e.factor
    return rates


def population_weights(scenario: Scenario) -> np.ndarray:
    """Share of each persona among all customers (channel rates times channel mixes)."""
    rates = channel_rates(scenario)
    w = sum(np.array(scenario.persona_mix(c)) * r for c, r in rates.items())
    return w / w.sum()


def _persona_chain(scenario: Scenario, p: int, weight: float) -> PersonaChain:
    persona = scenario.personas[p].name
    ivs = scenario.interventions
    parts: list[tuple[float, PersonaChain]] = []
    for channel, rate in channel_rates(scenario).items():
        w_channel = rate * scenario.persona_mix(channel)[p]
        if w_channel <= 0:
            continue
        # probability that this persona's customer from this channel is eligible for each one
        chance = [
            iv.reach
            * (
                (not iv.personas or persona in iv.personas)
                and (not iv.channels or channel in iv.channels)
            )
            for iv in ivs
        ]
        candidates = [i for i, c in enumerate(chance) if c > 0]
        if len(candidates) > MAX_EXACT_INTERVENTIONS:
            raise ScenarioError(
                f"{len(candidates)} interventions can reach persona '{persona}'; exact answers "
                f"enumerate their combinations and stop at {MAX_EXACT_INTERVENTIONS}",
                field="intervention",
                fix="compare by simulation (sim.compare)",
            )
        for size in range(len(candidates) + 1):
            for chosen in itertools.combinations(candidates, size):
                w = w_channel * np.prod(
                    [chance[i] if i in chosen else 1 - chance[i] for i in candidates]
                )
                if w > 0:
                    parts.append((w, _expanded_chain(scenario, p, chosen)))
    return _mix(parts, persona, weight)


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
        return _mix([(c.weight, c) for c in self.chains], ALL, 1.0)

    @property
    def stages(self) -> pd.DataFrame:
        """Reach and expected visits per persona and stage."""
        import pandas as pd

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
        import pandas as pd

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

    def _repr_html_(self) -> str:
        from sim.display import html_block

        return html_block(
            f"Exact expectations: {self.scenario.name}",
            ["Whole journeys from the absorbing Markov chain (no horizon)."],
            {"Per persona": self.summary},
        )

    def __repr__(self) -> str:
        return f"Expectation({self.scenario.name!r})\n{self.summary.to_string(index=False)}"


def expected(scenario: Scenario) -> Expectation:
    """Exact expectations of a scenario from its absorbing Markov chain (no simulation).

    Interventions must be open-ended (no time window, no budget): those are the ones with an
    exact Markov answer; compare others by simulation. Scenarios whose customers affect each
    other (a market, word of mouth) have no such answer: see :func:`sim.expected_adoption`.
    """
    reason = scenario.interacting
    if reason is not None:
        raise ScenarioError(
            f"exact answers need customers who do not affect each other; this scenario has "
            f"{reason}",
            field="market" if scenario.market is not None else "scenario",
            fix=(
                "simulate it (sim.run), or see the mean-field adoption curve with "
                "sim.expected_adoption(scenario)"
                if scenario.market is not None
                else "simulate it: sim.run(scenario)"
            ),
        )
    for iv in scenario.interventions:
        if not iv.open_ended:
            raise ScenarioError(
                "exact answers need interventions without a time window or budget",
                field=f"intervention '{iv.name}'",
                fix="compare it by simulation (sim.run / sim.compare), or drop its window and "
                "budget to see its long-run effect",
            )
    weights = population_weights(scenario)
    chains = tuple(
        _persona_chain(scenario, i, float(weights[i])) for i in range(len(scenario.personas))
    )
    return Expectation(scenario=scenario, chains=chains)
