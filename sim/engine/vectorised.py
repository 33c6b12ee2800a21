"""The vectorised engine: all customers of a replication advance together in numpy.

Customers who do not interact can be simulated wave by wave: in each wave every customer
still in the journey makes their next move at once (draws the dwell time and the choice of
the stage they are in, moves, and settles which interventions reach and act on them in the
stage they enter). It runs every scenario feature that does not couple customers; budgets
do (a shared purse served in time order), so budgeted scenarios stay with the SimPy engine.

It reads the same random streams as the SimPy engine (:mod:`sim.engine.streams`): customer k
of a channel takes the k-th number of each (stage, visit) stream, and a customer who needs more
visits than are pre-drawn continues on their own overflow stream in the same order. Only the
numbers a wave needs are drawn (a window of each stream, reached with ``advance``), so the
engine never holds the full pre-drawn tables. For the same seed both engines write the same
event log, row for row, including SimPy's order among moves at equal times: events at one time
are processed by priority (a customer's start first) and then in the order they were scheduled,
which is the processing order of the events that scheduled them (resolved here by ranking
events until the ranks settle).
"""

from __future__ import annotations

import numpy as np

from sim.engine import limits, many_streams
from sim.engine.compiled import CompiledScenario
from sim.engine.limits import runaway
from sim.engine.log_writer import scattered_event_log, stage_info
from sim.engine.streams import (
    CHOICE,
    DWELL,
    OVERFLOW,
    VALUE,
    VALUE_BLOCK,
    draw_entrants,
    name_key,
    stream,
)
from sim.errors import ScenarioError
from sim.events import EventLog
from sim.model.acquisition import COHORT_CHANNEL, Cohort
from sim.model.distributions import Distribution, Empirical, Exponential, Fixed, Gamma, Lognormal
from sim.model.intervention import NewTransition
from sim.model.loops import reachable
from sim.model.scenario import Scenario

#: Numbers first drawn from a customer's own overflow stream.
OWN_BLOCK = 16

#: Streams of channels up to this many customers are drawn whole and kept, up to
#: CACHE_NUMBERS numbers in all (oldest dropped first); larger ones are read in windows.
CACHED_STREAM, CACHE_NUMBERS = 1 << 17, 1 << 24


def cannot_run(scenario: Scenario) -> str | None:
    """The feature of ``scenario`` this engine cannot run (None: it runs it)."""
    reason = scenario.interacting
    if reason is not None:
        return f"its customers interact: {reason}"
    for iv in scenario.interventions:
        if iv.budget is not None:
            return (
                f"intervention '{iv.name}' has a budget (a budget is shared by all customers, "
                "spent in time order)"
            )
    return None


