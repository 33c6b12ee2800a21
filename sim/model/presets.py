"""A library of named interventions built from the basic parts.

Each function returns an :class:`~sim.model.intervention.Intervention`; the same names work in
scenario files as ``preset = "discount"`` with the keyword arguments as fields. Whom-fields
(``personas``, ``stages``, ``channels``, ``window_days``, ``reach``, ``budget``) and costs can
be given to every preset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from sim.errors import ScenarioError, suggest
from sim.model.intervention import (
    ArrivalRateFactor,
    ChurnFactor,
    Cost,
    DwellFactor,
    Intervention,
    NewTransition,
    OddsRatio,
    OrderValueFactor,
    RepeatFactor,
)

Window = tuple[float, float]
ALWAYS: Window = (0.0, math.inf)


def _whom(
    name: str,
    effects: list,
    *,
    personas: Sequence[str] = (),
    stages: Sequence[str] = (),
    channels: Sequence[str] = (),
    window_days: Window = ALWAYS,
    reach: float = 1.0,
    lasting: bool = False,
    fixed: float = 0.0,
    per_reached: float = 0.0,
    per_conversion: float = 0.0,
    budget: float | None = None,
    description: str = "",
) -> Intervention:
    return Intervention(
        name=name,
        effects=tuple(effects),
        personas=tuple(personas),
        stages=tuple(stages),
        channels=tuple(channels),
        window_days=tuple(window_days),
        reach=reach,
        lasting=lasting,
        cost=Cost(fixed=fixed, per_reached=per_reached, per_conversion=per_conversion),
        budget=budget,
        description=description,
    )


def discount(
    *,
    depth: float,
    elasticity: float = 3.0,
    stage: str = "intent",
    to: str = "purchase",
    name: str = "discount",
    stages: Sequence[str] | None = None,
    **whom: Any,
) -> Intervention:
    """A price discount of ``depth`` (0.15 = 15% off) offered at ``stage``.

    Order values fall by ``depth``; the log-odds of ``stage -> to`` rise by
    ``elasticity * depth`` (an odds ratio of exp(elasticity * depth)); customers decide a
    little faster (dwell x (1 - depth)).
    """
    if not 0 < depth < 1:
        raise ScenarioError(
            f"depth must be between 0 and 1, got {depth!r}",
            field=f"intervention '{name}', field 'depth'",
            fix="0.15 is 15% off",
        )
    effects = [
        OddsRatio(stage=stage, to=to, ratio=math.exp(elasticity * depth)),
        DwellFactor(stage=stage, factor=1 - depth),
        OrderValueFactor(factor=1 - depth),
    ]
    return _whom(
        name,
        effects,
        stages=(stage,) if stages is None else stages,
        description=f"{depth:.0%} off at {stage}",
        **whom,
    )


def ad_campaign(
    *, channel: str, rate_factor: float, name: str = "ad_campaign", **whom: Any
) -> Intervention:
    """More customers through one channel while the window is open (``rate_factor`` x the
    arrival rate); ``per_reached`` is paid for each customer arriving through it meanwhile."""
    return _whom(
        name,
        [ArrivalRateFactor(channel=channel, factor=rate_factor)],
        channels=whom.pop("channels", (channel,)),
        description=f"{channel} arrivals x{rate_factor:g}",
        **whom,
    )


def retargeting(
    *,
    stage: str = "intent",
    to: str = "purchase",
    ratio: float = 1.25,
    name: str = "retargeting",
    **whom: Any,
) -> Intervention:
    """Reminders to customers who stalled at ``stage``: odds of ``stage -> to`` x ``ratio``."""
    return _whom(
        name,
        [OddsRatio(stage=stage, to=to, ratio=ratio)],
        stages=whom.pop("stages", (stage,)),
        description=f"odds of {stage} -> {to} x{ratio:g}",
        **whom,
    )


def loyalty_program(
    *,
    churn_factor: float = 0.75,
    repeat_factor: float = 1.3,
    join_at: Sequence[str] = ("purchase",),
    name: str = "loyalty_program",
    **whom: Any,
) -> Intervention:
    """Customers join when they buy and stay members: odds of churning x ``churn_factor``,
    odds of buying again x ``repeat_factor``."""
    return _whom(
        name,
        [ChurnFactor(factor=churn_factor), RepeatFactor(factor=repeat_factor)],
        stages=whom.pop("stages", tuple(join_at)),
        lasting=whom.pop("lasting", True),
        description=f"churn odds x{churn_factor:g}, repeat odds x{repeat_factor:g}",
        **whom,
    )


def referral_program(
    *,
    stage: str,
    to: str,
    ratio: float | None = None,
    open_probability: float | None = None,
    name: str = "referral_program",
    **whom: Any,
) -> Intervention:
    """Rewards customers for recommending: raises ``stage -> to`` by odds ``ratio``, or opens
    that transition with ``open_probability`` where the journey has none (one or the other)."""
    if (ratio is None) == (open_probability is None):
        raise ScenarioError(
            "give exactly one of ratio or open_probability",
            field=f"intervention '{name}'",
            fix="ratio for an existing transition, open_probability for a new one",
        )
    effect = (
        OddsRatio(stage=stage, to=to, ratio=ratio)
        if ratio is not None
        else NewTransition(stage=stage, to=to, probability=open_probability)
    )
    return _whom(
        name,
        [effect],
        lasting=whom.pop("lasting", True),
        description=f"more customers move {stage} -> {to}",
        **whom,
    )


def onboarding(
    *,
    stage: str = "consideration",
    dwell_factor: float = 0.7,
    to: str | None = None,
    ratio: float = 1.0,
    churn_factor: float = 1.0,
    name: str = "onboarding",
    **whom: Any,
) -> Intervention:
    """Better onboarding or support: time in ``stage`` x ``dwell_factor``, optionally odds of
    ``stage -> to`` x ``ratio`` and odds of churning x ``churn_factor``."""
    effects: list = [DwellFactor(stage=stage, factor=dwell_factor)]
    if to is not None and ratio != 1.0:
        effects.append(OddsRatio(stage=stage, to=to, ratio=ratio))
    if churn_factor != 1.0:
        effects.append(ChurnFactor(factor=churn_factor))
    return _whom(
        name,
        effects,
        lasting=whom.pop("lasting", True),
        description=f"{stage} time x{dwell_factor:g}",
        **whom,
    )


PRESETS: dict[str, Callable[..., Intervention]] = {
    "discount": discount,
    "ad_campaign": ad_campaign,
    "retargeting": retargeting,
    "loyalty_program": loyalty_program,
    "referral_program": referral_program,
    "onboarding": onboarding,
}


def preset(kind: str, **fields: Any) -> Intervention:
    """A library intervention by name, with its fields (as in a scenario file)."""
    if kind not in PRESETS:
        raise ScenarioError(
            f"unknown preset '{kind}'",
            field="intervention, field 'preset'",
            fix=suggest(kind, PRESETS),
        )
    try:
        return PRESETS[kind](**fields)
    except TypeError as err:
        raise ScenarioError(
            f"preset '{kind}': {err}".replace(f"{PRESETS[kind].__name__}() ", ""),
            field=f"intervention '{fields.get('name', kind)}'",
            fix=f"see help(sim.interventions.{kind}) for its fields",
        ) from None
