r"""The one rule for composing effects on transitions: a multinomial logit.

A stage's outgoing base probabilities :math:`p_j` are shifted on the log-odds scale by the sum
:math:`\delta_j` of all effects acting on transition *j* (persona attributes now; interventions'
log odds ratios later):

.. math:: p'_j = \frac{p_j e^{\delta_j}}{\sum_k p_k e^{\delta_k}}

So an effect of :math:`\delta` on one transition multiplies its odds against every other
outgoing transition by :math:`e^{\delta}` (an odds ratio); several effects on one transition
add their :math:`\delta`, i.e. multiply their odds ratios; the result always lies in [0, 1]
and sums to 1; and :math:`\delta = 0` changes nothing. Zero base probabilities stay zero.

Dwell times and order values compose by multiplication (accelerated failure time): a persona's
dwell factor on a stage times every acting intervention's dwell factor on it; the product of
acting interventions' order-value factors. :func:`intervention_factors` is that rule, and every
engine and the analytic solver use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.errors import ScenarioError, check_unique, suggest
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


# -- interventions -------------------------------------------------------------------------
# An intervention acting on a customer composes with the persona effects by the same rule:
# its odds ratios (and churn and repeat factors, which are odds ratios on a family of
# transitions) add log(ratio) to the transitions' log-odds. A new transition is opened first,
# as a mixture: the stage's base row becomes (1 - p) * row + p * (new target).


def purchase_roles(journey: Journey) -> tuple[np.ndarray, np.ndarray]:
    """S x S masks of churn transitions (into ends only buyers can reach) and repeat-purchase
    transitions (into a purchase stage from a stage only buyers can reach)."""
    names = journey.names
    purchase = {s.name for s in journey.stages if s.purchase}
    before: set[str] = {journey.entry} if journey.entry not in purchase else set()
    todo = list(before)
    while todo:
        for target, p in journey.stage(todo.pop()).next:
            if p > 0 and target not in purchase and target not in before:
                before.add(target)
                todo.append(target)
    n = len(names)
    churn = np.zeros((n, n), dtype=bool)
    repeat = np.zeros((n, n), dtype=bool)
    for s in journey.stages:
        for target, p in s.next:
            if p <= 0:
                continue
            i, j = journey.index(s.name), journey.index(target)
            if journey.stage(target).absorbing and target not in before:
                churn[i, j] = True
            if target in purchase and s.name not in before:
                repeat[i, j] = True
    return churn, repeat


def forward_moves(journey: Journey) -> np.ndarray:
    """S x S mask of moves forward, toward a purchase: into a purchase stage or a stage from
    which one can still be reached (negative word of mouth's odds ratio acts on these)."""
    base = base_matrix(journey) > 0
    ahead = np.array([s.purchase for s in journey.stages])
    while True:  # stages that lead to one that leads on, until nothing changes
        more = ahead | (base & ahead[None, :]).any(axis=1)
        if (more == ahead).all():
            break
        ahead = more
    return base & ahead[None, :]


def check_interventions(
    journey: Journey,
    personas: Sequence[str],
    channels: Sequence[str],
    interventions: Sequence,
    arrivals: bool,
) -> None:
    """Every intervention names existing stages, transitions, personas and channels."""
    from sim.model.intervention import (
        ArrivalRateFactor,
        ChurnFactor,
        DwellFactor,
        NewTransition,
        OddsRatio,
        RepeatFactor,
    )

    names = [i.name for i in interventions]
    if len(interventions) > 30:
        raise ScenarioError(
            f"{len(interventions)} interventions; at most 30 are supported", field="intervention"
        )
    churn, repeat = purchase_roles(journey)
    check_unique(names, "intervention", "intervention")
    for iv in interventions:
        where = f"intervention '{iv.name}'"
        for label, given, known in (
            ("personas", iv.personas, personas),
            ("stages", iv.stages, journey.names),
            ("channels", iv.channels, channels),
        ):
            for name in given:
                if name not in known:
                    raise ScenarioError(
                        f"unknown {label[:-1]} '{name}'",
                        field=f"{where}, field '{label}'",
                        fix=suggest(name, known),
                    )
        for e in iv.effects:
            field = f"{where}, effect {e.kind}"
            # a satisfaction change without a stage acts after a visit to any stage
            stage_named = getattr(e, "stage", None) or e.kind != "satisfaction_change"
            if hasattr(e, "stage") and stage_named and e.stage not in journey.names:
                raise ScenarioError(
                    f"unknown stage '{e.stage}'", field=field, fix=suggest(e.stage, journey.names)
                )
            if isinstance(e, OddsRatio | NewTransition):
                if e.to not in journey.names:
                    raise ScenarioError(
                        f"unknown stage '{e.to}'", field=field, fix=suggest(e.to, journey.names)
                    )
                stage = journey.stage(e.stage)
                targets = [t for t, p in stage.next if p > 0]
                if stage.absorbing:
                    raise ScenarioError(
                        f"'{e.stage}' is absorbing: it has no transitions", field=field
                    )
                if isinstance(e, OddsRatio) and e.to not in targets:
                    raise ScenarioError(
                        f"unknown transition '{e.stage}' -> '{e.to}'",
                        field=field,
                        fix=f"'{e.stage}' leads to {', '.join(targets)}; to open a new way "
                        'out use kind = "new_transition"',
                    )
                if isinstance(e, NewTransition) and e.to in targets:
                    raise ScenarioError(
                        f"'{e.stage}' -> '{e.to}' exists already",
                        field=field,
                        fix='use kind = "odds_ratio" to change an existing transition',
                    )
            if isinstance(e, DwellFactor) and journey.stage(e.stage).absorbing:
                raise ScenarioError(
                    f"'{e.stage}' is absorbing: customers do not wait there", field=field
                )
            if isinstance(e, ChurnFactor) and not churn.any():
                raise ScenarioError(
                    "the journey has no churn transition (into an end that only buyers reach)",
                    field=field,
                )
            if isinstance(e, RepeatFactor) and not repeat.any():
                raise ScenarioError(
                    "the journey has no repeat purchase (a purchase stage reached again by buyers)",
                    field=field,
                )
            if isinstance(e, ArrivalRateFactor):
                if not arrivals:
                    raise ScenarioError(
                        "arrival_rate_factor needs arrivals by channel; this scenario has a cohort",
                        field=field,
                        fix="use [[acquisition.channel]] tables",
                    )
                if e.channel not in channels:
                    raise ScenarioError(
                        f"unknown channel '{e.channel}'",
                        field=field,
                        fix=suggest(e.channel, channels),
                    )


def intervention_row_changes(
    journey: Journey, interventions: Sequence
) -> tuple[np.ndarray, np.ndarray]:
    """For the interventions acting together: the base matrix with new transitions opened, and
    the S x S log-odds shifts of their odds ratios, churn and repeat factors."""
    from sim.model.intervention import ChurnFactor, NewTransition, OddsRatio, RepeatFactor

    base = base_matrix(journey)
    delta = np.zeros_like(base)
    churn, repeat = purchase_roles(journey)
    for iv in interventions:
        for e in iv.effects:
            if isinstance(e, NewTransition):
                i, j = journey.index(e.stage), journey.index(e.to)
                base[i] *= 1 - e.probability
                base[i, j] += e.probability
            elif isinstance(e, OddsRatio):
                delta[journey.index(e.stage), journey.index(e.to)] += np.log(e.ratio)
            elif isinstance(e, ChurnFactor):
                delta[churn] += np.log(e.factor)
            elif isinstance(e, RepeatFactor):
                delta[repeat] += np.log(e.factor)
    return base, delta


def treated_matrix(
    journey: Journey, persona: Persona, effects: Sequence[Effect], interventions: Sequence
) -> np.ndarray:
    """A persona's transition matrix while the given interventions act on the customer."""
    base, delta = intervention_row_changes(journey, interventions)
    return apply_log_odds(base, persona_log_odds(journey, persona, effects) + delta)


def intervention_factors(journey: Journey, interventions: Sequence) -> tuple[np.ndarray, float]:
    """Per-stage dwell-time factors and the order-value factor of interventions acting
    together: each a product of the interventions' factors (1 where none acts)."""
    from sim.model.intervention import DwellFactor, OrderValueFactor

    dwell = np.ones(len(journey.stages))
    value = 1.0
    for iv in interventions:
        for e in iv.of_kind(DwellFactor):
            dwell[journey.index(e.stage)] *= e.factor
        for e in iv.of_kind(OrderValueFactor):
            value *= e.factor
    return dwell, value


def credited_moves(journey: Journey, intervention) -> np.ndarray:
    """S x S booleans: the moves an intervention is credited with when it acts on the customer
    making them (the rule behind ``per_conversion`` costs and budgets).

    A move ``a -> b`` made while the intervention acts is credited to it when the intervention
    changed the decision behind it: it shifts the odds of a way out of ``a`` (an odds ratio,
    churn or repeat factor, or a new transition, on any transition out of ``a``), or the time
    spent in ``a`` (a dwell factor), or, for a move into a purchase stage, the order's value
    (an order-value factor: a discount is used on every order it prices). A renewal made while
    an intervention that only changed trial -> activated is still open is not credited to it.
    Factors of exactly 1 change nothing and credit nothing.
    """
    from sim.model.intervention import NewTransition

    _, delta = intervention_row_changes(journey, [intervention])
    changed = (delta != 0).any(axis=1)
    for e in intervention.of_kind(NewTransition):
        changed[journey.index(e.stage)] = True
    dwell, value = intervention_factors(journey, [intervention])
    changed |= dwell != 1
    credited = np.repeat(changed[:, None], len(journey.stages), axis=1)
    if value != 1:
        credited[:, [s.purchase for s in journey.stages]] = True
    return credited


# -- service outcomes ------------------------------------------------------------------------
# A stage's service outcomes are one more multinomial choice (with "nothing of note" as the
# last category, the share left over); an intervention's outcome odds ratios shift it by the
# same rule as transitions.


def outcome_shares(outcomes: Sequence, stage: str, interventions: Sequence) -> np.ndarray:
    """Probabilities of a stage's ``outcomes`` and, last, of a visit with none, while the
    given interventions act: each :class:`~sim.model.intervention.OutcomeOddsRatio` on the
    stage adds log(ratio) to its outcome's log-odds against every other category."""
    from sim.model.intervention import OutcomeOddsRatio

    shares = np.array([o.share for o in outcomes] + [0.0])
    shares[-1] = max(1.0 - shares[:-1].sum(), 0.0)
    names = [o.name for o in outcomes]
    delta = np.zeros(len(shares))
    for iv in interventions:
        for e in iv.of_kind(OutcomeOddsRatio):
            if e.stage == stage and e.outcome in names:
                delta[names.index(e.outcome)] += np.log(e.ratio)
    return apply_log_odds(shares, delta)
