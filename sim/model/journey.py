"""Journey stages and the directed graph they form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.errors import ScenarioError, check_unique, suggest
from sim.model.distributions import Distribution, Fixed, parse_distribution

#: Tolerance on "probabilities sum to 1": loose enough for hand-written decimals, tight enough
#: to catch a forgotten branch (the smallest sensible probability is far above it).
PROBABILITY_TOLERANCE = 1e-6


def _pairs(value: Any, field_name: str) -> tuple[tuple[str, float], ...]:
    """Mapping (or pairs) of name -> number as a tuple of pairs, keeping the order given."""
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        try:
            items = [(k, v) for k, v in value]
        except (TypeError, ValueError):
            raise ScenarioError(
                f"expected a table of name = number, got {value!r}",
                field=field_name,
                fix="write it as { name = 0.5, other = 0.5 }",
            ) from None
    out = []
    for key, number in items:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ScenarioError(
                f"{key!r} must be a number, got {number!r}", field=field_name, fix="give a number"
            )
        out.append((str(key), float(number)))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class Stage:
    """A journey stage: how long customers stay (``dwell``, days) and where they go next.

    ``next`` maps each following stage to its base probability (they sum to 1). A ``purchase``
    stage draws an order value on every entry; an ``absorbing`` stage ends the journey. A stage
    that ``uses`` a resource queues its customers for one unit, held for the dwell time; with
    a ``patience`` distribution (days) a customer who waits longer moves to ``abandon_to``.
    """

    name: str
    next: tuple[tuple[str, float], ...] = ()
    dwell: Distribution = field(default_factory=lambda: Fixed(0.0))
    purchase: bool = False
    absorbing: bool = False
    uses: str = ""
    patience: Distribution | None = None
    abandon_to: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScenarioError(
                f"stage name must be a non-empty string, got {self.name!r}", field="stage name"
            )
        where = f"stage '{self.name}'"
        object.__setattr__(self, "next", _pairs(self.next, f"{where}, field 'next'"))
        object.__setattr__(
            self, "dwell", parse_distribution(self.dwell, field=f"{where}, field 'dwell'")
        )
        self._check_queue(where)
        if self.absorbing:
            if self.next:
                raise ScenarioError(
                    "an absorbing stage has no next stages",
                    field=f"{where}, field 'next'",
                    fix="remove 'next' or set absorbing = false",
                )
            return
        if not self.next:
            raise ScenarioError(
                "a stage needs next stages or must be absorbing",
                field=f"{where}",
                fix="add next = { stage = probability, ... } or absorbing = true",
            )
        seen = set()
        for target, p in self.next:
            if target in seen:
                raise ScenarioError(f"'{target}' is listed twice", field=f"{where}, field 'next'")
            seen.add(target)
            if not math.isfinite(p) or p < 0 or p > 1:
                raise ScenarioError(
                    f"probability of '{target}' is {p}, outside [0, 1]",
                    field=f"{where}, field 'next'",
                    fix="give probabilities between 0 and 1",
                )
        total = math.fsum(p for _, p in self.next)
        if abs(total - 1.0) > PROBABILITY_TOLERANCE:
            raise ScenarioError(
                f"probabilities sum to {total:.6g}, not 1",
                field=f"{where}, field 'next'",
                fix=f"adjust them so they sum to 1 (off by {1.0 - total:+.6g})",
            )

    def _check_queue(self, where: str) -> None:
        if not isinstance(self.uses, str):
            raise ScenarioError(
                f"uses must be a resource name, got {self.uses!r}", field=f"{where}, field 'uses'"
            )
        if self.patience is not None:
            object.__setattr__(
                self,
                "patience",
                parse_distribution(self.patience, field=f"{where}, field 'patience'"),
            )
            if not self.uses:
                raise ScenarioError(
                    "patience needs a queue: the stage uses no resource",
                    field=f"{where}, field 'patience'",
                    fix='add uses = "<resource>" or remove patience',
                )
            if not self.abandon_to:
                raise ScenarioError(
                    "customers who run out of patience need a stage to go to",
                    field=f"{where}, field 'abandon_to'",
                    fix='add abandon_to = "lost" (or another stage)',
                )
        elif self.abandon_to:
            raise ScenarioError(
                "abandon_to without patience: nobody would abandon",
                field=f"{where}, field 'abandon_to'",
                fix='add patience = "exponential(mean=0.5)" or remove abandon_to',
            )
        if self.absorbing and self.uses:
            raise ScenarioError(
                "an absorbing stage cannot use a resource",
                field=f"{where}, field 'uses'",
                fix="remove uses or set absorbing = false",
            )

    @property
    def probabilities(self) -> dict[str, float]:
        """Base transition probabilities, next stage -> probability."""
        return dict(self.next)


@dataclass(frozen=True, kw_only=True)
class Journey:
    """A directed graph of stages. Customers enter at ``entry`` (default: the first stage)."""

    stages: tuple[Stage, ...]
    entry: str = ""
    name: str = ""

    def __post_init__(self) -> None:
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages:
            raise ScenarioError("a journey needs at least one stage", field="stage")
        names = [s.name for s in stages]
        check_unique(names, "stage", "stage")
        if not self.entry:
            object.__setattr__(self, "entry", names[0])
        if self.entry not in names:
            raise ScenarioError(
                f"unknown entry stage '{self.entry}'", field="entry", fix=suggest(self.entry, names)
            )
        for stage in stages:
            for target, _ in stage.next:
                if target not in names:
                    raise ScenarioError(
                        f"unknown stage '{target}'",
                        field=f"stage '{stage.name}', field 'next'",
                        fix=suggest(target, names),
                    )
            if stage.abandon_to and stage.abandon_to not in names:
                raise ScenarioError(
                    f"unknown stage '{stage.abandon_to}'",
                    field=f"stage '{stage.name}', field 'abandon_to'",
                    fix=suggest(stage.abandon_to, names),
                )
        if self.stage(self.entry).absorbing:
            raise ScenarioError(
                f"the entry stage '{self.entry}' is absorbing",
                field="entry",
                fix="start the journey at a transient stage",
            )
        self._check_graph()

    def _check_graph(self) -> None:
        edges = {
            s.name: [t for t, p in s.next if p > 0] + ([s.abandon_to] if s.abandon_to else [])
            for s in self.stages
        }
        reached = _closure([self.entry], edges)
        for s in self.stages:
            if s.name not in reached:
                raise ScenarioError(
                    f"cannot be reached from the entry stage '{self.entry}'",
                    field=f"stage '{s.name}'",
                    fix="add a transition into it with a positive probability, or remove it",
                )
        reverse: dict[str, list[str]] = {s.name: [] for s in self.stages}
        for src, targets in edges.items():
            for t in targets:
                reverse[t].append(src)
        ends = [s.name for s in self.stages if s.absorbing]
        if not ends:
            raise ScenarioError(
                "the journey has no absorbing end",
                field="stage",
                fix="add stages such as 'lost' and 'churned' with absorbing = true",
            )
        can_end = _closure(ends, reverse)
        for s in self.stages:
            if s.name not in can_end:
                raise ScenarioError(
                    "no path leads from it to an absorbing end (customers would loop forever)",
                    field=f"stage '{s.name}', field 'next'",
                    fix="give it, or a stage after it, a positive probability into an absorbing "
                    "stage",
                )

    @property
    def names(self) -> tuple[str, ...]:
        """Stage names in definition order."""
        return tuple(s.name for s in self.stages)

    def index(self, name: str) -> int:
        """Position of a stage, with a helpful error for an unknown name."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ScenarioError(f"unknown stage '{name}'", fix=suggest(name, self.names)) from None

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        return self.stages[self.index(name)]

    @property
    def transient(self) -> tuple[str, ...]:
        """Stages customers pass through (not absorbing)."""
        return tuple(s.name for s in self.stages if not s.absorbing)

    @property
    def absorbing(self) -> tuple[str, ...]:
        """Stages where journeys end."""
        return tuple(s.name for s in self.stages if s.absorbing)

    @property
    def purchase_stages(self) -> tuple[str, ...]:
        """Stages whose entry is a purchase."""
        return tuple(s.name for s in self.stages if s.purchase)


def _closure(start: list[str], edges: Mapping[str, list[str]]) -> set[str]:
    seen = set(start)
    todo = list(start)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
