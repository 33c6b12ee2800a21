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
from heapq import heappush

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT

from sim.engine import kernel, limits
from sim.engine.budgets import Budgets
from sim.engine.compiled import CompiledScenario
from sim.engine.limits import runaway
from sim.engine.log_writer import MarketCustomers, build_event_log
from sim.engine.market import MARKET_BLOCK, MarketProcess, market_key
from sim.engine.streams import (
    DETRACTOR,
    OVERFLOW,
    VALUE_BLOCK,
    draw_customers,
    draw_outcomes,
    name_key,
    stream,
)
from sim.events import ENTRY, EventLog
from sim.model.acquisition import Cohort
from sim.model.intervention import CapacityChange, ReferralRateFactor, SatisfactionChange
from sim.model.logit import (
    credited_moves,
    forward_moves,
    outcome_shares,
    purchase_roles,
    transition_matrices,
    treated_matrix,
)
from sim.model.market import MARKET_CHANNEL
from sim.model.resource import Resource


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
        by_name = {r.name: r for r in s.resources}
        # per stage: the queue priority of each persona (None: first come, first served)
        rank_at = tuple(
            tuple(by_name[st.uses].rank(n) for n in s.persona_names)
            if st.uses and by_name[st.uses].discipline == "priority"
            else None
            for st in s.journey.stages
        )
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
    entry_purchases = int(purchase[entry])

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

        def ways_out(p: int, active: int, stage: int) -> list[tuple[int, float]]:
            """(target, log-probability) of each way out, after persona and interventions."""
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
            return ways

        def shifted_choice(p: int, active: int, stage: int, u: float, score: float) -> int:
            """The next stage with coefficient x score added to the log-odds of the
            satisfaction effects' transitions (the rule of sim.model.logit, in plain Python:
            this runs once per decision)."""
            ways = ways_out(p, active, stage)
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

    # negative word of mouth: customers who churn below the threshold put people off
    wom = s.word_of_mouth
    neg = wom.negative if wom is not None else None
    neg_on = neg is not None
    if neg_on:
        churn_end = tuple(purchase_roles(s.journey)[0].any(axis=0).tolist())
        threshold, lasting_days, talking = neg.threshold, neg.lasting, neg.talking
        named = neg.stages or (s.journey.entry,)
        # the odds ratio acts only where it changes something (1: nothing, by the rule)
        put_off_at = tuple(n in named and neg.odds_ratio != 1 for n in c.names)
        ahead = [frozenset(np.flatnonzero(row).tolist()) for row in forward_moves(s.journey)]
        log_ratio = math.log(neg.odds_ratio)
        det_customer, det_time, det_reached, det_lost = (
            array("l"),
            array("d"),
            array("l"),
            array("d"),
        )
        put_off_until, put_off_contact = [0.0] * n_customers, [-1] * n_customers

        def put_off_choice(p: int, active: int, stage: int, u: float, score: float):
            """The next stage of a customer a detractor put off: log(odds_ratio) added to the
            log-odds of every way forward (and the satisfaction shift, as for anyone); with
            the conversions this decision loses in expectation (forward share before less
            after)."""
            shift, forward = shifts[stage], ahead[stage]
            ways = ways_out(p, active, stage)
            logits = [lp + shift.get(j, 0.0) * score for j, lp in ways]
            put = [
                x + log_ratio if j in forward else x for (j, _), x in zip(ways, logits, strict=True)
            ]
            top = max(max(logits), max(put))  # shift by the maximum: exp cannot overflow
            plain = [math.exp(x - top) for x in logits]
            weights = [math.exp(x - top) for x in put]
            ahead_of = [j in forward for j, _ in ways]
            before = sum(w for w, a in zip(plain, ahead_of, strict=True) if a) / sum(plain)
            total = sum(weights)
            after = sum(w for w, a in zip(weights, ahead_of, strict=True) if a) / total
            target = u * total
            for (j, _), w in zip(ways, weights, strict=True):
                if target < w:
                    return j, before - after
                target -= w
            return ways[-1][0], before - after  # rounding: u reached the end

        def detractor(k: int):
            """A detractor's contacts: a Poisson process at ``rate`` over ``talking`` days,
            drawn from their own stream (keyed by who they are, not by event order)."""
            if k >= n_customers:
                key = (market_key(), DETRACTOR, k - n_customers)
            else:
                key = (channel_keys[channel_of[k]], DETRACTOR, cust.first + local_of[k])
            rng = stream(seed, replication, *key)
            n = int(rng.poisson(neg.rate * talking))
            days = np.sort(rng.uniform(0.0, talking, n)).tolist()
            who = rng.random(n).tolist()
            start = env.now
            for day, u in zip(days, who, strict=True):
                if start + day > env.now:
                    yield timeout(start + day - env.now)
                now = env.now
                j = market.put_off.contact(u, market.adopted, now + lasting_days, len(det_time))
                det_customer.append(k)
                det_time.append(now)
                det_reached.append(n_customers + j if j >= 0 else -1)
                det_lost.append(0.0)

    ivs = s.interventions
    # service outcomes drawn per visit, and satisfaction changes of interventions (credits)
    outcomes_on = sat_on and (
        bool(sat.outcomes) or any(iv.of_kind(SatisfactionChange) for iv in ivs)
    )
    outcome_item: list = []
    if outcomes_on:
        log_outcome = array("h")
        add_outcome = log_outcome.append
        outcome_names = sat.outcome_names()
        outcomes_of = dict(sat.outcomes)
        has_outcome = tuple(name in outcomes_of for name in c.names)
        outcome_item = [
            None if u is None else u.ravel().item
            for u in (
                draw_outcomes(c, seed, (replication, channel_keys[ch]), len(table), cust.first)
                for ch, table in enumerate(cust.choice)
            )
        ]
        # per stage: (intervention bit, amount, outcome code or None: any visit)
        credit_at: list[list[tuple[int, float, int | None]]] = [[] for _ in c.names]
        for i, iv in enumerate(ivs):
            for e in iv.of_kind(SatisfactionChange):
                code = outcome_names.index(e.outcome) if e.outcome else None
                for stage, name in enumerate(c.names):
                    if e.stage in ("", name):
                        credit_at[stage].append((1 << i, e.amount, code))
        # per (stage, interventions acting): cumulative shares, codes and score changes
        outcome_rows: dict[tuple[int, int], tuple[list[float], list[int], list[float]]] = {}

        def outcome_row(stage: int, active: int) -> tuple[list[float], list[int], list[float]]:
            row = outcome_rows.get((stage, active))
            if row is None:
                name = c.names[stage]
                acting = [iv for i, iv in enumerate(ivs) if active >> i & 1]
                shares = outcome_shares(outcomes_of[name], name, acting)
                cumulative = np.cumsum(shares).tolist()
                cumulative[-1] = math.inf  # u reaches the last category despite rounding
                codes = [outcome_names.index(o.name) for o in outcomes_of[name]] + [-1]
                deltas = [o.satisfaction for o in outcomes_of[name]] + [0.0]
                row = outcome_rows[(stage, active)] = (cumulative, codes, deltas)
            return row

    # capacity changes act on resources: they reach no customer
    capacity_only = sum(1 << i for i, iv in enumerate(ivs) if iv.capacity_only)
    if capacity_only:
        eligible_of = [e & ~capacity_only for e in eligible_of]
    budgets = Budgets(s)
    settle_visit = budgets.settle
    reach_customer, reach_index, reach_time = budgets.reaches
    windows, lasting, targets = budgets.windows, budgets.lasting, budgets.targets
    per_conversion = budgets.per_conversion
    # charged[i][a]: the purchase stages a move out of a is charged to intervention i
    charged = [
        [frozenset(np.flatnonzero(row & np.array(purchase)).tolist()) for row in moves]
        for moves in (credited_moves(s.journey, iv) for iv in ivs)
    ]
    reserves = budgets.reserves
    # interventions that, once they reach a customer, act on them for good (lasting or open
    # to the horizon, no conversion reserved): a customer all of whose eligible ones have
    # reached them needs no more settling, which saves a call per move
    permanent = sum(
        1 << i
        for i in range(len(ivs))
        if (lasting[i] or windows[i][1] == math.inf) and not reserves[i]
    )
    charging = any(per_conversion)
    # per stage: the interventions that may reach a customer entering it (their target)
    reachable_at = [
        sum(1 << i for i in range(len(ivs)) if targets[i] is None or stage in targets[i])
        for stage in range(len(c.names))
    ]

    def settle(k: int, stage: int, eligible: int, reached: int, held: int) -> tuple[int, int, int]:
        """On entering a stage: who reaches the customer now, and who acts on them."""
        return settle_visit(env.now, k, stage, eligible, reached, held)

    def own_stream(k: int) -> np.random.Generator:
        if k >= n_customers:
            return stream(seed, replication, market_key(), OVERFLOW, k - n_customers)
        return stream(
            seed, replication, channel_keys[channel_of[k]], OVERFLOW, cust.first + local_of[k]
        )

    market = influence = None
    influencing: tuple[bool, ...] = ()
    referring: tuple[bool, ...] = ()
    per_point = 0.0  # satisfaction's log-rate coefficient on referrals
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

        first_table = len(cust.choice)
        persona_add, channel_add, eligible_add = (
            persona_of.append,
            channel_of.append,
            eligible_of.append,
        )
        table_add, row_add = table_of.append, row_of.append
        arrival_add = market_arrival.append
        market_persona_add, market_channel_add = market_persona.append, market_channel.append

        def adopt(j: int, source: int, referrer: int, referrer_active: int) -> None:
            # runs once per adopter: appends through bound methods fetched once
            b, row = divmod(j, MARKET_BLOCK)
            block = market.blocks[b]
            table = first_table + b
            if table == len(choice_item):
                choice_item.append(block.choice.ravel().item)
                dwell_item.append(block.dwell.ravel().item)
                value_item.append(block.value.ravel().item)
                if queues_on:
                    patience_item.append(
                        None if block.patience is None else block.patience.ravel().item
                    )
                if outcomes_on:
                    head = (replication, market_key(), b)
                    drawn = draw_outcomes(c, seed, head, len(block.persona))
                    outcome_item.append(None if drawn is None else drawn.ravel().item)
            k = n_customers + j
            ch = first_market_channel + source
            persona = block.persona[row]
            now = env._now
            persona_add(persona)
            channel_add(ch)
            eligible_add(block.eligible[row] & channel_ok[source])
            table_add(table)
            row_add(row)
            market_persona_add(persona)
            market_channel_add(ch)
            arrival_add(now)
            add_customer(k)
            add_time(now)
            add_from(ENTRY)
            add_to(entry)
            add_value(value_item[table](row * VALUE_BLOCK) if purchase[entry] else 0.0)
            if referrer_active and rewarded:
                referrer_active = reward(referrer_active)
            # the interventions acting on the referrer brought this customer in
            add_treated(referrer_active)
            if referrer >= 0:
                referred.append(k)
                referred_by.append(referrer)
            if queues_on:
                add_wait(0.0)
                add_abandoned(0)
            if sat_on:
                add_score(start_score[persona])
            if outcomes_on:
                add_outcome(-1)
            if neg_on:
                found = market.put_off.adopt(block.put_off[row], j)
                until, contact = found if found is not None else (0.0, -1)
                put_off_until.append(until)
                put_off_contact.append(contact)
                if contact >= 0:
                    det_reached[contact] = k
            start(customer(k))

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
                """Persona factor times the referral-rate factors acting (cached); those of
                programmes whose budget is spent no longer act."""
                active &= ~budgets.closed
                w = weights.get((p, active))
                if w is None:
                    w = persona_weight[p]
                    for i, iv in enumerate(ivs):
                        if active >> i & 1:
                            for e in iv.of_kind(ReferralRateFactor):
                                w *= e.factor
                    weights[(p, active)] = w
                return w

            # satisfaction moves the rate: rate x exp(b x score), score on entering the stage
            per_point = sat.referral_rate_per_point if sat_on else 0.0
            # (weight, interventions acting) of satisfied referrers: (persona, factor)
            scored: dict[tuple[float, int], tuple[int, float]] = {}

            def scored_weight(p: int, active: int, score: float) -> float:
                """A referrer's weight with their satisfaction's factor (when b is not 0)."""
                factor = math.exp(per_point * score)
                w = referral_weight(p, active) * factor
                scored[(w, active & ~budgets.closed)] = (p, factor)
                return w

            def reweigh(w: float, active: int) -> float:
                """The weight of referrers of weight ``w`` once closed programmes stop."""
                if (w, active) in scored:
                    p, factor = scored[(w, active)]
                    return referral_weight(p, active) * factor
                p = next(p for (p, a), v in weights.items() if a == active and v == w)
                return referral_weight(p, active)

        # referral rewards paid from a budget: the first the budget cannot pay closes the
        # programme (sim.engine.budgets)
        rewarded = [i for i in range(len(ivs)) if budgets.pays_rewards(i)]

        def reward(active: int) -> int:
            """Pay the rewards of one referral; the interventions it is credited to."""
            before = budgets.closed
            for i in rewarded:
                if active >> i & 1 and not budgets.pay_referral(i):
                    active &= ~(1 << i)
            if budgets.closed != before and referring:
                market.stop_factors(budgets.closed & ~before, reweigh)
            return active

    def customer(k: int):
        # this loop runs once per transition of every customer: keep it lean
        tab, p = table_of[k], persona_of[k]
        base = row_of[k] * slots_per_customer
        choice, dwell = choice_item[tab], dwell_item[tab]
        patience = patience_item[tab] if queues_on else None
        outcome = outcome_item[tab] if outcomes_on else None
        drawn = 0.0
        limit = waited = 0.0
        gave_up = 0
        score = start_score[p] if sat_on else 0.0
        cumulative = untreated[p]
        slots = list(first_slot)
        purchases = entry_purchases
        extra = None
        stage = entry
        eligible = eligible_of[k]
        active = reached = held = 0
        moves = 0
        tr = None
        if eligible & reachable_at[stage] or eligible & ~permanent:
            active, reached, held = settle(k, stage, eligible, reached, held)
            if active:
                tr = treatment(p, active)
        pending = eligible & ~(reached & permanent)
        if influencing and influencing[stage]:
            influence(1)
        if referring and referring[stage] and (w := referral_weight(p, active)) > 0:
            if per_point:
                w = scored_weight(p, active, score)
            refer(k, w, active & ~budgets.closed)
        while (slot := slots[stage]) >= 0:
            if neg_on:
                entered = env.now
            if slot < end_slot[stage]:
                slots[stage] = slot + 1
                u = choice(base + slot)
                days = dwell(base + slot)
                if patience is not None and patient[stage]:
                    limit = patience(base + slot)
                if outcome is not None and has_outcome[stage]:
                    drawn = outcome(base + slot)
            else:
                # only moves beyond the pre-drawn visits (a few dozen per stage) are counted:
                # a customer going round without end runs out of those first
                moves += 1
                if moves > max_moves:
                    raise runaway(c, k, stage, env.now, max_moves)
                extra = extra or own_stream(k)
                u = extra.random()
                days = float(dwell_laws[stage].quantile(extra.random())) * dwell_factor[p][stage]
                if queues_on and patient[stage]:
                    limit = float(patience_laws[stage].quantile(extra.random()))
                    limit *= patience_factor[p]
                if outcomes_on and has_outcome[stage]:
                    drawn = extra.random()
            if active:
                following = bisect_right(tr.cumulative[stage], u)
                days *= tr.dwell_factor[stage]
            else:
                following = bisect_right(cumulative[stage], u)
            if queues_on and (resource := resource_at[stage]) is not None:
                queued = env.now
                ranks = rank_at[stage]
                request = resource.request() if ranks is None else resource.request(ranks[p])
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
                        yield days
                    resource.release(request)
            elif days > 0:
                yield days  # a delay: see start()
            if sat_on:
                if gave_up:
                    score += abandon_delta
                elif waited:
                    score += per_day_waited * waited
                if outcomes_on:
                    code = -1
                    if not gave_up:
                        if has_outcome[stage]:
                            shares, codes, deltas = outcome_row(stage, active)
                            j = bisect_right(shares, drawn)
                            code = codes[j]
                            score += deltas[j]
                        if active and credit_at[stage]:
                            for bit, amount, wanted in credit_at[stage]:
                                if active & bit and (wanted is None or wanted == code):
                                    score += amount
                    add_outcome(code)
                score = min(max(score, -1.0), 1.0)
                if not gave_up and score and shifts[stage]:
                    following = shifted_choice(p, active, stage, u, score)
                # decided on entering the stage: put off if a detractor reached them lately
                if neg_on and put_off_at[stage] and not gave_up and put_off_until[k] > entered:
                    following, lost = put_off_choice(p, active, stage, u, score)
                    det_lost[put_off_contact[k]] += lost
            if purchase[following]:
                if purchases < VALUE_BLOCK:
                    value = value_item[tab](row_of[k] * VALUE_BLOCK + purchases)
                else:
                    extra = extra or own_stream(k)
                    value = float(value_laws[p].quantile(extra.random()))
                purchases += 1
                if active:
                    value *= tr.value_factor
                if active and charging:
                    for i in range(len(ivs)):
                        if active >> i & 1 and per_conversion[i] and following in charged[i][stage]:
                            budgets.convert(i, bool(held >> i & 1))
                            held &= ~(1 << i)
            else:
                value = 0.0
            add_customer(k)
            add_time(env._now)  # the attribute behind env.now: read once per move
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
            if neg_on and churn_end[following] and score < threshold:
                process(detractor(k))
            if influencing and influencing[stage] != influencing[following]:
                influence(1 if influencing[following] else -1)
            left = stage
            stage = following
            # settling can change something only where an intervention not yet reaching the
            # customer targets this stage, or one reaching them may stop acting
            if pending and pending & (reachable_at[stage] | reached):
                active, reached, held = settle(k, stage, eligible, reached, held)
                tr = treatment(p, active) if active else None
                pending = eligible & ~(reached & permanent)
            if referring:
                if referring[left]:
                    stop_referring(k)
                if referring[stage] and (w := referral_weight(p, active)) > 0:
                    if per_point:
                        w = scored_weight(p, active, score)
                    refer(k, w, active & ~budgets.closed)
        if held:
            for i in range(len(ivs)):
                if held >> i & 1:
                    budgets.release(i)

    process = env.process
    schedule = env.schedule

    def drive(event: simpy.Event) -> None:
        """Resume a customer: a delay they yield waits on their own event, rescheduled
        (no timeout object per move); an event they yield (a queue) wakes them when it fires.
        The same events at the same moments as a SimPy process, without the process's
        bookkeeping (nothing waits on a customer's end, so no event marks it)."""
        target = next(event.journey, None)
        if target is None:
            return
        if isinstance(target, float):
            # env.schedule inlined (the move's one event); the callbacks list is shared:
            # nothing else ever waits on a customer's own event, so nothing appends to it
            event.callbacks = wake
            heappush(queue, (env._now + target, NORMAL, next(eid), event))
        else:
            target.callbacks.append(lambda _fired: drive(event))

    wake = [drive]
    queue, eid = env._queue, env._eid

    def start(journey) -> None:
        """Start a customer now, as ``env.process`` would (an urgent event at once)."""
        event = _Customer(env)
        event.callbacks = wake
        event._ok, event._value = True, None
        event.journey = journey
        schedule(event, URGENT)

    if market is not None:
        market.start()
    if isinstance(s.acquisition, Cohort):
        for k in range(n_customers):
            start(customer(k))
    else:
        arrivals = cust.arrival.tolist()
        # the channels' arrivals: one reusable event and a callback rather than a process
        # (no generator to resume). The same events at the same moments as a source process:
        # first at once (urgent, as a process starts), then a timeout to each later arrival.
        arriving = simpy.Event(env)
        arriving._ok, arriving._value = True, None
        next_arrival = 0
        schedule = env.schedule

        def start_from(k: int, event: simpy.Event) -> None:
            nonlocal next_arrival
            now = env._now
            while k < n_customers:
                day = arrivals[k]
                if day > now:
                    next_arrival = k
                    event.callbacks = [arrive]
                    schedule(event, NORMAL, day - now)
                    return
                start(customer(k))
                k += 1

        def arrive(event: simpy.Event) -> None:
            # the customer waited for starts even if rounding left the clock a hair short
            start(customer(next_arrival))
            start_from(next_arrival + 1, event)

        arriving.callbacks.append(lambda event: start_from(0, event))
        schedule(arriving, URGENT)
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
    outcomes = log_outcome if outcomes_on else None
    detractors = (det_customer, det_time, det_reached, det_lost) if neg_on else None
    return build_event_log(
        c,
        cust,
        replication,
        moves,
        reaches,
        adopters,
        queues,
        scores,
        outcomes=outcomes,
        detractors=detractors,
    )


