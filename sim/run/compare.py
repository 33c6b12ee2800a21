"""Comparing scenarios: runs side by side on common random numbers, and ``replications='auto'``
adding replications until differences are known well enough."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from sim.analysis.comparison import KEY_METRICS
from sim.engine.compiled import CompiledScenario
from sim.engine.registry import choose_engine
from sim.errors import ScenarioError, check_count, check_seed
from sim.events import EventLog
from sim.model.scenario import Scenario
from sim.results import Comparison, RunResult
from sim.run.backends import check_backend, dask_client
from sim.run.provenance import provenance
from sim.run.replications import simulate_tasks

__all__ = ["KEY_METRICS", "compare"]


def _names(scenarios: Mapping[str, Scenario] | Sequence[Scenario]) -> dict[str, Scenario]:
    if isinstance(scenarios, Mapping):
        named = dict(scenarios)
    else:
        named = {}
        for s in scenarios:
            if s.name in named:
                raise ScenarioError(
                    f"two scenarios are named '{s.name}'",
                    field="scenario name",
                    fix="give them different names, or pass a dict of names",
                )
            named[s.name] = s
    if len(named) < 2:
        raise ScenarioError("a comparison needs at least two scenarios", field="scenarios")
    for name, s in named.items():
        if not isinstance(s, Scenario):
            raise ScenarioError(f"'{name}' is not a Scenario: {s!r}", field="scenarios")
    return named


def compare(
    scenarios: Mapping[str, Scenario] | Sequence[Scenario],
    replications: int | str = 30,
    *,
    seed: int | None = None,
    baseline: str | None = None,
    customers: int | None = None,
    workers: int = 1,
    common_random_numbers: bool = True,
    metric: str = "conversion",
    target_half_width: float | None = None,
    max_replications: int = 300,
    batch: int = 10,
    days: tuple[int, ...] = (30, 90, 180),
    engine: str = "auto",
    progress: bool | None = None,
    backend: str = "processes",
    address: str | None = None,
) -> Comparison:
    """Run scenarios side by side and compare them with the baseline (the first, unless
    named).

    ``replications="auto"`` adds ``batch`` replications at a time until the 95% interval of
    every scenario's difference from the baseline in ``metric`` (all customers) is narrower
    than +/- ``target_half_width``, or ``max_replications`` is reached (``converged`` says
    which). With ``common_random_numbers=False`` each scenario gets independent streams (and
    differences use Welch's test): only useful to see what common random numbers buy.
    ``progress`` shows a progress bar (None: in notebooks and terminals only). ``backend``
    and ``address`` choose where replications run, as in :func:`sim.run`: with
    ``backend='dask'`` every scenario x replication of a batch is one task on the cluster.
    """
    named = _names(scenarios)
    base = baseline or next(iter(named))
    if base not in named:
        raise ScenarioError(
            f"unknown baseline '{base}'", field="baseline", fix=f"one of {', '.join(named)}"
        )
    if customers is not None:
        named = {n: s.with_customers(customers) for n, s in named.items()}
    seed = check_seed(named[base].seed if seed is None else seed)
    check_count(workers, "workers")
    check_backend(backend, address)
    auto = replications == "auto"
    if auto:
        if target_half_width is None or not target_half_width > 0:
            raise ScenarioError(
                "replications='auto' needs a positive target_half_width",
                field="target_half_width",
                fix="e.g. 0.005 for conversion",
            )
        check_count(batch, "batch")
        check_count(max_replications, "max_replications")
    else:
        check_count(replications, "replications")
    engines = {n: choose_engine(s, engine).name for n, s in named.items()}
    compiled = {n: CompiledScenario.build(s) for n, s in named.items()}
    seeds = {
        n: seed
        if common_random_numbers
        else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        for i, n in enumerate(named)
    }
    with contextlib.ExitStack() as stack:
        if backend == "dask" and address is None:
            # one LocalCluster for every batch of replications='auto'
            client = stack.enter_context(dask_client(None, workers))
            address = client.scheduler.address
        return _compare(
            named,
            engines,
            compiled,
            seeds,
            base,
            seed,
            auto,
            replications,
            batch,
            max_replications,
            target_half_width,
            metric,
            days,
            common_random_numbers,
            workers,
            progress,
            backend,
            address,
        )


def _compare(
    named,
    engines,
    compiled,
    seeds,
    base,
    seed,
    auto,
    replications,
    batch,
    max_replications,
    target_half_width,
    metric,
    days,
    common_random_numbers,
    workers,
    progress,
    backend,
    address,
) -> Comparison:
    started = time.perf_counter()
    logs: dict[Hashable, EventLog] = {}
    done = 0
    goal = batch if auto else replications
    converged = None
    while True:
        tasks = [
            ((n, r), engines[n], compiled[n], seeds[n], r) for r in range(done, goal) for n in named
        ]
        simulate_tasks(tasks, workers, logs, progress, backend, address)
        done = goal
        result = _assemble(
            named, logs, done, seeds, started, days, base, seed, common_random_numbers, engines
        )
        if not auto:
            break
        table = result.summary(metrics=[metric])
        widths = (table["diff_ci_high"] - table["diff_ci_low"]) / 2
        widths = widths[table["scenario"] != base]
        converged = bool(len(widths) and (widths <= target_half_width).all())
        if converged or done >= max_replications:
            break
        goal = min(done + batch, max_replications)
    result.converged = converged
    result.elapsed_seconds = round(time.perf_counter() - started, 3)
    return result


def _assemble(named, logs, reps, seeds, started, days, base, seed, paired, engines) -> Comparison:
    results, frames = {}, []
    for name, scenario in named.items():
        log = EventLog.concat([logs[(name, r)] for r in range(reps)])
        res = RunResult(
            scenario=scenario,
            log=log,
            provenance=provenance(
                scenario,
                seeds[name],
                reps,
                reps,
                int(log.customers.sum()),
                time.perf_counter() - started,
                engines[name],
            ),
        )
        results[name] = res
        frames.append(res.metrics(days).assign(scenario=name))
    per_rep = pd.concat(frames, ignore_index=True)[
        ["scenario", "replication", "persona", "metric", "value"]
    ]
    return Comparison(
        scenarios=dict(named),
        baseline=base,
        results=results,
        per_replication=per_rep,
        seed=seed,
        paired=paired,
        replications=reps,
    )
