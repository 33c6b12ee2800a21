"""The ``sim`` command end to end: exit codes, printed tables, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.cli import main
from tests.validation import SCENARIOS

BASELINE = str(SCENARIOS / "baseline.toml")


def test_run_prints_tables_and_writes_outputs(tmp_path, capsys):
    """`sim run` prints the funnel and retention, and writes events, tables and provenance."""
    out = tmp_path / "baseline"
    code = main(["run", BASELINE, "--customers", "2000", "--seed", "7", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Funnel" in text and "awareness" in text and "Retention" in text
    names = {p.name for p in out.iterdir()}
    assert {"events.parquet", "funnel.csv", "retention.csv", "run.json", "scenario.toml"} <= names
    assert not [n for n in names if n.startswith(".")], "no temporary files are left behind"
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 7 and meta["customers"] == 2000 and meta["engine"] == "vectorised"
    events = pd.read_parquet(out / "events.parquet")
    assert events["customer"].nunique() == 2000
    funnel = pd.read_csv(out / "funnel.csv")
    assert set(funnel["persona"]) == {"all", "bargain_hunter", "brand_loyal", "casual_browser"}


def test_same_seed_same_files(tmp_path):
    """Running twice with the same seed writes the same event log."""
    for name in ("a", "b"):
        assert (
            main(
                [
                    "run",
                    BASELINE,
                    "--customers",
                    "500",
                    "--seed",
                    "3",
                    "--out",
                    str(tmp_path / name),
                ]
            )
            == 0
        )
    a = pd.read_parquet(tmp_path / "a" / "events.parquet")
    b = pd.read_parquet(tmp_path / "b" / "events.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_bad_scenario_exits_2_with_one_message(tmp_path):
    """A scenario with a typo exits with status 2 and a single message, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        Path(BASELINE).read_text().replace("consideration = 0.55", "considration = 0.55")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "run", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": ""},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "considration" in lines[0] and "did you mean" in lines[0]


@pytest.mark.parametrize(
    "args,words",
    [
        (["run", "missing.toml"], "file not found"),
        (["run", str(SCENARIOS / "subscription.toml"), "--customers", "10"], "rate_per_day"),
        (["run", BASELINE, "--replications", "0"], "replications must be"),
    ],
)
def test_usage_errors_exit_2(args, words, capsys):
    """Missing files and impossible options exit with 2 and say why."""
    assert main(args) == 2
    assert words in capsys.readouterr().err


def test_validate_and_expected(capsys):
    """`sim validate` confirms a good file; `sim expected` prints exact conversion and reach."""
    assert main(["validate", BASELINE]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["expected", BASELINE]) == 0
    out = capsys.readouterr().out
    assert "conversion" in out and "Reach" in out and "bargain_hunter" in out


def test_compare_prints_and_writes_the_table(tmp_path, capsys):
    """`sim compare` prints differences from the first file and writes them under --out."""
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            BASELINE,
            str(SCENARIOS / "discount.toml"),
            str(SCENARIOS / "loyalty.toml"),
            "-r",
            "3",
            "--seed",
            "1",
            "--customers",
            "800",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "against 'baseline'" in text and "loyalty" in text and "roi" in text
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["scenario"]) == {"baseline", "discount", "loyalty"}
    assert {"diff_vs_baseline", "p_adjusted"} <= set(table.columns)
    assert (out / "roi.csv").exists() and json.loads((out / "run.json").read_text())["seed"] == 1
    # the Holm-adjusted p-values printed (key metrics) are those written (every metric)
    printed = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) > 2 and words[0] == "conversion" and words[1] in ("discount", "loyalty"):
            printed[words[1]] = float(words[-1])
    written = table.query("persona == 'all' and metric == 'conversion'").set_index("scenario")
    for name, p in printed.items():
        assert p == float(f"{written.loc[name, 'p_adjusted']:.3g}"), name
    assert len(printed) == 2


def test_compare_with_a_bad_file_exits_2(write_toml, capsys):
    """A broken variant stops the comparison with one clear message."""
    bad = write_toml('[scenario]\nname = "v"\nextends = "missing.toml"\n')
    assert main(["compare", BASELINE, str(bad)]) == 2
    assert "extends 'missing.toml'" in capsys.readouterr().err