class _Draws:
    """The random numbers of one replication, drawn when a wave needs them.

    Arrivals, personas and reach draws mirror :func:`sim.engine.streams.draw_customers` (a test
    holds them equal); choice, dwell and order-value uniforms are read as windows of the same
    streams.
    """

    def __init__(self, c: CompiledScenario, seed: int, replication: int) -> None:
        s = c.scenario
        self.c, self.seed, self.replication = c, seed, replication
        # a chunk of a cohort: row k is customer first + k of the whole cohort's streams
        self.first = c.first_customer
        if isinstance(s.acquisition, Cohort):
            channels = [(COHORT_CHANNEL, None)]
        else:
            channels = [(ch.name, ch.rate_per_day) for ch in s.acquisition.channels]
        self.keys = [name_key(name) for name, _ in channels]
        self.stage_keys = [name_key(n) for n in c.names]
        parts = [self._channel(name, rate) for name, rate in channels]
        arrival = np.concatenate([p[0] for p in parts])
        order = np.argsort(arrival, kind="stable")
        self.arrival = arrival[order]
        self.persona = np.concatenate([p[1] for p in parts])[order]
        self.eligible = np.concatenate([p[2] for p in parts])[order]
        self.channel = np.concatenate(
            [np.full(len(p[0]), i, dtype=np.int64) for i, p in enumerate(parts)]
        )[order]
        self.local = np.concatenate([np.arange(len(p[0])) for p in parts])[order]
        self.sizes = [len(p[0]) for p in parts]
        self._cache: dict[tuple[int, ...], np.ndarray] = {}
        self._cached = 0
        # customers' own streams, drawn for all who need one at once (row per customer)
        self._own_row = np.full(len(self.arrival), -1, dtype=np.int32)
        self._own_at = np.zeros(len(self.arrival), dtype=np.int32)
        self._own_width = OWN_BLOCK
        self._own_customers = np.empty(0, dtype=np.int64)
        self._own_table = np.empty((0, OWN_BLOCK))

    def _channel(self, name: str, rate: float | None) -> tuple[np.ndarray, ...]:
        """Arrival days, personas and intervention eligibility of one channel's customers."""
        return draw_entrants(self.c, self.seed, self.replication, name, rate)

    def uniforms(self, channel: int, local: np.ndarray, *purpose: int) -> np.ndarray:
        """The numbers of customers ``local`` (of ``channel``) in the stream of ``purpose``."""
        size = self.sizes[channel]
        if self.first:
            local = local + self.first
        elif size <= CACHED_STREAM:
            # small channels: each stream drawn once, whole, since many waves come back to it
            key = (channel, *purpose)
            whole = self._cache.get(key)
            if whole is None:
                whole = stream(self.seed, self.replication, self.keys[channel], *purpose)
                whole = self._cache[key] = whole.random(size)
                self._cached += size
                while self._cached > CACHE_NUMBERS:
                    self._cached -= len(self._cache.pop(next(iter(self._cache))))
            return whole[local]
        lo = int(local.min())
        hi = int(local.max()) + 1
        g = stream(self.seed, self.replication, self.keys[channel], *purpose)
        if lo:
            # each double takes one 64-bit output: skip to the first customer needed
            g.bit_generator.advance(lo)
        return g.random(hi - lo)[local - lo]

    def own(self, customers: np.ndarray, count: int) -> np.ndarray:
        """The next ``count`` numbers of each customer's own overflow stream, (len, count)
        (each customer at most once per call)."""
        rows = self._own_row[customers]
        new = customers[rows < 0]
        if len(new):
            self._own_row[new] = len(self._own_table) + np.arange(len(new))
            self._own_customers = np.concatenate([self._own_customers, new])
            self._own_table = np.concatenate([self._own_table, self._own_block(new)])
            rows = self._own_row[customers]
        at = self._own_at[customers]
        if len(at) and int(at.max()) + count > self._own_table.shape[1]:
            # rare: a customer needs more than drawn so far; draw every row twice as far
            self._own_width = max(2 * self._own_width, int(at.max()) + count)
            self._own_table = self._own_block(self._own_customers)
        self._own_at[customers] += count
        return self._own_table[rows[:, None], at[:, None] + np.arange(count)]

    def _own_block(self, customers: np.ndarray) -> np.ndarray:
        out = np.empty((len(customers), self._own_width))
        for ch in np.unique(self.channel[customers]).tolist():
            mine = self.channel[customers] == ch
            out[mine] = many_streams.uniforms(
                self.seed,
                (self.replication, self.keys[ch], OVERFLOW),
                self.first + self.local[customers[mine]],
                self._own_width,
            )
        return out


def _choices(c: CompiledScenario) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """Per stage, for untreated customers: the ways out (stage codes, in order), each
    persona's thresholds between them, (personas, ways - 1), and whether the choice is fixed.

    ``bisect_right`` on a persona's cumulative row is the way whose index is the number of
    thresholds at or below u (persona effects never close a way out, so every persona has the
    same ones). A stage with one way out that no intervention opens another from needs no
    number at all.
    """
    opened = {e.stage for iv in c.scenario.interventions for e in iv.of_kind(NewTransition)}
    untreated = np.array(c.untreated)
    out = []
    for stage, name in enumerate(c.names):
        row = untreated[0, stage]
        ways = np.flatnonzero(row > np.concatenate([[0.0], row[:-1]]))
        ways = ways if len(ways) else np.array([stage])
        fixed = len(ways) == 1 and name not in opened
        out.append((ways, untreated[:, stage, ways[:-1]], fixed))
    return out


