"""Run directories on disk: files follow the umask, a directory is complete or absent, stale
temporaries of killed writers are cleaned, retention curves are written on a grid of days."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.io.atomic import clean_stale, write_text_atomic
from sim.output import write_run
from tests.validation import SCENARIOS


@pytest.fixture(scope="module")
def result() -> sim.RunResult:
    """Two replications of the baseline with 600 customers."""
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(600)
    return sim.run(scenario, replications=2, seed=4)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_and_directories_follow_the_umask(tmp_path, result, umask_022):
    """Under umask 022 written files are 0644 and the run directory 0755 (mkstemp alone gives
    0600 and mkdtemp 0700: a shared report could not be opened by anyone else)."""
    report = write_text_atomic(tmp_path / "report.html", "<p>hi</p>")
    assert _mode(report) == 0o644
    out = tmp_path / "run"
    paths = write_run(result, out, plots=False)
    assert _mode(out) == 0o755
    assert {_mode(p) for p in paths} == {0o644}
    os.umask(0o077)
    assert _mode(write_text_atomic(tmp_path / "private.txt", "x")) == 0o600


def test_a_failed_write_leaves_the_previous_directory_whole(tmp_path, result, monkeypatch):
    """When writing a new run fails midway (here: the funnel plot), the directory holds the
    previous run, every file of it, and nothing of the new one; no temporaries are left."""
    out = tmp_path / "run"
    write_run(result, out, plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from sim import plot

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plot, "funnel", broken)
    other = sim.run(result.scenario, replications=1, seed=99)
    with pytest.raises(RuntimeError, match="disk full"):
        write_run(other, out, plots=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_new_run_replaces_every_file_of_the_old(tmp_path, result):
    """Writing a run over an older one leaves no file of the older run (a plotless run over a
    run with plots has no plots)."""
    out = tmp_path / "run"
    write_run(result, out, plots=True)
    assert (out / "funnel.png").exists()
    write_run(result, out, plots=False)
    assert not (out / "funnel.png").exists()
    meta = json.loads((out / "run.json").read_text())
    assert sorted(meta["files"] + ["run.json"]) == sorted(p.name for p in out.iterdir())


def test_stale_temporaries_of_killed_writers_are_cleaned(tmp_path, result):
    """Temporaries named after a process that has ended are removed by the next write of the
    same target; those of a live process (this one) are left alone; a previous directory set
    aside by a writer killed between its two renames is put back."""
    dead = _dead_pid()
    report = tmp_path / "report.html"
    stale = tmp_path / f".report.html.{dead}.abc123.tmp"
    live = tmp_path / f".report.html.{os.getpid()}.def456.tmp"
    stale.write_text("half")
    live.write_text("being written")
    write_text_atomic(report, "<p>new</p>")
    assert not stale.exists() and live.exists()
    live.unlink()
    out = tmp_path / "run"
    write_run(result, out, plots=False)
    aside = tmp_path / f".run.{dead}.0badc0de.old"
    os.rename(out, aside)  # as if killed after setting the old directory aside
    half = tmp_path / f".run.{dead}.xyz.tmp"
    half.mkdir()
    (half / "events.parquet").write_text("partial")
    clean_stale(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "run"]
    assert (out / "run.json").exists()


def test_retention_curve_is_written_on_a_grid_of_days(tmp_path, result):
    """The run directory's retention curve has a row per group and day 0..horizon (in
    Parquet); the full curve, a row per event day, stays available from Python and agrees
    with the grid where the grid meets it."""
    write_run(result, tmp_path / "run", plots=False)
    curve = pd.read_parquet(tmp_path / "run" / "retention_curve.parquet")
    horizon = int(result.scenario.horizon_days)
    groups = curve["persona"].unique()
    assert len(curve) == len(groups) * (horizon + 1)
    np.testing.assert_array_equal(curve["day"].unique(), np.arange(horizon + 1))
    full = result.retention()
    assert not np.isin(full["day"].iloc[1:], curve["day"]).all(), "full: event days"
    for who in groups:
        mine = full[full.persona == who]
        grid = curve[curve.persona == who].set_index("day")
        for day in (10, 100, 300):
            past = mine[mine.day <= day].iloc[-1]
            assert grid.loc[day, "survival"] == past.survival
    assert not (tmp_path / "run" / "retention_curve.csv").exists()


def test_long_horizons_get_a_coarser_grid():
    """At most about a thousand grid days however long the horizon."""
    from sim.analysis import retention_grid

    assert len(retention_grid(365)) == 366
    grid = retention_grid(1e7)
    assert len(grid) <= 1001 and grid[0] == 0 and grid[-1] <= 1e7


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_log_written_slice_by_slice_is_the_whole_frame(tmp_path, monkeypatch, suffix):
    """A run's events written in slices of 700 rows (so a large log is never one DataFrame)
    read back as the frame of the whole log, with interventions and categories of the whole
    log in every slice; the CSV is byte for byte the whole frame's."""
    from sim import output

    loyalty = sim.load_scenario(SCENARIOS / "loyalty.toml").with_customers(800)
    log = sim.run(loyalty, replications=2, seed=4).log
    whole = output.write_frame(log.to_frame(), tmp_path / f"whole{suffix}")
    monkeypatch.setattr(output, "LOG_ROWS_AT_ONCE", 700)
    sliced = output.write_log(log, tmp_path / f"sliced{suffix}")
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    pd.testing.assert_frame_equal(read(sliced), read(whole))
    if suffix == ".csv":
        assert sliced.read_bytes() == whole.read_bytes()
