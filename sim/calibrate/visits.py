"""Visits to stages read off an event log: how long each lasted and where it led, or that it
was still open when the data ended (right-censored). Vectorised: no loop per event."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.events import EventLog

#: ``next`` of a visit still open at the end of the data.
OPEN = -1


@dataclass(frozen=True)
class Visits:
    """One entry per visit to a non-end stage (columns of equal length)."""

    customer: np.ndarray  # customer key across replications
    persona: np.ndarray
    stage: np.ndarray
    start: np.ndarray  # day the visit began
    duration: np.ndarray  # days until the next move, or until the end of the data
    next: np.ndarray  # stage moved to, or OPEN (censored)

    @property
    def censored(self) -> np.ndarray:
        """Visits still open when the data end."""
        return self.next == OPEN


def visits(log: EventLog, hidden: np.ndarray | None = None) -> Visits:
    """Every visit of every customer to a non-end stage.

    ``hidden`` (a boolean per stage) marks end stages whose entries are not real
    observations (churn labelled after the fact): rows into them are ignored, so the visit
    before is open until the end of the data, as for a customer who is merely quiet.
    """
    key = log.customer_key()
    keep = np.ones(len(log), dtype=bool)
    if hidden is not None and hidden.any():
        keep = ~hidden[log.to_stage]
    # rows of one customer are in time order in the log; a stable sort by customer keeps it
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(key[rows], kind="stable")]
    k, t, to = key[rows], log.time[rows], log.to_stage[rows].astype(np.int64)
    has_next = np.r_[k[1:] == k[:-1], False]
    following = np.r_[to[1:], OPEN]
    ended_at = np.r_[t[1:], np.nan]
    is_visit = ~log.end_mask[to]
    has_next = has_next[is_visit]
    start = t[is_visit]
    duration = np.where(has_next, ended_at[is_visit], log.horizon_days) - start
    return Visits(
        customer=k[is_visit],
        persona=log.persona[rows][is_visit].astype(np.int64),
        stage=to[is_visit],
        start=start,
        duration=duration,
        next=np.where(has_next, following[is_visit], OPEN),
    )
