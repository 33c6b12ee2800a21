"""Shared capacity: stages queue for resources (SimPy resources). Held against Erlang C
(M/M/c) after a warm-up, with twins that must fail; properties of occupancy, waits and
abandonment on random scenarios; the scenario file; the analysis tables."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings

import sim
from sim.analysis.queues import (
    queue_over_time,
    queue_summary,
    queue_visits,
    waiting_time_distribution,
)
from sim.events import COLUMNS
from tests.strategies import scenarios_with_resources
from tests.validation import SCENARIOS, K

#: M/M/c: c agents, exponential service of mean 1 day, Poisson arrivals at rho * c per day.
AGENTS, WARM_UP, HORIZON, MARGIN, REPLICATIONS = 3, 50.0, 400.0, 20.0, 20

RESOURCE = """
[[resource]]
name = "sales"
capacity = 5
"""


def erlang_c(arrivals: float, service_rate: float, c: int) -> tuple[float, float]:
    """Erlang C: probability an arrival waits, and the mean wait, in an M/M/c queue."""
    a = arrivals / service_rate
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait, p_wait / (c * service_rate - arrivals)


def mmc(arrivals: float, c: int = AGENTS, patience: str | None = None) -> sim.Scenario:
    """One queueing stage, Poisson arrivals, exponential service of mean 1 day."""
    queue = {"patience": patience, "abandon_to": "gave_up"} if patience else {}
    stages = (
        sim.Stage(
            name="service",
            dwell="exponential(mean=1)",
            next={"done": 1},
            uses="agents",
            **queue,
        ),
        sim.Stage(name="done", absorbing=True),
        sim.Stage(name="gave_up", absorbing=True),
    )
    return sim.Scenario(
        name=f"M/M/{c}",
        journey=sim.Journey(stages=stages[:2] if not patience else stages),
        acquisition=sim.Arrivals(channels=(sim.Channel(name="calls", rate_per_day=arrivals),)),
        resources=(sim.Resource(name="agents", capacity=c),),
        horizon_days=HORIZON,
    )


def _batch_means(rho: float, seed: int = 8) -> dict[str, tuple[float, float]]:
    """P(wait) and mean wait after the warm-up: mean over replications and its standard
    error (one batch per replication, so batches are independent)."""
    log = sim.run(mmc(rho * AGENTS), replications=REPLICATIONS, seed=seed).log
    visits = queue_visits(log, since=WARM_UP, until=HORIZON - MARGIN)
    out = {}
    for name, values in (("p_wait", visits["wait"] > 0), ("mean_wait", visits["wait"])):
        per_rep = pd_mean(values, visits["replication"])
        out[name] = (per_rep.mean(), per_rep.std(ddof=1) / np.sqrt(len(per_rep)))
    return out


def pd_mean(values, groups) -> np.ndarray:
    """Mean of values per replication."""
    return values.astype(float).groupby(groups.to_numpy()).mean().to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.8, 0.9])
def test_queue_matches_erlang_c(rho):
    """After a 50-day warm-up, the probability of waiting and the mean wait lie within K
    standard errors (batch means over 20 replications) of Erlang C."""
    sim_values = _batch_means(rho)
    exact = dict(zip(("p_wait", "mean_wait"), erlang_c(rho * AGENTS, 1.0, AGENTS), strict=True))
    for name, (mean, se) in sim_values.items():
        assert abs(mean - exact[name]) <= K * se, (name, mean, exact[name], se)


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.8, 0.9])
def test_erlang_c_check_fails_when_the_load_is_moved(rho):
    """Twin: the same check against Erlang C at 10% more arrivals must fail."""
    sim_values = _batch_means(rho)
    exact = dict(
        zip(("p_wait", "mean_wait"), erlang_c(rho * AGENTS * 1.1, 1.0, AGENTS), strict=True)
    )
    assert any(abs(m - exact[n]) > K * se for n, (m, se) in sim_values.items())


def _service_intervals(log: sim.EventLog):
    visits = queue_visits(log)
    served = visits[~visits["abandoned"]]
    begin = (served["joined"] + served["wait"]).to_numpy()
    return served, begin, begin + served["service"].to_numpy()


@settings(max_examples=30)
@given(scenarios_with_resources())
def test_occupancy_never_exceeds_capacity(scenario):
    """At no moment do more customers hold a resource than its capacity; waits are >= 0,
    no longer than the time in the stage, and abandonments follow the stage's patience to
    its abandon stage; the log keeps its contract."""
    log = sim.run(scenario, replications=1, seed=scenario.seed).log.validate()
    served, begin, end = _service_intervals(log)
    assert (served["service"] >= -1e-9).all()
    for code, name in enumerate(log.resources):
        mine = (served["resource"] == name).to_numpy()
        # a unit released and taken again at the same moment is not an overlap
        times = np.concatenate([begin[mine] + 1e-9, end[mine]])
        steps = np.concatenate([np.ones(mine.sum()), -np.ones(mine.sum())])
        order = np.argsort(times, kind="stable")
        held = np.cumsum(steps[order])
        assert held.max(initial=0) <= log.capacities[code]
    quit_rows = np.flatnonzero(log.abandoned)
    journey = scenario.journey
    for row in quit_rows:
        stage = journey.stages[log.from_stage[row]]
        assert stage.patience is not None
        assert log.to_stage[row] == journey.index(stage.abandon_to)


@settings(max_examples=30)
@given(scenarios_with_resources(patience=False, capacity=10**6))
def test_unlimited_capacity_changes_nothing(scenario):
    """With more units than customers nobody waits: every column of the log equals that of
    the same scenario without resources."""
    plain_stages = tuple(
        sim.Stage(
            name=s.name, next=s.next, dwell=s.dwell, purchase=s.purchase, absorbing=s.absorbing
        )
        for s in scenario.journey.stages
    )
    plain = scenario.replace(
        journey=sim.Journey(stages=plain_stages, entry=scenario.journey.entry), resources=()
    )
    a = sim.run(scenario, seed=scenario.seed).log
    b = sim.run(plain, seed=scenario.seed).log
    for column in COLUMNS:
        assert np.array_equal(getattr(a, column), getattr(b, column)), column


def test_patience_makes_customers_abandon():
    """With exponential patience of mean 0.5 days at utilisation 0.9 some customers give up;
    every abandonment waited exactly until its row, and the summary counts them."""
    log = sim.run(mmc(2.7, patience="exponential(mean=0.5)"), replications=2, seed=3).log
    summary = queue_summary(log, since=WARM_UP)
    assert 0.05 < summary["abandonment"].iloc[0] < 0.5
    visits = queue_visits(log)
    quit_visits = visits[visits["abandoned"]]
    assert np.allclose(quit_visits["service"], 0)
    assert (log.to_stage[log.abandoned] == log.stages.index("gave_up")).all()


def test_resource_sections_round_trip(write_toml):
    """[[resource]] tables and uses / patience / abandon_to on a stage load and save back."""
    text = (SCENARIOS / "baseline.toml").read_text() + RESOURCE
    text = text.replace(
        'name = "intent"',
        'name = "intent"\nuses = "sales"\npatience = "exponential(mean=0.5)"\nabandon_to = "lost"',
    )
    scenario = sim.load_scenario(write_toml(text))
    assert scenario.resources == (sim.Resource(name="sales", capacity=5),)
    assert scenario.journey.stage("intent").uses == "sales"
    again = sim.load_scenario(write_toml(sim.save_scenario(scenario), "again.toml"))
    assert again == scenario
    assert "resource 'sales'" in scenario.interacting
    with pytest.raises(sim.ScenarioError, match="do not affect each other"):
        sim.expected(scenario)


@pytest.mark.parametrize(
    ("stage_fields", "extra", "field"),
    [
        ('uses = "salse"', RESOURCE, "stage 'intent', field 'uses'"),
        ('uses = "sales"\npatience = "exponential(mean=1)"', RESOURCE, "field 'abandon_to'"),
        ('patience = "exponential(mean=1)"\nabandon_to = "lost"', RESOURCE, "field 'patience'"),
        ('uses = "sales"\nabandon_to = "lost"', RESOURCE, "field 'abandon_to'"),
        (
            'uses = "sales"\npatience = "exponential(mean=1)"\nabandon_to = "lots"',
            RESOURCE,
            "field 'abandon_to'",
        ),
        ('uses = "sales"', RESOURCE.replace("5", "0"), "resource 'sales', field 'capacity'"),
        ('uses = "sales"', RESOURCE + RESOURCE, "resource"),
    ],
)
def test_bad_resource_fields_name_the_field(write_toml, stage_fields, extra, field):
    """Each mistake is a ScenarioError naming the file and the field."""
    text = (SCENARIOS / "baseline.toml").read_text() + extra
    text = text.replace('name = "intent"', f'name = "intent"\n{stage_fields}')
    path = write_toml(text)
    with pytest.raises(sim.ScenarioError) as err:
        sim.load_scenario(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_waiting_time_table_and_frame():
    """The waiting-time distribution has ordered quantiles; the frame carries wait and
    abandoned columns; a log without resources is a clear error."""
    log = sim.run(mmc(2.7), replications=2, seed=1).log
    table = waiting_time_distribution(log, since=WARM_UP)
    q = table[["wait_q50", "wait_q80", "wait_q90", "wait_q95"]].to_numpy().ravel()
    assert (np.diff(q) >= 0).all() and 0 < table["waited"].iloc[0] < 1
    frame = log.to_frame()
    assert {"wait", "abandoned"} <= set(frame.columns)
    plain = sim.run(sim.load_scenario(SCENARIOS / "baseline.toml"), customers=10).log
    with pytest.raises(sim.EventLogError, match="no resources"):
        queue_visits(plain)


def test_support_staffing_scenario_runs_and_queues():
    """The bundled support-staffing scenario loads, keeps the log contract, and its support
    queue makes some subscribers wait and some give up."""
    scenario = sim.load_scenario(SCENARIOS / "support_staffing.toml").replace(horizon_days=60)
    log = sim.run(scenario, seed=2).log.validate()
    summary = queue_summary(log).set_index("resource")
    assert summary.loc["support", "p_wait"] > 0 and summary.loc["support", "abandonment"] > 0
    assert 0 < summary.loc["onboarding", "utilisation"] < 1


def test_a_day_with_no_units_has_no_utilisation_and_no_warning(write_toml):
    """`sun = 0` in a schedule (as in the reference): that day's utilisation is NaN, the
    other days' are numbers, and neither table warns of a division by zero."""
    text = (SCENARIOS / "support_staffing.toml").read_text()
    path = write_toml(text.replace("sat = 2, sun = 2", "sat = 2, sun = 0", 1))
    scenario = sim.load_scenario(path).replace(horizon_days=21)
    log = sim.run(scenario, seed=2).log
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        over_time = queue_over_time(log, np.arange(21) + 0.5)
        summary = queue_summary(log)
    support = over_time[over_time["resource"] == "support"].set_index("day")["utilisation"]
    sundays = support.index % 7 >= 6
    assert support[sundays].isna().all() and support[~sundays].notna().all()
    assert summary["utilisation"].notna().all()


