"""Running replications: seeds, workers, provenance, interruption."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sim
from sim.engine import CompiledScenario, simulate
from sim.engine.registry import ENGINES
from sim.run.provenance import scenario_digest


def _same(a: sim.RunResult, b: sim.RunResult) -> bool:
    cols = ("replication", "customer", "time", "from_stage", "to_stage", "value", "persona")
    return all(np.array_equal(getattr(a.log, c), getattr(b.log, c)) for c in cols)


def test_same_seed_same_results_whatever_the_number_of_workers(baseline):
    """One worker or two, the same seed gives the same event log, replication by replication."""
    one = sim.run(baseline, replications=3, seed=5, customers=500, workers=1)
    two = sim.run(baseline, replications=3, seed=5, customers=500, workers=2)
    assert _same(one, two)
    assert not _same(one, sim.run(baseline, replications=3, seed=6, customers=500))


def test_replications_are_independent_draws(baseline):
    """Replications differ from each other, and each equals a run of that replication alone."""
    res = sim.run(baseline, replications=2, seed=5, customers=300)
    log = res.log
    first = log.time[log.replication == 0]
    second = log.time[log.replication == 1]
    assert not np.array_equal(first, second)
    alone = simulate(CompiledScenario.build(baseline.with_customers(300)), 5, 1)
    np.testing.assert_array_equal(second, alone.time)
    np.testing.assert_array_equal(log.to_stage[log.replication == 1], alone.to_stage)


def test_seed_defaults_to_the_scenarios(baseline):
    """Without a seed argument the scenario's own seed is used and recorded."""
    res = sim.run(baseline, customers=200)
    assert res.provenance["seed"] == baseline.seed
    assert _same(res, sim.run(baseline, customers=200, seed=baseline.seed))


def test_provenance_is_recorded(baseline):
    """Results say which seed, package version, engine and scenario made them."""
    p = sim.run(baseline, customers=100, seed=3).provenance
    assert p["seed"] == 3 and p["engine"] == "vectorised"  # 'auto' picks it: no budgets
    assert p["package_version"] == sim.__version__ != "unknown"
    assert p["scenario_hash"] == scenario_digest(baseline.with_customers(100))
    assert p["customers"] == 100


def test_an_interrupted_run_keeps_the_finished_replications(baseline, monkeypatch):
    """Ctrl-C during replication 2 returns replications 0 and 1, marked incomplete."""
    real = ENGINES["simpy"].simulate

    def interrupted(compiled, seed, replication):
        if replication == 2:
            raise KeyboardInterrupt
        return real(compiled, seed, replication)

    monkeypatch.setitem(
        ENGINES, "simpy", dataclasses.replace(ENGINES["simpy"], simulate=interrupted)
    )
    with pytest.warns(RuntimeWarning, match="keeping the 2 of 5"):
        res = sim.run(baseline, replications=5, customers=100, engine="simpy")
    assert not res.complete and res.replications == 2
    assert set(np.unique(res.log.replication)) == {0, 1}


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"replications": 0}, "replications must be a whole number >= 1"),
        ({"workers": 0}, "workers must be"),
        ({"seed": -1}, "seed must be"),
        ({"customers": 0}, "cohort size"),
    ],
)
def test_bad_run_arguments_are_explained(baseline, kwargs, words):
    """Nonsense arguments raise ScenarioError with the offending value."""
    with pytest.raises(sim.ScenarioError, match=words):
        sim.run(baseline, **kwargs)


def test_customers_cannot_override_channel_arrivals(subscription):
    """Arrivals by channel have no fixed customer count; asking for one is refused."""
    with pytest.raises(sim.ScenarioError, match="rate_per_day"):
        sim.run(subscription, customers=100)


def test_progress_bar_only_when_asked_or_interactive(baseline, capsys):
    """Tests and CI see no progress bar; progress=True shows one on stderr."""
    sim.run(baseline, replications=3, customers=100)
    assert "replications" not in capsys.readouterr().err
    sim.run(baseline, replications=3, customers=100, progress=True)
    assert "replications" in capsys.readouterr().err


def test_notebook_summaries(baseline):
    """Runs and expectations show compact HTML (name, tables) in notebooks; repr is a line."""
    result = sim.run(baseline, replications=2, customers=300, seed=1)
    page = result._repr_html_()
    assert "baseline" in page and page.count("<table") == 2 and "awareness" in page
    assert "<table" in sim.expected(baseline)._repr_html_()
    assert repr(result).startswith("RunResult('baseline': 2 replication(s), 600 customers")
