"""Spending of interventions in one replication: budgets shared by all customers."""

from __future__ import annotations

import math

from sim.model.scenario import Scenario


class Budgets:
    """Spending of the interventions in one replication; a cap is never exceeded."""

    def __init__(self, scenario: Scenario) -> None:
        ivs = scenario.interventions
        self.per_reached = [iv.cost.per_reached for iv in ivs]
        self.per_conversion = [iv.cost.per_conversion for iv in ivs]
        # what reaching and converting may spend: the budget less the fixed cost
        self.cap = [math.inf if iv.budget is None else iv.budget - iv.cost.fixed for iv in ivs]
        self.reserves = [
            cap < math.inf and pc > 0 for cap, pc in zip(self.cap, self.per_conversion, strict=True)
        ]
        self.spent = [0.0] * len(ivs)
        self.reserved = [0.0] * len(ivs)

    def can_reach(self, i: int) -> bool:
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
