"""A scenario compiled into the tables the engines index: transition rows per persona and
set of acting interventions, dwell laws and factors, and the pre-drawn visit layout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sim.model.distributions import Distribution
from sim.model.logit import base_matrix, intervention_factors, transition_matrices, treated_matrix
from sim.model.scenario import Scenario

#: Pre-drawn visits per stage: at least MIN_BLOCK, at most MAX_BLOCK, else enough that about
#: OVERFLOW_SHARE of the customers who reach the stage come back more often than that.
MIN_BLOCK, MAX_BLOCK, OVERFLOW_SHARE = 2, 48, 0.01


def visit_blocks(scenario: Scenario) -> tuple[int, ...]:
    """Visits to pre-draw per stage, from the base chain (persona effects and interventions
    do not change it, so scenarios compared side by side keep the same layout).

    The number of returns to a stage is geometric: with mean visits mu from the stage itself,
    P(more than v visits) = (1 - 1/mu)^v.
    """
    journey = scenario.journey
    P = base_matrix(journey)
    transient = np.array([not s.absorbing for s in journey.stages])
    Q = P[np.ix_(transient, transient)]
    # diagonal of the fundamental matrix: expected visits to a stage starting there
    mu = np.diag(np.linalg.inv(np.eye(len(Q)) - Q))
    blocks, t = [], 0
    for st in journey.stages:
        if st.absorbing:
            blocks.append(0)
            continue
        stay = 1 - 1 / mu[t]
        t += 1
        need = math.ceil(math.log(OVERFLOW_SHARE) / math.log(stay)) if stay > 1e-12 else 1
        blocks.append(int(min(max(need, MIN_BLOCK), MAX_BLOCK)))
    return tuple(blocks)


@dataclass(frozen=True)
class Treatment:
    """What a set of interventions acting together does to one persona's customers."""

    cumulative: tuple[tuple[float, ...], ...]  # per stage, for bisect
    dwell_factor: tuple[float, ...]  # per stage
    value_factor: float


def _cumulative_lists(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    cumulative = np.cumsum(matrix, axis=-1)
    for s in range(matrix.shape[0]):
        nz = np.nonzero(matrix[s])[0]
        if len(nz):
            # the last reachable target must catch u up to 1 despite rounding in the sum
            cumulative[s, nz[-1] :] = np.inf
    return tuple(tuple(row) for row in cumulative.tolist())


@dataclass(frozen=True, eq=False)
class CompiledScenario:
    """A scenario turned into the tables the engine indexes (built once per run)."""

    scenario: Scenario
    names: tuple[str, ...]
    entry: int
    purchase: tuple[bool, ...]
    absorbing: tuple[bool, ...]
    block: tuple[int, ...]  # pre-drawn visits per stage (0: absorbing)
    first_slot: tuple[int, ...]  # where each stage's block starts in a customer's row (-1: none)
    untreated: tuple[tuple[tuple[float, ...], ...], ...]  # per persona: cumulative rows
    dwell: tuple[Distribution, ...]  # per stage
    dwell_factor: np.ndarray  # (personas, S)
    order_value: tuple[Distribution, ...]  # per persona
    _treatments: dict = field(default_factory=dict, repr=False)
    #: number of the cohort's first customer simulated (a chunk of a large cohort, see
    #: :meth:`chunk`); customer k of the chunk is customer ``first_customer + k`` of the cohort
    first_customer: int = 0

    @classmethod
    def build(cls, scenario: Scenario) -> CompiledScenario:
        """Compile a scenario (persona effects applied through the log-odds rule)."""
        journey = scenario.journey
        matrices = transition_matrices(journey, scenario.personas, scenario.effects)
        block = visit_blocks(scenario)
        first_slot, used = [], 0
        for b in block:
            first_slot.append(used if b else -1)
            used += b
        return cls(
            scenario=scenario,
            names=journey.names,
            entry=journey.index(journey.entry),
            purchase=tuple(st.purchase for st in journey.stages),
            absorbing=tuple(st.absorbing for st in journey.stages),
            block=block,
            first_slot=tuple(first_slot),
            untreated=tuple(_cumulative_lists(m) for m in matrices),
            dwell=tuple(st.dwell for st in journey.stages),
            dwell_factor=np.array(
                [[p.dwell_factor(n) for n in journey.names] for p in scenario.personas]
            ),
            order_value=tuple(p.order_value for p in scenario.personas),
        )

    def chunk(self, first: int, size: int) -> CompiledScenario:
        """Customers ``first .. first + size - 1`` of a day-0 cohort, to simulate alone: they
        take the same random numbers as in the whole cohort, so when customers do not
        interact (no budgets) their journeys are the same."""
        return replace(self, scenario=self.scenario.with_customers(size), first_customer=int(first))

    @property
    def slots(self) -> int:
        """Pre-drawn visits per customer over all stages."""
        return sum(self.block)

    def treatment(self, persona: int, active: int) -> Treatment:
        """Tables for a persona's customers while the interventions in bit mask ``active`` act
        on them (computed once per combination)."""
        key = (persona, active)
        found = self._treatments.get(key)
        if found is None:
            s = self.scenario
            ivs = [iv for i, iv in enumerate(s.interventions) if active >> i & 1]
            matrix = treated_matrix(s.journey, s.personas[persona], s.effects, ivs)
            dwell, value = intervention_factors(s.journey, ivs)
            found = Treatment(_cumulative_lists(matrix), tuple(dwell.tolist()), value)
            self._treatments[key] = found
        return found

    def order_values(self, groups: list[tuple[int, np.ndarray]], u: np.ndarray) -> np.ndarray:
        """Order values from uniforms ``u``; ``groups`` lists (persona, rows)."""
        out = np.empty(u.shape)
        for p, rows in groups:
            out[rows] = self.order_value[p].quantile(u[rows])
        return out
