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

import json
import math
import os
import time
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.registry import simulate_replication
from sim.engine.sizing import (
    RunEstimate,
    available_memory,
    check_memory,
    estimate_run,
    memory_needed,
    size_text,
)
from sim.errors import ScenarioError
from sim.io.atomic import write_text_atomic
from sim.io.event_dataset import (
    PART,
    PENDING,
    STATE,
    SUMMARY,
    clear_dataset,
    part_name,
    read_chunk_summaries,
    summary_name,
    write_chunk_summary,
    write_meta,
    write_part,
)
from sim.model.acquisition import Cohort
from sim.model.scenario import Scenario
from sim.progress import progress_bar
from sim.results import StreamedRunResult
from sim.run.backends import run_tasks
from sim.run.provenance import package_version, provenance, scenario_digest
from sim.run.resume import check_same_run, read_state

if TYPE_CHECKING:  # sim.analysis (pandas) loads in the workers that summarise, not with sim.run
    from sim.analysis.summary import LogSummary

#: Customers per chunk when a cohort is split: a chunk stays near 500 MB with a process per
#: customer (about 1.2 KB per customer plus about as much per customer active at once); the
#: event-driven path for customers who do not interact needs about 0.4 KB per customer of a
#: cohort at its peak (those who go on after their first wait queued, their events and drawn
#: numbers included: :mod:`sim.engine.sizing`), about 75 MB a chunk.
CHUNK_CUSTOMERS = 200_000

#: The rule by which a run with a folder to stream to (``stream="auto"``: ``sim run --out``,
#: ``sim compare --out``) streams: when, held in memory, it would need (the estimate of
#: :func:`sim.engine.sizing.memory_needed`) more than this share of the memory available now,
#: leaving the rest to the analyses, the plots and the machine's other work ...
STREAM_SHARE = 0.5
#: ... or more than this many bytes whatever the machine has: a streamed run is not slower
#: (its log is written part by part instead of at the end), and a run of millions of
#: customers then stays near one chunk's memory on any machine.
STREAM_ABOVE_BYTES = 2 * 2**30

#: How a streamed run advises a run that does not fit in memory.
STREAM_FIX = "stream the event log to disk: sim run --out DIR (in Python: stream_to=DIR)"


def expected_customers(scenario: Scenario) -> float:
    """Customers a replication is expected to hold: the cohort, or channel rates x horizon."""
    if isinstance(scenario.acquisition, Cohort):
        return float(scenario.acquisition.size)
    return sum(ch.rate_per_day for ch in scenario.acquisition.channels) * scenario.horizon_days


def chunk_size(chunk_customers: int | None) -> int:
    """Customers per chunk: as asked, else :data:`CHUNK_CUSTOMERS`."""
    return CHUNK_CUSTOMERS if chunk_customers is None else chunk_customers


def streamed_estimate(
    compiled: CompiledScenario, chunk_customers: int, engine: str | None = None
) -> RunEstimate:
    """Sizes of the largest task of a streamed run: a chunk of a cohort that can be split,
    else a whole replication (``engine`` as for :func:`estimate_run`)."""
    s = compiled.scenario
    if cannot_split(s) is None and s.acquisition.size > chunk_customers:
        return estimate_run(compiled.chunk(0, chunk_customers), engine)
    return estimate_run(compiled, engine)


def stream_reason(
    runs: Sequence[tuple[CompiledScenario, int]],
    workers: int,
    available: int | None = None,
    engine: str | None = None,
) -> str | None:
    """Why ``runs`` (a compiled scenario and its replications each) should stream by the rule
    of :data:`STREAM_SHARE` and :data:`STREAM_ABOVE_BYTES`, in words; None when they fit in
    memory. ``available`` defaults to the memory available now; ``engine`` as for
    :func:`estimate_run`."""
    needed = memory_needed([(estimate_run(c, engine), reps) for c, reps in runs], workers)
    if available is None:
        available = available_memory()
    share = math.inf if available is None else STREAM_SHARE * available
    if needed <= min(share, STREAM_ABOVE_BYTES):
        return None
    if share < STREAM_ABOVE_BYTES:
        limit = f"half of the {size_text(available)} available"
    else:
        limit = f"{size_text(STREAM_ABOVE_BYTES)}"
    need = size_text(needed)
    if share >= STREAM_ABOVE_BYTES and need == limit:  # just above: both would read the same
        need, limit = f"{needed / 2**20:,.0f} MiB", f"{STREAM_ABOVE_BYTES / 2**20:,.0f} MiB"
    return f"held in memory it would need about {need}, more than {limit}"


