"""Writing results to disk atomically: a reader never sees a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from sim.io.atomic import write_atomic, write_text_atomic
from sim.io.scenario_toml import save_scenario
from sim.results import RunResult, StreamedRunResult


def have_parquet() -> bool:
    """Whether pyarrow is installed, so event logs can be written as Parquet."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write a DataFrame as CSV or Parquet (by suffix), atomically."""
    if path.suffix == ".parquet":
        return write_atomic(path, lambda p: frame.to_parquet(p, index=False))
    return write_atomic(path, lambda p: frame.to_csv(p, index=False))


def write_figure(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG, atomically."""
    return write_atomic(Path(path), lambda p: fig.savefig(p, format="png", dpi=110))


def write_run(
    result: RunResult | StreamedRunResult, out_dir: str | Path, plots: bool = True
) -> list[Path]:
    """Write a run's event log, funnel, retention, time-to-purchase tables, plots, the scenario
    and ``run.json`` (provenance) into ``out_dir``; returns the paths written. A streamed
    run's events are already on disk (its Parquet dataset folder is listed first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(result, StreamedRunResult):
        events = [result.directory] if result.directory is not None else []
    else:
        path = out / ("events.parquet" if have_parquet() else "events.csv")
        events = [write_frame(result.events, path)]
    written = [
        *events,
        write_frame(result.funnel(), out / "funnel.csv"),
        write_frame(result.retention_summary(), out / "retention.csv"),
        write_frame(result.retention(), out / "retention_curve.csv"),
        write_frame(result.time_to_purchase(), out / "time_to_purchase.csv"),
    ]
    if plots:
        from sim import plot

        written.append(write_figure(plot.funnel(result), out / "funnel.png"))
        written.append(write_figure(plot.retention(result), out / "retention.png"))
    scenario_path = out / "scenario.toml"
    save_scenario(result.scenario, scenario_path)
    run_json = out / "run.json"
    meta = {
        **result.provenance,
        "complete": result.complete,
        "files": [p.name for p in written] + [scenario_path.name],
    }
    write_text_atomic(run_json, json.dumps(meta, indent=2) + "\n")
    return [*written, scenario_path, run_json]
