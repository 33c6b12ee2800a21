"""The SimPy engine for customers who do not interact: reusable events on SimPy's kernel.

A customer who shares nothing with others (no resource, no market, no score) needs no
process: between two moves they only wait. Each customer owns one small event, re-scheduled
with ``env.schedule`` for every wait; its callback makes the move, settles the interventions
of the stage entered, draws the next wait and schedules the same event again. The clock and
the event queue are SimPy's own, and the events are scheduled in the same order, with the
same priorities and at the same times as the process-per-customer path schedules its
``Initialize`` and ``Timeout`` events, so both write the same event log, byte for byte
(budgets, served in time order, included). Per-customer state is held in flat arrays, not
objects.

Random numbers are read from the same streams (:mod:`sim.engine.streams`), drawn lazily:
one (stage, visit) column of a channel is drawn for a block of customers when the first of
them needs it, and dropped when no customer of the block can need it any more
(:class:`LazyDraws`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from array import array
from bisect import bisect_right
from heapq import heappush

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from sim.engine import lazy_draws, limits
from sim.engine.budgets import Budgets
from sim.engine.compiled import CompiledScenario
from sim.engine.lazy_draws import LazyDraws
from sim.engine.limits import runaway
from sim.engine.log_writer import scattered_event_log
from sim.engine.streams import OVERFLOW, VALUE_BLOCK, stream
from sim.events import EventLog
from sim.model.acquisition import Cohort
from sim.model.distributions import Fixed
from sim.model.logit import credited_moves


class _Wake:
    """A customer's reusable event: what SimPy's ``Environment.step`` reads of an event
    (its callbacks and ``_ok``), and the customer's number ``k``, set once it is made (a
    Python ``__init__`` would double the cost of making one, once per customer)."""

    __slots__ = ("callbacks", "k")
    _ok = True


def simulate(compiled: CompiledScenario, seed: int, replication: int = 0) -> EventLog:
    """Run one replication of a scenario whose customers do not interact (see
    :attr:`sim.model.scenario.Scenario.interacting`) on SimPy's kernel, one reusable event
    per customer; the same event log as the process-per-customer path."""
    c = compiled
    s = c.scenario
    if s.interacting is not None:
        raise ValueError(f"customers of this scenario interact: {s.interacting}")
    draws = LazyDraws(c, seed, replication)
    # the run's closures, SimPy's queue and the events left in it go when _drive returns
    moves, reaches = _drive(c, draws, seed, replication)
    draws.close()
    _return_freed_memory()
    entries = draws.entries()
    # the moves are in time order; their recording is let go column by column
    return scattered_event_log(c, replication, entries, moves, None, moves[0][1], reaches)


def _return_freed_memory() -> None:
    """Hand memory freed by the run back to the system (glibc keeps freed small blocks, which
    the event log's large arrays, mapped afresh, cannot reuse); a no-op elsewhere."""
    # the running program's own symbols: the C library it is linked with
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def _drive(c: CompiledScenario, draws: LazyDraws, seed: int, replication: int) -> tuple:
    """Run the replication; returns its moves (one part, in time order) and reach records."""
    s = c.scenario
    n = draws.size
    env = simpy.Environment()
    schedule = env.schedule

    # the moves, in the order they are made (which is time order); stages as bytes where
    # they fit (a bytearray appends without the argument parsing of an array's)
    log_customer, log_time, log_treated = array("i"), array("d"), array("q")
    small = len(c.names) <= 256
    log_from, log_to = (bytearray(), bytearray()) if small else (array("h"), array("h"))
    # order values, and the number of the move each belongs to
    log_value, log_value_at = array("d"), array("q")
    value_at = log_value_at.append
    add_customer, add_time = log_customer.append, log_time.append
    add_from, add_to, add_value = log_from.append, log_to.append, log_value.append
    add_treated = log_treated.append

    purchase, untreated = c.purchase, c.untreated
    stages = len(c.names)
    block = c.block
    first_slot = c.first_slot
    ending = tuple(f < 0 for f in first_slot)
    dwell_laws, dwell_factor = c.dwell, c.dwell_factor.tolist()
    value_laws = c.order_value
    fixed_value = [law.value if isinstance(law, Fixed) else None for law in value_laws]
    treatment = c.treatment
    max_moves = limits.MAX_MOVES_PER_CUSTOMER
    # every move is counted only when the limit is below the pre-drawn visits; otherwise only
    # moves made on a customer's own stream can reach it
    count_all = max_moves <= c.slots

    persona_of = draws.persona_list
    # per customer: stage, the stage the pending move goes to, visits made to each stage
    # (saturated at the pre-drawn block: beyond it the customer's own stream takes over),
    # order values drawn from the pre-drawn block
    stage_of = draws.stage_of
    next_of = array("h", bytes(2 * n))
    visits = draws.visits
    bought = draws.bought
    own: dict[int, np.random.Generator] = {}
    own_moves: dict[int, int] = {}

    ivs = s.interventions
    n_ivs = len(ivs)
    budgets = Budgets(s)
    settle_visit = budgets.settle
    reach_customer, reach_index, reach_time = budgets.reaches
    per_conversion = budgets.per_conversion
    charged = [
        [frozenset(np.flatnonzero(row & np.array(purchase)).tolist()) for row in moves]
        for moves in (credited_moves(s.journey, iv) for iv in ivs)
    ]
    eligible_of = draws.eligible_list
    if n_ivs:
        code = lazy_draws.mask_type(n_ivs)
        size = array(code).itemsize * n
        active_of, reached_of, held_of = (array(code, bytes(size)) for _ in range(3))

    def settle(k: int, stage: int, eligible: int) -> int:
        """On entering a stage: who acts on the customer (the rule of both paths,
        :meth:`Budgets.settle`, with the customer's state kept in the flat arrays)."""
        active, reached_of[k], held_of[k] = settle_visit(
            env._now, k, stage, eligible, reached_of[k], held_of[k]
        )
        active_of[k] = active
        return active

    # numbers of a customer's own stream passed over before it is made: a fixed law reads
    # no number, but takes its place in the stream (making a stream costs about 15 us, and
    # most customers beyond their pre-drawn purchases only buy at a fixed price)
    passed: dict[int, int] = {}

    def own_stream(k: int) -> np.random.Generator:
        g = own.get(k)
        if g is None:
            ch, local = draws.channel_and_local(k)
            g = own[k] = stream(seed, replication, draws.keys[ch], OVERFLOW, draws.first + local)
            skip = passed.pop(k, 0)
            if skip:
                # one 64-bit step per double
                g.bit_generator.advance(skip)
        return g

    def pass_own(k: int) -> None:
        """Pass over the next number of customer ``k``'s own stream."""
        g = own.get(k)
        if g is None:
            passed[k] = passed.get(k, 0) + 1
        else:
            g.random()

    def ended(k: int, stage: int) -> None:
        """The journey is over: release what is held for conversions that cannot come."""
        stage_of[k] = stage
        if n_ivs:
            held = held_of[k]
            for i in range(n_ivs):
                if held >> i & 1:
                    budgets.release(i)

    value_of = draws.value
    # what the draws' reader reads, bound here: the number lookups are inlined in the move
    # loop. A block's key is the customer's key base (their channel and block) plus that of
    # its column: a (stage, visit) slot, or among order values a purchase
    blocks_get, values_get = draws._blocks.get, draws._values.get
    draw_block, per_column = draws._draw_block, draws._per_column
    column_key = tuple(
        tuple((first + visit) * per_column for visit in range(b))
        for first, b in zip(first_slot, block, strict=True)
    )
    shift, mask = lazy_draws.BLOCK_SHIFT, lazy_draws.BLOCK - 1
    one_channel = draws.one_channel
    key_base, row_of = getattr(draws, "key_base", None), getattr(draws, "row", None)
    if not n_ivs:
        active_of = None

    def drawn(key: int, k: int, stage: int, visit: int, i: int) -> tuple[float, float]:
        """Customer ``k``'s numbers (row ``i`` of block ``key``) of their ``visit``-th visit
        to ``stage``, the block drawn if it is not held."""
        found = blocks_get(key)
        if found is None:
            ch, local = draws.channel_and_local(k)
            found = draw_block(key, ch, local >> shift, stage, visit)
        try:
            return found[0][i], found[1][i]
        except KeyError:
            # never reached (a sparse block keeps every customer who can still need it);
            # were it, the block drawn again gives the same numbers
            ch, local = draws.channel_and_local(k)
            found = draw_block(key, ch, local >> shift, stage, visit)
            return found[0][i], found[1][i]

    def counted(k: int, p: int, stage: int, at: int, base: int, i: int) -> tuple[float, float]:
        """The numbers of a visit that counts towards the limit on moves: one beyond the
        pre-drawn visits (drawn on the customer's own stream), or any when the limit is
        below them."""
        visit = visits[at]
        moves = own_moves.get(k, 0) + 1
        own_moves[k] = moves
        if count_all:
            if moves > max_moves:
                raise runaway(c, k, stage, env.now, max_moves)
        elif moves + c.slots > max_moves:
            total = moves + sum(visits[k * stages : (k + 1) * stages])
            if total > max_moves:
                raise runaway(c, k, stage, env.now, max_moves)
        if visit < block[stage]:
            visits[at] = visit + 1
            return drawn(base + column_key[stage][visit], k, stage, visit, i)
        g = own_stream(k)
        return g.random(), dwell_laws[stage].at(g.random()) * dwell_factor[p][stage]

    def order_value(k: int, p: int, base: int, i: int) -> float:
        """Customer ``k``'s order value of their next purchase (before interventions)."""
        count = bought[k]
        if count < VALUE_BLOCK:
            found = values_get(base + count * per_column)
            try:
                value = found[i]
            except (KeyError, TypeError):
                # not held (a block drawn again has the same numbers)
                value = value_of(k, count)
            bought[k] = count + 1
            return value
        if fixed_value[p] is not None:
            pass_own(k)
            return fixed_value[p]
        return value_laws[p].at(own_stream(k).random())

    def wake(ev: _Wake) -> None:
        """Customer ``ev.k`` wakes: they move to the stage their pending move goes to (none
        when it is -1: they have just entered their stage), make the moves that take no
        time, then schedule their event for the next wait, or end the journey. Runs once
        per wait of every customer: the common move and the number lookups are inlined."""
        k = ev.k
        p = persona_of[k]
        stage = stage_of[k]
        following = next_of[k]
        active = active_of[k] if n_ivs else 0
        if one_channel:
            base, i = k >> shift, k & mask
        else:
            base, i = key_base[k], row_of[k]
        while True:
            if following >= 0:
                if n_ivs:
                    active = move(k, p, stage, following, active, base, i)
                else:
                    if purchase[following]:
                        # most moves carry no value: values are recorded with the number of
                        # their move
                        value_at(len(log_time))
                        add_value(order_value(k, p, base, i))
                    add_customer(k)
                    add_time(env._now)
                    add_from(stage)
                    add_to(following)
                stage = following
            if ending[stage]:
                ended(k, stage)
                return
            at = k * stages + stage
            visit = visits[at]
            if visit < block[stage] and not count_all:
                visits[at] = visit + 1
                found = blocks_get(base + column_key[stage][visit])
                try:
                    u, days = found[0][i], found[1][i]
                except (KeyError, TypeError):
                    # not held: drawn now
                    u, days = drawn(base + column_key[stage][visit], k, stage, visit, i)
            else:
                u, days = counted(k, p, stage, at, base, i)
            if active:
                tr = treatment(p, active)
                following = bisect_right(tr.cumulative[stage], u)
                days *= tr.dwell_factor[stage]
            else:
                following = bisect_right(untreated[p][stage], u)
            if days > 0:
                stage_of[k] = stage
                next_of[k] = following
                ev.callbacks = MOVE
                schedule(ev, NORMAL, days)
                return

    def move(k: int, p: int, stage: int, following: int, active: int, base: int, i: int) -> int:
        """Record the move from ``stage`` to ``following`` now (its value and the budgets it
        spends); settle the stage entered. Returns the interventions acting there."""
        if purchase[following]:
            value_at(len(log_time))
            value = order_value(k, p, base, i)
            if active:
                value *= treatment(p, active).value_factor
                held = held_of[k]
                for j in range(n_ivs):
                    if active >> j & 1 and per_conversion[j] and following in charged[j][stage]:
                        budgets.convert(j, bool(held >> j & 1))
                        held &= ~(1 << j)
                held_of[k] = held
            add_value(value)
        add_customer(k)
        add_time(env._now)
        add_from(stage)
        add_to(following)
        add_treated(active)
        eligible = eligible_of[k]
        return settle(k, following, eligible) if eligible else 0

    entry = draws.entry
    entry_buys = purchase[entry]

    def begin(ev: _Wake) -> None:
        k = ev.k
        if entry_buys:
            bought[k] = 1
        stage_of[k] = entry
        next_of[k] = -1
        if n_ivs:
            eligible = eligible_of[k]
            active_of[k] = settle(k, entry, eligible) if eligible else 0
        wake(ev)

    MOVE = (wake,)

    if isinstance(s.acquisition, Cohort):
        # the process path schedules every customer's start (urgent, at day 0) before the
        # run, and each start their first wait, in customer order. Those first waits (the
        # whole cohort waiting at once) are not put on SimPy's queue one event each: they are
        # sorted here (stable: ties keep customer order, the order of their events), and one
        # reusable event wakes the customers whose first wait ends next, each then scheduled
        # as usual. The queue then holds only the customers past their first wait, so at a
        # million customers it stays about half as large. The feeder is urgent: at a time it
        # shares with other events it goes first, as the first waits' events (scheduled
        # before any other) would; it is put on the queue at the exact end of the wait
        # (0 + days), so every clock reading is the process path's.
        first_time, first_customer = array("d"), array("i")

        def wait_in_line(ev: _Wake, _priority: int, days: float) -> None:
            first_time.append(days)
            first_customer.append(ev.k)

        def start_all(_ev: object) -> None:
            nonlocal schedule
            # customers no intervention can act on and who wait in the entry stage make
            # their first choice together (numpy, the same numbers and the same bisection);
            # the others start one by one, in customer order
            quick, times = start_together()
            schedule = wait_in_line
            try:
                for k in np.flatnonzero(~quick).tolist():
                    ev = _Wake()
                    ev.k = k
                    begin(ev)
            finally:
                schedule = env.schedule
            times = np.concatenate([times, np.frombuffer(first_time, dtype=np.float64)])
            who = np.concatenate(
                [np.flatnonzero(quick).astype(np.int32), np.frombuffer(first_customer, np.int32)]
            )
            # by time, and among equal times by customer: the order of their events
            order = np.lexsort((who, times))
            feed_times.frombytes(times[order].tobytes())
            feed_customers.frombytes(who[order].tobytes())
            del times, who, order
            del first_time[:], first_customer[:]
            if feed_times:
                feeder.callbacks = FEED
                heappush(env._queue, (feed_times[0], URGENT, next(env._eid), feeder))

        def start_together() -> tuple[np.ndarray, np.ndarray]:
            """Start every customer whom no intervention reaches and whose first wait is not
            zero (what ``begin`` does for them, for all at once); returns who, and their
            first waits."""
            entry = draws.entry
            if count_all or ending[entry]:
                return np.zeros(n, dtype=bool), np.empty(0)
            u, days = draws.first_visit(entry)
            quick = days > 0
            if n_ivs:
                quick &= np.frombuffer(eligible_of, dtype=eligible_of.typecode) == 0
            persona = np.frombuffer(persona_of, dtype=np.int16)
            following = np.empty(n, dtype=np.int16)
            for p, rows in enumerate(untreated):
                mine = persona == p
                following[mine] = np.searchsorted(rows[entry], u[mine], side="right")
            np.frombuffer(stage_of, dtype=np.int16)[quick] = entry
            np.frombuffer(next_of, dtype=np.int16)[quick] = following[quick]
            draws._visit_view[quick, entry] = 1
            if purchase[entry]:
                np.frombuffer(bought, dtype=np.uint8)[quick] = 1
            return quick, days[quick]

        feed_times, feed_customers = array("d"), array("i")
        fed = 0

        def feed(ev: _Wake) -> None:
            # every customer whose first wait ends now, in the order of their events
            nonlocal fed
            now, total = env._now, len(feed_times)
            while fed < total and feed_times[fed] == now:
                customer = _Wake()
                customer.k = feed_customers[fed]
                fed += 1
                wake(customer)
            if fed < total:
                ev.callbacks = FEED
                heappush(env._queue, (feed_times[fed], URGENT, next(env._eid), ev))

        FEED = (feed,)
        feeder, starter = _Wake(), _Wake()
        starter.callbacks = (start_all,)
        schedule(starter, URGENT, 0)
    else:
        arrivals = draws.arrival_list
        position = 0
        woken = False

        def arrive(ev: _Wake) -> None:
            # the process path's source, step for step: each customer arriving by now
            # starts, else the source waits ``day - now`` and starts the customer on waking,
            # whatever the clock reads then (the same clock arithmetic). The process path
            # starts them by urgent events run right after this one: starting them after the
            # source has scheduled its next wait keeps every event in the same order.
            nonlocal position, woken
            first = position
            while position < n:
                if not woken and arrivals[position] > env._now:
                    woken = True
                    ev.callbacks = ARRIVE
                    schedule(ev, NORMAL, arrivals[position] - env._now)
                    break
                woken = False
                position += 1
            for k in range(first, position):
                customer = _Wake()
                customer.k = k
                begin(customer)

        ARRIVE = (arrive,)
        source = _Wake()
        source.callbacks = ARRIVE
        schedule(source, URGENT, 0)

    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        env.run(until=s.horizon_days)
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
        # customers still waiting at the horizon would hold the environment in a reference
        # cycle (event -> callback -> closure -> environment -> queue -> event) until the
        # collector's next full pass: drop them now, so their memory is free for the log
        env._queue.clear()
        # the callbacks re-arm themselves through these tuples (a cycle of closures that
        # holds the recording): break it, so the recording goes as its columns are written
        MOVE = ARRIVE = FEED = None
    moves = [
        [
            np.frombuffer(log_customer, dtype=np.int32),
            np.frombuffer(log_time, dtype=np.float64),
            np.frombuffer(log_from, dtype=np.uint8 if small else np.int16),
            np.frombuffer(log_to, dtype=np.uint8 if small else np.int16),
            # sparse: most moves carry no value
            (np.frombuffer(log_value_at, dtype=np.int64), np.frombuffer(log_value)),
            np.frombuffer(log_treated, dtype=np.int64) if n_ivs else None,
        ]
    ]
    reaches = (
        np.frombuffer(reach_customer, dtype=np.int_),
        np.frombuffer(reach_index, dtype=np.int16),
        np.frombuffer(reach_time, dtype=np.float64),
    )
    return moves, reaches
