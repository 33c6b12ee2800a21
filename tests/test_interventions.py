"""Interventions: null effects change nothing, effects match the exact chain, costs are exact,
budgets hold, and bad input is explained."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.engine import CompiledScenario, simulate
from sim.events import ENTRY
from sim.interventions import discount, loyalty_program, referral_program
from sim.model.logit import treated_matrix
from tests.strategies import edge_mask, scenarios_with_interventions
from tests.validation import SCENARIOS, disagreements

MOVES = ("customer", "time", "from_stage", "to_stage", "value", "persona", "channel")


def _log(scenario: sim.Scenario, seed: int = 4, replication: int = 0):
    return simulate(CompiledScenario.build(scenario), seed, replication)


def _same_moves(a, b) -> bool:
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in MOVES)


@pytest.fixture(scope="module")
def shop() -> sim.Scenario:
    return sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(3000)


def _ghost_scenario() -> sim.Scenario:
    """Arrivals where persona 'ghost' exists in the model but no channel brings any."""
    base = sim.load_scenario(SCENARIOS / "subscription.toml")
    personas = (
        *base.personas[:1],
        sim.Persona(
            name="occasional", share=0.6, attributes={"engagement": 0.3}, order_value="fixed(9)"
        ),
        sim.Persona(name="ghost", share=0.1, attributes={"engagement": 0.5}),
    )
    mix = {"power_user": 0.5, "occasional": 0.5, "ghost": 0.0}
    channels = tuple(
        sim.Channel(name=c.name, rate_per_day=c.rate_per_day, persona_mix=mix)
        for c in base.acquisition.channels
    )
    return base.replace(
        personas=personas, acquisition=sim.Arrivals(channels=channels), horizon_days=120
    )


NULL_INTERVENTIONS = {
    "odds ratio 1": lambda: sim.Intervention(
        name="nothing", effects=(sim.OddsRatio(stage="intent", to="purchase", ratio=1.0),)
    ),
    "reach 0": lambda: discount(depth=0.3, reach=0.0),
    "window after the horizon": lambda: discount(depth=0.3, window_days=(400, 500)),
    "dwell and value factors of 1": lambda: sim.Intervention(
        name="nothing",
        effects=(
            sim.DwellFactor(stage="consideration", factor=1.0),
            sim.OrderValueFactor(factor=1.0),
        ),
    ),
}


@pytest.mark.parametrize("make", NULL_INTERVENTIONS.values(), ids=NULL_INTERVENTIONS.keys())
def test_null_intervention_leaves_the_log_identical(shop, make):
    """Under common random numbers an intervention that changes nothing gives exactly the
    baseline's event log: same customers, same moves, same times, same values."""
    assert _same_moves(_log(shop), _log(shop.with_interventions(make())))


def test_targeting_an_absent_persona_changes_nothing():
    """An intervention aimed at a persona no channel brings leaves the log identical."""
    base = _ghost_scenario()
    aimed = base.with_interventions(
        sim.Intervention(
            name="for_ghosts",
            personas=("ghost",),
            effects=(sim.OddsRatio(stage="decision", to="retention", ratio=5.0),),
        )
    )
    assert _same_moves(_log(base), _log(aimed))


def test_an_intervention_changes_only_the_customers_it_reaches(shop):
    """Customers the discount never reached move exactly as in the baseline."""
    offer = discount(depth=0.3, personas=["bargain_hunter"], reach=0.5)
    a, b = _log(shop), _log(shop.with_interventions(offer))
    reached = np.unique(b.reach_customer)
    untouched_a = ~np.isin(a.customer, reached)
    untouched_b = ~np.isin(b.customer, reached)
    for col in MOVES:
        np.testing.assert_array_equal(getattr(a, col)[untouched_a], getattr(b, col)[untouched_b])
    assert 0 < len(reached) < shop.acquisition.size


def test_several_interventions_on_one_transition_multiply_their_odds_ratios(shop):
    """Odds ratios 1.2 and 1.5 on one transition act as a single odds ratio of 1.8."""

    def odds(*ratios):
        return tuple(
            sim.Intervention(
                name=f"or{i}", effects=(sim.OddsRatio(stage="intent", to="purchase", ratio=r),)
            )
            for i, r in enumerate(ratios)
        )

    persona = shop.personas[0]
    both = treated_matrix(shop.journey, persona, shop.effects, odds(1.2, 1.5))
    one = treated_matrix(shop.journey, persona, shop.effects, odds(1.8))
    np.testing.assert_allclose(both, one, rtol=1e-12)
    a = sim.expected(shop.with_interventions(*odds(1.2, 1.5))).summary
    b = sim.expected(shop.with_interventions(*odds(1.8))).summary
    np.testing.assert_allclose(a["conversion"], b["conversion"], rtol=1e-12)


