r"""A finite market and word of mouth: people who are not yet customers, and how they become
customers.

Each of the ``size`` people of the market who is not yet a customer becomes one at rate

.. math:: \lambda(t) = p + q\, A(t) / N

per day, where :math:`p` is ``Market.external_rate`` (advertising, media), :math:`q` is
``WordOfMouth.rate`` and :math:`A(t)` counts the customers who are, at time *t*, in one of the
``WordOfMouth.stages``. A new customer enters the journey's entry stage. When the entry stage
is itself the only stage that influences others and customers stay there, the cumulative
share adopted follows the Bass diffusion model,
:math:`F(t) = (1 - e^{-(p+q)t}) / (1 + (q/p) e^{-(p+q)t})`, in expectation for a large market.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.errors import ScenarioError

#: Channel of customers who came from the market through external influence (rate p).
MARKET_CHANNEL = "market"
#: Channel of customers who came from the market through word of mouth (rate q A / N).
WORD_OF_MOUTH_CHANNEL = "word_of_mouth"
#: Channel of customers a referral brought in (their referrer is recorded).
REFERRAL_CHANNEL = "referral"


def _rate(value: object, where: str, fix: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ScenarioError(f"must be a number >= 0, got {value!r}", field=where, fix=fix)
    return float(value)


@dataclass(frozen=True, kw_only=True)
class Market:
    """``size`` people who could become customers; each becomes one through external
    influence at ``external_rate`` per day (the Bass coefficient of innovation, p)."""

    size: int
    external_rate: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ScenarioError(
                f"market size must be a whole number of at least 1, got {self.size!r}",
                field="market, field 'size'",
                fix="give the number of people who could become customers, e.g. size = 100000",
            )
        rate = _rate(
            self.external_rate,
            "market, field 'external_rate'",
            "give p per person per day, e.g. external_rate = 0.0005",
        )
        object.__setattr__(self, "external_rate", rate)


@dataclass(frozen=True, kw_only=True)
class NegativeWordOfMouth:
    """Detractors put people off. A customer who churns (moves into an end only buyers can
    reach) with a satisfaction below ``threshold`` becomes a detractor: for ``talking_days``
    after churning (default: ``lasting``) they reach ``rate`` people a day, each one of the
    market's *N* people at random. A person reached who is not yet a customer is put off for
    ``lasting`` days from that contact (a later contact starts the days again); if they
    become a customer meanwhile, their decisions in ``stages`` (default: the journey's entry
    stage) made while put off have the odds of every way forward (into a stage from which a
    purchase can still be reached) multiplied by ``odds_ratio`` through the log-odds rule of
    :mod:`sim.model.logit`. A contact with someone already a customer changes nothing."""

    rate: float
    threshold: float
    odds_ratio: float
    lasting: float
    talking_days: float | None = None
    stages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = "word_of_mouth.negative"
        object.__setattr__(
            self,
            "rate",
            _rate(self.rate, f"{where}, field 'rate'", "give people reached per day, e.g. 0.5"),
        )
        th = self.threshold
        if isinstance(th, bool) or not isinstance(th, int | float) or not -1 <= th <= 1:
            raise ScenarioError(
                f"threshold must be a satisfaction score in [-1, 1], got {th!r}",
                field=f"{where}, field 'threshold'",
                fix="e.g. threshold = -0.2: those who churn less satisfied than that talk",
            )
        object.__setattr__(self, "threshold", float(th))
        ratio = self.odds_ratio
        if (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not math.isfinite(ratio)
            or ratio <= 0
        ):
            raise ScenarioError(
                f"odds_ratio must be a number > 0, got {ratio!r}",
                field=f"{where}, field 'odds_ratio'",
                fix="e.g. odds_ratio = 0.7 (30% lower odds of going on); 1 changes nothing",
            )
        object.__setattr__(self, "odds_ratio", float(ratio))
        for name in ("lasting", "talking_days"):
            value = getattr(self, name)
            if value is None and name == "talking_days":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ScenarioError(
                    f"{name} must be a number of days > 0, got {value!r}",
                    field=f"{where}, field '{name}'",
                    fix=f"e.g. {name} = 30",
                )
            object.__setattr__(self, name, float(value))
        stages = (self.stages,) if isinstance(self.stages, str) else tuple(self.stages)
        if not all(isinstance(s, str) for s in stages):
            raise ScenarioError(
                f"stages must be a list of stage names, got {self.stages!r}",
                field=f"{where}, field 'stages'",
                fix='e.g. stages = ["awareness"]',
            )
        object.__setattr__(self, "stages", stages)

    @property
    def talking(self) -> float:
        """Days a detractor keeps talking after churning."""
        return self.lasting if self.talking_days is None else self.talking_days


@dataclass(frozen=True, kw_only=True)
class WordOfMouth:
    """Customers in ``stages`` bring in the people of the market: each non-customer becomes
    a customer at ``rate`` x (share of the market in those stages) per day (the Bass
    coefficient of imitation, q). ``negative``: detractors who put people off
    (:class:`NegativeWordOfMouth`); with it alone, ``stages`` may be empty and ``rate`` 0."""

    stages: tuple[str, ...]
    rate: float
    negative: NegativeWordOfMouth | None = None

    def __post_init__(self) -> None:
        stages = (self.stages,) if isinstance(self.stages, str) else tuple(self.stages)
        if self.negative is not None and not isinstance(self.negative, NegativeWordOfMouth):
            raise ScenarioError(
                "negative must be a NegativeWordOfMouth", field="word_of_mouth.negative"
            )
        silent = self.negative is not None and not stages and self.rate == 0
        if not silent and (not stages or not all(isinstance(s, str) for s in stages)):
            raise ScenarioError(
                f"stages must be a non-empty list of stage names, got {self.stages!r}",
                field="word_of_mouth, field 'stages'",
                fix='e.g. stages = ["purchase", "post_purchase"]',
            )
        object.__setattr__(self, "stages", stages)
        rate = _rate(
            self.rate,
            "word_of_mouth, field 'rate'",
            "give q per day, e.g. rate = 0.05",
        )
        object.__setattr__(self, "rate", rate)


@dataclass(frozen=True, kw_only=True)
class Referrals:
    """Customers in ``stages`` make referrals at ``rate`` per day each (times their persona's
    factor in ``persona_factors`` and any ``referral_rate_factor`` of interventions acting on
    them). A referral reaches one of the market's people at random; if they are not yet a
    customer they become one with probability ``conversion``, with the referrer recorded.
    A reward per successful referral is an intervention's cost (``Cost.per_referral``)."""

    stages: tuple[str, ...]
    rate: float
    conversion: float = 1.0
    persona_factors: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        stages = (self.stages,) if isinstance(self.stages, str) else tuple(self.stages)
        if not stages or not all(isinstance(s, str) for s in stages):
            raise ScenarioError(
                f"stages must be a non-empty list of stage names, got {self.stages!r}",
                field="referrals, field 'stages'",
                fix='e.g. stages = ["advocacy"]',
            )
        object.__setattr__(self, "stages", stages)
        object.__setattr__(
            self,
            "rate",
            _rate(self.rate, "referrals, field 'rate'", "give referrals per customer per day"),
        )
        c = self.conversion
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 <= c <= 1:
            raise ScenarioError(
                f"conversion must be a probability in [0, 1], got {c!r}",
                field="referrals, field 'conversion'",
                fix="e.g. conversion = 0.2",
            )
        object.__setattr__(self, "conversion", float(c))
        items = (
            self.persona_factors.items()
            if isinstance(self.persona_factors, dict)
            else self.persona_factors
        )
        factors = []
        for name, f in items:
            factors.append(
                (
                    str(name),
                    _rate(f, "referrals, field 'persona_factors'", "give factors >= 0, e.g. 2"),
                )
            )
        object.__setattr__(self, "persona_factors", tuple(factors))

    def factor(self, persona: str) -> float:
        """Referral-rate factor of a persona (1 when not given)."""
        return dict(self.persona_factors).get(persona, 1.0)


def bass_share(days: np.ndarray, p: float, q: float) -> np.ndarray:
    r"""Bass's cumulative share adopted by ``days``, :math:`F(t) = (1 - e^{-(p+q)t}) /
    (1 + (q/p) e^{-(p+q)t})` (with ``p = 0`` nobody ever adopts)."""
    days = np.asarray(days, dtype=float)
    if p <= 0:
        return np.zeros_like(days)
    decay = np.exp(-(p + q) * days)
    return (1 - decay) / (1 + (q / p) * decay)


def bass_peak_day(p: float, q: float) -> float:
    """Day on which Bass's adoptions per day peak, ln(q/p)/(p+q) (0 when q <= p)."""
    return max(math.log(q / p) / (p + q), 0.0) if p > 0 and q > 0 else 0.0