class _Customer(simpy.Event):
    """A customer's reusable wake-up event: ``journey`` is their generator."""

    __slots__ = ("journey",)


#: Queue priority of the requests that hold units out of use: ahead of every customer.
BLOCKED = float("-inf")


def _resources(env: simpy.Environment, s) -> dict[str, simpy.Resource]:
    """The scenario's resources. One whose capacity varies (a schedule, changes from given
    days, capacity-change interventions) holds its largest capacity, and a controller holds
    the units not in force with requests ahead of every customer: released when capacity
    rises, taken back as units come free when it drops (customers in service finish)."""
    added: dict[str, list[tuple[float, float, int]]] = {}
    for iv in s.interventions:
        for e in iv.of_kind(CapacityChange):
            added.setdefault(e.resource, []).append((*iv.window_days, e.units))
    out: dict[str, simpy.Resource] = {}
    for r in s.resources:
        extra = added.get(r.name, [])
        if not r.varies and not extra:
            kind = simpy.PriorityResource if r.discipline == "priority" else simpy.Resource
            out[r.name] = kind(env, capacity=r.capacity)
            continue
        steps = capacity_in_force(r, extra, s.horizon_days, s.first_weekday)
        resource = simpy.PriorityResource(env, capacity=max(1, *(u for _, u in steps)))
        out[r.name] = resource
        env.process(_controller(env, resource, steps))
    return out


