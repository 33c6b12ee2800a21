"""The SimPy engine: one process per customer, one ``simpy.Environment`` per replication.

Random numbers. Every customer owns pre-drawn numbers: for each transient stage and visit
number, one uniform that picks the next stage and one that sets the dwell time; for each
purchase, one that sets the order value; for each intervention, one that decides whether the
customer is within its reach. They are drawn in numpy, one stream per (replication, channel,
purpose, stage or intervention, visit), the keys derived from names. Customer k of a channel
takes the k-th number of each stream, so their journey does not depend on how many other
customers there are, and two scenarios that differ in one place share every other number
(common random numbers). How many visits are pre-drawn per stage follows from the journey's
base chain (so that about 1% of customers reaching a stage need more); a customer who needs
more continues on a stream of their own.

Interventions. When a customer enters a stage, the engine settles which interventions reach
them (eligible persona, channel and reach draw; a target stage; the window open; budget left)
and which act on them; those set this visit's dwell time, the choice that ends it and the value
of a purchase it leads to. Budgets are never exceeded: reaching a customer reserves the cost of
one conversion, held until they convert or their journey ends.
"""

from __future__ import annotations

import math
import zlib
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.distributions import Distribution
from sim.events import ENTRY, EventLog
from sim.model.acquisition import COHORT_CHANNEL, Cohort
from sim.model.intervention import ArrivalRateFactor, DwellFactor, OrderValueFactor
from sim.model.logit import base_matrix, transition_matrices, treated_matrix
from sim.model.scenario import Scenario

#: Pre-drawn visits per stage: at least MIN_BLOCK, at most MAX_BLOCK, else enough that about
#: OVERFLOW_SHARE of the customers who reach the stage come back more often than that.
MIN_BLOCK, MAX_BLOCK, OVERFLOW_SHARE = 2, 48, 0.01
#: Pre-drawn order values per customer.
VALUE_BLOCK = 4

# Purposes of the random streams of one channel in one replication.
_ARRIVALS, _PERSONA, _CHOICE, _DWELL, _VALUE, _OVERFLOW, _REACH = range(7)


def name_key(name: str) -> int:
    """Stable stream key of a channel, stage or intervention, so adding one elsewhere shifts
    no stream."""
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


@dataclass(frozen=True)
class _Treatment:
    """What a set of interventions acting together does to one persona's customers."""

    cumulative: tuple[tuple[float, ...], ...]  # per stage, for bisect
    dwell_factor: tuple[float, ...]  # per stage
    value_factor: float


def _cumulative_lists(matrix: np.ndarray) -> tuple[tuple[float, ...], ...]:
    cumulative = np.cumsum(matrix, axis=-1)
    for s in range(matrix.shape[0]):
        nz = np.nonzero(matrix[s])[0]
        if len(nz):
            # the last reachable target must catch u up to 1 despite rounding in the sum
            cumulative[s, nz[-1] :] = np.inf
    return tuple(tuple(row) for row in cumulative.tolist())


@dataclass(frozen=True, eq=False)
class CompiledScenario:
    """A scenario turned into the tables the engine indexes (built once per run)."""

    scenario: Scenario
    names: tuple[str, ...]
    entry: int
    purchase: tuple[bool, ...]
    absorbing: tuple[bool, ...]
    block: tuple[int, ...]  # pre-drawn visits per stage (0: absorbing)
    first_slot: tuple[int, ...]  # where each stage's block starts in a customer's row (-1: none)
    untreated: tuple[tuple[tuple[float, ...], ...], ...]  # per persona: cumulative rows
    dwell: tuple[Distribution, ...]  # per stage
    dwell_factor: np.ndarray  # (personas, S)
    order_value: tuple[Distribution, ...]  # per persona
    _treatments: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, scenario: Scenario) -> CompiledScenario:
        """Compile a scenario (persona effects applied through the log-odds rule)."""
        journey = scenario.journey
        matrices = transition_matrices(journey, scenario.personas, scenario.effects)
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
            absorbing=tuple(st.absorbing for st in journey.stages),
            block=block,
            first_slot=tuple(first_slot),
            untreated=tuple(_cumulative_lists(m) for m in matrices),
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

    def treatment(self, persona: int, active: int) -> _Treatment:
        """Tables for a persona's customers while the interventions in bit mask ``active`` act
        on them (computed once per combination)."""
        key = (persona, active)
        found = self._treatments.get(key)
        if found is None:
            s = self.scenario
            ivs = [iv for i, iv in enumerate(s.interventions) if active >> i & 1]
            matrix = treated_matrix(s.journey, s.personas[persona], s.effects, ivs)
            dwell = [1.0] * len(self.names)
            value = 1.0
            for iv in ivs:
                for e in iv.of_kind(DwellFactor):
                    dwell[s.journey.index(e.stage)] *= e.factor
                for e in iv.of_kind(OrderValueFactor):
                    value *= e.factor
            found = _Treatment(_cumulative_lists(matrix), tuple(dwell), value)
            self._treatments[key] = found
        return found

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
    eligible: np.ndarray  # bit i: persona, channel and reach draw admit intervention i
    choice: list[np.ndarray]  # per channel (n, slots): uniform choosing the next stage
    dwell: list[np.ndarray]  # per channel (n, slots): days spent per (stage, visit)
    value: list[np.ndarray]  # per channel (n, VALUE_BLOCK): order values of first purchases


