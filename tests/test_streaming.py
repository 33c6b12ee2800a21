"""Streamed runs: chunks of a cohort are the same customers as the whole cohort, the event
log on disk is the in-memory log, and summaries merged over chunks give the analyses of the
log held in memory."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sim
from sim.analysis.summary import GRID
from sim.cli import main
from sim.engine import CompiledScenario
from sim.engine.registry import ENGINES
from sim.engine.streams import draw_customers
from sim.events import COLUMNS, REACH_SCHEMA
from sim.io.event_dataset import EventDataset
from sim.run import streaming
from sim.run.streaming import simulate_chunk
from tests.validation import SCENARIOS


def _count_chunks(monkeypatch, interrupt_after: int | None = None) -> list[int]:
    """From now on, count the chunks a run starts (one entry each in the list returned), and
    with ``interrupt_after``, press Ctrl-C as the chunk after that many starts."""
    calls: list[int] = []

    def counted(*args):
        calls.append(1)
        if interrupt_after is not None and len(calls) > interrupt_after:
            raise KeyboardInterrupt
        return simulate_chunk(*args)

    monkeypatch.setattr(streaming, "simulate_chunk", counted)
    return calls


def _same_streamed_log(a: Path, b: Path) -> None:
    """The streamed event logs in folders ``a`` and ``b`` are the same, column by column."""
    one, other = EventDataset(a).to_log(), EventDataset(b).to_log()
    for column in COLUMNS:
        np.testing.assert_array_equal(getattr(one, column), getattr(other, column))


@pytest.fixture
def repeaters(write_toml) -> sim.Scenario:
    """The loyalty scenario with customers who come back to buy again and again, so many
    use more pre-drawn visits and order values than are stored and draw from their own
    (overflow) streams."""
    text = (SCENARIOS / "baseline.toml").read_text()
    heavy = text.replace("purchase = 0.5, churned = 0.5", "purchase = 0.93, churned = 0.07")
    assert heavy != text
    loyalty = (SCENARIOS / "loyalty.toml").read_text()
    heavy += "\n" + loyalty[loyalty.index("[[intervention]]") :]
    return sim.load_scenario(write_toml(heavy))


def _by_customer(log: sim.EventLog) -> dict[str, np.ndarray]:
    """Every column with rows grouped by customer (each customer's rows in their order)."""
    order = np.lexsort((np.arange(len(log)), log.customer, log.replication))
    reach = np.lexsort((np.arange(len(log.reach_time)), log.reach_customer, log.reach_replication))
    out = {c: getattr(log, c)[order] for c in COLUMNS}
    out.update({c: getattr(log, c)[reach] for c in REACH_SCHEMA})
    return out


def test_a_chunk_draws_the_numbers_of_its_customers_in_the_whole_cohort(repeaters):
    """Customers 300..799 drawn alone get exactly the numbers they get in a cohort of 1,000;
    drawn without skipping to customer 300 they would not (the check can fail)."""
    whole = draw_customers(CompiledScenario.build(repeaters.with_customers(1000)), 3, 1)
    compiled = CompiledScenario.build(repeaters)
    part = draw_customers(compiled.chunk(300, 500), 3, 1)
    rows = slice(300, 800)
    np.testing.assert_array_equal(part.persona, whole.persona[rows])
    np.testing.assert_array_equal(part.eligible, whole.eligible[rows])
    np.testing.assert_array_equal(part.choice[0], whole.choice[0][rows])
    np.testing.assert_array_equal(part.dwell[0], whole.dwell[0][rows])
    np.testing.assert_array_equal(part.value[0], whole.value[0][rows])
    assert part.first == 300
    unskipped = draw_customers(compiled.chunk(0, 500), 3, 1)
    assert not np.array_equal(unskipped.choice[0], whole.choice[0][rows])


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_chunked_run_equals_the_whole_cohort_customer_by_customer(engine, repeaters, tmp_path):
    """A cohort of 1,200 streamed in chunks of 500 (on every engine that can run it) gives
    every customer the same rows, byte for byte, as the cohort run at once, and the dataset
    read back whole is a valid log equal to the in-memory one; overflow streams are used."""
    if ENGINES[engine].cannot_run(repeaters) is not None:
        pytest.skip(f"{engine} cannot run the scenario")
    whole = sim.run(repeaters, replications=2, seed=8, customers=1200, engine=engine)
    streamed = sim.run(
        repeaters,
        replications=2,
        seed=8,
        customers=1200,
        engine=engine,
        stream_to=tmp_path / "events",
        chunk_customers=500,
    )
    assert streamed.provenance["streamed"]["chunks"] == 6
    purchases = np.bincount(whole.log.customer[whole.log.value > 0])
    assert purchases.max() > 4, "some customers buy more often than order values are stored"
    read = EventDataset(tmp_path / "events").to_log()
    a, b = _by_customer(whole.log), _by_customer(read)
    for column in a:
        assert a[column].dtype == b[column].dtype
        assert a[column].tobytes() == b[column].tobytes(), column
    assert streamed.events.count_rows() == len(whole.log)


def test_a_chunk_simulated_without_its_offset_differs(repeaters):
    """The twin of the equality above: the second chunk simulated as if it were the first
    gives other journeys, so the equality test would see a wrong offset."""
    compiled = CompiledScenario.build(repeaters.with_customers(1000))
    right, _ = simulate_chunk("simpy", compiled, 8, 0, 500, 500, None)
    wrong, _ = simulate_chunk("simpy", compiled, 8, 0, 0, 500, None)
    assert not right.funnel(None).equals(wrong.funnel(None))


def test_streamed_analyses_equal_the_in_memory_ones(tmp_path):
    """Funnel, costs and counts merged over chunks equal the in-memory analyses; Kaplan-Meier
    shares at whole days agree to 1e-9 and medians and quartiles to the 1/64-day grid."""
    loyalty = sim.load_scenario(SCENARIOS / "loyalty.toml")
    mem = sim.run(loyalty, replications=3, seed=2, customers=1500)
    st = sim.run(
        loyalty, replications=3, seed=2, customers=1500, keep_events=False, chunk_customers=400
    )
    assert isinstance(st, sim.StreamedRunResult)
    pd.testing.assert_frame_equal(mem.funnel(), st.funnel())
    pd.testing.assert_frame_equal(mem.funnel(by="channel"), st.funnel(by="channel"))
    pd.testing.assert_frame_equal(mem.costs(), st.costs())
    a, b = mem.metrics(), st.metrics()
    pd.testing.assert_frame_equal(
        a[["replication", "persona", "metric"]], b[["replication", "persona", "metric"]]
    )
    median = (a["metric"] == "median_lifetime_days").to_numpy()
    np.testing.assert_allclose(b["value"][~median], a["value"][~median], rtol=1e-9, atol=1e-9)
    gap = b["value"][median] - a["value"][median]
    assert ((gap >= -1e-9) & (gap <= 1 / GRID)).all()
    ra, rb = mem.retention_summary(), st.retention_summary()
    close = [c for c in ra.columns if c not in ("persona", "median_lifetime_days")]
    np.testing.assert_allclose(rb[close], ra[close], rtol=1e-9)
    ta, tb = mem.time_to_purchase(), st.time_to_purchase()
    np.testing.assert_allclose(tb["mean_days"], ta["mean_days"], rtol=1e-9)
    np.testing.assert_allclose(tb["median_days"], ta["median_days"], atol=0.1)
    curve = st.retention(by=None)
    assert curve["survival"].is_monotonic_decreasing and curve["at_risk"].iloc[0] > 0
    with pytest.raises(sim.EventLogError, match="keep_events=False"):
        st.events  # noqa: B018


def test_streamed_results_do_not_depend_on_workers(tmp_path):
    """Chunks on 2 worker processes give the summaries of a serial streamed run."""
    baseline = sim.load_scenario(SCENARIOS / "baseline.toml")
    kw = {"replications": 2, "seed": 6, "customers": 900, "chunk_customers": 400}
    one = sim.run(baseline, stream_to=tmp_path / "one", **kw)
    two = sim.run(baseline, stream_to=tmp_path / "two", workers=2, **kw)
    pd.testing.assert_frame_equal(one.metrics(), two.metrics())
    assert one.events.count_rows() == two.events.count_rows()


def test_arrivals_and_budgets_stream_whole_replications(subscription, tmp_path):
    """Channel arrivals (and shared budgets) cannot be split: each replication is one part,
    and the summaries still equal the in-memory analyses."""
    short = subscription.replace(horizon_days=60.0)  # fewer arrivals: a quicker test
    mem = sim.run(short, seed=1)
    st = sim.run(short, seed=1, stream_to=tmp_path, chunk_customers=10)
    assert st.provenance["streamed"]["chunks"] == 1
    assert "arrive over time" in streaming.cannot_split(subscription)
    discount = sim.load_scenario(SCENARIOS / "discount.toml")
    assert "budget" in streaming.cannot_split(discount)
    assert streaming.cannot_split(discount.replace(interventions=())) is None
    pd.testing.assert_frame_equal(mem.funnel(by="channel"), st.funnel(by="channel"))


def test_run_out_streams_a_large_run(tmp_path, capsys, monkeypatch):
    """`sim run --out DIR` streams when the log would be large (the byte limit lowered here
    to 512 KiB: 2,000 customers need about 1 MiB) into DIR/events, says so, and writes the
    usual tables beside it; 500 customers (about 250 KiB) are held in memory (the twin)."""
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 2**19)
    monkeypatch.setattr(streaming, "CHUNK_CUSTOMERS", 800)
    out = tmp_path / "big"
    code = main(["run", str(SCENARIOS / "baseline.toml"), "--customers", "2000", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Funnel" in printed
    assert "Streamed the event log to disk in 3 chunk(s): held in memory it would need" in printed
    assert "more than 512.0 KiB" in printed
    assert len(EventDataset(out / "events").parts()) == 3
    assert {"funnel.csv", "retention.csv", "run.json"} <= {p.name for p in out.iterdir()}
    small = tmp_path / "small"
    assert (
        main(["run", str(SCENARIOS / "baseline.toml"), "--customers", "500", "--out", str(small)])
        == 0
    )
    assert (small / "events.parquet").is_file()


def test_stream_arguments_are_checked(tmp_path):
    """Asking to stream to a folder and to keep no events is refused with the fix."""
    baseline = sim.load_scenario(SCENARIOS / "baseline.toml")
    with pytest.raises(sim.ScenarioError, match="keep_events"):
        sim.run(baseline, customers=10, stream_to=tmp_path, keep_events=False)
    with pytest.raises(sim.ScenarioError, match="chunk_customers"):
        sim.run(baseline, customers=10, keep_events=False, chunk_customers=0)


def test_a_stream_folder_that_cannot_be_written_is_refused_first(tmp_path):
    """stream_to naming a file, a path under a file, or a folder holding other files is
    refused as the command line's --out is (a ScenarioError naming stream_to), not with the
    system's error after the run; the twin: a new folder is made, and written over."""
    baseline = sim.load_scenario(SCENARIOS / "baseline.toml")
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    for bad in (a_file, a_file / "sub", tmp_path):
        with pytest.raises(sim.ScenarioError, match="stream_to"):
            sim.run(baseline, customers=10, stream_to=bad)
    assert a_file.read_text() == "x"  # a folder holding other files is not written into
    for _ in range(2):  # a folder of a streamed log is written over
        assert sim.run(baseline, customers=10, stream_to=tmp_path / "new").complete


# -- streamed comparisons ---------------------------------------------------------------------


def _close(a: pd.DataFrame, b: pd.DataFrame, grid_metric: str = "median_lifetime_days") -> None:
    """Two comparison tables agree: the same rows, numbers to 1e-9 (relative), and the rows
    of ``grid_metric`` (read on the 1/64-day grid when streamed) to within the grid. Holm's
    adjusted p-values depend on every p-value of their family, the grid metric's among them,
    so they are only held to be p-values, NaN in the same rows."""
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    text = [c for c in a.columns if a[c].dtype == object]
    pd.testing.assert_frame_equal(a[text], b[text])
    if "p_adjusted" in a:
        np.testing.assert_array_equal(a["p_adjusted"].isna(), b["p_adjusted"].isna())
        assert b["p_adjusted"].dropna().between(0, 1).all()
    numbers = [c for c in a.columns if c not in text and c != "p_adjusted"]
    grid = (a["metric"] == grid_metric).to_numpy() if "metric" in a else np.zeros(len(a), bool)
    np.testing.assert_allclose(b[numbers][~grid], a[numbers][~grid], rtol=1e-9, atol=1e-9)
    if grid.any():
        gap = b["mean"][grid] - a["mean"][grid]
        assert ((gap >= -1e-9) & (gap <= 1 / GRID)).all()


def test_a_streamed_comparison_equals_the_in_memory_one(tmp_path):
    """Baseline against loyalty (an intervention with costs), 4 replications of 1,500
    customers in chunks of 400: every row of the comparison table (all metrics, every
    persona), the ROI table and the per-replication metrics agree with the comparison held
    in memory, to 1e-9 and, for median lifetimes, to the 1/64-day grid; each scenario's log is
    on disk, row for row. The twin: another seed gives another table, so the check can fail."""
    pair = [sim.load_scenario(SCENARIOS / f) for f in ("baseline.toml", "loyalty.toml")]
    kw = {"replications": 4, "seed": 3, "customers": 1500}
    mem = sim.compare(pair, **kw)
    st = sim.compare(pair, stream_to=tmp_path, chunk_customers=400, **kw)
    assert isinstance(st.results["loyalty"], sim.StreamedRunResult) and st.streamed
    assert mem.streamed is None
    _close(mem.summary(metrics=None, persona=None), st.summary(metrics=None, persona=None))
    _close(mem.roi(), st.roi())
    a, b = mem.per_replication, st.per_replication
    pd.testing.assert_frame_equal(a.drop(columns="value"), b.drop(columns="value"))
    for name in ("baseline", "loyalty"):
        assert EventDataset(tmp_path / name).to_log().customers.sum() == 4 * 1500
        assert len(EventDataset(tmp_path / name).to_log()) == len(mem.results[name].log)
    other = sim.compare(pair, keep_events=False, chunk_customers=400, **{**kw, "seed": 4})
    with pytest.raises(AssertionError):
        _close(mem.summary(metrics=None, persona=None), other.summary(metrics=None, persona=None))


def test_a_streamed_auto_comparison_adds_batches_like_the_in_memory_one():
    """replications='auto' streamed (summaries only) adds the same batches and stops at the
    same count as in memory, with the same table."""
    pair = [sim.load_scenario(SCENARIOS / f) for f in ("baseline.toml", "loyalty.toml")]
    kw = {
        "replications": "auto",
        "seed": 5,
        "customers": 600,
        "metric": "revenue_per_customer",
        "target_half_width": 1e-6,
        "batch": 2,
        "max_replications": 4,
    }
    mem = sim.compare(pair, **kw)
    st = sim.compare(pair, keep_events=False, chunk_customers=250, **kw)
    assert mem.replications == st.replications == 4
    assert mem.converged is st.converged is False
    _close(mem.summary(), st.summary())


def test_compare_out_streams_each_scenario_when_it_would_not_fit(tmp_path, capsys, monkeypatch):
    """`sim compare --out DIR` streams (byte limit lowered to 5 MiB; the pair needs about 10)
    into DIR/events/<scenario>, says so, and writes comparison.csv as the in-memory
    comparison does (to 1e-9; median lifetimes to the grid). Interrupted after 10 of its 18
    chunks, the same command is refused without --resume and, with it, simulates only the 8
    others and writes the same comparison.csv."""
    files = [str(SCENARIOS / f) for f in ("baseline.toml", "loyalty.toml")]
    args = ["compare", *files, "-r", "3", "--customers", "2000"]
    assert main([*args, "--out", str(tmp_path / "mem")]) == 0
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 5 * 2**20)
    monkeypatch.setattr(streaming, "CHUNK_CUSTOMERS", 800)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "big")]) == 0
    out = capsys.readouterr().out
    assert "Streamed each scenario's event log to disk: held in memory it would need" in out
    for name in ("baseline", "loyalty"):
        assert len(EventDataset(tmp_path / "big" / "events" / name).parts()) == 9
    assert not (tmp_path / "mem" / "events").exists()
    _close(
        pd.read_csv(tmp_path / "mem" / "comparison.csv"),
        pd.read_csv(tmp_path / "big" / "comparison.csv"),
    )
    _count_chunks(monkeypatch, interrupt_after=10)
    cmd = [*args, "-w", "1", "--out", str(tmp_path / "cut")]
    assert main(cmd) == 130
    assert "--resume to continue" in capsys.readouterr().err
    assert main(cmd) == 2
    assert "finished chunk(s) of an interrupted streamed run" in capsys.readouterr().err
    calls = _count_chunks(monkeypatch)
    assert main([*cmd, "--resume"]) == 0
    assert len(calls) == 8
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "cut" / "comparison.csv"),
        pd.read_csv(tmp_path / "big" / "comparison.csv"),
    )


