"""``sim fit`` and ``sim check`` on an analyst's export, and the reader behind them.

The exports are written from a simulated log the way a shop's systems would: dates as text,
no 'post_purchase' or 'churned' rows (nobody records waiting or silent churn).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.calibrate.table import read_table
from sim.cli import main
from tests.test_calibrate import NEVER_AGAIN, truth

STAGE_MAP = """
stages = ["awareness", "consideration", "purchase", "post_purchase", "lost", "churned"]
purchase = ["purchase"]
ends = ["lost", "churned"]
between_purchases = "post_purchase"
edges = [["post_purchase", "churned"]]
"""


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, str]:
    """events.csv (stage labels, revenue, segment), orders.csv (customer, date, amount) and
    the stage map, from one simulated log."""
    folder = tmp_path_factory.mktemp("exports")
    log = sim.run(truth(size=1500), seed=4).log
    f = log.to_frame()
    f = f[~f["to_stage"].isin(["churned", "post_purchase"])]
    stamp = pd.Timestamp("2025-01-01") + pd.to_timedelta(f["time"], unit="D")
    events = pd.DataFrame(
        {
            "user_id": f["customer"] + 1000,
            "timestamp": stamp.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "event": f["to_stage"].astype(str),
            "revenue": f["value"].round(2),
            "segment": f["persona"].astype(str),
        }
    )
    paths = {
        "events": str(folder / "events.csv"),
        "orders": str(folder / "orders.csv"),
        "map": str(folder / "stages.toml"),
    }
    events.to_csv(paths["events"], index=False)
    orders = events[events["event"] == "purchase"][["user_id", "timestamp", "revenue"]]
    orders.to_csv(paths["orders"], index=False)
    with open(paths["map"], "w") as fh:
        fh.write(STAGE_MAP)
    return paths


def test_transaction_log_alone_fits_the_purchase_loop(exports, tmp_path, capsys):
    """customer, date, amount: the fit finds the Weibull gap between orders and the share
    who never order again (within 4 SE of the truth), and writes a scenario that loads."""
    out = tmp_path / "orders.toml"
    args = ["fit", exports["orders"], "--customer", "user_id", "--time", "timestamp"]
    assert main([*args, "--value", "revenue", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "weibull" in printed
    scenario = sim.load_scenario(out)
    assert scenario.journey.names == ("purchase", "post_purchase", "churned")
    summary = pd.read_csv(tmp_path / "orders_summary.csv")
    row = summary[(summary["part"] == "transition") & (summary["what"] == "to churned")].iloc[0]
    se = (row["ci_high"] - row["ci_low"]) / (2 * 1.96)
    assert abs(row["estimate"] - NEVER_AGAIN) <= 4 * se
    assert scenario.journey.stage("post_purchase").dwell.family == "weibull"
    # one group of customers is not called "all", which labels the tables' overall row
    assert scenario.persona_names == ("customers",)
    result = sim.run(scenario.replace(acquisition=sim.Cohort(size=50)), replications=2, seed=1)
    funnel = result.funnel()
    assert len(funnel[funnel["persona"] == "all"]) == len(funnel[funnel["persona"] == "customers"])


def test_fit_then_check_with_stage_map_and_segments(exports, tmp_path, capsys):
    """The whole route: fit a stage log with segments, then check it on the same data: the
    check passes, and writes the HTML report with its table as CSV beside it."""
    fitted = tmp_path / "fitted.toml"
    cols = ["--customer", "user_id", "--time", "timestamp", "--stage", "event"]
    cols += ["--value", "revenue", "--segment", "segment", "--map", exports["map"]]
    assert main(["fit", exports["events"], *cols, "-o", str(fitted)]) == 0
    scenario = sim.load_scenario(fitted)
    assert sorted(scenario.persona_names) == ["bargain", "casual", "loyal"]
    report = tmp_path / "out" / "fit_report.html"
    code = main(["check", str(fitted), exports["events"], *cols, "-r", "8", "-o", str(report)])
    assert code == 0
    assert "CheckResult(passes" in capsys.readouterr().out
    table = pd.read_csv(report.with_suffix(".csv"))
    assert set(table["measure"]) == {
        "reached stage",
        "purchases per customer",
        "purchases in week",
        "buying again at day",
    }
    assert table["ok"].all()
    assert "<img" in report.read_text()


def test_check_from_a_date_counts_only_the_later_purchases(exports, tmp_path):
    """Fit with --until, check with --from the same day: only whole weeks from then on are
    compared. (The predictive intervals leave out the fit's own uncertainty, so an
    out-of-sample check on a smaller fit is stricter than one on the training data.)"""
    fitted = tmp_path / "early.toml"
    cols = ["--customer", "user_id", "--time", "timestamp", "--value", "revenue"]
    assert main(["fit", exports["orders"], *cols, "--until", "2025-04-01", "-o", str(fitted)]) == 0
    report = tmp_path / "late.html"
    assert main(["check", str(fitted), exports["orders"], *cols, "--from", "2025-04-01",
                 "-r", "8", "-o", str(report)]) == 0  # fmt: skip
    table = pd.read_csv(report.with_suffix(".csv"))
    weeks = table[table["measure"] == "purchases in week"]["item"].astype(int)
    assert weeks.min() == 90 // 7
    assert weeks.max() == 196 // 7 - 1
    assert table["ok"].mean() >= 0.8


def test_reader_merges_orders_at_the_same_time_and_says_so(tmp_path):
    """Two rows of one customer on one day are one order with the summed amount; the log's
    ``skipped`` counts the merge, and a later order becomes a repeat purchase."""
    path = tmp_path / "orders.csv"
    pd.DataFrame(
        {
            "c": ["a", "a", "a", "b"],
            "d": ["2025-01-01", "2025-01-01", "2025-01-11", "2025-01-03"],
            "v": [10.0, 5.0, 7.0, 3.0],
        }
    ).to_csv(path, index=False)
    log = read_table(path, customer="c", time="d", value="v")
    assert log.skipped == {"purchases at the same time merged into one order": 1}
    frame = log.to_frame()
    orders = frame[frame["to_stage"] == "purchase"]
    assert sorted(orders["value"]) == [3.0, 7.0, 15.0]
    assert log.start_date == "2025-01-01"
    assert log.horizon_days == 10.0
    repeat = frame[(frame["from_stage"] == "post_purchase") & (frame["to_stage"] == "purchase")]
    assert repeat["time"].tolist() == [10.0]


def test_reader_and_fit_errors_exit_2_with_one_line(exports, tmp_path, capsys):
    """Bad input gives exit status 2 and one line naming the column or stage and the fix."""
    base = ["fit", exports["orders"], "--time", "timestamp", "-o", str(tmp_path / "x.toml")]
    assert main([*base, "--customer", "nope"]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) 'nope' (customer); give --customer naming" in err
    assert err.count("\n") == 1
    one = tmp_path / "one.csv"
    pd.DataFrame({"c": [1, 1], "d": ["2025-01-01", "2025-02-01"]}).to_csv(one, index=False)
    assert main(["fit", str(one), "--customer", "c", "--time", "d", "-o", "x.toml"]) == 2
    assert "single customer" in capsys.readouterr().err
    bad_time = tmp_path / "bad_time.csv"
    pd.DataFrame({"c": [1, 2], "d": ["2025-01-01", "soon"]}).to_csv(bad_time, index=False)
    assert main(["fit", str(bad_time), "--customer", "c", "--time", "d", "-o", "x.toml"]) == 2
    assert "1 unparseable time in column 'd': line 3 ('soon')" in capsys.readouterr().err
    events = ["fit", exports["events"], "--customer", "user_id", "--time", "timestamp"]
    bad_map = tmp_path / "map.toml"
    bad_map.write_text('stages = ["awareness", "purchase"]\npurchase = ["purchase"]\n')
    assert main([*events, "--stage", "event", "--map", str(bad_map), "-o", "x.toml"]) == 2
    err = capsys.readouterr().err
    assert "unknown event in column 'event'" in err and "('consideration')" in err
    assert "map every event name to a stage in --map" in err


def test_same_fit_from_python_and_from_the_file(exports):
    """``read_table`` + ``Calibrator`` give what the CLI writes: the never-again share is a
    number (never NaN) and the fitted scenario runs."""
    log = read_table(exports["orders"], customer="user_id", time="timestamp", value="revenue")
    fit = sim.Calibrator().fit(log)
    share = fit.never_again_["share"].iloc[0]
    assert math.isfinite(share) and 0 < share < 1
    assert len(sim.run(fit.scenario_.with_customers(100), seed=1).log) >= 100


def test_fit_with_latent_personas(exports, tmp_path, capsys):
    """``--personas 2`` finds two segments in a transaction log and names them; a word that
    is neither 'auto' nor a number is refused with exit status 2."""
    out = tmp_path / "segments.toml"
    args = ["fit", exports["orders"], "--customer", "user_id", "--time", "timestamp"]
    assert main([*args, "--value", "revenue", "--personas", "2", "-o", str(out)]) == 0
    assert "Latent personas" in capsys.readouterr().out
    assert sim.load_scenario(out).persona_names == ("segment_1", "segment_2")
    assert main([*args, "--personas", "many", "-o", str(out)]) == 2
    assert "--personas must be 'auto' or a number" in capsys.readouterr().err


def test_the_documented_stage_map_reads_and_a_top_level_label_shows_the_format(tmp_path):
    """The stage map in docs/scenario-format.md reads as shown; a label written at the top
    level (outside [labels]) is refused with the map's format and the file's name."""
    from sim.calibrate.table import _stage_map

    doc = (Path(__file__).parent.parent / "docs" / "scenario-format.md").read_text("utf-8")
    block = re.search(r"```toml stage-map\n(.*?)```", doc, re.S).group(1)
    good = tmp_path / "good.toml"
    good.write_text(block)
    spec = _stage_map(good)
    assert spec["labels"]["page_view"] == "visit" and spec["between_purchases"] == "post_purchase"
    bad = tmp_path / "bad.toml"
    bad.write_text('visit = "awareness"\n')
    with pytest.raises(sim.EventLogError) as info:
        _stage_map(bad)
    message = str(info.value)
    assert message.startswith(str(bad)) and "unknown key 'visit'" in message
    assert "[labels] visit = " in message and "stages = [...]" in message


def test_fit_refusals_name_the_data_file_or_the_map(tmp_path, capsys):
    """One customer's data: the one-line error names the data file; a stage map without a
    purchase stage: it names the map file."""
    one = tmp_path / "one.csv"
    one.write_text("user,when,event\n1,2025-01-01,visit\n1,2025-01-05,purchase\n")
    cols = ["--customer", "user", "--time", "when", "--stage", "event"]
    assert main(["fit", str(one), *cols, "-o", str(tmp_path / "f.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {one}: customer") and "single customer" in err
    data = tmp_path / "two.csv"
    data.write_text(
        "user,when,event\n1,2025-01-01,visit\n1,2025-01-05,buy\n"
        "2,2025-01-02,visit\n2,2025-01-09,lost\n"
    )
    stage_map = tmp_path / "stages.toml"
    stage_map.write_text('stages = ["visit", "buy", "lost"]\npurchase = []\nends = ["lost"]\n')
    args = ["fit", str(data), *cols, "--map", str(stage_map), "-o", str(tmp_path / "f.toml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {stage_map}: stage map") and len(err.splitlines()) == 1
