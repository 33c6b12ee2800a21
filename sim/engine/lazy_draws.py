"""Customers' random numbers drawn when they are needed, in blocks, for the event-driven path
of the SimPy engine (:mod:`sim.engine.kernel`).

The numbers are those of :func:`sim.engine.streams.draw_customers`, stream for stream and
customer for customer: customer ``local`` of a channel takes number ``first + local`` of each
(replication, channel, purpose, stage, visit) stream. But instead of a table of every visit
of every customer, a (stage, visit) column is drawn for a block of ``BLOCK`` customers of a
channel when the first of them enters that stage for that visit, and dropped as soon as no
customer of the block can need it any more (each is finished, or can no longer come back to
the stage that often). Dropping never changes a number: a column drawn again is the same.
"""

from __future__ import annotations

from array import array

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.log_writer import stage_info
from sim.engine.streams import (
    CHOICE,
    DWELL,
    VALUE,
    VALUE_BLOCK,
    draw_entrants,
    name_key,
    stream,
)
from sim.model.acquisition import COHORT_CHANNEL, Cohort
from sim.model.distributions import Fixed
from sim.model.loops import reachable

#: Customers per drawn block of a column (a power of two).
BLOCK_SHIFT = 12
BLOCK = 1 << BLOCK_SHIFT
#: Numbers drawn between two sweeps for blocks no customer can need any more (at least: a
#: sweep waits until as many numbers have been drawn as the last one found still needed).
SWEEP_NUMBERS = 1 << 21
#: A block that at most this many of its customers can still need keeps only their numbers.
SPARSE_AT = BLOCK // 16
#: Stage code of a customer who has not entered yet.
NOT_STARTED = -1


def mask_type(interventions: int) -> str:
    """The smallest array type code holding a set of ``interventions`` as bits (a live
    customer keeps a few such sets: at a million customers their size matters)."""
    for code, bits in (("B", 8), ("H", 16), ("I", 32)):
        if interventions <= bits:
            return code
    return "q"


def _reach_after_a_move(c: CompiledScenario) -> np.ndarray:
    """(stages + 1, stages) bool: stage b can be entered after at least one move from a
    (journey edges and those interventions open); the last row: from before the entry."""
    size = len(c.names)
    step = np.zeros((size, size), dtype=bool)
    for a, b in stage_info(c.scenario)["edges"]:
        step[a, b] = True
    reach = reachable(step)
    before = reach[c.entry].copy()
    before[c.entry] = True
    return np.vstack([reach, before])


