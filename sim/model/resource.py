"""Shared capacity: sales reps, support agents, an onboarding team.

A stage that ``uses`` a resource makes each customer queue (first come, first served) for one
unit of it and hold that unit for the stage's dwell time, which is the service: the time in
the stage is the wait plus the service. A stage with a ``patience`` distribution lets a
customer who has waited that long give up and move to its ``abandon_to`` stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import ScenarioError


@dataclass(frozen=True, kw_only=True)
class Resource:
    """``capacity`` units (agents, reps) that customers of the stages using it share."""

    name: str
    capacity: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"resource name must be a non-empty string, got {self.name!r}",
                field="resource, field 'name'",
            )
        c = self.capacity
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ScenarioError(
                f"capacity must be a whole number of at least 1, got {c!r}",
                field=f"resource '{self.name}', field 'capacity'",
                fix="give the number of agents or reps, e.g. capacity = 5",
            )
