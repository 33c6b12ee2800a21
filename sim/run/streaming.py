"""Runs in bounded memory: the event log goes to a Parquet dataset chunk by chunk while
mergeable summaries are kept.

A replication is one chunk, or, for a day-0 cohort whose customers do not interact (no
intervention budget shared between them), chunks of ``chunk_customers`` customers: customer
k takes the k-th number of each random stream wherever it is simulated
(:meth:`CompiledScenario.chunk`), so the chunks together are the same customers, with the same
journeys, as the whole cohort run at once. Each chunk is simulated, written as one Parquet part
and summarised by the worker that ran it (a local process or a Dask worker, which then needs
the folder on a path all workers share); only the summary travels back. Engines know nothing
of this.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path

import numpy as np

from sim.analysis.metrics import credited_purchases
from sim.analysis.summary import LogSummary
from sim.engine.compiled import CompiledScenario
from sim.engine.registry import simulate_replication
from sim.io.event_dataset import clear_dataset, part_name, write_meta, write_part
from sim.model.acquisition import Cohort
from sim.model.scenario import Scenario
from sim.progress import progress_bar
from sim.results import StreamedRunResult
from sim.run.backends import run_tasks
from sim.run.provenance import provenance

#: Customers per chunk when a cohort is split: the SimPy engine needs about 1.2 KB per
#: customer plus about as much per customer active at once, so a chunk stays near 500 MB.
CHUNK_CUSTOMERS = 200_000

#: ``sim run --out`` streams when customers x replications exceed this (an in-memory log of
#: this many customers takes about 1 GB with its analyses).
STREAM_ABOVE = 1_000_000


def expected_customers(scenario: Scenario) -> float:
    """Customers a replication is expected to hold: the cohort, or channel rates x horizon."""
    if isinstance(scenario.acquisition, Cohort):
        return float(scenario.acquisition.size)
    return sum(ch.rate_per_day for ch in scenario.acquisition.channels) * scenario.horizon_days


def cannot_split(scenario: Scenario) -> str | None:
    """Why a replication of this scenario cannot be simulated in chunks of customers (None:
    it can)."""
    if not isinstance(scenario.acquisition, Cohort):
        return "customers arrive over time by channel (only a day-0 cohort is split)"
    budgeted = [iv.name for iv in scenario.interventions if iv.budget is not None]
    if budgeted:
        return f"intervention '{budgeted[0]}' has a budget its customers share"
    return None


def plan_chunks(
    scenario: Scenario, replications: int, chunk_customers: int
) -> list[tuple[int, int, int]]:
    """(replication, first customer, customers) of every chunk to simulate."""
    if cannot_split(scenario) is not None:
        return [(r, 0, -1) for r in range(replications)]
    size = scenario.acquisition.size
    return [
        (r, first, min(chunk_customers, size - first))
        for r in range(replications)
        for first in range(0, max(size, 1), chunk_customers)
    ]


def simulate_chunk(
    engine: str,
    compiled: CompiledScenario,
    seed: int,
    replication: int,
    first: int,
    customers: int,
    directory: str | None,
) -> tuple[LogSummary, dict]:
    """Simulate one chunk (``customers`` -1: the whole replication), write its part to
    ``directory`` (None: nowhere) and return its summary with the log's metadata."""
    part = compiled if customers < 0 else compiled.chunk(first, customers)
    log = simulate_replication(engine, part, seed, replication)
    # the chunk's log is one replication of its own: number it 0 to summarise it alone
    log = replace(
        log,
        replication=np.zeros(len(log), dtype=np.int32),
        reach_replication=np.zeros(len(log.reach_time), dtype=np.int32),
    )
    if directory is not None:
        write_part(log, directory, replication, first)
    meta = {"stage_info": log.stage_info(), "size": int(log.customers[0])}
    s = compiled.scenario
    credited = (
        credited_purchases(log, s.interventions, s.journey) if s.interventions else None
    )
    return LogSummary.of_log(log, [replication], credited), meta


def run_streamed(
    scenario: Scenario,
    replications: int,
    *,
    seed: int,
    engine: str,
    directory: str | Path | None,
    chunk_customers: int | None,
    workers: int,
    backend: str,
    address: str | None,
    progress: bool | None,
) -> StreamedRunResult:
    """Run replications chunk by chunk (see the module documentation); the caller has
    checked the arguments and chosen the engine."""
    chunk = CHUNK_CUSTOMERS if chunk_customers is None else chunk_customers
    compiled = CompiledScenario.build(scenario)
    where = None if directory is None else str(clear_dataset(directory))
    chunks = plan_chunks(scenario, replications, chunk)
    tasks = [((r, first), (engine, compiled, seed, r, first, n, where)) for r, first, n in chunks]
    started = time.perf_counter()
    summary: LogSummary | None = None
    sizes: dict[int, int] = {}
    template = None
    finished: set[Hashable] = set()
    bar = progress_bar(len(tasks), "chunks", progress)

    # summaries are merged in the plan's order whatever order chunks finish in, so sums of
    # floating-point numbers come out the same on any backend and number of workers
    order = [key for key, _ in tasks]
    waiting: dict[Hashable, LogSummary] = {}

    def done(key: Hashable, value: tuple[LogSummary, dict]) -> None:
        nonlocal summary, template
        part, meta = value
        waiting[key] = part
        while order and order[0] in waiting:
            ready = waiting.pop(order.pop(0))
            summary = ready if summary is None else summary.merge(ready)
        sizes[key[0]] = sizes.get(key[0], 0) + meta["size"]
        template = template or meta["stage_info"]
        finished.add(key)
        bar.update()

    complete = True
    try:
        run_tasks(simulate_chunk, tasks, done, workers=workers, backend=backend, address=address)
    except KeyboardInterrupt:
        complete = False
    finally:
        bar.close()
    for key in order:  # after an interruption: what finished out of order
        if key in waiting:
            part = waiting.pop(key)
            summary = part if summary is None else summary.merge(part)
    if summary is None:
        raise KeyboardInterrupt
    # keep whole replications only: a replication with a chunk missing would be biased
    whole = [
        r for r in range(replications) if all((r, f) in finished for q, f, _ in chunks if q == r)
    ]
    if not complete:
        warnings.warn(
            f"run interrupted: keeping the {len(whole)} of {replications} replications "
            "that finished",
            RuntimeWarning,
            stacklevel=3,
        )
        summary.counts = {r: c for r, c in summary.counts.items() if r in whole}
    if where is not None:
        for r, first, _ in chunks:
            if r not in whole:
                (Path(where) / part_name(r, first)).unlink(missing_ok=True)
                (Path(where) / f"_reach-{part_name(r, first)[5:]}").unlink(missing_ok=True)
        write_meta(
            where,
            template,
            scenario.persona_names,
            scenario.channel_names,
            tuple(iv.name for iv in scenario.interventions),
            scenario.horizon_days,
            [sizes.get(r, 0) if r in whole else 0 for r in range(replications)],
        )
    customers = int(sum(sizes.get(r, 0) for r in whole))
    prov = provenance(
        scenario,
        seed,
        len(whole),
        replications,
        customers,
        time.perf_counter() - started,
        engine,
    )
    prov["streamed"] = {"chunks": len(chunks), "chunk_customers": chunk, "events": where}
    return StreamedRunResult(
        scenario=scenario,
        summary=summary,
        provenance=prov,
        directory=None if where is None else Path(where),
        complete=complete,
    )