def arrival_segments(scenario: Scenario, channel: str, rate: float) -> tuple[np.ndarray, ...]:
    """Breakpoints (days) and the rate in force between them, after arrival-rate factors."""
    horizon = scenario.horizon_days
    changes = [
        (iv.window_days, e.factor)
        for iv in scenario.interventions
        for e in iv.of_kind(ArrivalRateFactor)
        if e.channel == channel
    ]
    points = sorted({0.0, horizon, *(min(t, horizon) for w, _ in changes for t in w)})
    points = np.array([p for p in points if p <= horizon])
    rates = np.full(len(points) - 1, rate)
    for (start, end), factor in changes:
        rates[(points[:-1] >= start) & (points[:-1] < end)] *= factor
    return points, rates


def _arrivals(rng: np.random.Generator, points: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Arrival days of a Poisson process with piecewise-constant rate, drawn as unit-rate
    arrivals mapped through the inverse cumulative rate.

    Unit-rate gaps come in fixed blocks, which keeps a prefix property: with a higher rate the
    same customers arrive, only earlier, and more come after them (common random numbers across
    campaigns).
    """
    cumulative = np.concatenate([[0.0], np.cumsum(rates * np.diff(points))])
    limit = cumulative[-1]
    blocks, total = [], 0.0
    while total <= limit:
        cum = total + np.cumsum(rng.standard_exponential(1024))
        blocks.append(cum)
        total = cum[-1]
    unit = np.concatenate(blocks)
    return np.interp(unit[unit < limit], cumulative, points)


def _draw_channel(
    c: CompiledScenario, seed: int, replication: int, index: int, name: str, rate: float | None
) -> tuple[np.ndarray, ...]:
    s = c.scenario
    key = name_key(name)
    if rate is None:
        arrival = np.zeros(s.acquisition.size)
    else:
        arrival = _arrivals(
            stream(seed, replication, key, _ARRIVALS), *arrival_segments(s, name, rate)
        )
    n = len(arrival)
    mix = np.cumsum(s.persona_mix(name))
    u = stream(seed, replication, key, _PERSONA).random(n)
    persona = np.minimum(np.searchsorted(mix, u, side="right"), len(mix) - 1)
    groups = [(int(p), np.flatnonzero(persona == p)) for p in np.unique(persona)]
    choice = np.empty((n, c.slots))
    dwell = np.empty((n, c.slots))
    for stage, (b, first) in enumerate(zip(c.block, c.first_slot, strict=True)):
        stage_key = name_key(c.names[stage])
        factor = c.dwell_factor[persona, stage]
        for visit in range(b):
            choice[:, first + visit] = stream(
                seed, replication, key, _CHOICE, stage_key, visit
            ).random(n)
            u_dwell = stream(seed, replication, key, _DWELL, stage_key, visit).random(n)
            dwell[:, first + visit] = c.dwell[stage].quantile(u_dwell) * factor
    value = np.empty((n, VALUE_BLOCK))
    for purchase in range(VALUE_BLOCK):
        u_value = stream(seed, replication, key, _VALUE, purchase).random(n)
        value[:, purchase] = c.order_values(groups, u_value)
    eligible = np.zeros(n, dtype=np.int64)
    for i, iv in enumerate(s.interventions):
        ok = stream(seed, replication, key, _REACH, name_key(iv.name)).random(n) < iv.reach
        if iv.personas:
            ok &= np.isin(persona, [s.persona_names.index(p) for p in iv.personas])
        if iv.channels and name not in iv.channels:
            ok[:] = False
        eligible[ok] |= 1 << i
    return arrival, persona, np.full(n, index), np.arange(n), eligible, choice, dwell, value


def _draw_customers(c: CompiledScenario, seed: int, replication: int) -> _Customers:
    s = c.scenario
    if isinstance(s.acquisition, Cohort):
        channels = [(COHORT_CHANNEL, None)]
    else:
        channels = [(ch.name, ch.rate_per_day) for ch in s.acquisition.channels]
    parts = [
        _draw_channel(c, seed, replication, i, name, rate)
        for i, (name, rate) in enumerate(channels)
    ]
    arrival = np.concatenate([p[0] for p in parts])
    order = np.argsort(arrival, kind="stable")

    def merged(i: int) -> np.ndarray:
        return np.concatenate([p[i] for p in parts])[order]

    return _Customers(
        arrival=arrival[order],
        persona=merged(1),
        channel=merged(2),
        local=merged(3),
        eligible=merged(4),
        choice=[p[5] for p in parts],
        dwell=[p[6] for p in parts],
        value=[p[7] for p in parts],
    )


class _Budgets:
    """Spending of the interventions in one replication; a cap is never exceeded."""

    def __init__(self, scenario: Scenario) -> None:
        ivs = scenario.interventions
        self.per_reached = [iv.cost.per_reached for iv in ivs]
        self.per_conversion = [iv.cost.per_conversion for iv in ivs]
        # what reaching and converting may spend: the budget less the fixed cost
        self.cap = [math.inf if iv.budget is None else iv.budget - iv.cost.fixed for iv in ivs]
        self.reserves = [
            cap < math.inf and pc > 0 for cap, pc in zip(self.cap, self.per_conversion, strict=True)
        ]
        self.spent = [0.0] * len(ivs)
        self.reserved = [0.0] * len(ivs)

    def can_reach(self, i: int) -> bool:
        need = self.per_reached[i] + (self.per_conversion[i] if self.reserves[i] else 0.0)
        return self.spent[i] + self.reserved[i] + need <= self.cap[i] + 1e-9

    def reach(self, i: int) -> None:
        self.spent[i] += self.per_reached[i]
        if self.reserves[i]:
            self.reserved[i] += self.per_conversion[i]

    def reserve(self, i: int) -> bool:
        if self.spent[i] + self.reserved[i] + self.per_conversion[i] <= self.cap[i] + 1e-9:
            self.reserved[i] += self.per_conversion[i]
            return True
        return False

    def convert(self, i: int, held: bool) -> None:
        self.spent[i] += self.per_conversion[i]
        if held:
            self.reserved[i] -= self.per_conversion[i]

    def release(self, i: int) -> None:
        self.reserved[i] -= self.per_conversion[i]


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
    log_from, log_to, log_value, log_treated = array("h"), array("h"), array("d"), array("q")
    add_customer, add_time = log_customer.append, log_time.append
    add_from, add_to, add_value, add_treated = (
        log_from.append,
        log_to.append,
        log_value.append,
        log_treated.append,
    )
    reach_customer, reach_index, reach_time = array("l"), array("h"), array("d")
    purchase, entry, untreated = c.purchase, c.entry, c.untreated
    first_slot = c.first_slot
    end_slot = tuple(f + b for f, b in zip(c.first_slot, c.block, strict=True))
    # flat tables read through shared bound methods: no per-customer objects, which matters
    # when a whole cohort is alive at once
    choice_item = [t.ravel().item for t in cust.choice]
    dwell_item = [t.ravel().item for t in cust.dwell]
    value_item = [t.ravel().item for t in cust.value]
    slots_per_customer = c.slots
    persona_of, channel_of = cust.persona.tolist(), cust.channel.tolist()
    local_of, eligible_of = cust.local.tolist(), cust.eligible.tolist()
    dwell_laws, dwell_factor = c.dwell, c.dwell_factor.tolist()
    value_laws = c.order_value
    treatment = c.treatment

    ivs = s.interventions
    budgets = _Budgets(s)
    windows = [iv.window_days for iv in ivs]
    lasting = [iv.lasting for iv in ivs]
    targets = [frozenset(s.journey.index(n) for n in iv.stages) or None for iv in ivs]
    per_conversion = budgets.per_conversion
    reserves = budgets.reserves

    def settle(k: int, stage: int, eligible: int, reached: int, held: int) -> tuple[int, int, int]:
        """On entering a stage: who reaches the customer now, and who acts on them."""
        now = env.now
        active = 0
        for i in range(len(ivs)):
            bit = 1 << i
            if not eligible & bit:
                continue
            start, end = windows[i]
            if not reached & bit:
                if not (
                    start <= now < end
                    and (targets[i] is None or stage in targets[i])
                    and budgets.can_reach(i)
                ):
                    continue
                budgets.reach(i)
                reached |= bit
                if reserves[i]:
                    held |= bit
                reach_customer.append(k)
                reach_index.append(i)
                reach_time.append(now)
            if not (lasting[i] or now < end):
                continue
            if reserves[i] and not held & bit:
                if not budgets.reserve(i):
                    continue
                held |= bit
            active |= bit
        return active, reached, held

    def own_stream(k: int) -> np.random.Generator:
        return stream(seed, replication, channel_keys[channel_of[k]], _OVERFLOW, local_of[k])

    def customer(k: int):
        # this loop runs once per transition of every customer: keep it lean
        ch, p = channel_of[k], persona_of[k]
        base = local_of[k] * slots_per_customer
        choice, dwell = choice_item[ch], dwell_item[ch]
        cumulative = untreated[p]
        slots = list(first_slot)
        purchases = int(purchase[entry])
        extra = None
        stage = entry
        eligible = eligible_of[k]
        active = reached = held = 0
        if eligible:
            active, reached, held = settle(k, stage, eligible, reached, held)
        while (slot := slots[stage]) >= 0:
            if slot < end_slot[stage]:
                slots[stage] = slot + 1
                u = choice(base + slot)
                days = dwell(base + slot)
            else:
                extra = extra or own_stream(k)
                u = extra.random()
                days = float(dwell_laws[stage].quantile(extra.random())) * dwell_factor[p][stage]
            if active:
                tr = treatment(p, active)
                following = bisect_right(tr.cumulative[stage], u)
                days *= tr.dwell_factor[stage]
            else:
                following = bisect_right(cumulative[stage], u)
            if days > 0:
                yield timeout(days)
            if purchase[following]:
                if purchases < VALUE_BLOCK:
                    value = value_item[ch](local_of[k] * VALUE_BLOCK + purchases)
                else:
                    extra = extra or own_stream(k)
                    value = float(value_laws[p].quantile(extra.random()))
                purchases += 1
                if active:
                    value *= tr.value_factor
                    for i in range(len(ivs)):
                        if active >> i & 1 and per_conversion[i]:
                            budgets.convert(i, bool(held >> i & 1))
                            held &= ~(1 << i)
            else:
                value = 0.0
            add_customer(k)
            add_time(env.now)
            add_from(stage)
            add_to(following)
            add_value(value)
            add_treated(active)
            stage = following
            if eligible:
                active, reached, held = settle(k, stage, eligible, reached, held)
        for i in range(len(ivs)):
            if held >> i & 1:
                budgets.release(i)

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
    moves = (log_customer, log_time, log_from, log_to, log_value, log_treated)
    return _event_log(c, cust, replication, moves, (reach_customer, reach_index, reach_time))


def _event_log(
    c: CompiledScenario,
    cust: _Customers,
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
        stages=c.names,
        personas=c.scenario.persona_names,
        channels=c.scenario.channel_names,
        horizon_days=c.scenario.horizon_days,
        interventions=tuple(iv.name for iv in c.scenario.interventions),
        reach_replication=np.full(len(reach_customer), replication, dtype=np.int32),
        reach_customer=reach_customer,
        reach_intervention=np.frombuffer(reaches[1], dtype=np.int16).copy(),
        reach_time=np.frombuffer(reaches[2], dtype=np.float64).copy(),
    )