def test_the_discount_depth_script_runs():
    """The analyst's sweep script runs as documented (small sizes), warnings as errors."""
    script = SCENARIOS / "what_if_discount_depth.py"
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(script), "--replications", "3", "--customers", "400"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "30% off" in proc.stdout and "Most profitable depth" in proc.stdout


def test_run_reports_intervention_costs(capsys):
    """Running a variant prints what each intervention reached and cost."""
    assert main(["run", str(SCENARIOS / "discount.toml"), "--customers", "600"]) == 0
    text = capsys.readouterr().out
    assert "Interventions (mean per replication)" in text and "launch_discount" in text


def test_an_engine_refusal_names_the_option_not_the_python_argument(capsys):
    """--engine vectorised on customers who interact: one line whose fix is the command
    line's --engine auto, while Python keeps engine='auto'."""
    path = SCENARIOS / "referral_programme.toml"
    assert main(["run", str(path), "--engine", "vectorised"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: {path}")
    assert "--engine auto" in err and "engine='" not in err
    with pytest.raises(sim.ScenarioError, match="engine='auto'"):
        sim.run(sim.load_scenario(path), engine="vectorised")


def test_intervention_rows_add_up_to_their_total():
    """Referral, capacity and credit costs are shown when any row has them, so the printed
    parts of each row add up to its total; columns that are zero everywhere stay out."""
    from sim.cli import _intervention_table

    costs = pd.DataFrame(
        {
            "replication": [0, 1, 0, 1],
            "intervention": ["referral_programme"] * 2 + ["goodwill"] * 2,
            "fixed": [2000.0, 2000.0, 0.0, 0.0],
            "reached": [0, 0, 0, 0],
            "reach_cost": 0.0,
            "purchases": [0, 0, 0, 0],
            "purchase_cost": 0.0,
            "referrals": [1070, 1070, 0, 0],
            "referral_cost": [10700.0, 10700.0, 0.0, 0.0],
            "unit_days": 0.0,
            "capacity_cost": 0.0,
            "credits": [0, 0, 111, 112],
            "credit_cost": [0.0, 0.0, 1110.0, 1120.0],
        }
    )
    costs["total"] = costs[[c for c in costs if c == "fixed" or c.endswith("_cost")]].sum(axis=1)
    table = _intervention_table(costs)
    assert "capacity_cost" not in table.columns and "unit_days" not in table.columns
    parts = [c for c in table.columns if c == "fixed" or c.endswith("_cost")]
    assert "referral_cost" in parts and "credit_cost" in parts
    assert table[parts].sum(axis=1).tolist() == pytest.approx(table["total"].tolist())
    assert table.loc["referral_programme", "total"] == 12700


def test_expected_on_a_market_prints_the_mean_field_curve(capsys):
    """`sim expected` on a scenario with a market prints the labelled adoption curve; on a
    scenario with queues (no market) it exits 2 naming why."""
    assert main(["expected", str(SCENARIOS / "referral_programme.toml")]) == 0
    out = capsys.readouterr().out
    assert "mean-field" in out and "adopted" in out
    path = SCENARIOS / "support_staffing.toml"
    assert main(["expected", str(path)]) == 2
    err = capsys.readouterr().err
    assert "do not affect each other" in err
    # the file is named, and without a market the fix is to simulate (no mean-field curve)
    assert err.startswith(f"error: {path}") and len(err.strip().splitlines()) == 1
    assert f"sim run {path}" in err and "expected_adoption" not in err


def test_expected_says_what_python_says_about_a_market(capsys):
    """`sim expected` and `sim.expected` agree on a scenario with a market: the CLI prints the
    refusal `sim.expected` raises, word for word, before the mean-field curve it points to; the
    curve counts the advocates making referrals (not 0 as when only word-of-mouth stages were
    counted)."""
    import sim

    path = SCENARIOS / "referral_programme.toml"
    with pytest.raises(sim.ScenarioError) as refusal:
        sim.expected(sim.load_scenario(path))
    assert main(["expected", str(path)]) == 0
    out = capsys.readouterr().out
    assert refusal.value.problem in out and "sim.expected_adoption" in out
    last = out.strip().splitlines()[-1].split()
    header = next(line for line in out.splitlines() if line.strip().startswith("day")).split()
    assert float(last[header.index("referrers")]) > 10