def erlang_a(arrivals: float, service_rate: float, c: int, abandon_rate: float):
    """Erlang A (M/M/c+M), exact from its birth-death chain (truncated where the tail is
    below 1e-15): probability an arrival waits, probability they abandon, mean wait (of all
    arrivals, until service or abandonment)."""
    n = np.arange(1, 2000)
    deaths = np.minimum(n, c) * service_rate + np.maximum(n - c, 0) * abandon_rate
    log_p = np.concatenate([[0.0], np.cumsum(np.log(arrivals / deaths))])
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    queue = np.maximum(np.arange(len(p)) - c, 0) @ p
    return p[c:].sum(), abandon_rate * queue / arrivals, queue / arrivals


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.9, 1.1])
def test_queue_with_patience_matches_erlang_a(rho):
    """Exponential patience of mean 0.5 days: after the warm-up, the probabilities of waiting
    and of abandoning and the mean wait lie within K batch-means standard errors of Erlang A
    (also beyond capacity, rho = 1.1, where abandonment keeps the queue stable); the twin
    with patience of mean 0.65 days must fail."""
    scenario = mmc(rho * AGENTS, patience="exponential(mean=0.5)")
    log = sim.run(scenario, replications=REPLICATIONS, seed=6).log
    visits = queue_visits(log, since=WARM_UP, until=HORIZON - MARGIN)
    groups = visits["replication"]
    measured = [
        pd_mean(visits["wait"] > 0, groups),
        pd_mean(visits["abandoned"], groups),
        pd_mean(visits["wait"], groups),
    ]
    exact = erlang_a(rho * AGENTS, 1.0, AGENTS, 2.0)
    twin = erlang_a(rho * AGENTS, 1.0, AGENTS, 1 / 0.65)

    def gaps(expected):
        return [
            abs(m.mean() - e) / (m.std(ddof=1) / np.sqrt(len(m)))
            for m, e in zip(measured, expected, strict=True)
        ]

    assert max(gaps(exact)) <= K, gaps(exact)
    assert max(gaps(twin)) > K, gaps(twin)


