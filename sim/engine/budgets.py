"""Spending of interventions in one replication: budgets shared by all customers.

Rewards for referrals (``Cost.per_referral``) are paid from the same budget, one reward per
referral the programme is credited with, while what is left pays one more: the budget is
never exceeded. Once it cannot, the intervention is *closed*: it reaches no one else, and the
engine stops crediting referrals to it and stops applying its referral-rate factor.
"""

from __future__ import annotations

import math
from array import array

from sim.model.scenario import Scenario


class Budgets:
    """Spending of the interventions in one replication; a cap is never exceeded."""

    def __init__(self, scenario: Scenario) -> None:
        ivs = scenario.interventions
        self.per_reached = [iv.cost.per_reached for iv in ivs]
        self.per_conversion = [iv.cost.per_conversion for iv in ivs]
        self.per_referral = [iv.cost.per_referral for iv in ivs]
        # what reaching and converting may spend: the budget less the fixed cost
        self.cap = [math.inf if iv.budget is None else iv.budget - iv.cost.fixed for iv in ivs]
        self.reserves = [
            cap < math.inf and pc > 0 for cap, pc in zip(self.cap, self.per_conversion, strict=True)
        ]
        self.spent = [0.0] * len(ivs)
        self.reserved = [0.0] * len(ivs)
        #: bit i set: intervention i's budget can no longer pay a referral reward
        self.closed = 0
        self.windows = [iv.window_days for iv in ivs]
        self.lasting = [iv.lasting for iv in ivs]
        #: per intervention: the stage codes it reaches customers in (None: any stage)
        self.targets = [
            frozenset(scenario.journey.index(n) for n in iv.stages) or None for iv in ivs
        ]
        #: one record per customer reached: customer, intervention, day
        self.reaches = (array("l"), array("h"), array("d"))

    def settle(
        self, now: float, k: int, stage: int, eligible: int, reached: int, held: int
    ) -> tuple[int, int, int]:
        """Customer ``k`` enters ``stage`` at ``now``: the interventions that reach them now
        (eligible, window open, a target stage, budget left; recorded in :attr:`reaches`) and
        those that act on them, as bits: (acting, reached, holding a reserve). The one rule of
        both SimPy paths."""
        active = 0
        windows, targets, lasting, reserves = (
            self.windows,
            self.targets,
            self.lasting,
            self.reserves,
        )
        for i in range(len(windows)):
            bit = 1 << i
            if not eligible & bit:
                continue
            start, end = windows[i]
            if not reached & bit:
                if not (
                    start <= now < end
                    and (targets[i] is None or stage in targets[i])
                    and self.can_reach(i)
                ):
                    continue
                self.reach(i)
                reached |= bit
                if reserves[i]:
                    held |= bit
                customers, index, day = self.reaches
                customers.append(k)
                index.append(i)
                day.append(now)
            if not (lasting[i] or now < end):
                continue
            if reserves[i] and not held & bit:
                if not self.reserve(i):
                    continue
                held |= bit
            active |= bit
        return active, reached, held

    def can_reach(self, i: int) -> bool:
        if self.closed >> i & 1:
            return False
        need = self.per_reached[i] + (self.per_conversion[i] if self.reserves[i] else 0.0)
        return self.spent[i] + self.reserved[i] + need <= self.cap[i] + 1e-9

    def reach(self, i: int) -> None:
        self.spent[i] += self.per_reached[i]
        if self.reserves[i]:
            self.reserved[i] += self.per_conversion[i]

    def reserve(self, i: int) -> bool:
        if self.spent[i] + self.reserved[i] + self.per_conversion[i] <= self.cap[i] + 1e-9:
            self.reserved[i] += self.per_conversion[i]
            return True
        return False

    def convert(self, i: int, held: bool) -> None:
        self.spent[i] += self.per_conversion[i]
        if held:
            self.reserved[i] -= self.per_conversion[i]

    def release(self, i: int) -> None:
        self.reserved[i] -= self.per_conversion[i]

    def pays_rewards(self, i: int) -> bool:
        """Intervention ``i`` pays referral rewards from a budget (a cap that may bind)."""
        return self.per_referral[i] > 0 and self.cap[i] < math.inf

    def pay_referral(self, i: int) -> bool:
        """Pay one referral reward if the budget allows (False: not paid, nothing spent).
        Closes the intervention when what is left cannot pay the next reward."""
        if self.closed >> i & 1:
            return False
        reward = self.per_referral[i]
        if self.spent[i] + self.reserved[i] + reward > self.cap[i] + 1e-9:
            self.closed |= 1 << i
            return False
        self.spent[i] += reward
        if self.spent[i] + self.reserved[i] + reward > self.cap[i] + 1e-9:
            self.closed |= 1 << i
        return True
