"""An analyst's export (CSV or Parquet) as an event log, for ``sim fit`` and ``sim check``.

One function, :func:`read_table`, that goes through :meth:`sim.EventLog.from_frame`; a general
reader of real exports can replace it without changing the fit.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import EventLogError
from sim.events import EventLog


def read_table(
    path: str | Path,
    *,
    customer: str,
    time: str,
    stage: str | None = None,
    value: str | None = None,
    segment: str | None = None,
    stage_map: str | Path | None = None,
    until: str | float | None = None,
    repeat_steps: int = 1,
) -> EventLog:
    """Read an export with one row per event into a validated :class:`~sim.EventLog`.

    Columns are named by the arguments. ``time`` holds dates (days since the first date
    become the log's time; ``start_date`` records it) or numbers of days. With ``stage``,
    each row says the customer entered that stage; the optional TOML ``stage_map`` gives::

        stages = ["visit", "cart", "purchase", "post_purchase", "lost", "churned"]
        purchase = ["purchase"]            # entering them is an order
        ends = ["lost", "churned"]         # journeys end there (may be silent: no rows)
        between_purchases = "post_purchase"  # stage a buyer waits in for the next order
        edges = [["post_purchase", "churned"], ...]   # moves allowed besides those seen
        [labels]                           # data label -> stage
        page_view = "visit"

    Without ``stage`` every row is a purchase (a transaction log: customer, date, amount):
    the journey is purchase -> post_purchase -> purchase again, or silently churned.
    Purchases of a customer at the same time are one order (values summed), and repeated
    rows of the same non-purchase stage are one visit; the log's ``skipped`` counts both.
    Rows after ``until`` (a date, or days) are left out and the data end there. For a
    transaction log, ``repeat_steps`` k > 1 gives the first k - 1 orders stages of their own
    (see :func:`transaction_stages`).
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path)
    except FileNotFoundError:
        raise EventLogError("file not found", source=str(path), fix="check the path") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise EventLogError(f"cannot read the file: {err}", source=str(path)) from None
    try:
        return _events(raw, customer, time, stage, value, segment, stage_map, until, repeat_steps)
    except EventLogError as err:
        raise err.located(str(path)) from None


def read_attributes(
    path: str | Path,
    columns: Sequence[str],
    *,
    customer: str,
    time: str,
    stage: str | None = None,
    stage_map: str | Path | None = None,
    until: str | float | None = None,
) -> pd.DataFrame:
    """Customer attributes of an export: one row per customer of the log :func:`read_table`
    reads from the same file and options, in that log's customer order (what
    ``Calibrator(attributes=columns).fit(log, attributes=...)`` takes).

    Each column must hold one number per customer (the same on all their rows); a customer
    whose rows disagree is refused, naming the column and the customer.
    """
    path = Path(path)
    raw = _read(path)
    try:
        missing = [c for c in columns if c not in raw.columns]
        if missing:
            raise EventLogError(
                f"no column {', '.join(map(repr, missing))} (given as --attribute)",
                field="columns",
                fix=f"the file has {', '.join(map(str, raw.columns))}",
            )
        ids = _events(raw, customer, time, stage, None, None, stage_map, until, 1, ids=True)[1]
        values = raw[[customer, *columns]].copy()
        for c in columns:
            numbers = pd.to_numeric(values[c], errors="coerce")
            bad = numbers.isna() & values[c].notna()
            if bad.any():
                rows = values.index[bad][:3].tolist()
                raise EventLogError(
                    f"attribute '{c}' holds text, not numbers (rows {rows}: "
                    f"{values.loc[bad, c].head(3).tolist()})",
                    field=c,
                    fix="code categories as 0/1 columns, one per category",
                )
            values[c] = numbers
        grouped = values.groupby(customer, sort=False)[list(columns)]
        spread = grouped.nunique()
        for c in columns:
            several = spread.index[spread[c] > 1]
            if len(several):
                raise EventLogError(
                    f"attribute '{c}' changes between the rows of {len(several)} customers "
                    f"(e.g. customer {several[0]!r}); an attribute is one value per customer",
                    field=c,
                    fix="give each customer one value (e.g. their value at the first order)",
                )
        return grouped.first().reindex(ids).reset_index(drop=True)
    except EventLogError as err:
        raise err.located(str(path)) from None


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise EventLogError("file not found", source=str(path), fix="check the path") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise EventLogError(f"cannot read the file: {err}", source=str(path)) from None


