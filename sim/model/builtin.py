"""The journeys that ship with the package, usable by name in scenario files."""

from __future__ import annotations

from sim.errors import ScenarioError, suggest
from sim.model.distributions import Exponential, Fixed, Gamma, Weibull
from sim.model.journey import Journey, Stage


def five_stage() -> Journey:
    """Awareness, consideration, intent, purchase, post-purchase (with repeat purchase)."""
    return Journey(
        name="five_stage",
        stages=(
            Stage(
                name="awareness",
                dwell=Exponential(mean=3),
                next={"consideration": 0.55, "lost": 0.45},
            ),
            Stage(
                name="consideration",
                dwell=Gamma(shape=2, mean=5),
                next={"intent": 0.5, "lost": 0.5},
            ),
            Stage(name="intent", dwell=Exponential(mean=2), next={"purchase": 0.6, "lost": 0.4}),
            Stage(name="purchase", dwell=Fixed(0), purchase=True, next={"post_purchase": 1.0}),
            Stage(
                name="post_purchase",
                dwell=Exponential(mean=45),
                next={"purchase": 0.45, "churned": 0.55},
            ),
            Stage(name="lost", absorbing=True),
            Stage(name="churned", absorbing=True),
        ),
    )


def six_stage() -> Journey:
    """Awareness, consideration, decision, retention, advocacy, renewal (a subscription).

    Every entry into ``retention`` is a paid period; ``renewal`` is the decision at its end.
    """
    return Journey(
        name="six_stage",
        stages=(
            Stage(
                name="awareness",
                dwell=Exponential(mean=4),
                next={"consideration": 0.5, "lost": 0.5},
            ),
            Stage(
                name="consideration",
                dwell=Gamma(shape=2, mean=7),
                next={"decision": 0.45, "lost": 0.55},
            ),
            Stage(
                name="decision", dwell=Exponential(mean=3), next={"retention": 0.55, "lost": 0.45}
            ),
            Stage(
                name="retention",
                dwell=Weibull(shape=3, mean=30),
                purchase=True,
                next={"renewal": 0.8, "advocacy": 0.1, "churned": 0.1},
            ),
            Stage(
                name="advocacy", dwell=Exponential(mean=5), next={"renewal": 0.9, "churned": 0.1}
            ),
            Stage(name="renewal", dwell=Fixed(1), next={"retention": 0.85, "churned": 0.15}),
            Stage(name="lost", absorbing=True),
            Stage(name="churned", absorbing=True),
        ),
    )


BUILTIN_JOURNEYS = {"five_stage": five_stage, "six_stage": six_stage}


def builtin_journey(name: str, *, field: str = "journey") -> Journey:
    """A built-in journey by name."""
    try:
        return BUILTIN_JOURNEYS[name]()
    except KeyError:
        raise ScenarioError(
            f"unknown built-in journey '{name}'", field=field, fix=suggest(name, BUILTIN_JOURNEYS)
        ) from None
