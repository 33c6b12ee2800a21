"""Benchmark: the vectorised engine against a bare numpy chain and against the SimPy engine.

Workload: ``scenarios/baseline.toml`` (a day-0 cohort; five stages with repeat purchase, three
personas) at 1,000,000 customers, one replication, one process. Three contestants, timed in the
same run (so the ratios hold even on a busy machine; the absolute times do not):

- the reference: a minimal hand-written numpy implementation of the same chain (the same
  transition rows, dwell laws and persona factors, order values, censoring at the horizon)
  that also builds the event log (entry rows and moves, in time order). It draws from one
  generator with numpy's own samplers and knows nothing of interventions, streams or ties:
  the fastest honest way to do the same work;
- the vectorised engine (``sim.engine.vectorised.simulate``);
- the SimPy engine, at a smaller cohort (``--simpy-customers``, 100,000 by default), its
  throughput compared per customer (it grows a little worse with more customers at once).

Each contestant runs in a fresh process (``multiprocessing`` spawn, after a warm-up on 1,000
customers), so each peak RSS is its own; medians of ``--repeat`` interleaved runs. Throughput is
customers per CPU second of that process (single-threaded work; on a shared machine wall time
also counts other people's work); wall time is printed beside it.

    python benchmarks/vectorised.py [--customers 1000000] [--simpy-customers 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import numpy as np

import sim
from sim.engine import simpy_engine, vectorised
from sim.engine.compiled import CompiledScenario
from sim.model.distributions import Exponential, Fixed, Gamma, Lognormal, Weibull

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.toml"


def reference(n: int, seed: int, scenario: sim.Scenario) -> dict[str, np.ndarray]:
    """The baseline chain in bare numpy: wave by wave, one generator, then the log's columns
    in time order (a stable sort, entry rows first)."""
    c = CompiledScenario.build(scenario)
    rng = np.random.default_rng(seed)
    horizon = scenario.horizon_days
    cumulative = np.array(c.untreated)  # (personas, S, S): the same transition rows
    factor = c.dwell_factor
    purchase = np.array(c.purchase)
    absorbing = np.array(c.absorbing)

    def sampler(law):
        if isinstance(law, Exponential):
            return lambda m: rng.exponential(law.mean, m)
        if isinstance(law, Gamma):
            return lambda m: rng.gamma(law.shape, law.mean / law.shape, m)
        if isinstance(law, Lognormal):
            return lambda m: rng.lognormal(law.mu, law.sigma, m)
        if isinstance(law, Weibull):
            return lambda m: law.scale * rng.weibull(law.shape, m)
        if isinstance(law, Fixed):
            return lambda m: np.full(m, law.value)
        raise NotImplementedError(law)

    dwell = [sampler(law) if law is not None else None for law in c.dwell]
    values = [sampler(law) for law in c.order_value]
    shares = np.cumsum([p.share for p in scenario.personas])
    persona = np.minimum(np.searchsorted(shares, rng.random(n), side="right"), len(shares) - 1)

    who = np.arange(n)
    stage = np.full(n, c.entry)
    t = np.zeros(n)
    parts = []
    while len(who):
        days = np.empty(len(who))
        for s in np.unique(stage).tolist():
            mine = stage == s
            days[mine] = dwell[s](int(mine.sum())) * factor[persona[who[mine]], s]
        u = rng.random(len(who))
        following = (cumulative[persona[who], stage] <= u[:, None]).sum(axis=1)
        now = t + days
        alive = now < horizon
        who, stage, following, now = who[alive], stage[alive], following[alive], now[alive]
        value = np.zeros(len(who))
        buying = np.flatnonzero(purchase[following])
        for p in np.unique(persona[who[buying]]).tolist():
            mine = buying[persona[who[buying]] == p]
            value[mine] = values[p](len(mine))
        parts.append((who, now, stage, following, value))
        keep = ~absorbing[following]
        who, stage, t = who[keep], following[keep], now[keep]

    columns = [np.concatenate([np.arange(n), *(p[0] for p in parts)])]
    columns.append(np.concatenate([np.zeros(n), *(p[1] for p in parts)]))
    columns.append(np.concatenate([np.full(n, -1), *(p[2] for p in parts)]))
    columns.append(np.concatenate([np.full(n, c.entry), *(p[3] for p in parts)]))
    columns.append(np.concatenate([np.zeros(n), *(p[4] for p in parts)]))
    order = np.argsort(columns[1], kind="stable")
    customer = columns[0][order].astype(np.int32)
    return {
        "replication": np.zeros(len(customer), dtype=np.int32),
        "customer": customer,
        "persona": persona[customer].astype(np.int16),
        "channel": np.zeros(len(customer), dtype=np.int16),
        "time": columns[1][order],
        "from_stage": columns[2][order].astype(np.int16),
        "to_stage": columns[3][order].astype(np.int16),
        "value": columns[4][order],
        "treatment": np.zeros(len(customer), dtype=np.int64),
    }


def _run(which: str, scenario: sim.Scenario, seed: int) -> int:
    """One replication by one contestant; returns the number of log rows."""
    if which == "reference":
        return len(reference(scenario.acquisition.size, seed, scenario)["time"])
    engine = vectorised if which == "vectorised" else simpy_engine
    return len(engine.simulate(CompiledScenario.build(scenario), seed, 0))


def _measure(which: str, customers: int, seed: int, queue) -> None:
    """Run one contestant in this (fresh) process and report (seconds, rows, peak MB)."""
    scenario = sim.load_scenario(SCENARIO)
    # warm up on 1,000 customers, so that first calls (lazy imports, caches) are not timed
    _run(which, scenario.with_customers(1000), seed)
    scenario = scenario.with_customers(customers)
    started, cpu = time.perf_counter(), time.process_time()
    rows = _run(which, scenario, seed)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    queue.put((elapsed, cpu, rows, peak))


def measure(which: str, customers: int, seed: int) -> tuple[float, float, int, float]:
    """One timed run in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(which, customers, seed, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--simpy-customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    plan = [
        ("reference", args.customers),
        ("vectorised", args.customers),
        ("simpy", args.simpy_customers),
    ]
    runs: dict[str, list[tuple[float, float, int, float]]] = {name: [] for name, _ in plan}
    # interleaved, so that load on the machine falls on every contestant alike
    for r in range(args.repeat):
        for name, n in plan:
            runs[name].append(measure(name, n, args.seed + r))
    print(
        f"baseline.toml, one replication, one single-threaded process per run, medians of "
        f"{args.repeat} interleaved runs; ratios of CPU seconds (the machine is shared, so "
        "wall time also counts other people's work), wall time shown beside"
    )
    rate = {}
    for name, n in plan:
        wall = statistics.median(x[0] for x in runs[name])
        cpu = statistics.median(x[1] for x in runs[name])
        rows = statistics.median(x[2] for x in runs[name])
        peak = max(x[3] for x in runs[name])
        rate[name] = n / cpu
        print(
            f"  {name:<10} {n:>9,} customers  {cpu:6.2f} s CPU ({wall:6.2f} s wall)  "
            f"{rate[name]:>10,.0f} customers/s  {rows:>10,.0f} rows  peak RSS {peak:,.0f} MB"
        )
    print(f"vectorised / reference (customers/s): {rate['vectorised'] / rate['reference']:.2f}")
    print(
        f"vectorised / simpy (customers/s, simpy at {args.simpy_customers:,}): "
        f"{rate['vectorised'] / rate['simpy']:.1f}"
    )


if __name__ == "__main__":
    main()
