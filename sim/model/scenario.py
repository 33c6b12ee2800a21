"""A scenario: journey, personas, effects, acquisition, horizon and seed."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, replace
from typing import Any

from sim.errors import ScenarioError, check_unique, suggest
from sim.model.acquisition import Acquisition, Arrivals, Cohort
from sim.model.intervention import Intervention
from sim.model.journey import Journey
from sim.model.logit import check_effects, check_interventions
from sim.model.loops import check_zero_time_loops
from sim.model.persona import Effect, Persona

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
        return self.replace(acquisition=Cohort(size=n))

    @property
    def persona_names(self) -> tuple[str, ...]:
        """Persona names in definition order."""
        return tuple(p.name for p in self.personas)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the channels customers come from."""
        if isinstance(self.acquisition, Cohort):
            return self.acquisition.channels
        return tuple(c.name for c in self.acquisition.channels)

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
