"""Warm start against a cold run of the same customers, measured in the same run.

Workload: the orders journey (order, wait a Weibull gap, order again or never) with N
customers (default 200,000). A cold vectorised run of 120 days gives today's log; the warm
start carries every customer over at day 120 and simulates 120 more days
(``sim.run(scenario, start_from=log, at=120)``: conditional remaining gaps through scipy's
``isf``, the Bayes never-again update, each customer's own stream). Reference: a cold
vectorised run of the same scenario, customers and horizon (120 days): the engine's own speed
for the same number of customers and days. Ratio = warm / cold (lower is better).

Rounds alternate warm and cold and the best of each is kept (the machine is shared and its
speed drifts). Concurrency: one process, single-threaded numpy. Peak memory is traced by
``tracemalloc`` for one warm run.

Run: ``python benchmarks/warm_start.py [--customers N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import sim


def scenario(customers: int) -> sim.Scenario:
    """Orders: a purchase, a Weibull(shape 1.5, mean 30) gap, then again (70%) or never."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="purchase", dwell=sim.Fixed(0), purchase=True, next={"post_purchase": 1}
            ),
            sim.Stage(
                name="post_purchase",
                dwell=sim.Weibull(shape=1.5, mean=30),
                next={"purchase": 0.7, "churned": 0.3},
            ),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    return sim.Scenario(
        name="orders",
        journey=journey,
        acquisition=sim.Cohort(size=customers),
        personas=(sim.Persona(name="p", order_value=sim.Lognormal(mean=40, sigma=0.5)),),
        horizon_days=120.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    s = scenario(args.customers)
    # today's log, with churn unrecorded (a shop's export): churned is a silent end
    log = sim.run(s, seed=1, engine="vectorised").log
    frame = log.to_frame()
    frame = frame[frame["to_stage"] != "churned"]
    today = sim.EventLog.from_frame(
        frame,
        stages=log.stages,
        purchase_stages=("purchase",),
        end_stages=("churned",),
        edges=[("purchase", "post_purchase"), ("post_purchase", "purchase")],
        horizon_days=120.0,
    )
    warm_best = cold_best = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        warm = sim.run(s, seed=2, start_from=today, at=120.0)
        warm_best = min(warm_best, time.perf_counter() - started)
        started = time.perf_counter()
        cold = sim.run(s, seed=2, engine="vectorised")
        cold_best = min(cold_best, time.perf_counter() - started)
    tracemalloc.start()
    sim.run(s, seed=2, start_from=today, at=120.0)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(__doc__.splitlines()[0])
    print(f"{args.customers:,} customers, best of {args.rounds} rounds, one process")
    print(f"warm start: {warm_best:.2f} s, {len(warm.log):,} rows; peak traced {peak:.0f} MiB")
    print(f"cold run:   {cold_best:.2f} s, {len(cold.log):,} rows")
    print(f"ratio warm / cold: {warm_best / cold_best:.2f}")


if __name__ == "__main__":
    main()
