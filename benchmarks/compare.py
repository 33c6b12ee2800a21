"""Comparison workload against the same runs made one by one through the public ``run``.

Workload: the baseline and three variants (discount, loyalty, both), 30 replications of 10,000
customers each. Reference, measured in the same run: each scenario's replications through
``sim.run`` and its funnel (what an analyst would otherwise do by hand). The comparison adds
per-replication metrics and paired statistics; target: no slower than the sum of its runs.

Run: ``python benchmarks/compare.py [--replications R] [--customers N] [--workers W]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import sim

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=30)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    base = sim.load_scenario(SCENARIOS / "baseline.toml")
    discount = sim.load_scenario(SCENARIOS / "discount.toml")
    loyalty = sim.load_scenario(SCENARIOS / "loyalty.toml")
    both = discount.replace(name="both").with_interventions(*loyalty.interventions)
    scenarios = {"baseline": base, "discount": discount, "loyalty": loyalty, "both": both}
    r, n, w = args.replications, args.customers, args.workers

    started = time.perf_counter()
    for scenario in scenarios.values():
        sim.run(scenario, replications=r, customers=n, seed=1, workers=w).funnel()
    one_by_one = time.perf_counter() - started

    started = time.perf_counter()
    result = sim.compare(scenarios, replications=r, customers=n, seed=1, workers=w)
    result.summary()
    result.roi()
    together = time.perf_counter() - started

    customers = len(scenarios) * r * n
    print(
        f"{len(scenarios)} scenarios x {r} replications x {n:,} customers "
        f"({customers:,} customers, cohorts all active at day 0), {w} worker(s)"
    )
    print(f"  sim.run one by one   {one_by_one:7.1f} s  {customers / one_by_one:9,.0f} customers/s")
    print(f"  sim.compare          {together:7.1f} s  {customers / together:9,.0f} customers/s")
    print(f"  ratio compare / runs: {together / one_by_one:.2f}   (target <= 1)")


if __name__ == "__main__":
    main()
