"""The SimPy engine: one process per customer, one ``simpy.Environment`` per replication.

Random numbers. Every customer owns pre-drawn numbers: for each transient stage and visit
number, one uniform that picks the next stage and one that sets the dwell time; for each
purchase, one that sets the order value. They are drawn in numpy, one stream per (replication,
channel, purpose, stage, visit), the stream keys derived from names. Customer k of a channel
takes the k-th number of each stream, so their journey does not depend on how many other
customers there are, and two scenarios that differ in one stage share every other number
(common random numbers). How many visits are pre-drawn per stage follows from the journey's
base chain (so that about 1% of customers reaching a stage need more); a customer who needs
more continues on a stream of their own.
"""

from __future__ import annotations

import math
import zlib
from array import array
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import simpy

from sim.distributions import Distribution
from sim.events import ENTRY, EventLog
from sim.model.acquisition import COHORT_CHANNEL, Cohort
from sim.model.logit import base_matrix, transition_matrices
from sim.model.scenario import Scenario

#: Pre-drawn visits per stage: at least MIN_BLOCK, at most MAX_BLOCK, else enough that about
#: OVERFLOW_SHARE of the customers who reach the stage come back more often than that.
MIN_BLOCK, MAX_BLOCK, OVERFLOW_SHARE = 2, 48, 0.01
#: Pre-drawn order values per customer.
VALUE_BLOCK = 4

# Purposes of the random streams of one channel in one replication.
_ARRIVALS, _PERSONA, _CHOICE, _DWELL, _VALUE, _OVERFLOW = range(6)


def name_key(name: str) -> int:
    """Stable stream key of a channel or stage, so adding one elsewhere shifts no stream."""
    return zlib.crc32(name.encode())


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of one purpose: children of ``SeedSequence(seed)`` addressed by ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def visit_blocks(scenario: Scenario) -> tuple[int, ...]:
    """Visits to pre-draw per stage, from the base chain (persona effects and interventions
    do not change it, so scenarios compared side by side keep the same layout).

    The number of returns to a stage is geometric: with mean visits mu from the stage itself,
    P(more than v visits) = (1 - 1/mu)^v.
    """
    journey = scenario.journey
    P = base_matrix(journey)
    transient = np.array([not s.absorbing for s in journey.stages])
    Q = P[np.ix_(transient, transient)]
    # diagonal of the fundamental matrix: expected visits to a stage starting there
    mu = np.diag(np.linalg.inv(np.eye(len(Q)) - Q))
    blocks, t = [], 0
    for st in journey.stages:
        if st.absorbing:
            blocks.append(0)
            continue
        stay = 1 - 1 / mu[t]
        t += 1
        need = math.ceil(math.log(OVERFLOW_SHARE) / math.log(stay)) if stay > 1e-12 else 1
        blocks.append(int(min(max(need, MIN_BLOCK), MAX_BLOCK)))
    return tuple(blocks)


@dataclass(frozen=True, eq=False)
class CompiledScenario:
    """A scenario turned into the tables the engine indexes (built once per run)."""

    scenario: Scenario
    names: tuple[str, ...]
    entry: int
    purchase: tuple[bool, ...]
    block: tuple[int, ...]  # pre-drawn visits per stage (0: absorbing)
    first_slot: tuple[int, ...]  # where each stage's block starts in a customer's row (-1: none)
    cumulative: np.ndarray  # (personas, S, S) cumulative transition probabilities
    cumulative_lists: tuple[tuple[tuple[float, ...], ...], ...]  # the same, for bisect
    dwell: tuple[Distribution, ...]  # per stage
    dwell_factor: np.ndarray  # (personas, S)
    order_value: tuple[Distribution, ...]  # per persona

    @classmethod
    def build(cls, scenario: Scenario) -> CompiledScenario:
        """Compile a scenario (persona effects applied through the log-odds rule)."""
        journey = scenario.journey
        matrices = transition_matrices(journey, scenario.personas, scenario.effects)
        cumulative = np.cumsum(matrices, axis=-1)
        # the last reachable target must catch u up to 1 despite rounding in the sum
        for p in range(matrices.shape[0]):
            for s in range(matrices.shape[1]):
                nz = np.nonzero(matrices[p, s])[0]
                if len(nz):
                    cumulative[p, s, nz[-1] :] = np.inf
        block = visit_blocks(scenario)
        first_slot, used = [], 0
        for b in block:
            first_slot.append(used if b else -1)
            used += b
        return cls(
            scenario=scenario,
            names=journey.names,
            entry=journey.index(journey.entry),
            purchase=tuple(st.purchase for st in journey.stages),
            block=block,
            first_slot=tuple(first_slot),
            cumulative=cumulative,
            cumulative_lists=tuple(tuple(tuple(row) for row in m.tolist()) for m in cumulative),
            dwell=tuple(st.dwell for st in journey.stages),
            dwell_factor=np.array(
                [[p.dwell_factor(n) for n in journey.names] for p in scenario.personas]
            ),
            order_value=tuple(p.order_value for p in scenario.personas),
        )

    @property
    def slots(self) -> int:
        """Pre-drawn visits per customer over all stages."""
        return sum(self.block)

    def next_stage(
        self, groups: list[tuple[int, np.ndarray]], stage: int, u: np.ndarray
    ) -> np.ndarray:
        """Next stage chosen by uniforms ``u`` at ``stage``; ``groups`` lists (persona, rows)."""
        out = np.empty(u.shape, dtype=np.int64)
        for p, rows in groups:
            out[rows] = np.searchsorted(self.cumulative[p, stage], u[rows], side="right")
        return out

    def order_values(self, groups: list[tuple[int, np.ndarray]], u: np.ndarray) -> np.ndarray:
        """Order values from uniforms ``u``; ``groups`` lists (persona, rows)."""
        out = np.empty(u.shape)
        for p, rows in groups:
            out[rows] = self.order_value[p].quantile(u[rows])
        return out