# -- routing by the memory estimate -----------------------------------------------------------


def test_auto_streams_only_what_would_not_fit(baseline, tmp_path, monkeypatch):
    """stream='auto' holds 2,000 customers (about 1 MiB) in memory with 1 GiB available, and
    streams them, saying why, when only 1.5 MiB are (more than half of it needed)."""
    sizing = importlib.import_module("sim.engine.sizing")
    kw = {"customers": 2000, "seed": 1, "stream_to": tmp_path / "ev", "stream": "auto"}
    monkeypatch.setattr(sizing, "available_memory", lambda: 2**30)
    monkeypatch.setattr(streaming, "available_memory", lambda: 2**30)
    assert isinstance(sim.run(baseline, **kw), sim.RunResult)
    monkeypatch.setattr(sizing, "available_memory", lambda: 1.5 * 2**20)
    monkeypatch.setattr(streaming, "available_memory", lambda: 1.5 * 2**20)
    st = sim.run(baseline, chunk_customers=500, **kw)
    assert isinstance(st, sim.StreamedRunResult)
    reason = st.provenance["streamed"]["reason"]
    assert "would need about 1,002.4 KiB, more than half of the 1.5 MiB available" in reason
    with pytest.raises(sim.ScenarioError, match="'always' or 'auto'"):
        sim.run(baseline, customers=10, stream_to=tmp_path, stream="sometimes")


