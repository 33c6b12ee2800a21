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
block as customers need them, and dropped once nobody can need them), a few bytes of state
per customer in flat arrays, one small event and its queue entry per customer waiting in
SimPy's queue, and the moves recorded as flat columns. A day-0 cohort's first waits are
sorted into two flat arrays instead of the queue, so only the customers who go on after their
first wait are queued: at most the share whose first move does not end their journey (0.55
of the baseline cohort; 0.38 measured at the peak). Its figures (the ``KERNEL_`` ones) were
fitted to the peak resident memory of one replication (fresh processes, peak RSS minus the
memory before the run, imports done; ``sim.run`` with one replication peaks the same) on:
the baseline cohort (20,000 to 1,000,000 customers: 346.6 MiB at a million, 363 bytes per
customer, the peak at the end of the run, before its log is written), the discount and
loyalty scenarios (interventions: 371.6 and 399.3 MiB at a million), the subscription
scenario with Poisson arrivals (its channels' rates x1, x3, x10 and x30, horizons of 730 to
3,650 days: 36,000 to 1,094,000 customers, 337.4 MiB for the largest, at the end of writing
its log), the subscription journey as a day-0 cohort (100,000 to 1,000,000 customers: 336.1
MiB), the baseline with the odds of going on from awareness x3 (an intervention at the entry
stage), and the baseline with few going on (awareness -> consideration 0.1: 500,000 customers,
106.2 MiB). The estimate is 1.12 to 1.42 times every peak measured, 1.12 to 1.23 times those
of 300,000 customers or more (the figures before these, fitted on an engine that queued the
whole cohort, gave 1.9 times at a million).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.streams import VALUE_BLOCK, arrival_segments
from sim.errors import ScenarioError
from sim.model.acquisition import Cohort
from sim.model.logit import transition_matrices, treated_matrix
from sim.model.loops import zero_dwell_probability

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
#: Event-driven path (customers who do not interact), figures fitted to the peaks measured
#: (see above): bytes per customer whatever their state (arrival, persona, channel,
#: intervention sets, stage, pending move and purchases: about 30; a day-0 cohort's first
#: waits, sorted: 12; the entry row's columns; the recording of their moves and the places
#: of their rows in the log), the numbers drawn for them and still needed (a cohort, moving
#: together, holds up to about 150), and what the allocator keeps of it all; plus one byte
#: per stage (visits made to each).
KERNEL_CUSTOMER_BYTES = 88
#: ... more per customer arriving by channel: the arrival days the source reads (a list: 32),
#: each customer's channel and row within it, and the channels' rows (18).
KERNEL_ARRIVAL_BYTES = 64
#: ... bytes per customer waiting in SimPy's queue: their event (48), its number (32), the
#: queue entry (a tuple, the time and the event's number: 136), and what the allocator keeps
#: as they come and go.
KERNEL_LIVE_BYTES = 250
#: ... bytes per event row: the log's columns (40), written column by column from the moves
#: recorded (the recording itself is counted per customer above: the estimated events
#: already exceed those logged by about a fifth).
KERNEL_EVENT_BYTES = 40
#: ... more per event row when there are interventions: who acted on each move (8), and the
#: reach records.
KERNEL_TREATED_BYTES = 16
#: ... the numbers drawn before the first sweep for numbers nobody needs any more (2**21 of
#: them: 16 MiB), or all of a smaller run's (:data:`KERNEL_COLUMN_BYTES` per pre-drawn visit
#: of every customer); beyond it what is still needed grows with the customers
#: (:data:`KERNEL_CUSTOMER_BYTES`).
KERNEL_DRAWN_BYTES = 16 * 2**20
#: ... a pre-drawn visit's numbers (the choice and the days, float64 each).
KERNEL_COLUMN_BYTES = 16
#: The vectorised engine (customers advanced together in numpy arrays): bytes per customer
#: (their state and draws, the entry row), per event row (the moves drawn wave by wave, then
#: put in time order into the log's columns) and per event row more when interventions act
#: (their treatment column and reach records). Measured (peak RSS less that before the run):
#: the baseline cohort at 200,000 and 1,000,000 customers 68 and 337 MiB, the loyalty cohort
#: at 1,000,000 431 MiB, the subscription scenario's arrivals scaled 10 and 30 times (365,000
#: and 1,095,000 customers) 135 and 418 MiB; these figures give 1.1 to 1.3 times each.
VECTOR_CUSTOMER_BYTES = 150
VECTOR_EVENT_BYTES = 75
VECTOR_TREATED_BYTES = 16
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
    #: customers waiting in SimPy's queue at once (at most; event-driven path): those under
    #: way, except that a day-0 cohort's first waits are held in flat arrays, so only those
    #: who go on after their first wait count
    queued: float = 0.0
    interventions: bool = False
    #: True when the replication runs on the vectorised engine (numpy arrays, no processes)
    vectorised: bool = False

    @property
    def running_bytes(self) -> float:
        """Memory of one replication while it runs."""
        if self.event_driven:
            per_customer = KERNEL_CUSTOMER_BYTES + self.stages
            if not self.cohort:
                per_customer += KERNEL_ARRIVAL_BYTES
            per_event = KERNEL_EVENT_BYTES + (KERNEL_TREATED_BYTES if self.interventions else 0)
            drawn = min(KERNEL_DRAWN_BYTES, self.customers * self.slots * KERNEL_COLUMN_BYTES)
            return (
                self.customers * per_customer
                + self.queued * KERNEL_LIVE_BYTES
                + self.events * per_event
                + drawn
                + GRID_POINTS * self.stages * 8
            )
        grid = GRID_POINTS * self.stages * 8
        if self.vectorised:
            per_event = VECTOR_EVENT_BYTES + (VECTOR_TREATED_BYTES if self.interventions else 0)
            return self.customers * VECTOR_CUSTOMER_BYTES + self.events * per_event + grid
        per_customer = self.slots * SLOT_BYTES + CUSTOMER_BYTES
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
                f"{self.customers:,.0f} customers, up to {self.queued:,.0f} of them waiting in "
                f"SimPy's queue at once, and about {self.events:,.0f} events per replication"
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
    are sized for its event-driven path, with ``"vectorised"`` for numpy arrays; otherwise
    (or when not known) the figures of a process per customer with pre-drawn tables, which
    are larger."""
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
    cohort = isinstance(s.acquisition, Cohort)
    event_driven = engine == "simpy" and s.interacting is None
    return RunEstimate(
        customers=customers,
        slots=compiled.slots,
        events=events,
        live=live,
        stages=len(compiled.names),
        cohort=cohort,
        event_driven=event_driven,
        queued=live * _going_on_share(compiled) if cohort and event_driven else live,
        interventions=bool(s.interventions),
        vectorised=engine == "vectorised",
    )


def _going_on_share(compiled: CompiledScenario) -> float:
    """The largest share of a day-0 cohort that can go on after their first wait (the others
    end at their first move): on the event-driven path only they wait in SimPy's queue, the
    first waits being held in flat arrays. The largest over personas and every set of
    interventions acting together; 1 where the entry stage can take no time (the first wait
    is then another stage's) or interventions are too many to try every set."""
    s = compiled.scenario
    journey = s.journey
    entry = compiled.entry
    if zero_dwell_probability(journey.stages[entry].dwell) > 0 or len(s.interventions) > 6:
        return 1.0
    going_on = ~np.array(compiled.absorbing)
    share = 0.0
    for size in range(len(s.interventions) + 1):
        for acting in itertools.combinations(s.interventions, size):
            for persona in s.personas:
                matrix = treated_matrix(journey, persona, s.effects, acting)
                share = max(share, float(matrix[entry, going_on].sum()))
    return min(share, 1.0)


def memory_needed(
    runs: Sequence[tuple[RunEstimate, int]], workers: int, kept: bool = True
) -> float:
    """Peak memory of running ``runs`` (an estimate and its number of replications each) on
    ``workers`` processes: the replications running at once, and every finished one kept
    (``kept`` False: none is, their logs go to disk)."""
    tasks = sum(reps for _, reps in runs)
    at_once = max(min(workers, tasks), 1)
    running = max(e.running_bytes for e, _ in runs) * at_once
    # a single replication's log is the one its run built (in running_bytes); several are
    # kept as they finish and then joined into one log, a copy of them all
    kept = sum(e.kept_bytes * reps for e, reps in runs) if kept and tasks > 1 else 0.0
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
