"""Running replications: seeding, workers, engines."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from sim.engine import warm
from sim.engine.compiled import CompiledScenario
from sim.engine.registry import choose_engine, simulate_replication
from sim.engine.sizing import check_memory, estimate_run
from sim.errors import ScenarioError, check_count, check_seed
from sim.events import EventLog
from sim.io.event_dataset import STATE as STREAM_STATE
from sim.io.event_dataset import check_dataset_folder
from sim.io.locations import check_output_dir
from sim.model.scenario import Scenario
from sim.progress import progress_bar
from sim.results import RunResult, StreamedRunResult
from sim.run.backends import check_backend, run_tasks
from sim.run.provenance import package_version, provenance, scenario_digest
from sim.run.resume import KeptReplications, refuse_kept_in_memory
from sim.run.streaming import (
    check_streamed_memory,
    chunk_size,
    in_memory_fix,
    run_streamed,
    stream_reason,
)

#: key, engine name, compiled scenario, seed, replication
Task = tuple[Hashable, str, CompiledScenario, int, int]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the system tells it)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on every platform
        return max(os.cpu_count() or 1, 1)


def cap_workers(workers: int) -> int:
    """``workers`` checked, and capped at the CPUs available with a warning: more processes
    than CPUs only add memory (each holds its own replication) and no speed."""
    check_count(workers, "workers")
    cpus = available_cpus()
    if workers > cpus:
        warnings.warn(
            f"workers={workers} is more than the {cpus} CPUs available: using {cpus}",
            UserWarning,
            stacklevel=3,
        )
        return cpus
    return workers


def simulate_tasks(
    tasks: Sequence[Task],
    workers: int,
    done: dict[Hashable, EventLog],
    progress: bool | None = None,
    on_done: Callable[[Hashable, EventLog], None] | None = None,
    backend: str = "processes",
    address: str | None = None,
) -> None:
    """Run replications, on ``workers`` processes when more than one (or on a Dask cluster
    with ``backend='dask'``, see :mod:`sim.run.backends`), filling ``done`` as they finish
    (so an interruption keeps what finished) and calling ``on_done(key, log)`` for each (in
    this process: e.g. to keep it on disk). Results do not depend on ``workers`` or the
    backend: each replication's streams come from its own seed and number. ``progress``
    shows a bar (None: only when interactive)."""
    bar = progress_bar(len(tasks), "replications", progress)

    def finished(key: Hashable, log: EventLog) -> None:
        if on_done is not None:
            on_done(key, log)
        done[key] = log
        bar.update()

    try:
        run_tasks(
            simulate_replication,
            [(key, (e, c, s, r)) for key, e, c, s, r in tasks],
            finished,
            workers=workers,
            backend=backend,
            address=address,
        )
    finally:
        bar.close()


def check_stream_options(stream_to: str | Path | None, keep_events: bool, stream: str) -> None:
    """Refuse, with the fix, streaming options that contradict each other."""
    if stream not in ("always", "auto"):
        raise ScenarioError(
            f"stream must be 'always' or 'auto', not {stream!r}",
            field="stream",
            fix="'auto' streams to stream_to only when the run would not fit in memory",
        )
    if stream_to is not None and not keep_events:
        raise ScenarioError(
            "stream_to keeps the events on disk; keep_events=False keeps none",
            field="keep_events",
            fix="pass one of them",
        )
    if stream_to is not None:
        # a folder that cannot be written is said before anything is simulated
        check_output_dir(stream_to, "stream_to")


def run(
    scenario: Scenario,
    replications: int = 1,
    *,
    seed: int | None = None,
    customers: int | None = None,
    workers: int = 1,
    engine: str = "auto",
    progress: bool | None = None,
    keep: str | Path | None = None,
    resume: bool = False,
    backend: str = "processes",
    address: str | None = None,
    stream_to: str | Path | None = None,
    keep_events: bool = True,
    chunk_customers: int | None = None,
    stream: str = "always",
    start_from: EventLog | None = None,
    at: str | float | None = None,
) -> RunResult | StreamedRunResult:
    """Simulate ``replications`` independent replications of a scenario.

    ``seed`` overrides the scenario's seed; ``customers`` overrides the cohort size. Every
    replication draws from its own streams of ``SeedSequence(seed)``, so results are the same
    for any number of ``workers`` (processes). ``engine`` names one of
    :data:`sim.engine.ENGINES` ('auto': the fastest that can run the scenario; the result's
    provenance says which). Interrupting a run (Ctrl-C) returns the replications that
    finished, marked ``complete=False``. ``progress`` shows a progress bar (None: in notebooks
    and terminals, not in tests or CI).

    ``keep`` names a directory where each replication is written as it finishes (see
    :mod:`sim.run.resume`); with ``resume=True`` the replications already there are read
    back instead of run again, giving the same result, byte for byte, as an uninterrupted
    run. Resuming a directory made from another scenario, seed, engine or package version is
    refused with the reason.

    ``backend='dask'`` runs the replications on the Dask
    cluster whose scheduler is at ``address`` (e.g. 'tcp://scheduler:8786'), or with no
    address on a LocalCluster of ``workers`` processes started for the run; the result is the
    same bytes as a serial run.

    Large runs: with ``stream_to=DIR`` the event log goes to a Parquet dataset in ``DIR``
    chunk by chunk (a day-0 cohort is split into chunks of ``chunk_customers`` customers,
    default 200,000, with the same draws as run whole) and a :class:`StreamedRunResult` is
    returned whose analyses come from counts merged over the chunks, so memory stays bounded
    whatever the size; ``keep_events=False`` does the same keeping only the summaries. With
    ``stream='auto'`` a run given ``stream_to`` streams only when it would not fit in memory
    (the rule: :data:`sim.run.streaming.STREAM_SHARE`), and is held in memory otherwise; the
    provenance's ``streamed`` entry says why a run streamed. A run that cannot fit in memory
    and has nowhere to stream is refused, naming ``stream_to`` as the fix. A streamed run
    interrupted part way keeps its finished chunks in ``DIR``: the same call with
    ``resume=True`` reads them back and simulates only the others (the same result as an
    uninterrupted run); without ``resume``, a folder holding them is refused.

    Warm start: with ``start_from=log`` and ``at`` (a date, or a day number on the log's
    clock) every customer of ``log`` who entered before ``at`` begins in the stage they were
    in at ``at``, with the time already spent there (see :mod:`sim.engine.warm`); a day-0
    cohort is replaced by them, arrivals by channel restart at ``at``. The log runs from
    ``at`` to ``at + horizon_days`` and its ``warm_start`` says which customers were carried
    over. Runs on the vectorised engine (customers who do not interact).
    """
    if not isinstance(scenario, Scenario):
        raise ScenarioError(
            f"run() takes a Scenario, not {type(scenario).__name__} {scenario!r}",
            field="scenario",
            fix="load a file first: sim.run(sim.load_scenario('scenarios/baseline.toml'))",
        )
    check_count(replications, "replications")
    workers = cap_workers(workers)
    check_backend(backend, address)
    if customers is not None and start_from is not None:
        raise ScenarioError(
            "customers sets the size of a day-0 cohort; with start_from the customers are "
            "those of the log",
            field="customers",
            fix="drop customers=, or run without start_from",
        )
    if customers is not None:
        scenario = scenario.with_customers(customers)
    seed = check_seed(scenario.seed if seed is None else seed)
    if start_from is not None or at is not None:
        return _run_warm(
            scenario,
            replications,
            seed,
            engine,
            workers,
            progress,
            backend,
            address,
            start_from,
            at,
            keep=keep,
            stream_to=stream_to,
            keep_events=keep_events,
        )
    chosen = choose_engine(scenario, engine)
    if chunk_customers is not None:
        check_count(chunk_customers, "chunk_customers")
    chunk = chunk_size(chunk_customers)
    check_stream_options(stream_to, keep_events, stream)
    if stream_to is not None:
        check_dataset_folder(stream_to, "stream_to")
    compiled = CompiledScenario.build(scenario)
    reason = None
    if stream_to is not None and stream == "auto":
        reason = stream_reason([(compiled, replications)], workers, engine=chosen.name)
        if reason is None and resume and (Path(stream_to) / STREAM_STATE).is_file():
            reason = "resuming the streamed run there"
        if reason is None:
            stream_to = None  # it fits: held in memory, with exact analyses
    if stream_to is not None or not keep_events:
        if resume and stream_to is None:
            raise ScenarioError(
                "a run that keeps no events (keep_events=False) has nothing to resume from",
                field="resume",
                fix="stream it to a folder (stream_to=DIR) to be able to resume it",
            )
        refuse_kept_in_memory(keep)
        check_streamed_memory([(compiled, replications)], workers, chunk, chosen.name)
        return run_streamed(
            scenario,
            replications,
            seed=seed,
            engine=chosen.name,
            directory=stream_to,
            chunk_customers=chunk,
            workers=workers,
            backend=backend,
            address=address,
            progress=progress,
            reason=reason,
            resume=resume,
        )
    # refuse, before allocating anything, a run that cannot fit in memory
    check_memory(
        [(estimate_run(compiled, chosen.name), replications)],
        workers,
        other_fix=in_memory_fix([(compiled, replications)], workers, chunk, chosen.name),
    )
    started = time.perf_counter()
    logs: dict[Hashable, EventLog] = {}
    complete = True
    tasks = [(r, chosen.name, compiled, seed, r) for r in range(replications)]
    kept = None
    if keep is not None:
        kept = KeptReplications(
            keep,
            {
                "kind": "run",
                "scenarios": [[scenario.name, scenario_digest(scenario)]],
                "seed": seed,
                "engine": chosen.name,
                "package_version": package_version(),
            },
            resume,
            lambda r: f"r{r:05d}.npz",
        )
        for task in tasks:
            if (found := kept.load(task[0])) is not None:
                logs[task[0]] = found
        tasks = [t for t in tasks if t[0] not in logs]
    resumed = len(logs)
    try:
        simulate_tasks(
            tasks, workers, logs, progress, None if kept is None else kept.save, backend, address
        )
    except KeyboardInterrupt:
        if not logs:
            raise
        complete = False
        warnings.warn(
            f"run interrupted: keeping the {len(logs)} of {replications} "
            "replications that finished",
            RuntimeWarning,
            stacklevel=2,
        )
    log = EventLog.concat([logs[r] for r in sorted(logs)])
    prov = provenance(
        scenario,
        seed,
        len(logs),
        replications,
        int(log.customers.sum()),
        time.perf_counter() - started,
        chosen.name,
    )
    if resumed:
        # the elapsed time is this run's: the replications read back took none of it
        prov["resumed"] = {"replications_read_back": resumed}
    return RunResult(scenario=scenario, log=log, complete=complete, provenance=prov)


def _run_warm(
    scenario: Scenario,
    replications: int,
    seed: int,
    engine: str,
    workers: int,
    progress: bool | None,
    backend: str,
    address: str | None,
    start_from: EventLog | None,
    at: str | float | None,
    **unsupported: object,
) -> RunResult:
    """``run`` from the state of the customers of ``start_from`` at ``at``."""
    if start_from is None or at is None:
        missing = "start_from" if start_from is None else "at"
        raise ScenarioError(
            f"a warm start needs both start_from and at; {missing} is missing",
            field=missing,
            fix="sim.run(scenario, start_from=sim.read_events(...), at='2025-06-30')",
        )
    if (
        unsupported["keep"] is not None
        or unsupported["stream_to"] is not None
        or not (unsupported["keep_events"])
    ):
        raise ScenarioError(
            "a warm start keeps its replications in memory: keep, stream_to and "
            "keep_events=False are not available with start_from",
            field="start_from",
            fix="run without keep/stream_to, or without start_from",
        )
    reason = warm.cannot_warm_start(scenario, engine)
    if reason is None and engine not in ("auto", "vectorised"):
        choose_engine(scenario, engine)  # an unknown name gets its message
        reason = f"a warm start runs on the vectorised engine only, not '{engine}'"
    if reason is not None:
        raise ScenarioError(
            f"cannot warm-start scenario '{scenario.name}': {reason}",
            field="start_from",
            fix="use engine='auto' (the vectorised engine) with a scenario whose customers do "
            "not interact (no budgets), or simulate new cohorts without start_from",
        )
    state = warm.warm_state(scenario, start_from, at)
    compiled = CompiledScenario.build(scenario)
    started = time.perf_counter()
    logs: dict[Hashable, EventLog] = {}
    bar = progress_bar(replications, "replications", progress)

    def finished(key: Hashable, log: EventLog) -> None:
        logs[key] = log
        bar.update()

    try:
        run_tasks(
            warm.warm_replication,
            [(r, (compiled, state, seed, r)) for r in range(replications)],
            finished,
            workers=workers,
            backend=backend,
            address=address,
        )
    finally:
        bar.close()
    log = EventLog.concat([logs[r] for r in sorted(logs)])
    record = provenance(
        scenario,
        seed,
        len(logs),
        replications,
        int(log.customers.sum()),
        time.perf_counter() - started,
        "vectorised",
    )
    record["warm_start"] = {"day": state.at, "customers": len(state)}
    return RunResult(scenario=scenario, log=log, complete=True, provenance=record)