def test_a_run_that_cannot_fit_names_streaming_as_the_fix(baseline, monkeypatch, capsys):
    """With 1 GiB available, 20,000,000 customers held in memory (about 8.5 GiB) are refused
    before anything is drawn, naming `--out DIR` / stream_to=DIR (chunks of 200,000 need
    about 90 MiB) and fewer customers; `sim run` says the same. The twin: with 50 MiB
    available a chunk would not fit either, and streaming is not offered."""
    sizing = importlib.import_module("sim.engine.sizing")
    for module in (sizing, streaming):
        monkeypatch.setattr(module, "available_memory", lambda: 2**30)
    with pytest.raises(sim.ScenarioError) as info:
        sim.run(baseline, customers=20_000_000)
    message = str(info.value)
    assert "stream the event log to disk: sim run --out DIR (in Python: stream_to=DIR)" in message
    assert "or simulate fewer customers" in message
    assert main(["run", str(SCENARIOS / "baseline.toml"), "--customers", "20000000"]) == 2
    assert "--out DIR" in capsys.readouterr().err
    for module in (sizing, streaming):
        monkeypatch.setattr(module, "available_memory", lambda: 50 * 2**20)
    with pytest.raises(sim.ScenarioError) as info:
        sim.run(baseline, customers=20_000_000)
    assert "stream" not in str(info.value) and "fewer customers" in str(info.value)


