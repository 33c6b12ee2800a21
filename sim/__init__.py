"""Customer journey simulation: persona agents move through journey stages in SimPy.

Typical use::

    import sim
    scenario = sim.load_scenario("scenarios/baseline.toml")
    result = sim.run(scenario, replications=10, seed=7)
    result.funnel()
    sim.expected(scenario)
"""

from sim import analysis, interventions
from sim.calibrate import Calibrator
from sim.engine.analytic import Expectation, expected
from sim.engine.mean_field import expected_adoption
from sim.errors import EventLogError, ScenarioError
from sim.events import EventLog
from sim.io.event_dataset import read_event_dataset
from sim.io.event_files import read_events
from sim.io.scenario_toml import load_scenario, save_scenario
from sim.model import (
    ArrivalRateFactor,
    Arrivals,
    CapacityChange,
    Channel,
    ChurnFactor,
    Cohort,
    Cost,
    DwellFactor,
    Effect,
    Intervention,
    Journey,
    Market,
    NewTransition,
    OddsRatio,
    OrderValueFactor,
    Persona,
    ReferralRateFactor,
    Referrals,
    RepeatFactor,
    Resource,
    Satisfaction,
    SatisfactionEffect,
    Scenario,
    Stage,
    WordOfMouth,
    five_stage,
    six_stage,
)
from sim.model.distributions import Empirical, Exponential, Fixed, Gamma, Lognormal, Weibull
from sim.model.market import NegativeWordOfMouth
from sim.model.resource import CapacityFrom
from sim.results import Comparison, RunResult, StreamedRunResult
from sim.run import compare, package_version, run

__version__ = package_version()

#: Submodules loaded on first use, so that ``import sim`` stays quick (matplotlib is slow to
#: import) while ``sim.plot.funnel(...)`` works after a plain ``import sim``.
_LAZY = ("plot", "report")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"sim.{name}")
    raise AttributeError(f"module 'sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "ArrivalRateFactor",
    "Arrivals",
    "Calibrator",
    "CapacityChange",
    "CapacityFrom",
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
    "Market",
    "NegativeWordOfMouth",
    "NewTransition",
    "OddsRatio",
    "OrderValueFactor",
    "Persona",
    "ReferralRateFactor",
    "Referrals",
    "RepeatFactor",
    "Resource",
    "RunResult",
    "Satisfaction",
    "SatisfactionEffect",
    "Scenario",
    "ScenarioError",
    "Stage",
    "StreamedRunResult",
    "Weibull",
    "WordOfMouth",
    "__version__",
    "analysis",
    "compare",
    "expected",
    "expected_adoption",
    "five_stage",
    "interventions",
    "load_scenario",
    "read_event_dataset",
    "read_events",
    "run",
    "save_scenario",
    "six_stage",
]
