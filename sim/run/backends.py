"""Where replications run: local worker processes (the default) or a Dask cluster.

A backend takes independent tasks (a module-level function and its arguments), runs them, and
hands each result back as it finishes. Results never depend on the backend: every task carries
its own seed and replication number, so one process, twenty, or a cluster of many machines
give the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from sim.errors import ScenarioError, check_count

#: Backends by name: local processes (``workers=N``) or Dask (an existing cluster by address,
#: else a ``distributed.LocalCluster`` started in this process).
BACKENDS = ("processes", "dask")

#: Name of ``address`` that starts a LocalCluster, for the command line's ``--dask local``.
LOCAL = "local"

#: Seconds to wait for a Dask scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = 20

#: One task: a key to file the result under, and the arguments of the function.
Task = tuple[Hashable, tuple]


def check_backend(backend: str, address: str | None) -> None:
    """Raise a ScenarioError naming the fix when ``backend``/``address`` make no sense."""
    if backend not in BACKENDS:
        raise ScenarioError(
            f"unknown backend {backend!r}",
            field="backend",
            fix=f"one of {', '.join(BACKENDS)}",
        )
    if address is not None and backend != "dask":
        raise ScenarioError(
            "an address is only used with backend='dask'",
            field="address",
            fix="pass backend='dask', or leave address out",
        )


def run_tasks(
    func: Callable[..., Any],
    tasks: Sequence[Task],
    on_done: Callable[[Hashable, Any], None],
    *,
    workers: int = 1,
    backend: str = "processes",
    address: str | None = None,
) -> None:
    """Run ``func(*args)`` for every task and call ``on_done(key, result)`` as each finishes
    (so an interruption keeps what finished). ``func`` must be a module-level function, so
    worker processes and Dask workers can import it."""
    check_backend(backend, address)
    check_count(workers, "workers")
    if not tasks:
        return
    if backend == "dask":
        _run_dask(func, tasks, on_done, workers, address)
    elif workers == 1 or len(tasks) == 1:
        for key, args in tasks:
            on_done(key, func(*args))
    else:
        _run_processes(func, tasks, on_done, workers)


def _run_processes(func, tasks, on_done, workers: int) -> None:
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        futures = {pool.submit(func, *args): key for key, args in tasks}
        try:
            for fut in as_completed(futures):
                on_done(futures[fut], fut.result())
        except KeyboardInterrupt:
            for fut in futures:
                fut.cancel()
            raise


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ScenarioError(
            "the Dask backend needs the 'dask' and 'distributed' packages",
            field="backend",
            fix="pip install 'journey-sim[dask]' (on this machine and on every worker)",
        ) from None
    return distributed


@contextlib.contextmanager
def dask_client(address: str | None = None, workers: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` on the scheduler at ``address``, or (None or 'local') on a
    LocalCluster of ``workers`` single-threaded processes started here and stopped after.
    Checks that the workers run this package's version, since a different one could give
    different numbers."""
    distributed = _import_distributed()
    if address is None or address == LOCAL:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise ScenarioError(
            f"cannot reach a Dask scheduler at {address!r} ({err})",
            field="address",
            fix="start one with `dask scheduler` and workers with `dask worker ADDRESS`, "
            "and pass its tcp://host:port",
        ) from None
    with client:
        _check_versions(client)
        yield client


def _worker_package_version() -> str:
    from sim.run.provenance import package_version

    return package_version()


def _check_versions(client: Any) -> None:
    from sim.run.provenance import package_version

    mine = package_version()
    theirs = client.run(_worker_package_version)
    other = {w: v for w, v in theirs.items() if v != mine}
    if other:
        worker, version = next(iter(other.items()))
        raise ScenarioError(
            f"{len(other)} Dask worker(s) run journey-sim {version} (e.g. {worker}), "
            f"this process runs {mine}",
            field="address",
            fix="install the same package version on every worker",
        )


def _run_dask(func, tasks, on_done, workers: int, address: str | None) -> None:
    distributed = _import_distributed()
    with dask_client(address, workers) as client:
        # arguments shared by many tasks (compiled scenarios) go to the workers once
        shared: dict[int, Any] = {}
        for _, args in tasks:
            for a in args:
                if (
                    not isinstance(a, int | float | str | bytes | type(None))
                    and id(a) not in shared
                ):
                    shared[id(a)] = client.scatter(a, broadcast=True, hash=False)
        futures = {}
        for key, args in tasks:
            sent = [shared.get(id(a), a) for a in args]
            futures[client.submit(func, *sent, pure=False)] = key
        try:
            for fut in distributed.as_completed(futures):
                on_done(futures[fut], fut.result())
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
