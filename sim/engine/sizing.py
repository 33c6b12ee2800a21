"""What a run needs in memory, estimated before anything is allocated, and the refusal of a
run that will not fit.

One replication holds, while it runs: every customer's pre-drawn numbers (customers x
pre-drawn visits, :attr:`CompiledScenario.slots`, a choice and a dwell time each, plus order
values and a few per-customer columns); the state of every customer whose journey is under
way (a SimPy process each: the whole cohort at once, or arrivals x mean journey time, by
Little's law); and the moves it records. A finished replication keeps its event log until the
run ends. :func:`estimate_run` is the one place these sizes are worked out, so that runs too
big to hold at once can later be routed to an engine that streams; :func:`check_memory`
refuses, with the estimate and the fix, what will not fit in the memory available.

The byte counts below were measured on the bundled scenarios (peak resident memory of one
replication of 50,000 and 200,000 customers) and err on the large side.

Customers who do not interact run on the SimPy engine's event-driven path
(:mod:`sim.engine.kernel`), which holds far less: no pre-drawn table (numbers are drawn by
block as customers need them, and dropped), a few bytes of state per customer, one small
event and its queue entry per customer under way, and the moves recorded as flat columns.
Its figures (the ``KERNEL_`` ones) were measured on the baseline cohort (200,000 and
1,000,000 customers: 522 and 470 bytes per customer at peak, all of them under way at the
start) and on the subscription scenario with Poisson arrivals scaled 3 and 10 times
(110,000 to 365,000 customers, 5,000 to 16,000 under way: about 86 bytes per event row
recorded and written to the log, state included); they too err on the large side.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.streams import VALUE_BLOCK, arrival_segments
from sim.errors import ScenarioError
from sim.model.acquisition import Cohort
from sim.model.logit import transition_matrices

#: Bytes per pre-drawn visit of a customer: the uniform that picks the next stage and the dwell
#: time (float64 each).
SLOT_BYTES = 16
#: Bytes per customer besides the pre-drawn visits: order values, arrival day, persona,
#: channel, number within the channel and reach flags, their merged copies, and the lists the
#: engine reads them through.
CUSTOMER_BYTES = 8 * VALUE_BLOCK + 160
#: Bytes per customer whose journey is under way in the SimPy engine: the process, its
#: generator frame and its pending timeout (measured: about 1.6 kB).
LIVE_BYTES = 1_700
#: Bytes per event while a replication runs: recorded (36), then merged with the entry rows
#: into the event log in time order (the sort and the columns).
EVENT_BYTES = 120
#: Bytes per event of a finished replication kept until the end of the run: the log's columns
#: (40), their concatenation into one log, and the per-customer tables read from it.
KEPT_EVENT_BYTES = 100
#: Event-driven path (customers who do not interact): bytes per customer whatever their state
#: (stage, persona, arrival, channel, intervention sets, the entry row's columns), plus one
#: byte per stage (visits made to each).
KERNEL_CUSTOMER_BYTES = 64
#: ... bytes per customer under way: their event (48), its number (32) and its entry in
#: SimPy's queue (a tuple, the time and the event's number: 136), and the memory the
#: allocator keeps as they come and go (measured: about 220 in all).
KERNEL_LIVE_BYTES = 250
#: ... bytes per event row while the replication runs: the move recorded (24 to 32), then
#: the log's columns (40) written from it column by column, with the rows' places (8).
KERNEL_EVENT_BYTES = 80
#: ... the numbers drawn by block and not yet dropped (swept every 2**21 numbers: 16 MiB),
#: with room for the blocks still needed.
KERNEL_DRAWN_BYTES = 32 * 2**20
#: A worker process's own memory (interpreter, numpy, pandas, SimPy), when there are workers.
WORKER_BYTES = 100 * 2**20
#: Points on which day-by-day curves (occupancy, retention plots) are drawn at most.
GRID_POINTS = 2_001


@dataclass(frozen=True)
class RunEstimate:
    """Sizes of one replication of a scenario (expected values; customers with a margin)."""

    customers: float  # per replication (cohort size, or expected arrivals plus 6 SD)
    slots: int  # pre-drawn visits per customer
    events: float  # expected rows of the event log per replication
    live: float  # customers whose journeys are under way at once (at most)
    stages: int
    cohort: bool
    #: True when the replication runs on the SimPy engine's event-driven path (customers who
    #: do not interact): no pre-drawn table, and the ``KERNEL_`` figures per customer
    event_driven: bool = False

    @property
    def running_bytes(self) -> float:
        """Memory of one replication while it runs."""
        if self.event_driven:
            return (
                self.customers * (KERNEL_CUSTOMER_BYTES + self.stages)
                + self.live * KERNEL_LIVE_BYTES
                + self.events * KERNEL_EVENT_BYTES
                + KERNEL_DRAWN_BYTES
                + GRID_POINTS * self.stages * 8
            )
        per_customer = self.slots * SLOT_BYTES + CUSTOMER_BYTES
        grid = GRID_POINTS * self.stages * 8
        return (
            self.customers * per_customer
            + self.live * LIVE_BYTES
            + self.events * EVENT_BYTES
            + grid
        )

    @property
    def kept_bytes(self) -> float:
        """Memory a finished replication keeps until the run ends."""
        return self.events * KEPT_EVENT_BYTES

    def describe(self) -> str:
        """The sizes in words, for messages."""
        if self.event_driven:
            return (
                f"{self.customers:,.0f} customers, up to {self.live:,.0f} of them under way "
                f"at once, and about {self.events:,.0f} events per replication"
            )
        return (
            f"{self.customers:,.0f} customers x {self.slots} pre-drawn visits and about "
            f"{self.events:,.0f} events per replication"
        )


def _journey_moves(compiled: CompiledScenario) -> tuple[float, float]:
    """Expected moves and days from entry to the end of a whole journey, for the persona with
    the most (persona effects included; interventions left out)."""
    s = compiled.scenario
    journey = s.journey
    transient = np.array([not st.absorbing for st in journey.stages])
    entry = int(np.flatnonzero(np.flatnonzero(transient) == compiled.entry)[0])
    dwell_means = np.array([st.dwell.mean for st in journey.stages])[transient]
    moves = days = 0.0
    for p, matrix in enumerate(transition_matrices(journey, s.personas, s.effects)):
        q = matrix[np.ix_(transient, transient)]
        try:
            visits = np.linalg.solve(np.eye(len(q)).T - q.T, np.eye(len(q))[entry])
        except np.linalg.LinAlgError:
            return math.inf, math.inf
        moves = max(moves, float(visits.sum()))
        factors = compiled.dwell_factor[p][transient]
        days = max(days, float(visits @ (dwell_means * factors)))
    return moves, days


def estimate_run(compiled: CompiledScenario, engine: str | None = None) -> RunEstimate:
    """What one replication of a compiled scenario will hold, worked out from the scenario
    alone (nothing is drawn): customers, pre-drawn visits, events and customers under way.
    ``engine``: the engine that will run it; with ``"simpy"``, customers who do not interact
    are sized for its event-driven path; otherwise (or when not known) the figures of a
    process per customer with pre-drawn tables, which are larger."""
    s = compiled.scenario
    moves, days = _journey_moves(compiled)
    if isinstance(s.acquisition, Cohort):
        customers = float(s.acquisition.size)
        live = customers
    else:
        expected = peak = 0.0
        for channel in s.acquisition.channels:
            points, rates = arrival_segments(s, channel.name, channel.rate_per_day)
            expected += float(np.sum(rates * np.diff(points)))
            peak += float(rates.max()) if len(rates) else 0.0
        customers = expected + 6 * math.sqrt(expected)
        # Little's law: arrivals a day x days a journey lasts (cut at the horizon)
        live = min(customers, peak * min(days, s.horizon_days))
    # moves within the horizon: a journey's moves spread over its days (renewal-reward), so
    # a long loop of short stays counts what fits in the horizon, not the whole journey
    if days > s.horizon_days:
        moves *= s.horizon_days / days
    events = customers * (1 + min(moves, 1e12))
    return RunEstimate(
        customers=customers,
        slots=compiled.slots,
        events=events,
        live=live,
        stages=len(compiled.names),
        cohort=isinstance(s.acquisition, Cohort),
        event_driven=engine == "simpy" and s.interacting is None,
    )


def memory_needed(
    runs: Sequence[tuple[RunEstimate, int]], workers: int, kept: bool = True
) -> float:
    """Peak memory of running ``runs`` (an estimate and its number of replications each) on
    ``workers`` processes: the replications running at once, and every finished one kept
    (``kept`` False: none is, their logs go to disk)."""
    tasks = sum(reps for _, reps in runs)
    at_once = max(min(workers, tasks), 1)
    running = max(e.running_bytes for e, _ in runs) * at_once
    kept = sum(e.kept_bytes * reps for e, reps in runs) if kept else 0.0
    return running + kept + (WORKER_BYTES * at_once if workers > 1 else 0)


def available_memory() -> int | None:
    """Memory available to new allocations (bytes), from /proc/meminfo or the OS; None where
    neither tells."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def size_text(n: float) -> str:
    """Bytes as a short readable size (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(
    runs: Sequence[tuple[RunEstimate, int]],
    workers: int,
    available: int | None = None,
    kept: bool = True,
    other_fix: str | None = None,
) -> float:
    """The memory ``runs`` need (bytes), or a ScenarioError with the estimate and the fix if
    that is more than is ``available`` (default: what the machine has free now). ``kept``:
    as for :func:`memory_needed`; ``other_fix`` is offered before the usual fix (e.g. to
    stream the log to disk)."""
    needed = memory_needed(runs, workers, kept)
    if available is None:
        available = available_memory()
    if available is None or needed <= available:
        return needed
    biggest = max((e for e, _ in runs), key=lambda e: e.running_bytes)
    tasks = sum(reps for _, reps in runs)
    at_once = max(min(workers, tasks), 1)
    one = memory_needed([(biggest, 1)], 1, kept)
    problem = (
        f"this run needs about {size_text(needed)} of memory, more than the "
        f"{size_text(available)} available ({biggest.describe()}; {at_once} replication(s) "
        f"at once, {tasks} in all)"
    )
    if one > available:
        share = available / one
        if biggest.cohort:
            fits = max(int(biggest.customers * share * 0.9), 0)
            field = "acquisition, field 'cohort'"
            fix = (
                f"simulate fewer customers: about {fits:,} fit (--customers, or cohort = ...); "
                "a representative sample gives the same shares"
            )
        else:
            field = "acquisition, field 'rate_per_day'"
            fix = (
                f"scale the channels' rate_per_day (or horizon_days) down to about "
                f"{share * 0.9:.2g} of their values; a representative sample gives the same "
                "shares"
            )
    else:
        field = "replications"
        fix = "run fewer replications at once (fewer workers), or fewer replications"
    if other_fix:
        fix = f"{other_fix}; or {fix}"
    raise ScenarioError(problem, field=field, fix=fix)
