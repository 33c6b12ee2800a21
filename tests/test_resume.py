"""Resuming interrupted runs: replications kept as they finish, a resumed run byte-identical
to an uninterrupted one, refusals with the reason. Interruptions are real: subprocesses sent
SIGINT or SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sim
from sim.errors import ScenarioError
from tests.validation import SCENARIOS

BASELINE = str(SCENARIOS / "baseline.toml")
RUN = ["run", BASELINE, "-r", "10", "--customers", "800", "--seed", "5"]
COMPARE = [
    "compare",
    BASELINE,
    str(SCENARIOS / "loyalty.toml"),
    "-r",
    "4",
    "--customers",
    "600",
    "--seed",
    "2",
]
#: files of a run directory that must be the same, byte for byte, however the run was reached
RUN_FILES = ("events.parquet", "funnel.csv", "retention.csv", "retention_curve.parquet")
COMPARE_FILES = ("comparison.csv", "roi.csv", "per_replication.csv")


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def _sim(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sim.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )


def _finish(args: list[str]) -> None:
    """Run the command to the end in this process (the interruptions are the subprocesses)."""
    from sim.cli import main

    assert main(args) == 0


def _complete_or_absent(out: Path, files: tuple[str, ...]) -> None:
    """A run directory is either missing or holds every file of a finished run."""
    if out.exists():
        meta = json.loads((out / "run.json").read_text())
        assert all((out / f).exists() for f in files), meta


def _interrupt_and_resume(tmp_path: Path, args: list[str], check, how: signal.Signals, seed):
    """Run into ``tmp_path/out`` and interrupt it at random moments (at most twice, within a
    few seconds each), calling ``check(out)`` after each interruption and resuming, until it
    finishes; returns ``out``."""
    rng = np.random.default_rng(seed)
    out = tmp_path / "out"
    resume: list[str] = []
    for attempt in range(2):
        state = out.parent / f".{out.name}.partial" / "state.json"
        before = state.stat().st_ino if state.exists() else None
        proc = _sim([*args, "--out", str(out), *resume])
        # interrupt at a random moment once the run is under way: first soon after a
        # replication has finished (mid-run), then up to a second after it began (maybe while
        # writing). Killing Python while it imports tests nothing of ours (and Ctrl-C there
        # is Python's own business).
        folder = state.parent / "replications"
        kept = len(list(folder.glob("*.npz"))) if folder.exists() else 0
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            begun = state.exists() and state.stat().st_ino != before
            if begun and (attempt or len(list(folder.glob("*.npz"))) > kept):
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3 if attempt == 0 else 1.0))
        if proc.poll() is not None:
            break
        proc.send_signal(how)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err, err
        if how == signal.SIGINT and proc.returncode != 0:
            assert proc.returncode in (130, 2), err
        check(out)
        resume = ["--resume"]
    _finish([*args, "--out", str(out), *resume])
    return out


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """An uninterrupted `sim run`."""
    out = tmp_path_factory.mktemp("reference") / "out"
    _finish([*RUN, "--out", str(out)])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_run_resumes_to_the_same_bytes(tmp_path, reference_run, how, capsys):
    """`sim run --out` interrupted (Ctrl-C, or killed outright) and continued with --resume
    writes the same files, byte for byte, as an uninterrupted run; nothing is left beside."""
    out = tmp_path / "out"
    _finish([*RUN[:-1], "6", "--out", str(out)])  # an older run, seed 6, in the same place
    older = {p.name: p.read_bytes() for p in out.iterdir()}

    def old_or_new(out: Path) -> None:
        """After any interruption --out holds the older run, whole, or the new one, whole
        (or, for the instant between two renames, nothing, the older run kept beside)."""
        if not out.exists():
            assert list(tmp_path.glob(".out.*.old")), "the older run is kept beside"
            return
        now = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        if now != older:
            assert json.loads(now["run.json"])["seed"] == 5
            for name in RUN_FILES:
                assert now[name] == (reference_run / name).read_bytes(), name

    out = _interrupt_and_resume(tmp_path, RUN, old_or_new, how, seed=int(how))
    for name in RUN_FILES:
        assert (out / name).read_bytes() == (reference_run / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not (out / "replications").exists()


@pytest.mark.slow
def test_an_interrupted_comparison_resumes_to_the_same_bytes(tmp_path, capsys):
    """`sim compare` killed midway and resumed writes the tables of an uninterrupted one."""
    reference = tmp_path / "reference"
    _finish([*COMPARE, "--out", str(reference)])
    out = _interrupt_and_resume(
        tmp_path / "k",
        COMPARE,
        lambda out: _complete_or_absent(out, COMPARE_FILES),
        signal.SIGKILL,
        seed=3,
    )
    for name in COMPARE_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_finished_replications_are_kept_as_they_finish(tmp_path, baseline):
    """With keep=, each replication is on disk once it finishes (one file each, with a state
    file saying what they are of), and a resumed run reads them instead of running them."""
    scenario = baseline.with_customers(300)
    keep = tmp_path / "keep"
    first = sim.run(scenario, replications=3, seed=1, keep=keep)
    assert sorted(p.name for p in (keep / "replications").iterdir()) == [
        "r00000.npz",
        "r00001.npz",
        "r00002.npz",
    ]
    state = json.loads((keep / "state.json").read_text())
    assert state["seed"] == 1 and state["engine"] == "vectorised" and state["package_version"]
    (keep / "replications" / "r00001.npz").unlink()
    half = keep / "replications" / f".r00001.npz.{_dead_pid()}.x1y2z3.tmp"
    half.write_bytes(b"killed while writing")
    again = sim.run(scenario, replications=4, seed=1, keep=keep, resume=True)
    whole = sim.run(scenario, replications=4, seed=1)
    for name in ("time", "customer", "to_stage", "value", "replication"):
        np.testing.assert_array_equal(getattr(again.log, name), getattr(whole.log, name))
    assert again.log.replications == 4 and first.log.replications == 3
    assert again.provenance["resumed"] == {"replications_read_back": 2}
    assert "resumed" not in whole.provenance
    assert not half.exists(), "the killed writer's half file is cleaned"


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"seed": 2}, "seed 1, this run has 2"),
        ({"customers": 301}, "made with scenarios"),
        ({"version": "9.9"}, "journey-sim 9.9"),
    ],
)
def test_resuming_another_run_is_refused_with_the_reason(
    tmp_path, baseline, monkeypatch, change, reason
):
    """A keep directory made from another scenario, seed or package version is not resumed:
    the error names what differs; without resume=True kept replications are not overwritten."""
    scenario = baseline.with_customers(300)
    keep = tmp_path / "keep"
    sim.run(scenario, replications=2, seed=1, keep=keep)
    if "version" in change:
        import importlib

        runner = importlib.import_module("sim.run.replications")
        monkeypatch.setattr(runner, "package_version", lambda: change["version"])
    with pytest.raises(ScenarioError, match=reason):
        sim.run(
            scenario.with_customers(change.get("customers", 300)),
            replications=2,
            seed=change.get("seed", 1),
            keep=keep,
            resume=True,
        )
    with pytest.raises(ScenarioError, match="add --resume"):
        sim.run(scenario, replications=2, seed=1, keep=keep)


def test_cli_refuses_to_resume_another_seed(tmp_path):
    """`sim run --resume` against a directory of another seed exits 2 with one line."""
    out = tmp_path / "out"
    keep = tmp_path / ".out.partial"
    sim.run(sim.load_scenario(BASELINE).with_customers(200), replications=1, seed=5, keep=keep)
    from sim.cli import main

    code = main(
        ["run", BASELINE, "--customers", "200", "--seed", "6", "--out", str(out), "--resume"]
    )
    assert code == 2
    assert not out.exists()


def test_report_resumes_the_runs_it_kept(tmp_path, capsys):
    """`sim report` keeps its runs' replications beside -o; without --resume it will not
    overwrite them (exit 2), with --resume it uses them, writes the report and cleans up."""
    from sim.cli import main

    report = tmp_path / "report.html"
    keep = tmp_path / ".report.html.partial"
    scenario = sim.load_scenario(BASELINE).with_customers(300)
    sim.run(scenario, replications=1, keep=keep)  # as if interrupted after one of two
    args = ["report", BASELINE, "-r", "2", "--customers", "300", "-o", str(report)]
    assert main(args) == 2 and not report.exists()
    assert main([*args, "--resume"]) == 0
    assert report.exists() and not keep.exists()


def test_two_runs_never_write_into_one_directory(tmp_path):
    """While one run keeps replications in a directory, another is refused (the lock goes
    with the process, so a killed run does not block the next)."""
    from sim.run.resume import KeptReplications

    first = KeptReplications(tmp_path / "keep", {"seed": 1}, False, str)
    with pytest.raises(ScenarioError, match="another run is writing"):
        KeptReplications(tmp_path / "keep", {"seed": 1}, False, str)
    first.close()
    KeptReplications(tmp_path / "keep", {"seed": 1}, False, str).close()
