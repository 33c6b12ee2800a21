"""Throughput of scenarios whose customers interact, against bare SimPy loops measured in the
same run (one process, no other work of ours in the loop).

Workloads:

- referral: the bundled referral programme with a market of 200,000 people (word of mouth
  off, referrals from advocates, channel arrivals beside it), one replication of a year.
  Reference: a bare SimPy loop that starts every customer at the day the engine's customer
  arrived and lets them wait exactly the engine's delays: the same customers and the same
  SimPy timeouts, without the market's adoption process and without bookkeeping.
- support queue: M/M/10 at utilisation 0.9 (9 calls a day, service of mean 1 day, 10 agents)
  over 3,000 days. Reference: a bare SimPy loop with a ``simpy.Resource`` of the same capacity,
  customers arriving at the engine's arrival days and holding a unit for the engine's service
  times: the same queue, the same events.

Ratio = reference time / engine time for the same work (target >= 0.5). Rounds are
interleaved and the best of each kept, since this shared machine's speed drifts. Peak memory
is the Python heap (tracemalloc) of one engine replication, measured in a separate pass.

Run: ``python benchmarks/interacting.py [--market N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import simpy

import sim
from sim.analysis.queues import queue_visits
from sim.engine import CompiledScenario, simulate

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from engine import bare_schedule, waits_per_customer  # noqa: E402

SCENARIOS = HERE.parent / "scenarios"


def bare_simpy(waits: list[list[float]], arrivals: list[float], horizon: float) -> float:
    """Seconds for SimPy alone to run one process per customer that waits the given delays
    (a timeout each), started by a source process at their arrival days."""
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


def bare_queue(arrivals: list[float], services: list[float], capacity: int, horizon: float):
    """Seconds for SimPy alone to run the same M/M/c queue: arrivals, one unit each, release."""
    env = simpy.Environment()
    agents = simpy.Resource(env, capacity=capacity)

    def customer(service):
        with agents.request() as request:
            yield request
            yield env.timeout(service)

    def source():
        for arrival, service in zip(arrivals, services, strict=True):
            if arrival > env.now:
                yield env.timeout(arrival - env.now)
            env.process(customer(service))

    started = time.perf_counter()
    env.process(source())
    env.run(until=horizon)
    return time.perf_counter() - started


def peak_mib(compiled: CompiledScenario) -> float:
    tracemalloc.start()
    simulate(compiled, 1, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def report(
    name: str,
    log: sim.EventLog,
    ours: list[float],
    bare: list[float],
    mib: float,
    schedule: list[float] | None = None,
):
    t_ours, t_bare = min(ours), min(bare)
    rows = len(log)
    print(f"\n{name}: {int(log.customers.sum()):,} customers, {rows:,} log rows")
    print(f"  most customers active at once: {concurrency(log):,}")
    print(f"  engine      {t_ours:6.2f} s  {rows / t_ours:10,.0f} events (log rows)/s")
    print(f"  bare SimPy  {t_bare:6.2f} s  {rows / t_bare:10,.0f} events (log rows)/s")
    print(f"  ratio (bare time / engine time, same work): {t_bare / t_ours:.2f}  (target >= 0.5)")
    if schedule:
        t_sched = min(schedule)
        print(
            f"  bare env.schedule loop (reusable events, no processes) {t_sched:6.2f} s: "
            f"ratio {t_sched / t_ours:.2f}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak Python heap of one engine replication: {mib:.0f} MiB; 1 process")
    print(f"  peak RSS of this benchmark process so far: {rss:.0f} MiB")


def concurrency(log: sim.EventLog) -> int:
    """Most customers in the journey (entered, not yet at an end stage) at one time."""
    entry = log.from_stage == sim.events.ENTRY
    ends = ~entry & log.end_mask[log.to_stage]
    times = np.concatenate([log.time[entry], log.time[ends]])
    steps = np.concatenate([np.ones(entry.sum()), -np.ones(ends.sum())])
    order = np.lexsort((-steps, times))
    return int(np.cumsum(steps[order]).max(initial=0))


def referral(market: int, rounds: int) -> None:
    scenario = sim.load_scenario(SCENARIOS / "referral_programme.toml").replace(
        market=sim.Market(size=market, external_rate=0.0002)
    )
    compiled = CompiledScenario.build(scenario)
    log = simulate(compiled, 1, 0)
    waits, arrivals = waits_per_customer(log)
    order = np.argsort(arrivals, kind="stable")
    waits = [waits[i] for i in order]
    arrivals = [arrivals[i] for i in order]
    ours, bare, schedule = [], [], []
    for _ in range(rounds):
        started = time.perf_counter()
        simulate(compiled, 1, 0)
        ours.append(time.perf_counter() - started)
        bare.append(bare_simpy(waits, arrivals, scenario.horizon_days))
        schedule.append(bare_schedule(waits, arrivals, scenario.horizon_days))
    name = f"referral programme, market of {market:,}"
    report(name, log, ours, bare, peak_mib(compiled), schedule)


def support_queue(rounds: int) -> None:
    agents, horizon = 10, 3000.0
    journey = sim.Journey(
        stages=(
            sim.Stage(name="call", dwell="exponential(mean=1)", next={"done": 1}, uses="agents"),
            sim.Stage(name="done", absorbing=True),
        )
    )
    scenario = sim.Scenario(
        name="M/M/10 at 0.9",
        journey=journey,
        acquisition=sim.Arrivals(channels=(sim.Channel(name="calls", rate_per_day=9.0),)),
        resources=(sim.Resource(name="agents", capacity=agents),),
        horizon_days=horizon,
    )
    compiled = CompiledScenario.build(scenario)
    log = simulate(compiled, 1, 0)
    visits = queue_visits(log)
    entry = log.from_stage == sim.events.ENTRY
    arrivals = np.sort(log.time[entry])
    # customers still queueing at the horizon get the mean service: they never reach it
    services = np.ones(len(arrivals))
    served = visits.sort_values("joined")
    services[: len(served)] = served["service"].to_numpy()
    ours, bare = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        simulate(compiled, 1, 0)
        ours.append(time.perf_counter() - started)
        bare.append(bare_queue(arrivals.tolist(), services.tolist(), agents, horizon))
    report("support queue, M/M/10 at utilisation 0.9", log, ours, bare, peak_mib(compiled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    referral(args.market, args.rounds)
    support_queue(args.rounds)


if __name__ == "__main__":
    main()
