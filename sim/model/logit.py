r"""The one rule for composing effects on transitions: a multinomial logit.

A stage's outgoing base probabilities :math:`p_j` are shifted on the log-odds scale by the sum
:math:`\delta_j` of all effects acting on transition *j* (persona attributes now; interventions'
log odds ratios later):

.. math:: p'_j = \frac{p_j e^{\delta_j}}{\sum_k p_k e^{\delta_k}}

So an effect of :math:`\delta` on one transition multiplies its odds against every other
outgoing transition by :math:`e^{\delta}` (an odds ratio); several effects on one transition
add their :math:`\delta`, i.e. multiply their odds ratios; the result always lies in [0, 1]
and sums to 1; and :math:`\delta = 0` changes nothing. Zero base probabilities stay zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.errors import ScenarioError, suggest
from sim.model.journey import Journey
from sim.model.persona import Effect, Persona


def apply_log_odds(probabilities: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """Shift probabilities (last axis sums to 1) by log odds; returns rows that sum to 1.

    Rows whose probabilities are all zero (absorbing stages) stay all zero.
    """
    p = np.asarray(probabilities, dtype=float)
    d = np.asarray(log_odds, dtype=float)
    positive = p > 0
    # shift by the row maximum so that large effects cannot overflow exp
    logits = np.where(positive, np.log(np.where(positive, p, 1.0)) + d, -np.inf)
    top = np.max(logits, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.where(positive, np.exp(logits - top), 0.0)
    total = w.sum(axis=-1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def base_matrix(journey: Journey) -> np.ndarray:
    """Stage-to-stage base probabilities as an S x S matrix (rows of absorbing stages are 0)."""
    n = len(journey.stages)
    matrix = np.zeros((n, n))
    for i, stage in enumerate(journey.stages):
        for target, p in stage.next:
            matrix[i, journey.index(target)] = p
    return matrix


def check_effects(journey: Journey, personas: Sequence[Persona], effects: Sequence[Effect]) -> None:
    """Every effect names an existing transition and an attribute every persona has."""
    for e in effects:
        where = f"effect on '{e.stage}' -> '{e.to}'"
        if e.stage not in journey.names:
            raise ScenarioError(
                f"unknown stage '{e.stage}'",
                field=f"{where}, field 'stage'",
                fix=suggest(e.stage, journey.names),
            )
        targets = [t for t, _ in journey.stage(e.stage).next]
        if e.to not in targets:
            raise ScenarioError(
                f"'{e.stage}' has no transition to '{e.to}'",
                field=f"{where}, field 'to'",
                fix=suggest(e.to, targets) if targets else "it is absorbing",
            )
        for persona in personas:
            names = [a for a, _ in persona.attributes]
            if e.attribute not in names:
                raise ScenarioError(
                    f"persona '{persona.name}' has no attribute '{e.attribute}'",
                    field=f"{where}, field 'attribute'",
                    fix=(suggest(e.attribute, names) + " " if names else "")
                    + "or add it to that persona's attributes",
                )


def persona_log_odds(journey: Journey, persona: Persona, effects: Sequence[Effect]) -> np.ndarray:
    """S x S matrix of the log-odds shifts that a persona's attributes give each transition."""
    n = len(journey.stages)
    delta = np.zeros((n, n))
    attrs = dict(persona.attributes)
    for e in effects:
        delta[journey.index(e.stage), journey.index(e.to)] += e.coefficient * (
            attrs[e.attribute] - e.reference
        )
    return delta


def transition_matrices(
    journey: Journey, personas: Sequence[Persona], effects: Sequence[Effect]
) -> np.ndarray:
    """Per-persona transition matrices, shape (personas, S, S), after the persona effects."""
    base = base_matrix(journey)
    return np.stack([apply_log_odds(base, persona_log_odds(journey, p, effects)) for p in personas])