@pytest.mark.slow
def test_intervention_effects_agree_with_the_exact_chain():
    """A targeted discount with partial reach and a loyalty programme: the simulation matches
    the exact expanded chain, and fails against a discount with a wrong odds ratio."""
    base = sim.load_scenario(SCENARIOS / "baseline.toml")

    def variant(elasticity: float) -> sim.Scenario:
        return base.with_interventions(
            discount(depth=0.2, elasticity=elasticity, personas=["bargain_hunter"], reach=0.6),
            loyalty_program(churn_factor=0.6, repeat_factor=1.5, reach=0.7),
        )

    scenario = variant(3.0)
    result = sim.run(scenario.replace(horizon_days=1e6), seed=8, customers=80_000)
    assert disagreements(result, sim.expected(scenario)) == []
    assert disagreements(result, sim.expected(variant(6.0)))


@pytest.mark.slow
def test_new_transition_and_channel_targeting_agree_with_the_exact_chain():
    """Opening a transition for one channel's customers matches the exact mixture over
    channels, and fails against a transition opened with a wrong probability."""
    base = sim.load_scenario(SCENARIOS / "baseline.toml").replace(
        acquisition=sim.Arrivals(
            channels=(
                sim.Channel(name="ads", rate_per_day=40),
                sim.Channel(name="email", rate_per_day=20),
            )
        )
    )

    def variant(p: float) -> sim.Scenario:
        return base.with_interventions(
            referral_program(
                stage="consideration",
                to="purchase",
                open_probability=p,
                channels=["email"],
                stages=["consideration"],
            )
        )

    # arrivals for 1,000 days (then practically none), and a horizon long enough for every
    # journey to end; the stop changes arrivals only, not anyone's journey
    stop = sim.Intervention(
        name="stop",
        window_days=(1000, math.inf),
        effects=(
            sim.ArrivalRateFactor(channel="ads", factor=1e-12),
            sim.ArrivalRateFactor(channel="email", factor=1e-12),
        ),
    )
    run = variant(0.15).with_interventions(stop).replace(horizon_days=1e6)
    result = sim.run(run, seed=2)
    assert disagreements(result, sim.expected(variant(0.15))) == []
    assert disagreements(result, sim.expected(variant(0.10)))


def test_per_reached_cost_is_reached_customers_times_the_price(shop):
    """Reaching everyone of a persona at entry: reached = that persona's customers, and the
    cost is exactly fixed + reached x price + purchases x price."""
    offer = sim.Intervention(
        name="welcome",
        personas=("brand_loyal",),
        effects=(sim.OrderValueFactor(factor=0.9),),
        cost=sim.Cost(fixed=100, per_reached=0.75, per_conversion=2.0),
    )
    result = sim.run(shop.with_interventions(offer), replications=2, seed=3)
    costs = result.costs().set_index("replication")
    log = result.log
    entries = log.from_stage == ENTRY
    for r in (0, 1):
        loyal = np.sum(entries & (log.replication == r) & (log.persona == 1))
        assert costs.loc[r, "reached"] == loyal
        purchase_rows = (log.replication == r) & (log.to_stage == 3) & (log.persona == 1)
        assert costs.loc[r, "purchases"] == np.sum(purchase_rows & ~entries)
        assert costs.loc[r, "total"] == 100 + 0.75 * loyal + 2.0 * costs.loc[r, "purchases"]
    reached = result.log.reached_frame()
    assert list(reached.columns) == ["replication", "customer", "intervention", "time"]
    assert (reached.groupby("replication").size() == costs["reached"]).all()
    assert set(reached["intervention"]) == {"welcome"} and (reached["time"] == 0).all()


