"""Interventions: whom they reach, what they change, what they cost.

An intervention reaches a customer who enters one of its ``stages`` (any stage when none are
named) while its window is open, if the customer's persona and channel are targeted and the
customer falls within the ``reach`` share (a per-customer draw). From then on its effects act on
that customer's decisions while the window is open, or for the rest of the journey when
``lasting`` (a programme customers join, such as loyalty). Effects are evaluated when the
customer enters a stage: they set that visit's dwell time and the choice that ends it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.errors import ScenarioError, positive_number


@dataclass(frozen=True, kw_only=True)
class OddsRatio:
    """Multiplies the odds of ``stage -> to`` against the stage's other ways out by ``ratio``."""

    stage: str
    to: str
    ratio: float
    kind = "odds_ratio"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "ratio",
            positive_number(
                self.ratio,
                "ratio",
                f"odds_ratio on '{self.stage}' -> '{self.to}'",
                "1 changes nothing, 1.4 raises the odds by 40%, 0.8 lowers them by 20%",
            ),
        )


@dataclass(frozen=True, kw_only=True)
class DwellFactor:
    """Multiplies the time spent in ``stage`` (0.7: customers decide 30% faster)."""

    stage: str
    factor: float
    kind = "dwell_factor"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "factor",
            positive_number(
                self.factor, "factor", f"dwell_factor on '{self.stage}'", "1 changes nothing"
            ),
        )


@dataclass(frozen=True, kw_only=True)
class ChurnFactor:
    """Odds ratio on every churn transition (into an end that only buyers can reach)."""

    factor: float
    kind = "churn_factor"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "factor",
            positive_number(
                self.factor, "factor", "churn_factor", "0.8 lowers the odds of churning by 20%"
            ),
        )


@dataclass(frozen=True, kw_only=True)
class RepeatFactor:
    """Odds ratio on every repeat purchase or renewal (a purchase by an existing customer)."""

    factor: float
    kind = "repeat_factor"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "factor",
            positive_number(
                self.factor, "factor", "repeat_factor", "1.2 raises the odds of buying again by 20%"
            ),
        )


@dataclass(frozen=True, kw_only=True)
class OrderValueFactor:
    """Multiplies the value of purchases made under the intervention (0.85: a 15% discount)."""

    factor: float
    kind = "order_value_factor"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "factor",
            positive_number(self.factor, "factor", "order_value_factor", "0.85 is a 15% discount"),
        )


@dataclass(frozen=True, kw_only=True)
class ArrivalRateFactor:
    """Multiplies a channel's arrival rate while the window is open (an ad campaign)."""

    channel: str
    factor: float
    kind = "arrival_rate_factor"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "factor",
            positive_number(
                self.factor,
                "factor",
                f"arrival_rate_factor on '{self.channel}'",
                "1.5 brings 50% more customers through the channel",
            ),
        )


@dataclass(frozen=True, kw_only=True)
class NewTransition:
    """Opens ``stage -> to`` with ``probability``; the stage's other ways out shrink in
    proportion (a referral programme opening retention -> advocacy)."""

    stage: str
    to: str
    probability: float
    kind = "new_transition"

    def __post_init__(self) -> None:
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1:
            raise ScenarioError(
                f"probability must be between 0 and 1, got {p!r}",
                field=f"new_transition '{self.stage}' -> '{self.to}'",
                fix="give the share of customers who take the new way out, e.g. 0.1",
            )
        object.__setattr__(self, "probability", float(p))


@dataclass(frozen=True, kw_only=True)
class ReferralRateFactor:
    """Multiplies the referral rate of the customers it acts on (a referral reward)."""

    factor: float
    kind = "referral_rate_factor"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "factor",
            positive_number(
                self.factor, "factor", "referral_rate_factor", "1.5: 50% more referrals"
            ),
        )


@dataclass(frozen=True, kw_only=True)
class CapacityChange:
    """Adds ``units`` (agents, reps) to a resource while the intervention's window is open
    (two more support agents from day 90). It acts on the resource, not on customers: an
    intervention made only of capacity changes reaches nobody; its cost is ``per_unit_day``
    for each unit and day it is in force (plus ``fixed``)."""

    resource: str
    units: int
    kind = "capacity_change"

    def __post_init__(self) -> None:
        u = self.units
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ScenarioError(
                f"units must be a whole number of at least 1, got {u!r}",
                field=f"capacity_change on '{self.resource}'",
                fix="give the agents added, e.g. units = 2",
            )


@dataclass(frozen=True, kw_only=True)
class SatisfactionChange:
    """Adds ``amount`` to the satisfaction of a customer it acts on after each visit to
    ``stage`` (any stage when empty) that ends with service outcome ``outcome`` (any visit
    when empty): a goodwill credit after a failed delivery. Each such change is a credit,
    charged ``Cost.per_credit``."""

    amount: float
    stage: str = ""
    outcome: str = ""
    kind = "satisfaction_change"

    def __post_init__(self) -> None:
        a = self.amount
        if isinstance(a, bool) or not isinstance(a, int | float) or not math.isfinite(a):
            raise ScenarioError(
                f"amount must be a number, got {a!r}",
                field="satisfaction_change, field 'amount'",
                fix="the change of the score in [-1, 1], e.g. amount = 0.4",
            )
        object.__setattr__(self, "amount", float(a))


