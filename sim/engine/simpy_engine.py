"""The SimPy engine: one process per customer, one ``simpy.Environment`` per replication.

Random numbers come pre-drawn from :mod:`sim.engine.streams`. Interventions: when a customer
enters a stage, the engine settles which interventions reach them (eligible persona, channel
and reach draw; a target stage; the window open; budget left) and which act on them; those set
this visit's dwell time, the choice that ends it and the value of a purchase it leads to.
Budgets are never exceeded: reaching a customer reserves the cost of one conversion, held
until they convert or their journey ends. A purchase is charged to an intervention (its
``per_conversion``) only when the intervention is credited with it
(:func:`sim.model.logit.credited_moves`), the same rule the cost tables apply to the log.
"""

from __future__ import annotations

import gc
import math
from array import array
from bisect import bisect_right

import numpy as np
import simpy

from sim.engine import kernel, limits
from sim.engine.budgets import Budgets
from sim.engine.compiled import CompiledScenario
from sim.engine.limits import runaway
from sim.engine.log_writer import MarketCustomers, build_event_log
from sim.engine.market import MARKET_BLOCK, MarketProcess, market_key
from sim.engine.streams import OVERFLOW, VALUE_BLOCK, draw_customers, name_key, stream
from sim.events import ENTRY, EventLog
from sim.model.acquisition import Cohort
from sim.model.intervention import CapacityChange, ReferralRateFactor
from sim.model.logit import credited_moves, transition_matrices, treated_matrix
from sim.model.market import MARKET_CHANNEL


