"""Fitting speed: a scenario fitted to an event log of about a million moves.

Workload: the three-persona test journey of ``tests/test_calibrate.py`` (gamma and Weibull
dwell times, repeat purchases with unrecorded churn), simulated for ``--customers`` customers
over 200 days, churn rows removed. Timed: ``Calibrator().fit(log)`` (transitions, four dwell
families with censoring and the never-again mixture, per-persona refits, order values,
the scenario). Reference, measured in the same run: ``log.validate()``, one vectorised pass
over the log checking its contract, the least work any fit must do to trust its input; and
reading the visits alone (sort and shift per customer). Ratios are fit / reference. Then
latent personas (``personas=3``) on a smaller log: the time per EM iteration.

Run: ``python benchmarks/calibration_speed.py [--customers N]``. One process; several
engineers share the machine's cores, so absolute times are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sim
from sim.calibrate.visits import visits
from tests.test_calibrate import quiet, truth


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--persona-customers", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    log = quiet(sim.run(truth(size=args.customers), seed=1).log)
    simulated = time.perf_counter() - started
    validate = best_of(3, log.validate)
    read = best_of(3, lambda: visits(log))
    tracemalloc.start()
    started = time.perf_counter()
    fit = sim.Calibrator().fit(log)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    print(__doc__.splitlines()[0])
    print(
        f"{len(log):,} moves of {args.customers:,} customers (simulated in {simulated:.1f} s), "
        "one process"
    )
    print(f"fit: {seconds:.2f} s, peak traced memory {peak:.0f} MiB")
    print(
        f"reference log.validate(): {validate:.3f} s -> fit / validate = {seconds / validate:.1f}"
    )
    print(f"reference visits(log): {read:.3f} s -> fit / visits = {seconds / read:.1f}")
    few = quiet(sim.run(truth(size=args.persona_customers), seed=2).log)
    started = time.perf_counter()
    latent = sim.Calibrator(personas=3).fit(few)
    em_seconds = time.perf_counter() - started
    m = latent.mixture_.iloc[0]
    print(
        f"latent personas (K = 3) on {len(few):,} moves of {args.persona_customers:,} "
        f"customers: {em_seconds:.1f} s in all, {m.iterations} EM iterations of "
        f"{m.seconds_per_iteration:.3f} s"
    )
    chosen = fit.dwell_[fit.dwell_["chosen"]][["stage", "family"]]
    print("chosen families: " + ", ".join(f"{s} {f}" for s, f in chosen.itertuples(index=False)))


if __name__ == "__main__":
    main()
