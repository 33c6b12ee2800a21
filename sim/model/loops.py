r"""Loops that can go round in no time: the horizon cannot stop them.

A stage whose dwell time can be zero (``fixed(0)``, or an empirical law with zeros) moves a
customer on at the same instant. If such stages form a loop, a customer can go round it many
times without the clock moving, and a run never reaches its horizon. With :math:`z_i` the
probability that stage *i*'s dwell is zero and :math:`P` the transition matrix, the moves made
in zero time form a sub-stochastic chain :math:`Z = \operatorname{diag}(z) P`; the expected
number of zero-time moves from stage *i* is the *i*-th row sum of :math:`(I - Z)^{-1}`. A
scenario whose expected number of such moves exceeds :data:`MAX_ZERO_TIME_MOVES` is refused,
naming the stages of the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.errors import ScenarioError
from sim.model.distributions import Distribution, Empirical, Fixed
from sim.model.journey import Journey
from sim.model.logit import transition_matrices
from sim.model.persona import Effect, Persona

#: Expected moves in zero time per customer above which a loop is refused. A journey with
#: instant steps makes a handful (purchase -> post-purchase); thousands means a loop that
#: keeps customers going round while the clock stands still.
MAX_ZERO_TIME_MOVES = 1000.0


def zero_dwell_probability(dwell: Distribution) -> float:
    """Probability that a dwell time is exactly zero (continuous laws: none)."""
    if isinstance(dwell, Fixed):
        return 1.0 if dwell.value == 0 else 0.0
    if isinstance(dwell, Empirical):
        return sum(x == 0 for x in dwell.samples) / len(dwell.samples)
    return 0.0


def reachable(edges: np.ndarray) -> np.ndarray:
    """``reach[i, j]``: j can be reached from i in one move or more (the transitive closure of
    a small directed graph, ``edges[i, j]``: an edge from i to j; Warshall's algorithm)."""
    reach = np.asarray(edges, dtype=bool).copy()
    for k in range(len(reach)):
        reach |= reach[:, k, None] & reach[None, k, :]
    return reach


def strong_components(edges: np.ndarray) -> list[np.ndarray]:
    """The strongly connected components of a small directed graph (``edges[i, j]``: an edge
    from i to j), each as its sorted members, in the order of their first member. Journeys
    have tens of stages: a transitive closure (Warshall) is quick and needs no graph
    library (scipy.sparse takes longer to import than this takes to run)."""
    reach = reachable(edges)
    together = (reach & reach.T) | np.eye(len(reach), dtype=bool)
    out, seen = [], np.zeros(len(reach), dtype=bool)
    for i in range(len(reach)):
        if not seen[i]:
            members = np.flatnonzero(together[i])
            seen[members] = True
            out.append(members)
    return out


def zero_time_loops(journey: Journey, matrix: np.ndarray) -> list[tuple[tuple[str, ...], float]]:
    """Loops of stages that can be gone round in zero time, with the expected number of
    zero-time moves a customer entering them makes (most first)."""
    z = np.array([0.0 if s.absorbing else zero_dwell_probability(s.dwell) for s in journey.stages])
    instant = z[:, None] * matrix
    if not instant.any():
        return []
    n = len(z)
    with np.errstate(all="ignore"):
        try:
            fundamental = np.linalg.inv(np.eye(n) - instant)
            moves = fundamental.sum(axis=1) - 1
        except np.linalg.LinAlgError:  # a loop that is certain: infinitely many moves
            moves = np.full(n, np.inf)
    moves = np.where(np.isfinite(moves) & (moves >= 0), moves, np.inf)
    loops = []
    for members in strong_components(instant > 0):
        if len(members) == 1 and instant[members[0], members[0]] == 0:
            continue  # a single stage that does not lead back to itself is no loop
        loops.append((tuple(journey.names[i] for i in members), float(moves[members].max())))
    return sorted(loops, key=lambda item: -item[1])


def check_zero_time_loops(
    journey: Journey, personas: Sequence[Persona], effects: Sequence[Effect]
) -> None:
    """A ScenarioError naming the stages of a loop that can go round in zero time with more
    than :data:`MAX_ZERO_TIME_MOVES` expected moves, for any persona (effects included)."""
    for persona, matrix in zip(
        personas, transition_matrices(journey, personas, effects), strict=True
    ):
        for stages, moves in zero_time_loops(journey, matrix):
            if moves <= MAX_ZERO_TIME_MOVES:
                continue
            loop = " -> ".join(f"'{s}'" for s in (*stages, stages[0]))
            expected = "without end" if not np.isfinite(moves) else f"about {moves:,.0f} moves"
            who = "" if len(personas) == 1 else f" (persona '{persona.name}')"
            raise ScenarioError(
                f"customers{who} can go round {loop} in zero time, {expected} per customer "
                "on average: the horizon cannot stop a loop that takes no time",
                field=f"stage '{stages[0]}', field 'dwell'",
                fix="give one of these stages a dwell time that is not zero, or a lower "
                "probability of going round",
            )
