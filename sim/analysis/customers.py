"""One row per customer, derived from the event log with numpy (no per-customer Python)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.events import ALL, EventLog


def customer_groups(log: EventLog, by: str | None) -> list[tuple[str, np.ndarray]]:
    """'all', then each persona or channel (``by``), with a mask over the log's customers
    (in :meth:`EventLog.customer_key` order)."""
    n = int(log.customers.sum())
    groups = [(ALL, np.ones(n, dtype=bool))]
    if by is None:
        return groups
    if by not in ("persona", "channel"):
        raise ValueError(f"split by 'persona', 'channel' or None, not {by!r}")
    code = np.empty(n, dtype=np.int64)
    code[log.customer_key()] = log.persona if by == "persona" else log.channel
    names = log.personas if by == "persona" else log.channels
    return groups + [(name, code == i) for i, name in enumerate(names)]


def reach_matrix(log: EventLog) -> np.ndarray:
    """Boolean (customers x stages): did customer k ever enter stage s (within the horizon)."""
    key = log.customer_key()
    reached = np.zeros((int(log.customers.sum()), len(log.stages)), dtype=bool)
    reached[key, log.to_stage] = True
    return reached


def customer_arrays(log: EventLog) -> dict[str, np.ndarray]:
    """Per-customer arrays: replication, customer, persona, channel, arrival, final stage,
    ``ended`` (reached an absorbing stage), ``end_time``, ``first_purchase`` (NaN if none),
    ``purchases`` and ``revenue``."""
    absorbing, purchase = log.end_mask, log.purchase_mask
    key = log.customer_key()
    n = int(log.customers.sum())
    entry = log.from_stage < 0
    first_row = np.empty(n, dtype=np.int64)
    first_row[key[entry]] = np.flatnonzero(entry)
    # rows are in time order, so the last row written per customer is their latest move
    last_row = np.zeros(n, dtype=np.int64)
    last_row[key] = np.arange(len(key))
    final = log.to_stage[last_row]
    ended = absorbing[final]
    is_purchase = purchase[log.to_stage]
    first_purchase = np.full(n, np.inf)
    np.minimum.at(first_purchase, key[is_purchase], log.time[is_purchase])
    first_purchase[np.isinf(first_purchase)] = np.nan
    return {
        "replication": log.replication[first_row],
        "customer": log.customer[first_row],
        "persona": log.persona[first_row],
        "channel": log.channel[first_row],
        "arrival": log.time[first_row],
        "final_stage": final,
        "ended": ended,
        "end_time": np.where(ended, log.time[last_row], np.nan),
        "first_purchase": first_purchase,
        "purchases": np.bincount(key[is_purchase], minlength=n),
        "revenue": np.bincount(key, weights=log.value, minlength=n),
    }


def customer_table(log: EventLog) -> pd.DataFrame:
    """One row per customer and replication: persona, channel, arrival, final stage, whether
    the journey ended, first purchase day, number of purchases and revenue."""
    a = customer_arrays(log)
    frame = pd.DataFrame(a)
    for col, names in (
        ("persona", log.personas),
        ("channel", log.channels),
        ("final_stage", log.stages),
    ):
        frame[col] = pd.Categorical.from_codes(
            a[col].astype(np.int64), dtype=pd.CategoricalDtype(list(names))
        )
    return frame
