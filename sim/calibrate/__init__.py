"""Calibration: a scenario fitted from an event log, and checked against one.

May import model, events, io, analysis and engine; never run, plot or cli.
"""

from sim.calibrate.check import CheckResult, check
from sim.calibrate.fit import Calibrator
from sim.calibrate.table import read_attributes, read_table

__all__ = ["Calibrator", "CheckResult", "check", "read_attributes", "read_table"]