def _cyclic_stages(c: CompiledScenario) -> np.ndarray:
    """Stages a customer can come back to (on a cycle of the journey, or of the transitions
    interventions open)."""
    size = len(c.names)
    step = np.zeros((size, size), dtype=bool)
    for a, b in stage_info(c.scenario)["edges"]:
        step[a, b] = True
    reach = reachable(step)
    return np.flatnonzero(np.diag(reach))


def _groups(key: np.ndarray) -> list[np.ndarray]:
    """Positions of equal keys, one array per distinct key (in key order)."""
    if len(key) == 0:
        return []
    if key.min() == key.max():
        return [np.arange(len(key))]
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, cuts)


#: Laws whose quantile uses only ufuncs and exact arithmetic, so that it gives the same bits
#: for a number alone as within an array (numpy's scalar ``**`` is not its array power).
_SAME_ALONE = (Exponential, Gamma, Lognormal, Fixed, Empirical)


def _quantiles(laws: list[Distribution], u: np.ndarray) -> np.ndarray:
    """Quantiles of numbers each with its own law, bit for bit as the SimPy engine computes
    an overflow draw (one number at a time)."""
    out = np.empty(len(u))
    alone = []
    ids = np.array([id(x) for x in laws])
    for law in {id(x): x for x in laws}.values():
        mine = np.flatnonzero(ids == id(law))
        if isinstance(law, _SAME_ALONE):
            out[mine] = law.quantile(u[mine])
        else:
            alone.append((law, mine))
    for law, mine in alone:
        out[mine] = [float(law.quantile(x)) for x in u[mine].tolist()]
    return out


def _start_times(arrival: np.ndarray) -> np.ndarray:
    """The clock at which SimPy's arrival process starts each customer: it advances by
    ``arrival - now``, which can land an ulp away from the arrival when the two are not
    within a factor of two; where it does, the chain is followed one customer at a time."""
    n = len(arrival)
    prev = np.concatenate([[0.0], arrival[:-1]])
    start = np.where(arrival > prev, prev + (arrival - prev), prev)
    bad = np.flatnonzero(start != arrival)
    done = 0
    for i in bad.tolist():
        if i < done:
            continue
        now = float(start[i])
        j = i + 1
        while j < n:
            day = float(arrival[j])
            if day > now:
                now = now + (day - now)
            start[j] = now
            j += 1
            if now == day:
                break
        done = j
    return start


def _events(
    start: np.ndarray, customer: np.ndarray, time: np.ndarray, timed: np.ndarray
) -> tuple[np.ndarray, ...]:
    """SimPy's events behind the moves (in wave order): customer k's start is event k; a move
    after a wait is a new event (n, n + 1, ... in wave order), scheduled by the event of the
    customer's previous move (or their start); a move without a wait belongs to the event of
    the move before it. Returns each move's event, and each event's time and parent (-1)."""
    n = len(start)
    ids = np.where(timed, n + np.cumsum(timed) - 1, -1)
    # each customer's moves in order: the event in force is the last new one, else the start
    by_customer = np.argsort(customer, kind="stable")
    who = customer[by_customer]
    first = np.ones(len(who), dtype=bool)
    first[1:] = who[1:] != who[:-1]
    block_start = np.maximum.accumulate(np.where(first, np.arange(len(who)), 0))
    last_new = np.maximum.accumulate(np.where(timed[by_customer], np.arange(len(who)), -1))
    own = last_new >= block_start
    event = np.empty(len(who), dtype=np.int64)
    event[by_customer] = np.where(own, ids[by_customer][np.maximum(last_new, 0)], who)
    # the event before a new one: that of the customer's previous move, or their start
    before = np.where(first, who, np.roll(event[by_customer], 1))
    parent_of = np.empty(len(who), dtype=np.int64)
    parent_of[by_customer] = before
    ev_time = np.concatenate([start, time[timed]])
    ev_parent = np.concatenate([np.full(n, -1), parent_of[timed]])
    return event, ev_time, ev_parent


