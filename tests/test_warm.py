"""Warm start (:mod:`sim.engine.warm`): simulating on from the state customers are in today.

Each check holds the engine against an exact answer (the absorbing chain from the starting
stage, the conditional mean of a Weibull's remaining life, the Bayes formula for the share
gone by a silence) with a tolerance of four standard errors, and beside it a twin that fails
when the elapsed time is ignored.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sim
from sim.calibrate.table import read_table
from sim.engine.warm import remaining, survival
from sim.events import ENTRY
from tests.test_contract import assert_contract

AT = 50.0


def shop(active: sim.Distribution, repeat: float = 0.6, buy: float = 0.3) -> sim.Scenario:
    """Browse, buy, then buy again after a wait in 'active' or churn."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="browse", dwell=sim.Exponential(mean=2), next={"buy": buy, "lost": 1 - buy}
            ),
            sim.Stage(name="buy", dwell=sim.Fixed(0), purchase=True, next={"active": 1.0}),
            sim.Stage(name="active", dwell=active, next={"buy": repeat, "churned": 1 - repeat}),
            sim.Stage(name="lost", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    return sim.Scenario(
        name="shop",
        journey=journey,
        acquisition=sim.Cohort(size=1),
        personas=(sim.Persona(name="p", order_value=sim.Fixed(25)),),
        horizon_days=20_000.0,
    )


def today(scenario: sim.Scenario, groups: list[tuple[str, float, int]], ends: bool = True):
    """A log of customers who sit, at day AT, in a stage entered ``elapsed`` days before:
    ``groups`` lists (stage, elapsed, count). With ``ends`` one customer each is already
    lost and churned (so the log records those ends: no silent exits)."""
    rows = []
    k = 0
    for stage, elapsed, count in groups:
        for _ in range(count):
            rows.append((k, AT - elapsed, stage))
            k += 1
    if ends:
        rows += [(k, 1.0, "browse"), (k, 2.0, "lost"), (k + 1, 1.0, "active")]
        rows += [(k + 1, 3.0, "churned")]
    frame = pd.DataFrame(rows, columns=["id", "day", "event"])
    return sim.read_events(
        frame, customer="id", time="day", stage="event", journey=scenario, start=0, end=AT
    )


def first_moves(log: sim.EventLog, start: sim.EventLog | None = None) -> pd.DataFrame:
    """Per carried-over customer: the stage they started in, their first move and its day
    (and with the ``start`` log they came from, the days they had spent in that stage)."""
    frame = pd.DataFrame(
        {
            "customer": log.customer,
            "time": log.time,
            "from": log.from_stage,
            "to": log.to_stage,
        }
    )
    entry = frame[frame["from"] == ENTRY].set_index("customer")["to"]
    moves = frame[frame["from"] != ENTRY].groupby("customer").first()
    out = pd.DataFrame({"start": entry})
    out["to"] = moves["to"]
    out["days"] = moves["time"] - AT
    if start is not None:
        # customers keep their numbers when all of them entered before AT
        last = pd.Series(start.time).groupby(start.customer).max()
        out["elapsed"] = (AT - last).round(6)
    return out


def starting_in(scenario: sim.Scenario, stage: str) -> sim.Scenario:
    """The scenario's chain entered at ``stage`` (the stages it cannot reach left out)."""
    j = scenario.journey
    reach, todo = {stage}, [stage]
    while todo:
        for target, p in j.stage(todo.pop()).next:
            if p > 0 and target not in reach:
                reach.add(target)
                todo.append(target)
    kept = tuple(s for s in j.stages if s.name in reach)
    return scenario.replace(journey=dataclasses.replace(j, stages=kept, entry=stage))


def within(observed: float, expected: float, se: float) -> bool:
    """|observed - expected| within four standard errors."""
    return abs(observed - expected) <= 4 * se


def test_warm_start_from_exponential_stages_matches_the_absorbing_chain():
    """With exponential dwells the elapsed time does not matter: customers started in
    'browse' and in 'active' reach the ends and buy as the absorbing chain says from those
    stages (sim.expected with that stage as the entry), within four standard errors; those
    already lost or churned are carried over unchanged."""
    scenario = shop(sim.Exponential(mean=10))
    n = 3000
    log = today(scenario, [("browse", 1.5, n), ("active", 30.0, n)])
    result = sim.run(scenario, seed=3, start_from=log, at=AT)
    out = result.log
    assert_contract(out)
    assert out.warm_start == (AT, 2 * n + 2)
    assert result.provenance["warm_start"] == {"day": AT, "customers": 2 * n + 2}
    frame = pd.DataFrame({"c": out.customer, "to": out.to_stage, "from": out.from_stage})
    names = scenario.journey.names
    bought = frame[(frame["to"] == names.index("buy")) & (frame["from"] != ENTRY)]
    purchases = np.bincount(bought["c"], minlength=2 * n + 2)
    lost = np.zeros(2 * n + 2, dtype=bool)
    lost[frame.loc[frame["to"] == names.index("lost"), "c"]] = True
    start = first_moves(out)["start"].to_numpy()
    for stage in ("browse", "active"):
        who = start == names.index(stage)
        assert who.sum() == n
        exact = sim.expected(starting_in(scenario, stage)).summary.iloc[0]
        x = purchases[who]
        assert within(x.mean(), exact.purchases, x.std(ddof=1) / np.sqrt(n)), stage
        p = exact.get("p_lost", 0.0)
        assert within(lost[who].mean(), p, np.sqrt(max(p * (1 - p), 1e-12) / n)), stage
    # carried over unchanged: one row each, in their end stage
    for end in ("lost", "churned"):
        (k,) = np.flatnonzero(start == names.index(end))
        mine = frame[frame["c"] == k]
        assert len(mine) == 1 and (out.time[out.customer == k] == AT).all()


def _weibull_remaining_days(elapsed: float, seed: int = 4) -> tuple[np.ndarray, float]:
    law = sim.Weibull(shape=3, mean=10)
    scenario = shop(law)
    log = today(scenario, [("active", elapsed, 4000)])
    out = sim.run(scenario, seed=seed, start_from=log, at=AT).log
    days = first_moves(out)["days"].dropna().to_numpy()
    e = 10.0
    dist = stats.weibull_min(3, scale=law.scale)
    exact = dist.expect(lambda x: x - e, lb=e, conditional=True)
    return days, exact


def test_weibull_remaining_dwell_is_conditional_on_the_time_already_spent():
    """Customers who have waited 10 days in a Weibull(shape 3, mean 10) stage leave after
    E[X - 10 | X > 10] more days on average (scipy's conditional expectation), within four
    standard errors; that is about 3.0 days, not the unconditional 10."""
    days, exact = _weibull_remaining_days(elapsed=10.0)
    assert within(days.mean(), exact, days.std(ddof=1) / np.sqrt(len(days)))
    assert exact < 6


def test_weibull_twin_ignoring_the_elapsed_time_fails():
    """Power: the same customers started with no time spent (as an engine that ignored the
    elapsed time would treat them) wait far longer than the conditional answer allows."""
    days, exact = _weibull_remaining_days(elapsed=1e-9)
    assert not within(days.mean(), exact, days.std(ddof=1) / np.sqrt(len(days)))


@pytest.mark.parametrize(
    "law",
    [sim.Gamma(shape=2.5, mean=8), sim.Lognormal(mean=8, sigma=0.7), sim.Weibull(3, 8)],
    ids=["gamma", "lognormal", "weibull"],
)
def test_remaining_dwell_has_the_conditional_survival(law):
    """For each family, e + the remaining dwell is distributed as X given X > e: a KS test at
    level 0.001 against S(t) / S(e), with a twin (no conditioning) that the test rejects."""
    e = 9.0
    u = np.random.default_rng(1).random(4000)
    total = e + remaining(law, np.full(len(u), e), u)

    def conditional_cdf(t):
        return 1 - survival(law, t) / survival(law, e)

    assert stats.kstest(total, conditional_cdf).pvalue > 1e-3
    assert stats.kstest(e + law.quantile(u), conditional_cdf).pvalue < 1e-3


def test_the_never_again_share_is_updated_by_the_silence():
    """With churn never recorded (a silent end), customers silent for e days in 'active' are
    gone with probability pi / (pi + (1 - pi) S(e)) (Bayes), within four binomial standard
    errors, at three silences; the prior pi is rejected where the silence is long (twin)."""
    law = sim.Gamma(shape=2, mean=10)
    scenario = shop(law, repeat=0.6)
    pi = 0.4
    silences = [2.0, 10.0, 25.0]
    n = 2500
    log = today(scenario, [("active", e, n) for e in silences], ends=False)
    out = sim.run(scenario, seed=8, start_from=log, at=AT).log
    moves = first_moves(out, log)
    churned = scenario.journey.names.index("churned")
    for e in silences:
        mine = moves[moves["elapsed"] == e]
        assert len(mine) == n
        gone = (mine["to"] == churned).mean()
        s = float(survival(law, np.array([e]))[0])
        bayes = pi / (pi + (1 - pi) * s)
        assert within(gone, bayes, np.sqrt(bayes * (1 - bayes) / n)), e
        # those gone leave at AT (the silence hid when)
        assert (mine.loc[mine["to"] == churned, "days"] == 0).all()
    assert not within(gone, pi, np.sqrt(pi * (1 - pi) / n))


def test_the_same_seed_gives_the_same_log_at_any_worker_count():
    """Streams are keyed by the log's customer numbers: one worker or two, the same bytes."""
    scenario = shop(sim.Weibull(shape=2, mean=10))
    log = today(scenario, [("browse", 1.0, 40), ("active", 5.0, 40)])
    one = sim.run(scenario, 2, seed=9, start_from=log, at=AT, workers=1).log
    two = sim.run(scenario, 2, seed=9, start_from=log, at=AT, workers=2).log
    assert one.to_frame().equals(two.to_frame())
    assert not one.to_frame().equals(
        sim.run(scenario, 2, seed=10, start_from=log, at=AT).log.to_frame()
    )


def test_new_arrivals_by_channel_restart_at_the_warm_start():
    """A scenario with a channel: its arrivals start at ``at`` and are numbered after the
    carried-over customers; the log keeps the contract; a date works as ``at``."""
    scenario = shop(sim.Exponential(mean=10)).replace(
        acquisition=sim.Arrivals(channels=(sim.Channel(name="web", rate_per_day=5.0),)),
        horizon_days=30.0,
    )
    log = today(scenario, [("active", 3.0, 50)], ends=False)
    dated = dataclasses.replace(log, start_date="2025-01-01")
    out = sim.run(scenario, seed=2, start_from=dated, at="2025-02-20").log
    assert_contract(out)
    entries = out.from_stage == ENTRY
    new = entries & (out.customer >= 50)
    assert out.warm_start == (AT, 50)
    assert new.sum() > 50 and (out.time[new] >= AT).all()
    assert out.channels[int(out.channel[new][0])] == "web"


def test_warm_start_refuses_what_it_cannot_do():
    """The SimPy engine, customers who interact, a missing ``at`` and a day after the log's
    end each give a ScenarioError naming the limitation and the fix."""
    scenario = shop(sim.Exponential(mean=10))
    log = today(scenario, [("active", 3.0, 5)])
    with pytest.raises(sim.ScenarioError, match="vectorised engine only") as err:
        sim.run(scenario, start_from=log, at=AT, engine="simpy")
    assert "engine='auto'" in err.value.fix
    market = sim.load_scenario("scenarios/referral_programme.toml")
    with pytest.raises(sim.ScenarioError, match="interact"):
        sim.run(market, start_from=log, at=AT)
    with pytest.raises(sim.ScenarioError, match="needs both"):
        sim.run(scenario, start_from=log)
    with pytest.raises(sim.ScenarioError, match="after the end of the log"):
        sim.run(scenario, start_from=log, at=AT + 1)


def orders_scenario(gap_mean: float = 30.0, never: float = 0.3) -> sim.Scenario:
    """A transaction log's journey: order, wait a Weibull gap, order again or never."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="purchase", dwell=sim.Fixed(0), purchase=True, next={"post_purchase": 1}
            ),
            sim.Stage(
                name="post_purchase",
                dwell=sim.Weibull(shape=2, mean=gap_mean),
                next={"purchase": 1 - never, "churned": never},
            ),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    return sim.Scenario(
        name="orders",
        journey=journey,
        acquisition=sim.Cohort(size=1500),
        personas=(sim.Persona(name="p", order_value=sim.Lognormal(mean=40, sigma=0.5)),),
        horizon_days=200.0,
    )


@pytest.fixture(scope="module")
def orders_log(tmp_path_factory) -> sim.EventLog:
    """Orders simulated from ``orders_scenario()``, read back as a shop's export is (customer,
    date, amount; churn never recorded)."""
    log = sim.run(orders_scenario(), seed=21).log
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    log.to_transactions(start="2025-01-01").to_csv(path, index=False)
    return read_table(path, customer="customer_id", time="date", value="value")


def test_check_from_a_date_passes_on_data_from_the_scenario(orders_log):
    """Warm-started at day 100 from the orders before it, the true scenario forecasts the
    next 14 weeks' purchases, week by week and in total, and the retention curve, within
    the limits; the table has a total and starts at the week of the date."""
    result = sim.calibrate.check(orders_scenario(), orders_log, replications=10, holdout_from=100)
    assert result.passed, result.table[~result.table["ok"]]
    assert result.warm_start == 100
    assert result.weekly["item"].min() == 100 // 7
    assert len(result.total) == 1 and len(result.retention) >= 5


def test_check_from_a_date_fails_on_data_from_another_scenario(orders_log):
    """Power: a scenario whose buyers come back twice as fast and churn less is rejected by
    the same forecast."""
    other = orders_scenario(gap_mean=15.0, never=0.15)
    assert not sim.calibrate.check(other, orders_log, replications=10, holdout_from=100).passed


def test_check_report_shows_retention_and_the_warm_start(orders_log, tmp_path):
    """The HTML report of an out-of-sample check has the retention plot and table and says
    the customers were warm-started; the CSV beside it holds the total and the curve."""
    from sim.check_report import write_check_report

    result = sim.calibrate.check(orders_scenario(), orders_log, replications=3, holdout_from=100)
    path = write_check_report(result, tmp_path / "report.html")
    page = path.read_text()
    assert "retention" in page and "warm-started" in page and "Purchases in total" in page
    table = pd.read_csv(path.with_suffix(".csv"))
    assert {"purchases in total", "buying again at day"} <= set(table["measure"])


def test_an_intervention_acts_on_warm_started_customers_as_the_chain_says():
    """An open-ended intervention doubling the odds of buying again acts on customers
    carried over in 'active': their purchases match the treated absorbing chain from 'active'
    (sim.expected), within four standard errors, and not the untreated one (twin); the log
    marks the treated rows and reaches every customer at ``at``."""
    base = shop(sim.Exponential(mean=10))
    iv = sim.Intervention(
        name="win_back", effects=(sim.OddsRatio(stage="active", to="buy", ratio=2.0),)
    )
    scenario = base.with_interventions(iv)
    n = 3000
    log = today(scenario, [("active", 12.0, n)])
    out = sim.run(scenario, seed=5, start_from=log, at=AT).log
    assert_contract(out)
    buy = scenario.journey.names.index("buy")
    moves = out.from_stage != ENTRY
    purchases = np.bincount(out.customer[moves & (out.to_stage == buy)], minlength=n + 2)
    start = first_moves(out)["start"].to_numpy()
    x = purchases[start == scenario.journey.names.index("active")]
    se = x.std(ddof=1) / np.sqrt(len(x))
    treated = sim.expected(starting_in(scenario, "active")).summary.iloc[0].purchases
    untreated = sim.expected(starting_in(base, "active")).summary.iloc[0].purchases
    assert within(x.mean(), treated, se)
    assert not within(x.mean(), untreated, se)
    leaving_active = moves & (out.from_stage == scenario.journey.names.index("active"))
    assert (out.treatment[leaving_active] == 1).all()
    assert (out.reach_time == AT).sum() == n


#: Two personas of the repeat loop: fast buyers (share 0.3, gaps a third as long, rarely
#: gone) and slow ones (gaps three times as long, often gone).
FAST, SLOW = dict(share=0.3, factor=1 / 3, odds=-1.0), dict(share=0.7, factor=3.0, odds=1.0)
BASE_NEVER = 0.3


def two_buyers() -> sim.Scenario:
    """Buy, then after an exponential gap in 'active' buy again or silently never; two
    personas that differ in the gap and the never-again share."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="buy", dwell=sim.Fixed(0), purchase=True, next={"active": 1.0}),
            sim.Stage(
                name="active",
                dwell=sim.Exponential(mean=10),
                next={"buy": 1 - BASE_NEVER, "churned": BASE_NEVER},
            ),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    personas = tuple(
        sim.Persona(
            name=name,
            share=p["share"],
            attributes={"never": p["odds"]},
            dwell_factors={"active": p["factor"]},
            order_value=sim.Fixed(25),
        )
        for name, p in (("fast", FAST), ("slow", SLOW))
    )
    return sim.Scenario(
        name="two buyers",
        journey=journey,
        acquisition=sim.Cohort(size=1),
        personas=personas,
        effects=(sim.Effect(stage="active", to="churned", attribute="never", coefficient=1.0),),
        horizon_days=30.0,
    )


