r"""The finite market on SimPy's clock: an exact (Gillespie-type) adoption process.

With :math:`m` of the market's :math:`N` people adopted and :math:`A` customers in the stages
that influence others, the next adoption comes at total hazard
:math:`\Lambda = (N - m)(p + q A / N)`, which changes only when :math:`m` or :math:`A` does.
Adoption *j* is driven by its own unit exponential :math:`E_j`: it happens when the hazard
integrated since adoption *j - 1* reaches :math:`E_j` (the time-change representation of a
counting process; exponential clocks are memoryless, so the pending time is re-drawn from the
remaining :math:`E_j` whenever :math:`\Lambda` changes). It came by word of mouth when its
uniform :math:`U_j < (q A / N) / (p + q A / N)`.

Random numbers of the market's customers are keyed by their adoption number *j* (block
``j // MARKET_BLOCK``, row ``j % MARKET_BLOCK``), never by the order of other events: two
scenarios that differ only in *q* give the *j*-th adopter the same persona and journey draws,
and a seed gives one answer at any worker count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import simpy

from sim.engine.compiled import CompiledScenario
from sim.engine.streams import CLOCK, SOURCE, draw_journeys, name_key, stream
from sim.model.market import MARKET_CHANNEL, WORD_OF_MOUTH_CHANNEL

#: Adopters whose numbers are drawn together (a fixed size, so the keys do not depend on it).
MARKET_BLOCK = 1024


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
        patience=patience,
    )


class MarketProcess:
    """Adoptions from a finite market during one SimPy run.

    ``adopt(j, by_word_of_mouth)`` is called at each adoption and must start the new
    customer; the engine calls :meth:`influence` whenever a customer enters (+1) or leaves
    (-1) a stage that influences others.
    """

    def __init__(
        self,
        env: simpy.Environment,
        c: CompiledScenario,
        seed: int,
        replication: int,
        adopt: Callable[[int, bool], None],
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
        self.adopt = adopt
        self.blocks: list[MarketBlock] = []
        self.adopted = 0
        self.influencers = 0
        self.hazard = 0.0
        self.used = 0.0  # hazard integrated since the last adoption
        self.since = 0.0
        self.version = 0

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

    def _schedule(self) -> None:
        self.version += 1
        left = self.size - self.adopted
        self.hazard = left * (self.p + self.q * self.influencers / self.size)
        if self.hazard <= 0:
            return
        block, row = self.block(self.adopted)
        delay = max(block.clock[row] - self.used, 0.0) / self.hazard
        # a timeout cannot be withdrawn: a superseded one finds its version stale and does nothing
        self.env.timeout(delay).callbacks.append(partial(self._fire, self.version))

    def _fire(self, version: int, _event: simpy.Event) -> None:
        if version != self.version:
            return
        j = self.adopted
        block, row = self.block(j)
        word = self.q * self.influencers / self.size
        by_word_of_mouth = block.source[row] * (self.p + word) < word
        self.adopted += 1
        self.used, self.since = 0.0, self.env.now
        self.adopt(j, by_word_of_mouth)
        self._schedule()
