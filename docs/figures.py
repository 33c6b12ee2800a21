"""Regenerate the figures the README shows (run by ``make docs``)."""

from __future__ import annotations

from pathlib import Path

import sim
from sim import plot
from sim.output import write_figure

HERE = Path(__file__).resolve().parent


def main() -> None:
    scenario = sim.load_scenario(HERE.parent / "scenarios" / "baseline.toml")
    result = sim.run(scenario, replications=5, seed=7)
    write_figure(plot.funnel(result), HERE / "funnel.png")
    write_figure(plot.retention(result), HERE / "retention.png")
    write_figure(plot.flow(result), HERE / "flow.png")
    print(f"wrote funnel.png, retention.png and flow.png in {HERE}")


if __name__ == "__main__":
    main()
