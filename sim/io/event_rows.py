"""Checks on the rows of an event export (:func:`sim.read_events`): reading timestamps, finding
repeated rows, and the one error that lists bad rows by line and value."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import EventLogError
from sim.events import SHOWN

#: Why a row can be bad, in the order rows are checked (a row counts under its first reason).
REASONS = (
    "missing customer",
    "unparseable time",
    "unknown event",
    "unparseable value",
    "negative value",
    "before start",
    "duplicate",
    "value not on a purchase",
    "out of time order",
    "after an end stage",
)

#: Nanoseconds in a day.
DAY_NS = 86_400 * 10**9


def timestamps(raw: pd.Series) -> tuple[pd.Series, bool]:
    """Timestamps in UTC (NaT where unparseable), and whether the data carried time zones
    (times without one are taken as UTC)."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC"), True
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC"), False
    with warnings.catch_warnings():
        # pandas warns when it cannot infer one format, and pandas 2 when zones are mixed
        # (it returns objects): the fallbacks below are meant for both
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            parsed = pd.to_datetime(raw, errors="coerce")
        except (ValueError, TypeError):  # mixed time zones, or zones on some rows only
            parsed = raw.iloc[:0]
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            aware = True
            parsed = parsed.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(parsed.dtype) and len(parsed) == len(raw):
            aware = False
            parsed = parsed.dt.tz_localize("UTC")
        else:
            aware = True
            parsed = pd.to_datetime(raw, errors="coerce", utc=True)
        retry = parsed.isna() & raw.notna()
        if retry.any():
            # a copy: under pandas 2, .dt results are views that refuse assignment
            parsed = parsed.copy()
            parsed.loc[retry] = pd.to_datetime(
                raw[retry], errors="coerce", utc=True, format="mixed"
            )
    return parsed, aware


def instant(value: Any, what: str) -> pd.Timestamp:
    """``start=`` or ``end=`` as a UTC instant (a value without a zone is taken as UTC)."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise EventLogError(
            f"{what}={value!r} is not a date", field=what, fix=f'e.g. {what}="2025-01-01"'
        )
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def number(value: Any, what: str) -> float:
    """``start=`` or ``end=`` in days, for a numeric time column."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EventLogError(
            f"{what}={value!r}: the time column holds numbers (days), so {what} must be one",
            field=what,
            fix=f"give {what} in days",
        ) from None


def iso(stamp: pd.Timestamp) -> str:
    """Day 0 as ISO text: a date when it is midnight (UTC)."""
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()


def repeated(
    frame: pd.DataFrame,
    columns: dict[str, str],
    key: np.ndarray,
    days: np.ndarray,
    event_codes: np.ndarray,
    amount: np.ndarray,
) -> np.ndarray:
    """Rows that repeat an earlier row exactly (the first of them is kept). A hash of
    customer, event, time and value finds the few candidates; they are then compared in full,
    so a hash collision never marks a row."""
    h = np.zeros(len(key), dtype=np.uint64)
    for values in (key, event_codes, days, amount):
        h = h * np.uint64(1_000_003) ^ pd.util.hash_array(values)
    maybe = np.flatnonzero(pd.Series(h).duplicated(keep=False).to_numpy())
    others = [c for r, c in columns.items() if r not in ("customer", "time", "stage", "value")]
    candidates = pd.DataFrame(
        {
            "key": key[maybe],
            "event": event_codes[maybe],
            "days": days[maybe],
            "amount": amount[maybe],
            **{f"other {c}": frame[c].iloc[maybe].to_numpy() for c in others},
        }
    )
    mask = np.zeros(len(key), dtype=bool)
    mask[maybe[candidates.duplicated(keep="first").to_numpy()]] = True
    return mask


def _shown(value: Any) -> str:
    """A cell as a user reads it: text quoted, numbers plain."""
    return repr(value) if isinstance(value, str) else str(value)


def raise_bad_rows(
    reason: np.ndarray,
    frame: pd.DataFrame,
    columns: dict[str, str],
    line_offset: int,
    lines: np.ndarray | None = None,
) -> None:
    """One error listing, per reason, how many rows and the first of them with their value.

    ``lines``: per row of ``frame``, its position in the source (rows were sorted)."""
    column_of = {
        "missing customer": "customer",
        "unparseable time": "time",
        "unknown event": "stage",
        "unparseable value": "value",
        "negative value": "value",
        "before start": "time",
        "duplicate": "customer",
        "value not on a purchase": "value",
        "out of time order": "time",
        "after an end stage": "stage",
    }
    fixes = {
        "missing customer": "give every row a customer id",
        "unparseable time": "write times as ISO 8601, e.g. 2025-01-31 14:05:00",
        "unknown event": "map every event name to a stage in stages= (or to '' to ignore it)",
        "unparseable value": "write values as plain numbers",
        "negative value": "order values must be >= 0 (refunds are not events of the journey)",
        "before start": "move start= earlier, or leave it out to start at the first event",
        "duplicate": "remove the repeated rows",
        "value not on a purchase": "name the stage in purchase_stages=, or map the event to a "
        "purchase stage",
        "out of time order": "pass sort_rows=True to put each customer's events in time "
        "order (or sort the file by customer and time)",
        "after an end stage": "a customer who reached an end stage has no later events; "
        "pass end_stages= naming only true ends",
    }
    parts = []
    first_kind = None
    for r, kind in enumerate(REASONS):
        rows = np.flatnonzero(reason == r)
        if not len(rows):
            continue
        first_kind = first_kind or kind
        if lines is not None:
            rows = rows[np.argsort(lines[rows], kind="stable")]  # in the file's order
        column = columns.get(column_of[kind], columns["customer"])
        where = "line" if line_offset else "row"
        shown = ", ".join(
            f"{where} {(i if lines is None else int(lines[i])) + line_offset} "
            f"({_shown(frame[column].iloc[i])})"
            for i in rows[:SHOWN]
        )
        more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
        parts.append(f"{len(rows)} {kind} in column '{column}': {shown}{more}")
    total = int((reason >= 0).sum())
    raise EventLogError(
        f"{total} bad row(s): " + "; ".join(parts),
        field=f"column '{columns.get(column_of[first_kind], columns['customer'])}'",
        fix=fixes[first_kind] + ', or pass errors="skip" to leave bad rows out (counted in '
        "log.skipped)",
    )
