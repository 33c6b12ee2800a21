"""Files: scenario TOML (load, save, validation messages), event logs in and out, and the
one atomic writer."""

from sim.io.atomic import write_atomic, write_text_atomic
from sim.io.scenario_toml import load_scenario, save_scenario, scenario_from_dict, scenario_to_dict


def __getattr__(name: str):
    # event files need pandas: loaded when first asked for, so reading a scenario stays light
    if name in ("read_events", "read_run_events"):
        from sim.io import event_files

        return getattr(event_files, name)
    raise AttributeError(f"module 'sim.io' has no attribute {name!r}")


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
