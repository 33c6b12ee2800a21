"""Dask LocalCluster against local worker processes, the same replications, in the same run.

Workload: 20 replications of the bundled baseline scenario (10,000 customers each, day-0
cohort), both on 2 workers: ``sim.run(..., workers=2)`` (local processes, the default) and
``sim.run(..., backend='dask', address=...)`` on a ``distributed.LocalCluster`` of 2
single-threaded worker processes. Ratio = processes time / Dask time (target >= 0.8), with
the cluster's start-up left out (an existing cluster is the normal case) and, beside it, the
time to start one. One serial run is the reference for speed-up, and every run must give the
same bytes. The sides alternate over the rounds and medians are kept; this machine is shared,
so only the ratios, measured in the same run, mean much.

Run: ``python benchmarks/backends.py [--replications R] [--customers N] [--rounds K]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import sim

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.toml"


def timed(**kwargs) -> tuple[float, sim.RunResult]:
    started = time.perf_counter()
    result = sim.run(sim.load_scenario(SCENARIO), seed=1, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    from distributed import LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    common = {"replications": args.replications, "customers": args.customers}
    t_serial, serial = timed(**common)
    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    startup = time.perf_counter() - started
    procs, dask = [], []
    try:
        for _ in range(args.rounds):
            t, res = timed(workers=2, **common)
            procs.append(t)
            assert np.array_equal(res.log.time, serial.log.time)
            t, res = timed(backend="dask", address=cluster.scheduler_address, **common)
            dask.append(t)
            assert np.array_equal(res.log.time, serial.log.time)
            assert np.array_equal(res.log.to_stage, serial.log.to_stage)
    finally:
        cluster.close()
    t_procs, t_dask = statistics.median(procs), statistics.median(dask)
    print(
        f"{args.replications} replications x {args.customers:,} customers (baseline, day-0 "
        f"cohort), 2 workers each side, medians of {args.rounds} rounds; same bytes every run"
    )
    print(f"  serial (1 process)          {t_serial:7.2f} s")
    print(f"  local processes, 2 workers  {t_procs:7.2f} s  ({t_serial / t_procs:.2f}x serial)")
    print(f"  Dask LocalCluster, 2 workers{t_dask:7.2f} s  ({t_serial / t_dask:.2f}x serial)")
    print(f"  ratio (processes time / Dask time): {t_procs / t_dask:.2f}   (target >= 0.8)")
    print(f"  starting the LocalCluster took {startup:.1f} s (not in the ratio)")


if __name__ == "__main__":
    main()
