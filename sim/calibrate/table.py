"""An analyst's export (CSV or Parquet) as an event log, for ``sim fit`` and ``sim check``.

:func:`read_table` reads with :func:`sim.read_events` (the one reader of real exports, with its
checks and messages) and then shapes the journey for the fit with :func:`for_fit` (orders at
one time merged, the wait between purchases, a transaction log's stages).
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
from sim.io.event_files import read_events


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
    """Read an export with one row per event into a validated :class:`~sim.EventLog` for
    fitting: :func:`sim.read_events` reads it (so bad rows get its messages), then
    :func:`for_fit` shapes the journey the fit needs.

    Columns are named by the arguments. ``time`` holds dates (days since the first time
    become the log's time; ``start_date`` records it) or numbers of days; rows in any order
    (each customer's are put in time order). With ``stage``, each row says the customer
    entered that stage; the optional TOML ``stage_map`` gives::

        stages = ["visit", "cart", "purchase", "post_purchase", "lost", "churned"]
        purchase = ["purchase"]            # entering them is an order (default: 'purchase')
        ends = ["lost", "churned"]         # journeys end there (may be silent: no rows)
        between_purchases = "post_purchase"  # stage a buyer waits in for the next order
        edges = [["post_purchase", "churned"], ...]   # moves allowed besides those seen
        [labels]                           # data label -> stage
        page_view = "visit"

    Without ``stage`` every row is a purchase (a transaction log: customer, date, amount):
    the journey is purchase -> post_purchase -> purchase again, or silently churned.
    Rows after ``until`` (a date, or days) are left out (counted as 'after end') and the data
    end there. For a transaction log, ``repeat_steps`` k > 1 gives the first k - 1 orders
    stages of their own (see :func:`transaction_stages`).
    """
    spec = _stage_map(stage_map) if stage_map else {}
    if stage is None:
        transaction_stages(repeat_steps)  # checks repeat_steps before reading
        mapping, purchase, ends = None, None, ()
    else:
        mapping = _labels_map(spec, stage_map)
        purchase = spec.get("purchase")
        ends = spec.get("ends")
    log = read_events(
        path,
        customer=customer,
        time=time,
        stage=stage,
        value=value,
        persona=segment,
        stages=mapping,
        purchase_stages=purchase,
        end_stages=ends,
        end=until,
        # several rows of one order are merged by for_fit, not refused as repeats
        keep_duplicates=True,
        # an export need not list a customer's rows in time order to be fitted
        sort_rows=True,
    )
    try:
        return for_fit(log, spec, repeat_steps=repeat_steps, transactions=stage is None)
    except EventLogError as err:
        raise err.located(str(path)) from None


#: the column that carries each row's customer through read_table to its log number
_CUSTOMER_CODE = "__customer_code__"


def read_attributes(
    path: str | Path,
    columns: Sequence[str],
    *,
    customer: str,
    time: str,
    stage: str | None = None,
    stage_map: str | Path | None = None,
    until: str | float | None = None,
    repeat_steps: int = 1,
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
        if customer not in raw.columns:
            raise EventLogError(
                f"missing column(s) '{customer}' (customer)",
                field="columns",
                fix=f"give --customer one of {', '.join(map(str, raw.columns))}",
            )
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
        code, _ = pd.factorize(raw[customer], use_na_sentinel=True)
        values["code"] = code
        grouped = values[code >= 0].groupby("code", sort=False)[list(columns)]
        spread = grouped.nunique()
        for c in columns:
            several = spread.index[spread[c] > 1]
            if len(several):
                shown = raw[customer].iloc[int(np.flatnonzero(code == several[0])[0])]
                raise EventLogError(
                    f"attribute '{c}' changes between the rows of {len(several)} customers "
                    f"(e.g. customer {shown!r}); an attribute is one value per customer",
                    field=c,
                    fix="give each customer one value (e.g. their value at the first order)",
                )
        # read the rows as read_table does, each row carrying its customer's code in the
        # persona column, so the log's own numbering tells which code each customer has
        tagged = raw.assign(**{_CUSTOMER_CODE: code.astype(str)})
        log = read_table(
            tagged,
            customer=customer,
            time=time,
            stage=stage,
            segment=_CUSTOMER_CODE,
            stage_map=stage_map,
            until=until,
            repeat_steps=repeat_steps,
        )
    except EventLogError as err:
        raise err.located(str(path)) from None
    _, first_row = np.unique(log.customer, return_index=True)
    names = np.asarray(log.personas)
    codes = names[log.persona[first_row]].astype(np.int64)
    return grouped.first().reindex(codes).reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except FileNotFoundError:
        raise EventLogError("file not found", source=str(path), fix="check the path") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise EventLogError(f"cannot read the file: {err}", source=str(path)) from None


def _labels_map(spec: dict[str, Any], path: str | Path | None) -> dict[str, str] | None:
    """The stage map's labels (and its stages, by their own names) as read_events' map."""
    labels = spec.get("labels", {})
    if "stages" not in spec:
        if labels:
            raise EventLogError(
                "a stage map with [labels] lists every stage in stages = [...]",
                source=str(path),
                field="stages",
                fix='add stages = ["visit", "purchase", ...]',
            )
        return None
    mapping = {s: s for s in spec["stages"]}
    for label, target in labels.items():
        if target != "" and target not in mapping:  # '' ignores the label's rows
            raise EventLogError(
                f"label '{label}' maps to '{target}', which is not in the map's stages",
                source=str(path),
                field="labels",
                fix=f"use one of {', '.join(spec['stages'])}",
            )
        mapping[label] = target
    return mapping


def for_fit(
    log: EventLog,
    spec: dict[str, Any] | None = None,
    *,
    repeat_steps: int = 1,
    transactions: bool = False,
) -> EventLog:
    """A log read by :func:`sim.read_events` shaped for the fit.

    Purchases of a customer at the same time are one order (values summed), and repeated
    rows of the same non-purchase stage are one visit; the log's ``skipped`` counts both.
    After every order the buyer waits in the stage map's ``between_purchases`` stage; with
    ``transactions`` (every row an order) the journey is :func:`transaction_stages`.
    """
    spec = spec or {}
    skipped = dict(log.skipped)
    rows = log.to_frame()
    frame = pd.DataFrame(
        {
            "customer": rows["customer"].to_numpy(),
            "time": rows["time"].to_numpy(),
            "stage": rows["to_stage"].astype(str).to_numpy(),
            "value": rows["value"].to_numpy(),
            "persona": rows["persona"].astype(str).to_numpy(),
        }
    )
    if transactions:
        stages, purchase, ends = transaction_stages(repeat_steps)
        between = None
        edges: set = set()
    else:
        stages = log.stages
        purchase = tuple(s for s, p in zip(log.stages, log.purchase_stages, strict=True) if p)
        ends = tuple(s for s, e in zip(log.stages, log.end_stages, strict=True) if e)
        between = spec.get("between_purchases")
        edges = {tuple(e) for e in spec.get("edges", ())}
        for name in (*([between] if between else []), *sum(edges, ())):
            if name not in stages:
                raise EventLogError(
                    f"the stage map names stage '{name}', which is not in its stages",
                    field="stage map",
                    fix=f"use one of {', '.join(stages)}",
                )
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
    if transactions:
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
    out = EventLog.from_frame(
        frame,
        stages=stages,
        purchase_stages=purchase,
        end_stages=ends,
        edges=sorted(edges),
        horizon_days=log.horizon_days,
        personas=log.personas,
        start_date=log.start_date,
    )
    return replace(out, skipped=skipped) if skipped else out


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
                fix=(
                    "a stage map holds stages = [...], purchase = [...], ends = [...], "
                    'between_purchases = "...", edges = [["from", "to"], ...] and, under '
                    f'[labels], label = "stage" lines (e.g. [labels] {key} = "...")'
                    "; see docs/scenario-format.md"
                ),
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
