"""Reading real event exports: mapping, time zones, censoring, and a clear word on bad rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sim
from sim.events import ENTRY
from sim.io.event_files import REASONS

HEADER = "user_id,timestamp,event,revenue,segment,source\n"
GOOD = [
    "u1,2025-01-01T09:00:00,signup,,smb,ads",
    "u2,2025-01-02T12:00:00,signup,,enterprise,organic",
    "u1,2025-01-03T10:00:00,trial_start,,smb,ads",
    "u2,2025-01-04T12:00:00,trial_start,,enterprise,organic",
    "u1,2025-01-10T10:00:00,order,49.5,smb,ads",
    "u2,2025-01-11T00:00:00,cancel,,enterprise,organic",
    "u1,2025-02-10T10:00:00,order,20,smb,ads",
]
STAGES = {
    "signup": "awareness",
    "trial_start": "consideration",
    "order": "purchase",
    "cancel": "lost",
}
COLUMNS = dict(
    customer="user_id",
    time="timestamp",
    stage="event",
    value="revenue",
    persona="segment",
    channel="source",
    stages=STAGES,
)


def write(tmp_path, lines, name="crm.csv"):
    """A CSV export with the usual header and these data lines."""
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


def test_a_crm_export_becomes_a_log_in_days(tmp_path):
    """Rows become entries and chained moves, times days since the first event, values on
    purchases; stages in the order of the map; persona and channel from the columns."""
    log = sim.read_events(write(tmp_path, GOOD), **COLUMNS)
    assert log.stages == ("awareness", "consideration", "purchase", "lost")
    assert log.purchase_stages == (False, False, True, False)
    assert log.end_stages == (False, False, False, True)  # 'lost' is an end by name
    assert log.customers.tolist() == [2]
    assert log.start_date == "2025-01-01T09:00:00"  # no zone in the data, none added
    assert log.time[0] == 0 and log.horizon_days == pytest.approx(40 + 1 / 24)
    frame = log.to_frame()
    u1 = frame[frame.customer == 0]
    assert u1.to_stage.tolist() == ["awareness", "consideration", "purchase", "purchase"]
    assert u1.from_stage.isna().tolist() == [True, False, False, False]
    assert u1.value.tolist() == [0, 0, 49.5, 20]
    assert log.personas == ("enterprise", "smb") and log.channels == ("ads", "organic")
    assert log.skipped == {}


def test_customers_not_at_an_end_are_censored_at_the_end_of_the_data(tmp_path):
    """u1 (still buying) is active at the end of the data, or at end= when given; u2 (who
    cancelled) has ended. Nobody still active counts as lost."""
    path = write(tmp_path, GOOD)
    log = sim.read_events(path, **COLUMNS, start="2025-01-01", end="2025-03-01")
    table = sim.analysis.customer_table(log)
    assert table.ended.tolist() == [False, True]
    assert log.horizon_days == 59
    assert log.start_date == "2025-01-01"
    curve = sim.analysis.retention(log, by=None)
    assert curve.survival.min() == 1  # the only purchaser is censored, never lost
    funnel = sim.analysis.funnel(log, by=None).set_index("stage")
    assert funnel.loc["lost", "customers"] == 1


def test_events_after_end_are_left_out_and_counted(tmp_path):
    """end= cuts the log: later events are counted in log.skipped as 'after end'."""
    log = sim.read_events(write(tmp_path, GOOD), **COLUMNS, end="2025-01-31")
    assert log.skipped == {"after end": 1}
    assert log.horizon_days == pytest.approx(30 - 9 / 24)


def test_time_zones_are_honoured(tmp_path):
    """Timestamps with offsets are compared as instants: 10:00+02:00 is 08:00 UTC, an hour
    before 09:00 UTC; mixed text forms parse."""
    lines = [
        "a,2025-01-01T09:00:00Z,signup,,x,y",
        "b,2025-01-01T10:00:00+02:00,signup,,x,y",
        "b,2025-01-02 10:00:00+02:00,order,5,x,y",
    ]
    log = sim.read_events(write(tmp_path, lines), **COLUMNS)
    assert log.time.tolist() == pytest.approx([0, 1 / 24, 1])
    assert log.customer.tolist() == [0, 1, 0]  # b entered first


def test_a_dataframe_with_datetime_columns_and_a_parquet_file_read_alike(tmp_path):
    """A DataFrame with datetime values (naive or tz-aware) and the same data in Parquet
    give the same log as the CSV."""
    path = write(tmp_path, GOOD)
    from_csv = sim.read_events(path, **COLUMNS)
    frame = pd.read_csv(path)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    from_frame = sim.read_events(frame, **COLUMNS)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("Europe/Paris")
    frame.to_parquet(tmp_path / "crm.parquet")
    from_parquet = sim.read_events(tmp_path / "crm.parquet", **COLUMNS)
    for log in (from_frame, from_parquet):
        pd.testing.assert_frame_equal(log.to_frame(), from_csv.to_frame())


def test_a_toml_stage_map_and_ignored_events(tmp_path):
    """The stage map may be a TOML file; an event mapped to '' is left out and counted."""
    stages = tmp_path / "stages.toml"
    stages.write_text(
        'signup = "awareness"\ntrial_start = "consideration"\norder = "purchase"\n'
        'cancel = "lost"\nnewsletter = ""\n'
    )
    lines = [*GOOD, "u1,2025-02-11T10:00:00,newsletter,,smb,ads"]
    log = sim.read_events(write(tmp_path, lines), **{**COLUMNS, "stages": stages})
    assert log.skipped == {"ignored event": 1}
    stages.write_text("signup = 3\n")
    with pytest.raises(sim.EventLogError, match=r"stages.toml: stages: event 'signup' maps to 3"):
        sim.read_events(write(tmp_path, lines), **{**COLUMNS, "stages": stages})


def test_a_journey_gives_stages_flags_and_moves(tmp_path, baseline):
    """With a scenario, its stages, purchase and end flags and personas come along; moves
    the data makes beyond the journey (skipping a stage) are kept as edges."""
    log = sim.read_events(write(tmp_path, GOOD), **COLUMNS, journey=baseline)
    assert log.stages == baseline.journey.names
    assert log.personas[:3] == baseline.persona_names  # then the data's own segments
    assert set(log.personas[3:]) == {"enterprise", "smb"}
    code = baseline.journey.index
    assert (code("consideration"), code("purchase")) in log.edges  # skips intent
    assert (code("purchase"), code("purchase")) in log.edges
    with pytest.raises(sim.EventLogError, match="'cart', which the journey does not have"):
        sim.read_events(
            write(tmp_path, GOOD),
            **{**COLUMNS, "stages": {**STAGES, "x": "cart"}},
            journey=baseline,
        )


def test_purchase_and_end_stages_can_be_named(tmp_path):
    """purchase_stages / end_stages override the defaults; an unknown name is refused."""
    log = sim.read_events(
        write(tmp_path, GOOD), **COLUMNS, purchase_stages=["purchase"], end_stages=[]
    )
    assert log.end_stages == (False,) * 4
    with pytest.raises(sim.EventLogError, match=r"unknown stage 'purchased'.*did you mean"):
        sim.read_events(write(tmp_path, GOOD), **COLUMNS, purchase_stages=["purchased"])


def test_numeric_times_are_days(tmp_path):
    """A numeric time column is read as days (from 0, or from start=)."""
    frame = pd.DataFrame({"who": [1, 1, 2], "day": [0.5, 2.0, 1.0], "what": ["a", "b", "a"]})
    log = sim.read_events(frame, customer="who", time="day", stage="what")
    assert log.time.tolist() == [0.5, 1.0, 2.0]
    assert log.from_stage.tolist() == [ENTRY, ENTRY, 0]
    log = sim.read_events(frame, customer="who", time="day", stage="what", start=0.5, end=10)
    assert log.time.tolist() == [0, 0.5, 1.5] and log.horizon_days == 9.5


# -- bad input: one error naming file, column, rows and values -----------------------------

BAD_ROWS = [
    # (reason, the bad line, what the message must say)
    ("missing customer", ",2025-01-05T00:00:00,signup,,smb,ads", "line 9 (nan)"),
    ("unparseable time", "u3,the fifth of Jan,signup,,smb,ads", "line 9 ('the fifth of Jan')"),
    ("unknown event", "u3,2025-01-05T00:00:00,sigup,,smb,ads", "line 9 ('sigup')"),
    ("unparseable value", "u1,2025-03-01T00:00:00,order,12 EUR,smb,ads", "line 9 ('12 EUR')"),
    ("negative value", "u1,2025-03-01T00:00:00,order,-3,smb,ads", "line 9 (-3.0)"),
    ("duplicate", GOOD[-1], "line 9 ('u1')"),
    ("value not on a purchase", "u3,2025-01-05T00:00:00,signup,7,smb,ads", "line 9 (7.0)"),
    ("out of time order", "u1,2025-01-02T00:00:00,order,1,smb,ads", "line 9 ('2025-01-02T00"),
    ("after an end stage", "u2,2025-01-20T00:00:00,order,5,smb,ads", "line 9 ('order')"),
]


@pytest.mark.parametrize("reason,line,shown", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_each_bad_row_is_named_with_its_line_value_file_and_column(tmp_path, reason, line, shown):
    """One bad line among good ones: the error names the file, the column, the reason, the
    line number and the value; with errors='skip' the row is counted and the rest is read."""
    path = write(tmp_path, [*GOOD, line])
    with pytest.raises(sim.EventLogError) as info:
        sim.read_events(path, **COLUMNS)
    message = str(info.value)
    assert message.startswith(f"{path}: column '")
    assert f"1 bad row(s): 1 {reason} in column '" in message
    assert shown in message
    assert 'errors="skip"' in message
    log = sim.read_events(path, **COLUMNS, errors="skip")
    assert log.skipped == {reason: 1}
    assert len(log) == len(GOOD)


def test_the_error_lists_the_first_rows_and_counts_the_rest(tmp_path):
    """Many bad rows of several kinds: per reason, the count and the first five lines."""
    lines = GOOD + [f"u9,2025-01-0{i}T00:00:00,oops{i},,smb,ads" for i in range(1, 8)]
    lines.append("u8,yesterday,signup,,smb,ads")
    with pytest.raises(sim.EventLogError) as info:
        sim.read_events(write(tmp_path, lines), **COLUMNS)
    message = str(info.value)
    assert (
        "8 bad row(s): 1 unparseable time in column 'timestamp': line 16 ('yesterday');" in message
    )
    assert "7 unknown event in column 'event': line 9 ('oops1'), line 10" in message
    assert "line 13 ('oops5') and 2 more" in message
    assert message.startswith(f"{tmp_path / 'crm.csv'}: column 'timestamp'")


def test_a_row_counts_under_its_first_reason_only():
    """A row both unknown and negative counts once; skipped counts add up to the rows left
    out, and every reason has a place in REASONS."""
    frame = pd.DataFrame(
        {
            "c": ["a", "a", "b", "b"],
            "t": ["2025-01-01", "2025-01-02", "2025-01-01", "2025-01-03"],
            "e": ["purchase", "nope", "purchase", "purchase"],
            "v": [1.0, -1.0, -2.0, 3.0],
        }
    )
    log = sim.read_events(
        frame,
        customer="c",
        time="t",
        stage="e",
        value="v",
        stages={"purchase": "purchase"},
        errors="skip",
    )
    assert log.skipped == {"unknown event": 1, "negative value": 1}
    assert set(log.skipped) <= set(REASONS)
    assert len(log) == 2


def test_missing_columns_are_named_with_those_present(tmp_path):
    """A misspelt column: the error names it, the role it plays, and the columns there are."""
    with pytest.raises(sim.EventLogError) as info:
        sim.read_events(write(tmp_path, GOOD), **{**COLUMNS, "value": "amount"})
    assert str(info.value) == (
        f"{tmp_path / 'crm.csv'}: column 'amount': missing column(s) 'amount' (value); pass "
        "value= naming one of the columns present: 'user_id', 'timestamp', 'event', "
        "'revenue', 'segment', 'source'"
    )


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"errors": "ignore"}, "errors must be 'raise' or 'skip'"),
        ({"start": "not a date"}, "start='not a date' is not a date"),
        ({"start": "2025-01-02"}, "before start in column 'timestamp': line 2"),
    ],
)
def test_bad_arguments_are_explained(tmp_path, kwargs, words):
    """Wrong errors=, an unreadable start, events before start: each gets its message."""
    with pytest.raises(sim.EventLogError, match=words):
        sim.read_events(write(tmp_path, GOOD), **COLUMNS, **kwargs)


def test_a_missing_file_and_an_empty_result_are_explained(tmp_path):
    """A path that is not there, and a file whose every row is skipped."""
    with pytest.raises(sim.EventLogError, match=r"nothere\.csv: file not found"):
        sim.read_events(tmp_path / "nothere.csv", **COLUMNS)
    path = write(tmp_path, ["u1,2025-01-01,nope,,smb,ads"])
    with pytest.raises(sim.EventLogError, match=r"no events left to read \(of 1 rows\)"):
        sim.read_events(path, **COLUMNS, errors="skip")


def test_reading_is_vectorised_at_scale():
    """50,000 rows of 10,000 customers read into a valid log whose counts match the input
    (a smoke check of the vectorised path; speed itself is measured in benchmarks/)."""
    rng = np.random.default_rng(0)
    n = 10_000
    steps = rng.integers(1, 6, size=n)
    customer = np.repeat(np.arange(n), steps)
    position = np.arange(len(customer)) - np.repeat(np.cumsum(steps) - steps, steps)
    names = np.array(["signup", "trial_start", "order", "order", "cancel"])
    frame = pd.DataFrame(
        {
            "user_id": customer.astype(str),
            "timestamp": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(position * 3 + rng.random(len(customer)), unit="D"),
            "event": names[position],
            "revenue": np.where(names[position] == "order", 10.0, 0.0),
        }
    )
    frame = frame.sample(frac=1, random_state=1).sort_values("timestamp", kind="stable")
    log = sim.read_events(frame, **{**COLUMNS, "persona": None, "channel": None})
    assert log.customers.tolist() == [n] and len(log) == len(frame)
    reached = sim.analysis.funnel(log, by=None).set_index("stage")["customers"]
    assert reached["consideration"] == (steps >= 2).sum()
    assert reached["lost"] == (steps == 5).sum()


# -- the README's section runs as written ---------------------------------------------------


def crm_export(path, bad: dict[int, str] | None = None):
    """A small CRM export; ``bad`` puts other event names on some lines."""
    events = ["signup", "trial_start", "order", "order", "newsletter", "cancel"]
    rows = []
    for i in range(12):
        user, step = divmod(i, 6)
        event = events[step]
        revenue = "25.0" if event == "order" else ""
        rows.append(f"c{user},2025-01-{1 + 2 * step + user:02d} 09:30:00,{event},{revenue},smb,ads")
    for line, name in (bad or {}).items():
        rows[line - 2] = rows[line - 2].replace(rows[line - 2].split(",")[2], name)
    path.write_text("user_id,timestamp,event,revenue,segment,source\n" + "\n".join(rows) + "\n")
    return path


def test_the_readme_example_runs_and_its_error_is_real(tmp_path, monkeypatch, capsys):
    """The Python block of 'Real event logs in and out' runs on a small export (with one
    replication), and the error it shows is the one two misspelt events produce."""
    import re

    from tests.validation import SCENARIOS

    readme = (SCENARIOS.parent / "README.md").read_text()
    section = readme.split("## Real event logs in and out")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = crm_export(tmp_path / "crm_export.csv")
    code = code.replace('"crm_export.csv"', repr(str(path))).replace(
        "replications=5", "replications=1"
    )
    monkeypatch.chdir(SCENARIOS.parent)
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)
    assert capsys.readouterr().out.strip() == "{'ignored event': 2}"
    assert names["log"].customers.tolist() == [2]
    shown = re.search(r"error: crm_export.csv: (.*)", section).group(1)
    bad = crm_export(tmp_path / "crm_export.csv", {7: "sigup", 12: "trail_start"})
    with pytest.raises(sim.EventLogError) as info:
        sim.read_events(bad, **{**COLUMNS, "stages": names["stages"]}, start="2025-01-01")
    assert str(info.value) == f"{bad}: {shown}"


def test_ignored_events_are_left_out_whatever_else_is_wrong_with_them(tmp_path):
    """An event mapped to '' is ignored even when its time or value would make it a bad row."""
    lines = [*GOOD, "u1,someday,newsletter,-5,smb,ads"]
    log = sim.read_events(
        write(tmp_path, lines), **{**COLUMNS, "stages": {**STAGES, "newsletter": ""}}
    )
    assert log.skipped == {"ignored event": 1} and len(log) == len(GOOD)


def test_sort_rows_reads_a_shuffled_export_as_the_sorted_one_and_names_its_lines(tmp_path):
    """With sort_rows, rows out of time order are put in order (the same log as the sorted
    file), and a bad row is still named by its line in the file; without it they are refused."""
    rows = [
        (c, f"2025-01-{d:02d}", "visit" if k == 0 else "purchase")
        for c in range(20)
        for k, d in enumerate((1 + c % 5, 10 + c % 7))
    ]
    ordered = pd.DataFrame(rows, columns=["user", "when", "event"])
    shuffled = ordered.sample(frac=1, random_state=3)
    a, b = tmp_path / "ordered.csv", tmp_path / "shuffled.csv"
    ordered.to_csv(a, index=False)
    shuffled.to_csv(b, index=False)
    options = dict(customer="user", time="when", stage="event")
    want = sim.read_events(a, **options)
    got = sim.read_events(b, **options, sort_rows=True)

    def journeys(log):  # customers are numbered by the rows' order: compare their journeys
        rows = log.to_frame()
        rows["step"] = list(zip(rows["time"], rows["to_stage"].astype(str), strict=True))
        return sorted(tuple(g) for _, g in rows.groupby("customer")["step"])

    assert got.customers.tolist() == want.customers.tolist() == [20]
    assert journeys(got) == journeys(want)
    with pytest.raises(sim.EventLogError, match="out of time order") as info:
        sim.read_events(b, **options)
    fix = str(info.value).split("out of time order", 1)[1]
    # sorting keeps every event; skipping would drop them, so it is offered first
    assert 0 <= fix.index("pass sort_rows=True") < fix.index('errors="skip"')
    broken = shuffled.copy()
    broken.iloc[7, 1] = "not a date"
    broken.to_csv(b, index=False)
    with pytest.raises(sim.EventLogError, match=r"unparseable time in column 'when': line 9 "):
        sim.read_events(b, **options, sort_rows=True)


def test_without_a_persona_column_nobody_is_labelled_a_scenario_persona(tmp_path):
    """Read with a scenario but no persona column, every customer is 'all' (not the
    scenario's first persona, which would be a guess); with the column, its names are used."""
    from tests.validation import SCENARIOS

    scenario = sim.load_scenario(SCENARIOS / "baseline.toml")
    frame = pd.DataFrame(
        {
            "user": [1, 1, 2],
            "when": [0.0, 2.0, 1.0],
            "event": ["awareness", "consideration", "awareness"],
            "segment": ["brand_loyal", "brand_loyal", "casual_browser"],
        }
    )
    options = dict(customer="user", time="when", stage="event", journey=scenario)
    assert sim.read_events(frame, **options).personas == ("all",)
    labelled = sim.read_events(frame, **options, persona="segment")
    assert labelled.personas[: len(scenario.personas)] == scenario.persona_names
    assert sorted(labelled.personas[i] for i in labelled.persona[labelled.from_stage == ENTRY]) == [
        "brand_loyal",
        "casual_browser",
    ]
