"""Comparing scenarios: runs side by side on common random numbers, and ``replications='auto'``
adding replications until differences are known well enough."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.engine.compiled import CompiledScenario
from sim.engine.registry import choose_engine
from sim.engine.sizing import check_memory, estimate_run
from sim.errors import ScenarioError, check_count, check_seed, suggest
from sim.events import EventLog
from sim.io.event_dataset import STATE as STREAM_STATE
from sim.model.scenario import Scenario
from sim.results import Comparison, RunResult, StreamedRunResult
from sim.run.backends import check_backend, dask_client
from sim.run.provenance import package_version, provenance, scenario_digest
from sim.run.replications import cap_workers, check_stream_options, simulate_tasks
from sim.run.resume import KeptReplications, refuse_kept_in_memory
from sim.run.streaming import (
    Stream,
    check_streamed_memory,
    chunk_size,
    in_memory_fix,
    keep_planned_chunks,
    mark_complete,
    open_stream_directory,
    plan_chunks,
    run_chunks,
    stream_reason,
)

if TYPE_CHECKING:  # pandas and sim.analysis load where tables are built, not with sim.run
    import pandas as pd

__all__ = ["KEY_METRICS", "compare"]  # noqa: F822 (KEY_METRICS: by __getattr__ below)


def __getattr__(name: str):
    # KEY_METRICS lives in sim.analysis, whose import loads pandas: found when asked for
    if name == "KEY_METRICS":
        from sim.analysis.comparison import KEY_METRICS

        return KEY_METRICS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_LOAD_FIRST = (
    "load files first: sim.compare([sim.load_scenario('a.toml'), sim.load_scenario('b.toml')]) "
    "or pass a dict of name -> Scenario"
)


def _names(scenarios: Mapping[str, Scenario] | Sequence[Scenario]) -> dict[str, Scenario]:
    if isinstance(scenarios, str | Path | Scenario) or not isinstance(
        scenarios, Mapping | Sequence
    ):
        raise ScenarioError(
            f"compare() takes several scenarios, not {type(scenarios).__name__} {scenarios!r}",
            field="scenarios",
            fix=_LOAD_FIRST,
        )
    if not isinstance(scenarios, Mapping):
        for s in scenarios:
            if not isinstance(s, Scenario):
                raise ScenarioError(
                    f"compare() takes Scenario objects, not {type(s).__name__} {s!r}",
                    field="scenarios",
                    fix=_LOAD_FIRST,
                )
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
            raise ScenarioError(
                f"'{name}' is not a Scenario: {type(s).__name__} {s!r}",
                field="scenarios",
                fix=_LOAD_FIRST,
            )
    return named


def known_metrics(scenarios: Iterable[Scenario], days: Iterable[int] = (30, 90, 180)) -> list[str]:
    """The metrics a comparison of these scenarios reports (see
    :func:`sim.analysis.replication_metrics`)."""
    scenarios = list(scenarios)
    # days at or past a horizon have no retention to report (as in replication_metrics)
    days = [d for d in days if all(d < s.horizon_days for s in scenarios)]
    reach = []
    for s in scenarios:
        reach += [f"reach_{n}" for n in s.journey.transient if f"reach_{n}" not in reach]
    return [
        "customers",
        "conversion",
        *reach,
        "time_to_first_purchase",
        *(f"active_day_{d}" for d in days),
        "median_lifetime_days",
        "purchases_per_customer",
        "repeat_purchase_rate",
        "revenue",
        "revenue_per_customer",
        "cost",
        "profit",
        "profit_per_customer",
    ]


def check_metric(metric: str, scenarios: Iterable[Scenario], days: Iterable[int]) -> None:
    """A ScenarioError listing the known metrics when ``metric`` is not one of them."""
    known = known_metrics(scenarios, days)
    if metric not in known:
        hint = suggest(str(metric), known)
        hint = f"{hint} " if hint.startswith("did you mean") else ""
        raise ScenarioError(
            f"unknown metric {metric!r}",
            field="metric",
            fix=f"{hint}known metrics: {', '.join(known)}",
        )


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
    keep: str | Path | None = None,
    resume: bool = False,
    backend: str = "processes",
    address: str | None = None,
    stream_to: str | Path | None = None,
    keep_events: bool = True,
    chunk_customers: int | None = None,
    stream: str = "always",
) -> Comparison:
    """Run scenarios side by side and compare them with the baseline (the first, unless
    named).

    ``replications="auto"`` adds ``batch`` replications at a time until the 95% interval of
    every scenario's difference from the baseline in ``metric`` (all customers) is narrower
    than +/- ``target_half_width``, or ``max_replications`` is reached (``converged`` says
    which). With ``common_random_numbers=False`` each scenario gets independent streams (and
    differences use Welch's test): only useful to see what common random numbers buy.
    ``progress`` shows a progress bar (None: in notebooks and terminals only). ``keep`` and
    ``resume``: as for :func:`sim.run.run`, every scenario's replications are kept in
    ``keep`` as they finish, and a resumed comparison equals an uninterrupted one.
    ``backend``
    and ``address`` choose where replications run, as in :func:`sim.run`: with
    ``backend='dask'`` every scenario x replication of a batch is one task on the cluster.

    Large comparisons: with ``stream_to=DIR`` each scenario's event log goes to a Parquet
    dataset ``DIR/<scenario>`` chunk by chunk, and the tables come from summaries merged as
    chunks finish (each result is a :class:`~sim.results.StreamedRunResult`), so memory
    stays bounded whatever the size; ``keep_events=False`` keeps only the summaries;
    ``chunk_customers`` and ``stream='auto'`` (stream only when the runs would not fit in
    memory) as for :func:`sim.run.run`; a streamed comparison interrupted part way is resumed
    from the chunks it finished, as a streamed run is.
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
    workers = cap_workers(workers)
    from sim.analysis.tables import check_days

    days = check_days(days)
    check_metric(metric, named.values(), days)
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
    if chunk_customers is not None:
        check_count(chunk_customers, "chunk_customers")
    chunk = chunk_size(chunk_customers)
    check_stream_options(stream_to, keep_events, stream)
    engines = {n: choose_engine(s, engine).name for n, s in named.items()}
    # the engine all of them run on, if one (memory estimates depend on it)
    one_engine = engines[next(iter(named))] if len(set(engines.values())) == 1 else None
    compiled = {n: CompiledScenario.build(s) for n, s in named.items()}
    seeds = {
        n: seed
        if common_random_numbers
        else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        for i, n in enumerate(named)
    }
    planned = [(c, max_replications if auto else replications) for c in compiled.values()]
    reason = None
    folders = dataset_folders(named)
    if stream_to is not None and stream == "auto":
        reason = stream_reason(planned, workers, engine=one_engine)
        if (
            reason is None
            and resume
            and any((Path(stream_to) / f / STREAM_STATE).is_file() for f in folders.values())
        ):
            reason = "resuming the streamed comparison there"
        if reason is None:
            stream_to = None  # it fits: held in memory, with exact analyses
    streams = None
    finished: dict[str, dict] = {}
    if stream_to is not None or not keep_events:
        if resume and stream_to is None:
            raise ScenarioError(
                "a comparison that keeps no events (keep_events=False) has nothing to resume from",
                field="resume",
                fix="stream it to a folder (stream_to=DIR) to be able to resume it",
            )
        refuse_kept_in_memory(keep)
        check_streamed_memory(planned, workers, chunk, one_engine)
        where: dict[str, str | None] = {n: None for n in named}
        if stream_to is not None:
            for n, s in named.items():
                identity = {
                    "scenario": [n, scenario_digest(s)],
                    "seed": seeds[n],
                    "engine": engines[n],
                    "chunk_customers": chunk,
                    "package_version": package_version(),
                }
                most = max_replications if auto else replications
                planned = {(r, first) for r, first, _ in plan_chunks(s, most, chunk)}
                where[n], finished[n] = open_stream_directory(
                    Path(stream_to) / folders[n], identity, resume, planned
                )
        streams = {n: Stream(engines[n], compiled[n], seeds[n], where[n]) for n in named}
        keep = None
    with contextlib.ExitStack() as stack:
        if backend == "dask" and address is None:
            # one LocalCluster for every batch of replications='auto'
            client = stack.enter_context(dask_client(None, workers))
            address = client.scheduler.address
        started = time.perf_counter()
        logs: dict[Hashable, EventLog] = {}
        kept = None
        if keep is not None:
            index = {n: i for i, n in enumerate(named)}
            kept = KeptReplications(
                keep,
                {
                    "kind": "compare",
                    "scenarios": [[n, scenario_digest(s)] for n, s in named.items()],
                    "seed": seed,
                    "common_random_numbers": common_random_numbers,
                    "engine": [engines[n] for n in named],
                    "package_version": package_version(),
                },
                resume,
                lambda key: f"s{index[key[0]]:02d}-r{key[1]:05d}.npz",
            )
        done = 0
        goal = batch if auto else replications
        converged = None
        estimates = {n: estimate_run(c, engines[n]) for n, c in compiled.items()}
        while True:
            if streams is not None:
                if not run_chunks(
                    streams,
                    range(done, goal),
                    chunk,
                    workers=workers,
                    backend=backend,
                    address=address,
                    progress=progress,
                    finished_before=finished,
                ):
                    raise KeyboardInterrupt
                done = goal
                for s in streams.values():
                    s.write_meta(done)
                result = _assemble_streamed(
                    named, streams, done, started, days, base, seed, common_random_numbers, chunk
                )
                result.streamed = reason or "asked to (stream_to or keep_events=False)"
            else:
                # refuse, before allocating, a batch whose replications cannot all be held
                check_memory(
                    [(e, goal) for e in estimates.values()],
                    workers,
                    other_fix=in_memory_fix(
                        [(c, goal) for c in compiled.values()], workers, chunk, one_engine
                    ),
                )
                tasks = [
                    ((n, r), engines[n], compiled[n], seeds[n], r)
                    for r in range(done, goal)
                    for n in named
                ]
                if kept is not None:
                    for task in tasks:
                        if (found := kept.load(task[0])) is not None:
                            logs[task[0]] = found
                    tasks = [t for t in tasks if t[0] not in logs]
                simulate_tasks(
                    tasks,
                    workers,
                    logs,
                    progress,
                    None if kept is None else kept.save,
                    backend,
                    address,
                )
                done = goal
                result = _assemble(
                    named,
                    logs,
                    done,
                    seeds,
                    started,
                    days,
                    base,
                    seed,
                    common_random_numbers,
                    engines,
                )
            if not auto:
                break
            table = result.summary(metrics=[metric])
            converged = _converged(table, base, target_half_width)
            if converged or done >= max_replications:
                break
            goal = min(done + batch, max_replications)
        if streams is not None:
            for s in streams.values():
                if s.directory is not None:
                    # replications='auto' may stop short of chunks an earlier run finished
                    made = plan_chunks(s.scenario, done, chunk)
                    keep_planned_chunks(Path(s.directory), {(r, f) for r, f, _ in made})
                mark_complete(s.directory)
        result.converged = converged
        result.elapsed_seconds = round(time.perf_counter() - started, 3)
        return result


def _converged(table: pd.DataFrame, base: str, target_half_width: float) -> bool:
    """Whether every difference from the baseline in ``table`` is known to +/- the target."""
    widths = (table["diff_ci_high"] - table["diff_ci_low"]) / 2
    widths = widths[table["scenario"] != base]
    return bool(len(widths) and (widths <= target_half_width).all())


def dataset_folders(named: Mapping[str, Scenario]) -> dict[str, str]:
    """A folder name for each scenario's streamed event log: its name, with characters other
    than letters, digits, '.', '-' and '_' as '_' (and a number when two would clash)."""
    out: dict[str, str] = {}
    for i, name in enumerate(named):
        folder = re.sub(r"[^\w.-]", "_", name).lstrip(".") or f"scenario-{i}"
        if folder in out.values():
            folder = f"{folder}-{i}"
        out[name] = folder
    return out


def _assemble_streamed(
    named, streams, reps, started, days, base, seed, paired, chunk
) -> Comparison:
    import pandas as pd

    results, frames = {}, []
    for name, scenario in named.items():
        s = streams[name]
        prov = provenance(
            scenario,
            s.seed,
            reps,
            reps,
            int(sum(s.sizes.get(r, 0) for r in range(reps))),
            time.perf_counter() - started,
            s.engine,
        )
        prov["streamed"] = {
            "chunks": len(plan_chunks(scenario, reps, chunk)),
            "chunk_customers": chunk,
            "events": s.directory,
        }
        res = StreamedRunResult(
            scenario=scenario,
            summary=s.summary,
            provenance=prov,
            directory=None if s.directory is None else Path(s.directory),
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


def _assemble(named, logs, reps, seeds, started, days, base, seed, paired, engines) -> Comparison:
    import pandas as pd

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
