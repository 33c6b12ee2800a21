"""Customer journey simulation: persona agents move through journey stages in SimPy.

Typical use::

    import sim
    scenario = sim.load_scenario("scenarios/baseline.toml")
    result = sim.run(scenario, replications=10, seed=7)
    result.funnel()
    sim.expected(scenario)
"""

import sys as _sys
import types as _types

from sim.errors import EventLogError, ScenarioError

#: Where each public name lives. Names load on first use (PEP 562), so that ``import sim``
#: costs a few milliseconds and loads neither pandas, scipy.stats, pyarrow nor matplotlib;
#: ``sim.run(...)``, ``from sim import run`` and ``sim.plot.funnel(...)`` load what they need.
#: A new public name goes here (name: module) and in ``__all__``, not in an import line
#: (``tests/test_package.py`` checks both, and that no heavy library loads with ``sim``).
_WHERE: dict[str, str] = {
    "Calibrator": "sim.calibrate",
    "Expectation": "sim.engine.analytic",
    "expected": "sim.engine.analytic",
    "expected_adoption": "sim.engine.mean_field",
    "EventLog": "sim.events",
    "read_event_dataset": "sim.io.event_dataset",
    "read_events": "sim.io.event_files",
    "load_scenario": "sim.io.scenario_toml",
    "save_scenario": "sim.io.scenario_toml",
    **dict.fromkeys(
        (
            "ArrivalRateFactor",
            "Arrivals",
            "CapacityChange",
            "CapacityFrom",
            "Channel",
            "ChurnFactor",
            "Cohort",
            "Cost",
            "DwellFactor",
            "Effect",
            "Intervention",
            "Journey",
            "Market",
            "NegativeWordOfMouth",
            "NewTransition",
            "OddsRatio",
            "OrderValueFactor",
            "Outcome",
            "OutcomeOddsRatio",
            "Persona",
            "ReferralRateFactor",
            "Referrals",
            "RepeatFactor",
            "Resource",
            "Satisfaction",
            "SatisfactionChange",
            "SatisfactionEffect",
            "Scenario",
            "Stage",
            "WordOfMouth",
            "five_stage",
            "six_stage",
        ),
        "sim.model",
    ),
    **dict.fromkeys(
        ("Empirical", "Exponential", "Fixed", "Gamma", "Lognormal", "Weibull"),
        "sim.model.distributions",
    ),
    "Comparison": "sim.results",
    "RunResult": "sim.results",
    "StreamedRunResult": "sim.results",
    "compare": "sim.run",
    "run": "sim.run",
}

#: Submodules reached as attributes (``sim.analysis.funnel``, ``sim.plot.funnel``).
_LAZY = ("analysis", "interventions", "plot", "report")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"sim.{name}")
    if name == "__version__":
        from importlib import metadata

        try:
            value = metadata.version("journey-sim")
        except metadata.PackageNotFoundError:  # a source tree that is not installed
            value = "unknown"
    elif name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    globals()[name] = value  # found once; later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_LAZY})


class _Package(_types.ModuleType):
    """The package's module type: keeps ``sim.run`` the function run().

    Python binds a subpackage to its name on the parent the first time it is imported, so
    whichever code imported ``sim.run.streaming`` first would turn ``sim.run`` into the
    folder ``sim/run/``; that binding is refused here and ``sim.run`` found as above."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "run" and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package

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
    "Outcome",
    "OutcomeOddsRatio",
    "Persona",
    "ReferralRateFactor",
    "Referrals",
    "RepeatFactor",
    "Resource",
    "RunResult",
    "Satisfaction",
    "SatisfactionChange",
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
