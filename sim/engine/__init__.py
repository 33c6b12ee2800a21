"""Engines: what they share (streams, pre-draws, budgets, the log writer) and the engines
themselves (SimPy reference, vectorised numpy engine for customers who share nothing, analytic
solver), found by name in the registry."""

from sim.engine.analytic import Expectation, expected
from sim.engine.compiled import CompiledScenario
from sim.engine.registry import ENGINES, Engine, choose_engine, simulate_replication
from sim.engine.simpy_engine import simulate

__all__ = [
    "ENGINES",
    "CompiledScenario",
    "Engine",
    "Expectation",
    "choose_engine",
    "expected",
    "simulate",
    "simulate_replication",
]
