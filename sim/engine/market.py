r"""The finite market on SimPy's clock: an exact (Gillespie-type) adoption process.

With :math:`m` of the market's :math:`N` people adopted and :math:`A` customers in the stages
that influence others, the next adoption comes at total hazard
:math:`\Lambda = (N - m)(p + q A / N)`, which changes only when :math:`m` or :math:`A` does.
Adoption *j* is driven by its own unit exponential :math:`E_j`: it happens when the hazard
integrated since adoption *j - 1* reaches :math:`E_j` (the time-change representation of a
counting process; exponential clocks are memoryless, so the pending time is re-drawn from the
remaining :math:`E_j` whenever :math:`\Lambda` changes). It came by word of mouth when its
uniform :math:`U_j < (q A / N) / (p + q A / N)`.

Referrals add :math:`c\, r\, W / N` to the per-person rate, where :math:`W` sums the referral
weights (persona factor times intervention factors) of the customers in referring stages,
:math:`r` is the referral rate and :math:`c` the conversion: each referral reaches one of the
market's *N* people at random and converts them, if not yet customers, with probability *c*.
A referral adoption's referrer is drawn with probability proportional to weight (a second
uniform of adoption *j*).

Random numbers of the market's customers are keyed by their adoption number *j* (block
``j // MARKET_BLOCK``, row ``j % MARKET_BLOCK``), never by the order of other events: two
scenarios that differ only in *q* give the *j*-th adopter the same persona and journey draws,
and a seed gives one answer at any worker count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from sim.engine.compiled import CompiledScenario
from sim.engine.streams import (
    CLOCK,
    PUT_OFF,
    REFERRER,
    SOURCE,
    draw_journeys,
    name_key,
    stream,
)
from sim.model.market import MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL

#: Adopters whose numbers are drawn together (a fixed size, so the keys do not depend on it).
MARKET_BLOCK = 4096


@dataclass(frozen=True, eq=False)
class MarketBlock:
    """Pre-drawn numbers of up to ``MARKET_BLOCK`` adopters."""

    persona: list[int]
    eligible: list[int]  # before the channel condition, which is known at adoption
    choice: np.ndarray
    dwell: np.ndarray
    value: np.ndarray
    clock: list[float]  # unit exponentials E_j
    patience: np.ndarray | None
    source: list[float]  # uniforms U_j
    referrer: list[float]  # uniforms picking the referrer
    #: uniforms saying whether the adopter is someone detractors reached (None: no detractors)
    put_off: list[float] | None = None


def market_key() -> int:
    """Stream key of the market's customers."""
    return name_key(MARKET_CHANNEL)


def draw_block(c: CompiledScenario, seed: int, replication: int, block: int) -> MarketBlock:
    """The numbers of adopters ``block * MARKET_BLOCK`` onward."""
    s = c.scenario
    n = min(MARKET_BLOCK, s.market.size - block * MARKET_BLOCK)
    head = (replication, market_key(), block)
    persona, eligible, choice, dwell, value, patience = draw_journeys(
        c, seed, head, n, s.persona_mix()
    )
    return MarketBlock(
        persona=persona.tolist(),
        eligible=eligible.tolist(),
        choice=choice,
        dwell=dwell,
        value=value,
        clock=stream(seed, *head, CLOCK).standard_exponential(n).tolist(),
        source=stream(seed, *head, SOURCE).random(n).tolist(),
        referrer=stream(seed, *head, REFERRER).random(n).tolist(),
        patience=patience,
        put_off=(
            stream(seed, *head, PUT_OFF).random(n).tolist()
            if s.word_of_mouth is not None and s.word_of_mouth.negative is not None
            else None
        ),
    )


