"""The bundled scenarios give the same event logs, byte for byte, for a fixed seed.

The digests were taken before the package was reshaped into model/io/engine/run/analysis;
a change that moves code without meaning to change behaviour must keep them. A change that
means to change the engine's draws updates them, and says so in its commit.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import sim
from tests.validation import SCENARIOS

COLUMNS = (
    "replication",
    "customer",
    "persona",
    "channel",
    "time",
    "from_stage",
    "to_stage",
    "value",
    "treatment",
    "reach_replication",
    "reach_customer",
    "reach_intervention",
    "reach_time",
)

DIGESTS = {
    "baseline": "19cf8feadb8afca368bdab2717a493c20284e0d2d690ef8c517cd66b244cb800",
    "subscription": "c194afafbb1852d23fda916804660b1b27be040e534877f18af3803648a04e67",
    "discount": "9a6f5ade3ec6208e4887d4df117a226cb6b81c58784d529fca7f054639ccdc0a",
    "loyalty": "46fb05cd2e48ba229ffb63636f00cb42780dcd19cec3b0497cb881ea06dbbe6d",
    "referral": "3f2bd3648d8eae6ec0920c64487fff26b78e9513f559ac803e4432ab951ae5a6",
}


def log_digest(log: sim.EventLog) -> str:
    """SHA-256 over every column's bytes, in a fixed order and dtype."""
    h = hashlib.sha256()
    for name in COLUMNS:
        values = np.ascontiguousarray(getattr(log, name))
        h.update(name.encode())
        h.update(str(values.dtype).encode())
        h.update(values.tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_bundled_scenario_logs_unchanged(name: str) -> None:
    """Two replications of each bundled scenario (2,000 customers where it is a cohort)
    hash to the digest recorded before the reshaping."""
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml")
    customers = 2000 if isinstance(scenario.acquisition, sim.Cohort) else None
    result = sim.run(scenario, replications=2, seed=11, customers=customers)
    assert log_digest(result.log) == DIGESTS[name]
