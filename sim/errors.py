"""The one error type users see for bad input, and helpers that phrase it well."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable


class ScenarioError(ValueError):
    """Bad scenario input: names where (file and field), what is wrong, and how to fix it.

    ``str(error)`` is the whole message a user reads, for example::

        scenarios/shop.toml: stage 'intent', field 'next': probabilities sum to 0.9, not 1;
        adjust them so they sum to 1 (off by +0.1)
    """

    def __init__(self, problem: str, *, field: str = "", fix: str = "", source: str = "") -> None:
        self.problem = problem
        self.field = field
        self.fix = fix
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [p for p in (self.source, self.field) if p]
        where = ": ".join(parts)
        text = f"{where}: {self.problem}" if where else self.problem
        if self.fix:
            text += f"; {self.fix}"
        return text

    def located(self, source: str) -> ScenarioError:
        """The same error, naming the file it came from (kept if one is named already)."""
        if self.source:
            return self
        return ScenarioError(self.problem, field=self.field, fix=self.fix, source=source)

    def __reduce__(self):  # keeps the keyword-only fields across worker processes
        return (_rebuild, (self.problem, self.field, self.fix, self.source))


class EventLogError(ScenarioError):
    """An event log breaks its contract (:mod:`sim.events`): names the file or column, the
    first offending rows, and the fix."""

    def located(self, source: str) -> EventLogError:
        """The same error, naming the file it came from (kept if one is named already)."""
        if self.source:
            return self
        return EventLogError(self.problem, field=self.field, fix=self.fix, source=source)

    def __reduce__(self):
        return (_rebuild_log_error, (self.problem, self.field, self.fix, self.source))


def _rebuild_log_error(problem: str, field: str, fix: str, source: str) -> EventLogError:
    return EventLogError(problem, field=field, fix=fix, source=source)


def check_count(value: object, name: str) -> int:
    """A whole number >= 1, or a ScenarioError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScenarioError(f"{name} must be a whole number >= 1, got {value!r}", field=name)
    return value


def check_seed(seed: object) -> int:
    """A whole number >= 0, or a ScenarioError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ScenarioError(f"seed must be a whole number >= 0, got {seed!r}", field="seed")
    return seed


def _rebuild(problem: str, field: str, fix: str, source: str) -> ScenarioError:
    return ScenarioError(problem, field=field, fix=fix, source=source)


def suggest(name: str, known: Iterable[str]) -> str:
    """A 'did you mean' hint for an unknown name, listing what is known when nothing is close."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "known names: " + ", ".join(repr(k) for k in known)


def check_unique(names: Iterable[str], kind: str, field: str) -> None:
    """A ScenarioError naming the first name given twice (stages, personas, channels, ...)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ScenarioError(
                f"{kind} '{name}' is defined twice",
                field=field,
                fix=f"give every {kind} its own name",
            )
        seen.add(name)


def positive_number(value: object, name: str, field: str, fix: str = "") -> float:
    """``value`` as a float if it is a finite number > 0, else a ScenarioError with the value."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ScenarioError(
            f"{name} must be a positive number, got {value!r}", field=field, fix=fix
        )
    return float(value)
