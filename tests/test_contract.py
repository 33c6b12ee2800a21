"""The event-log contract (:mod:`sim.events`) holds for every source of logs.

Every engine in :data:`sim.engine.ENGINES` and :func:`sim.read_events` must give logs that pass
``EventLog.validate()`` and, checked again here without it, every invariant of the schema. A
new engine is done when it passes this file unchanged. ``validate()`` itself is held to its
word: a log broken in each way is rejected, naming the right column.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings

import sim
from sim.engine import ENGINES
from sim.events import ENTRY, SCHEMA
from tests.strategies import scenarios, scenarios_with_interventions
from tests.validation import SCENARIOS

BUNDLED = ("baseline", "subscription", "discount", "loyalty", "referral")
START = "2025-01-01"


def bundled(name: str) -> sim.Scenario:
    """A bundled scenario, made small (300 customers where it is a cohort; 60 days)."""
    scenario = sim.load_scenario(SCENARIOS / f"{name}.toml")
    if isinstance(scenario.acquisition, sim.Cohort):
        return scenario.with_customers(300)
    return scenario.replace(horizon_days=60.0)


def simulate(engine: str, scenario: sim.Scenario, seed: int = 5) -> sim.EventLog:
    """Two replications of the scenario on the named engine (skipped where it cannot run it)."""
    reason = ENGINES[engine].cannot_run(scenario)
    if reason is not None:
        pytest.skip(f"{engine} cannot run {scenario.name}: {reason}")
    return sim.run(scenario, replications=2, seed=seed, engine=engine).log


def read_back(log: sim.EventLog, scenario: sim.Scenario) -> sim.EventLog:
    """The log exported as a process log and read again with :func:`sim.read_events`."""
    end = pd.Timestamp(START) + pd.Timedelta(days=log.horizon_days)
    return sim.read_events(
        log.to_process_log(start=START),
        customer="case:concept:name",
        time="time:timestamp",
        stage="concept:name",
        value="value",
        persona="persona",
        channel="channel",
        replication="replication",
        journey=scenario,
        start=START,
        end=end,
        keep_duplicates=True,  # instant loops on a stage repeat a row exactly
    )


def journey_edges(scenario: sim.Scenario) -> set[tuple[int, int]]:
    """Stage-code pairs a customer may move along: the journey's and interventions' moves."""
    j = scenario.journey
    edges = {(j.index(s.name), j.index(t)) for s in j.stages for t, p in s.next if p > 0}
    for iv in scenario.interventions:
        edges |= {(j.index(e.stage), j.index(e.to)) for e in iv.of_kind(sim.NewTransition)}
    return edges


def assert_contract(log: sim.EventLog, scenario: sim.Scenario | None = None) -> None:
    """Every invariant of the schema, checked with pandas independently of validate()."""
    assert log.validate() is log
    for name, dtype in SCHEMA.items():
        assert getattr(log, name).dtype == dtype, name
    rows = pd.DataFrame({name: getattr(log, name) for name in SCHEMA})
    # replications in blocks; time order within each; times within [0, horizon]
    assert (np.diff(rows.replication) >= 0).all()
    for _, rep in rows.groupby("replication"):
        assert rep.time.is_monotonic_increasing
    assert rows.time.between(0, log.horizon_days).all()
    # customers: 0 .. count-1 within each replication, every one with rows
    seen = rows.groupby("replication").customer.agg(["nunique", "max"])
    assert (seen["nunique"].to_numpy() == log.customers).all()
    assert (seen["max"].to_numpy() == log.customers - 1).all()
    # per customer: the entry first and only there; moves chain; nothing after an end
    paths = rows.groupby(["replication", "customer"], sort=False)
    previous = paths.to_stage.shift()
    first = previous.isna()
    assert (rows.from_stage[first] == ENTRY).all()
    assert (rows.from_stage[~first] == previous[~first]).all()
    ends = np.array(log.end_stages)
    assert not ends[rows.from_stage[~first].to_numpy()].any()
    # persona and channel fixed per customer
    assert (paths.persona.nunique() == 1).all() and (paths.channel.nunique() == 1).all()
    # values: finite, >= 0, only where a purchase stage is entered
    purchase = np.array(log.purchase_stages)[rows.to_stage]
    assert np.isfinite(rows.value).all() and (rows.value >= 0).all()
    assert (rows.value[~purchase] == 0).all()
    # every move follows an allowed edge, and those are the journey's when there is one
    moves = set(zip(rows.from_stage[~first], rows.to_stage[~first], strict=True))
    assert moves <= set(log.edges)
    if scenario is not None:
        assert log.stages == scenario.journey.names
        assert moves <= journey_edges(scenario)
        assert log.horizon_days == pytest.approx(scenario.horizon_days, abs=1e-9)


SOURCES = [*sorted(ENGINES), "read_events"]


def log_from(source: str, scenario: sim.Scenario) -> sim.EventLog:
    """A log of the scenario from an engine, or simulated and read back by read_events."""
    if source == "read_events":
        return read_back(simulate("simpy", scenario), scenario)
    return simulate(source, scenario)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenarios_give_logs_that_keep_the_contract(source, name):
    """Each bundled scenario's log keeps every invariant, from every engine and read back."""
    scenario = bundled(name)
    assert_contract(log_from(source, scenario), scenario)


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios_with_interventions(max_customers=15))
def test_any_scenario_gives_a_log_that_keeps_the_contract(source, scenario):
    """A random scenario with interventions: the log keeps every invariant."""
    engine = "simpy" if source == "read_events" else source
    assume(ENGINES[engine].cannot_run(scenario) is None)
    assert_contract(log_from(source, scenario), scenario)