def test_queues_over_time_and_plot():
    """Queue length and utilisation over time stay within [0, capacity]; the plot draws a
    waiting line and a utilisation line per resource."""
    from sim import plot
    from sim.analysis.queues import queue_over_time

    result = sim.run(mmc(2.7), replications=2, seed=1)
    table = queue_over_time(result.log)
    assert (table["busy"] <= AGENTS).all() and (table["queue"] >= 0).all()
    assert table.loc[table["day"].between(WARM_UP, 300), "utilisation"].mean() > 0.8
    fig = plot.queues(result)
    assert len(fig.axes[0].get_lines()) == 1 and len(fig.axes[1].get_lines()) == 1


@pytest.mark.slow
def test_persona_patience_factor_scales_patience():
    """A persona with patience_factor 0.5 in a queue whose patience has mean 1 day behaves
    as Erlang A with patience of mean 0.5 (abandonment within K standard errors), and not as
    Erlang A with the stage's own patience (the twin must fail)."""
    base = mmc(0.9 * AGENTS, patience="exponential(mean=1)")
    impatient = sim.Persona(name="impatient", share=1.0, patience_factor=0.5)
    log = sim.run(base.replace(personas=(impatient,)), replications=REPLICATIONS, seed=4).log
    visits = queue_visits(log, since=WARM_UP, until=HORIZON - MARGIN)
    quit_share = pd_mean(visits["abandoned"], visits["replication"])
    se = quit_share.std(ddof=1) / np.sqrt(len(quit_share))
    assert abs(quit_share.mean() - erlang_a(0.9 * AGENTS, 1.0, AGENTS, 2.0)[1]) <= K * se
    assert abs(quit_share.mean() - erlang_a(0.9 * AGENTS, 1.0, AGENTS, 1.0)[1]) > K * se


