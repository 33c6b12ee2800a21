"""Limits every engine keeps: a customer going round a loop in no time is stopped with an
error naming the loop."""

from __future__ import annotations

from sim.engine.compiled import CompiledScenario
from sim.engine.log_writer import stage_info
from sim.errors import ScenarioError

#: Moves one customer may make in a replication. Validation refuses loops that go round in
#: zero time; this catches what it cannot see (an intervention raising a loop's odds), which
#: would otherwise spin while the clock stands still and the horizon never comes.
MAX_MOVES_PER_CUSTOMER = 1_000_000


def loop_of(c: CompiledScenario, stage: int) -> list[str]:
    """Stages on a loop with ``stage``: reachable from it and leading back to it (by the
    journey's moves and those interventions open)."""
    following: dict[int, set[int]] = {i: set() for i in range(len(c.names))}
    for a, b in stage_info(c.scenario)["edges"]:
        following[a].add(b)

    def reach(start: int) -> set[int]:
        seen, todo = set(), [start]
        while todo:
            for nxt in following[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    return [c.names[i] for i in sorted(reach(stage)) if stage in reach(i)]


def runaway(c: CompiledScenario, k: int, stage: int, now: float, limit: int) -> ScenarioError:
    """The error for a customer who made more than ``limit`` moves, naming their loop."""
    loop = loop_of(c, stage) or [c.names[stage]]
    return ScenarioError(
        f"customer {k} made more than {limit:,} moves by day {now:g}, going round "
        + " -> ".join(f"'{n}'" for n in (*loop, loop[0]))
        + ": a loop that takes (almost) no time, which the horizon cannot stop",
        field=f"stage '{c.names[stage]}', field 'dwell'",
        fix="give a stage of the loop a longer dwell time, or lower the odds of going round "
        "(check the interventions acting on it)",
    )