class LazyDraws:
    """The customers of one replication (arrival, persona, channel, reach) and their choice,
    dwell and order-value numbers, drawn by block on demand."""

    def __init__(self, c: CompiledScenario, seed: int, replication: int) -> None:
        s = c.scenario
        self.c, self.seed, self.replication = c, seed, replication
        self.first = c.first_customer
        self.entry = c.entry
        if isinstance(s.acquisition, Cohort):
            channels = [(COHORT_CHANNEL, None)]
        else:
            channels = [(ch.name, ch.rate_per_day) for ch in s.acquisition.channels]
        self.keys = [name_key(name) for name, _ in channels]
        self.stage_keys = [name_key(name) for name in c.names]
        parts = [self._channel(name, rate) for name, rate in channels]
        self.sizes = [len(p[0]) for p in parts]
        arrival = np.concatenate([p[0] for p in parts])
        n = self.size = len(arrival)
        self.one_channel = len(parts) == 1
        if self.one_channel:
            order = None
            self.arrival = arrival
            persona = parts[0][1]
            eligible = parts[0][2]
            self.channel = np.zeros(n, dtype=np.int16)
            # customer k is row k of the channel
            self.number = [None]
        else:
            order = np.argsort(arrival, kind="stable")
            self.arrival = arrival[order]
            persona = np.concatenate([p[1] for p in parts])[order]
            eligible = np.concatenate([p[2] for p in parts])[order]
            self.channel = np.concatenate(
                [np.full(len(p[0]), i, dtype=np.int16) for i, p in enumerate(parts)]
            )[order]
            local = np.concatenate([np.arange(len(p[0])) for p in parts])[order]
            self._channel_of = array("h", self.channel.tobytes())
            self._local_of = array("q", local.astype(np.int64).tobytes())
            # customer number of each row of each channel
            self.number = [np.flatnonzero(self.channel == i) for i in range(len(parts))]
        self.persona = persona.astype(np.int16)
        self.channel_persona = [p[1] for p in parts]
        self.persona_list = array("h", self.persona.tobytes())
        code = mask_type(len(s.interventions))
        self.eligible_list = array(code, eligible.astype(np.dtype(code)).tobytes())
        cohort = isinstance(s.acquisition, Cohort)
        self.arrival_list = None if cohort else self.arrival.tolist()
        # the state the engine keeps per customer, read here to drop blocks nobody needs
        stages = len(c.names)
        self.stage_of = array("h", np.full(n, NOT_STARTED, dtype=np.int16).tobytes())
        self.visits = bytearray(n * stages)
        self.bought = bytearray(n)
        self._stage_view = np.frombuffer(self.stage_of, dtype=np.int16)
        self._visit_view = np.frombuffer(self.visits, dtype=np.uint8).reshape(n, stages)
        self._bought_view = np.frombuffer(self.bought, dtype=np.uint8)
        self._reach = _reach_after_a_move(c)
        self._buys = self._reach[:, np.array(c.purchase, dtype=bool)].any(axis=1)
        # columns: key -> (choices, days), values: key -> values; each read by [row in the
        # block]: memoryviews of a drawn block (read as Python floats), or dicts of the rows kept
        self._blocks: dict[int, tuple] = {}
        self._values: dict[int, object] = {}
        self._drawn = 0
        self._sweep_at = SWEEP_NUMBERS
        # (channel, purpose...) -> the column's stream and the number it stands at
        self._streams: dict[tuple, tuple[np.random.Generator, int]] = {}
        # a block's key: its column times this, plus its number; a channel's columns are its
        # (stage, visit) slots, or (among values) its purchases
        self._per_column = max(self.sizes) // BLOCK + 1
        self._stride = max(c.slots, VALUE_BLOCK)
        laws = c.order_value
        fixed = all(isinstance(law, Fixed) for law in laws)
        self._prices = np.array([law.value for law in laws], dtype=float) if fixed else None
        # per stage, the personas' dwell factor when they all share it (no row-by-row look-up)
        self._stage_factor = [
            float(column[0]) if (column == column[0]).all() else None
            for column in np.asarray(c.dwell_factor).T
        ]
        if not self.one_channel:
            # per customer, the key of their block in their channel's first column, and their
            # row in it: the engine reads them at every move
            local = local.astype(np.int64)
            base = self.channel * np.int64(self._stride * self._per_column) + (local >> BLOCK_SHIFT)
            self.key_base = array("q", base.tobytes())
            self.row = array("i", (local & (BLOCK - 1)).astype(np.int32).tobytes())

    def _channel(self, name: str, rate: float | None) -> tuple[np.ndarray, ...]:
        """Arrival days, personas and intervention eligibility of one channel's customers."""
        return draw_entrants(self.c, self.seed, self.replication, name, rate)

    def channel_and_local(self, k: int) -> tuple[int, int]:
        """Customer ``k``'s channel and row within it."""
        if self.one_channel:
            return 0, k
        return self._channel_of[k], self._local_of[k]

    def _numbers(self, channel: int, lo: int, hi: int, *purpose: int) -> np.ndarray:
        # a column's blocks are mostly drawn in customer order: its stream is kept where the
        # last block ended (making one costs about as much as drawing a thousand numbers)
        key = (channel, *purpose)
        start = self.first + lo
        held = self._streams.get(key)
        if held is None or held[1] > start:
            g, at = stream(self.seed, self.replication, self.keys[channel], *purpose), 0
        else:
            g, at = held
        if start > at:
            # one 64-bit step per double: skip to the block's first customer
            g.bit_generator.advance(start - at)
        self._streams[key] = (g, self.first + hi)
        return g.random(hi - lo)

    def _draw_block(self, key: int, ch: int, b: int, stage: int, visit: int) -> tuple:
        if self._drawn >= self._sweep_at:
            self.sweep()
        c = self.c
        lo = b << BLOCK_SHIFT
        hi = min(lo + BLOCK, self.sizes[ch])
        stage_key = self.stage_keys[stage]
        u = self._numbers(ch, lo, hi, CHOICE, stage_key, visit)
        law = c.dwell[stage]
        if isinstance(law, Fixed):
            # a fixed wait reads no number: its column's stream is not drawn
            u_dwell = np.zeros(hi - lo)
        else:
            u_dwell = self._numbers(ch, lo, hi, DWELL, stage_key, visit)
        factor = self._stage_factor[stage]
        if factor is None:
            factor = c.dwell_factor[self.channel_persona[ch][lo:hi], stage]
        dwell = law.quantile(u_dwell) * factor
        found = self._blocks[key] = (memoryview(u), memoryview(dwell))
        self._drawn += 2 * (hi - lo)
        return found

    def first_visit(self, stage: int) -> tuple[np.ndarray, np.ndarray]:
        """The choice uniforms and days of every customer's first visit to ``stage`` (one
        channel: a cohort), drawn by block as customer by customer."""
        if not self.one_channel:
            raise ValueError("first_visit reads one channel's customers")
        first_slot = self.c.first_slot[stage]
        u, days = np.empty(self.size), np.empty(self.size)
        for b in range((self.size + BLOCK - 1) >> BLOCK_SHIFT):
            key = first_slot * self._per_column + b
            found = self._blocks.get(key)
            if found is None:
                found = self._draw_block(key, 0, b, stage, 0)
            lo = b << BLOCK_SHIFT
            u[lo : lo + len(found[0])] = found[0]
            days[lo : lo + len(found[1])] = found[1]
        return u, days

    def value(self, k: int, purchase: int) -> float:
        """Customer ``k``'s order value of their ``purchase``-th purchase (first ones)."""
        if self.one_channel:
            ch, local = 0, k
        else:
            ch, local = self._channel_of[k], self._local_of[k]
        b = local >> BLOCK_SHIFT
        key = (ch * self._stride + purchase) * self._per_column + b
        i = local & (BLOCK - 1)
        found = self._values.get(key)
        if found is not None:
            try:
                return found[i]
            except KeyError:
                pass  # never reached (see sweep); a block drawn again has the same numbers
        if self._drawn >= self._sweep_at:
            self.sweep()
        lo = b << BLOCK_SHIFT
        hi = min(lo + BLOCK, self.sizes[ch])
        found = self._values[key] = memoryview(self._value_numbers(ch, lo, hi, purchase))
        self._drawn += hi - lo
        return found[i]

    def _value_numbers(self, ch: int, lo: int, hi: int, purchase: int) -> np.ndarray:
        persona = self.channel_persona[ch][lo:hi]
        if self._prices is not None:
            # fixed prices read no number: the value stream is not drawn
            return self._prices[persona]
        groups = [(int(p), np.flatnonzero(persona == p)) for p in np.unique(persona)]
        return self.c.order_values(groups, self._numbers(ch, lo, hi, VALUE, purchase))

    def _customers(self, ch: int, b: int) -> np.ndarray | slice:
        lo = b << BLOCK_SHIFT
        hi = min(lo + BLOCK, self.sizes[ch])
        if self.one_channel:
            return slice(lo, hi)
        return self.number[ch][lo:hi]

    def sweep(self) -> None:
        """Drop the numbers no customer can still need: a block none of whose customers can
        make that visit any more goes; one that only a few can keeps just their numbers.
        Only a visit no customer can make any more is dropped (a customer short of it, who
        may come back, keeps it), so no block is ever drawn twice: drawing a block costs
        far more than keeping it. Who can still need a column is worked out for all the
        channel's customers at once, not block by block."""
        c = self.c
        where = {}
        for stage, (first, b) in enumerate(zip(c.first_slot, c.block, strict=True)):
            for visit in range(b):
                where[first + visit] = stage, visit
        stages = self._stage_view
        columns: dict[tuple[int, int], list[int]] = {}
        for key in self._blocks:
            column, b = divmod(key, self._per_column)
            columns.setdefault(divmod(column, self._stride), []).append(b)
        kept = 0
        reach: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        for (ch, slot), blocks in sorted(columns.items()):
            stage, visit = where[slot]
            if (ch, stage) not in reach:
                who = self._everyone(ch)
                reach[ch, stage] = (self._reach[stages[who], stage], self._visit_view[who, stage])
            can, visits = reach[ch, stage]
            need = can & (visits <= visit)
            for b in blocks:
                key = (ch * self._stride + slot) * self._per_column + b
                kept += 2 * self._keep(self._blocks, key, need, b)
        values: dict[tuple[int, int], list[int]] = {}
        for key in self._values:
            column, b = divmod(key, self._per_column)
            values.setdefault(divmod(column, self._stride), []).append(b)
        for (ch, purchase), blocks in values.items():
            who = self._everyone(ch)
            need = self._buys[stages[who]] & (self._bought_view[who] <= purchase)
            for b in blocks:
                key = (ch * self._stride + purchase) * self._per_column + b
                kept += self._keep(self._values, key, need, b)
        self._drawn = 0
        # the next sweep once as many numbers have been drawn anew as are still needed: the
        # sweeps of a run cost less than its draws, and what is held stays near what is needed
        self._sweep_at = max(SWEEP_NUMBERS, kept)

    def _everyone(self, ch: int) -> slice | np.ndarray:
        """Channel ``ch``'s customers, in the order of their rows in its blocks."""
        return slice(0, self.size) if self.one_channel else self.number[ch]

    @staticmethod
    def _keep(held: dict, key: int, need: np.ndarray, b: int) -> int:
        """Keep, of block ``b`` held at ``key``, the numbers of the rows in ``need``: all of
        them, a few in a dict, or none. Returns how many are kept."""
        lo = b << BLOCK_SHIFT
        part = need[lo : lo + BLOCK]
        count = int(np.count_nonzero(part))
        if not count:
            del held[key]
            return 0
        found = held[key]
        pair = isinstance(found, tuple)
        sparse = isinstance(found[0] if pair else found, dict)
        # a sparse block is built again only once it has lost half its rows
        if count <= (len(found[0] if pair else found) // 2 if sparse else SPARSE_AT):
            rows = np.flatnonzero(part).tolist()
            if pair:
                u, d = found
                held[key] = ({i: u[i] for i in rows}, {i: d[i] for i in rows})
            else:
                held[key] = {i: found[i] for i in rows}
        return count

    def entries(self) -> tuple[np.ndarray, ...]:
        """Arrival, persona, channel and the value of the entry row of every customer, in
        customer order."""
        n = self.size
        values = np.zeros(n)
        if self.c.purchase[self.entry]:
            for ch, size in enumerate(self.sizes):
                numbers = self._value_numbers(ch, 0, size, 0)
                if self.one_channel:
                    values = numbers
                else:
                    values[self.number[ch]] = numbers
        return self.arrival, self.persona, self.channel, values

    def close(self) -> None:
        """Let go of the drawn blocks and of the customers' state (the run is over: only
        :meth:`entries` is read after this)."""
        self._blocks.clear()
        self._values.clear()
        self._streams.clear()
        self.stage_of = self.visits = self.bought = None
        self._stage_view = self._visit_view = self._bought_view = None
        self.persona_list = self.eligible_list = None
