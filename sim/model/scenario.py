"""A scenario: journey, personas, effects, acquisition, horizon and seed."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, replace
from typing import Any

from sim.errors import ScenarioError, check_unique, suggest
from sim.model.acquisition import Acquisition, Arrivals, Cohort
from sim.model.intervention import (
    CapacityChange,
    Intervention,
    OutcomeOddsRatio,
    ReferralRateFactor,
    SatisfactionChange,
)
from sim.model.journey import Journey
from sim.model.logit import check_effects, check_interventions, forward_moves
from sim.model.loops import check_zero_time_loops
from sim.model.market import (
    MARKET_CHANNEL,
    REFERRAL_CHANNEL,
    WORD_OF_MOUTH_CHANNEL,
    Market,
    NegativeWordOfMouth,
    Referrals,
    WordOfMouth,
)
from sim.model.persona import Effect, Persona
from sim.model.resource import Resource
from sim.model.satisfaction import Satisfaction

DEFAULT_PERSONA = Persona(name="everyone", share=1.0)

#: Longest horizon (days; about 27,000 years). Customer journeys last days to decades: a
#: longer horizon is a mistake of units, and whole journeys are what sim.expected answers.
MAX_HORIZON_DAYS = 1e7


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Everything one simulation needs. Build it in Python or load it with :meth:`from_toml`.

    Model objects are immutable: make variants with :meth:`replace` (``dataclasses.replace``).
    """

    name: str
    journey: Journey
    acquisition: Acquisition
    personas: tuple[Persona, ...] = (DEFAULT_PERSONA,)
    effects: tuple[Effect, ...] = ()
    interventions: tuple[Intervention, ...] = ()
    horizon_days: float = 365.0
    seed: int = 0
    description: str = ""
    #: calendar date of day 0 (ISO 8601, e.g. "2025-01-01"), so logs carry dates; None: none
    start_date: str | None = None
    #: people who are not yet customers (None: customers come only from ``acquisition``)
    market: Market | None = None
    #: customers in some stages bring in the market's people (needs a ``market``)
    word_of_mouth: WordOfMouth | None = None
    #: customers in some stages refer people of the market (needs a ``market``)
    referrals: Referrals | None = None
    #: shared capacity that stages may use (``Stage.uses``)
    resources: tuple[Resource, ...] = ()
    #: a score per customer that waiting moves and that moves decisions
    satisfaction: Satisfaction | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"the scenario's name must be non-empty text, got {self.name!r}",
                field="scenario, field 'name'",
                fix='e.g. name = "baseline" (tables, plots and comparisons show it)',
            )
        for iv in tuple(self.interventions):
            if not isinstance(iv, Intervention):
                raise ScenarioError(
                    f"interventions must be Intervention objects, got {type(iv).__name__} {iv!r}",
                    field="interventions",
                    fix="pass objects such as sim.interventions.discount(depth=0.1) or "
                    "sim.Intervention(name=..., effects=[...]); a file's interventions come "
                    "with sim.load_scenario(path).interventions",
                )
        personas = tuple(self.personas)
        object.__setattr__(self, "personas", personas)
        object.__setattr__(self, "effects", tuple(self.effects))
        object.__setattr__(self, "interventions", tuple(self.interventions))
        if not personas:
            raise ScenarioError("a scenario needs at least one persona", field="persona")
        names = [p.name for p in personas]
        check_unique(names, "persona", "persona")
        total = math.fsum(p.share for p in personas)
        if abs(total - 1) > 1e-6:
            raise ScenarioError(
                f"persona shares sum to {total:.6g}, not 1",
                field="persona, field 'share'",
                fix="make the shares of all personas sum to 1",
            )
        h = self.horizon_days
        if isinstance(h, bool) or not isinstance(h, int | float) or not math.isfinite(h) or h <= 0:
            raise ScenarioError(
                f"horizon_days must be a positive number of days, got {h!r}",
                field="scenario, field 'horizon_days'",
                fix="e.g. horizon_days = 365",
            )
        if h > MAX_HORIZON_DAYS:
            raise ScenarioError(
                f"horizon_days {h:g} is more than the {MAX_HORIZON_DAYS:g} days a run may last",
                field="scenario, field 'horizon_days'",
                fix="give the time you want to follow customers for, e.g. horizon_days = 3650 "
                "(ten years)",
            )
        object.__setattr__(self, "horizon_days", float(h))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ScenarioError(
                f"seed must be a whole number >= 0, got {self.seed!r}",
                field="scenario, field 'seed'",
            )
        object.__setattr__(self, "start_date", _iso_date(self.start_date))
        if not isinstance(self.acquisition, Cohort | Arrivals):
            raise ScenarioError("acquisition must be a Cohort or Arrivals", field="acquisition")
        self._check_market()
        self._check_resources()
        self._check_satisfaction()
        for persona in personas:
            for stage, _ in persona.dwell_factors:
                if stage not in self.journey.names:
                    raise ScenarioError(
                        f"unknown stage '{stage}'",
                        field=f"persona '{persona.name}', field 'dwell_factors'",
                        fix=suggest(stage, self.journey.names),
                    )
        if isinstance(self.acquisition, Arrivals):
            for channel in self.acquisition.channels:
                for persona, _ in channel.persona_mix:
                    if persona not in names:
                        raise ScenarioError(
                            f"unknown persona '{persona}'",
                            field=f"channel '{channel.name}', field 'persona_mix'",
                            fix=suggest(persona, names),
                        )
        check_effects(self.journey, personas, self.effects)
        check_zero_time_loops(self.journey, personas, self.effects)
        check_interventions(
            self.journey,
            names,
            self.channel_names,
            self.interventions,
            isinstance(self.acquisition, Arrivals),
        )

    def _check_market(self) -> None:
        market, wom = self.market, self.word_of_mouth
        if market is not None and not isinstance(market, Market):
            raise ScenarioError("market must be a Market", field="market")
        if wom is not None and not isinstance(wom, WordOfMouth):
            raise ScenarioError("word_of_mouth must be a WordOfMouth", field="word_of_mouth")
        if isinstance(self.acquisition, Cohort) and self.acquisition.size == 0 and market is None:
            raise ScenarioError(
                "cohort size must be a whole number of at least 1 (0 only beside a market)",
                field="acquisition, field 'cohort'",
                fix="e.g. cohort = 10000, or add a [market] section",
            )
        if wom is not None:
            if market is None:
                raise ScenarioError(
                    "word of mouth needs a market of people who are not yet customers",
                    field="word_of_mouth",
                    fix="add a [market] section with size = ...",
                )
            for stage in wom.stages:
                if stage not in self.journey.names:
                    raise ScenarioError(
                        f"unknown stage '{stage}'",
                        field="word_of_mouth, field 'stages'",
                        fix=suggest(stage, self.journey.names),
                    )
        if wom is not None and wom.negative is not None:
            self._check_negative(wom.negative)
        self._check_referrals()
        if market is not None and isinstance(self.acquisition, Arrivals):
            for name in (MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL, REFERRAL_CHANNEL):
                if name in (c.name for c in self.acquisition.channels):
                    raise ScenarioError(
                        f"the channel name '{name}' is reserved for customers from the market",
                        field="acquisition, field 'channel'",
                        fix="rename the channel",
                    )

    def _check_negative(self, neg: NegativeWordOfMouth) -> None:
        where = "word_of_mouth.negative"
        if self.satisfaction is None:
            raise ScenarioError(
                "negative word of mouth needs satisfaction scores (detractors churn below the "
                "threshold)",
                field=where,
                fix="add a [satisfaction] section",
            )
        forward = forward_moves(self.journey)
        for stage in neg.stages or (self.journey.entry,):
            if stage not in self.journey.names:
                raise ScenarioError(
                    f"unknown stage '{stage}'",
                    field=f"{where}, field 'stages'",
                    fix=suggest(stage, self.journey.names),
                )
            if not forward[self.journey.index(stage)].any():
                raise ScenarioError(
                    f"no way out of '{stage}' leads toward a purchase: the odds ratio would "
                    "change nothing there",
                    field=f"{where}, field 'stages'",
                    fix="name the stages where customers decide whether to go on",
                )

    def _check_referrals(self) -> None:
        ref = self.referrals
        if ref is not None:
            if not isinstance(ref, Referrals):
                raise ScenarioError("referrals must be Referrals", field="referrals")
            if self.market is None:
                raise ScenarioError(
                    "referrals need a market of people who are not yet customers",
                    field="referrals",
                    fix="add a [market] section with size = ...",
                )
            for stage in ref.stages:
                if stage not in self.journey.names:
                    raise ScenarioError(
                        f"unknown stage '{stage}'",
                        field="referrals, field 'stages'",
                        fix=suggest(stage, self.journey.names),
                    )
            for persona, _ in ref.persona_factors:
                if persona not in self.persona_names:
                    raise ScenarioError(
                        f"unknown persona '{persona}'",
                        field="referrals, field 'persona_factors'",
                        fix=suggest(persona, self.persona_names),
                    )
        for iv in self.interventions:
            if ref is None and (iv.of_kind(ReferralRateFactor) or iv.cost.per_referral):
                raise ScenarioError(
                    "a referral rate factor or reward needs customers who make referrals",
                    field=f"intervention '{iv.name}'",
                    fix="add a [referrals] section (and a [market])",
                )

    def _check_satisfaction(self) -> None:
        sat = self.satisfaction
        for iv in self.interventions:
            acts = iv.of_kind(SatisfactionChange) + iv.of_kind(OutcomeOddsRatio)
            if acts and sat is None:
                raise ScenarioError(
                    f"{acts[0].kind} needs customers with a satisfaction score",
                    field=f"intervention '{iv.name}'",
                    fix="add a [satisfaction] section",
                )
            if iv.cost.per_credit and not iv.of_kind(SatisfactionChange):
                raise ScenarioError(
                    "a cost per credit needs a satisfaction change to credit",
                    field=f"intervention '{iv.name}', field 'cost'",
                    fix='add { kind = "satisfaction_change", amount = 0.4, ... }',
                )
            if iv.cost.per_credit and iv.budget is not None:
                raise ScenarioError(
                    "a budget does not yet cap credits paid per satisfaction change",
                    field=f"intervention '{iv.name}', field 'budget'",
                    fix="drop the budget, or split the credit into an intervention without one",
                )
        if sat is None:
            return
        if sat.referral_rate_per_point and self.referrals is None:
            raise ScenarioError(
                "referral_rate_per_point moves referrals, but no one makes referrals",
                field="satisfaction, field 'referral_rate_per_point'",
                fix="add a [referrals] section, or remove referral_rate_per_point",
            )
        outcomes = dict(sat.outcomes)
        for stage in outcomes:
            if stage not in self.journey.names:
                raise ScenarioError(
                    f"unknown stage '{stage}'",
                    field="satisfaction, field 'outcomes'",
                    fix=suggest(stage, self.journey.names),
                )
            if self.journey.stage(stage).absorbing:
                raise ScenarioError(
                    f"'{stage}' is an end stage: nobody visits it to be served",
                    field="satisfaction, field 'outcomes'",
                    fix="give outcomes to a stage customers leave",
                )
        every = sat.outcome_names()
        for iv in self.interventions:
            for e in iv.of_kind(SatisfactionChange) + iv.of_kind(OutcomeOddsRatio):
                where = f"intervention '{iv.name}', effect {e.kind}"
                known = [o.name for o in outcomes.get(e.stage, ())] if e.stage else every
                named = e.outcome or isinstance(e, OutcomeOddsRatio)
                if named and e.outcome not in known:
                    raise ScenarioError(
                        f"unknown outcome '{e.outcome}'"
                        + (f" at stage '{e.stage}'" if e.stage else ""),
                        field=where,
                        fix=suggest(e.outcome, known)
                        if known
                        else "give the stage outcomes in [satisfaction.outcomes]",
                    )
        if not isinstance(sat, Satisfaction):
            raise ScenarioError("satisfaction must be Satisfaction", field="satisfaction")
        for persona, _ in sat.persona_start:
            if persona not in self.persona_names:
                raise ScenarioError(
                    f"unknown persona '{persona}'",
                    field="satisfaction, field 'persona_start'",
                    fix=suggest(persona, self.persona_names),
                )
        for e in sat.effects:
            where = f"satisfaction effect on '{e.stage}' -> '{e.to}'"
            if e.stage not in self.journey.names:
                raise ScenarioError(
                    f"unknown stage '{e.stage}'",
                    field=where,
                    fix=suggest(e.stage, self.journey.names),
                )
            targets = [t for t, p in self.journey.stage(e.stage).next if p > 0]
            if e.to not in targets:
                raise ScenarioError(
                    f"unknown transition '{e.stage}' -> '{e.to}'",
                    field=where,
                    fix=f"'{e.stage}' leads to {', '.join(targets) or 'nothing'}",
                )

    def _check_resources(self) -> None:
        resources = tuple(self.resources)
        object.__setattr__(self, "resources", resources)
        if not all(isinstance(r, Resource) for r in resources):
            raise ScenarioError("resources must be Resource objects", field="resource")
        names = [r.name for r in resources]
        check_unique(names, "resource", "resource")
        for r in resources:
            for persona, _ in r.priority:
                if persona not in self.persona_names:
                    raise ScenarioError(
                        f"unknown persona '{persona}'",
                        field=f"resource '{r.name}', field 'priority'",
                        fix=suggest(persona, self.persona_names),
                    )
        for iv in self.interventions:
            for e in iv.of_kind(CapacityChange):
                if e.resource not in names:
                    raise ScenarioError(
                        f"unknown resource '{e.resource}'",
                        field=f"intervention '{iv.name}', effect capacity_change",
                        fix=suggest(e.resource, names) if names else "add a [[resource]] table",
                    )
            if iv.cost.per_unit_day and not iv.of_kind(CapacityChange):
                raise ScenarioError(
                    "a cost per unit-day needs a capacity change",
                    field=f"intervention '{iv.name}', field 'cost'",
                    fix='add { kind = "capacity_change", resource = "...", units = 2 }',
                )
        for st in self.journey.stages:
            if st.uses and st.uses not in names:
                raise ScenarioError(
                    f"unknown resource '{st.uses}'",
                    field=f"stage '{st.name}', field 'uses'",
                    fix=suggest(st.uses, names) if names else "add a [[resource]] table",
                )

    @property
    def interacting(self) -> str | None:
        """Why this scenario's customers cannot be simulated one by one (None: they can):
        a finite market, word of mouth, a stage that uses a resource. Engines that simulate
        customers independently must refuse a scenario with a reason."""
        if self.word_of_mouth is not None and self.word_of_mouth.rate > 0:
            return "word of mouth (customers bring in customers)"
        if self.referrals is not None and self.referrals.rate > 0:
            return "referrals (customers refer customers)"
        if self.market is not None:
            return "a finite market (customers created during the run)"
        if self.satisfaction is not None:
            return "satisfaction (a score per customer that waiting moves)"
        used = [st.uses for st in self.journey.stages if st.uses]
        if used:
            return f"resource '{used[0]}' (customers queue for shared capacity)"
        return None

    # -- variants ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> Scenario:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def with_interventions(self, *interventions: Intervention) -> Scenario:
        """The scenario with these interventions added to its own."""
        return self.replace(interventions=(*self.interventions, *interventions))

    def with_customers(self, n: int) -> Scenario:
        """The same scenario with a cohort of ``n`` customers."""
        if not isinstance(self.acquisition, Cohort):
            raise ScenarioError(
                "the number of customers can only be set for a cohort; this scenario has "
                "arrivals by channel",
                field="acquisition",
                fix="change the channels' rate_per_day instead",
            )
        if isinstance(n, float) and n.is_integer():
            n = int(n)  # 1e6 is how analysts write a million
        return self.replace(acquisition=Cohort(size=n))

    @property
    def first_weekday(self) -> int:
        """Weekday of day 0 (0 Monday .. 6 Sunday): that of ``start_date``, else Monday."""
        if self.start_date is None:
            return 0
        return datetime.date.fromisoformat(self.start_date[:10]).weekday()

    @property
    def persona_names(self) -> tuple[str, ...]:
        """Persona names in definition order."""
        return tuple(p.name for p in self.personas)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels customers come from."""
        if isinstance(self.acquisition, Cohort):
            names = self.acquisition.channels
        else:
            names = tuple(c.name for c in self.acquisition.channels)
        if self.market is not None:
            names = (*names, MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL)
            if self.referrals is not None:
                names = (*names, REFERRAL_CHANNEL)
        return names

    def persona_mix(self, channel: str | None = None) -> tuple[float, ...]:
        """Persona probabilities for a channel's customers (population shares by default)."""
        if isinstance(self.acquisition, Arrivals) and channel is not None:
            for c in self.acquisition.channels:
                if c.name == channel and c.persona_mix:
                    mix = dict(c.persona_mix)
                    return tuple(mix.get(p.name, 0.0) for p in self.personas)
        return tuple(p.share for p in self.personas)


def _iso_date(value: object) -> str | None:
    """A start date as ISO 8601 text (a date, or a date and time), or None."""
    if value is None:
        return None
    if isinstance(value, datetime.date):  # a TOML date or datetime, or a Python one
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return parsed.date().isoformat() if len(text) == 10 else parsed.isoformat()
    raise ScenarioError(
        f"start_date must be a calendar date, got {value!r}",
        field="scenario, field 'start_date'",
        fix='write it as start_date = "2025-01-01" (ISO 8601)',
    )