def test_a_real_export_gives_a_log_that_keeps_the_contract(tmp_path):
    """A messy CRM export (time zones, unsorted customers, ignored and unknown events,
    skipped with errors='skip') still gives a log that keeps every invariant."""
    path = tmp_path / "crm.csv"
    path.write_text(
        "user,ts,event,amount\n"
        "b,2025-01-02T09:00:00+02:00,visit,\n"
        "a,2025-01-01T10:00:00Z,visit,\n"
        "a,2025-01-01T10:00:00Z,newsletter,\n"
        "b,2025-01-03T09:00:00+02:00,cart,\n"
        "a,2025-01-04T10:00:00Z,order,20\n"
        "a,2025-01-05T10:00:00Z,mystery,\n"
        "b,2025-01-09T09:00:00+02:00,order,35.5\n"
        "a,2025-01-20T10:00:00Z,order,12\n"
        "c,2025-01-21T00:00:00Z,visit,\n"
    )
    log = sim.read_events(
        path,
        customer="user",
        time="ts",
        stage="event",
        value="amount",
        stages={"visit": "awareness", "cart": "intent", "order": "purchase", "newsletter": ""},
        errors="skip",
    )
    assert_contract(log)
    assert log.skipped == {"unknown event": 1, "ignored event": 1}
    assert log.customers.tolist() == [3]
    assert log.horizon_days == pytest.approx(19 + 14 / 24)  # 01-01 10:00 to 01-21 00:00


# -- validate() rejects each way of breaking the contract, naming the column ---------------


def _small_log() -> sim.EventLog:
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(40)
    return sim.run(scenario, replications=2, seed=3).log


def _with(log: sim.EventLog, column: str, change) -> sim.EventLog:
    values = getattr(log, column).copy()
    change(values, log)
    return replace(log, **{column: values})


def _first_move(log: sim.EventLog) -> int:
    return int(np.flatnonzero(log.from_stage >= 0)[0])


def _swap_times(values, log):
    i = int(np.flatnonzero((np.diff(log.time) > 0) & (np.diff(log.replication) == 0))[0])
    values[i], values[i + 1] = values[i + 1], values[i]


