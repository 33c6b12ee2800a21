"""Files: scenario TOML (load, save, validation messages), event logs in and out, and the
one atomic writer."""

from sim.io.atomic import write_atomic, write_text_atomic
from sim.io.event_files import read_events, read_run_events
from sim.io.scenario_toml import load_scenario, save_scenario, scenario_from_dict, scenario_to_dict

__all__ = [
    "load_scenario",
    "read_events",
    "read_run_events",
    "save_scenario",
    "scenario_from_dict",
    "scenario_to_dict",
    "write_atomic",
    "write_text_atomic",
]
