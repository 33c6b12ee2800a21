"""Customer journey simulation: persona agents move through journey stages in SimPy.

Typical use::

    import sim
    scenario = sim.Scenario.from_toml("scenarios/baseline.toml")
    result = sim.run(scenario, replications=10, seed=7)
    result.funnel()
    sim.expected(scenario)
"""

from sim import interventions
from sim.analytic import Expectation, expected
from sim.compare import Comparison, compare
from sim.distributions import Empirical, Exponential, Fixed, Gamma, Lognormal, Weibull
from sim.errors import ScenarioError
from sim.events import EventLog
from sim.model import (
    ArrivalRateFactor,
    Arrivals,
    Channel,
    ChurnFactor,
    Cohort,
    Cost,
    DwellFactor,
    Effect,
    Intervention,
    Journey,
    NewTransition,
    OddsRatio,
    OrderValueFactor,
    Persona,
    RepeatFactor,
    Scenario,
    Stage,
    five_stage,
    six_stage,
)
from sim.results import RunResult
from sim.runner import package_version, run

__version__ = package_version()

__all__ = [
    "ArrivalRateFactor",
    "Arrivals",
    "Channel",
    "ChurnFactor",
    "Cohort",
    "Comparison",
    "Cost",
    "DwellFactor",
    "Effect",
    "Empirical",
    "EventLog",
    "Expectation",
    "Exponential",
    "Fixed",
    "Gamma",
    "Intervention",
    "Journey",
    "Lognormal",
    "NewTransition",
    "OddsRatio",
    "OrderValueFactor",
    "Persona",
    "RepeatFactor",
    "RunResult",
    "Scenario",
    "ScenarioError",
    "Stage",
    "Weibull",
    "__version__",
    "compare",
    "expected",
    "five_stage",
    "interventions",
    "run",
    "six_stage",
]