@pytest.mark.parametrize("finished_chunks", [1, 4])
def test_ctrl_c_on_a_streamed_run_exits_130_and_resumes(
    tmp_path, capsys, monkeypatch, finished_chunks
):
    """Ctrl-C while a run streams (chunks of 800 of 2,000 customers: 3 per replication),
    after 1 chunk (no whole replication) or 4 (one whole): exit 130, no traceback, a line
    naming --resume, and no --out directory. The same command again without --resume is
    refused (the finished chunks are not thrown away); with --resume it simulates only the
    chunks not finished and writes the funnel and retention of an uninterrupted run."""
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 2**20)
    monkeypatch.setattr(streaming, "CHUNK_CUSTOMERS", 800)
    _count_chunks(monkeypatch, interrupt_after=finished_chunks)
    args = ["run", str(SCENARIOS / "baseline.toml"), "-r", "3", "--customers", "2000", "-w", "1"]
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--resume to continue" in err
    assert not (tmp_path / "cut").exists()
    calls = _count_chunks(monkeypatch)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 2
    assert "finished chunk(s) of an interrupted streamed run" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    assert len(calls) == 9 - finished_chunks
    assert "chunk(s) read back" in capsys.readouterr().out
    run_json = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run_json["resumed"]["chunks_read_back"] >= 1
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    for table in ("funnel.csv", "retention.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "cut" / table), pd.read_csv(tmp_path / "whole" / table)
        )