def capacity_in_force(
    r: Resource, added: list[tuple[float, float, int]], horizon_days: float, first_weekday: int
) -> list[tuple[float, int]]:
    """(from day, units in force) at each change over the horizon: the resource's own plan
    plus the units interventions add for their windows."""
    plan = r.plan(horizon_days, first_weekday)
    days = sorted(
        {d for d, _ in plan}
        | {w for start, end, _ in added for w in (start, end) if w < horizon_days}
    )
    starts = [d for d, _ in plan]
    steps: list[tuple[float, int]] = []
    for day in days:
        units = plan[bisect_right(starts, day) - 1][1]
        units += sum(u for start, end, u in added if start <= day < end)
        if not steps or steps[-1][1] != units:
            steps.append((day, units))
    return steps


def _controller(env: simpy.Environment, resource: simpy.PriorityResource, steps):
    """Keeps ``resource.capacity - units`` units out of use from each (day, units) step on."""
    top = resource.capacity
    held: list[simpy.resources.resource.PriorityRequest] = []
    for day, units in steps:
        if day > env.now:
            yield env.timeout(day - env.now)
        want = top - units
        # blockers are granted in the order they asked: those still waiting are the last
        while len(held) > want:
            request = held.pop()
            if request.triggered:
                resource.release(request)
            else:
                request.cancel()
        while len(held) < want:
            held.append(resource.request(priority=BLOCKED))