def _events(
    raw: pd.DataFrame,
    customer: str,
    time: str,
    stage: str | None,
    value: str | None,
    segment: str | None,
    stage_map: str | Path | None,
    until: str | float | None,
    repeat_steps: int,
    ids: bool = False,
) -> Any:
    wanted = {"--customer": customer, "--time": time, "--stage": stage, "--value": value}
    wanted["--segment"] = segment
    for option, column in wanted.items():
        if column is not None and column not in raw.columns:
            raise EventLogError(
                f"no column '{column}' (given as {option})",
                field="columns",
                fix=f"the file has {', '.join(map(str, raw.columns))}",
            )
    spec = _stage_map(stage_map) if stage_map else {}
    skipped: dict[str, int] = {}
    frame = pd.DataFrame({"customer": raw[customer]})
    bad = frame["customer"].isna().to_numpy()
    if bad.any():
        raise EventLogError(
            f"{int(bad.sum())} rows have no customer (rows {np.flatnonzero(bad)[:5].tolist()})",
            field=customer,
            fix="fill in or remove those rows",
        )
    days, start_date, limit = _days(raw[time], time, until)
    frame["time"] = days
    if value is not None:
        amounts = pd.to_numeric(raw[value], errors="coerce")
        if amounts.isna().any():
            skipped["missing or unreadable value (counted as 0)"] = int(amounts.isna().sum())
        frame["value"] = amounts.fillna(0.0).to_numpy()
    else:
        frame["value"] = 0.0
    if segment is not None:
        frame["persona"] = raw[segment].astype(str).to_numpy()
    if stage is None:
        stages, purchase, ends = transaction_stages(repeat_steps)
        between = None
        edges = set()
        frame["stage"] = "purchase"
    else:
        labels = raw[stage].astype(str)
        mapping = spec.get("labels", {})
        frame["stage"] = labels.map(lambda x: mapping.get(x, x)).to_numpy()
        seen = list(pd.unique(frame["stage"]))
        stages = tuple(spec.get("stages", seen))
        unknown = sorted(set(seen) - set(stages))
        if unknown:
            raise EventLogError(
                f"stage labels not in the stage map: {', '.join(unknown)}",
                field=stage,
                fix="add them to stages = [...] or map them under [labels]",
            )
        purchase = tuple(spec.get("purchase", ()))
        if not purchase and value is not None:
            # without a map, the stages whose rows carry money are the purchases
            paid = frame.loc[frame["value"] > 0, "stage"]
            purchase = tuple(pd.unique(paid))
        ends = tuple(spec.get("ends", ()))
        between = spec.get("between_purchases")
        edges = {tuple(e) for e in spec.get("edges", ())}
        for name in (*purchase, *ends, *([between] if between else []), *sum(edges, ())):
            if name not in stages:
                raise EventLogError(
                    f"the stage map names stage '{name}', which is not in its stages",
                    field="stage map",
                    fix=f"use one of {', '.join(stages)}",
                )
    if limit is not None:
        late = frame["time"] > limit
        if late.any():
            skipped["after --until"] = int(late.sum())
            frame = frame[~late]
    frame = frame.assign(order=np.arange(len(frame)))
    frame = frame.sort_values(["customer", "time", "order"], kind="stable")
    is_buy = frame["stage"].isin(purchase)
    # one order per customer and time: several rows of one order (or one day) are summed
    key = ["customer", "time", "stage"]
    dup_buy = is_buy & frame.duplicated(key)
    if dup_buy.any():
        skipped["purchases at the same time merged into one order"] = int(dup_buy.sum())
        totals = frame[is_buy].groupby(key, sort=False)["value"].transform("sum")
        frame.loc[is_buy, "value"] = totals
        frame = frame[~dup_buy]
        is_buy = frame["stage"].isin(purchase)
    same_customer = frame["customer"].eq(frame["customer"].shift())
    repeat = same_customer & frame["stage"].eq(frame["stage"].shift()) & ~is_buy
    if repeat.any():
        skipped["repeated rows of the same stage (one visit)"] = int(repeat.sum())
        frame = frame[~repeat]
        is_buy = frame["stage"].isin(purchase)
    frame.loc[~is_buy, "value"] = np.where(frame.loc[~is_buy, "value"] != 0, np.nan, 0.0)
    if frame["value"].isna().any():
        rows = frame.index[frame["value"].isna()][:5].tolist()
        raise EventLogError(
            f"values on rows that are not purchases (rows {rows})",
            field=value or "value",
            fix="name the purchase stages in the stage map (purchase = [...])",
        )
    if stage is None:
        # the k-th order of a customer enters the k-th purchase stage (the last takes the rest)
        k = np.minimum(
            frame.groupby("customer", sort=False).cumcount().to_numpy(), repeat_steps - 1
        )
        frame["stage"] = np.asarray(purchase)[k]
        wait = frame.assign(stage=np.asarray(stages[repeat_steps : 2 * repeat_steps])[k])
        frame = _after_orders(frame, wait)
        for i in range(repeat_steps):
            nxt = purchase[min(i + 1, repeat_steps - 1)]
            edges |= {(purchase[i], stages[repeat_steps + i]), (stages[repeat_steps + i], nxt)}
            edges.add((stages[repeat_steps + i], "churned"))
    elif between:
        # after every order the buyer waits in the between-purchases stage
        frame = _after_orders(frame, frame[is_buy].assign(stage=between))
        edges |= {(p, between) for p in purchase} | {(between, p) for p in purchase}
    same_customer = frame["customer"].eq(frame["customer"].shift())
    frame["from_stage"] = frame["stage"].shift().where(same_customer)
    frame = frame.rename(columns={"stage": "to_stage"}).drop(columns="order")
    seen_edges = frame.dropna(subset=["from_stage"])[["from_stage", "to_stage"]].drop_duplicates()
    edges |= set(map(tuple, seen_edges.to_numpy().tolist()))
    horizon = limit if limit is not None else (float(frame["time"].max()) if len(frame) else 0.0)
    if ids:
        # the customers in the order EventLog.from_frame numbers them: by entry time, an
        # entry row before other rows at the same time, ties in row order
        order = np.lexsort((frame["from_stage"].notna().to_numpy(), frame["time"].to_numpy()))
        return None, pd.unique(frame["customer"].to_numpy()[order])
    log = EventLog.from_frame(
        frame,
        stages=stages,
        purchase_stages=purchase,
        end_stages=ends,
        edges=sorted(edges),
        horizon_days=horizon,
        start_date=start_date,
    )
    return replace(log, skipped=skipped) if skipped else log