def simulate(
    compiled: CompiledScenario, seed: int, replication: int = 0, *, processes: bool = False
) -> EventLog:
    """Run one replication of a compiled scenario with SimPy and return its event log.

    Customers who do not interact run on reusable events (:mod:`sim.engine.kernel`, the same
    log, in less time and memory); ``processes=True`` runs them one process each all the same.
    """
    if not processes and compiled.scenario.interacting is None:
        return kernel.simulate(compiled, seed, replication)
    c = compiled
    s = c.scenario
    cust = draw_customers(c, seed, replication)
    n_customers = len(cust.arrival)
    channel_keys = [name_key(n) for n in s.channel_names]
    env = simpy.Environment()
    timeout = env.timeout
    log_customer, log_time = array("l"), array("d")
    log_from, log_to, log_value, log_treated = array("h"), array("h"), array("d"), array("q")
    add_customer, add_time = log_customer.append, log_time.append
    add_from, add_to, add_value, add_treated = (
        log_from.append,
        log_to.append,
        log_value.append,
        log_treated.append,
    )
    reach_customer, reach_index, reach_time = array("l"), array("h"), array("d")
    purchase, entry, untreated = c.purchase, c.entry, c.untreated
    first_slot = c.first_slot
    end_slot = tuple(f + b for f, b in zip(c.first_slot, c.block, strict=True))
    # flat tables read through shared bound methods: no per-customer objects, which matters
    # when a whole cohort is alive at once
    choice_item = [t.ravel().item for t in cust.choice]
    dwell_item = [t.ravel().item for t in cust.dwell]
    value_item = [t.ravel().item for t in cust.value]
    slots_per_customer = c.slots
    persona_of, channel_of = cust.persona.tolist(), cust.channel.tolist()
    local_of, eligible_of = cust.local.tolist(), cust.eligible.tolist()
    # which pre-drawn table a customer reads, and their row in it: their channel's table and
    # number within the channel, or for the market's customers their block's
    table_of, row_of = channel_of, local_of
    # shared capacity: per stage the SimPy resource its customers queue for (None: no queue)
    queues_on = any(st.uses for st in s.journey.stages)
    if queues_on:
        units = _resources(env, s)
        resource_at = tuple(units[st.uses] if st.uses else None for st in s.journey.stages)
        patient = tuple(st.patience is not None for st in s.journey.stages)
        patience_laws = tuple(st.patience for st in s.journey.stages)
        patience_factor = [p.patience_factor for p in s.personas]
        abandon_at = tuple(
            s.journey.index(st.abandon_to) if st.abandon_to else -1 for st in s.journey.stages
        )
        patience_item = [None if t is None else t.ravel().item for t in cust.patience]
        log_wait, log_abandoned = array("d"), array("b")
        add_wait, add_abandoned = log_wait.append, log_abandoned.append
    dwell_laws, dwell_factor = c.dwell, c.dwell_factor.tolist()
    value_laws = c.order_value
    treatment = c.treatment
    max_moves = limits.MAX_MOVES_PER_CUSTOMER

    # satisfaction: a score per customer that waiting moves and that shifts some decisions
    sat = s.satisfaction
    sat_on = sat is not None
    start_score = [sat.start_of(n) for n in s.persona_names] if sat_on else []
    if sat_on:
        log_score = array("d")
        add_score = log_score.append
        per_day_waited, abandon_delta = sat.per_day_waited, sat.abandoned
        shifts: list[dict[int, float]] = [{} for _ in c.names]
        for e in sat.effects:
            row = shifts[s.journey.index(e.stage)]
            to = s.journey.index(e.to)
            row[to] = row.get(to, 0.0) + e.coefficient
        base_rows = transition_matrices(s.journey, s.personas, s.effects)
        # per (persona, interventions acting, stage): (target, log-probability) of each way out
        log_rows: dict[tuple[int, int, int], list[tuple[int, float]]] = {}

        def shifted_choice(p: int, active: int, stage: int, u: float, score: float) -> int:
            """The next stage with coefficient x score added to the log-odds of the
            satisfaction effects' transitions (the rule of sim.model.logit, in plain Python:
            this runs once per decision)."""
            key = (p, active, stage)
            ways = log_rows.get(key)
            if ways is None:
                if active:
                    acting = [iv for i, iv in enumerate(ivs) if active >> i & 1]
                    row = treated_matrix(s.journey, s.personas[p], s.effects, acting)[stage]
                else:
                    row = base_rows[p, stage]
                ways = [(j, math.log(q)) for j, q in enumerate(row.tolist()) if q > 0]
                log_rows[key] = ways
            shift = shifts[stage]
            logits = [lp + shift.get(j, 0.0) * score for j, lp in ways]
            top = max(logits)  # shift by the maximum so that exp cannot overflow
            weights = [math.exp(x - top) for x in logits]
            target = u * sum(weights)
            for (j, _), w in zip(ways, weights, strict=True):
                if target < w:
                    return j
                target -= w
            return ways[-1][0]  # rounding: u reached the end

    ivs = s.interventions
    # capacity changes act on resources: they reach no customer
    capacity_only = sum(1 << i for i, iv in enumerate(ivs) if iv.capacity_only)
    if capacity_only:
        eligible_of = [e & ~capacity_only for e in eligible_of]
    budgets = Budgets(s)
    windows = [iv.window_days for iv in ivs]
    lasting = [iv.lasting for iv in ivs]
    targets = [frozenset(s.journey.index(n) for n in iv.stages) or None for iv in ivs]
    per_conversion = budgets.per_conversion
    # charged[i][a]: the purchase stages a move out of a is charged to intervention i
    charged = [
        [frozenset(np.flatnonzero(row & np.array(purchase)).tolist()) for row in moves]
        for moves in (credited_moves(s.journey, iv) for iv in ivs)
    ]
    reserves = budgets.reserves

    def settle(k: int, stage: int, eligible: int, reached: int, held: int) -> tuple[int, int, int]:
        """On entering a stage: who reaches the customer now, and who acts on them."""
        now = env.now
        active = 0
        for i in range(len(ivs)):
            bit = 1 << i
            if not eligible & bit:
                continue
            start, end = windows[i]
            if not reached & bit:
                if not (
                    start <= now < end
                    and (targets[i] is None or stage in targets[i])
                    and budgets.can_reach(i)
                ):
                    continue
                budgets.reach(i)
                reached |= bit
                if reserves[i]:
                    held |= bit
                reach_customer.append(k)
                reach_index.append(i)
                reach_time.append(now)
            if not (lasting[i] or now < end):
                continue
            if reserves[i] and not held & bit:
                if not budgets.reserve(i):
                    continue
                held |= bit
            active |= bit
        return active, reached, held

    def own_stream(k: int) -> np.random.Generator:
        if k >= n_customers:
            return stream(seed, replication, market_key(), OVERFLOW, k - n_customers)
        return stream(
            seed, replication, channel_keys[channel_of[k]], OVERFLOW, cust.first + local_of[k]
        )

    market = influence = None
    influencing: tuple[bool, ...] = ()
    referring: tuple[bool, ...] = ()
    if s.market is not None:
        market_persona, market_channel, market_arrival = array("h"), array("h"), array("d")
        referred, referred_by = array("l"), array("l")
        table_of, row_of = list(table_of), list(row_of)
        persona_of, channel_of, eligible_of = list(persona_of), list(channel_of), eligible_of
        first_market_channel = s.channel_names.index(MARKET_CHANNEL)
        # bit i cleared where intervention i excludes the market's channel
        channel_ok = [
            sum(
                1 << i
                for i, iv in enumerate(ivs)
                if not iv.channels or s.channel_names[ch] in iv.channels
            )
            for ch in range(first_market_channel, len(s.channel_names))
        ]

        def adopt(j: int, source: int, referrer: int, referrer_active: int) -> None:
            block, row = market.block(j)
            b = j // MARKET_BLOCK
            table = len(cust.choice) + b
            if table == len(choice_item):
                choice_item.append(block.choice.ravel().item)
                dwell_item.append(block.dwell.ravel().item)
                value_item.append(block.value.ravel().item)
                if queues_on:
                    patience_item.append(
                        None if block.patience is None else block.patience.ravel().item
                    )
            k = n_customers + j
            ch = first_market_channel + source
            persona_of.append(block.persona[row])
            channel_of.append(ch)
            eligible_of.append(block.eligible[row] & channel_ok[source])
            table_of.append(table)
            row_of.append(row)
            market_persona.append(block.persona[row])
            market_channel.append(ch)
            market_arrival.append(env.now)
            add_customer(k)
            add_time(env.now)
            add_from(ENTRY)
            add_to(entry)
            add_value(value_item[table](row * VALUE_BLOCK) if purchase[entry] else 0.0)
            # the interventions acting on the referrer brought this customer in
            add_treated(referrer_active)
            if referrer >= 0:
                referred.append(k)
                referred_by.append(referrer)
            if queues_on:
                add_wait(0.0)
                add_abandoned(0)
            if sat_on:
                add_score(start_score[block.persona[row]])
            process(customer(k))

        market = MarketProcess(env, c, seed, replication, adopt)
        if any(market.influencing):
            influencing, influence = market.influencing, market.influence
        if any(market.referring):
            referring, refer, stop_referring = (
                market.referring,
                market.refer,
                market.stop_referring,
            )
            ref = s.referrals
            persona_weight = [ref.factor(name) for name in s.persona_names]
            weights: dict[tuple[int, int], float] = {}

            def referral_weight(p: int, active: int) -> float:
                """Persona factor times the referral-rate factors acting (cached)."""
                w = weights.get((p, active))
                if w is None:
                    w = persona_weight[p]
                    for i, iv in enumerate(ivs):
                        if active >> i & 1:
                            for e in iv.of_kind(ReferralRateFactor):
                                w *= e.factor
                    weights[(p, active)] = w
                return w

    def customer(k: int):
        # this loop runs once per transition of every customer: keep it lean
        tab, p = table_of[k], persona_of[k]
        base = row_of[k] * slots_per_customer
        choice, dwell = choice_item[tab], dwell_item[tab]
        patience = patience_item[tab] if queues_on else None
        limit = waited = 0.0
        gave_up = 0
        score = start_score[p] if sat_on else 0.0
        cumulative = untreated[p]
        slots = list(first_slot)
        purchases = int(purchase[entry])
        extra = None
        stage = entry
        eligible = eligible_of[k]
        active = reached = held = 0
        moves = 0
        if eligible:
            active, reached, held = settle(k, stage, eligible, reached, held)
        if influencing and influencing[stage]:
            influence(1)
        if referring and referring[stage] and (w := referral_weight(p, active)) > 0:
            refer(k, w, active)
        while (slot := slots[stage]) >= 0:
            moves += 1
            if moves > max_moves:
                raise runaway(c, k, stage, env.now, max_moves)
            if slot < end_slot[stage]:
                slots[stage] = slot + 1
                u = choice(base + slot)
                days = dwell(base + slot)
                if patience is not None and patient[stage]:
                    limit = patience(base + slot)
            else:
                extra = extra or own_stream(k)
                u = extra.random()
                days = float(dwell_laws[stage].quantile(extra.random())) * dwell_factor[p][stage]
                if queues_on and patient[stage]:
                    limit = float(patience_laws[stage].quantile(extra.random()))
                    limit *= patience_factor[p]
            if active:
                tr = treatment(p, active)
                following = bisect_right(tr.cumulative[stage], u)
                days *= tr.dwell_factor[stage]
            else:
                following = bisect_right(cumulative[stage], u)
            if queues_on and (resource := resource_at[stage]) is not None:
                queued = env.now
                request = resource.request()
                # a free unit is granted at once: not yielding keeps the order of events
                # exactly as without the resource
                if not request.triggered:
                    if patient[stage]:
                        yield request | timeout(limit)
                        if not request.triggered:
                            request.cancel()
                            following, gave_up = abandon_at[stage], 1
                    else:
                        yield request
                waited = env.now - queued
                if not gave_up:
                    if days > 0:
                        yield timeout(days)
                    resource.release(request)
            elif days > 0:
                yield timeout(days)
            if sat_on:
                if gave_up:
                    score += abandon_delta
                elif waited:
                    score += per_day_waited * waited
                score = min(max(score, -1.0), 1.0)
                if not gave_up and score and shifts[stage]:
                    following = shifted_choice(p, active, stage, u, score)
            if purchase[following]:
                if purchases < VALUE_BLOCK:
                    value = value_item[tab](row_of[k] * VALUE_BLOCK + purchases)
                else:
                    extra = extra or own_stream(k)
                    value = float(value_laws[p].quantile(extra.random()))
                purchases += 1
                if active:
                    value *= tr.value_factor
                    for i in range(len(ivs)):
                        if active >> i & 1 and per_conversion[i] and following in charged[i][stage]:
                            budgets.convert(i, bool(held >> i & 1))
                            held &= ~(1 << i)
            else:
                value = 0.0
            add_customer(k)
            add_time(env.now)
            add_from(stage)
            add_to(following)
            add_value(value)
            add_treated(active)
            if sat_on:
                add_score(score)
            if queues_on:
                add_wait(waited)
                add_abandoned(gave_up)
                waited, gave_up = 0.0, 0
            if influencing and influencing[stage] != influencing[following]:
                influence(1 if influencing[following] else -1)
            left = stage
            stage = following
            if eligible:
                active, reached, held = settle(k, stage, eligible, reached, held)
            if referring:
                if referring[left]:
                    stop_referring(k)
                if referring[stage] and (w := referral_weight(p, active)) > 0:
                    refer(k, w, active)
        for i in range(len(ivs)):
            if held >> i & 1:
                budgets.release(i)

    process = env.process
    if market is not None:
        market.start()
    if isinstance(s.acquisition, Cohort):
        for k in range(n_customers):
            process(customer(k))
    else:
        arrivals = cust.arrival.tolist()

        def source():
            for k, day in enumerate(arrivals):
                if day > env.now:
                    yield timeout(day - env.now)
                process(customer(k))

        process(source())
    # the run makes millions of short-lived generators and events but no reference cycles
    # worth collecting: the cyclic collector would only rescan them (1.6 to 1.8 times slower
    # on cohorts). Restored even when the run fails.
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        env.run(until=s.horizon_days)
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
    moves = (log_customer, log_time, log_from, log_to, log_value, log_treated)
    reaches = (reach_customer, reach_index, reach_time)
    adopters = None
    if market is not None:
        adopters = MarketCustomers(
            np.frombuffer(market_arrival, dtype=np.float64),
            np.frombuffer(market_persona, dtype=np.int16),
            np.frombuffer(market_channel, dtype=np.int16),
            np.frombuffer(referred, dtype=np.int_),
            np.frombuffer(referred_by, dtype=np.int_),
        )
    queues = (log_wait, log_abandoned) if queues_on else None
    scores = log_score if sat_on else None
    return build_event_log(c, cust, replication, moves, reaches, adopters, queues, scores)