@dataclass(frozen=True, eq=False)
class _Customers:
    """Pre-drawn state of all customers of one replication.

    Customers are numbered in order of arrival; the pre-drawn tables stay per channel, indexed
    by the customer's ``local`` number within their channel (merging them would copy them).
    """

    arrival: np.ndarray
    persona: np.ndarray
    channel: np.ndarray
    local: np.ndarray  # index within the channel (also the key of the customer's own stream)
    next_stage: list[np.ndarray]  # per channel (n, slots): next stage per (stage, visit)
    dwell: list[np.ndarray]  # per channel (n, slots): days spent per (stage, visit)
    value: list[np.ndarray]  # per channel (n, VALUE_BLOCK): order values of first purchases


def _draw_channel(
    c: CompiledScenario, seed: int, replication: int, name: str, rate: float | None
) -> tuple[np.ndarray, ...]:
    s = c.scenario
    key = name_key(name)
    if rate is None:
        arrival = np.zeros(s.acquisition.size)
    else:
        arrival = _poisson_arrivals(stream(seed, replication, key, _ARRIVALS), rate, s.horizon_days)
    n = len(arrival)
    mix = np.cumsum(s.persona_mix(name))
    u = stream(seed, replication, key, _PERSONA).random(n)
    persona = np.minimum(np.searchsorted(mix, u, side="right"), len(mix) - 1)
    groups = [(int(p), np.flatnonzero(persona == p)) for p in np.unique(persona)]
    nxt = np.empty((n, c.slots), dtype=np.int64)
    dwell = np.empty((n, c.slots))
    for stage, (b, first) in enumerate(zip(c.block, c.first_slot, strict=True)):
        stage_key = name_key(c.names[stage])
        factor = c.dwell_factor[persona, stage]
        for visit in range(b):
            u_choice = stream(seed, replication, key, _CHOICE, stage_key, visit).random(n)
            u_dwell = stream(seed, replication, key, _DWELL, stage_key, visit).random(n)
            nxt[:, first + visit] = c.next_stage(groups, stage, u_choice)
            dwell[:, first + visit] = c.dwell[stage].quantile(u_dwell) * factor
    value = np.empty((n, VALUE_BLOCK))
    for purchase in range(VALUE_BLOCK):
        u_value = stream(seed, replication, key, _VALUE, purchase).random(n)
        value[:, purchase] = c.order_values(groups, u_value)
    return arrival, persona, np.arange(n), nxt, dwell, value


def _draw_customers(c: CompiledScenario, seed: int, replication: int) -> _Customers:
    s = c.scenario
    if isinstance(s.acquisition, Cohort):
        channels = [(COHORT_CHANNEL, None)]
    else:
        channels = [(ch.name, ch.rate_per_day) for ch in s.acquisition.channels]
    parts = [_draw_channel(c, seed, replication, name, rate) for name, rate in channels]
    arrival = np.concatenate([p[0] for p in parts])
    order = np.argsort(arrival, kind="stable")
    channel = np.concatenate([np.full(len(p[0]), ci) for ci, p in enumerate(parts)])
    return _Customers(
        arrival=arrival[order],
        persona=np.concatenate([p[1] for p in parts])[order],
        channel=channel[order],
        local=np.concatenate([p[2] for p in parts])[order],
        next_stage=[p[3] for p in parts],
        dwell=[p[4] for p in parts],
        value=[p[5] for p in parts],
    )


