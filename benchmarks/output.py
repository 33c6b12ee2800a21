"""What keeping replications on disk costs, and what the retention grid saves.

Workload: the bundled baseline scenario, ``--replications`` replications of ``--customers``
customers, one process.

1. Keeping every replication as it finishes (``sim.run(..., keep=dir)``, what ``sim run --out``
   does for ``--resume``) against the same run without it, rounds interleaved, best of each
   kept: ratio = time with keeping / time without (1.0 = free).
2. The retention curve as run directories used to write it (every event day, CSV) against the
   fixed grid of days written now (Parquet): ratio of file sizes, and of write times.

Times are CPU seconds of this process (``time.process_time``): the machine is shared, and
wall-clock ratios swing by a factor of two under other loads. Prints peak memory (ru_maxrss)
of the whole benchmark. Run:
``python benchmarks/output.py [--customers N] [--replications R] [--rounds K]``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import sim
from sim.analysis import retention_grid

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--replications", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(args.customers)
    work = Path(tempfile.mkdtemp())
    plain, kept = [], []
    try:
        for k in range(args.rounds):
            start = time.process_time()
            result = sim.run(scenario, replications=args.replications, seed=1)
            plain.append(time.process_time() - start)
            start = time.process_time()
            sim.run(scenario, replications=args.replications, seed=1, keep=work / f"keep{k}")
            kept.append(time.process_time() - start)
        size = sum(p.stat().st_size for p in (work / "keep0" / "replications").iterdir())
        print(
            f"{args.replications} replications x {args.customers:,} customers, one process, "
            f"best of {args.rounds}"
        )
        print(
            f"  keeping replications: {min(kept):.2f} CPU s vs {min(plain):.2f} without, "
            f"ratio {min(kept) / min(plain):.3f}; {size / 1e6:.1f} MB kept"
        )
        start = time.process_time()
        result.retention().to_csv(work / "full.csv", index=False)
        full_time = time.process_time() - start
        start = time.process_time()
        grid = retention_grid(result.log.horizon_days)
        result.retention(days=grid).to_parquet(work / "grid.parquet", index=False)
        grid_time = time.process_time() - start
        full, small = (work / "full.csv").stat().st_size, (work / "grid.parquet").stat().st_size
        print(
            f"  retention curve: full CSV {full / 1e6:.2f} MB, grid Parquet {small / 1e6:.3f} MB "
            f"(size ratio {full / small:.0f}x); write time ratio {full_time / grid_time:.2f}"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak memory {peak:,.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
