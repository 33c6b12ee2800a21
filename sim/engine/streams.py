"""Random streams and pre-draws shared by the engines.

Every customer owns pre-drawn numbers: for each transient stage and visit number, one uniform
that picks the next stage and one that sets the dwell time; for each purchase, one that sets
the order value; for each intervention, one that decides whether the customer is within its
reach. They are drawn in numpy, one stream per (replication, channel, purpose, stage or
intervention, visit), the keys derived from names. Customer k of a channel takes the k-th
number of each stream, so their journey does not depend on how many other customers there
are, and two scenarios that differ in one place share every other number (common random
numbers). How many visits are pre-drawn per stage follows from the journey's base chain (so
that about 1% of customers reaching a stage need more); a customer who needs more continues
on a stream of their own (purpose ``OVERFLOW``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.model.acquisition import COHORT_CHANNEL, Cohort
from sim.model.intervention import ArrivalRateFactor
from sim.model.scenario import Scenario

#: Pre-drawn order values per customer.
VALUE_BLOCK = 4

#: Purposes of the random streams of one channel in one replication.
ARRIVALS, PERSONA, CHOICE, DWELL, VALUE, OVERFLOW, REACH = range(7)
#: Purposes of a market's streams beside those: the unit-rate clock of adoptions, and the
#: uniform that says whether an adoption came by word of mouth.
CLOCK, SOURCE = 7, 8
#: Purpose of the patience draws of stages whose customers may give up queueing.
PATIENCE = 9
#: Purpose of the uniform that picks the referrer of a market adoption made by referral.
REFERRER = 10
#: Purpose of the uniforms that draw the service outcome of a visit (per stage and visit).
OUTCOME = 11
#: Purposes of negative word of mouth: a detractor's contacts (keyed by the detractor), and
#: the uniform that says whether a market adopter is someone a detractor put off.
DETRACTOR, PUT_OFF = 12, 13


def name_key(name: str) -> int:
    """Stable stream key of a channel, stage or intervention, so adding one elsewhere shifts
    no stream."""
    return zlib.crc32(name.encode())


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator of one purpose: children of ``SeedSequence(seed)`` addressed by ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass(frozen=True, eq=False)
class Customers:
    """Pre-drawn state of all customers of one replication.

    Customers are numbered in order of arrival; the pre-drawn tables stay per channel, indexed
    by the customer's ``local`` number within their channel (merging them would copy them).
    """

    arrival: np.ndarray
    persona: np.ndarray
    channel: np.ndarray
    local: np.ndarray  # row within the channel's tables
    eligible: np.ndarray  # bit i: persona, channel and reach draw admit intervention i
    choice: list[np.ndarray]  # per channel (n, slots): uniform choosing the next stage
    dwell: list[np.ndarray]  # per channel (n, slots): days spent per (stage, visit)
    value: list[np.ndarray]  # per channel (n, VALUE_BLOCK): order values of first purchases
    #: per channel (n, slots): days of patience per (stage, visit); None: no stage has patience
    patience: list[np.ndarray | None] = field(default_factory=list)
    #: number of the first customer in the channel (a chunk of a cohort): the customer in
    #: row ``local`` is number ``first + local``, the key of their own (overflow) stream
    first: int = 0


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
    first = c.first_customer
    if rate is None:
        arrival = np.zeros(s.acquisition.size)
    else:
        if first:
            raise ValueError("only a day-0 cohort can be simulated in chunks of customers")
        arrival = _arrivals(
            stream(seed, replication, key, ARRIVALS), *arrival_segments(s, name, rate)
        )
    n = len(arrival)
    persona, eligible, choice, dwell, value, patience = draw_journeys(
        c, seed, (replication, key), n, s.persona_mix(name), first
    )
    for i, iv in enumerate(s.interventions):
        if iv.channels and name not in iv.channels:
            eligible &= ~(1 << i)
    local = np.arange(n)
    return arrival, persona, np.full(n, index), local, eligible, choice, dwell, value, patience


def personas_and_eligibility(
    s: Scenario, uniforms: Callable[..., np.ndarray], mix: Sequence[float], channel: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Customers' personas (by ``mix``) and intervention eligibility (bit i: the persona,
    the channel when given, and the reach draw admit intervention i), from ``uniforms(*purpose)``
    giving their numbers of a stream: the one rule of every engine."""
    cum_mix = np.cumsum(mix)
    persona = np.minimum(
        np.searchsorted(cum_mix, uniforms(PERSONA), side="right"), len(cum_mix) - 1
    )
    eligible = np.zeros(len(persona), dtype=np.int64)
    for i, iv in enumerate(s.interventions):
        ok = uniforms(REACH, name_key(iv.name)) < iv.reach
        if iv.personas:
            ok &= np.isin(persona, [s.persona_names.index(p) for p in iv.personas])
        if channel and iv.channels and channel not in iv.channels:
            ok[:] = False
        eligible[ok] |= 1 << i
    return persona, eligible


