"""Shared capacity: sales reps, support agents, an onboarding team.

A stage that ``uses`` a resource makes each customer queue for one unit of it and hold that
unit for the stage's dwell time, which is the service: the time in the stage is the wait plus
the service. A stage with a ``patience`` distribution lets a customer who has waited that long
give up and move to its ``abandon_to`` stage.

**Capacity over time.** A resource has a fixed ``capacity``, or a weekly ``schedule`` (units
on Monday .. Sunday; a day runs from one whole day since day 0 to the next, and day 0 is the
weekday of the scenario's ``start_date``, or a Monday when it has none), and may change from
given days (``changes``: from day 90, 5 units; or a new weekly schedule). Capacity-change
interventions add units on top for their window. When the capacity in force drops, customers
in service finish their service; nobody starts service until fewer customers are in service
than the capacity in force (no one is pre-empted).

**Queue discipline.** ``"fifo"``: first come, first served. ``"priority"``: customers of the
persona with the lowest ``priority`` number are served first, first come first served within
a persona; personas not named come after all named ones. No pre-emption: a customer in
service keeps their unit when a customer of higher priority arrives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sim.errors import ScenarioError

#: Weekdays in schedule order (day 0 is a Monday unless the scenario's start_date says else).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Queue disciplines a resource may have.
DISCIPLINES = ("fifo", "priority")


def _units(value: object, field: str, fix: str, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        word = "at least 1" if least else "0 or more"
        raise ScenarioError(
            f"capacity must be a whole number {word}, got {value!r}", field=field, fix=fix
        )
    return value


def weekly_schedule(value: object, field: str) -> tuple[int, ...]:
    """A week of capacities, Monday first, from a list of 7 or a table ``{ mon = 5, ... }``."""
    fix = (
        "give units for each weekday, e.g. schedule = { mon = 5, tue = 5, wed = 5, thu = 5, "
        "fri = 5, sat = 2, sun = 0 } or a list of 7 numbers, Monday first"
    )
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in WEEKDAYS]
        missing = [d for d in WEEKDAYS if d not in value]
        if unknown or missing:
            problem = f"unknown day '{unknown[0]}'" if unknown else f"no units for {missing[0]}"
            raise ScenarioError(f"schedule: {problem}", field=field, fix=fix)
        days = [value[d] for d in WEEKDAYS]
    elif isinstance(value, list | tuple) and len(value) == 7:
        days = list(value)
    else:
        raise ScenarioError(f"schedule must list 7 days, got {value!r}", field=field, fix=fix)
    week = tuple(_units(d, field, fix) for d in days)
    if not any(week):
        raise ScenarioError("the schedule has no units on any day", field=field, fix=fix)
    return week


@dataclass(frozen=True, kw_only=True)
class CapacityFrom:
    """From ``day`` on, the resource has ``capacity`` units, or follows ``schedule``."""

    day: float
    capacity: int = 0
    schedule: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Resource:
    """Units (agents, reps) that customers of the stages using it share: ``capacity`` or a
    weekly ``schedule``, ``changes`` from given days, and a queue ``discipline`` (with
    ``priority`` numbers by persona, lower first). See the module documentation."""

    name: str
    capacity: int = 0
    schedule: tuple[int, ...] = ()
    changes: tuple[CapacityFrom, ...] = ()
    discipline: str = "fifo"
    priority: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"resource name must be a non-empty string, got {self.name!r}",
                field="resource, field 'name'",
            )
        where = f"resource '{self.name}'"
        if self.schedule:
            if self.capacity:
                raise ScenarioError(
                    "give either a capacity or a schedule, not both",
                    field=f"{where}, field 'capacity'",
                    fix="remove capacity = ... (the schedule gives the units of each day)",
                )
            week = weekly_schedule(self.schedule, f"{where}, field 'schedule'")
            object.__setattr__(self, "schedule", week)
        else:
            _units(
                self.capacity,
                f"{where}, field 'capacity'",
                "give the number of agents or reps, e.g. capacity = 5, or a weekly schedule",
                least=1,
            )
        object.__setattr__(self, "changes", self._changes())
        if self.discipline not in DISCIPLINES:
            raise ScenarioError(
                f"unknown queue discipline {self.discipline!r}",
                field=f"{where}, field 'discipline'",
                fix='give discipline = "fifo" (first come, first served) or "priority"',
            )
        items = self.priority.items() if isinstance(self.priority, Mapping) else self.priority
        ranks = []
        for persona, rank in items:
            if isinstance(rank, bool) or not isinstance(rank, int):
                raise ScenarioError(
                    f"priority of persona '{persona}' must be a whole number, got {rank!r}",
                    field=f"{where}, field 'priority'",
                    fix="e.g. priority = { business = 1, consumer = 2 } (lower is served first)",
                )
            ranks.append((str(persona), rank))
        object.__setattr__(self, "priority", tuple(ranks))
        if (self.discipline == "priority") != bool(ranks):
            raise ScenarioError(
                'a priority table needs discipline = "priority", and that discipline needs '
                "a priority table",
                field=f"{where}, field 'priority'" if ranks else f"{where}, field 'discipline'",
                fix='write discipline = "priority" and priority = { persona = 1, ... }',
            )

    def _changes(self) -> tuple[CapacityFrom, ...]:
        where = f"resource '{self.name}', field 'changes'"
        fix = "e.g. changes = [{ day = 90, capacity = 6 }] (or schedule = [...] instead)"
        out: list[CapacityFrom] = []
        last = 0.0
        for change in self.changes:
            if isinstance(change, Mapping):
                unknown = [k for k in change if k not in ("day", "capacity", "schedule")]
                if unknown:
                    raise ScenarioError(f"unknown field '{unknown[0]}'", field=where, fix=fix)
                change = CapacityFrom(**change)
            if not isinstance(change, CapacityFrom):
                raise ScenarioError(
                    f"a change must be a table, got {change!r}", field=where, fix=fix
                )
            day = change.day
            if (
                isinstance(day, bool)
                or not isinstance(day, int | float)
                or not math.isfinite(day)
                or day <= last
            ):
                raise ScenarioError(
                    f"change days must be numbers after day 0, in increasing order, got {day!r}",
                    field=where,
                    fix=fix,
                )
            last = float(day)
            if bool(change.schedule) == bool(change.capacity):
                raise ScenarioError(
                    f"the change on day {day:g} needs either capacity or schedule",
                    field=where,
                    fix=fix,
                )
            if change.schedule:
                week = weekly_schedule(change.schedule, where)
                out.append(CapacityFrom(day=float(day), schedule=week))
            else:
                units = _units(change.capacity, where, fix, least=1)
                out.append(CapacityFrom(day=float(day), capacity=units))
        return tuple(out)

    @property
    def varies(self) -> bool:
        """The capacity changes over time by itself (a schedule or changes)."""
        return bool(self.schedule or self.changes)

    def rank(self, persona: str) -> int:
        """Queue priority of a persona's customers (lower first; unnamed personas last)."""
        ranks = dict(self.priority)
        return ranks.get(persona, max(ranks.values(), default=0) + 1)

    def plan(self, horizon_days: float, first_weekday: int = 0) -> tuple[tuple[float, int], ...]:
        """Capacity in force over [0, ``horizon_days``): (from day, units) at each change,
        the first at day 0; ``first_weekday`` is day 0's weekday (0 Monday .. 6 Sunday)."""
        periods = [(0.0, self.capacity, self.schedule)]
        periods += [(c.day, c.capacity, c.schedule) for c in self.changes if c.day < horizon_days]
        steps: list[tuple[float, int]] = []
        for i, (start, units, week) in enumerate(periods):
            end = periods[i + 1][0] if i + 1 < len(periods) else horizon_days
            if not week:
                steps.append((start, units))
                continue
            day = start
            while day < end:
                steps.append((day, week[(first_weekday + math.floor(day)) % 7]))
                day = math.floor(day) + 1.0
        # one step per change of units
        return tuple(s for i, s in enumerate(steps) if i == 0 or s[1] != steps[i - 1][1])
