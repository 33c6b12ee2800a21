"""SimPy engine throughput against the fastest bare loop on SimPy's kernel, in the same run.

Workloads: the bundled baseline scenario as a day-0 cohort of 100,000 and of 1,000,000
customers (all of them active at once at the start: SimPy's event queue is at its largest),
and the subscription scenario with Poisson arrivals (far fewer active at once).

Reference: the fastest honest way to make the same moves on SimPy's kernel and clock. Each
customer owns one reusable event (a two-slot object, its callback shared); the callback takes
the customer's next wait (pre-drawn: the waits the engine's customers actually waited, read
off the engine's log) and re-schedules the same event with ``env.schedule``; arrivals are one
reusable event re-scheduled from arrival to arrival. No process, no generator, no bookkeeping,
no random numbers, the collector paused as in the engine: the same number of SimPy events at
the same times, so the same queue and the same concurrency. Ratio = engine events/s / bare
events/s (target >= 0.5).

A second reference, for cohorts: the same bare loop with the cohort's first waits sorted by
numpy and fed from one reusable event, as the engine feeds them (the queue then holds only the
customers past their first wait, which is faster and smaller at a million). The engine's own
design is not a fair advantage over a reference that could use it too, so the ratio against
this one is printed beside the first.

Each measurement runs in a fresh process (the two sides alternate), so each starts from the
same memory state and its peak RSS is its own (imports and, for the bare loop, the pre-drawn
waits included). Before the clock starts, the engine makes a five-day run of the same
scenario: it loads once what a session's first run loads (scipy's special functions), as the
bare loop has SimPy loaded. Medians over the rounds are reported; this machine is shared, so
only the ratios, measured in the same run, mean much.

The last line is what an analyst runs: ``sim.run(baseline, customers=1_000_000,
engine="simpy")`` (targets: at most 500 MB peak RSS and 20 s). With ``--before``, the
engine's former path (one process per customer, still there for customers who interact) is
measured beside it on the same customers, at 100,000 and at a million.

Run: ``python benchmarks/engine.py [--rounds R] [--before] [--skip-million]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import numpy as np

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def waits_per_customer(log) -> tuple[list[list[float]], list[float]]:
    """For each customer: arrival day and the positive waits between their moves."""
    from sim.events import ENTRY

    order = np.lexsort((np.arange(len(log)), log.customer))
    cust, t = log.customer[order], log.time[order]
    gaps = np.diff(t, prepend=0.0)
    first = np.r_[True, cust[1:] != cust[:-1]]
    gaps[first] = 0.0
    waits: list[list[float]] = [[] for _ in range(int(log.customers.sum()))]
    for c, g in zip(cust[gaps > 0].tolist(), gaps[gaps > 0].tolist(), strict=True):
        waits[c].append(g)
    arrivals = np.zeros(len(waits))
    entry = log.from_stage == ENTRY
    arrivals[log.customer[entry]] = log.time[entry]
    return waits, arrivals.tolist()


def bare_schedule(
    waits: list[list[float]], arrivals: list[float], horizon: float, fed: bool = False
) -> float:
    """Seconds for SimPy's kernel to make the moves with one reusable event per customer.

    With ``fed``, a day-0 cohort's first waits are sorted (numpy) and one reusable event
    wakes the customers whose first wait ends next, as the engine does: the queue then holds
    only the customers past their first wait."""
    import gc
    from heapq import heappush

    import simpy
    from simpy.events import NORMAL, URGENT

    env = simpy.Environment()
    schedule = env.schedule

    class Mover:
        # what Environment.step reads of an event: its callbacks and _ok
        __slots__ = ("callbacks", "left")
        _ok = True

    def move(ev: Mover) -> None:
        delay = next(ev.left, None)
        if delay is not None:
            ev.callbacks = MOVE
            schedule(ev, NORMAL, delay)

    MOVE = (move,)

    def start(delays: list[float]) -> None:
        ev = Mover()
        ev.left = iter(delays)
        move(ev)

    gc.freeze()
    gc.disable()
    started = time.perf_counter()
    if max(arrivals, default=0.0) == 0.0 and fed:
        firsts = np.array([w[0] if w else np.inf for w in waits])
        order = np.argsort(firsts, kind="stable")
        order = order[np.isfinite(firsts[order])]
        times, who = firsts[order].tolist(), order.tolist()
        position = 0

        def feed(ev) -> None:
            nonlocal position
            now = env._now
            while position < len(times) and times[position] == now:
                mover = Mover()
                mover.left = iter(waits[who[position]])
                next(mover.left)
                move(mover)
                position += 1
            if position < len(times):
                ev.callbacks = (feed,)
                heappush(env._queue, (times[position], URGENT, next(env._eid), ev))

        feeder = Mover()
        feeder.callbacks = (feed,)
        if times:
            heappush(env._queue, (times[0], URGENT, next(env._eid), feeder))
    elif max(arrivals, default=0.0) == 0.0:
        for delays in waits:
            start(delays)
    else:
        order = sorted(range(len(arrivals)), key=arrivals.__getitem__)
        position = 0
        source = Mover()

        def arrive(ev) -> None:
            # everyone arriving now starts; then the same event waits for the next arrival,
            # as the engine's source does
            nonlocal position
            while position < len(order) and arrivals[order[position]] <= env.now:
                start(waits[order[position]])
                position += 1
            if position < len(order):
                ev.callbacks = (arrive,)
                schedule(ev, NORMAL, arrivals[order[position]] - env.now)

        source.callbacks = (arrive,)
        schedule(source, NORMAL, arrivals[order[0]] if order else 0.0)
    env.run(until=horizon)
    return time.perf_counter() - started


def _engine_child(path: str, customers: int | None, processes: bool, queue) -> None:
    import sim
    from sim.engine import CompiledScenario
    from sim.engine.simpy_engine import simulate

    scenario = sim.load_scenario(path)
    # a small run first loads what the first run of a session loads (scipy's special
    # functions for the quantiles): a one-off per process, not a cost per event
    simulate(CompiledScenario.build(scenario.replace(horizon_days=5)), 2, 0, processes=processes)
    if customers:
        scenario = scenario.with_customers(customers)
    compiled = CompiledScenario.build(scenario)
    started = time.perf_counter()
    simulate(compiled, 1, 0, processes=processes)
    elapsed = time.perf_counter() - started
    queue.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _bare_child(waits, arrivals, horizon, fed, queue) -> None:
    elapsed = bare_schedule(waits, arrivals, horizon, fed)
    queue.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _run_child(path: str, customers: int, before: bool, queue) -> None:
    """What an analyst runs (``sim.run``, SimPy engine forced), or with ``before`` the
    engine's process-per-customer path on the same customers."""
    import sim
    from sim.engine import CompiledScenario, simpy_engine

    scenario = sim.load_scenario(path).with_customers(customers)
    started = time.perf_counter()
    if before:
        rows = len(simpy_engine.simulate(CompiledScenario.build(scenario), 7, 0, processes=True))
    else:
        rows = len(sim.run(scenario, engine="simpy").log)
    elapsed = time.perf_counter() - started
    queue.put((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rows))


