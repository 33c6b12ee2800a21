"""The one event-log writer of the engines: moves recorded during a run plus entry rows."""

from __future__ import annotations

import math
from array import array
from typing import NamedTuple

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.streams import Customers
from sim.events import ENTRY, EventLog
from sim.model.intervention import CapacityChange, NewTransition
from sim.model.scenario import Scenario


def stage_info(scenario: Scenario) -> dict:
    """The stage metadata a log carries: names, purchase and end flags, the moves a customer
    may make (the journey's edges, abandonments and those interventions open) and the
    resources stages use."""
    journey = scenario.journey
    edges = {(st.name, t) for st in journey.stages for t, p in st.next if p > 0}
    edges |= {(st.name, st.abandon_to) for st in journey.stages if st.abandon_to}
    edges |= {(e.stage, e.to) for iv in scenario.interventions for e in iv.of_kind(NewTransition)}
    return {
        "stages": journey.names,
        "purchase_stages": tuple(st.purchase for st in journey.stages),
        "end_stages": tuple(st.absorbing for st in journey.stages),
        "edges": tuple(sorted((journey.index(a), journey.index(b)) for a, b in edges)),
        **resource_info(scenario),
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
        "outcomes": (
            scenario.satisfaction.outcome_names() if scenario.satisfaction is not None else ()
        ),
    }


def resource_info(scenario: Scenario) -> dict:
    """Resource names, capacities and the resource each stage uses (-1: none), for the log."""
    names = [r.name for r in scenario.resources]
    plans = [r.plan(scenario.horizon_days, scenario.first_weekday) for r in scenario.resources]
    # a schedule or changes from given days: units added (or taken, < 0) to the day-0 capacity
    planned = tuple(
        (code, day, plan[i + 1][0] if i + 1 < len(plan) else math.inf, units - plan[0][1])
        for code, plan in enumerate(plans)
        for i, (day, units) in enumerate(plan)
        if units != plan[0][1]
    )
    return {
        "resources": tuple(names),
        "capacities": tuple(plan[0][1] for plan in plans),
        "stage_resources": tuple(
            names.index(st.uses) if st.uses else -1 for st in scenario.journey.stages
        ),
        "capacity_changes": tuple(
            (names.index(e.resource), *iv.window_days, e.units)
            for iv in scenario.interventions
            for e in iv.of_kind(CapacityChange)
        )
        + planned,
    }


class MarketCustomers(NamedTuple):
    """Customers who came from the market during a run, in order of adoption (numbered after
    the pre-drawn customers; their entry rows are among the run's moves)."""

    arrival: np.ndarray
    persona: np.ndarray
    channel: np.ndarray
    referred: np.ndarray  # customers brought in by a referral (run numbers)
    referred_by: np.ndarray  # their referrers (run numbers)