def _event_ranks(time: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Processing order of events, as SimPy's queue gives it: by time, then a customer's start
    (urgent) before timeouts, starts in customer order, timeouts in the order they were
    scheduled (the rank of the event that scheduled them). Only events that share a time
    with another are reordered, until their ranks settle (one round per level of waits)."""
    is_root = parent < 0
    priority = (~is_root).astype(np.int8)
    root = np.where(is_root, np.arange(len(time)), 0)  # starts are events 0..n-1
    order = np.lexsort((root, priority, time))
    rank = np.empty(len(time), dtype=np.int64)
    rank[order] = np.arange(len(time))
    ts = time[order]
    same = ts[1:] == ts[:-1]
    run = np.zeros(len(time), dtype=bool)
    run[1:] |= same
    run[:-1] |= same
    at = np.flatnonzero(run)
    tied, tied_time = order[at], ts[at]
    for _ in range(len(at) + 1):
        key = np.where(is_root[tied], root[tied], rank[np.maximum(parent[tied], 0)])
        again = tied[np.lexsort((key, priority[tied], tied_time))]
        if np.array_equal(again, tied):
            break
        tied = again
        rank[tied] = at
    return rank


def _stable_order(time: np.ndarray) -> np.ndarray:
    """``argsort(time, kind='stable')``, faster: numpy's vectorised quicksort, then each run of
    equal times put back in the original order."""
    order = np.argsort(time)
    ts = time[order]
    same = ts[1:] == ts[:-1]
    if same.any():
        run = np.zeros(len(time), dtype=bool)
        run[1:] |= same
        run[:-1] |= same
        at = np.flatnonzero(run)
        tied = order[at]
        order[at] = tied[np.lexsort((tied, ts[at]))]
    return order


def _tied(sorted_time: np.ndarray, customer: np.ndarray, order: np.ndarray) -> bool:
    """Whether two different customers have records at one time."""
    same = np.flatnonzero(sorted_time[1:] == sorted_time[:-1])
    return bool(np.any(customer[order[same]] != customer[order[same + 1]]))


class _Treatments:
    """Per (persona, acting interventions) tables as arrays, gathered per customer."""

    def __init__(self, c: CompiledScenario) -> None:
        self.c = c
        self.cache: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    def tables(self, persona: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cumulative rows (m, S, S), dwell factors (m, S) and value factors (m,)."""
        key = (persona.astype(np.int64) << 32) | active
        unique, inverse = np.unique(key, return_inverse=True)
        cums, dwells, values = [], [], []
        for k in unique.tolist():
            found = self.cache.get(k)
            if found is None:
                tr = self.c.treatment(k >> 32, k & 0xFFFFFFFF)
                found = (np.array(tr.cumulative), np.array(tr.dwell_factor), tr.value_factor)
                self.cache[k] = found
            cums.append(found[0])
            dwells.append(found[1])
            values.append(found[2])
        return np.stack(cums), np.stack(dwells), np.array(values), inverse


class _Active:
    """The customers still in the journey, one array per attribute (row i: one customer)."""

    def __init__(self, **columns: np.ndarray | None) -> None:
        # without interventions there is nothing to settle: no eligibility, reach or acting bits
        self.fields = [name for name, column in columns.items() if column is not None]
        for name, column in columns.items():
            setattr(self, name, column)

    def channel(self, rows: np.ndarray) -> np.ndarray:
        """Channel of the customers at ``rows``."""
        return np.zeros(len(rows), dtype=np.int64) if self.ch is None else self.ch[rows]

    def local(self, rows: np.ndarray) -> np.ndarray:
        """Number within their channel of the customers at ``rows``."""
        return self.k[rows] if self.loc is None else self.loc[rows]

    def keep(self, mask: np.ndarray) -> None:
        """Drop the customers where ``mask`` is False."""
        if not mask.all():
            for name in self.fields:
                setattr(self, name, getattr(self, name)[mask])


class _Settle:
    """Interventions on entering a stage, as the SimPy engine's ``settle`` (without budgets):
    an eligible customer entering a target stage inside the window is reached (once, with a
    reach record); a reached intervention acts during the window, or for good when lasting."""

    def __init__(self, c: CompiledScenario) -> None:
        s = c.scenario
        stages = np.arange(len(c.names))
        self.windows = [iv.window_days for iv in s.interventions]
        self.lasting = [iv.lasting for iv in s.interventions]
        self.targets = [
            np.isin(stages, [s.journey.index(x) for x in iv.stages]) if iv.stages else stages >= 0
            for iv in s.interventions
        ]
        self.records: list[tuple[np.ndarray, ...]] = []

    def __call__(self, a: _Active, row: np.ndarray) -> None:
        """Settle for the customers ``a`` entering ``a.st`` at ``a.t``; ``row`` is where each
        one's move into it was logged (-1: their start), to order the reach records later."""
        if not self.windows:
            return
        a.act = np.zeros(len(a.k), dtype=np.int64)
        now = a.t
        for i, (begin, end) in enumerate(self.windows):
            bit = 1 << i
            eligible = (a.elig & bit) != 0
            if not eligible.any():
                continue
            new = eligible & ((a.reached & bit) == 0) & (begin <= now) & (now < end)
            new &= self.targets[i][a.st]
            if new.any():
                a.reached[new] |= bit
                who = np.flatnonzero(new)
                self.records.append(
                    (a.k[who], np.full(len(who), i, dtype=np.int16), now[who], row[who])
                )
            acting = eligible & ((a.reached & bit) != 0)
            if not self.lasting[i]:
                acting &= now < end
            a.act[acting] |= bit


def simulate(compiled: CompiledScenario, seed: int, replication: int = 0) -> EventLog:
    """Run one replication of a compiled scenario, all customers at once, and return its log."""
    c = compiled
    s = c.scenario
    reason = cannot_run(s)
    if reason is not None:
        raise ScenarioError(
            f"the vectorised engine cannot run scenario '{s.name}': {reason}",
            field="engine",
            fix="use engine='auto' or engine='simpy'",
        )
    draws = _Draws(c, seed, replication)
    horizon = s.horizon_days
    stages = len(c.names)
    block = np.array(c.block, dtype=np.int64)
    purchase = np.array(c.purchase)
    absorbing = np.array(c.absorbing)
    untreated = np.array(c.untreated)  # (personas, S, S) cumulative rows
    treatments = _Treatments(c)
    settle = _Settle(c)
    ivs = s.interventions
    max_block = int(block.max()) + 1
    choices = _choices(c)
    # only a stage on a cycle is visited more than once: count visits there alone
    cyclic = _cyclic_stages(c)
    visit_column = np.full(stages, -1)
    visit_column[cyclic] = np.arange(len(cyclic))

    start = draws.arrival if isinstance(s.acquisition, Cohort) else _start_times(draws.arrival)
    # a customer whose start falls at the horizon never starts (SimPy stops first)
    k = np.flatnonzero(start < horizon)
    a = _Active(
        k=k,
        # with one channel a customer's number within it is their number: k
        ch=draws.channel[k] if len(draws.keys) > 1 else None,
        loc=draws.local[k] if len(draws.keys) > 1 else None,
        per=draws.persona[k],
        elig=draws.eligible[k] if ivs else None,
        t=start[k],
        st=np.full(len(k), c.entry, dtype=np.int64),
        bought=np.full(len(k), int(c.purchase[c.entry]), dtype=np.int64),
        visits=np.zeros((len(k), len(cyclic)), dtype=np.int32) if len(cyclic) else None,
        reached=np.zeros(len(k), dtype=np.int64) if ivs else None,
        act=np.zeros(len(k), dtype=np.int64) if ivs else None,
    )
    logged = 0
    rows: list[tuple[np.ndarray, ...]] = []

    settle(a, np.full(len(k), -1))
    a.keep(~absorbing[a.st])
    # a wave moves every active customer once, so waves count the busiest customer's moves
    max_moves, waves = limits.MAX_MOVES_PER_CUSTOMER, 0
    while (m := len(a.k)) > 0:
        waves += 1
        if waves > max_moves:
            raise runaway(c, int(a.k[0]), int(a.st[0]), float(a.t[0]), max_moves)
        here = np.arange(m)
        column = visit_column[a.st]
        if len(cyclic):
            visit = np.where(column >= 0, a.visits[here, column], 0)
            looping = np.flatnonzero(column >= 0)
            a.visits[looping, column[looping]] += 1
        else:
            visit = np.zeros(m, dtype=np.int32)
        u = np.empty(m)
        days = np.empty(m)
        following = np.empty(m, dtype=np.int64)
        pre = visit < block[a.st]
        inside = here if pre.all() else np.flatnonzero(pre)
        for g in _groups((a.channel(inside) * stages + a.st[inside]) * max_block + visit[inside]):
            who = inside[g]
            stage, v, ch = int(a.st[who[0]]), int(visit[who[0]]), int(a.channel(who[:1])[0])
            key = draws.stage_keys[stage]
            # a number that cannot change the outcome is not drawn (one way out; a fixed wait)
            ways, thresholds, fixed = choices[stage]
            if fixed:
                u[who] = 0.5
                following[who] = ways[0]
            else:
                u[who] = draws.uniforms(ch, a.local(who), CHOICE, key, v)
                crossed = (thresholds[a.per[who]] <= u[who, None]).sum(axis=1)
                following[who] = ways[crossed]
            law = c.dwell[stage]
            ud = (
                np.zeros(len(who))
                if isinstance(law, Fixed)
                else draws.uniforms(ch, a.local(who), DWELL, key, v)
            )
            days[who] = law.quantile(ud) * c.dwell_factor[a.per[who], stage]
        if len(inside) < m:
            # beyond the pre-drawn visits: the customer's own stream, choice then dwell
            over = np.flatnonzero(~pre)
            drawn = draws.own(a.k[over], 2)
            u[over], ud = drawn[:, 0], drawn[:, 1]
            laws = [c.dwell[x] for x in a.st[over].tolist()]
            days[over] = _quantiles(laws, ud) * c.dwell_factor[a.per[over], a.st[over]]
            # bisect_right on each customer's cumulative row
            following[over] = (untreated[a.per[over], a.st[over]] <= u[over, None]).sum(axis=1)
        value_factor = None
        treated = np.flatnonzero(a.act) if ivs else ()
        if len(treated):
            cums, dwells, values, inv = treatments.tables(a.per[treated], a.act[treated])
            following[treated] = (cums[inv, a.st[treated]] <= u[treated, None]).sum(axis=1)
            days[treated] *= dwells[inv, a.st[treated]]
            value_factor = np.ones(m)
            value_factor[treated] = values[inv]
        timed = days > 0
        now = np.where(timed, a.t + days, a.t)
        # a move at or after the horizon never happens: the customer is censored
        alive = now < horizon
        if not alive.all():
            a.keep(alive)
            following, now, timed = following[alive], now[alive], timed[alive]
            if value_factor is not None:
                value_factor = value_factor[alive]
            m = len(a.k)
        value = np.zeros(m)
        buying = np.flatnonzero(purchase[following])
        if len(buying):
            _order_values(c, draws, a, buying, value)
            if value_factor is not None:
                value[buying] *= value_factor[buying]
        # a move after a wait is a new SimPy event (``timed``), else part of the last one
        who, came_from, went = (
            a.k.astype(np.int32),
            a.st.astype(np.int16),
            following.astype(np.int16),
        )
        rows.append((who, now, came_from, went, value, a.act, timed))
        a.st, a.t = following, now
        settle(a, logged + np.arange(m))
        logged += m
        a.keep(~absorbing[a.st])
    return _assemble(c, draws, start, replication, rows, settle.records)


def _order_values(
    c: CompiledScenario, draws: _Draws, a: _Active, buying: np.ndarray, value: np.ndarray
) -> None:
    """Order values of the customers ``buying`` now: their next pre-drawn value, or beyond
    those a number of their own stream; counts their purchases."""
    nth = a.bought[buying]
    pre = nth < VALUE_BLOCK
    inside = buying[pre]
    for g in _groups(a.channel(inside) * VALUE_BLOCK + nth[pre]):
        who = inside[g]
        ch = int(a.channel(who[:1])[0])
        uv = draws.uniforms(ch, a.local(who), VALUE, int(a.bought[who[0]]))
        for p in np.unique(a.per[who]).tolist():
            mine = a.per[who] == p
            value[who[mine]] = c.order_value[p].quantile(uv[mine])
    over = buying[~pre]
    if len(over):
        uv = draws.own(a.k[over], 1)[:, 0]
        value[over] = _quantiles([c.order_value[p] for p in a.per[over].tolist()], uv)
    a.bought[buying] += 1


def _assemble(c, draws, start, replication, rows, reaches) -> EventLog:
    """Put the moves and reach records in SimPy's processing order and write the log."""
    time = np.concatenate([r[1] for r in rows]) if rows else np.empty(0)
    customer = np.concatenate([r[0] for r in rows]) if rows else np.empty(0, dtype=np.int64)
    if reaches:
        r_customer, r_index, r_time, r_row = (
            np.concatenate([r[j] for r in reaches]) for j in range(4)
        )
    else:
        r_customer, r_index = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int16)
        r_time, r_row = np.empty(0), np.empty(0, dtype=np.int64)
    order = _stable_order(time)
    r_order = np.argsort(r_time, kind="stable")
    # one customer's moves are in wave order, which is their processing order; only moves of
    # different customers at one time need SimPy's queue order
    sorted_time = time[order]
    if _tied(sorted_time, customer, order) or _tied(r_time[r_order], r_customer, r_order):
        timed = np.concatenate([r[6] for r in rows]) if rows else np.empty(0, dtype=bool)
        event, ev_time, ev_parent = _events(start, customer, time, timed)
        rank = _event_ranks(ev_time, ev_parent)
        order = np.argsort(rank[event], kind="stable")
        sorted_time = time[order]
        r_event = r_customer.copy()  # reached at their start: the start event
        after_move = r_row >= 0
        r_event[after_move] = event[r_row[after_move]]
        r_order = np.argsort(rank[r_event], kind="stable")
    del customer
    entry_values = np.zeros(len(draws.arrival))
    if c.purchase[c.entry]:
        for ch in range(len(draws.keys)):
            mine = np.flatnonzero(draws.channel == ch)
            if len(mine) == 0:
                continue
            uv = draws.uniforms(ch, draws.local[mine], VALUE, 0)
            for p in np.unique(draws.persona[mine]).tolist():
                sel = draws.persona[mine] == p
                entry_values[mine[sel]] = c.order_value[p].quantile(uv[sel])
    treated = bool(c.scenario.interventions)
    return scattered_event_log(
        c,
        replication,
        entries=(draws.arrival, draws.persona, draws.channel, entry_values),
        moves=[(r[0], r[1], r[2], r[3], r[4], r[5] if treated else None) for r in rows],
        order=order,
        sorted_time=sorted_time,
        reaches=(r_customer[r_order], r_index[r_order], r_time[r_order]),
    )
