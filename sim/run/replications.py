"""Running replications: seeding, workers, engines."""

from __future__ import annotations

import time
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path

from sim.engine.compiled import CompiledScenario
from sim.engine.registry import choose_engine, simulate_replication
from sim.errors import ScenarioError, check_count, check_seed
from sim.events import EventLog
from sim.model.scenario import Scenario
from sim.progress import progress_bar
from sim.results import RunResult, StreamedRunResult
from sim.run.backends import check_backend, run_tasks
from sim.run.provenance import provenance
from sim.run.streaming import run_streamed

#: key, engine name, compiled scenario, seed, replication
Task = tuple[Hashable, str, CompiledScenario, int, int]


def simulate_tasks(
    tasks: Sequence[Task],
    workers: int,
    done: dict[Hashable, EventLog],
    progress: bool | None = None,
    backend: str = "processes",
    address: str | None = None,
) -> None:
    """Run replications, on ``workers`` processes when more than one (or on a Dask cluster
    with ``backend='dask'``, see :mod:`sim.run.backends`), filling ``done`` as they finish
    (so an interruption keeps what finished). Results do not depend on ``workers`` or the
    backend: each replication's streams come from its own seed and number. ``progress``
    shows a bar (None: only when interactive)."""
    bar = progress_bar(len(tasks), "replications", progress)

    def finished(key: Hashable, log: EventLog) -> None:
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


def run(
    scenario: Scenario,
    replications: int = 1,
    *,
    seed: int | None = None,
    customers: int | None = None,
    workers: int = 1,
    engine: str = "auto",
    progress: bool | None = None,
    backend: str = "processes",
    address: str | None = None,
    stream_to: str | Path | None = None,
    keep_events: bool = True,
    chunk_customers: int | None = None,
) -> RunResult | StreamedRunResult:
    """Simulate ``replications`` independent replications of a scenario.

    ``seed`` overrides the scenario's seed; ``customers`` overrides the cohort size. Every
    replication draws from its own streams of ``SeedSequence(seed)``, so results are the same
    for any number of ``workers`` (processes). ``engine`` names one of
    :data:`sim.engine.ENGINES` ('auto': the fastest that can run the scenario; the result's
    provenance says which). Interrupting a run (Ctrl-C) returns the replications that
    finished, marked ``complete=False``. ``progress`` shows a progress bar (None: in notebooks
    and terminals, not in tests or CI). ``backend='dask'`` runs the replications on the Dask
    cluster whose scheduler is at ``address`` (e.g. 'tcp://scheduler:8786'), or with no
    address on a LocalCluster of ``workers`` processes started for the run; the result is the
    same bytes as a serial run.

    Large runs: with ``stream_to=DIR`` the event log goes to a Parquet dataset in ``DIR``
    chunk by chunk (a day-0 cohort is split into chunks of ``chunk_customers`` customers,
    default 200,000, with the same draws as run whole) and a :class:`StreamedRunResult` is
    returned whose analyses come from counts merged over the chunks, so memory stays bounded
    whatever the size; ``keep_events=False`` does the same keeping only the summaries.
    """
    if not isinstance(scenario, Scenario):
        raise ScenarioError(
            f"run() takes a Scenario, not {type(scenario).__name__} {scenario!r}",
            field="scenario",
            fix="load a file first: sim.run(sim.load_scenario('scenarios/baseline.toml'))",
        )
    check_count(replications, "replications")
    check_count(workers, "workers")
    check_backend(backend, address)
    if customers is not None:
        scenario = scenario.with_customers(customers)
    seed = check_seed(scenario.seed if seed is None else seed)
    chosen = choose_engine(scenario, engine)
    if chunk_customers is not None:
        check_count(chunk_customers, "chunk_customers")
    if stream_to is not None or not keep_events:
        if stream_to is not None and not keep_events:
            raise ScenarioError(
                "stream_to keeps the events on disk; keep_events=False keeps none",
                field="keep_events",
                fix="pass one of them",
            )
        return run_streamed(
            scenario,
            replications,
            seed=seed,
            engine=chosen.name,
            directory=stream_to,
            chunk_customers=chunk_customers,
            workers=workers,
            backend=backend,
            address=address,
            progress=progress,
        )
    compiled = CompiledScenario.build(scenario)
    started = time.perf_counter()
    logs: dict[Hashable, EventLog] = {}
    complete = True
    try:
        tasks = [(r, chosen.name, compiled, seed, r) for r in range(replications)]
        simulate_tasks(tasks, workers, logs, progress, backend, address)
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
    return RunResult(
        scenario=scenario,
        log=log,
        complete=complete,
        provenance=provenance(
            scenario,
            seed,
            len(logs),
            replications,
            int(log.customers.sum()),
            time.perf_counter() - started,
            chosen.name,
        ),
    )