BREAKS = {
    "dtype": ("time", lambda log: replace(log, time=log.time.astype(np.float32))),
    "customer code": ("customer", lambda log: _with(log, "customer", _set(0, 10_000))),
    "persona code": ("persona", lambda log: _with(log, "persona", _set(0, 99))),
    "channel code": ("channel", lambda log: _with(log, "channel", _set(0, 99))),
    "stage code": ("to_stage", lambda log: _with(log, "to_stage", _set(0, 99))),
    "negative time": ("time", lambda log: _with(log, "time", _set(0, -1.0))),
    "time after horizon": ("time", lambda log: _with(log, "time", _set(-1, 1e6))),
    "time order": ("time", lambda log: _with(log, "time", _swap_times)),
    "replication blocks": (
        "replication",
        lambda log: _with(log, "replication", lambda v, _: v.__setitem__(slice(None), v[::-1])),
    ),
    "no entry row": (
        "from_stage",
        lambda log: _with(log, "from_stage", lambda v, _: v.__setitem__(0, 0)),
    ),
    "moves do not chain": (
        "from_stage",
        lambda log: _with(
            log,
            "from_stage",
            lambda v, lg: v.__setitem__(_first_move(lg), (v[_first_move(lg)] + 1) % 7),
        ),
    ),
    "move out of an end": (
        "from_stage",
        lambda log: replace(log, end_stages=(False, True, *log.end_stages[2:])),
    ),
    "persona changes": (
        "persona",
        lambda log: _with(
            log,
            "persona",
            lambda v, lg: v.__setitem__(_first_move(lg), (v[_first_move(lg)] + 1) % 3),
        ),
    ),
    "negative value": (
        "value",
        lambda log: _with(
            log, "value", lambda v, lg: v.__setitem__(np.flatnonzero(v > 0)[0], -1.0)
        ),
    ),
    "value off a purchase": ("value", lambda log: _with(log, "value", _set(0, 5.0))),
    "treatment without interventions": (
        "treatment",
        lambda log: _with(log, "treatment", _set(0, 1)),
    ),
    "referrer of another replication": (
        "referrer",
        lambda log: _with(log, "referrer", _set(0, 10_000)),
    ),
    "outcome on an entry row": (
        "outcome",
        lambda log: _with(replace(log, outcomes=("good",)), "outcome", _set(0, 0)),
    ),
    "outcome code outside the names": (
        "outcome",
        lambda log: _with(log, "outcome", lambda v, lg: v.__setitem__(_first_move(lg), 0)),
    ),
    "move along no edge": ("to_stage", lambda log: replace(log, edges=log.edges[1:])),
    "stage names repeat": (
        "stages",
        lambda log: replace(log, stages=(log.stages[1], *log.stages[1:])),
    ),
    "negative horizon": ("horizon", lambda log: replace(log, horizon_days=-1.0)),
    "negative customer count": (
        "customers",
        lambda log: replace(log, customers=np.array([-1, 40])),
    ),
}


def _set(index: int, value):
    return lambda values, _: values.__setitem__(index, value)


@pytest.mark.parametrize("broken", sorted(BREAKS))
def test_validate_rejects_each_broken_log_naming_the_column(broken):
    """The intact log passes; the same log broken in one way fails, naming the column."""
    log = _small_log()
    assert log.validate() is log
    column, breaking = BREAKS[broken]
    with pytest.raises(sim.EventLogError) as info:
        breaking(log).validate()
    assert info.value.field == column, str(info.value)


# -- properties of the analyses on any log --------------------------------------------------


@settings(max_examples=25)
@given(scenario=scenarios_with_interventions(max_customers=25))
def test_funnel_counts_never_exceed_entrants_and_fall_along_paths(scenario):
    """Customers reaching a stage never outnumber the entrants nor those who reached a stage
    leading into it (step conversion <= 1); a stage with one way in has at most as many
    customers as that stage (unless customers also enter there)."""
    log = sim.run(scenario, replications=2, seed=1).log
    table = sim.analysis.funnel(log, by="persona")
    entrants = log.customers.mean()
    for _, group in table.groupby("persona"):
        counts = group.set_index("stage")["customers"]
        assert (counts <= entrants + 1e-9).all()
        steps = group["step_conversion"].dropna()
        assert (steps <= 1 + 1e-12).all()
    counts = table[table.persona == "all"].set_index("stage")["customers"]
    into: dict[int, set[int]] = {}
    for a, b in log.edges:
        into.setdefault(b, set()).add(a)
    for b, sources in into.items():
        if len(sources) == 1 and b not in log.entry_stages and b not in sources:
            (a,) = sources
            assert counts[log.stages[b]] <= counts[log.stages[a]] + 1e-9


@settings(max_examples=25)
@given(scenario=scenarios(max_customers=30))
def test_kaplan_meier_curves_start_at_one_and_never_rise(scenario):
    """Every retention curve (all, and per persona) starts at day 0 with survival 1 and
    never goes up."""
    log = sim.run(scenario, replications=2, seed=2).log
    curves = sim.analysis.retention(log, by="persona")
    for _, curve in curves.groupby("persona"):
        assert curve["day"].iloc[0] == 0 and curve["survival"].iloc[0] == 1
        assert (np.diff(curve["survival"].to_numpy()) <= 1e-12).all()
        assert (np.diff(curve["day"].to_numpy()) > 0).all()


