"""The SimPy engine: one process per customer, one ``simpy.Environment`` per replication.

Random numbers: every customer owns pre-drawn blocks of uniforms, one per (transient stage,
visit number) for the choice of the next stage and for the dwell time, and one per purchase for
the order value. Blocks are drawn in numpy from streams keyed by (replication, channel, purpose),
so customer k of a channel sees the same numbers whatever the other customers do and whatever
other scenarios change elsewhere (common random numbers). A customer who visits a stage more
often than the block holds continues on a stream of their own.
"""

from __future__ import annotations

import zlib
from array import array
from dataclasses import dataclass

import numpy as np
import simpy

from sim.distributions import Distribution
from sim.events import ENTRY, EventLog
from sim.model.acquisition import COHORT_CHANNEL, Cohort
from sim.model.logit import transition_matrices
from sim.model.scenario import Scenario

#: Visits per stage (and purchases per customer) whose random numbers are pre-drawn in blocks.
VISITS_PER_BLOCK = 4

# Purposes of the random streams of one channel in one replication.
_ARRIVALS, _PERSONA, _CHOICE, _DWELL, _VALUE, _OVERFLOW = range(6)


def channel_key(name: str) -> int:
    """Stable stream key of a channel, so adding a channel elsewhere does not shift streams."""
    return zlib.crc32(name.encode())


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of one purpose: children of ``SeedSequence(seed)`` addressed by ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass(frozen=True, eq=False)
class CompiledScenario:
    """A scenario turned into arrays the engine indexes (built once per run)."""

    scenario: Scenario
    names: tuple[str, ...]
    entry: int
    absorbing: tuple[bool, ...]
    purchase: tuple[bool, ...]
    transient: tuple[int, ...]  # stage index -> position among transient stages (-1: absorbing)
    cumulative: np.ndarray  # (personas, S, S) cumulative transition probabilities
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
        transient, t = [], 0
        for st in journey.stages:
            transient.append(-1 if st.absorbing else t)
            t += not st.absorbing
        return cls(
            scenario=scenario,
            names=journey.names,
            entry=journey.index(journey.entry),
            absorbing=tuple(st.absorbing for st in journey.stages),
            purchase=tuple(st.purchase for st in journey.stages),
            transient=tuple(transient),
            cumulative=cumulative,
            dwell=tuple(st.dwell for st in journey.stages),
            dwell_factor=np.array(
                [[p.dwell_factor(n) for n in journey.names] for p in scenario.personas]
            ),
            order_value=tuple(p.order_value for p in scenario.personas),
        )

    @property
    def transient_stages(self) -> list[int]:
        """Stage indices of the transient stages, in order."""
        return [i for i, t in enumerate(self.transient) if t >= 0]

    def next_stage(self, persona: np.ndarray, stage: int, u: np.ndarray) -> np.ndarray:
        """Next stage chosen by uniforms ``u`` for customers of the given personas at ``stage``."""
        out = np.empty(u.shape, dtype=np.int64)
        for p in np.unique(persona):
            rows = persona == p
            out[rows] = np.searchsorted(self.cumulative[p, stage], u[rows], side="right")
        return out

    def dwell_days(self, persona: np.ndarray, stage: int, u: np.ndarray) -> np.ndarray:
        """Dwell times at ``stage`` from uniforms ``u`` (persona dwell factors applied)."""
        factor = self.dwell_factor[persona, stage]
        return self.dwell[stage].quantile(u) * factor.reshape(factor.shape + (1,) * (u.ndim - 1))

    def order_values(self, persona: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Order values from uniforms ``u`` for customers of the given personas."""
        out = np.empty(u.shape)
        for p in np.unique(persona):
            rows = persona == p
            out[rows] = self.order_value[p].quantile(u[rows])
        return out


@dataclass(frozen=True, eq=False)
class _Customers:
    """Pre-drawn state of all customers of one replication, ordered by arrival."""

    arrival: np.ndarray
    persona: np.ndarray
    channel: np.ndarray
    local: np.ndarray  # index within the channel (the key of the customer's own streams)
    next_stage: np.ndarray  # (n, T * V) stage index for (transient stage, visit)
    dwell: np.ndarray  # (n, T * V) days
    value: np.ndarray  # (n, V) order values of the first V purchases


def _draw_customers(c: CompiledScenario, seed: int, replication: int) -> _Customers:
    s = c.scenario
    horizon = s.horizon_days
    if isinstance(s.acquisition, Cohort):
        channels = [(COHORT_CHANNEL, None)]
    else:
        channels = [(ch.name, ch.rate_per_day) for ch in s.acquisition.channels]
    stages = c.transient_stages
    v = VISITS_PER_BLOCK
    parts = []
    for ci, (name, rate) in enumerate(channels):
        key = channel_key(name)
        if rate is None:
            arrival = np.zeros(s.acquisition.size)
        else:
            arrival = _poisson_arrivals(stream(seed, replication, key, _ARRIVALS), rate, horizon)
        n = len(arrival)
        mix = np.cumsum(s.persona_mix(name))
        persona = np.minimum(
            np.searchsorted(mix, stream(seed, replication, key, _PERSONA).random(n), side="right"),
            len(mix) - 1,
        )
        # drop personas with a zero share that rounding could still select
        u_choice = stream(seed, replication, key, _CHOICE).random((n, len(stages), v))
        u_dwell = stream(seed, replication, key, _DWELL).random((n, len(stages), v))
        u_value = stream(seed, replication, key, _VALUE).random((n, v))
        nxt = np.empty((n, len(stages), v), dtype=np.int64)
        dwell = np.empty((n, len(stages), v))
        for t, st in enumerate(stages):
            nxt[:, t] = c.next_stage(persona, st, u_choice[:, t])
            dwell[:, t] = c.dwell_days(persona, st, u_dwell[:, t])
        parts.append(
            (
                arrival,
                persona,
                np.full(n, ci),
                np.arange(n),
                nxt.reshape(n, -1),
                dwell.reshape(n, -1),
                c.order_values(persona, u_value),
            )
        )
    cols = [np.concatenate(col) for col in zip(*parts, strict=True)]
    order = np.argsort(cols[0], kind="stable")
    return _Customers(*(col[order] for col in cols))


def _poisson_arrivals(rng: np.random.Generator, rate: float, horizon: float) -> np.ndarray:
    """Arrival days of a Poisson process, drawn as unit-rate gaps in fixed blocks.

    Fixed-size blocks keep a prefix property: with a higher rate the same customers arrive,
    only earlier, and more come after them (common random numbers across rate changes).
    """
    limit = rate * horizon
    blocks, total = [], 0.0
    while total <= limit:
        gaps = rng.standard_exponential(1024)
        cum = total + np.cumsum(gaps)
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
    channel_names = s.channel_names
    channel_keys = [channel_key(n) for n in channel_names]
    env = simpy.Environment()
    timeout = env.timeout
    log_customer, log_time = array("l"), array("d")
    log_from, log_to, log_value = array("h"), array("h"), array("d")
    add_customer, add_time = log_customer.append, log_time.append
    add_from, add_to, add_value = log_from.append, log_to.append, log_value.append
    purchase, transient = c.purchase, c.transient
    v_block = VISITS_PER_BLOCK
    entry = c.entry

    def overflow_rng(k: int) -> np.random.Generator:
        return stream(
            seed, replication, channel_keys[int(cust.channel[k])], _OVERFLOW, int(cust.local[k])
        )

    next_rows, dwell_rows, value_rows = cust.next_stage, cust.dwell, cust.value
    personas = cust.persona
    # one conversion for all customers is cheaper than one per customer in the hot path
    next_lists, dwell_lists = next_rows.tolist(), dwell_rows.tolist()
    # slot of visit 0 of each stage in a customer's block; absorbing stages have none
    first_slot = tuple(t * v_block if t >= 0 else -1 for t in transient)
    last_slot = tuple(t * v_block + v_block if t >= 0 else -1 for t in transient)
    entry_value = float(value_rows[0, 0]) if purchase[entry] else 0.0
    entry_purchases = int(purchase[entry])

    def draw_beyond_block(k: int, stage: int, rng: np.random.Generator) -> tuple[int, float]:
        p = personas[k : k + 1]
        u = rng.random(2).reshape(2, 1)
        return int(c.next_stage(p, stage, u[0])[0]), float(c.dwell_days(p, stage, u[1])[0])

    def customer(k: int):
        # this loop runs once per transition of every customer: keep it lean
        nxt = next_lists[k]
        dwell = dwell_lists[k]
        slots = list(first_slot)
        purchases = entry_purchases
        extra = None
        stage = entry
        while (slot := slots[stage]) >= 0:
            if slot < last_slot[stage]:
                slots[stage] = slot + 1
                days = dwell[slot]
                following = nxt[slot]
            else:
                extra = extra or overflow_rng(k)
                following, days = draw_beyond_block(k, stage, extra)
            if days > 0:
                yield timeout(days)
            if purchase[following]:
                if purchases < v_block:
                    value = float(value_rows[k, purchases])
                else:
                    extra = extra or overflow_rng(k)
                    value = float(c.order_values(personas[k : k + 1], extra.random(1))[0])
                purchases += 1
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

    # entry rows are known before the run; write them in numpy and merge by time, entries
    # first among rows of equal time (a customer's entry precedes their zero-day moves)
    entered = np.arange(n_customers)
    customer_col = np.concatenate([entered, np.frombuffer(log_customer, dtype=np.int_)]).astype(
        np.int32
    )
    time_col = np.concatenate([cust.arrival, np.frombuffer(log_time, dtype=np.float64)])
    from_col = np.concatenate(
        [np.full(n_customers, ENTRY, dtype=np.int16), np.frombuffer(log_from, dtype=np.int16)]
    )
    to_col = np.concatenate(
        [np.full(n_customers, entry, dtype=np.int16), np.frombuffer(log_to, dtype=np.int16)]
    )
    value_col = np.concatenate(
        [np.full(n_customers, entry_value), np.frombuffer(log_value, dtype=np.float64)]
    )
    order = np.argsort(time_col, kind="stable")
    customer_col = customer_col[order]
    rows = len(customer_col)
    return EventLog(
        replication=np.full(rows, replication, dtype=np.int32),
        customer=customer_col,
        persona=cust.persona[customer_col].astype(np.int16),
        channel=cust.channel[customer_col].astype(np.int16),
        time=time_col[order],
        from_stage=from_col[order],
        to_stage=to_col[order],
        value=value_col[order],
        customers=np.array([n_customers], dtype=np.int64),
        stages=c.names,
        personas=s.persona_names,
        channels=channel_names,
        horizon_days=s.horizon_days,
    )
