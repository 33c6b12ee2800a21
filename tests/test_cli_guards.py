"""The ``sim`` command with bad output paths, closed pipes and impossible options: one line
and exit status 2 before anything is simulated; and what a new user needs (version, help,
a starter scenario)."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.cli import _parser, main
from tests.validation import SCENARIOS

BASELINE = str(SCENARIOS / "baseline.toml")
DISCOUNT = str(SCENARIOS / "discount.toml")
#: a folder nobody can create files in, not even root (procfs)
READ_ONLY = Path("/proc")


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if anything is simulated: output checks must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("simulated before the output location was checked")

    for module in ("sim.run.replications", "sim.run.compare"):
        monkeypatch.setattr(importlib.import_module(module), "simulate_tasks", boom)


def _bad_places(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"a file": a_file, "under a file": a_file / "sub", "read-only": READ_ONLY / "sim-out"}


@pytest.mark.parametrize("kind", ["a file", "under a file", "read-only"])
def test_run_out_that_cannot_be_written_exits_2_first(kind, tmp_path, capsys, no_simulation):
    """`sim run --out` naming a file, a path under a file or a read-only place exits 2 with
    one line naming it, before simulating."""
    if kind == "read-only" and not READ_ONLY.is_dir():
        pytest.skip("needs /proc")
    out = _bad_places(tmp_path)[kind]
    assert main(["run", BASELINE, "--customers", "100", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--out" in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_run_out_in_a_read_only_folder_exits_2(tmp_path, capsys, no_simulation):
    """A folder without write permission is refused before simulating."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["run", BASELINE, "--out", str(locked / "run")]) == 2
    finally:
        locked.chmod(0o755)
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["a file", "read-only"])
def test_compare_out_that_cannot_be_written_exits_2_first(kind, tmp_path, capsys, no_simulation):
    """`sim compare --out` is checked before any replication runs."""
    if kind == "read-only" and not READ_ONLY.is_dir():
        pytest.skip("needs /proc")
    out = _bad_places(tmp_path)[kind]
    assert main(["compare", BASELINE, DISCOUNT, "-r", "2", "--out", str(out)]) == 2
    assert str(out) in capsys.readouterr().err


