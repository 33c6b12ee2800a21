"""The event log: one row per transition, held as numpy columns (never an object per event)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: ``from_stage`` code of a customer's first row (entry into the journey).
ENTRY = -1

COLUMNS = (
    "replication",
    "customer",
    "persona",
    "channel",
    "time",
    "from_stage",
    "to_stage",
    "value",
)


@dataclass(frozen=True, eq=False)
class EventLog:
    """Columnar event log of one or more replications.

    ``persona``, ``channel``, ``from_stage`` and ``to_stage`` are integer codes into ``personas``,
    ``channels`` and ``stages``; ``from_stage`` is ``ENTRY`` (-1) on each customer's first row.
    Rows are in time order within each replication. ``customers`` counts the customers of each
    replication (customer numbers run from 0 within a replication).
    """

    replication: np.ndarray
    customer: np.ndarray
    persona: np.ndarray
    channel: np.ndarray
    time: np.ndarray
    from_stage: np.ndarray
    to_stage: np.ndarray
    value: np.ndarray
    customers: np.ndarray
    stages: tuple[str, ...]
    personas: tuple[str, ...]
    channels: tuple[str, ...]
    horizon_days: float
    #: bit i set: intervention i acted on the decision that led to the row
    treatment: np.ndarray | None = None
    interventions: tuple[str, ...] = ()
    #: one record per customer reached by an intervention: replication, customer, index, day
    reach_replication: np.ndarray | None = None
    reach_customer: np.ndarray | None = None
    reach_intervention: np.ndarray | None = None
    reach_time: np.ndarray | None = None

    def __post_init__(self) -> None:
        empty = {
            "treatment": np.zeros(len(self.time), dtype=np.int64),
            "reach_replication": np.zeros(0, dtype=np.int32),
            "reach_customer": np.zeros(0, dtype=np.int32),
            "reach_intervention": np.zeros(0, dtype=np.int16),
            "reach_time": np.zeros(0),
        }
        for name, value in empty.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.time)

    @property
    def replications(self) -> int:
        """How many replications the log holds."""
        return len(self.customers)

    @staticmethod
    def concat(logs: Sequence[EventLog]) -> EventLog:
        """Join the logs of separate replications (numbered as in each log)."""
        first = logs[0]
        names = (
            *COLUMNS,
            "treatment",
            "reach_replication",
            "reach_customer",
            "reach_intervention",
            "reach_time",
        )
        cols = {c: np.concatenate([getattr(log, c) for log in logs]) for c in names}
        return EventLog(
            **cols,
            interventions=first.interventions,
            customers=np.concatenate([log.customers for log in logs]),
            stages=first.stages,
            personas=first.personas,
            channels=first.channels,
            horizon_days=first.horizon_days,
        )

    def customer_key(self) -> np.ndarray:
        """A number per row identifying the customer across replications (0 .. total-1)."""
        offsets = np.concatenate([[0], np.cumsum(self.customers)[:-1]])
        return offsets[self.replication] + self.customer

    def treatment_labels(self) -> pd.Categorical:
        """Per row, the names of the interventions acting on it joined by '+' ('' for none)."""
        masks, codes = np.unique(self.treatment, return_inverse=True)
        labels = [
            "+".join(n for i, n in enumerate(self.interventions) if int(m) >> i & 1) for m in masks
        ]
        return pd.Categorical.from_codes(codes.reshape(-1), categories=labels)

    def reached_frame(self) -> pd.DataFrame:
        """Customers reached by interventions: replication, customer, intervention, time."""
        return pd.DataFrame(
            {
                "replication": self.reach_replication,
                "customer": self.reach_customer,
                "intervention": pd.Categorical.from_codes(
                    self.reach_intervention.astype(np.int64),
                    dtype=pd.CategoricalDtype(list(self.interventions)),
                ),
                "time": self.reach_time,
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """The log as a DataFrame; stage, persona and channel columns are categorical. With
        interventions, an ``interventions`` column names those acting on each move."""
        stage_cat = pd.CategoricalDtype(list(self.stages))

        def cat(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
            return pd.Categorical.from_codes(
                codes.astype(np.int64), dtype=pd.CategoricalDtype(list(names))
            )

        frame = pd.DataFrame(
            {
                "replication": self.replication,
                "customer": self.customer,
                "persona": cat(self.persona, self.personas),
                "channel": cat(self.channel, self.channels),
                "time": self.time,
                "from_stage": pd.Categorical.from_codes(
                    self.from_stage.astype(np.int64), dtype=stage_cat
                ),
                "to_stage": pd.Categorical.from_codes(
                    self.to_stage.astype(np.int64), dtype=stage_cat
                ),
                "value": self.value,
            }
        )
        if self.interventions:
            frame["interventions"] = self.treatment_labels()
        return frame