@settings(max_examples=20, deadline=None)
@given(
    budget=st.floats(0, 4000),
    per_reached=st.floats(0, 5),
    per_conversion=st.floats(0, 20),
    fixed=st.floats(0, 500),
)
def test_a_budget_cap_is_never_exceeded(budget, per_reached, per_conversion, fixed):
    """Whatever the prices, spending (fixed + reach + conversions) stays within the budget."""
    scenario = sim.load_scenario(SCENARIOS / "baseline.toml").with_customers(800)
    if fixed > budget:
        with pytest.raises(sim.ScenarioError, match="budget"):
            scenario.with_interventions(
                loyalty_program(
                    budget=budget,
                    fixed=fixed,
                    per_reached=per_reached,
                    per_conversion=per_conversion,
                    join_at=("awareness",),
                )
            )
        return
    offer = loyalty_program(
        budget=budget,
        fixed=fixed,
        per_reached=per_reached,
        per_conversion=per_conversion,
        join_at=("awareness",),
    )
    costs = sim.run(scenario.with_interventions(offer), seed=1).costs()
    assert (costs["total"] <= budget + 1e-6).all()


def test_a_binding_budget_stops_reaching_customers(shop):
    """With a budget for 100 customers, exactly 100 are reached, the first ones to arrive at a
    target stage."""
    offer = discount(depth=0.2, stages=["awareness"], per_reached=1.0, budget=100)
    log = _log(shop.with_interventions(offer))
    assert len(log.reach_customer) == 100
    assert np.all(np.diff(log.reach_time) >= 0)


def test_ad_campaign_raises_arrivals_only_in_its_window():
    """Doubling a channel's rate on days 20-40 doubles arrivals there (within 4 Poisson SDs);
    arrivals before the window are the same customers at the same times."""
    base = sim.load_scenario(SCENARIOS / "subscription.toml").replace(horizon_days=60)
    campaign = sim.interventions.ad_campaign(
        channel="search", rate_factor=2.0, window_days=(20, 40)
    )
    a, b = _log(base), _log(base.with_interventions(campaign))
    ea = (a.from_stage == ENTRY) & (a.channel == 0)
    eb = (b.from_stage == ENTRY) & (b.channel == 0)
    in_window = np.sum((b.time[eb] >= 20) & (b.time[eb] < 40))
    expected = 30 * 2 * 20
    assert abs(in_window - expected) <= 4 * math.sqrt(expected)
    np.testing.assert_array_equal(a.time[ea & (a.time < 20)], b.time[eb & (b.time < 20)])
    after = np.sum(b.time[eb] >= 40)
    assert abs(after - 30 * 20) <= 4 * math.sqrt(30 * 20)


def test_exact_answers_refuse_windows_and_budgets(shop):
    """The chain has no clock: a windowed or budgeted intervention is refused, with the fix."""
    with pytest.raises(sim.ScenarioError, match="time window or budget"):
        sim.expected(shop.with_interventions(discount(depth=0.1, window_days=(0, 30))))


BAD = [
    (
        "unknown transition",
        '{ kind = "odds_ratio", stage = "intent", to = "churned", ratio = 1.4 }',
        ["intervention 'x'", "unknown transition 'intent' -> 'churned'", "new_transition"],
    ),
    (
        "odds ratio zero",
        '{ kind = "odds_ratio", stage = "intent", to = "purchase", ratio = 0 }',
        ["ratio must be a positive number, got 0"],
    ),
    (
        "odds ratio negative",
        '{ kind = "odds_ratio", stage = "intent", to = "purchase", ratio = -2 }',
        ["ratio must be a positive number, got -2"],
    ),
    (
        "unknown kind",
        '{ kind = "odds_ratoi", stage = "intent", to = "purchase", ratio = 2 }',
        ["unknown effect kind 'odds_ratoi'", "did you mean 'odds_ratio'"],
    ),
    (
        "unknown stage",
        '{ kind = "dwell_factor", stage = "intnet", factor = 0.5 }',
        ["unknown stage 'intnet'", "did you mean 'intent'"],
    ),
]


@pytest.mark.parametrize("what,effect,words", BAD, ids=[b[0] for b in BAD])
def test_bad_intervention_effects_are_explained(write_toml, what, effect, words):
    """Each bad effect raises ScenarioError naming the file, the intervention and the fix."""
    text = (
        f'[scenario]\nname = "v"\nextends = "{SCENARIOS / "baseline.toml"}"\n\n'
        f'[[intervention]]\nname = "x"\neffects = [{effect}]\n'
    )
    path = write_toml(text)
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for w in words:
        assert w in message, f"{what}: {w!r} not in {message!r}"


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("window_days", "[60, 30]", ["window [60, 30) ends before it starts", "window_days"]),
        ("reach", "1.5", ["reach must be a share in [0, 1], got 1.5"]),
        ("reach", "-0.1", ["reach must be a share in [0, 1]"]),
        ("personas", '["bargain_hunters"]', ["unknown persona 'bargain_hunters'", "did you mean"]),
        ("budget", "-5", ["budget must be an amount >= 0"]),
    ],
)
def test_bad_intervention_targets_are_explained(write_toml, field, value, words):
    """Bad whom-fields name the intervention and the field."""
    text = (
        f'[scenario]\nname = "v"\nextends = "{SCENARIOS / "baseline.toml"}"\n\n'
        f'[[intervention]]\nname = "x"\n{field} = {value}\n'
        'effects = [{ kind = "order_value_factor", factor = 0.9 }]\n'
    )
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(write_toml(text))
    for w in words:
        assert w in str(info.value)
    assert "intervention 'x'" in str(info.value)