def test_patience_factor_round_trips(write_toml):
    """A persona's patience_factor loads, saves back, and must be positive."""
    text = (SCENARIOS / "support_staffing.toml").read_text()
    text = text.replace(
        'order_value = "fixed(29)"', 'order_value = "fixed(29)"\npatience_factor = 0.5'
    )
    scenario = sim.load_scenario(write_toml(text))
    assert scenario.personas[0].patience_factor == 0.5
    assert sim.load_scenario(write_toml(sim.save_scenario(scenario), "b.toml")) == scenario
    with pytest.raises(sim.ScenarioError, match="patience_factor"):
        sim.load_scenario(
            write_toml(text.replace("patience_factor = 0.5", "patience_factor = -1"), "c.toml")
        )


def _hire(units: int, window: tuple[float, float], per_unit_day: float = 0.0) -> sim.Intervention:
    return sim.Intervention(
        name="hire",
        window_days=window,
        effects=(sim.CapacityChange(resource="agents", units=units),),
        cost=sim.Cost(per_unit_day=per_unit_day),
    )


def test_capacity_change_holds_capacity_in_force():
    """Two more agents from day 100 to 200: whenever a customer starts service, the customers
    in service (them included) are at most the capacity in force; after day 200 the queue
    gets long again; the hiring reaches no customer and costs units x days x price."""
    from sim.analysis.queues import capacity_at

    scenario = mmc(2.7).replace(horizon_days=300.0).with_interventions(_hire(2, (100, 200), 50))
    log = sim.run(scenario, replications=2, seed=7).log.validate()
    visits = queue_visits(log)
    for r in range(2):
        served = visits[(visits["replication"] == r) & ~visits["abandoned"]]
        begin = (served["joined"] + served["wait"]).to_numpy()
        end = begin + served["service"].to_numpy()
        for t in begin:
            in_service = np.sum((begin <= t + 1e-9) & (end > t + 1e-9))
            assert in_service <= capacity_at(log, 0, np.array([t]))[0]
    during = visits[visits["joined"].between(120, 200)]["wait"].mean()
    after = visits[visits["joined"].between(220, 280)]["wait"].mean()
    assert during < after
    assert len(log.reach_customer) == 0 and (log.treatment == 0).all()
    costs = sim.analysis.intervention_costs(log, scenario.interventions, scenario.journey)
    assert np.allclose(costs["capacity_cost"], 2 * 100 * 50)


