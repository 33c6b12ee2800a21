"""The one event-log writer of the engines: moves recorded during a run plus entry rows."""

from __future__ import annotations

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


def resource_info(scenario: Scenario) -> dict:
    """Resource names, capacities and the resource each stage uses (-1: none), for the log."""
    names = [r.name for r in scenario.resources]
    return {
        "resources": tuple(names),
        "capacities": tuple(r.capacity for r in scenario.resources),
        "stage_resources": tuple(
            names.index(st.uses) if st.uses else -1 for st in scenario.journey.stages
        ),
        "capacity_changes": tuple(
            (names.index(e.resource), *iv.window_days, e.units)
            for iv in scenario.interventions
            for e in iv.of_kind(CapacityChange)
        ),
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
) -> EventLog:
    """The run's moves plus the entry rows, merged in time order, and the reach records.

    ``queues`` holds per move the days waited and whether the customer abandoned (none: no
    stage uses a resource); ``satisfaction`` the score after each move (none: no score). The
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
        customers=np.array([total], dtype=np.int64),
        **stage_info(c.scenario),
        personas=c.scenario.persona_names,
        channels=c.scenario.channel_names,
        horizon_days=c.scenario.horizon_days,
        interventions=tuple(iv.name for iv in c.scenario.interventions),
        reach_replication=np.full(len(reach_customer), replication, dtype=np.int32),
        reach_customer=reach_customer,
        reach_intervention=np.frombuffer(reaches[1], dtype=np.int16).copy(),
        reach_time=np.frombuffer(reaches[2], dtype=np.float64).copy(),
    )