def test_a_resumed_streamed_run_is_the_uninterrupted_run(baseline, tmp_path, monkeypatch):
    """One replication of 3,000 customers in chunks of 1,000, interrupted after 2 chunks and
    resumed: the same event log on disk, byte for byte, and the same tables as a run never
    interrupted, with only the missing chunk simulated. Resuming with another seed is
    refused, saying which; the twin: a resume that simulated everything again would have
    called 3 chunks."""
    kw = {"customers": 3000, "seed": 5, "chunk_customers": 1000, "workers": 1}
    whole = sim.run(baseline, stream_to=tmp_path / "whole", **kw)
    _count_chunks(monkeypatch, interrupt_after=2)
    with pytest.raises(KeyboardInterrupt):  # no whole replication: nothing to return
        sim.run(baseline, stream_to=tmp_path / "cut", **kw)
    with pytest.raises(sim.ScenarioError, match="streamed with seed 5, this run has 6"):
        sim.run(baseline, stream_to=tmp_path / "cut", resume=True, **{**kw, "seed": 6})
    calls = _count_chunks(monkeypatch)
    resumed = sim.run(baseline, stream_to=tmp_path / "cut", resume=True, **kw)
    assert calls == [1] and resumed.complete
    _same_streamed_log(tmp_path / "cut", tmp_path / "whole")
    pd.testing.assert_frame_equal(resumed.funnel(), whole.funnel())
    pd.testing.assert_frame_equal(resumed.retention_summary(), whole.retention_summary())