@pytest.mark.slow
def test_capacity_added_from_day_zero_is_erlang_c():
    """Two agents plus one added from day 0 by an intervention is an M/M/3 queue: the
    probability of waiting and the mean wait match Erlang C within K standard errors."""
    scenario = mmc(0.9 * AGENTS, c=AGENTS - 1).with_interventions(_hire(1, (0, math.inf)))
    log = sim.run(scenario, replications=REPLICATIONS, seed=8).log
    visits = queue_visits(log, since=WARM_UP, until=HORIZON - MARGIN)
    exact = erlang_c(0.9 * AGENTS, 1.0, AGENTS)
    for values, e in zip((visits["wait"] > 0, visits["wait"]), exact, strict=True):
        per_rep = pd_mean(values, visits["replication"])
        assert abs(per_rep.mean() - e) <= K * per_rep.std(ddof=1) / np.sqrt(len(per_rep))


def test_capacity_change_needs_a_known_resource(write_toml):
    """A capacity change names an existing resource; a per-unit-day cost needs one."""
    text = (SCENARIOS / "support_staffing.toml").read_text() + (
        "[[intervention]]\nname = 'hire'\n"
        "effects = [{ kind = 'capacity_change', resource = 'suport', units = 2 }]\n"
    )
    with pytest.raises(sim.ScenarioError, match="unknown resource 'suport'"):
        sim.load_scenario(write_toml(text))
    good = sim.load_scenario(write_toml(text.replace("'suport'", "'support'"), "b.toml"))
    again = sim.load_scenario(write_toml(sim.save_scenario(good), "c.toml"))
    assert again == good


def test_queue_summary_states_the_capacity_in_force():
    """With two agents hired from day 100 to 200 the summary's capacity is the time average
    over the window (AGENTS + 1 over days 150 to 250, AGENTS + 2/3 over the horizon; the
    day-0 capacity, the twin, is neither), with the fewest and most units, and utilisation
    is busy unit-days over the unit-days in force."""
    scenario = mmc(2.7).replace(horizon_days=300.0).with_interventions(_hire(2, (100, 200), 50))
    log = sim.run(scenario, seed=3).log
    window = queue_summary(log, since=150.0, until=250.0).iloc[0]
    assert window["capacity"] == pytest.approx(AGENTS + 1) != AGENTS
    assert (window["capacity_min"], window["capacity_max"]) == (AGENTS, AGENTS + 2)
    whole = queue_summary(log).iloc[0]
    assert whole["capacity"] == pytest.approx(AGENTS + 2 * 100 / 300)
    visits = queue_visits(log, 150.0, 250.0)
    begin = (visits["joined"] + visits["wait"]).to_numpy()
    busy = np.clip(np.minimum(begin + visits["service"], 250.0) - np.maximum(begin, 150.0), 0, None)
    assert window["utilisation"] == pytest.approx(busy.sum() / ((AGENTS + 1) * 100))
    plain = queue_summary(sim.run(mmc(2.7).replace(horizon_days=50.0), seed=3).log).iloc[0]
    assert plain["capacity"] == plain["capacity_min"] == plain["capacity_max"] == AGENTS
