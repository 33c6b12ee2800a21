"""Writing results to disk: every file atomically, and a run's directory as a whole.

A run directory (``sim run --out DIR``, ``sim compare --out DIR``) is complete or absent:
its files are written into a temporary directory beside it, which then takes its place by
rename; the previous directory is kept until that rename has succeeded. (A manifest of digests
written last would also tell a complete directory from a broken one, but every reader would
have to check it; a rename needs no reader's cooperation.) While a run goes, its finished
replications are kept beside ``DIR`` in :func:`work_directory` so an interrupted run can be
resumed; they are removed once ``DIR`` is in place.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from sim.analysis.tables import retention_grid
from sim.events import EventLog
from sim.io.atomic import (
    clean_stale,
    new_directory_beside,
    replace_directory,
    write_atomic,
    write_text_atomic,
)
from sim.io.locations import RUN_RECORD
from sim.io.scenario_toml import save_scenario
from sim.results import Comparison, RunResult, StreamedRunResult
from sim.run.resume import FOLDER, LOCK, STATE


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


#: Rows of an event log turned into a DataFrame and written at a time: a large log is never
#: held as one frame (a million customers' log is about 3.4 million rows).
LOG_ROWS_AT_ONCE = 500_000


def write_log(log: EventLog, path: Path) -> Path:
    """Write an event log as :meth:`EventLog.to_frame` lays it out, CSV or Parquet (by
    suffix), atomically, slice by slice of rows: the same file as writing the whole frame."""
    slices = [slice(a, a + LOG_ROWS_AT_ONCE) for a in range(0, len(log), LOG_ROWS_AT_ONCE)]
    if len(slices) <= 1:
        return write_frame(log.to_frame(), path)
    return write_frames((log.to_frame(rows) for rows in slices), path)


def write_frames(frames: Iterable[pd.DataFrame], path: Path) -> Path:
    """Write DataFrames of the same columns one after another as one table, CSV or Parquet
    (by suffix), atomically: only one of them is held at a time."""

    def write(p: Path) -> None:
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for frame in frames:
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(p, table.schema)
                    writer.write_table(table.cast(writer.schema))
            finally:
                if writer is not None:
                    writer.close()
        else:
            with open(p, "w", newline="") as f:
                for i, frame in enumerate(frames):
                    frame.to_csv(f, index=False, header=i == 0)

    return write_atomic(path, write)


def write_figure(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG, atomically."""
    return write_atomic(Path(path), lambda p: fig.savefig(p, format="png", dpi=110))


def work_directory(out_dir: str | Path) -> Path:
    """Where a run writing into ``out_dir`` keeps its finished replications until it is done
    (``.DIR.partial`` beside ``DIR``); ``--resume`` continues from there."""
    out = Path(out_dir)
    return out.parent / f".{out.name}.partial"


