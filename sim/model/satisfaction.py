r"""Satisfaction: a score per customer, in [-1, 1], that what happens to them moves and that
moves their decisions.

A customer starts at their persona's score (``persona_start``, else ``start``). Each day
queued for a resource adds ``per_day_waited`` (negative: waiting annoys), giving up a queue
adds ``abandoned``; the score is kept within [-1, 1]. A satisfaction effect adds
``coefficient x score`` to the log-odds of ``stage -> to`` (the same rule as every other
effect), so an unhappy customer with a negative coefficient on ``renewal -> churned`` churns
less and one with a positive coefficient churns more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.errors import ScenarioError

#: Bounds of the score.
LOW, HIGH = -1.0, 1.0


def _number(value: object, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ScenarioError(
            f"must be a number in [{low:g}, {high:g}], got {value!r}",
            field=where,
            fix="satisfaction scores run from -1 (furious) to 1 (delighted)",
        )
    return float(value)


@dataclass(frozen=True, kw_only=True)
class SatisfactionEffect:
    """Adds ``coefficient`` x the customer's satisfaction to the log-odds of ``stage -> to``."""

    stage: str
    to: str
    coefficient: float

    def __post_init__(self) -> None:
        where = f"satisfaction effect on '{self.stage}' -> '{self.to}', field 'coefficient'"
        object.__setattr__(self, "coefficient", _number(self.coefficient, where))


@dataclass(frozen=True, kw_only=True)
class Satisfaction:
    """How satisfaction starts, what moves it, and which decisions it moves."""

    start: float = 0.0
    persona_start: tuple[tuple[str, float], ...] = ()
    per_day_waited: float = 0.0
    abandoned: float = 0.0
    effects: tuple[SatisfactionEffect, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "start", _number(self.start, "satisfaction, field 'start'", LOW, HIGH)
        )
        items = (
            self.persona_start.items()
            if isinstance(self.persona_start, dict)
            else self.persona_start
        )
        starts = tuple(
            (str(n), _number(v, "satisfaction, field 'persona_start'", LOW, HIGH)) for n, v in items
        )
        object.__setattr__(self, "persona_start", starts)
        for name in ("per_day_waited", "abandoned"):
            object.__setattr__(
                self, name, _number(getattr(self, name), f"satisfaction, field '{name}'")
            )
        effects = []
        for e in self.effects:
            if isinstance(e, dict):
                unknown = set(e) - {"stage", "to", "coefficient"}
                if unknown or not {"stage", "to", "coefficient"} <= set(e):
                    raise ScenarioError(
                        f"each effect needs stage, to and coefficient, got {e!r}",
                        field="satisfaction, field 'effects'",
                        fix='e.g. { stage = "renewal", to = "churned", coefficient = -1.5 }',
                    )
                e = SatisfactionEffect(**e)
            if not isinstance(e, SatisfactionEffect):
                raise ScenarioError(
                    f"not a satisfaction effect: {e!r}", field="satisfaction, field 'effects'"
                )
            effects.append(e)
        object.__setattr__(self, "effects", tuple(effects))

    def start_of(self, persona: str) -> float:
        """A persona's starting score."""
        return dict(self.persona_start).get(persona, self.start)