def _nothing() -> None:
    """Started first, so the fork server exists before this process grows."""


#: Fresh processes come from a fork server started while this process is small: Linux keeps
#: the peak RSS across fork and exec, so children of a large process would report its peak.
CONTEXT = mp.get_context("forkserver")


def in_fresh_process(target, *args) -> tuple:
    """(seconds, peak RSS MiB, ...) of ``target`` run in a new process."""
    ctx = CONTEXT
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def max_active(log, scenario) -> int:
    """Largest number of customers in the journey (entered, not yet ended) at one time."""
    from sim.events import ENTRY

    absorbing = np.array([s.absorbing for s in scenario.journey.stages])
    starts = log.time[log.from_stage == ENTRY]
    ends = log.time[(log.from_stage != ENTRY) & absorbing[log.to_stage]]
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((-steps, times))
    return int(np.cumsum(steps[order]).max())


def measure(
    name: str, path: Path, customers: int | None, rounds: int, before: bool = False
) -> None:
    import sim
    from sim.engine import CompiledScenario, simulate

    scenario = sim.load_scenario(path)
    if customers:
        scenario = scenario.with_customers(customers)
    log = simulate(CompiledScenario.build(scenario), 1, 0)
    waits, arrivals = waits_per_customer(log)
    events = sum(len(w) for w in waits) + sum(a > 0 for a in arrivals)
    n = int(log.customers.sum())
    cohort = max(arrivals, default=0.0) == 0.0
    ours, bare, fed, old = [], [], [], []
    for _ in range(rounds):
        ours.append(in_fresh_process(_engine_child, str(path), customers, False))
        if before:
            old.append(in_fresh_process(_engine_child, str(path), customers, True))
        bare.append(in_fresh_process(_bare_child, waits, arrivals, scenario.horizon_days, False))
        if cohort:
            fed.append(in_fresh_process(_bare_child, waits, arrivals, scenario.horizon_days, True))
    t_ours = statistics.median(t for t, _ in ours)
    t_bare = statistics.median(t for t, _ in bare)
    rss_ours = statistics.median(r for _, r in ours)
    rss_bare = statistics.median(r for _, r in bare)
    print(
        f"\n{name}: {n:,} customers, {len(log):,} log rows, {events:,} SimPy events, "
        f"at most {max_active(log, scenario):,} customers active at once; "
        f"medians of {rounds} fresh processes per side, one process at a time"
    )
    print(
        f"  engine          {t_ours:6.2f} s  {n / t_ours:10,.0f} customers/s  "
        f"{events / t_ours:10,.0f} events/s  peak RSS {rss_ours:6.0f} MiB"
    )
    print(
        f"  bare schedule   {t_bare:6.2f} s  {n / t_bare:10,.0f} customers/s  "
        f"{events / t_bare:10,.0f} events/s  peak RSS {rss_bare:6.0f} MiB"
    )
    print(f"  ratio (engine / bare event rate): {t_bare / t_ours:.2f}   (target >= 0.5)")
    if fed:
        t_fed = statistics.median(t for t, _ in fed)
        rss_fed = statistics.median(r for _, r in fed)
        print(
            f"  bare, cohort fed {t_fed:5.2f} s  {n / t_fed:10,.0f} customers/s  "
            f"{events / t_fed:10,.0f} events/s  peak RSS {rss_fed:6.0f} MiB  (first waits "
            f"sorted, as the engine does): ratio {t_fed / t_ours:.2f}"
        )
    if old:
        t_old = statistics.median(t for t, _ in old)
        rss_old = statistics.median(r for _, r in old)
        print(
            f"  process path    {t_old:6.2f} s  {n / t_old:10,.0f} customers/s  "
            f"{events / t_old:10,.0f} events/s  peak RSS {rss_old:6.0f} MiB  "
            f"(one process per customer, as before): ratio {t_bare / t_old:.2f}"
        )
    t = time.perf_counter()
    result = sim.RunResult(scenario=scenario, log=log, provenance={})
    result.funnel()
    result.retention_summary()
    print(f"  analysis (funnel + retention of this log): {time.perf_counter() - t:.2f} s")


