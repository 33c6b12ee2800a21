"""Calibration: a scenario fitted from an event log, and checked against one.

May import model, events, io, analysis and engine; never run, plot or cli.
"""

from sim.calibrate.fit import Calibrator

__all__ = ["Calibrator"]
