"""Streamed runs: chunks of a cohort are the same customers as the whole cohort, the event
log on disk is the in-memory log, and summaries merged over chunks give the analyses of the
log held in memory."""

from __future__ import annotations

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
    to 5 MiB: 2,000 customers need about 6) into DIR/events, says so, and writes the usual
    tables beside it; 500 customers (about 1.5 MiB) are held in memory (the twin)."""
    monkeypatch.setattr(streaming, "STREAM_ABOVE_BYTES", 5 * 2**20)
    monkeypatch.setattr(streaming, "CHUNK_CUSTOMERS", 800)
    out = tmp_path / "big"
    code = main(["run", str(SCENARIOS / "baseline.toml"), "--customers", "2000", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Funnel" in printed
    assert "Streamed the event log to disk in 3 chunk(s): held in memory it would need" in printed
    assert "more than 5.0 MiB" in printed
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
