"""Customer journey simulation: persona agents move through journey stages in SimPy.

Typical use::

    import sim
    scenario = sim.Scenario.from_toml("scenarios/baseline.toml")
    result = sim.run(scenario, replications=10, seed=7)
    result.funnel()
    sim.expected(scenario)
"""

from sim.analytic import Expectation, expected
from sim.distributions import Empirical, Exponential, Fixed, Gamma, Lognormal, Weibull
from sim.errors import ScenarioError
from sim.events import EventLog
from sim.model import (
    Arrivals,
    Channel,
    Cohort,
    Effect,
    Journey,
    Persona,
    Scenario,
    Stage,
    five_stage,
    six_stage,
)
from sim.results import RunResult
from sim.runner import package_version, run

__version__ = package_version()

__all__ = [
    "Arrivals",
    "Channel",
    "Cohort",
    "Effect",
    "Empirical",
    "EventLog",
    "Expectation",
    "Exponential",
    "Fixed",
    "Gamma",
    "Journey",
    "Lognormal",
    "Persona",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Stage",
    "Weibull",
    "__version__",
    "expected",
    "five_stage",
    "run",
    "six_stage",
]