def test_a_run_just_above_the_limit_says_by_how_much(baseline, monkeypatch):
    """2.02 GiB against the 2 GiB limit reads '2,068 MiB, more than 2,048 MiB', not '2.0 GiB,
    more than 2.0 GiB'; further above, GiB as before."""
    compiled = CompiledScenario.build(baseline)
    for needed, words in (
        (2.02 * 2**30, "about 2,068 MiB, more than 2,048 MiB"),
        (5 * 2**30, "about 5.0 GiB, more than 2.0 GiB"),
    ):
        monkeypatch.setattr(streaming, "memory_needed", lambda *a, n=needed: n)
        assert streaming.stream_reason([(compiled, 1)], 1, available=2**40).endswith(words)


def test_a_finished_streamed_run_can_be_written_over(baseline, tmp_path):
    """Only an interrupted run's chunks are guarded: a streamed run that finished is marked
    so, and the same call again writes over its folder (the refusal is for unfinished
    runs, see the resume tests above)."""
    kw = {"customers": 1200, "seed": 2, "chunk_customers": 500, "stream_to": tmp_path / "ev"}
    first = sim.run(baseline, **kw)
    again = sim.run(baseline, **kw)
    assert first.complete and again.complete
    assert streaming.finished_chunks(tmp_path / "ev") == 0
    pd.testing.assert_frame_equal(first.funnel(), again.funnel())


