"""Backends: replications on a real Dask cluster give the bytes of a serial run."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from sim.events import COLUMNS, REACH_SCHEMA
from sim.run import backends
from sim.run.backends import run_tasks

distributed = pytest.importorskip("distributed")


def _same_logs(a: sim.EventLog, b: sim.EventLog) -> bool:
    return all(
        np.array_equal(getattr(a, c), getattr(b, c)) for c in (*COLUMNS, *REACH_SCHEMA)
    ) and np.array_equal(a.customers, b.customers)


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-threaded worker processes, shared by this module's tests."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


def test_dask_run_equals_a_serial_run(cluster, baseline):
    """Four replications on a 2-worker Dask cluster are byte-identical to a serial run with the
    same seed; with another seed they differ (the check can fail)."""
    serial = sim.run(baseline, replications=4, seed=3, customers=300)
    on_dask = sim.run(
        baseline,
        replications=4,
        seed=3,
        customers=300,
        backend="dask",
        address=cluster.scheduler_address,
    )
    assert _same_logs(serial.log, on_dask.log)
    assert on_dask.provenance["replications"] == 4
    other = sim.run(baseline, replications=4, seed=4, customers=300)
    assert not _same_logs(other.log, on_dask.log)


def test_dask_compare_equals_a_serial_compare(cluster):
    """Scenarios x replications of a comparison submitted to Dask give the per-replication
    metrics of a serial comparison exactly."""
    from tests.validation import SCENARIOS

    named = [sim.load_scenario(SCENARIOS / f"{n}.toml") for n in ("baseline", "discount")]
    serial = sim.compare(named, 3, seed=2, customers=200)
    on_dask = sim.compare(
        named, 3, seed=2, customers=200, backend="dask", address=cluster.scheduler_address
    )
    assert serial.per_replication.equals(on_dask.per_replication)
    for name in serial.results:
        assert _same_logs(serial.results[name].log, on_dask.results[name].log)


def test_dask_workers_write_streamed_parts(cluster, baseline, tmp_path):
    """A streamed run on Dask: workers write the Parquet parts to the shared folder and send
    back summaries equal to a serial streamed run's."""
    kw = {"replications": 2, "seed": 5, "customers": 600, "chunk_customers": 250}
    serial = sim.run(baseline, stream_to=tmp_path / "serial", **kw)
    on_dask = sim.run(
        baseline,
        stream_to=tmp_path / "dask",
        backend="dask",
        address=cluster.scheduler_address,
        **kw,
    )
    assert serial.metrics().equals(on_dask.metrics())
    a = serial.event_dataset.to_log()
    b = on_dask.event_dataset.to_log()
    assert _same_logs(a, b)


def test_dask_without_an_address_starts_a_local_cluster(baseline):
    """backend='dask' with no address runs on a LocalCluster started for the run, same bytes."""
    serial = sim.run(baseline, replications=2, seed=9, customers=200)
    local = sim.run(baseline, replications=2, seed=9, customers=200, backend="dask", workers=2)
    assert _same_logs(serial.log, local.log)


def test_task_results_are_filed_under_their_keys():
    """run_tasks hands back every result under its own key, on every backend path."""
    tasks = [(k, (k, 10)) for k in range(5)]
    for workers in (1, 2):
        got: dict = {}
        run_tasks(divmod, tasks, got.__setitem__, workers=workers)
        assert got == {k: divmod(k, 10) for k in range(5)}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"backend": "spark"}, "unknown backend"),
        ({"address": "tcp://127.0.0.1:1"}, "only used with backend='dask'"),
    ],
)
def test_bad_backend_arguments_are_explained(baseline, kwargs, words):
    """A wrong backend or an address without Dask is a ScenarioError naming the fix."""
    with pytest.raises(sim.ScenarioError, match=words):
        sim.run(baseline, customers=10, **kwargs)


def test_an_unreachable_scheduler_is_a_clear_error(baseline, monkeypatch):
    """A scheduler that does not answer gives one error naming the address, not a traceback."""
    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", 1)
    with pytest.raises(sim.ScenarioError, match="cannot reach a Dask scheduler"):
        sim.run(baseline, customers=10, backend="dask", address="tcp://127.0.0.1:9")


def test_cli_dask_flag(cluster, tmp_path, capsys, monkeypatch):
    """`sim run --dask ADDRESS` runs on the cluster; an address nobody answers at exits with
    status 2 and one line naming it."""
    from sim.cli import main
    from tests.validation import SCENARIOS

    path = str(SCENARIOS / "baseline.toml")
    args = ["run", path, "--customers", "200", "-r", "2"]
    assert main([*args, "--dask", cluster.scheduler_address]) == 0
    assert "Funnel" in capsys.readouterr().out
    monkeypatch.setattr(backends, "CONNECT_TIMEOUT", 1)
    assert main([*args, "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach a Dask scheduler" in err and len(err.strip().splitlines()) == 1
