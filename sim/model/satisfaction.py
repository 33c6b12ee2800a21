r"""Satisfaction: a score per customer, in [-1, 1], that what happens to them moves and that
moves their decisions.

A customer starts at their persona's score (``persona_start``, else ``start``). Each day
queued for a resource adds ``per_day_waited`` (negative: waiting annoys), giving up a queue
adds ``abandoned``; a service outcome drawn at the end of a visit to a stage (``outcomes``:
a good call, a failed delivery) adds its own ``satisfaction``; the score is kept within
[-1, 1]. A satisfaction effect adds
``coefficient x score`` to the log-odds of ``stage -> to`` (the same rule as every other
effect), so an unhappy customer with a negative coefficient on ``renewal -> churned`` churns
less and one with a positive coefficient churns more. ``referral_rate_per_point`` moves
referrals the same way on the log scale: a customer in a referring stage refers at
``rate x exp(referral_rate_per_point x score)`` (with the score they entered that stage with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.errors import ScenarioError

#: Bounds of the score.
LOW, HIGH = -1.0, 1.0
#: Largest size of ``referral_rate_per_point``: exp(10) already multiplies the rate by 22,000.
MAX_REFERRAL_RATE_PER_POINT = 10.0


def _number(
    value: object,
    where: str,
    low: float = -math.inf,
    high: float = math.inf,
    fix: str = "satisfaction scores run from -1 (furious) to 1 (delighted)",
) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ScenarioError(
            f"must be a number in [{low:g}, {high:g}], got {value!r}",
            field=where,
            fix=fix,
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
class Outcome:
    """A service outcome of a visit to a stage: drawn with probability ``share`` at the end of
    each visit, it adds ``satisfaction`` to the customer's score before they decide where to
    go next."""

    name: str
    share: float
    satisfaction: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"an outcome needs a name, got {self.name!r}",
                field="satisfaction, field 'outcomes'",
                fix="e.g. failed_delivery = { share = 0.05, satisfaction = -0.6 }",
            )
        where = f"satisfaction outcome '{self.name}'"
        object.__setattr__(
            self,
            "share",
            _number(
                self.share,
                f"{where}, field 'share'",
                0,
                1,
                fix="a share is the chance of the outcome on a visit, from 0 to 1, e.g. 0.05",
            ),
        )
        object.__setattr__(
            self, "satisfaction", _number(self.satisfaction, f"{where}, field 'satisfaction'")
        )


def _stage_outcomes(stage: str, given: object) -> tuple[Outcome, ...]:
    """One stage's outcomes from Outcome objects or a TOML table {name: {share, satisfaction}}."""
    where = f"satisfaction, field 'outcomes', stage '{stage}'"
    if isinstance(given, dict):
        items = []
        for name, spec in given.items():
            if (
                not isinstance(spec, dict)
                or set(spec) - {"share", "satisfaction"}
                or "share" not in spec
            ):
                raise ScenarioError(
                    f"outcome '{name}' must be {{ share = ..., satisfaction = ... }}, got {spec!r}",
                    field=where,
                    fix="e.g. failed_delivery = { share = 0.05, satisfaction = -0.6 }",
                )
            items.append(Outcome(name=str(name), **spec))
    else:
        items = list(given)
    if not items or not all(isinstance(o, Outcome) for o in items):
        raise ScenarioError(f"no outcomes given: {given!r}", field=where, fix="name at least one")
    names = [o.name for o in items]
    if len(set(names)) != len(names):
        raise ScenarioError(f"outcome names repeat: {names}", field=where, fix="name each once")
    total = sum(o.share for o in items)
    if total > 1 + 1e-9:
        raise ScenarioError(
            f"outcome shares sum to {total:g}, more than 1",
            field=where,
            fix="lower them; visits left over (1 - the sum) end with no outcome of note",
        )
    return tuple(items)


@dataclass(frozen=True, kw_only=True)
class Satisfaction:
    """How satisfaction starts, what moves it, and which decisions it moves."""

    start: float = 0.0
    persona_start: tuple[tuple[str, float], ...] = ()
    per_day_waited: float = 0.0
    abandoned: float = 0.0
    effects: tuple[SatisfactionEffect, ...] = ()
    #: per stage: the service outcomes drawn at the end of each visit
    outcomes: tuple[tuple[str, tuple[Outcome, ...]], ...] = ()
    #: log-rate coefficient: referrals per day x exp(this x score)
    referral_rate_per_point: float = 0.0

    def __post_init__(self) -> None:
        b = self.referral_rate_per_point
        if (
            isinstance(b, bool)
            or not isinstance(b, int | float)
            or not math.isfinite(b)
            or not -MAX_REFERRAL_RATE_PER_POINT <= b <= MAX_REFERRAL_RATE_PER_POINT
        ):
            raise ScenarioError(
                f"must be a number in [-{MAX_REFERRAL_RATE_PER_POINT:g}, "
                f"{MAX_REFERRAL_RATE_PER_POINT:g}], got {b!r}",
                field="satisfaction, field 'referral_rate_per_point'",
                fix="a log-rate per point of score: 0.7 makes a delighted customer (score 1) "
                "refer about twice as often as a neutral one",
            )
        object.__setattr__(self, "referral_rate_per_point", float(b))
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
        items = self.outcomes.items() if isinstance(self.outcomes, dict) else self.outcomes
        outcomes = tuple((str(stage), _stage_outcomes(str(stage), o)) for stage, o in items)
        stages = [stage for stage, _ in outcomes]
        if len(set(stages)) != len(stages):
            raise ScenarioError(
                f"a stage's outcomes are given twice: {stages}",
                field="satisfaction, field 'outcomes'",
                fix="give each stage's outcomes once",
            )
        object.__setattr__(self, "outcomes", outcomes)

    def referral_factor(self, score: float) -> float:
        """What the referral rate of a customer with this score is multiplied by."""
        return math.exp(self.referral_rate_per_point * score)

    def start_of(self, persona: str) -> float:
        """A persona's starting score."""
        return dict(self.persona_start).get(persona, self.start)

    def outcome_names(self) -> tuple[str, ...]:
        """Names of all outcomes, each once, in the order given (their codes in a log)."""
        names: list[str] = []
        for _, outcomes in self.outcomes:
            names.extend(o.name for o in outcomes if o.name not in names)
        return tuple(names)
