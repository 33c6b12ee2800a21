"""What produced a result: scenario and its hash, seed, engine, versions, time."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import numpy as np

from sim.io.scenario_toml import scenario_to_dict
from sim.model.scenario import Scenario


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def package_version() -> str:
    """The installed version of this package."""
    return _dist("journey-sim")


def scenario_digest(scenario: Scenario) -> str:
    """A short hash of everything that defines a scenario (its file form)."""
    text = json.dumps(scenario_to_dict(scenario), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provenance(
    scenario: Scenario,
    seed: int,
    logs: int,
    requested: int,
    customers: int,
    elapsed: float,
    engine: str = "simpy",
) -> dict[str, Any]:
    """What produced a result: scenario and its hash, seed, engine, versions, time."""
    return {
        "scenario": scenario.name,
        "scenario_hash": scenario_digest(scenario),
        "seed": seed,
        "replications": logs,
        "replications_requested": requested,
        "customers": customers,
        "horizon_days": scenario.horizon_days,
        "engine": engine,
        "package_version": package_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 3),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "simpy": _dist("simpy"),
    }