class PutOff:
    """The market's people whom detractors reached and who are not yet customers.

    The market's non-customers are alike but for this, so only those reached are tracked, as
    slots (put off until, contact number) in no particular order: a contact lands on one of
    the *N* people at random (uniform ``u``): on a customer (the first ``adopted`` numbers),
    on a tracked person (their days start again) or on an untracked one (a new slot); an
    adopter is one of the non-customers at random (uniform ``v``), tracked or not."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.slots: list[tuple[float, int]] = []

    def contact(self, u: float, adopted: int, until: float, number: int) -> int:
        """A contact now: the adopter number it reached if a customer, else -1."""
        x = u * self.size
        if x < adopted:
            return int(x)
        i = int(x - adopted)
        if i < len(self.slots):
            self.slots[i] = (until, number)
        else:
            self.slots.append((until, number))
        return -1

    def adopt(self, v: float, adopted: int) -> tuple[float, int] | None:
        """The adopter after ``adopted`` others: (put off until, last contact) when a
        detractor reached them, else None."""
        i = int(v * (self.size - adopted))
        if i >= len(self.slots):
            return None
        last = self.slots.pop()
        if i == len(self.slots):
            return last
        found, self.slots[i] = self.slots[i], last
        return found


class Referrers:
    """Customers who are making referrals now, grouped by (weight, acting interventions) so
    that one is picked in proportion to weight in time proportional to the number of groups."""

    def __init__(self) -> None:
        self.groups: dict[tuple[float, int], list[int]] = {}
        self.where: dict[int, tuple[tuple[float, int], int]] = {}

    def add(self, k: int, weight: float, active: int) -> None:
        """Customer ``k`` starts referring with ``weight``; ``active`` interventions act."""
        group = self.groups.setdefault((weight, active), [])
        self.where[k] = ((weight, active), len(group))
        group.append(k)

    def remove(self, k: int) -> None:
        """Customer ``k`` stops referring (if they were)."""
        found = self.where.pop(k, None)
        if found is None:
            return
        key, i = found
        group = self.groups[key]
        last = group.pop()
        if last != k:
            group[i] = last
            self.where[last] = (key, i)

    def regroup(self, bit: int, reweigh: Callable[[float, int], float]) -> None:
        """Interventions ``bit`` stop acting on referrals: every referrer they acted on moves
        to the weight ``reweigh(weight, active)`` without them."""
        moving = [(key, group) for key, group in self.groups.items() if key[1] & bit and group]
        for key, group in moving:
            del self.groups[key]
            w, active = key
            for k in group:
                del self.where[k]
                self.add(k, reweigh(w, active), active & ~bit)

    @property
    def weight(self) -> float:
        """Sum of the weights of all referring customers."""
        return sum(w * len(g) for (w, _), g in self.groups.items())

    def pick(self, u: float) -> tuple[int, int]:
        """A referrer (and the interventions acting on them) with probability proportional
        to weight, from a uniform ``u``."""
        target = u * self.weight
        chosen = None
        for (w, active), group in self.groups.items():
            if not group:
                continue
            chosen = (w, active, group)
            if target < w * len(group):
                break
            target -= w * len(group)
        w, active, group = chosen
        return group[min(int(target / w), len(group) - 1)], active


class MarketProcess:
    """Adoptions from a finite market during one SimPy run.

    ``adopt(j, source, referrer, active)`` is called at each adoption (source 0: external
    influence, 1: word of mouth, 2: referral by customer ``referrer`` on whom interventions
    ``active`` act; else -1 and 0) and must start the new customer; the engine calls
    :meth:`influence` whenever a customer enters (+1) or leaves (-1) a stage that influences
    others, and :meth:`refer` / :meth:`stop_referring` as customers enter and leave
    referring stages.
    """

    def __init__(
        self,
        env: simpy.Environment,
        c: CompiledScenario,
        seed: int,
        replication: int,
        adopt: Callable[[int, int, int, int], None],
    ) -> None:
        s = c.scenario
        self.env = env
        self.c, self.seed, self.replication = c, seed, replication
        self.size = s.market.size
        self.p = s.market.external_rate
        wom = s.word_of_mouth
        self.q = wom.rate if wom is not None else 0.0
        stages = wom.stages if wom is not None else ()
        #: per stage: customers there influence others
        self.influencing = tuple(name in stages for name in c.names)
        ref = s.referrals
        #: per stage: customers there make referrals
        self.referring = tuple(ref is not None and name in ref.stages for name in c.names)
        # successful referrals per unit weight per non-customer reached, before / N
        self.refer_rate = ref.rate * ref.conversion if ref is not None else 0.0
        self.referrers = Referrers()
        self.referral_weight = 0.0
        self.adopt = adopt
        self.blocks: list[MarketBlock] = []
        self.adopted = 0
        self.influencers = 0
        self.hazard = 0.0
        self.used = 0.0  # hazard integrated since the last adoption
        self.since = 0.0
        self.due = math.inf  # when the next adoption happens, as things stand
        self.pending: simpy.Event | None = None  # the timeout that will wake the process
        self.pending_time = math.inf
        self.timeout = env.timeout
        self.fire = self._fire  # one bound method for every timeout
        neg = wom.negative if wom is not None else None
        #: people detractors put off (None: no negative word of mouth)
        self.put_off = PutOff(self.size) if neg is not None else None

    def block(self, j: int) -> tuple[MarketBlock, int]:
        """The block holding adopter ``j``'s numbers, and their row in it."""
        b, row = divmod(j, MARKET_BLOCK)
        while len(self.blocks) <= b:
            self.blocks.append(draw_block(self.c, self.seed, self.replication, len(self.blocks)))
        return self.blocks[b], row

    @property
    def channel_names(self) -> tuple[str, str]:
        """Channels of adopters: external influence, word of mouth."""
        return MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL

    def start(self) -> None:
        """Schedule the first adoption (call once, before the run)."""
        self._schedule()

    def influence(self, change: int) -> None:
        """A customer entered (+1) or left (-1) an influencing stage, now."""
        now = self.env.now
        self.used += self.hazard * (now - self.since)
        self.since = now
        self.influencers += change
        self._schedule()

    def refer(self, k: int, weight: float, active: int) -> None:
        """Customer ``k`` entered a referring stage, now, with referral ``weight``."""
        self._advance()
        self.referrers.add(k, weight, active)
        self.referral_weight = self.referrers.weight
        self._schedule()

    def stop_referring(self, k: int) -> None:
        """Customer ``k`` left a referring stage, now."""
        self._advance()
        self.referrers.remove(k)
        self.referral_weight = self.referrers.weight
        self._schedule()

    def stop_factors(self, bit: int, reweigh: Callable[[float, int], float]) -> None:
        """Interventions ``bit`` (a programme whose budget is spent) stop acting on the
        referrals of customers referring now, from now on."""
        self._advance()
        self.referrers.regroup(bit, reweigh)
        self.referral_weight = self.referrers.weight
        self._schedule()

    def _advance(self) -> None:
        now = self.env.now
        self.used += self.hazard * (now - self.since)
        self.since = now

    def _schedule(self) -> None:
        # runs at every adoption and every change of the hazard: kept inline (no helpers)
        n = self.size
        per_person = self.p + self.q * self.influencers / n
        per_person += self.refer_rate * self.referral_weight / n
        j = self.adopted
        self.hazard = hazard = (n - j) * per_person
        if hazard <= 0:
            self.due = math.inf
            return
        b, row = divmod(j, MARKET_BLOCK)
        blocks = self.blocks
        block = blocks[b] if b < len(blocks) else self.block(j)[0]
        now = self.env._now
        delay = max(block.clock[row] - self.used, 0.0) / hazard
        self.due = due = now + delay
        # a timeout cannot be withdrawn: one due no later than the adoption stays and, on
        # firing early, schedules the rest; one due later is superseded and ignored
        if self.pending is not None and self.pending_time <= due:
            return
        event = self.timeout(delay)
        event.callbacks.append(self.fire)
        self.pending, self.pending_time = event, now + delay

    def _wait(self, delay: float) -> None:
        event = self.timeout(delay)
        event.callbacks.append(self.fire)
        self.pending, self.pending_time = event, self.env._now + delay

    def _fire(self, event: simpy.Event) -> None:
        if event is not self.pending:
            return
        self.pending = None
        now = self.env._now
        if now < self.due:
            if self.due < math.inf:
                self._wait(self.due - now)
            return
        j = self.adopted
        b, row = divmod(j, MARKET_BLOCK)
        block = self.blocks[b]  # drawn when this adoption was scheduled
        n = self.size
        p, word = self.p, self.q * self.influencers / n
        referral = self.refer_rate * self.referral_weight / n
        x = block.source[row] * (p + word + referral)
        referrer, active = -1, 0
        if x < word:
            source = 1
        elif x < word + referral and self.referral_weight > 0:
            source = 2
            referrer, active = self.referrers.pick(block.referrer[row])
        else:
            source = 0
        self.adopted += 1
        self.used, self.since = 0.0, now
        self.adopt(j, source, referrer, active)
        self._schedule()
