"""Running replications: seeding, workers, provenance."""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np

from sim.engine import CompiledScenario, simulate
from sim.errors import ScenarioError
from sim.events import EventLog
from sim.model.scenario import Scenario
from sim.progress import progress_bar
from sim.results import RunResult

ENGINE = "simpy"

Task = tuple[Hashable, CompiledScenario, int, int]  # key, scenario, seed, replication


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def package_version() -> str:
    """The installed version of this package."""
    return _dist("journey-sim")


def check_count(value: Any, name: str) -> int:
    """A whole number >= 1, or a ScenarioError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScenarioError(f"{name} must be a whole number >= 1, got {value!r}", field=name)
    return value


def check_seed(seed: Any) -> int:
    """A whole number >= 0, or a ScenarioError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ScenarioError(f"seed must be a whole number >= 0, got {seed!r}", field="seed")
    return seed


def _simulate_task(compiled: CompiledScenario, seed: int, replication: int) -> EventLog:
    return simulate(compiled, seed, replication)


def simulate_tasks(
    tasks: Sequence[Task],
    workers: int,
    done: dict[Hashable, EventLog],
    progress: bool | None = None,
) -> None:
    """Run replications, on ``workers`` processes when more than one, filling ``done`` as
    they finish (so an interruption keeps what finished). Results do not depend on
    ``workers``: each replication's streams come from its own seed and number. ``progress``
    shows a bar (None: only when interactive)."""
    bar = progress_bar(len(tasks), "replications", progress)
    try:
        if workers == 1 or len(tasks) == 1:
            for key, compiled, seed, replication in tasks:
                done[key] = simulate(compiled, seed, replication)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            futures = {pool.submit(_simulate_task, c, s, r): key for key, c, s, r in tasks}
            try:
                for fut in as_completed(futures):
                    done[futures[fut]] = fut.result()
                    bar.update()
            except KeyboardInterrupt:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        bar.close()


def provenance(
    scenario: Scenario, seed: int, logs: int, requested: int, customers: int, elapsed: float
) -> dict[str, Any]:
    """What produced a result: scenario and its hash, seed, engine, versions, time."""
    return {
        "scenario": scenario.name,
        "scenario_hash": scenario.digest,
        "seed": seed,
        "replications": logs,
        "replications_requested": requested,
        "customers": customers,
        "horizon_days": scenario.horizon_days,
        "engine": ENGINE,
        "package_version": package_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 3),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simpy": _dist("simpy"),
    }


def run(
    scenario: Scenario,
    replications: int = 1,
    *,
    seed: int | None = None,
    customers: int | None = None,
    workers: int = 1,
    progress: bool | None = None,
) -> RunResult:
    """Simulate ``replications`` independent replications of a scenario.

    ``seed`` overrides the scenario's seed; ``customers`` overrides the cohort size. Every
    replication draws from its own streams of ``SeedSequence(seed)``, so results are the same
    for any number of ``workers`` (processes). Interrupting a run (Ctrl-C) returns the
    replications that finished, marked ``complete=False``. ``progress`` shows a progress bar
    (None: in notebooks and terminals, not in tests or CI).
    """
    check_count(replications, "replications")
    check_count(workers, "workers")
    if customers is not None:
        scenario = scenario.with_customers(customers)
    seed = check_seed(scenario.seed if seed is None else seed)
    compiled = CompiledScenario.build(scenario)
    started = time.perf_counter()
    logs: dict[Hashable, EventLog] = {}
    complete = True
    try:
        tasks = [(r, compiled, seed, r) for r in range(replications)]
        simulate_tasks(tasks, workers, logs, progress)
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
        ),
    )
