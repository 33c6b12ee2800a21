"""Hypothesis strategies for valid model objects (one place, used by every property test)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import sim
from sim.model.logit import transition_matrices
from sim.model.loops import MAX_ZERO_TIME_MOVES, zero_time_loops

positive = st.floats(min_value=0.05, max_value=50, allow_nan=False)


@st.composite
def distributions(draw, allow_zero: bool = True) -> sim.distributions.Distribution:
    """Any dwell-time or order-value law with sensible parameters."""
    kind = draw(st.sampled_from(["exp", "gamma", "lognormal", "weibull", "fixed", "empirical"]))
    if kind == "exp":
        if draw(st.booleans()):
            return sim.Exponential(mean=draw(positive))
        return sim.Exponential(rate=draw(positive))
    if kind == "gamma":
        return sim.Gamma(shape=draw(st.floats(0.3, 10)), mean=draw(positive))
    if kind == "lognormal":
        return sim.Lognormal(mean=draw(positive), sigma=draw(st.floats(0, 1.5)))
    if kind == "weibull":
        return sim.Weibull(shape=draw(st.floats(0.5, 5)), mean=draw(positive))
    if kind == "fixed":
        return sim.Fixed(draw(st.floats(0 if allow_zero else 0.05, 50)))
    return sim.Empirical(tuple(draw(st.lists(st.floats(0, 50), min_size=1, max_size=6))))


def _normalised(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights]


@st.composite
def journeys(draw) -> sim.Journey:
    """A valid journey: a spine entry -> ... -> end guarantees reachability and an exit;
    extra edges add branches, loops and several ends."""
    n_transient = draw(st.integers(1, 5))
    n_ends = draw(st.integers(1, 2))
    names = [f"s{i}" for i in range(n_transient)] + [f"end{i}" for i in range(n_ends)]
    stages = []
    for i in range(n_transient):
        # the last transient stage leads to every end, so every end is reachable
        spine = [names[i + 1]] if i < n_transient - 1 else names[n_transient:]
        extra = draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        targets = spine + [t for t in extra if t not in spine]
        weights = _normalised(
            draw(st.lists(st.floats(0.05, 1), min_size=len(targets), max_size=len(targets)))
        )
        stages.append(
            sim.Stage(
                name=names[i],
                next=dict(zip(targets, weights, strict=True)),
                dwell=draw(distributions()),
                purchase=draw(st.booleans()),
            )
        )
    stages += [sim.Stage(name=n, absorbing=True) for n in names[n_transient:]]
    return sim.Journey(stages=tuple(stages))


@st.composite
def scenarios(draw, max_customers: int = 30) -> sim.Scenario:
    """A valid scenario: random journey, 1-3 personas with an attribute, effects, a cohort."""
    journey = draw(journeys())
    n_personas = draw(st.integers(1, 3))
    shares = _normalised(
        draw(st.lists(st.floats(0.1, 1), min_size=n_personas, max_size=n_personas))
    )
    personas = tuple(
        sim.Persona(
            name=f"p{i}",
            share=shares[i],
            attributes={"a": draw(st.floats(0, 1))},
            order_value=draw(distributions()),
            dwell_factors={draw(st.sampled_from(journey.transient)): draw(st.floats(0.2, 3))},
        )
        for i in range(n_personas)
    )
    edges = [(s.name, t) for s in journey.stages for t, _ in s.next]
    chosen = draw(st.lists(st.sampled_from(edges), max_size=3))
    effects = tuple(
        sim.Effect(stage=a, to=b, attribute="a", coefficient=draw(st.floats(-4, 4)))
        for a, b in chosen
    )
    # validation refuses loops that go round in zero time without end: draw none of them
    assume(
        all(
            moves <= MAX_ZERO_TIME_MOVES
            for matrix in transition_matrices(journey, personas, effects)
            for _, moves in zero_time_loops(journey, matrix)
        )
    )
    return sim.Scenario(
        name="random",
        journey=journey,
        personas=personas,
        effects=effects,
        acquisition=sim.Cohort(size=draw(st.integers(1, max_customers))),
        horizon_days=draw(st.floats(1, 400)),
        seed=draw(st.integers(0, 2**32)),
    )


def edge_mask(scenario: sim.Scenario) -> np.ndarray:
    """S x S booleans: transitions of the journey with a positive base probability."""
    j = scenario.journey
    mask = np.zeros((len(j.stages), len(j.stages)), dtype=bool)
    for s in j.stages:
        for t, p in s.next:
            mask[j.index(s.name), j.index(t)] = p > 0
    return mask


@st.composite
def scenarios_with_interventions(draw, max_customers: int = 30) -> sim.Scenario:
    """A random valid scenario with up to three random interventions of every kind it allows:
    targets, windows, reach, lasting, costs and budgets."""
    from sim.model.logit import purchase_roles

    scenario = draw(scenarios(max_customers))
    journey = scenario.journey
    transient = list(journey.transient)
    edges = [(s.name, t) for s in journey.stages for t, _ in s.next]
    missing = [
        (a, b)
        for a in transient
        for b in journey.names
        if (a, b) not in edges and b != journey.entry
    ]
    churn, repeat = purchase_roles(journey)
    ivs = []
    for k in range(draw(st.integers(0, 3))):
        effects = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["odds", "dwell", "value", "new", "churn", "repeat"]))
            if kind == "odds":
                a, b = draw(st.sampled_from(edges))
                effects.append(sim.OddsRatio(stage=a, to=b, ratio=draw(st.floats(0.05, 20))))
            elif kind == "dwell":
                effects.append(
                    sim.DwellFactor(
                        stage=draw(st.sampled_from(transient)), factor=draw(st.floats(0.1, 5))
                    )
                )
            elif kind == "value":
                effects.append(sim.OrderValueFactor(factor=draw(st.floats(0.1, 2))))
            elif kind == "new" and missing:
                a, b = draw(st.sampled_from(missing))
                effects.append(
                    sim.NewTransition(stage=a, to=b, probability=draw(st.floats(0.01, 0.9)))
                )
            elif kind == "churn" and churn.any():
                effects.append(sim.ChurnFactor(factor=draw(st.floats(0.1, 5))))
            elif kind == "repeat" and repeat.any():
                effects.append(sim.RepeatFactor(factor=draw(st.floats(0.1, 5))))
        if not effects:
            effects.append(sim.OrderValueFactor(factor=0.5))
        start = draw(st.floats(0, scenario.horizon_days))
        end = draw(st.one_of(st.just(np.inf), st.floats(start + 0.1, start + 400)))
        fixed = draw(st.floats(0, 5))
        ivs.append(
            sim.Intervention(
                name=f"iv{k}",
                effects=tuple(effects),
                personas=tuple(
                    draw(st.lists(st.sampled_from(scenario.persona_names), max_size=2, unique=True))
                ),
                stages=tuple(
                    draw(st.lists(st.sampled_from(journey.names), max_size=2, unique=True))
                ),
                window_days=(start, end),
                reach=draw(st.floats(0, 1)),
                lasting=draw(st.booleans()),
                cost=sim.Cost(
                    fixed=fixed,
                    per_reached=draw(st.floats(0, 3)),
                    per_conversion=draw(st.floats(0, 3)),
                ),
                budget=draw(st.one_of(st.none(), st.floats(fixed, fixed + 40))),
            )
        )
    return scenario.with_interventions(*ivs)


@st.composite
def independent_scenarios(draw, max_customers: int = 30) -> sim.Scenario:
    """A random scenario whose customers share nothing (interventions without budgets), with
    a cohort or with one or two channels of arrivals (time-varying through an arrival-rate
    factor) and interventions that may target a channel."""
    import dataclasses

    scenario = draw(scenarios_with_interventions(max_customers))
    ivs = [dataclasses.replace(iv, budget=None) for iv in scenario.interventions]
    if draw(st.booleans()):
        names = [f"c{i}" for i in range(draw(st.integers(1, 2)))]
        horizon = scenario.horizon_days
        channels = tuple(
            sim.Channel(
                name=name,
                rate_per_day=draw(st.floats(0.5, max_customers)) / horizon,
                persona_mix={p: 1 / len(scenario.personas) for p in scenario.persona_names},
            )
            for name in names
        )
        if draw(st.booleans()):
            start = draw(st.floats(0, horizon))
            ivs.append(
                sim.Intervention(
                    name="campaign",
                    effects=(
                        sim.ArrivalRateFactor(channel=names[0], factor=draw(st.floats(0.2, 3))),
                    ),
                    channels=(names[-1],),
                    window_days=(start, start + draw(st.floats(0.1, horizon))),
                )
            )
        scenario = scenario.replace(acquisition=sim.Arrivals(channels=channels), interventions=())
    return scenario.replace(interventions=tuple(ivs))


@st.composite
def scenarios_with_market(draw, max_customers: int = 10) -> sim.Scenario:
    """A random valid scenario with a small market and word of mouth from some stages."""
    scenario = draw(scenarios(max_customers))
    names = scenario.journey.names
    stages = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    return scenario.replace(
        acquisition=sim.Cohort(size=draw(st.integers(0, max_customers))),
        market=sim.Market(size=draw(st.integers(1, 40)), external_rate=draw(st.floats(0, 0.2))),
        word_of_mouth=sim.WordOfMouth(stages=tuple(stages), rate=draw(st.floats(0, 2))),
    )


@st.composite
def scenarios_with_resources(
    draw, max_customers: int = 30, patience: bool = True, capacity: int | None = None
) -> sim.Scenario:
    """A random valid scenario whose transient stages may queue for one or two resources of
    small capacity (or ``capacity``), some with patience and abandonment to an end stage."""
    scenario = draw(scenarios(max_customers))
    journey = scenario.journey
    n_res = draw(st.integers(1, 2))
    resources = tuple(
        sim.Resource(name=f"r{i}", capacity=capacity or draw(st.integers(1, 3)))
        for i in range(n_res)
    )
    ends = list(journey.absorbing)
    stages = []
    for s in journey.stages:
        if not s.absorbing and draw(st.booleans()):
            fields = {"uses": f"r{draw(st.integers(0, n_res - 1))}"}
            if patience and draw(st.booleans()):
                fields["patience"] = draw(distributions(allow_zero=False))
                fields["abandon_to"] = draw(st.sampled_from(ends))
            s = dataclasses.replace(s, **fields)
        stages.append(s)
    if not any(s.uses for s in stages):
        first = journey.index(journey.entry)
        stages[first] = dataclasses.replace(stages[first], uses="r0")
    journey = sim.Journey(stages=tuple(stages), entry=journey.entry)
    return scenario.replace(journey=journey, resources=resources)


@st.composite
def scenarios_with_referrals(draw, max_customers: int = 10) -> sim.Scenario:
    """A random valid scenario with a small market, word of mouth and referrals from some
    stages, with persona factors and a referral-reward intervention on some."""
    scenario = draw(scenarios_with_market(max_customers))
    names = scenario.journey.names
    stages = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    factors = {p: draw(st.floats(0, 3)) for p in scenario.persona_names if draw(st.booleans())}
    referrals = sim.Referrals(
        stages=tuple(stages),
        rate=draw(st.floats(0, 3)),
        conversion=draw(st.floats(0, 1)),
        persona_factors=factors,
    )
    interventions = ()
    if draw(st.booleans()):
        interventions = (
            sim.Intervention(
                name="reward",
                stages=(draw(st.sampled_from(scenario.journey.transient)),),
                lasting=draw(st.booleans()),
                reach=draw(st.floats(0, 1)),
                effects=(sim.ReferralRateFactor(factor=draw(st.floats(0.1, 4))),),
                cost=sim.Cost(per_referral=draw(st.floats(0, 50))),
            ),
        )
    return scenario.replace(referrals=referrals, interventions=interventions)


@st.composite
def scenarios_with_outcomes(draw, max_customers: int = 20) -> sim.Scenario:
    """A random scenario with queues and a satisfaction score that waiting, abandonment and
    service outcomes on one or two stages move (changes up to +-3, beyond the score's
    bounds), with a goodwill credit and an outcome odds ratio on some."""
    scenario = draw(scenarios_with_resources(max_customers))
    stages = draw(
        st.lists(st.sampled_from(scenario.journey.transient), min_size=1, max_size=2, unique=True)
    )
    outcomes = {}
    for i, stage in enumerate(stages):
        shares = draw(st.lists(st.floats(0, 1), min_size=1, max_size=3))
        total = max(sum(shares), 1.0) * draw(st.floats(1, 1.5))
        outcomes[stage] = {
            f"o{i}_{j}": {"share": share / total, "satisfaction": draw(st.floats(-3, 3))}
            for j, share in enumerate(shares)
        }
    sat = sim.Satisfaction(
        start=draw(st.floats(-1, 1)),
        per_day_waited=draw(st.floats(-5, 0)),
        abandoned=draw(st.floats(-1, 0)),
        outcomes=outcomes,
    )
    scenario = scenario.replace(satisfaction=sat)
    if draw(st.booleans()):
        stage = stages[0]
        outcome = draw(st.sampled_from(["", *outcomes[stage]]))
        effects = [
            sim.SatisfactionChange(
                amount=draw(st.floats(-2, 2)), stage=draw(st.sampled_from(["", stage])), outcome=""
            )
        ]
        if outcome:
            effects = [
                sim.SatisfactionChange(amount=draw(st.floats(-2, 2)), stage=stage, outcome=outcome),
                sim.OutcomeOddsRatio(stage=stage, outcome=outcome, ratio=draw(st.floats(0.1, 5))),
            ]
        goodwill = sim.Intervention(
            name="goodwill",
            reach=draw(st.floats(0, 1)),
            effects=tuple(effects),
            cost=sim.Cost(per_credit=draw(st.floats(0, 10))),
        )
        scenario = scenario.with_interventions(goodwill)
    return scenario


@st.composite
def scenarios_with_referral_budget(draw, max_customers: int = 10) -> sim.Scenario:
    """A referral scenario whose reward programme pays per referral (and perhaps per customer
    reached and per conversion) from a budget that may run out."""
    scenario = draw(scenarios_with_referrals(max_customers))
    journey = scenario.journey
    # referrals from the entry stage on, in a market of a few hundred: rewards add up
    scenario = scenario.replace(
        acquisition=sim.Cohort(size=draw(st.integers(1, max_customers))),
        market=sim.Market(size=draw(st.integers(100, 400)), external_rate=0.01),
        referrals=sim.Referrals(
            stages=(journey.entry, *journey.transient),
            rate=draw(st.floats(0.5, 3)),
            conversion=draw(st.floats(0.5, 1)),
        ),
    )
    fixed = draw(st.floats(0, 20))
    programme = sim.Intervention(
        name="reward",
        stages=(journey.entry,),
        lasting=draw(st.booleans()),
        reach=draw(st.floats(0.5, 1)),
        effects=(sim.ReferralRateFactor(factor=draw(st.floats(0.5, 4))),),
        cost=sim.Cost(
            fixed=fixed,
            per_reached=draw(st.sampled_from([0.0, 1.0])),
            per_conversion=draw(st.sampled_from([0.0, 2.5])),
            per_referral=draw(st.floats(1, 30)),
        ),
        budget=fixed + draw(st.floats(0, 100)),
    )
    return scenario.replace(interventions=(programme,))


@st.composite
def scenarios_with_capacity_plans(draw, max_customers: int = 30) -> sim.Scenario:
    """A scenario with resources whose capacity follows a weekly schedule (some days 0) and
    changes from given days, a queue by persona priority on some, and a capacity-change
    intervention on some; a start date on some (day 0 is then not a Monday)."""
    scenario = draw(scenarios_with_resources(max_customers))
    week = st.lists(st.integers(0, 3), min_size=7, max_size=7).filter(any)
    resources = []
    for r in scenario.resources:
        fields: dict = {"name": r.name}
        if draw(st.booleans()):
            fields["schedule"] = tuple(draw(week))
        else:
            fields["capacity"] = draw(st.integers(1, 3))
        days = draw(st.lists(st.floats(0.5, 20), max_size=2, unique=True))
        fields["changes"] = tuple(
            sim.CapacityFrom(day=d, schedule=tuple(draw(week)))
            if draw(st.booleans())
            else sim.CapacityFrom(day=d, capacity=draw(st.integers(1, 4)))
            for d in sorted(days)
        )
        if draw(st.booleans()):
            names = scenario.persona_names
            fields["discipline"] = "priority"
            fields["priority"] = {names[0]: draw(st.integers(-2, 2))}
        resources.append(sim.Resource(**fields))
    interventions = ()
    if draw(st.booleans()):
        start = draw(st.floats(0, 10))
        interventions = (
            sim.Intervention(
                name="hire",
                window_days=(start, start + draw(st.floats(0.5, 10))),
                effects=(sim.CapacityChange(resource="r0", units=draw(st.integers(1, 2))),),
            ),
        )
    return scenario.replace(
        resources=tuple(resources),
        interventions=interventions,
        start_date=draw(st.sampled_from([None, "2025-01-01", "2025-03-09"])),
        horizon_days=min(scenario.horizon_days, 40.0),
    )