def build_event_log(
    c: CompiledScenario,
    cust: Customers,
    replication: int,
    moves: tuple[array, ...],
    reaches: tuple[array, array, array],
    market: MarketCustomers | None = None,
    queues: tuple[array, array] | None = None,
    satisfaction: array | None = None,
    outcomes: array | None = None,
    detractors: tuple[array, array, array, array] | None = None,
) -> EventLog:
    """The run's moves plus the entry rows, merged in time order, and the reach records.

    ``queues`` holds per move the days waited and whether the customer abandoned (none: no
    stage uses a resource); ``satisfaction`` the score after each move (none: no score);
    ``outcomes`` the service outcome code of the visit each move ends (none: no outcomes). The
    market's customers (numbered after the pre-drawn ones during
    the run) are renumbered so that all customers are numbered in order of arrival, pre-drawn
    ones first among equal times.
    """
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
    persona, channel, total = cust.persona, cust.channel, n
    referrer = None
    number = None
    if market is not None:
        arrival = np.concatenate([cust.arrival, market.arrival])
        total = len(arrival)
        number = np.empty(total, dtype=np.int32)
        number[np.argsort(arrival, kind="stable")] = np.arange(total, dtype=np.int32)
        persona = np.concatenate([persona.astype(np.int16), market.persona])
        channel = np.concatenate([channel.astype(np.int16), market.channel])
        persona[number], channel[number] = persona.copy(), channel.copy()
        referrer_of = np.full(total, -1, dtype=np.int32)
        referrer_of[number[market.referred]] = number[market.referred_by]
        customer = number[customer]
        reach_customer = number[reach_customer]
        # every row of a referred customer names their referrer
        referrer = referrer_of[customer]

    def merged(first: np.ndarray, logged: array, dtype: type) -> np.ndarray:
        return np.concatenate([first.astype(dtype), np.frombuffer(logged, dtype=dtype)])[order]

    score = None
    if satisfaction is not None:
        sat = c.scenario.satisfaction
        start = np.array([sat.start_of(name) for name in c.scenario.persona_names])
        score = merged(start[cust.persona], satisfaction, np.float64)
    outcome = None
    if outcomes is not None:
        outcome = merged(np.full(n, -1), outcomes, np.int16)
    records = {}
    if detractors is not None:
        # ``detractors``: who talked, when, whom (run number or -1), conversions lost
        talker = np.frombuffer(detractors[0], dtype=np.int_)
        reached = np.frombuffer(detractors[2], dtype=np.int_)
        if number is not None:
            talker = number[talker]
            reached = np.where(reached >= 0, number[np.maximum(reached, 0)], -1)
        records = {
            "detractor_replication": np.full(len(talker), replication, dtype=np.int32),
            "detractor_customer": talker.astype(np.int32),
            "detractor_time": np.frombuffer(detractors[1], dtype=np.float64).copy(),
            "detractor_reached": reached.astype(np.int32),
            "detractor_lost": np.frombuffer(detractors[3], dtype=np.float64).copy(),
        }
    wait = abandoned = None
    if queues is not None:
        wait = merged(np.zeros(n), queues[0], np.float64)
        abandoned = merged(np.zeros(n), queues[1], np.int8).astype(np.bool_)

    return EventLog(
        replication=np.full(len(customer), replication, dtype=np.int32),
        customer=customer,
        persona=persona[customer].astype(np.int16),
        channel=channel[customer].astype(np.int16),
        time=time[order],
        from_stage=merged(np.full(n, ENTRY), log_from, np.int16),
        to_stage=merged(np.full(n, c.entry), log_to, np.int16),
        value=merged(entry_values, log_value, np.float64),
        treatment=merged(np.zeros(n), log_treated, np.int64),
        wait=wait,
        abandoned=abandoned,
        referrer=referrer,
        satisfaction=score,
        outcome=outcome,
        customers=np.array([total], dtype=np.int64),
        **log_metadata(c.scenario),
        reach_replication=np.full(len(reach_customer), replication, dtype=np.int32),
        reach_customer=reach_customer,
        reach_intervention=np.frombuffer(reaches[1], dtype=np.int16).copy(),
        reach_time=np.frombuffer(reaches[2], dtype=np.float64).copy(),
        **records,
    )


def scattered_event_log(
    c: CompiledScenario,
    replication: int,
    entries: tuple[np.ndarray, ...],
    moves: list,
    order: np.ndarray | None,
    sorted_time: np.ndarray,
    reaches: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> EventLog:
    """The same log as :func:`build_event_log`, from moves recorded in parts.

    ``entries`` are (arrival, persona, channel, entry value) of the customers in arrival
    order; ``moves`` are parts of (customer, time, from, to, value, treatment or None) columns
    (a value column may be sparse: (move numbers within the part, values), the other moves
    carrying none); ``order`` puts the concatenated moves in processing order (time order;
    None: they are in it) and ``sorted_time`` is their time in that order. Each column is
    written once, straight to its place: an entry goes before the moves at its time, as the
    stable sort of :func:`build_event_log` puts it. Parts given as lists are let go column by
    column as the log is built (the recording and the log are not held whole at once).
    """
    arrival, persona, channel, entry_values = entries
    n, m = len(arrival), len(sorted_time)
    if order is None:
        place = np.searchsorted(arrival, sorted_time, side="right").astype(np.int64, copy=False)
        place += np.arange(m)
    else:
        place = np.empty(m, dtype=np.int64)
        place[order] = np.arange(m) + np.searchsorted(arrival, sorted_time, side="right")
    at_entry = np.arange(n) + np.searchsorted(sorted_time, arrival, side="left")
    del sorted_time
    sizes = [len(part[1]) for part in moves]

    def column(j: int, first: np.ndarray | None, dtype: type) -> np.ndarray:
        sparse = any(isinstance(part[j], tuple) for part in moves)
        if first is None or sparse:
            out = np.zeros(n + m, dtype=dtype)
        else:
            out = np.empty(n + m, dtype=dtype)
        if first is not None:
            out[at_entry] = first
        done = 0
        for part, size in zip(moves, sizes, strict=True):
            data = part[j]
            if isinstance(data, tuple):
                at, values = data
                out[place[done + at]] = values
            elif data is not None:
                out[place[done : done + size]] = data
            if isinstance(part, list):
                part[j] = None
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
