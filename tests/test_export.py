"""Event logs out: process logs for process-mining tools, transactions for customer-value
libraries, and ``sim export`` on a run directory or a real event file."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import sim
from sim.cli import main
from tests.validation import SCENARIOS

START = "2025-03-01"


@pytest.fixture(scope="module")
def result() -> sim.RunResult:
    """Two replications of the baseline (300 customers) starting on a calendar date."""
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(300)
    return sim.run(scenario.replace(start_date=START), replications=2, seed=3)


def test_a_process_log_has_what_process_mining_tools_read(result):
    """Columns with the XES names (case, activity, timestamp) and types a process-mining tool
    requires: text case ids unique across replications, text activities, datetimes without
    gaps; every case's events in time order; one row per event."""
    log = result.log
    frame = log.to_process_log()
    assert list(frame.columns) == [
        "case:concept:name",
        "concept:name",
        "time:timestamp",
        "persona",
        "channel",
        "value",
        "replication",
    ]
    assert len(frame) == len(log)
    assert pd.api.types.is_string_dtype(frame["case:concept:name"])
    assert pd.api.types.is_string_dtype(frame["concept:name"])
    assert pd.api.types.is_datetime64_dtype(frame["time:timestamp"])
    assert not frame[["case:concept:name", "concept:name", "time:timestamp"]].isna().any().any()
    assert frame["case:concept:name"].nunique() == log.customers.sum() == 600
    assert frame["time:timestamp"].min() == pd.Timestamp(START)  # the scenario's start_date
    by_case = frame.groupby("case:concept:name", sort=False)["time:timestamp"]
    assert by_case.apply(lambda t: t.is_monotonic_increasing).all()
    assert set(frame["concept:name"]) <= set(log.stages)


def test_a_process_miner_discovers_the_moves_of_the_log(result):
    """What process discovery computes first, the directly-follows counts (case by case, in
    timestamp order), equals the moves the log records, stage pair by stage pair."""
    log = result.log
    frame = log.to_process_log()
    ordered = frame.sort_values(["case:concept:name", "time:timestamp"], kind="stable")
    follows = ordered.groupby("case:concept:name", sort=False)["concept:name"].shift()
    pairs = pd.DataFrame({"a": follows, "b": ordered["concept:name"]}).dropna().value_counts()
    moves = log.from_stage >= 0
    names = np.array(log.stages)
    expected = (
        pd.DataFrame({"a": names[log.from_stage[moves]], "b": names[log.to_stage[moves]]})
        .value_counts()
        .sort_index()
    )
    pd.testing.assert_series_equal(pairs.sort_index(), expected)


def test_start_can_be_given_with_a_time_zone_and_is_required_without_a_start_date(result):
    """start= overrides the log's start date (with a zone, timestamps carry it); a log with
    neither refuses, naming the fix."""
    frame = result.log.to_process_log(start="2025-01-01T00:00:00+02:00")
    assert str(frame["time:timestamp"].dt.tz) == "UTC+02:00"
    undated = sim.run(sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(5)).log
    with pytest.raises(sim.EventLogError, match="start: no calendar date for day 0"):
        undated.to_transactions()


def test_transactions_are_one_row_per_purchase(result):
    """customer_id, date, value: one row per purchase with its value, ids as in the process
    log."""
    log = result.log
    trans = log.to_transactions()
    assert list(trans.columns) == ["customer_id", "date", "value"]
    purchases = log.purchase_mask[log.to_stage]
    assert len(trans) == purchases.sum()
    assert trans["value"].sum() == pytest.approx(log.value.sum())
    assert set(trans["customer_id"]) <= set(log.to_process_log()["case:concept:name"])


