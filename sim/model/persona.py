"""Personas (customer segments) and the effects their attributes have on the journey."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.errors import ScenarioError
from sim.model.distributions import Distribution, Fixed, parse_distribution
from sim.model.journey import _pairs


@dataclass(frozen=True, kw_only=True)
class Persona:
    """A customer segment.

    ``share`` is its part of the population (shares of all personas sum to 1); ``attributes`` are
    numbers that effects read (price sensitivity, brand affinity, ...); ``order_value`` is the
    money of one purchase; ``dwell_factors`` scale a stage's dwell time for this persona
    (``{"consideration": 1.5}``: they take 50% longer to consider); ``patience_factor`` scales
    their patience in every queue (0.5: they give up twice as soon).
    """

    name: str
    share: float = 1.0
    attributes: tuple[tuple[str, float], ...] = ()
    order_value: Distribution = field(default_factory=lambda: Fixed(0.0))
    dwell_factors: tuple[tuple[str, float], ...] = ()
    patience_factor: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"persona name must be a non-empty string, got {self.name!r}", field="persona name"
            )
        if self.name.strip().lower() == "all":
            # the analysis tables label the whole population "all"; a persona of that name
            # would give two rows called "all" with different numbers
            raise ScenarioError(
                f"persona name {self.name!r} is reserved for the overall row of the tables",
                field="persona name",
                fix='call the persona something else, e.g. name = "customers"',
            )
        where = f"persona '{self.name}'"
        if isinstance(self.share, bool) or not isinstance(self.share, int | float):
            raise ScenarioError(
                f"share must be a number, got {self.share!r}", field=f"{where}, field 'share'"
            )
        if not 0 < self.share <= 1:
            raise ScenarioError(
                f"share is {self.share}, outside (0, 1]",
                field=f"{where}, field 'share'",
                fix="give the persona's part of the population, e.g. 0.3",
            )
        object.__setattr__(self, "share", float(self.share))
        attrs = _pairs(self.attributes, f"{where}, field 'attributes'")
        object.__setattr__(self, "attributes", tuple(sorted(attrs)))
        object.__setattr__(
            self,
            "order_value",
            parse_distribution(self.order_value, field=f"{where}, field 'order_value'"),
        )
        factors = _pairs(self.dwell_factors, f"{where}, field 'dwell_factors'")
        for stage, f in factors:
            if not math.isfinite(f) or f <= 0:
                raise ScenarioError(
                    f"dwell factor for '{stage}' is {f}; it must be positive",
                    field=f"{where}, field 'dwell_factors'",
                    fix="1 leaves the dwell time unchanged, 2 doubles it, 0.5 halves it",
                )
        object.__setattr__(self, "dwell_factors", factors)
        f = self.patience_factor
        if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or f <= 0:
            raise ScenarioError(
                f"patience_factor must be a positive number, got {f!r}",
                field=f"{where}, field 'patience_factor'",
                fix="1 leaves patience unchanged, 0.5 halves it",
            )
        object.__setattr__(self, "patience_factor", float(f))

    def attribute(self, name: str) -> float:
        """The value of one attribute."""
        return dict(self.attributes)[name]

    def dwell_factor(self, stage: str) -> float:
        """Dwell-time factor for a stage (1 when not given)."""
        return dict(self.dwell_factors).get(stage, 1.0)


@dataclass(frozen=True, kw_only=True)
class Effect:
    """A persona attribute moves the log-odds of one transition.

    For a customer of persona p, the transition ``stage -> to`` has its log-odds raised by
    ``coefficient * (p.attributes[attribute] - reference)``; the base probabilities hold for a
    customer whose attribute equals ``reference``.
    """

    stage: str
    to: str
    attribute: str
    coefficient: float
    reference: float = 0.0

    def __post_init__(self) -> None:
        where = f"effect on '{self.stage}' -> '{self.to}'"
        for name in ("coefficient", "reference"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ScenarioError(
                    f"{name} must be a finite number, got {value!r}",
                    field=f"{where}, field '{name}'",
                )
            object.__setattr__(self, name, float(value))
