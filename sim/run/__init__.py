"""Running scenarios: replications on workers, comparisons, provenance."""

from sim.run.compare import KEY_METRICS, compare
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