def test_a_customer_value_library_reads_the_transactions(result):
    """lifetimes (MIT, a consumer in the test extras) turns the export into its RFM table:
    one row per purchaser, with frequency = distinct purchase days - 1, as counted here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes sets a pandas option deprecated in 3.0
        from lifetimes.utils import summary_data_from_transaction_data
    trans = result.log.to_transactions()
    end = pd.Timestamp(START) + pd.Timedelta(days=365)
    rfm = summary_data_from_transaction_data(
        trans, "customer_id", "date", monetary_value_col="value", observation_period_end=end
    )
    days = trans.assign(day=trans["date"].dt.floor("D")).groupby("customer_id")["day"].nunique()
    assert len(rfm) == len(days) == trans["customer_id"].nunique()
    pd.testing.assert_series_equal(
        rfm["frequency"].sort_index(), (days - 1).astype(float).sort_index(), check_names=False
    )
    assert (rfm["recency"] <= rfm["T"]).all() and (rfm["monetary_value"] >= 0).all()


# -- sim export ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A `sim run --out` directory of a dated scenario."""
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml").replace(start_date=START)
    path = tmp_path_factory.mktemp("runs") / "dated.toml"
    sim.save_scenario(scenario, path)
    out = path.parent / "out"
    assert main(["run", str(path), "--customers", "200", "-r", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("kind,suffix", [("process", ".csv"), ("transactions", ".parquet")])
def test_sim_export_writes_a_run_directory(run_dir, tmp_path, capsys, kind, suffix):
    """`sim export OUT --to process|transactions -o FILE` writes what the log methods give."""
    target = tmp_path / f"export{suffix}"
    capsys.readouterr()
    assert main(["export", str(run_dir), "--to", kind, "-o", str(target)]) == 0
    assert "Wrote" in capsys.readouterr().out
    frame = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    log = sim.io.read_run_events(run_dir)
    expected = log.to_process_log() if kind == "process" else log.to_transactions()
    assert len(frame) == len(expected) and list(frame.columns) == list(expected.columns)
    assert log.customers.tolist() == [200, 200]


def test_sim_export_reads_a_real_event_file_and_reports_skipped_rows(tmp_path, capsys):
    """An event file with column options; bad rows refused (exit 2, one line), or skipped
    with --errors skip and counted on stderr."""
    events = tmp_path / "crm.csv"
    events.write_text(
        "user,ts,event,amount\n"
        "a,2025-01-01 10:00,visit,\n"
        "a,2025-01-02 10:00,order,12.5\n"
        "b,2025-01-03 10:00,visti,\n"
        "b,2025-01-04 10:00,visit,\n"
    )
    stages = tmp_path / "stages.toml"
    stages.write_text('visit = "awareness"\norder = "purchase"\n')
    target = tmp_path / "out.csv"
    args = ["export", str(events), "--customer", "user", "--time", "ts", "--stage", "event"]
    args += ["--value", "amount", "--stages", str(stages), "--to", "process", "-o", str(target)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 unknown event in column 'event': line 4 ('visti')" in err
    assert main([*args, "--errors", "skip"]) == 0
    captured = capsys.readouterr()
    assert "Skipped rows: 1 unknown event" in captured.err
    frame = pd.read_csv(target)
    assert frame["concept:name"].tolist() == ["awareness", "purchase", "awareness"]
    assert frame["time:timestamp"].iloc[0] == "2025-01-01 10:00:00"


@pytest.mark.parametrize(
    "extra,words",
    [
        (["-o", "x.xlsx"], "--output: cannot write x.xlsx"),
        (["-o", "x.csv", "--customer", "c"], "an event file needs --time, --stage"),
        (["-o", "."], "is a folder; name a file in it, e.g. -o events.csv"),
    ],
)
def test_sim_export_explains_bad_arguments(tmp_path, capsys, extra, words):
    """A format it cannot write, or an event file without its columns: exit 2, one line."""
    events = tmp_path / "e.csv"
    events.write_text("c,t,s\n1,2025-01-01,a\n")
    assert main(["export", str(events), "--to", "process", *extra]) == 2
    assert words in capsys.readouterr().err


def test_sim_export_of_an_undated_run_asks_for_a_start(tmp_path, capsys):
    """A run whose scenario has no start_date needs --start; with it, the export is dated."""
    out = tmp_path / "run"
    main(["run", str(SCENARIOS / "baseline.toml"), "--customers", "200", "--out", str(out)])
    target = tmp_path / "t.csv"
    assert main(["export", str(out), "--to", "transactions", "-o", str(target)]) == 2
    assert "add --start 2025-01-01" in capsys.readouterr().err  # an option, not a keyword
    assert main(["export", str(out), "--to", "process", "-o", str(target), "--start", START]) == 0
    assert pd.Timestamp(pd.read_csv(target)["time:timestamp"].iloc[0]) == pd.Timestamp(START)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_of_a_streamed_run_is_the_export_of_the_run_held_in_memory(
    tmp_path, monkeypatch, capsys, suffix
):
    """`sim export` of a run directory whose event log was streamed (chunks of 700 of 2,000
    customers, 2 replications) writes, chunk by chunk, the same transactions and process log
    rows as the same run held in memory (order aside: a streamed log is in order within each
    chunk). The twin: another seed gives other rows."""
    from sim.run import streaming

    args = ["run", str(SCENARIOS / "baseline.toml"), "--customers", "2000", "-r", "2"]
    assert main([*args, "--out", str(tmp_path / "mem")]) == 0
    assert main([*args, "--seed", "8", "--out", str(tmp_path / "other")]) == 0
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 2**20)
    monkeypatch.setattr(streaming, "CHUNK_CUSTOMERS", 700)
    assert main([*args, "--out", str(tmp_path / "big")]) == 0
    assert (tmp_path / "big" / "events" / "_log.json").is_file()
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv

    def exported(run: str, to: str) -> pd.DataFrame:
        out = tmp_path / f"{run}-{to}{suffix}"
        assert (
            main(["export", str(tmp_path / run), "--to", to, "-o", str(out), "--start", START]) == 0
        )
        frame = read(out).astype(str)
        return frame.sort_values(list(frame.columns)).reset_index(drop=True)

    capsys.readouterr()
    for to in ("transactions", "process"):
        pd.testing.assert_frame_equal(exported("big", to), exported("mem", to))
    assert not exported("other", "transactions").equals(exported("mem", "transactions"))
    # the run's own files, its streamed parts included, are never written over
    part = tmp_path / "big" / "events" / "part-r00000-c0000000000.parquet"
    before = part.read_bytes()
    export = ["export", str(tmp_path / "big"), "--to", "process", "--start", START, "-o"]
    assert main([*export, str(part)]) == 2
    assert "one of the files the run" in capsys.readouterr().err
    assert part.read_bytes() == before
    # a part that is not one (replaced by hand) is one line, not a traceback
    pd.DataFrame({"x": [1]}).to_parquet(part)
    assert main([*export, str(tmp_path / f"x{suffix}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a part of this streamed event log" in err[0]
