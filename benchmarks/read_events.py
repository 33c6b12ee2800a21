"""Reading a real event export: ``sim.read_events`` + funnel + retention against a plain
``pandas.read_csv`` of the same file, measured in the same run.

Workload: a CRM-like CSV of 1,000,000 rows (about 250,000 customers; columns user_id, ISO
timestamp without zone, event name, revenue, segment, source), made with numpy in a temporary
folder. Ours: ``read_events`` (parse, map, check every bad-row rule, build and validate the
log) then ``funnel`` and ``retention`` by persona. Reference: ``pandas.read_csv`` of the same
file with default options: the least any reader must spend. Ratio = ours / reference (lower
is better).

Each measurement runs in a fresh process (so its peak RSS is its own), one at a time, and does
the work twice: the second pass (steady state) gives the main ratio, the first (with one-time
costs such as lazy imports and memory touched for the first time) is printed beside it.
Rounds are interleaved and the best of each is kept, since this machine is shared and its
speed drifts. Concurrency: one process at a time, single-threaded numpy/pandas.

Run: ``python benchmarks/read_events.py [--rows N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

EVENTS = np.array(["signup", "trial_start", "cart", "order", "order", "order", "cancel"])
STAGES = {
    "signup": "awareness",
    "trial_start": "consideration",
    "cart": "intent",
    "order": "purchase",
    "cancel": "churned",
}


def make_csv(path: Path, rows: int, seed: int = 0) -> int:
    """Write a CRM-like export of ``rows`` events; returns the number of customers."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, len(EVENTS) + 1, size=rows // 2)
    steps = steps[: np.searchsorted(np.cumsum(steps), rows) + 1]
    steps[-1] -= steps.sum() - rows
    customers = len(steps)
    who = np.repeat(np.arange(customers), steps)
    position = np.arange(rows) - np.repeat(np.cumsum(steps) - steps, steps)
    arrival = rng.uniform(0, 365, size=customers)
    gaps = rng.exponential(3.0, size=rows)
    gaps[position == 0] = 0
    days = (
        arrival[who] + np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[np.cumsum(steps) - steps], steps)
    )
    event = EVENTS[position]
    frame = pd.DataFrame(
        {
            "user_id": np.char.add("u", who.astype(str)),
            "timestamp": (pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D")).floor("s"),
            "event": event,
            "revenue": np.where(event == "order", rng.lognormal(3.5, 0.5, rows).round(2), np.nan),
            "segment": np.array(["smb", "mid", "enterprise"])[who % 3],
            "source": np.array(["ads", "organic", "referral", "email"])[who % 4],
        }
    )
    frame.sort_values("timestamp", kind="stable").to_csv(path, index=False)
    return customers


def workload(which: str, path: str) -> tuple[float, dict[str, float], int]:
    """Seconds for one pass of the workload, its parts, and the rows it gave."""
    import sim

    started = time.perf_counter()
    parts: dict[str, float] = {}
    if which == "read_csv":
        frame = pd.read_csv(path)
        return time.perf_counter() - started, {}, len(frame)
    log = sim.read_events(
        path,
        customer="user_id",
        time="timestamp",
        stage="event",
        value="revenue",
        persona="segment",
        channel="source",
        stages=STAGES,
    )
    parts["read_events"] = time.perf_counter() - started
    sim.analysis.funnel(log, by="persona")
    parts["funnel"] = time.perf_counter() - started - parts["read_events"]
    sim.analysis.retention(log, by="persona")
    parts["retention"] = time.perf_counter() - started - sum(parts.values())
    return time.perf_counter() - started, parts, len(log)


def child(which: str, path: str) -> None:
    """Two passes in this (fresh) process: the first pays one-time costs (lazy imports,
    memory first touched), the second is the steady state. Prints both and the peak RSS."""
    import sim  # noqa: F401  (not timed: the reference pays no import either)

    cold, _, _ = workload(which, path)
    warm, parts, rows = workload(which, path)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {"cold": cold, "seconds": warm, "peak_mb": peak_mb, "rows": rows, "parts": parts}
        )
    )


def run_child(which: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.csv"
        started = time.perf_counter()
        customers = make_csv(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        print(
            f"{args.rows:,} rows, {customers:,} customers, {size_mb:.0f} MiB CSV "
            f"(made in {time.perf_counter() - started:.1f} s)"
        )
        ours, ref = [], []
        for _ in range(args.rounds):
            ref.append(run_child("read_csv", path))
            ours.append(run_child("read_events", path))
    best_ours = min(ours, key=lambda r: r["seconds"])
    best_ref = min(ref, key=lambda r: r["seconds"])
    cold_ours = min(r["cold"] for r in ours)
    cold_ref = min(r["cold"] for r in ref)
    assert best_ours["rows"] == args.rows, "every row of the benchmark file is a good row"
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in best_ours["parts"].items())
    print(
        f"  read_events + funnel + retention  {best_ours['seconds']:6.2f} s  "
        f"peak RSS {best_ours['peak_mb']:6.0f} MB   ({parts})"
    )
    print(
        f"  pandas.read_csv (reference)       {best_ref['seconds']:6.2f} s  "
        f"peak RSS {best_ref['peak_mb']:6.0f} MB"
    )
    print(
        f"  ratio (ours / read_csv): time {best_ours['seconds'] / best_ref['seconds']:.2f}, "
        f"peak memory {best_ours['peak_mb'] / best_ref['peak_mb']:.2f}   "
        f"(best of {args.rounds} interleaved rounds, one process at a time)"
    )
    print(
        f"  first pass in a fresh process: ours {cold_ours:.2f} s, read_csv {cold_ref:.2f} s, "
        f"ratio {cold_ours / cold_ref:.2f} (one-time costs: lazy imports, memory first touched)"
    )


if __name__ == "__main__":
    main()
