"""Running scenarios: replications on workers, comparisons, provenance."""

from sim.run.compare import compare
from sim.run.provenance import package_version, provenance, scenario_digest
from sim.run.replications import run, simulate_tasks

__all__ = [
    "KEY_METRICS",
    "compare",
    "package_version",
    "provenance",
    "run",
    "scenario_digest",
    "simulate_tasks",
]


def __getattr__(name: str):
    # KEY_METRICS lives in sim.analysis, whose import loads pandas: found when asked for
    if name == "KEY_METRICS":
        from sim.analysis.comparison import KEY_METRICS

        return KEY_METRICS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
