"""Engines by name, so ``sim.run(..., engine=NAME)`` picks one.

An engine turns a compiled scenario, a seed and a replication number into an
:class:`~sim.events.EventLog` that passes the event-log contract. ``cannot_run`` says, for a
scenario, which feature keeps the engine from running it (None: it can).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.engine import vectorised
from sim.engine.compiled import CompiledScenario
from sim.engine.simpy_engine import simulate
from sim.errors import ScenarioError, suggest
from sim.events import EventLog
from sim.model.scenario import Scenario

#: The engine used when a scenario does not say: the SimPy reference engine runs everything.
DEFAULT = "simpy"


@dataclass(frozen=True)
class Engine:
    """A named engine: how it simulates one replication, and which scenarios it cannot run."""

    name: str
    simulate: Callable[[CompiledScenario, int, int], EventLog]
    cannot_run: Callable[[Scenario], str | None]
    description: str = ""


def _runs_everything(scenario: Scenario) -> str | None:
    return None


ENGINES: dict[str, Engine] = {
    "simpy": Engine(
        "simpy",
        simulate,
        _runs_everything,
        "SimPy discrete-event engine: the reference, runs every scenario",
    ),
    "vectorised": Engine(
        "vectorised",
        vectorised.simulate,
        vectorised.cannot_run,
        "numpy engine: all customers of a replication at once; customers who do not share "
        "anything (no budgets); the same log as the SimPy engine for the same seed",
    ),
}


def choose_engine(scenario: Scenario, name: str = "auto") -> Engine:
    """The engine called ``name`` (checked against the scenario), or with 'auto' the fastest
    registered engine that can run it."""
    if name == "auto":
        for engine in ENGINES.values():
            if engine.name != DEFAULT and engine.cannot_run(scenario) is None:
                return engine
        return ENGINES[DEFAULT]
    if name not in ENGINES:
        raise ScenarioError(
            f"unknown engine {name!r}", field="engine", fix=suggest(name, [*ENGINES, "auto"])
        )
    engine = ENGINES[name]
    reason = engine.cannot_run(scenario)
    if reason is not None:
        raise ScenarioError(
            f"the {name} engine cannot run scenario '{scenario.name}': {reason}",
            field="engine",
            fix="use engine='auto' or engine='simpy'",
        )
    return engine


def simulate_replication(
    engine: str, compiled: CompiledScenario, seed: int, replication: int
) -> EventLog:
    """One replication on the named engine (a module-level function, so worker processes
    can run it)."""
    return ENGINES[engine].simulate(compiled, seed, replication)
