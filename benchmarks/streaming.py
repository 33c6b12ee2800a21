"""A streamed run of many customers in bounded memory, against the in-memory run.

Workload: the bundled baseline scenario as a day-0 cohort. The streamed run (``sim.run(...,
stream_to=DIR)``, chunks of 200,000 customers, events written as Parquet parts, summaries
merged) of ``--customers`` (default 10,000,000) against the in-memory run of ``--reference``
customers (default 1,000,000) with its funnel and retention summary, each in a fresh process
(one at a time) so each peak RSS is its own. Ratio = streamed customers/s / in-memory
customers/s (both serial, one worker). Target: peak RSS of the streamed run under 2 GB. This
machine is shared, so only the ratio, measured in the same run, means much.

Second workload: ``sim.compare`` of baseline and loyalty, 2 replications each, streamed at
``--compare-customers`` per replication (default 2,000,000) against held in memory at
``--compare-reference`` (default 200,000), same measures.

Run: ``python benchmarks/streaming.py [--customers N] [--reference N] [--out DIR]
[--compare-customers N] [--compare-reference N]``.
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
LOYALTY = SCENARIO.with_name("loyalty.toml")
COMPARE_REPLICATIONS = 2

#: Fresh processes come from a fork server started while this process is small (Linux keeps
#: the peak RSS across fork and exec).
CONTEXT = mp.get_context("forkserver")


def _compare(customers: int, out: str | None, queue) -> None:
    import sim

    pair = [sim.load_scenario(SCENARIO), sim.load_scenario(LOYALTY)]
    started = time.perf_counter()
    kw = {"replications": COMPARE_REPLICATIONS, "customers": customers, "seed": 1}
    result = sim.compare(pair, **kw) if out is None else sim.compare(pair, stream_to=out, **kw)
    result.summary()
    result.roi()
    elapsed = time.perf_counter() - started
    queue.put((elapsed, 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


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


def fresh(customers: int, out: str | None, target=_run) -> tuple[float, int, float]:
    """(seconds, event rows, peak RSS MiB) of one run in a new process."""
    queue = CONTEXT.Queue()
    proc = CONTEXT.Process(target=target, args=(customers, out, queue))
    proc.start()
    got = queue.get()
    proc.join()
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers", type=int, default=10_000_000, help="streamed run (0: skip it)"
    )
    parser.add_argument("--reference", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, help="folder for the streamed events (a temp dir)")
    parser.add_argument(
        "--compare-customers",
        type=int,
        default=2_000_000,
        help="customers per replication of the streamed comparison (0: skip it)",
    )
    parser.add_argument("--compare-reference", type=int, default=200_000)
    args = parser.parse_args()
    if not args.customers:  # the comparison alone
        compare_both(args.compare_customers, args.compare_reference)
        return
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
    if args.compare_customers:
        compare_both(args.compare_customers, args.compare_reference)


def compare_both(customers: int, reference: int) -> None:
    """sim.compare of baseline and loyalty, streamed at ``customers`` per replication against
    held in memory at ``reference``, each in a fresh process."""
    out = Path(tempfile.mkdtemp(prefix="sim-stream-compare-"))
    try:
        t_mem, _, rss_mem = fresh(reference, None, _compare)
        t_st, _, rss_st = fresh(customers, str(out), _compare)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    reps = 2 * COMPARE_REPLICATIONS
    print(f"sim.compare of baseline and loyalty, {COMPARE_REPLICATIONS} replications each")
    print(
        f"  in memory  {reference:>12,} customers/replication  {t_mem:8.1f} s  "
        f"{reps * reference / t_mem:9,.0f} customers/s  peak RSS {rss_mem:7,.0f} MiB"
    )
    print(
        f"  streamed   {customers:>12,} customers/replication  {t_st:8.1f} s  "
        f"{reps * customers / t_st:9,.0f} customers/s  peak RSS {rss_st:7,.0f} MiB"
    )
    ratio = (customers / t_st) / (reference / t_mem)
    print(f"  throughput ratio (streamed / in memory): {ratio:.2f}")


if __name__ == "__main__":
    first = CONTEXT.Process(target=print, args=("",))
    first.start()
    first.join()
    main()