@dataclass(frozen=True, kw_only=True)
class OutcomeOddsRatio:
    """Multiplies the odds of service outcome ``outcome`` at ``stage`` against the stage's
    other outcomes (and visits with none) by ``ratio``: 0.5 halves the odds of a failed
    delivery (better quality)."""

    stage: str
    outcome: str
    ratio: float
    kind = "outcome_odds_ratio"

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "ratio",
            positive_number(
                self.ratio,
                "ratio",
                f"outcome_odds_ratio on '{self.stage}' outcome '{self.outcome}'",
                "0.5 halves the odds of the outcome, 1 changes nothing",
            ),
        )


InterventionEffect = (
    OddsRatio
    | DwellFactor
    | ChurnFactor
    | RepeatFactor
    | OrderValueFactor
    | ArrivalRateFactor
    | NewTransition
    | ReferralRateFactor
    | CapacityChange
    | SatisfactionChange
    | OutcomeOddsRatio
)
EFFECT_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (
        OddsRatio,
        DwellFactor,
        ChurnFactor,
        RepeatFactor,
        OrderValueFactor,
        ArrivalRateFactor,
        NewTransition,
        ReferralRateFactor,
        CapacityChange,
        SatisfactionChange,
        OutcomeOddsRatio,
    )
}


@dataclass(frozen=True, kw_only=True)
class Cost:
    """What an intervention costs: ``fixed`` once per replication, ``per_reached`` for each
    customer reached, ``per_conversion`` for each purchase credited to the intervention (a
    coupon's handling): a purchase whose decision it acted on and changed, that is, made while
    it acts on the customer, out of a stage whose ways out or dwell time it changes, or priced
    by its order-value factor (:func:`sim.model.logit.credited_moves`). An offer that only
    changes trial -> activated is charged for activations, not for every renewal that follows
    while its window is open. ``per_referral`` for each customer brought in by a referral of a
    customer it acts on (a referral reward), ``per_unit_day`` for each unit of capacity it adds
    and day it is in force (an agent's daily cost), ``per_credit`` for each satisfaction change
    it makes (a goodwill credit, :class:`SatisfactionChange`). A discount's lower prices show
    as lower revenue, not as a cost."""

    fixed: float = 0.0
    per_reached: float = 0.0
    per_conversion: float = 0.0
    per_referral: float = 0.0
    per_unit_day: float = 0.0
    per_credit: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "fixed",
            "per_reached",
            "per_conversion",
            "per_referral",
            "per_unit_day",
            "per_credit",
        ):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v < 0
            ):
                raise ScenarioError(
                    f"{name} must be zero or more, got {v!r}",
                    field=f"cost, field '{name}'",
                    fix="give an amount >= 0",
                )
            object.__setattr__(self, name, float(v))


@dataclass(frozen=True, kw_only=True)
class Intervention:
    """Whom (``personas``, ``stages``, ``channels``, ``window_days``, ``reach``), what
    (``effects``) and at what ``cost``, with an optional ``budget`` after which it reaches no
    one else. Empty targets mean everyone."""

    name: str
    effects: tuple[InterventionEffect, ...]
    personas: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    window_days: tuple[float, float] = (0.0, math.inf)
    reach: float = 1.0
    lasting: bool = False
    cost: Cost = field(default_factory=Cost)
    budget: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        where = f"intervention '{self.name}'"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"name must be non-empty text, got {self.name!r}",
                field="intervention, field 'name'",
            )
        effects = tuple(self.effects)
        for e in effects:
            if not isinstance(e, tuple(EFFECT_KINDS.values())):
                raise ScenarioError(f"unknown effect {e!r}", field=f"{where}, field 'effects'")
        object.__setattr__(self, "effects", effects)
        for name in ("personas", "stages", "channels"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        window = tuple(self.window_days)
        if len(window) != 2 or not all(
            isinstance(w, int | float) and not isinstance(w, bool) for w in window
        ):
            raise ScenarioError(
                f"window_days must be [start, end], got {self.window_days!r}",
                field=f"{where}, field 'window_days'",
                fix="e.g. window_days = [30, 60]; use inf for no end",
            )
        start, end = float(window[0]), float(window[1])
        if math.isnan(start) or math.isnan(end) or start < 0 or end <= start:
            raise ScenarioError(
                f"window [{start:g}, {end:g}) ends before it starts or starts before day 0",
                field=f"{where}, field 'window_days'",
                fix="give [start, end] with 0 <= start < end, e.g. [30, 60]",
            )
        object.__setattr__(self, "window_days", (start, end))
        r = self.reach
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0 <= r <= 1:
            raise ScenarioError(
                f"reach must be a share in [0, 1], got {r!r}",
                field=f"{where}, field 'reach'",
                fix="give the share of eligible customers exposed, e.g. 0.5",
            )
        object.__setattr__(self, "reach", float(r))
        if self.budget is not None:
            b = self.budget
            if isinstance(b, bool) or not isinstance(b, int | float) or math.isnan(b) or b < 0:
                raise ScenarioError(
                    f"budget must be an amount >= 0, got {b!r}", field=f"{where}, field 'budget'"
                )
            object.__setattr__(self, "budget", float(b))
            if self.cost.fixed > b:
                raise ScenarioError(
                    f"the fixed cost {self.cost.fixed:g} is more than the budget {b:g}",
                    field=f"{where}, field 'budget'",
                    fix="raise the budget or lower the cost",
                )

    @property
    def open_ended(self) -> bool:
        """True when the window is [0, inf) and there is no budget: exact answers exist."""
        return self.window_days == (0.0, math.inf) and self.budget is None

    @property
    def capacity_only(self) -> bool:
        """Only changes capacity: it acts on resources and reaches no customer."""
        return bool(self.effects) and all(isinstance(e, CapacityChange) for e in self.effects)

    def of_kind(self, cls: type) -> list:
        """The effects of one kind."""
        return [e for e in self.effects if isinstance(e, cls)]
