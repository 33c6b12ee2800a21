"""How customers enter the journey: a cohort at time 0, or arrivals over time by channel."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.errors import ScenarioError, check_unique, positive_number
from sim.model.journey import _pairs

#: Channel name given to the customers of a cohort.
COHORT_CHANNEL = "cohort"

#: Largest cohort a scenario may hold. Shares and rates are what a simulation estimates: a
#: representative sample of a larger population gives them (and no machine holds 10**9
#: customers' journeys at once).
MAX_COHORT = 10**9
#: Largest arrival rate of one channel (customers a day), for the same reason.
MAX_RATE_PER_DAY = 1e7


@dataclass(frozen=True, kw_only=True)
class Cohort:
    """``size`` customers enter at day 0, personas drawn by the personas' shares (0 only in a
    scenario whose customers come from a market)."""

    size: int

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ScenarioError(
                f"cohort size must be a whole number of at least 1, got {self.size!r}",
                field="acquisition, field 'cohort'",
                fix="e.g. cohort = 10000",
            )
        if self.size > MAX_COHORT:
            raise ScenarioError(
                f"cohort size {self.size:,} is more than the {MAX_COHORT:,} a scenario may hold",
                field="acquisition, field 'cohort'",
                fix="simulate a representative sample (shares and rates come out the same), "
                "e.g. cohort = 100000",
            )

    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names customers can come from."""
        return (COHORT_CHANNEL,)


@dataclass(frozen=True, kw_only=True)
class Channel:
    """An acquisition channel: Poisson arrivals at ``rate_per_day``, with its own persona mix.

    Without a ``persona_mix`` the personas' population shares are used.
    """

    name: str
    rate_per_day: float
    persona_mix: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"channel name must be non-empty text, got {self.name!r}",
                field="acquisition, field 'channel'",
                fix='e.g. name = "search"',
            )
        where = f"channel '{self.name}'"
        rate = positive_number(
            self.rate_per_day,
            "rate_per_day",
            f"{where}, field 'rate_per_day'",
            "give the expected number of new customers per day, e.g. 40",
        )
        if rate > MAX_RATE_PER_DAY:
            raise ScenarioError(
                f"rate_per_day {rate:g} is more than the {MAX_RATE_PER_DAY:g} customers a day "
                "a channel may bring",
                field=f"{where}, field 'rate_per_day'",
                fix="simulate a representative sample: scale the rates down (shares and "
                "conversion come out the same)",
            )
        object.__setattr__(self, "rate_per_day", rate)
        mix = _pairs(self.persona_mix, f"{where}, field 'persona_mix'")
        for persona, share in mix:
            if not 0 <= share <= 1:
                raise ScenarioError(
                    f"share of '{persona}' is {share}, outside [0, 1]",
                    field=f"{where}, field 'persona_mix'",
                )
        if mix:
            total = math.fsum(s for _, s in mix)
            if abs(total - 1) > 1e-6:
                raise ScenarioError(
                    f"persona shares sum to {total:.6g}, not 1",
                    field=f"{where}, field 'persona_mix'",
                    fix="make them sum to 1",
                )
        object.__setattr__(self, "persona_mix", mix)


@dataclass(frozen=True, kw_only=True)
class Arrivals:
    """Customers arrive over the horizon through one or more channels."""

    channels: tuple[Channel, ...]

    def __post_init__(self) -> None:
        channels = tuple(self.channels)
        if not channels:
            raise ScenarioError(
                "arrivals need at least one channel", field="acquisition, field 'channel'"
            )
        names = [c.name for c in channels]
        check_unique(names, "channel", "acquisition, field 'channel'")
        if COHORT_CHANNEL in names:
            raise ScenarioError(
                f"the channel name '{COHORT_CHANNEL}' is reserved for cohorts",
                field="acquisition, field 'channel'",
                fix="rename the channel",
            )
        object.__setattr__(self, "channels", channels)


Acquisition = Cohort | Arrivals
