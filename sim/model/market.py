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
class WordOfMouth:
    """Customers in ``stages`` bring in the people of the market: each non-customer becomes
    a customer at ``rate`` x (share of the market in those stages) per day (the Bass
    coefficient of imitation, q)."""

    stages: tuple[str, ...]
    rate: float

    def __post_init__(self) -> None:
        stages = (self.stages,) if isinstance(self.stages, str) else tuple(self.stages)
        if not stages or not all(isinstance(s, str) for s in stages):
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
