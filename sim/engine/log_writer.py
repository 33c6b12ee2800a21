"""The one event-log writer of the engines: moves recorded during a run plus entry rows."""

from __future__ import annotations

from array import array

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.streams import Customers
from sim.events import ENTRY, EventLog
from sim.model.intervention import NewTransition
from sim.model.scenario import Scenario


def stage_info(scenario: Scenario) -> dict:
    """The stage metadata a log carries: names, purchase and end flags, and the moves a
    customer may make (the journey's edges and those interventions open)."""
    journey = scenario.journey
    edges = {(st.name, t) for st in journey.stages for t, p in st.next if p > 0}
    edges |= {(e.stage, e.to) for iv in scenario.interventions for e in iv.of_kind(NewTransition)}
    return {
        "stages": journey.names,
        "purchase_stages": tuple(st.purchase for st in journey.stages),
        "end_stages": tuple(st.absorbing for st in journey.stages),
        "edges": tuple(sorted((journey.index(a), journey.index(b)) for a, b in edges)),
    }


def log_metadata(scenario: Scenario) -> dict:
    """Everything but the columns that every simulated log of a scenario carries."""
    return {
        **stage_info(scenario),
        "personas": scenario.persona_names,
        "channels": scenario.channel_names,
        "horizon_days": scenario.horizon_days,
        "start_date": scenario.start_date,
        "interventions": tuple(iv.name for iv in scenario.interventions),
    }


def build_event_log(
    c: CompiledScenario,
    cust: Customers,
    replication: int,
    moves: tuple[array, ...],
    reaches: tuple[array, array, array],
) -> EventLog:
    """The run's moves plus the entry rows, merged in time order, and the reach records."""
    log_customer, log_time, log_from, log_to, log_value, log_treated = moves
    reach_customer = np.frombuffer(reaches[0], dtype=np.int_).astype(np.int32)
    n = len(cust.arrival)
    # entry rows are known before the run: written here in numpy, and placed first among rows
    # of equal time (a customer's entry precedes their zero-day moves)
    entry_values = np.zeros(n)
    if c.purchase[c.entry]:
        for ch, table in enumerate(cust.value):
            mine = cust.channel == ch
            entry_values[mine] = table[cust.local[mine], 0]
    customer = np.concatenate([np.arange(n), np.frombuffer(log_customer, dtype=np.int_)])
    time = np.concatenate([cust.arrival, np.frombuffer(log_time, dtype=np.float64)])
    order = np.argsort(time, kind="stable")
    customer = customer[order].astype(np.int32)

    def merged(first: np.ndarray, logged: array, dtype: type) -> np.ndarray:
        return np.concatenate([first.astype(dtype), np.frombuffer(logged, dtype=dtype)])[order]

    return EventLog(
        replication=np.full(len(customer), replication, dtype=np.int32),
        customer=customer,
        persona=cust.persona[customer].astype(np.int16),
        channel=cust.channel[customer].astype(np.int16),
        time=time[order],
        from_stage=merged(np.full(n, ENTRY), log_from, np.int16),
        to_stage=merged(np.full(n, c.entry), log_to, np.int16),
        value=merged(entry_values, log_value, np.float64),
        treatment=merged(np.zeros(n), log_treated, np.int64),
        customers=np.array([n], dtype=np.int64),
        **log_metadata(c.scenario),
        reach_replication=np.full(len(reach_customer), replication, dtype=np.int32),
        reach_customer=reach_customer,
        reach_intervention=np.frombuffer(reaches[1], dtype=np.int16).copy(),
        reach_time=np.frombuffer(reaches[2], dtype=np.float64).copy(),
    )


def scattered_event_log(
    c: CompiledScenario,
    replication: int,
    entries: tuple[np.ndarray, ...],
    moves: list[tuple[np.ndarray | None, ...]],
    order: np.ndarray,
    sorted_time: np.ndarray,
    reaches: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> EventLog:
    """The same log as :func:`build_event_log`, from moves recorded in parts.

    ``entries`` are (arrival, persona, channel, entry value) of the customers in arrival
    order; ``moves`` are parts of (customer, time, from, to, value, treatment or None) columns;
    ``order`` puts the concatenated moves in processing order (time order) and ``sorted_time``
    is their time in that order. Each column is written once, straight to its place: an entry
    goes before the moves at its time, as the stable sort of :func:`build_event_log` puts it.
    """
    arrival, persona, channel, entry_values = entries
    n, m = len(arrival), len(sorted_time)
    place = np.empty(m, dtype=np.int64)
    place[order] = np.arange(m) + np.searchsorted(arrival, sorted_time, side="right")
    at_entry = np.arange(n) + np.searchsorted(sorted_time, arrival, side="left")

    def column(j: int, first: np.ndarray | None, dtype: type) -> np.ndarray:
        out = np.zeros(n + m, dtype=dtype) if first is None else np.empty(n + m, dtype=dtype)
        if first is not None:
            out[at_entry] = first
        done = 0
        for part in moves:
            size = len(part[1])
            if part[j] is not None:
                out[place[done : done + size]] = part[j]
            done += size
        return out

    who = column(0, np.arange(n), np.int32)
    one_channel = len(c.scenario.channel_names) == 1
    return EventLog(
        replication=np.full(n + m, replication, dtype=np.int32),
        customer=who,
        persona=persona.astype(np.int16)[who],
        channel=np.zeros(n + m, np.int16) if one_channel else channel.astype(np.int16)[who],
        time=column(1, arrival, np.float64),
        from_stage=column(2, np.full(n, ENTRY), np.int16),
        to_stage=column(3, np.full(n, c.entry), np.int16),
        value=column(4, entry_values, np.float64),
        treatment=column(5, None, np.int64),
        customers=np.array([n], dtype=np.int64),
        **log_metadata(c.scenario),
        reach_replication=np.full(len(reaches[0]), replication, dtype=np.int32),
        reach_customer=np.asarray(reaches[0]).astype(np.int32),
        reach_intervention=np.asarray(reaches[1]).astype(np.int16),
        reach_time=np.asarray(reaches[2], dtype=np.float64),
    )
