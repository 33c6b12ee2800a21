"""The package's face: `import sim` is light (heavy libraries load where they are used), and
every public name still works (`sim.X`, `from sim import X`, tab completion)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sim

HEAVY = ("pandas", "scipy.stats", "pyarrow", "matplotlib")


def _loaded_after(code: str) -> set[str]:
    """Which of :data:`HEAVY` a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_import_sim_loads_no_heavy_library():
    """A fresh `import sim` (and reading a scenario, and the CLI module) loads neither pandas,
    scipy.stats, pyarrow nor matplotlib."""
    code = "import sim, sim.cli\nsim.load_scenario('scenarios/baseline.toml')\nsim.ScenarioError"
    assert _loaded_after(code) == set()


def test_using_sim_loads_what_it_needs():
    """The twin: asking for `sim.read_events` loads pandas, and running (streamed to Parquet)
    loads pandas, scipy.stats and pyarrow, so the probe above sees them when they are there;
    and `sim.run` stays the function run() when the subpackage sim.run was imported first
    (Python binds a subpackage on its parent)."""
    assert "pandas" in _loaded_after("import sim\nsim.read_events")
    code = (
        "import sim, tempfile\n"
        "from sim.run import streaming\n"
        "assert sim.run.__name__ == 'run' and sim.compare.__name__ == 'compare', sim.run\n"
        "s = sim.load_scenario('scenarios/baseline.toml')\n"
        "sim.run(s, customers=50, stream_to=tempfile.mkdtemp())\n"
    )
    assert _loaded_after(code) == {"pandas", "scipy.stats", "pyarrow"}


#: A small run up to its log and provenance, in a fresh interpreter (``{engine}``: the engine).
_SMALL_RUN = (
    "import sim\n"
    "s = sim.load_scenario('scenarios/baseline.toml').with_customers(300)\n"
    "result = sim.run(s, replications=2, engine={engine!r})\n"
    "assert len(result.log) > 300 and result.provenance['engine'] == {engine!r}\n"
)


@pytest.mark.parametrize("engine", ["simpy", "vectorised"])
def test_a_run_loads_no_heavy_library(engine):
    """`sim.run` of a cohort, up to `len(result.log)` and `result.provenance`, loads neither
    pandas, scipy.stats, pyarrow nor matplotlib, with either engine: they cost a million-
    customer run tens of MB and load only where a table is built."""
    assert _loaded_after(_SMALL_RUN.format(engine=engine)) == set()


@pytest.mark.parametrize("engine", ["simpy", "vectorised"])
def test_a_table_of_the_run_loads_pandas(engine):
    """The twin: the same run followed by `result.funnel()` holds pandas (and scipy.stats, for
    the intervals), so the probe above would see them if the run loaded them."""
    code = _SMALL_RUN.format(engine=engine) + "result.funnel()\n"
    assert {"pandas", "scipy.stats"} <= _loaded_after(code)


def test_defaults_read_on_use_are_the_analysis_constants():
    """The result methods whose defaults name sim.analysis's constants (read on use, so that a
    run imports no sim.analysis) use them: `summary()` shows KEY_METRICS, no more, no fewer;
    `retention_summary()` reads RETENTION_DAYS; and help() shows the constants' names."""
    import inspect

    from sim.analysis import KEY_METRICS
    from sim.analysis.tables import RETENTION_DAYS
    from sim.results import Comparison, RunResult

    s = sim.load_scenario("scenarios/baseline.toml").with_customers(200)
    comparison = sim.compare({"a": s, "b": s}, replications=2, seed=3)
    shown = set(comparison.summary()["metric"])
    assert shown == set(comparison.summary(metrics=KEY_METRICS)["metric"])
    assert shown <= set(KEY_METRICS) and shown != set(comparison.summary(metrics=None)["metric"])
    result = comparison.results["a"]
    assert result.retention_summary().equals(result.retention_summary(days=RETENTION_DAYS))
    assert f"active_day_{RETENTION_DAYS[0]}" in result.retention_summary().columns
    assert "= KEY_METRICS" in str(inspect.signature(Comparison.summary))
    assert "= RETENTION_DAYS" in str(inspect.signature(RunResult.retention_summary))


@pytest.mark.parametrize("name", sim.__all__)
def test_every_public_name_is_there(name):
    """Each name of `__all__` is an attribute of `sim`, listed by `dir(sim)`, and `from sim
    import name` gives the same object."""
    namespace: dict = {}
    exec(f"from sim import {name}", namespace)
    assert namespace[name] is getattr(sim, name)
    assert name in dir(sim)


def test_an_unknown_name_is_an_attribute_error():
    """A name sim does not have is an AttributeError naming it."""
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sim.nothing_here  # noqa: B018