def histories(groups: list[tuple[list[float], float, int]]) -> sim.EventLog:
    """A transaction-style log (churn never recorded): ``groups`` lists (gaps between orders,
    days silent at AT since the last order, count); no persona column."""
    rows, k = [], 0
    for gaps, silence, count in groups:
        start = AT - silence - sum(gaps)
        for _ in range(count):
            t = start
            rows += [(k, t, "buy"), (k, t, "active")]
            for g in gaps:
                t += g
                rows += [(k, t, "buy"), (k, t, "active")]
            k += 1
    frame = pd.DataFrame(rows, columns=["id", "day", "event"])
    # read with the journey only: read with the scenario, every customer would be labelled
    # its first persona
    return sim.read_events(
        frame,
        customer="id",
        time="day",
        stage="event",
        journey=two_buyers().journey,
        start=0,
        end=AT,
    )


def bayes_fast(gaps: list[float], silence: float) -> float:
    """P(fast | history), written out from the scenario's numbers (scipy's exponential)."""
    from scipy.special import expit, logit

    like = {}
    for name, p in (("fast", FAST), ("slow", SLOW)):
        law = stats.expon(scale=10 * p["factor"])
        q = expit(logit(BASE_NEVER) + p["odds"])
        history = np.prod(law.pdf(gaps)) * (1 - q) ** len(gaps)
        like[name] = p["share"] * history * (q + (1 - q) * law.sf(silence))
    return like["fast"] / (like["fast"] + like["slow"])