def test_report_output_that_is_a_folder_exits_2_first(tmp_path, capsys, no_simulation):
    """`sim report -o` naming a folder exits 2 and suggests a file name."""
    assert main(["report", BASELINE, "-r", "2", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not a file" in err and "report.html" in err


def test_report_output_in_a_read_only_folder_exits_2_first(capsys, no_simulation):
    """`sim report -o` inside a read-only place exits 2 before running."""
    if not READ_ONLY.is_dir():
        pytest.skip("needs /proc")
    target = READ_ONLY / "sim-report" / "report.html"
    assert main(["report", BASELINE, "-r", "2", "-o", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_good_output_places_still_work(tmp_path, capsys):
    """The twin of the refusals: a new folder inside a writable one is made and filled."""
    out = tmp_path / "new" / "run"
    assert main(["run", BASELINE, "--customers", "100", "--out", str(out)]) == 0
    assert (out / "run.json").exists()


@pytest.mark.parametrize("command", ["run", "compare"])
def test_out_into_a_folder_of_other_files_is_refused_and_keeps_them(
    command, tmp_path, capsys, no_simulation
):
    """`--out` replaces the whole folder, so a folder holding files the tool did not write
    (an analyst's notes) is refused before anything is simulated, with one line naming the
    files, and the files are still there."""
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("important")
    scenarios = [BASELINE] if command == "run" else [BASELINE, DISCOUNT]
    assert main([command, *scenarios, "--customers", "100", "--out", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0] and "did not write" in err[0]
    assert (folder / "notes.txt").read_text() == "important" and (folder / "sub").is_dir()


def test_out_as_the_current_folder_is_refused(tmp_path, capsys, monkeypatch, no_simulation):
    """`--out .` (or a folder holding the current one) would replace where the analyst
    works: refused before anything is simulated."""
    monkeypatch.chdir(tmp_path)
    for out in (".", str(tmp_path.parent)):
        assert main(["run", BASELINE, "--customers", "100", "--out", out]) == 2
        assert "is the current folder" in capsys.readouterr().err


def test_out_into_a_folder_a_run_wrote_is_replaced(tmp_path, capsys):
    """The twin of the refusals: a folder an earlier run wrote (it holds run.json) and an
    empty folder are written into."""
    out, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()
    for folder in (out, out, empty):
        assert main(["run", BASELINE, "--customers", "100", "--out", str(folder)]) == 0
        assert (folder / "run.json").exists()


def test_files_added_to_a_run_folder_are_not_replaced(tmp_path, capsys):
    """An analyst's own file added to an earlier run's folder (or an export written there)
    makes the folder theirs: the same run again is refused, naming the file, which stays;
    an export over one of the run's own tables is refused too."""
    out = tmp_path / "run"
    command = ["run", BASELINE, "--customers", "100", "--out", str(out)]
    assert main(command) == 0
    export = ["export", str(out), "--to", "transactions", "--start", "2025-01-01", "-o"]
    assert main([*export, str(out / "funnel.csv")]) == 2
    assert "one of the files the run" in capsys.readouterr().err
    assert main([*export, str(out / "tx.csv")]) == 0
    (out / "my_analysis.txt").write_text("mine")
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "my_analysis.txt" in err and "tx.csv" in err
    assert (out / "my_analysis.txt").read_text() == "mine" and (out / "tx.csv").is_file()


@pytest.mark.parametrize(
    "replications", [["-r", "2"], ["-r", "auto", "--target-half-width", "0.01"]]
)
def test_compare_unknown_metric_exits_2_before_running(replications, capsys, no_simulation):
    """`--metric nope` is refused before running, listing the known metrics, with a fixed or
    an automatic number of replications."""
    code = main(["compare", BASELINE, DISCOUNT, *replications, "--metric", "nope"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown metric 'nope'" in err and "conversion" in err and "revenue" in err


def test_run_into_a_closed_pipe_ends_quietly():
    """`sim run ... | head -1` ends without a BrokenPipeError traceback, with the status a
    shell gives a command stopped by SIGPIPE."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "run", BASELINE, "--customers", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert code == 141


def test_run_without_out_says_nothing_was_written(capsys):
    """Without --out, `sim run` says that nothing was written and how to keep the results."""
    assert main(["run", BASELINE, "--customers", "100"]) == 0
    out = capsys.readouterr().out
    assert "Nothing written" in out and "--out" in out


def test_version(capsys):
    """`sim --version` prints the package's version."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert sim.__version__ in capsys.readouterr().out


def test_every_option_of_every_subcommand_has_help():
    """Each option and argument of each subcommand says what it does in `sim CMD --help`."""
    missing = []
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for opt in sub._actions:
                    if not opt.help:
                        missing.append(f"{name} {'/'.join(opt.option_strings) or opt.dest}")
    assert missing == []


def test_too_many_workers_are_capped_with_a_note(capsys):
    """`-w 1000` runs on the CPUs available and says so, instead of starting 1000 processes."""
    assert main(["run", BASELINE, "--customers", "100", "-w", "1000"]) == 0
    err = capsys.readouterr().err
    assert "-w 1000 is more than the" in err and "CPUs available" in err


def test_init_writes_a_starter_that_loads_and_runs(tmp_path, monkeypatch, capsys):
    """`sim init shop` writes shop.toml, which validates and runs; a second init refuses to
    overwrite it."""
    monkeypatch.chdir(tmp_path)
    assert main(["init", "shop"]) == 0
    path = tmp_path / "shop.toml"
    assert "#" in path.read_text()
    scenario = sim.load_scenario(path)
    assert scenario.name == "shop"
    assert main(["run", str(path), "--customers", "200"]) == 0
    assert "Funnel" in capsys.readouterr().out
    assert main(["init", "shop"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_the_starters_commented_intervention_loads_when_uncommented(tmp_path):
    """The what-if the starter shows in comments is valid once uncommented."""
    from sim.io.starter import write_starter

    path = write_starter(tmp_path / "shop.toml")
    text = path.read_text()
    block = text[text.index("# [[intervention]]") :]
    opened = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    path.write_text(text[: text.index("# [[intervention]]")] + opened + "\n")
    scenario = sim.load_scenario(path)
    assert [iv.name for iv in scenario.interventions] == ["spring_sale"]


def test_init_makes_no_folders(tmp_path, capsys):
    """`sim init missing/shop` refuses rather than making a folder."""
    assert main(["init", str(tmp_path / "missing" / "shop")]) == 2
    assert not (tmp_path / "missing").exists()
    assert "does not exist" in capsys.readouterr().err


#: Runs the CLI in a fresh interpreter where importing ``{module}`` raises KeyboardInterrupt,
#: as Ctrl-C does when it arrives while that library loads.
_CTRL_C_WHILE_IMPORTING = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
from sim.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize(
    "module,argv",
    [
        ("numpy", ["validate", BASELINE]),
        ("pandas", ["run", BASELINE, "--customers", "50"]),
    ],
)
def test_ctrl_c_while_a_command_imports_exits_130_with_one_line(module, argv):
    """Ctrl-C while a command loads numpy or pandas ends with status 130 and the one line
    'interrupted', no traceback."""
    code = _CTRL_C_WHILE_IMPORTING.format(module=module, argv=argv)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "interrupted\n"


def test_the_same_commands_run_without_ctrl_c():
    """The twin: the probe with a library nobody imports changes nothing (status 0)."""
    code = _CTRL_C_WHILE_IMPORTING.format(module="no_such_module", argv=["validate", BASELINE])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_customers_as_analysts_write_them(tmp_path, capsys):
    """--customers 1e3, 1,000 and 1_000 all mean a thousand (the same log as 1000), and in
    Python customers=1e3 too; -5 and 2.5 are refused naming --customers, not the file."""
    outs = []
    for text in ("1000", "1e3", "1,000", "1_000"):
        out = tmp_path / f"run{len(outs)}"
        assert main(["run", BASELINE, "--customers", text, "--out", str(out)]) == 0
        outs.append(pd.read_parquet(out / "events.parquet"))
    for other in outs[1:]:
        pd.testing.assert_frame_equal(outs[0], other)
    scenario = sim.load_scenario(BASELINE)
    assert sim.run(scenario, customers=1e3).provenance["customers"] == 1000
    for bad in ("-5", "2.5", "many"):
        with pytest.raises(SystemExit) as info:
            main(["run", BASELINE, "--customers", bad])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--customers" in err and "baseline.toml" not in err


def test_ctrl_c_before_anything_finished_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """Ctrl-C before a replication (or a streamed chunk) finished: exit 130, "nothing
    written", and no working folder left beside --out; the twin: after one of two
    replications finished, the working folder stays, to resume from."""
    from sim.run import replications

    real = replications.simulate_tasks

    def interrupted(tasks, workers, logs, progress, save, *rest):
        if len(tasks) > 1:
            real(tasks[:1], workers, logs, progress, save, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(replications, "simulate_tasks", interrupted)
    for reps, kept in (("1", False), ("2", True)):
        out = tmp_path / f"out{reps}"
        code = main(["run", BASELINE, "--customers", "100", "-r", reps, "--out", str(out)])
        assert code == 130
        err = capsys.readouterr().err
        assert ("--resume" in err) is kept and ("nothing written" in err) is not kept
        assert (tmp_path / f".out{reps}.partial").exists() is kept


@pytest.mark.parametrize(
    "argv",
    [
        ["run", BASELINE, "--customers", "-5"],
        ["run", BASELINE, "--engine", "vectorized"],
        ["run"],
        ["bogus"],
    ],
)
def test_argument_errors_are_one_line(argv, capsys):
    """A bad option, a missing argument or an unknown command: exit 2 with one line naming
    it and where to look (not the usage block)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: sim") and "--help" in lines[0]


def test_ctrl_c_while_the_results_are_written_says_what_is_kept(tmp_path, capsys, monkeypatch):
    """Ctrl-C while a finished run writes its tables: exit 130, no --out folder (complete or
    absent), and the line naming --resume (its replications are kept); resumed, it writes
    them."""
    from sim import output

    real = output.write_frame

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(output, "write_frame", interrupted)
    command = ["run", BASELINE, "--customers", "200", "--out", str(tmp_path / "out")]
    assert main(command) == 130
    assert "--resume to continue" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(output, "write_frame", real)
    assert main([*command, "--resume"]) == 0
    assert (tmp_path / "out" / "run.json").is_file()
