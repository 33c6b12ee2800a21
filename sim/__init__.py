"""Customer journey simulation: persona agents move through journey stages in SimPy.

Typical use::

    import sim
    scenario = sim.load_scenario("scenarios/baseline.toml")
    result = sim.run(scenario, replications=10, seed=7)
    result.funnel()
    sim.expected(scenario)
"""

from sim import analysis, interventions
from sim.engine.analytic import Expectation, expected
from sim.errors import EventLogError, ScenarioError
from sim.events import EventLog
from sim.io.event_dataset import read_event_dataset
from sim.io.scenario_toml import load_scenario, save_scenario
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
from sim.model.distributions import Empirical, Exponential, Fixed, Gamma, Lognormal, Weibull
from sim.results import Comparison, RunResult, StreamedRunResult
from sim.run import compare, package_version, run

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
    "EventLogError",
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
    "StreamedRunResult",
    "Weibull",
    "__version__",
    "analysis",
    "compare",
    "expected",
    "five_stage",
    "interventions",
    "load_scenario",
    "read_event_dataset",
    "run",
    "save_scenario",
    "six_stage",
]