def test_a_streamed_run_never_takes_the_place_of_kept_replications(tmp_path, capsys, monkeypatch):
    """Replications an interrupted run held in memory kept beside --out are not thrown away
    by a next run into the same place that streams (more customers): it is refused, with or
    without --resume, naming the fix, and they stay; the twin: the interrupted command
    resumed as it was finishes from them."""
    from sim.run import replications

    args = ["run", str(SCENARIOS / "baseline.toml"), "-r", "3", "-w", "1"]
    out = ["--out", str(tmp_path / "multi")]
    real = replications.simulate_tasks

    def interrupted(tasks, workers, logs, progress, save, *rest):
        real(tasks[:1], workers, logs, progress, save, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(replications, "simulate_tasks", interrupted)
    assert main([*args, "--customers", "500", *out]) == 130
    monkeypatch.setattr(replications, "simulate_tasks", real)
    kept = tmp_path / ".multi.partial" / "replications"
    assert len(list(kept.glob("*.npz"))) == 1
    limit = streaming.STREAM_ABOVE_BYTES
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 2**19)
    capsys.readouterr()
    for extra in ([], ["--resume"]):
        assert main([*args, "--customers", "5000", *out, *extra]) == 2
        assert "finished replication(s) of an interrupted run held in memory" in (
            capsys.readouterr().err
        )
        assert len(list(kept.glob("*.npz"))) == 1
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", limit)
    assert main([*args, "--customers", "500", *out, "--resume"]) == 0
    assert (tmp_path / "multi" / "run.json").is_file()


def test_chunks_finishing_after_ctrl_c_or_beyond_a_resume_stay_out_of_the_dataset(
    baseline, tmp_path, monkeypatch
):
    """Three replications in chunks of 1,000 of 3,000 customers, interrupted after 7 chunks
    (replications 0 and 1 whole): a chunk of replication 2 a worker finishes after Ctrl-C
    (Dask cannot stop a running task) is written aside, not into the interrupted result's
    dataset; a resume asking for 2 replications simulates nothing and leaves no chunk of
    replication 2 behind. The twin: the uninterrupted run of 2 has the same log."""
    kw = {"customers": 3000, "seed": 5, "chunk_customers": 1000, "workers": 1}
    _count_chunks(monkeypatch, interrupt_after=7)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        part = sim.run(baseline, replications=3, stream_to=tmp_path / "cut", **kw)
    assert not part.complete and part.replications == 2
    compiled = CompiledScenario.build(baseline.with_customers(3000))
    simulate_chunk("vectorised", compiled, 5, 2, 2000, 1000, str(tmp_path / "cut"))  # late
    assert {r for r, _, _ in EventDataset(tmp_path / "cut").parts()} == {0, 1}
    calls = _count_chunks(monkeypatch)
    resumed = sim.run(baseline, replications=2, stream_to=tmp_path / "cut", resume=True, **kw)
    assert calls == [] and resumed.complete
    assert not list((tmp_path / "cut").rglob("*r00002*"))
    whole = sim.run(baseline, replications=2, stream_to=tmp_path / "whole", **kw)
    _same_streamed_log(tmp_path / "cut", tmp_path / "whole")
    pd.testing.assert_frame_equal(resumed.funnel(), whole.funnel())