def test_variants_extend_their_baseline():
    """discount.toml is the baseline plus its intervention, built from the library preset."""
    base = sim.load_scenario(SCENARIOS / "baseline.toml")
    variant = sim.load_scenario(SCENARIOS / "discount.toml")
    assert variant.journey == base.journey and variant.personas == base.personas
    assert variant.seed == base.seed and variant.name == "discount"
    assert variant.interventions == (
        discount(
            name="launch_discount",
            depth=0.15,
            elasticity=3.0,
            personas=["bargain_hunter"],
            window_days=(0, 60),
            reach=0.5,
            fixed=3000,
            per_reached=0.5,
            per_conversion=1.0,
            budget=6000,
        ),
    )


def test_extends_errors_are_explained(write_toml, tmp_path):
    """A missing base file and a cycle are reported with the file and the field."""
    path = write_toml('[scenario]\nname = "v"\nextends = "nope.toml"\n')
    with pytest.raises(sim.ScenarioError, match=r"extends 'nope\.toml', which is not found"):
        sim.load_scenario(path)
    (tmp_path / "a.toml").write_text('[scenario]\nname = "a"\nextends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('[scenario]\nname = "b"\nextends = "a.toml"\n')
    with pytest.raises(sim.ScenarioError, match="leads back to this file"):
        sim.load_scenario(tmp_path / "a.toml")


@pytest.mark.parametrize("name", ["discount.toml", "loyalty.toml", "referral.toml"])
def test_variant_files_round_trip(name, tmp_path):
    """Variants save (flattened) and load back equal."""
    s = sim.load_scenario(SCENARIOS / name)
    sim.save_scenario(s, tmp_path / name)
    assert sim.load_scenario(tmp_path / name) == s


def test_events_name_the_interventions_acting():
    """The events frame says which interventions acted on each move."""
    scenario = sim.load_scenario(SCENARIOS / "loyalty.toml").with_customers(500)
    events = sim.run(scenario, seed=1).events
    acting = events.loc[events["interventions"] != "", "from_stage"]
    assert len(acting) > 0 and set(acting.astype(str)) <= {"purchase", "post_purchase"}


@given(scenarios_with_interventions())
def test_any_interventions_keep_probabilities_valid(scenario):
    """For every persona and every combination of interventions acting together, each
    transient stage's probabilities lie in [0, 1] and sum to 1."""
    ivs = scenario.interventions
    for persona in scenario.personas:
        for mask in range(2 ** len(ivs)):
            chosen = [iv for i, iv in enumerate(ivs) if mask >> i & 1]
            m = treated_matrix(scenario.journey, persona, scenario.effects, chosen)
            rows = m[[not s.absorbing for s in scenario.journey.stages]]
            assert np.all((rows >= 0) & (rows <= 1)) and np.allclose(rows.sum(axis=1), 1)


@given(scenarios_with_interventions())
def test_interventions_keep_journeys_valid_and_within_their_bounds(scenario):
    """With any interventions: every step is an edge of the journey or a transition an
    intervention opened; times never go back; customers are reached only inside the window,
    at a targeted stage, if their persona is targeted; no budget is exceeded; the same seed
    gives the same log."""
    log = _log(scenario, seed=scenario.seed)
    j = scenario.journey
    allowed = edge_mask(scenario)
    for iv in scenario.interventions:
        for e in iv.of_kind(sim.NewTransition):
            allowed[j.index(e.stage), j.index(e.to)] = True
    order = np.lexsort((np.arange(len(log)), log.customer))
    frm, to, t, cust = (
        log.from_stage[order],
        log.to_stage[order],
        log.time[order],
        log.customer[order],
    )
    moves = frm != ENTRY
    assert np.all(allowed[frm[moves], to[moves]])
    same = cust[1:] == cust[:-1]
    assert np.all(t[1:][same] >= t[:-1][same])
    persona_of = np.zeros(log.customers[0], dtype=int)
    persona_of[log.customer] = log.persona
    for c, i, when in zip(log.reach_customer, log.reach_intervention, log.reach_time, strict=True):
        iv = scenario.interventions[i]
        start, end = iv.window_days
        assert start <= when < end
        if iv.personas:
            assert scenario.persona_names[persona_of[c]] in iv.personas
        if iv.stages:
            entered = {j.names[s] for s in log.to_stage[(log.customer == c) & (log.time == when)]}
            assert entered & set(iv.stages)
    costs = sim.RunResult(scenario=scenario, log=log, provenance={}).costs()
    for iv in scenario.interventions:
        if iv.budget is not None:
            assert (costs[costs.intervention == iv.name]["total"] <= iv.budget + 1e-6).all()
    again = _log(scenario, seed=scenario.seed)
    assert _same_moves(log, again)
    np.testing.assert_array_equal(log.treatment, again.treatment)


def _subscription_with_trial_offer(**effects_and_cost) -> sim.Scenario:
    """Visit -> trial -> paid subscription renewed monthly; an offer acting on trial ->
    paid for its first 60 days."""
    journey = sim.Journey(
        stages=(
            sim.Stage(
                name="visit", dwell=sim.Exponential(mean=2), next={"trial": 0.6, "lost": 0.4}
            ),
            sim.Stage(
                name="trial", dwell=sim.Exponential(mean=10), next={"paid": 0.5, "lost": 0.5}
            ),
            sim.Stage(
                name="paid",
                purchase=True,
                dwell=sim.Exponential(mean=30),
                next={"paid": 0.85, "churned": 0.15},
            ),
            sim.Stage(name="lost", absorbing=True),
            sim.Stage(name="churned", absorbing=True),
        )
    )
    offer = sim.Intervention(
        name="trial_offer",
        window_days=(0, 60),
        effects=effects_and_cost["effects"],
        cost=sim.Cost(per_conversion=effects_and_cost.get("per_conversion", 1.0)),
    )
    return sim.Scenario(
        name="trial_offer",
        journey=journey,
        personas=(sim.Persona(name="everyone", order_value=sim.Fixed(20.0)),),
        acquisition=sim.Cohort(size=300),
        interventions=(offer,),
        horizon_days=240,
        seed=4,
    )


def test_an_offer_on_trial_to_paid_is_charged_for_activations_only():
    """Hand count: an offer that changes trial -> paid is charged per_conversion for each
    trial -> paid move it acted on, not for the renewals (paid -> paid) that follow while its
    window is open, although those rows carry its treatment bit too."""
    scenario = _subscription_with_trial_offer(
        effects=(sim.OddsRatio(stage="trial", to="paid", ratio=2.0),), per_conversion=1.5
    )
    result = sim.run(scenario, replications=2, seed=8)
    log, j = result.log, scenario.journey
    costs = result.costs().set_index("replication")
    acted = (log.treatment & 1).astype(bool)
    into_paid = log.to_stage == j.index("paid")
    activations = acted & into_paid & (log.from_stage == j.index("trial"))
    renewals = acted & into_paid & (log.from_stage == j.index("paid"))
    assert renewals.sum() > 0, "renewals within the window are what this test is about"
    for r in (0, 1):
        mine = log.replication == r
        assert costs.loc[r, "purchases"] == np.sum(activations & mine)
        assert costs.loc[r, "purchase_cost"] == 1.5 * np.sum(activations & mine)
        assert costs.loc[r, "total"] == costs.loc[r, "purchase_cost"]
    # profit in the comparison metrics subtracts the same cost
    metrics = result.metrics().query("persona == 'all' and metric == 'cost'")
    np.testing.assert_array_equal(metrics["value"], costs["total"])


def test_a_discount_is_charged_for_every_order_it_prices():
    """An order-value factor changes the value of every purchase made while it acts, so each
    of those purchases, renewals included, is credited (hand count over the treated rows)."""
    scenario = _subscription_with_trial_offer(effects=(sim.OrderValueFactor(factor=0.8),))
    result = sim.run(scenario, replications=1, seed=8)
    log = result.log
    into_paid = (log.to_stage == scenario.journey.index("paid")) & (log.from_stage >= 0)
    treated = into_paid & (log.treatment & 1).astype(bool)
    assert result.costs()["purchases"].iloc[0] == treated.sum() > 0
    assert np.all(log.value[treated] == 16.0) and np.all(log.value[into_paid & ~treated] == 20)
