"""Engine throughput against a bare SimPy loop measured in the same run.

Workload: the bundled baseline scenario with 100,000 customers entering at day 0 (so all
100,000 are active at once at the start: SimPy's event queue is at its largest), and the
subscription scenario with Poisson arrivals (far fewer active at once).

Reference: a bare SimPy loop with one process per customer that does nothing but wait, with
exactly the delays our engine's customers waited: the same number of SimPy events with the same
queue dynamics, no bookkeeping. Ratio = our event rate / bare event rate (target >= 0.5: our
bookkeeping costs at most as much as SimPy itself). Rounds are interleaved and the best of each
is kept, since this machine's speed drifts by tens of percent between seconds.

Run: ``python benchmarks/engine.py [--customers N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import simpy

import sim
from sim.engine import CompiledScenario, simulate
from sim.events import ENTRY

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def waits_per_customer(log: sim.EventLog) -> tuple[list[list[float]], list[float]]:
    """For each customer: arrival day and the positive waits between their moves."""
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


def bare_simpy(waits: list[list[float]], arrivals: list[float], horizon: float) -> float:
    """Seconds for SimPy alone to run processes that wait the given delays."""
    env = simpy.Environment()

    def customer(delays):
        for d in delays:
            yield env.timeout(d)

    def source():
        for arrival, delays in zip(arrivals, waits, strict=True):
            if arrival > env.now:
                yield env.timeout(arrival - env.now)
            env.process(customer(delays))

    started = time.perf_counter()
    if max(arrivals, default=0.0) == 0.0:
        for delays in waits:
            env.process(customer(delays))
    else:
        env.process(source())
    env.run(until=horizon)
    return time.perf_counter() - started


def max_active(log: sim.EventLog, scenario: sim.Scenario) -> int:
    """Largest number of customers in the journey (entered, not yet ended) at one time."""
    absorbing = np.array([s.absorbing for s in scenario.journey.stages])
    starts = log.time[log.from_stage == ENTRY]
    ends = log.time[(log.from_stage != ENTRY) & absorbing[log.to_stage]]
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.lexsort((-steps, times))
    return int(np.cumsum(steps[order]).max())


def measure(name: str, scenario: sim.Scenario, rounds: int) -> None:
    compiled = CompiledScenario.build(scenario)
    log = simulate(compiled, 1, 0)
    waits, arrivals = waits_per_customer(log)
    events = sum(len(w) for w in waits) + sum(a > 0 for a in arrivals)
    customers = int(log.customers.sum())
    ours, bare = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        simulate(compiled, 1, 0)
        ours.append(time.perf_counter() - started)
        bare.append(bare_simpy(waits, arrivals, scenario.horizon_days))
    t_ours, t_bare = min(ours), min(bare)
    print(
        f"\n{name}: {customers:,} customers, {len(log):,} log rows, {events:,} SimPy events, "
        f"at most {max_active(log, scenario):,} customers active at once"
    )
    print(
        f"  engine      {t_ours:6.2f} s  {customers / t_ours:10,.0f} customers/s  "
        f"{events / t_ours:10,.0f} events/s  {len(log) / t_ours:10,.0f} rows/s"
    )
    print(
        f"  bare SimPy  {t_bare:6.2f} s  {customers / t_bare:10,.0f} customers/s  "
        f"{events / t_bare:10,.0f} events/s"
    )
    print(f"  ratio (engine / bare SimPy event rate): {t_bare / t_ours:.2f}   (target >= 0.5)")
    t = time.perf_counter()
    result = sim.RunResult(scenario=scenario, log=log, provenance={})
    result.funnel()
    result.retention_summary()
    print(f"  analysis (funnel + retention of this log): {time.perf_counter() - t:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    baseline = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(args.customers)
    measure("baseline (cohort at day 0)", baseline, args.rounds)
    subscription = sim.load_scenario(SCENARIOS / "subscription.toml")
    measure("subscription (Poisson arrivals by channel)", subscription, args.rounds)


if __name__ == "__main__":
    main()