def check_streamed_memory(
    runs: Sequence[tuple[CompiledScenario, int]],
    workers: int,
    chunk_customers: int,
    engine: str | None = None,
) -> None:
    """Refuse, before anything runs, streamed runs whose chunks cannot fit in memory."""
    check_memory(
        [(streamed_estimate(c, chunk_customers, engine), reps) for c, reps in runs],
        workers,
        kept=False,
    )


def in_memory_fix(
    runs: Sequence[tuple[CompiledScenario, int]],
    workers: int,
    chunk_customers: int,
    engine: str | None = None,
) -> str | None:
    """:data:`STREAM_FIX` when streaming would let ``runs`` fit where holding them would not,
    else None."""
    streamed = [(streamed_estimate(c, chunk_customers, engine), reps) for c, reps in runs]
    available = available_memory()
    if available is None or memory_needed(streamed, workers, kept=False) > available:
        return None
    return STREAM_FIX


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
    scenario: Scenario, replications: int | Sequence[int], chunk_customers: int
) -> list[tuple[int, int, int]]:
    """(replication, first customer, customers) of every chunk to simulate, for
    ``replications`` (a number: 0 to that number less one; or the replication numbers)."""
    numbers = range(replications) if isinstance(replications, int) else replications
    if cannot_split(scenario) is not None:
        return [(r, 0, -1) for r in numbers]
    size = scenario.acquisition.size
    return [
        (r, first, min(chunk_customers, size - first))
        for r in numbers
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
        # written aside; the run moves a chunk into the dataset when it hears it finished,
        # so a chunk still running when the run is interrupted never lands in the dataset
        staging = Path(directory) / PENDING
        staging.mkdir(exist_ok=True)
        write_part(log, staging, replication, first)
    meta = {"stage_info": log.stage_info(), "size": int(log.customers[0])}
    from sim.analysis.metrics import credited_purchases
    from sim.analysis.summary import LogSummary

    s = compiled.scenario
    credited = credited_purchases(log, s.interventions, s.journey) if s.interventions else None
    summary = LogSummary.of_log(log, [replication], credited)
    if directory is not None:
        # written last: the chunk is finished, and a resumed run reads it instead
        write_chunk_summary(staging, replication, first, *_summary_file(summary, meta))
    return summary, meta


def _summary_file(summary: LogSummary, meta: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """A chunk's summary and metadata as JSON values and named arrays."""
    header = {
        "stages": list(summary.stages),
        "personas": list(summary.personas),
        "channels": list(summary.channels),
        "end_stages": list(summary.end_stages),
        "interventions": list(summary.interventions),
        "horizon_days": summary.horizon_days,
        "meta": {
            "size": meta["size"],
            "stage_info": {
                k: [list(e) if isinstance(e, tuple) else e for e in v]
                for k, v in meta["stage_info"].items()
            },
        },
    }
    arrays = {
        f"r{r}.{name}": values
        for r, fields in summary.counts.items()
        for name, values in fields.items()
    }
    return header, arrays


def _summary_from_file(header: dict, arrays: dict[str, np.ndarray]) -> tuple[LogSummary, dict]:
    """The chunk's summary and metadata again, from :func:`_summary_file`'s form."""
    from sim.analysis.summary import LogSummary

    counts: dict[int, dict[str, np.ndarray]] = {}
    for key, values in arrays.items():
        r, name = key[1:].split(".", 1)
        counts.setdefault(int(r), {})[name] = values
    summary = LogSummary(
        stages=tuple(header["stages"]),
        personas=tuple(header["personas"]),
        channels=tuple(header["channels"]),
        end_stages=tuple(bool(x) for x in header["end_stages"]),
        interventions=tuple(header["interventions"]),
        horizon_days=float(header["horizon_days"]),
        counts=counts,
    )
    return summary, header["meta"]


@dataclass(eq=False)
class Stream:
    """One scenario's replications streamed so far: what to simulate (engine, compiled
    scenario, seed, the dataset folder or None) and what came back (the merged summary, each
    replication's customers, the log's stage metadata)."""

    engine: str
    compiled: CompiledScenario
    seed: int
    directory: str | None
    summary: LogSummary | None = None
    sizes: dict[int, int] = field(default_factory=dict)
    template: dict | None = None

    @property
    def scenario(self) -> Scenario:
        """The scenario streamed."""
        return self.compiled.scenario

    def write_meta(self, replications: int) -> None:
        """Describe the dataset (when there is one) for replications 0 to ``replications``
        less one; a replication not held counts 0 customers."""
        if self.directory is None or self.template is None:
            return
        s = self.scenario
        held = set(self.summary.counts) if self.summary is not None else set()
        write_meta(
            self.directory,
            self.template,
            s.persona_names,
            s.channel_names,
            tuple(iv.name for iv in s.interventions),
            s.horizon_days,
            [self.sizes.get(r, 0) if r in held else 0 for r in range(replications)],
        )


def run_chunks(
    streams: Mapping[Hashable, Stream],
    replications: Sequence[int],
    chunk_customers: int,
    *,
    workers: int,
    backend: str,
    address: str | None,
    progress: bool | None,
    finished_before: Mapping[Hashable, Mapping[tuple[int, int], tuple]] | None = None,
) -> bool:
    """Simulate replications ``replications`` of every stream chunk by chunk (see the module
    documentation), all streams' chunks as one batch of tasks, merging each chunk's summary
    into its stream's. ``finished_before``: per stream, the chunks an interrupted run
    finished ((replication, first customer) -> (summary, metadata)), merged, not simulated
    again. Returns True when all finished; after an interruption (Ctrl-C) with
    something finished, False, and each stream keeps only its whole replications (their
    parts on disk too); with nothing finished, KeyboardInterrupt goes on."""
    plans = {k: plan_chunks(s.scenario, replications, chunk_customers) for k, s in streams.items()}
    before = finished_before or {}
    tasks = [
        ((k, r, first), (s.engine, s.compiled, s.seed, r, first, n, s.directory))
        for r in replications
        for k, s in streams.items()
        for q, first, n in plans[k]
        if q == r
    ]

    def finished_then(key: tuple) -> bool:
        return key[1:] in before.get(key[0], {})

    done_before = [(key, before[key[0]][key[1:]]) for key, _ in tasks if finished_then(key)]
    tasks = [t for t in tasks if not finished_then(t[0])]
    # summaries are merged in the plan's order whatever order chunks finish in, so sums of
    # floating-point numbers come out the same on any backend and number of workers
    order = {k: [(r, first) for r, first, _ in plan] for k, plan in plans.items()}
    waiting: dict[Hashable, dict[tuple[int, int], LogSummary]] = {k: {} for k in streams}
    finished: set[Hashable] = set()
    bar = progress_bar(len(tasks) + len(done_before), "chunks", progress)

    def merge(k: Hashable, part: LogSummary) -> None:
        s = streams[k]
        s.summary = part if s.summary is None else s.summary.merge(part)

    def done(key: Hashable, value: tuple[LogSummary, dict]) -> None:
        k, r, first = key
        part, meta = value
        waiting[k][(r, first)] = part
        queue = order[k]
        while queue and queue[0] in waiting[k]:
            merge(k, waiting[k].pop(queue.pop(0)))
        s = streams[k]
        s.sizes[r] = s.sizes.get(r, 0) + meta["size"]
        s.template = s.template or meta["stage_info"]
        if s.directory is not None:
            move_chunk(Path(s.directory) / PENDING, Path(s.directory), r, first)
        finished.add(key)
        bar.update()

    for key, value in done_before:
        done(key, value)
    complete = True
    try:
        run_tasks(simulate_chunk, tasks, done, workers=workers, backend=backend, address=address)
    except KeyboardInterrupt:
        complete = False
    finally:
        bar.close()
    if complete:
        return True
    if not finished:
        raise KeyboardInterrupt
    for k, s in streams.items():
        for key in order[k]:  # what finished out of order
            if key in waiting[k]:
                merge(k, waiting[k].pop(key))
        # keep whole replications only: a replication with a chunk missing would be biased;
        # the finished chunks of the others wait aside, out of the dataset, for a resumed run
        partial = {r for r, first, _ in plans[k] if (k, r, first) not in finished}
        if s.summary is not None:
            s.summary.counts = {r: c for r, c in s.summary.counts.items() if r not in partial}
        if s.directory is not None:
            d = Path(s.directory)
            for r, first, _ in plans[k]:
                if r in partial:
                    move_chunk(d, d / PENDING, r, first)
    if any(s.summary is None or not s.summary.counts for s in streams.values()):
        raise KeyboardInterrupt  # chunks finished, but no whole replication of every stream
    return False


def chunk_files(replication: int, first: int) -> tuple[str, ...]:
    """The files of one chunk in a streamed run's folder."""
    part = part_name(replication, first)
    return summary_name(replication, first), part, f"_reach-{part[5:]}"


def move_chunk(source: Path, target: Path, replication: int, first: int) -> None:
    """Move a chunk's files from ``source`` to ``target`` (the summary last: in ``target``
    the chunk is finished only once its summary is there)."""
    target.mkdir(exist_ok=True)
    for name in reversed(chunk_files(replication, first)):
        if (source / name).is_file():
            os.replace(source / name, target / name)


def keep_planned_chunks(directory: Path, planned: set[tuple[int, int]]) -> None:
    """Leave in a streamed run's folder only finished chunks of the plan: a resumed run takes
    back the finished chunks set aside and removes the rest (chunks a run killed part way left
    without a summary, and chunks of replications the resumed run does not make)."""
    pending = directory / PENDING
    for folder in (pending, directory):
        if not folder.is_dir():
            continue
        for path in folder.glob("part-r*.parquet"):
            m = PART.search(path.name)
            key = (int(m.group(1)), int(m.group(2)))
            if key in planned and (folder / summary_name(*key)).is_file():
                if folder is pending:
                    move_chunk(pending, directory, *key)
                continue
            for name in chunk_files(*key):
                (folder / name).unlink(missing_ok=True)
        for path in folder.glob("_summary-r*.npz"):  # a summary whose part is gone
            m = SUMMARY.search(path.name)
            if not (folder / part_name(int(m.group(1)), int(m.group(2)))).is_file():
                path.unlink()
        for path in folder.glob("_reach-r*.parquet"):
            if not (folder / f"part-{path.name[len('_reach-') :]}").is_file():
                path.unlink()


def finished_chunks(directory: str | Path) -> int:
    """Chunks an interrupted streamed run (or comparison: a folder per scenario) finished in
    ``directory`` (those of whole replications, and those set aside), for a resumed run to
    read back; 0 for a folder a run finished, or none wrote."""
    d = Path(directory)
    if not (d / STATE).is_file():
        return sum(finished_chunks(sub) for sub in d.iterdir() if sub.is_dir()) if d.is_dir() else 0
    try:
        if json.loads((d / STATE).read_text(encoding="utf-8")).get("complete"):
            return 0
    except (OSError, ValueError):
        return 0
    return len(list(d.glob("_summary-r*.npz"))) + len(list((d / PENDING).glob("_summary-r*.npz")))


def mark_complete(directory: str | Path | None) -> None:
    """Say in a streamed run's folder that the run finished (its chunks are no longer an
    interrupted run's, kept for a resume); nothing without a folder."""
    if directory is None:
        return
    path = Path(directory) / STATE
    state = json.loads(path.read_text(encoding="utf-8"))
    write_text_atomic(path, json.dumps({**state, "complete": True}, indent=2) + "\n")
    pending = Path(directory) / PENDING
    if pending.is_dir() and not any(pending.iterdir()):
        pending.rmdir()


def open_stream_directory(
    directory: str | Path, identity: dict, resume: bool, planned: set[tuple[int, int]]
) -> tuple[str, dict[tuple[int, int], tuple]]:
    """Make ``directory`` ready for a streamed run of ``identity`` (scenario and digest, seed,
    engine, chunk size, package version). Returns it, with the chunks a run interrupted
    there finished (with ``resume``; else none, and the folder is emptied of an old dataset).
    A folder an interrupted run left is emptied only with consent: without ``resume`` it is
    refused, naming the fix; with ``resume``, one of another run is refused, with the reason,
    and only the finished chunks of ``planned`` ((replication, first customer)) are kept."""
    d = Path(directory)
    state_path = d / STATE
    state = read_state(state_path, d, "resume")
    if state is None or not resume:
        if state is not None and not state.get("complete") and not resume:
            kept = finished_chunks(d)
            if kept:
                raise ScenarioError(
                    f"{d} holds {kept} finished chunk(s) of an interrupted streamed run",
                    field="resume",
                    fix=f"add --resume (resume=True) to continue it, or remove {d} to start over",
                )
        where = clear_dataset(d)
        write_text_atomic(state_path, json.dumps(identity, indent=2) + "\n")
        return str(where), {}
    check_same_run(d, state, identity, "streamed", "resume")
    keep_planned_chunks(d, planned)
    finished = {
        key: _summary_from_file(header, arrays)
        for key, (header, arrays) in read_chunk_summaries(d).items()
    }
    write_text_atomic(state_path, json.dumps(identity, indent=2) + "\n")
    return str(d), finished


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
    reason: str | None = None,
    resume: bool = False,
) -> StreamedRunResult:
    """Run replications chunk by chunk (see the module documentation); the caller has
    checked the arguments and chosen the engine. ``reason`` says why the run streams (None:
    it was asked to), for the provenance. With ``resume``, the chunks an interrupted run of
    the same scenario, seed, engine and chunk size finished in ``directory`` are read back,
    not simulated again (every chunk draws from streams of its own: the result is that of an
    uninterrupted run)."""
    chunk = chunk_size(chunk_customers)
    identity = {
        "scenario": [scenario.name, scenario_digest(scenario)],
        "seed": seed,
        "engine": engine,
        "chunk_customers": chunk,
        "package_version": package_version(),
    }
    finished: dict[tuple[int, int], tuple] = {}
    where = None
    if directory is not None:
        planned = {(r, first) for r, first, _ in plan_chunks(scenario, replications, chunk)}
        where, finished = open_stream_directory(directory, identity, resume, planned)
    stream = Stream(engine, CompiledScenario.build(scenario), seed, where)
    started = time.perf_counter()
    complete = run_chunks(
        {scenario.name: stream},
        range(replications),
        chunk,
        workers=workers,
        backend=backend,
        address=address,
        progress=progress,
        finished_before={scenario.name: finished},
    )
    if complete:
        mark_complete(where)
    summary = stream.summary
    if summary is None:  # every chunk finished, yet none came back: cannot happen
        raise KeyboardInterrupt
    whole = sorted(summary.counts)
    if not complete:
        warnings.warn(
            f"run interrupted: keeping the {len(whole)} of {replications} replications "
            "that finished",
            RuntimeWarning,
            stacklevel=3,
        )
    stream.write_meta(replications)
    customers = int(sum(stream.sizes.get(r, 0) for r in whole))
    prov = provenance(
        scenario,
        seed,
        len(whole),
        replications,
        customers,
        time.perf_counter() - started,
        engine,
    )
    prov["streamed"] = {
        "chunks": len(plan_chunks(scenario, whole, chunk)),
        "chunk_customers": chunk,
        "events": where,
        "reason": reason or "asked to (stream_to or keep_events=False)",
    }
    used = {(r, first) for r, first, _ in plan_chunks(scenario, whole, chunk)} & set(finished)
    if used:
        # the elapsed time is this run's: the chunks read back took none of it
        prov["resumed"] = {"chunks_read_back": len(used)}
    return StreamedRunResult(
        scenario=scenario,
        summary=summary,
        provenance=prov,
        directory=None if where is None else Path(where),
        complete=complete,
    )