def write_directory(
    out_dir: str | Path, fill: Callable[[Path], list[str]], work: str | Path | None = None
) -> list[Path]:
    """Make ``out_dir`` complete or absent: ``fill(tmp)`` writes the files into a directory
    beside it (``work``, or a fresh one) and returns their names; that directory then takes
    the place of ``out_dir``. Kept replications and state in ``work`` are removed after."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = Path(work) if work is not None else new_directory_beside(out)
    try:
        names = fill(tmp)
        replace_directory(out, tmp)
    except BaseException:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out / FOLDER, ignore_errors=True)
    (out / STATE).unlink(missing_ok=True)
    (out / LOCK).unlink(missing_ok=True)
    return [out / n for n in names]


def write_run(
    result: RunResult | StreamedRunResult,
    out_dir: str | Path,
    plots: bool = True,
    work: str | Path | None = None,
) -> list[Path]:
    """Write a run's event log, funnel, retention (summary, and the curve on a fixed grid of
    days), time-to-purchase tables, plots, the scenario and ``run.json`` (provenance) into
    ``out_dir``, as a whole (see :func:`write_directory`); returns the paths written. The
    full retention curve stays available from Python: ``result.retention()``. A streamed
    run's Parquet dataset (streamed beside the directory) is moved in as ``events/``."""
    ext = ".parquet" if have_parquet() else ".csv"
    streamed = isinstance(result, StreamedRunResult)

    def fill(tmp: Path) -> list[str]:
        grid = retention_grid(result.scenario.horizon_days)
        if streamed:
            events = []
            if result.directory is not None:
                # streamed into the directory being filled (sim run --out), or moved in
                if Path(result.directory).resolve() != (tmp / "events").resolve():
                    Path(result.directory).rename(tmp / "events")
                events = [tmp / "events"]
            curve = result.retention()
        else:
            events = [write_log(result.log, tmp / f"events{ext}")]
            curve = result.retention(days=grid)
        written = [
            *events,
            write_frame(result.funnel(), tmp / "funnel.csv"),
            write_frame(result.retention_summary(), tmp / "retention.csv"),
            write_frame(curve, tmp / f"retention_curve{ext}"),
            write_frame(result.time_to_purchase(), tmp / "time_to_purchase.csv"),
        ]
        if plots:
            from sim import plot

            written.append(write_figure(plot.funnel(result), tmp / "funnel.png"))
            written.append(write_figure(plot.retention(result), tmp / "retention.png"))
        scenario_path = tmp / "scenario.toml"
        save_scenario(result.scenario, scenario_path)
        meta = {
            **result.provenance,
            "complete": result.complete,
            "retention_curve_days": "0 to the horizon in steps of "
            f"{int(grid[1] - grid[0]) if len(grid) > 1 else 1}",
            "files": [p.name for p in written] + [scenario_path.name],
        }
        if streamed and "streamed" in meta:
            # where the dataset ends up, not the folder it was streamed into
            meta["streamed"] = {**meta["streamed"], "events": "events" if events else None}
        write_text_atomic(tmp / RUN_RECORD, json.dumps(meta, indent=2) + "\n")
        return [*(p.name for p in written), scenario_path.name, RUN_RECORD]

    return write_directory(out_dir, fill, work)


def write_comparison(
    res: Comparison,
    out_dir: str | Path,
    bootstrap: bool = False,
    work: str | Path | None = None,
) -> list[Path]:
    """Write a comparison's tables (``comparison.csv``: every metric and persona;
    ``roi.csv``; ``per_replication.csv``) and ``run.json`` into ``out_dir``, as a whole. The
    Parquet datasets of a streamed comparison go in as ``events/<scenario>/`` (moved in, or
    streamed there already by ``sim compare --out``)."""
    from sim.analysis.comparison import KEY_METRICS

    def fill(tmp: Path) -> list[str]:
        events = []
        datasets = [
            r.directory
            for r in res.results.values()
            if isinstance(r, StreamedRunResult) and r.directory is not None
        ]
        for directory in datasets:
            target = tmp / "events" / Path(directory).name
            if Path(directory).resolve() != target.resolve():
                target.parent.mkdir(exist_ok=True)
                Path(directory).rename(target)
        if datasets:
            events = ["events"]
        summary = res.summary(metrics=None, persona=None, bootstrap=bootstrap)
        write_frame(summary, tmp / "comparison.csv")
        write_frame(res.roi(), tmp / "roi.csv")
        write_frame(res.per_replication, tmp / "per_replication.csv")
        meta = {
            "baseline": res.baseline,
            "seed": res.seed,
            "replications": res.replications,
            "converged": res.converged,
            "paired": res.paired,
            "metrics": list(KEY_METRICS),
            "holm_family": "per persona: every scenario against the baseline x KEY_METRICS",
            "scenarios": {n: _moved(r, tmp) for n, r in res.results.items()},
        }
        if res.streamed:
            meta["streamed"] = res.streamed
        tables = ["comparison.csv", "roi.csv", "per_replication.csv"]
        meta["files"] = [*events, *tables]
        write_text_atomic(tmp / RUN_RECORD, json.dumps(meta, indent=2) + "\n")
        return [*events, *tables, RUN_RECORD]

    return write_directory(out_dir, fill, work)


def _moved(result: RunResult | StreamedRunResult, tmp: Path) -> dict:
    """A result's provenance naming its streamed dataset by its place in the output
    directory being filled (``tmp``), not the folder it was streamed into."""
    prov = dict(result.provenance)
    if "streamed" in prov and isinstance(result, StreamedRunResult) and result.directory:
        name = Path(result.directory).name
        prov["streamed"] = {**prov["streamed"], "events": f"events/{name}"}
    return prov