def _resources(env: simpy.Environment, s) -> dict[str, simpy.Resource]:
    """The scenario's resources. One whose capacity an intervention changes holds its largest
    capacity, and high-priority blockers hold the units not in force: released when the
    window opens, taken back (ahead of any waiting customer, as units come free) when it
    closes."""
    changes: dict[str, list[tuple[float, float, int]]] = {}
    for iv in s.interventions:
        for e in iv.of_kind(CapacityChange):
            changes.setdefault(e.resource, []).append((*iv.window_days, e.units))
    out: dict[str, simpy.Resource] = {}
    for r in s.resources:
        if r.name not in changes:
            out[r.name] = simpy.Resource(env, capacity=r.capacity)
            continue
        extra = changes[r.name]
        resource = simpy.PriorityResource(env, capacity=r.capacity + sum(u for *_, u in extra))
        out[r.name] = resource
        for start, end, units in extra:
            env.process(_blocker(env, resource, start, end, units))
    return out


def _blocker(env: simpy.Environment, resource: simpy.PriorityResource, start, end, units):
    """Keeps ``units`` out of use before ``start`` and from ``end`` on."""
    held = [resource.request(priority=-1) for _ in range(units)]
    if start > 0:
        yield env.all_of(held)
        yield env.timeout(start)
    for request in held:
        resource.release(request)
    if end < math.inf:
        yield env.timeout(end - env.now)
        yield env.all_of([resource.request(priority=-1) for _ in range(units)])