POSTERIOR_GROUPS = [([2.0, 3.0, 2.5], 1.0, 2000), ([25.0], 20.0, 2000), ([], 8.0, 2000)]


def test_warm_started_personas_follow_the_posterior_given_each_history():
    """Without a persona column, each customer's persona is drawn from the posterior given
    their own gaps, order count and silence: the share of fast buyers among customers with one
    history matches the exact Bayes posterior within four binomial standard errors, for three
    histories (quick buyer, slow buyer, a first order only); the prior share 0.3 is rejected
    for each (the twin: drawing from the shares would fail)."""
    scenario = two_buyers()
    log = histories(POSTERIOR_GROUPS)
    out = sim.run(scenario, seed=21, start_from=log, at=AT).log
    entry = out.from_stage == ENTRY
    fast = pd.Series(out.persona[entry] == 0, index=out.customer[entry])
    # customers keep their numbers (all entered before AT); each history starts on its own day
    started = pd.Series(log.time).groupby(log.customer).min()
    for gaps, silence, n in POSTERIOR_GROUPS:
        mine = started.index[np.isclose(started, AT - silence - sum(gaps))]
        assert len(mine) == n
        share = fast[mine].mean()
        exact = bayes_fast(gaps, silence)
        assert within(share, exact, np.sqrt(exact * (1 - exact) / n)), (gaps, share, exact)
        prior = FAST["share"]
        assert not within(share, prior, np.sqrt(prior * (1 - prior) / n)), gaps


def test_the_persona_posterior_gives_the_same_bytes_at_any_worker_count():
    """The posterior draw uses each customer's own keyed stream: one worker or two, the same
    log."""
    scenario = two_buyers()
    log = histories([(g, s, 30) for g, s, _ in POSTERIOR_GROUPS])
    one = sim.run(scenario, 2, seed=4, start_from=log, at=AT, workers=1).log
    two = sim.run(scenario, 2, seed=4, start_from=log, at=AT, workers=2).log
    assert one.to_frame().equals(two.to_frame())