def transaction_stages(repeat_steps: int = 1) -> tuple[tuple[str, ...], tuple[str, ...], tuple]:
    """Stages, purchase stages and ends of a transaction log's journey.

    With ``repeat_steps`` k > 1 the first k - 1 orders have stages of their own (a first-time
    buyer waits and churns differently from a regular one): purchase, purchase_2, ...,
    purchase_k (the k-th and later orders), each followed by its waiting stage.
    """
    if isinstance(repeat_steps, bool) or not isinstance(repeat_steps, int) or repeat_steps < 1:
        raise EventLogError(
            f"repeat_steps must be a whole number >= 1, got {repeat_steps!r}",
            field="--repeat-steps",
        )
    suffix = [""] + [f"_{i}" for i in range(2, repeat_steps + 1)]
    buys = tuple(f"purchase{x}" for x in suffix)
    waits = tuple(f"post_purchase{x}" for x in suffix)
    return (*buys, *waits, "churned"), buys, ("churned",)


def _after_orders(frame: pd.DataFrame, wait: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``wait`` (copies of order rows with the waiting stage) placed right after
    their orders."""
    wait = wait.assign(value=0.0, order=wait["order"] + 0.5)
    return pd.concat([frame, wait]).sort_values(["customer", "time", "order"], kind="stable")


def _days(
    column: pd.Series, name: str, until: str | float | None
) -> tuple[np.ndarray, str | None, float | None]:
    """Times as days since the first (dates) or as given (numbers), and ``until`` alike."""
    if pd.api.types.is_numeric_dtype(column):
        days = column.to_numpy(dtype=float)
        bad = ~np.isfinite(days)
        start, limit = None, None if until is None else float(until)
    else:
        stamps = pd.to_datetime(column, errors="coerce", format="mixed")
        bad = stamps.isna().to_numpy()
        first = stamps.min()
        start = first.date().isoformat() if pd.notna(first) else None
        days = ((stamps - first) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        limit = None
        if until is not None:
            cut = pd.to_datetime(until, errors="coerce")
            if pd.isna(cut):
                raise EventLogError(
                    f"cannot read the date {until!r}", field="--until", fix="e.g. 2025-06-30"
                )
            limit = float((cut - first) / pd.Timedelta(days=1))
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise EventLogError(
            f"{int(bad.sum())} rows have no readable time (rows {rows})",
            field=name,
            fix="give dates such as 2025-03-01 or numbers of days",
        )
    if limit is not None and limit <= 0:
        raise EventLogError(
            f"--until {until} is not after the first time in the data",
            field="--until",
            fix="give a later date",
        )
    return days, start, limit


def _stage_map(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            spec = tomllib.load(f)
    except FileNotFoundError:
        raise EventLogError("file not found", source=str(path), fix="check the path") from None
    except tomllib.TOMLDecodeError as err:
        raise EventLogError(f"not valid TOML: {err}", source=str(path)) from None
    known = {"stages", "purchase", "ends", "between_purchases", "edges", "labels"}
    for key in spec:
        if key not in known:
            raise EventLogError(
                f"unknown key '{key}'",
                source=str(path),
                fix=f"the stage map knows {', '.join(sorted(known))}",
            )
    lists: Sequence[str] = ("stages", "purchase", "ends")
    for key in lists:
        if key in spec and not (
            isinstance(spec[key], list) and all(isinstance(x, str) for x in spec[key])
        ):
            raise EventLogError(
                f"'{key}' must be a list of stage names", source=str(path), field=key
            )
    return spec


def day_of(log: EventLog, when: str | float) -> float:
    """A date (for a log with a ``start_date``) or a number of days, as the log's day."""
    if log.start_date is None:
        try:
            return float(when)
        except ValueError:
            raise EventLogError(
                f"{when!r} is not a number of days (the data's times are numbers)",
                field="--from",
            ) from None
    day = pd.to_datetime(when, errors="coerce")
    if pd.isna(day):
        raise EventLogError(f"cannot read the date {when!r}", field="--from", fix="e.g. 2025-07-01")
    return float((day - pd.Timestamp(log.start_date)) / pd.Timedelta(days=1))
