"""Running replications: seeding, workers, provenance."""

from __future__ import annotations

import platform
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np
import simpy

from sim.engine import CompiledScenario, simulate
from sim.errors import ScenarioError
from sim.events import EventLog
from sim.model.scenario import Scenario
from sim.results import RunResult

ENGINE = "simpy"


def package_version() -> str:
    """The installed version of this package."""
    try:
        return metadata.version("journey-sim")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _simulate_one(compiled: CompiledScenario, seed: int, replication: int) -> EventLog:
    return simulate(compiled, seed, replication)


def run(
    scenario: Scenario,
    replications: int = 1,
    *,
    seed: int | None = None,
    customers: int | None = None,
    workers: int = 1,
) -> RunResult:
    """Simulate ``replications`` independent replications of a scenario.

    ``seed`` overrides the scenario's seed; ``customers`` overrides the cohort size. Every
    replication draws from its own streams of ``SeedSequence(seed)``, so results are the same
    for any number of ``workers`` (processes). Interrupting a run (Ctrl-C) returns the
    replications that finished, marked ``complete=False``.
    """
    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise ScenarioError(
            f"replications must be a whole number >= 1, got {replications!r}", field="replications"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ScenarioError(
            f"workers must be a whole number >= 1, got {workers!r}", field="workers"
        )
    if customers is not None:
        scenario = scenario.with_customers(customers)
    seed = scenario.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ScenarioError(f"seed must be a whole number >= 0, got {seed!r}", field="seed")
    compiled = CompiledScenario.build(scenario)
    started = time.perf_counter()
    logs: dict[int, EventLog] = {}
    complete = True
    try:
        if workers == 1 or replications == 1:
            for r in range(replications):
                logs[r] = simulate(compiled, seed, r)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, replications)) as pool:
                futures = {
                    pool.submit(_simulate_one, compiled, seed, r): r for r in range(replications)
                }
                for fut in as_completed(futures):
                    logs[futures[fut]] = fut.result()
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
    provenance = {
        "scenario": scenario.name,
        "scenario_hash": scenario.digest,
        "seed": seed,
        "replications": len(logs),
        "replications_requested": replications,
        "customers": int(log.customers.sum()),
        "horizon_days": scenario.horizon_days,
        "engine": ENGINE,
        "package_version": package_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(time.perf_counter() - started, 3),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simpy": simpy.__version__ if hasattr(simpy, "__version__") else _dist("simpy"),
    }
    return RunResult(scenario=scenario, log=log, provenance=provenance, complete=complete)


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def provenance_of(result: RunResult) -> dict[str, Any]:
    """A copy of a result's provenance, safe to modify."""
    return dict(result.provenance)