@settings(max_examples=15)
@given(scenario=scenarios_with_interventions(max_customers=25))
def test_metrics_agree_with_the_customer_table(scenario):
    """Per replication, the metrics of all customers equal sums over the per-customer table:
    customers, conversion, purchases and revenue per customer."""
    log = sim.run(scenario, replications=3, seed=4).log
    metrics = sim.analysis.replication_metrics(
        log, scenario.interventions, journey=scenario.journey
    )
    wide = metrics[metrics.persona == "all"].pivot(
        index="replication", columns="metric", values="value"
    )
    table = sim.analysis.customer_table(log)
    per_rep = table.groupby("replication").agg(
        customers=("customer", "size"),
        conversion=("first_purchase", lambda x: x.notna().mean()),
        purchases_per_customer=("purchases", "mean"),
        revenue_per_customer=("revenue", "mean"),
        revenue=("revenue", "sum"),
    )
    for column in per_rep.columns:
        np.testing.assert_allclose(wide[column].to_numpy(), per_rep[column].to_numpy(), rtol=1e-9)


@settings(max_examples=30)
@given(scenario=scenarios(max_customers=5))
def test_absorption_probabilities_sum_to_one_per_persona(scenario):
    """From the exact chain, the probabilities of ending in each absorbing stage sum to 1
    for every persona and for the population."""
    summary = sim.expected(scenario).summary
    ends = [c for c in summary.columns if c.startswith("p_")]
    assert len(ends) == len(scenario.journey.absorbing)
    np.testing.assert_allclose(summary[ends].sum(axis=1), 1.0, atol=1e-9)


# -- the round trip: simulated log -> process log -> read_events ---------------------------


@pytest.mark.parametrize("name", ["baseline", "subscription", "loyalty"])
def test_process_log_read_back_gives_the_same_funnel_and_retention(name):
    """Exporting a simulated log as a process log and reading it back gives the same funnel,
    retention curve and retention summary (times agree to the microsecond of the export)."""
    scenario = bundled(name)
    log = simulate("simpy", scenario)
    back = read_back(log, scenario)
    for by in ("persona", "channel"):
        pd.testing.assert_frame_equal(sim.analysis.funnel(back, by), sim.analysis.funnel(log, by))
        pd.testing.assert_frame_equal(
            sim.analysis.retention(back, by), sim.analysis.retention(log, by), rtol=1e-9
        )
        pd.testing.assert_frame_equal(
            sim.analysis.retention_summary(back, by),
            sim.analysis.retention_summary(log, by),
            rtol=1e-9,
        )


def test_the_round_trip_check_has_power():
    """Twin of the round trip: reading the export back without its end date censors
    customers at the last event instead of the horizon, and the retention tables differ."""
    scenario = bundled("baseline")
    log = simulate("simpy", scenario)
    frame = log.to_process_log(start=START)
    back = sim.read_events(
        frame,
        customer="case:concept:name",
        time="time:timestamp",
        stage="concept:name",
        value="value",
        persona="persona",
        replication="replication",
        journey=scenario,
        start=START,
    )
    assert back.horizon_days < log.horizon_days
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(
            sim.analysis.retention(back, None), sim.analysis.retention(log, None)
        )


@settings(max_examples=20)
@given(scenario=scenarios_with_interventions(max_customers=15))
def test_any_log_reads_back_customer_for_customer(scenario):
    """For any scenario, the read-back log has the same funnel and, customer for customer, the
    same final stage, purchases and revenue, and times within a microsecond; retention is a
    function of these, so it agrees too (up to ties closer than the export's resolution)."""
    log = sim.run(scenario, replications=2, seed=6).log
    back = read_back(log, scenario)
    pd.testing.assert_frame_equal(sim.analysis.funnel(back), sim.analysis.funnel(log))
    a, b = sim.analysis.customer_table(log), sim.analysis.customer_table(back)
    exact = ["replication", "customer", "persona", "final_stage", "ended", "purchases"]
    pd.testing.assert_frame_equal(b[exact], a[exact])
    np.testing.assert_allclose(b["revenue"], a["revenue"], rtol=1e-12)
    for column in ("arrival", "end_time", "first_purchase"):
        np.testing.assert_allclose(b[column], a[column], atol=2e-11, rtol=0)
