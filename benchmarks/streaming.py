"""A streamed run of many customers in bounded memory, against the in-memory run.

Workload: the bundled baseline scenario as a day-0 cohort. The streamed run (``sim.run(...,
stream_to=DIR)``, chunks of 200,000 customers, events written as Parquet parts, summaries
merged) of ``--customers`` (default 10,000,000) against the in-memory run of ``--reference``
customers (default 1,000,000) with its funnel and retention summary, each in a fresh process
(one at a time) so each peak RSS is its own. Ratio = streamed customers/s / in-memory
customers/s (both serial, one worker). Target: peak RSS of the streamed run under 2 GB. This
machine is shared, so only the ratio, measured in the same run, means much.

Run: ``python benchmarks/streaming.py [--customers N] [--reference N] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import tempfile
import time
from pathlib import Path

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.toml"

#: Fresh processes come from a fork server started while this process is small (Linux keeps
#: the peak RSS across fork and exec).
CONTEXT = mp.get_context("forkserver")


def _run(customers: int, out: str | None, queue) -> None:
    import sim

    scenario = sim.load_scenario(SCENARIO)
    started = time.perf_counter()
    if out is None:
        result = sim.run(scenario, customers=customers, seed=1)
        rows = len(result.log)
    else:
        result = sim.run(scenario, customers=customers, seed=1, stream_to=out)
        rows = result.events.count_rows()
    result.funnel()
    result.retention_summary()
    elapsed = time.perf_counter() - started
    queue.put((elapsed, rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def fresh(customers: int, out: str | None) -> tuple[float, int, float]:
    """(seconds, event rows, peak RSS MiB) of one run in a new process."""
    queue = CONTEXT.Queue()
    proc = CONTEXT.Process(target=_run, args=(customers, out, queue))
    proc.start()
    got = queue.get()
    proc.join()
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--reference", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="folder for the streamed events (a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sim-stream-"))
    try:
        t_mem, rows_mem, rss_mem = fresh(args.reference, None)
        t_st, rows_st, rss_st = fresh(args.customers, str(out))
        size = sum(p.stat().st_size for p in out.glob("*.parquet")) / 2**20
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    print("baseline cohort at day 0, one worker, each run in a fresh process, one at a time")
    print(
        f"  in memory  {args.reference:>12,} customers  {rows_mem:>12,} rows  {t_mem:8.1f} s  "
        f"{args.reference / t_mem:9,.0f} customers/s  peak RSS {rss_mem:7,.0f} MiB"
    )
    print(
        f"  streamed   {args.customers:>12,} customers  {rows_st:>12,} rows  {t_st:8.1f} s  "
        f"{args.customers / t_st:9,.0f} customers/s  peak RSS {rss_st:7,.0f} MiB  "
        f"({size:,.0f} MiB of Parquet)"
    )
    ratio = (args.customers / t_st) / (args.reference / t_mem)
    print(f"  throughput ratio (streamed / in memory): {ratio:.2f}")
    print(f"  streamed peak RSS under 2 GB: {'yes' if rss_st < 2048 else 'NO'}")


if __name__ == "__main__":
    first = CONTEXT.Process(target=print, args=("",))
    first.start()
    first.join()
    main()