def million(path: Path, rounds: int, before: bool) -> None:
    """The million-customer line: seconds and peak RSS of a whole ``sim.run``."""
    n = 1_000_000
    runs = [in_fresh_process(_run_child, str(path), n, False) for _ in range(rounds)]
    t = statistics.median(r[0] for r in runs)
    rss = statistics.median(r[1] for r in runs)
    print(
        f"\nsim.run(baseline, customers={n:,}, engine='simpy'): {runs[0][2]:,} log rows; "
        f"medians of {rounds} fresh processes (import sim included in the RSS)"
    )
    print(f"  now             {t:6.1f} s  peak RSS {rss:6.0f} MiB   (targets: 20 s, 500 MB)")
    if before:
        old = in_fresh_process(_run_child, str(path), n, True)
        print(
            f"  process path    {old[0]:6.1f} s  peak RSS {old[1]:6.0f} MiB   (engine alone, "
            f"one process per customer, 1 run): now / then time {t / old[0]:.2f}, "
            f"memory {rss / old[1]:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--before", action="store_true", help="also the process path (100,000 and 1M)"
    )
    parser.add_argument("--skip-million", action="store_true")
    args = parser.parse_args()
    first = CONTEXT.Process(target=_nothing)
    first.start()
    first.join()
    baseline = SCENARIOS / "baseline.toml"
    measure("baseline (cohort at day 0)", baseline, 100_000, args.rounds, args.before)
    if not args.skip_million:
        measure("baseline (cohort at day 0)", baseline, 1_000_000, args.rounds)
    measure(
        "subscription (Poisson arrivals by channel)",
        SCENARIOS / "subscription.toml",
        None,
        args.rounds,
    )
    if not args.skip_million:
        million(baseline, args.rounds, args.before)


if __name__ == "__main__":
    main()