def _poisson_arrivals(rng: np.random.Generator, rate: float, horizon: float) -> np.ndarray:
    """Arrival days of a Poisson process, drawn as unit-rate gaps in fixed blocks.

    Fixed-size blocks keep a prefix property: with a higher rate the same customers arrive,
    only earlier, and more come after them (common random numbers across rate changes).
    """
    limit = rate * horizon
    blocks, total = [], 0.0
    while total <= limit:
        cum = total + np.cumsum(rng.standard_exponential(1024))
        blocks.append(cum)
        total = cum[-1]
    unit = np.concatenate(blocks)
    return unit[unit < limit] / rate


def simulate(compiled: CompiledScenario, seed: int, replication: int = 0) -> EventLog:
    """Run one replication of a compiled scenario with SimPy and return its event log."""
    c = compiled
    s = c.scenario
    cust = _draw_customers(c, seed, replication)
    n_customers = len(cust.arrival)
    channel_keys = [name_key(n) for n in s.channel_names]
    env = simpy.Environment()
    timeout = env.timeout
    log_customer, log_time = array("l"), array("d")
    log_from, log_to, log_value = array("h"), array("h"), array("d")
    add_customer, add_time = log_customer.append, log_time.append
    add_from, add_to, add_value = log_from.append, log_to.append, log_value.append
    purchase, entry, cumulative = c.purchase, c.entry, c.cumulative_lists
    first_slot = c.first_slot
    end_slot = tuple(f + b for f, b in zip(c.first_slot, c.block, strict=True))
    # flat tables read through shared bound methods: no per-customer objects, which matters
    # when a whole cohort is alive at once
    next_item = [t.ravel().item for t in cust.next_stage]
    dwell_item = [t.ravel().item for t in cust.dwell]
    value_item = [t.ravel().item for t in cust.value]
    slots_per_customer = c.slots
    persona_of, channel_of = cust.persona.tolist(), cust.channel.tolist()
    local_of = cust.local.tolist()
    dwell_laws, dwell_factor = c.dwell, c.dwell_factor.tolist()
    value_laws = c.order_value

    def own_stream(k: int) -> np.random.Generator:
        return stream(seed, replication, channel_keys[channel_of[k]], _OVERFLOW, local_of[k])

    def customer(k: int):
        # this loop runs once per transition of every customer: keep it lean
        # slots are read one by one (.item gives Python numbers): most customers use few
        ch = channel_of[k]
        base = local_of[k] * slots_per_customer
        nxt, dwell = next_item[ch], dwell_item[ch]
        slots = list(first_slot)
        purchases = int(purchase[entry])
        extra = None
        stage = entry
        while (slot := slots[stage]) >= 0:
            if slot < end_slot[stage]:
                slots[stage] = slot + 1
                days = dwell(base + slot)
                following = nxt(base + slot)
            else:
                extra = extra or own_stream(k)
                p = persona_of[k]
                following = bisect_right(cumulative[p][stage], extra.random())
                days = float(dwell_laws[stage].quantile(extra.random())) * dwell_factor[p][stage]
            if days > 0:
                yield timeout(days)
            if purchase[following]:
                if purchases < VALUE_BLOCK:
                    value = value_item[ch](local_of[k] * VALUE_BLOCK + purchases)
                else:
                    extra = extra or own_stream(k)
                    value = value_laws[persona_of[k]].quantile(extra.random())
                purchases += 1
                value = float(value)
            else:
                value = 0.0
            add_customer(k)
            add_time(env.now)
            add_from(stage)
            add_to(following)
            add_value(value)
            stage = following

    process = env.process
    if isinstance(s.acquisition, Cohort):
        for k in range(n_customers):
            process(customer(k))
    else:
        arrivals = cust.arrival.tolist()

        def source():
            for k, day in enumerate(arrivals):
                if day > env.now:
                    yield timeout(day - env.now)
                process(customer(k))

        process(source())
    env.run(until=s.horizon_days)
    return _event_log(c, cust, replication, log_customer, log_time, log_from, log_to, log_value)


def _event_log(
    c: CompiledScenario, cust: _Customers, replication: int, *columns: array
) -> EventLog:
    """Columns of the run plus the entry rows, merged in time order."""
    log_customer, log_time, log_from, log_to, log_value = columns
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
        customers=np.array([n], dtype=np.int64),
        stages=c.names,
        personas=c.scenario.persona_names,
        channels=c.scenario.channel_names,
        horizon_days=c.scenario.horizon_days,
    )