def draw_entrants(
    c: CompiledScenario, seed: int, replication: int, name: str, rate: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival days, personas and intervention eligibility of one channel's customers
    (``rate`` None: the day-0 cohort), as :func:`draw_customers` draws them; a chunk of a
    cohort (``c.first_customer``) skips each stream ahead to its first customer."""
    s = c.scenario
    key = name_key(name)
    first = c.first_customer
    if rate is None:
        arrival = np.zeros(s.acquisition.size)
    else:
        if first:
            raise ValueError("only a day-0 cohort can be simulated in chunks of customers")
        arrival = _arrivals(
            stream(seed, replication, key, ARRIVALS), *arrival_segments(s, name, rate)
        )
    n = len(arrival)

    def uniforms(*purpose: int) -> np.ndarray:
        g = stream(seed, replication, key, *purpose)
        if first:
            g.bit_generator.advance(first)
        return g.random(n)

    persona, eligible = personas_and_eligibility(s, uniforms, s.persona_mix(name), name)
    return arrival, persona, eligible


def draw_journeys(
    c: CompiledScenario,
    seed: int,
    head: tuple[int, ...],
    n: int,
    mix: tuple[float, ...],
    first: int = 0,
) -> tuple[np.ndarray, ...]:
    """Persona, intervention eligibility (before any channel condition), choice and dwell
    tables, order values and patience (None when no stage has any) of ``n`` customers whose
    streams are keyed by ``head`` (replication and channel, and for a market the block of
    adopters). ``first`` skips each stream ahead to customer ``first`` (a chunk of a cohort),
    so a chunk's customers draw exactly the numbers they draw in the whole cohort."""
    s = c.scenario

    def uniforms(*purpose: int) -> np.ndarray:
        """Numbers first .. first + n - 1 of a stream (one 64-bit step per uniform)."""
        rng = stream(seed, *head, *purpose)
        if first:
            rng.bit_generator.advance(first)
        return rng.random(n)

    persona, eligible = personas_and_eligibility(s, uniforms, mix)
    groups = [(int(p), np.flatnonzero(persona == p)) for p in np.unique(persona)]
    choice = np.empty((n, c.slots))
    dwell = np.empty((n, c.slots))
    for stage, (b, slot) in enumerate(zip(c.block, c.first_slot, strict=True)):
        stage_key = name_key(c.names[stage])
        factor = c.dwell_factor[persona, stage]
        for visit in range(b):
            choice[:, slot + visit] = uniforms(CHOICE, stage_key, visit)
            u_dwell = uniforms(DWELL, stage_key, visit)
            dwell[:, slot + visit] = c.dwell[stage].quantile(u_dwell) * factor
    value = np.empty((n, VALUE_BLOCK))
    for purchase in range(VALUE_BLOCK):
        u_value = uniforms(VALUE, purchase)
        value[:, purchase] = c.order_values(groups, u_value)
    patience = None
    if any(st.patience is not None for st in s.journey.stages):
        patience = np.zeros((n, c.slots))
        factor = np.array([p.patience_factor for p in s.personas])[persona]
        for stage, (b, slot) in enumerate(zip(c.block, c.first_slot, strict=True)):
            law = s.journey.stages[stage].patience
            if law is None:
                continue
            stage_key = name_key(c.names[stage])
            for visit in range(b):
                u = uniforms(PATIENCE, stage_key, visit)
                patience[:, slot + visit] = law.quantile(u) * factor
    return persona, eligible, choice, dwell, value, patience


def draw_outcomes(
    c: CompiledScenario, seed: int, head: tuple[int, ...], n: int, first: int = 0
) -> np.ndarray | None:
    """Uniforms (n, slots) that draw the service outcome of each pre-drawn visit of ``n``
    customers keyed by ``head`` (as :func:`draw_journeys`), from one stream per (stage,
    visit): a customer's outcome on their v-th visit to a stage does not depend on anyone
    else's events. None when no stage has outcomes."""
    sat = c.scenario.satisfaction
    if sat is None or not sat.outcomes:
        return None
    out = np.zeros((n, c.slots))
    for stage, _ in sat.outcomes:
        s = c.names.index(stage)
        stage_key = name_key(stage)
        for visit in range(c.block[s]):
            rng = stream(seed, *head, OUTCOME, stage_key, visit)
            if first:
                rng.bit_generator.advance(first)
            out[:, c.first_slot[s] + visit] = rng.random(n)
    return out


def draw_customers(c: CompiledScenario, seed: int, replication: int) -> Customers:
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

    return Customers(
        arrival=arrival[order],
        persona=merged(1),
        channel=merged(2),
        local=merged(3),
        eligible=merged(4),
        choice=[p[5] for p in parts],
        dwell=[p[6] for p in parts],
        value=[p[7] for p in parts],
        patience=[p[8] for p in parts],
        first=c.first_customer,
    )
