"""Real event logs in: a CRM, web-analytics or order export becomes an :class:`EventLog`.

:func:`read_events` reads CSV, Parquet or a DataFrame with one row per event (a customer, a
timestamp, an event name, optionally an order value, a segment and an acquisition channel),
maps event names to journey stages and builds the log the simulation writes, so every table
and plot of :mod:`sim.analysis` works on it. All of it is vectorised (pandas/numpy): no Python
loop runs per row.

How rows become a log:

- each customer's rows, in the order of the file, are one path: the first row is their entry
  into the journey, each later row a move from the stage of the row before;
- timestamps become days since ``start`` (default: the first event); times without a time
  zone are read as UTC; a numeric time column is read as days already (start 0);
- the log ends at ``end`` (default: the last event): customers who have not reached an end
  stage are censored there, still active, never counted as lost;
- a customer's persona and channel are those of their first row ('unknown' when empty);
- with a ``journey`` (a :class:`~sim.model.journey.Journey` or a
  :class:`~sim.model.scenario.Scenario`), stages, purchase and end flags come from it and the
  allowed moves are its transitions plus any move seen in the data (a real log may skip a
  stage); without one, the stages are those named (in the order of the ``stages`` map, else of
  first appearance), purchases are the stage called 'purchase' and ends the stages called
  'lost' and 'churned', as in the built-in journeys. ``purchase_stages`` and ``end_stages``
  override either.

Bad rows (see :data:`REASONS`) raise one :class:`~sim.errors.EventLogError` listing the first
of them by line (CSV) or row (DataFrame, Parquet) and value, naming the file and column; with
``errors="skip"`` they are left out and counted per reason in ``log.skipped``. Two kinds of
rows are always left out, and counted, because the caller asked for it: events after ``end``
('after end') and events mapped to '' in ``stages`` ('ignored event').
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.errors import EventLogError, suggest
from sim.events import ALL, ENTRY, EventLog
from sim.io.event_rows import (
    DAY_NS,
    REASONS,
    instant,
    iso,
    number,
    raise_bad_rows,
    repeated,
    timestamps,
)
from sim.model.intervention import NewTransition
from sim.model.journey import Journey
from sim.model.scenario import Scenario

#: Rows left out on purpose (counted in ``log.skipped``, never an error).
LEFT_OUT = ("after end", "ignored event")

#: Without a journey: the stage names that mean a purchase and an end, as in the built-in ones.
DEFAULT_PURCHASE = ("purchase",)
DEFAULT_ENDS = ("lost", "churned")
#: The stage column made for a transaction log (``stage=None``): every row a purchase.
EVERY_ROW = "(every row a purchase)"

#: Persona or channel of a customer whose first row leaves it empty.
UNKNOWN = "unknown"


def read_events(
    source: str | Path | pd.DataFrame,
    *,
    customer: str,
    time: str,
    stage: str | None,
    value: str | None = None,
    persona: str | None = None,
    channel: str | None = None,
    replication: str | None = None,
    stages: Mapping[str, str] | str | Path | None = None,
    journey: Journey | Scenario | None = None,
    purchase_stages: Sequence[str] | None = None,
    end_stages: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    errors: str = "raise",
    keep_duplicates: bool = False,
    sort_rows: bool = False,
) -> EventLog:
    """Read an event export (CSV, Parquet or a DataFrame) into a validated :class:`EventLog`.

    Parameters
    ----------
    source
        A ``.csv`` (optionally compressed) or ``.parquet`` file, or a DataFrame.
    customer, time, stage
        Columns holding the customer id, the event's timestamp (any form pandas parses, with a
        time zone or not; numbers are days) and the event name. ``stage=None``: a transaction
        log (customer, date, amount), every row an order entering the stage 'purchase'.
    value, persona, channel, replication
        Optional columns: order value (empty means 0), segment, acquisition channel, and a
        replication number (to read back a simulated log of several replications).
    stages
        Event name -> stage name, as a dict or a TOML file of ``event = "stage"`` lines; an
        event mapped to '' is ignored (counted). None: event names are stage names.
    journey
        A journey or scenario giving stage names, purchase and end flags and transitions.
    purchase_stages, end_stages
        Stage names that are purchases / ends, overriding the journey's or the defaults.
    start, end
        Day 0 and the end of observation (timestamps, or days for a numeric time column).
        Defaults: the first and the last event.
    errors
        'raise' (default): bad rows raise an :class:`EventLogError`; 'skip': they are left
        out and counted in ``log.skipped``.
    keep_duplicates
        Rows repeated exactly are real events, not a bad row (a simulated log's process
        export repeats rows where a customer loops on a stage in no time).
    sort_rows
        Put each customer's rows in time order first (stable: rows at one time keep their
        order) instead of refusing rows out of order; errors still name the file's lines.

    See the module documentation for how rows become a log.
    """
    if errors not in ("raise", "skip"):
        raise EventLogError(
            f"errors must be 'raise' or 'skip', got {errors!r}", field="errors", fix=""
        )
    name = "the frame" if isinstance(source, pd.DataFrame) else str(source)
    columns = {"customer": customer, "time": time}
    if stage is not None:
        columns["stage"] = stage
    columns |= {
        k: v
        for k, v in (
            ("value", value),
            ("persona", persona),
            ("channel", channel),
            ("replication", replication),
        )
        if v is not None
    }
    try:
        frame, line_offset = _load(source, columns)
        lines = None
        if sort_rows:
            frame, lines = _in_time_order(frame, columns)
        if stage is None:
            # a transaction log: every row is an order
            frame = frame.assign(**{EVERY_ROW: DEFAULT_PURCHASE[0]})
            columns = {**columns, "stage": EVERY_ROW}
        return _build(
            frame,
            columns,
            line_offset,
            stage_map=_stage_map(stages),
            journey=journey,
            purchase_stages=purchase_stages,
            end_stages=end_stages,
            start=start,
            end=end,
            errors=errors,
            keep_duplicates=keep_duplicates,
            lines=lines,
        )
    except EventLogError as err:
        raise err.located(name) from None


def _in_time_order(frame: pd.DataFrame, columns: dict[str, str]) -> tuple[pd.DataFrame, Any]:
    """The rows sorted by customer and time (unreadable times last; they are refused later),
    and each sorted row's position in the source."""
    raw_time = frame[columns["time"]]
    if pd.api.types.is_numeric_dtype(raw_time.dtype) and not pd.api.types.is_bool_dtype(
        raw_time.dtype
    ):
        key = raw_time.to_numpy(dtype=np.float64, na_value=np.nan)
        key = np.where(np.isfinite(key), key, np.inf)
    else:
        stamps = timestamps(raw_time)[0]
        key = stamps.to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
        key[stamps.isna().to_numpy()] = np.iinfo(np.int64).max
    customer, _ = pd.factorize(frame[columns["customer"]], use_na_sentinel=True)
    order = np.lexsort((key, customer))
    return frame.iloc[order].reset_index(drop=True), order


# -- loading --------------------------------------------------------------------------------


def _load(source: str | Path | pd.DataFrame, columns: dict[str, str]) -> tuple[pd.DataFrame, int]:
    """The used columns, and what to add to a row's position to give the number users see
    (CSV: the line in the file, after the header; otherwise the row's position)."""
    wanted = list(dict.fromkeys(columns.values()))
    if isinstance(source, pd.DataFrame):
        _check_columns(list(source.columns), columns)
        return source[wanted].reset_index(drop=True), 0
    path = Path(source)
    if not path.is_file():
        raise EventLogError("file not found", fix="check the path")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise EventLogError(
                "reading Parquet needs pyarrow", fix="pip install 'journey-sim[parquet]'"
            ) from None
        _check_columns(pq.read_schema(path).names, columns)
        return pd.read_parquet(path, columns=wanted), 0
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise EventLogError(f"not a readable CSV file: {err}", fix="export it as CSV") from None
    _check_columns(list(header), columns)
    try:
        return pd.read_csv(path, usecols=wanted, low_memory=False), 2
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise EventLogError(f"not a readable CSV file: {err}", fix="export it as CSV") from None


def _check_columns(present: list, columns: dict[str, str]) -> None:
    missing = [(role, col) for role, col in columns.items() if col not in present]
    if missing:
        role, col = missing[0]
        shown = ", ".join(f"'{c}' ({r})" for r, c in missing)
        raise EventLogError(
            f"missing column(s) {shown}",
            field=f"column '{col}'",
            fix=f"pass {role}= naming one of the columns present: "
            + ", ".join(repr(str(c)) for c in present),
        )


def _stage_map(stages: Mapping[str, str] | str | Path | None) -> dict[str, str] | None:
    """The event -> stage map, read from a TOML file when given a path."""
    if stages is None or isinstance(stages, Mapping):
        mapping = None if stages is None else dict(stages)
        source = ""
    else:
        source = str(stages)
        try:
            mapping = tomllib.loads(Path(stages).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EventLogError("file not found", source=source, fix="check the path") from None
        except tomllib.TOMLDecodeError as err:
            raise EventLogError(
                f"not valid TOML: {err}", source=source, fix='write lines event = "stage"'
            ) from None
    for event, target in (mapping or {}).items():
        if not isinstance(target, str):
            raise EventLogError(
                f"event {event!r} maps to {target!r}, not a stage name",
                source=source,
                field="stages",
                fix=f'write {event} = "stage name" (or "" to ignore the event)',
            )
    return mapping


# -- building -------------------------------------------------------------------------------


def journey_stage_info(journey: Journey | Scenario) -> dict[str, Any]:
    """Stage names, purchase and end flags and the allowed moves (as name pairs) of a journey
    or scenario (a scenario's interventions may open moves of their own)."""
    j = journey.journey if isinstance(journey, Scenario) else journey
    edges = {(st.name, t) for st in j.stages for t, p in st.next if p > 0}
    if isinstance(journey, Scenario):
        edges |= {
            (e.stage, e.to) for iv in journey.interventions for e in iv.of_kind(NewTransition)
        }
    return {
        "stages": j.names,
        "purchase_stages": tuple(st.name for st in j.stages if st.purchase),
        "end_stages": tuple(st.name for st in j.stages if st.absorbing),
        "edges": tuple(sorted(edges)),
    }


def _build(
    frame: pd.DataFrame,
    columns: dict[str, str],
    line_offset: int,
    *,
    stage_map: dict[str, str] | None,
    journey: Journey | Scenario | None,
    purchase_stages: Sequence[str] | None,
    end_stages: Sequence[str] | None,
    start: Any,
    end: Any,
    errors: str,
    keep_duplicates: bool,
    lines: np.ndarray | None = None,
) -> EventLog:
    n = len(frame)
    col = {role: frame[c] for role, c in columns.items()}
    reason = np.full(n, -1, dtype=np.int8)  # index into REASONS of each row's first problem
    left_out: dict[str, np.ndarray] = {}

    def flag(kind: str, mask: np.ndarray) -> None:
        # events the caller chose to ignore are left out whatever else is wrong with them
        reason[(reason < 0) & mask & ~ignored] = REASONS.index(kind)

    # stage names and flags
    info = journey_stage_info(journey) if journey is not None else None
    raw_stage = col["stage"]
    event_codes, event_names = pd.factorize(raw_stage, use_na_sentinel=True)
    event_names = [str(e) for e in event_names]
    if stage_map is None:
        targets = event_names
        known = set(info["stages"]) if info else set(targets)
    else:
        targets = [stage_map.get(e) for e in event_names]
        known = set(stage_map.values())
    if info:
        names = list(info["stages"])
        for target in sorted({t for t in known if t} - set(names)):
            raise EventLogError(
                f"the stage map names stage '{target}', which the journey does not have",
                field="stages",
                fix=suggest(target, names),
            )
    else:
        order = stage_map.values() if stage_map is not None else targets
        names = list(dict.fromkeys(t for t in order if t))
    code_of = {s: i for i, s in enumerate(names)}
    # per distinct event name: stage code, -1 unknown, -2 ignored
    event_stage = np.array(
        [
            -2 if t == "" else code_of.get(t, -1) if t is not None and t in known else -1
            for t in targets
        ]
        + [-1],  # the NA sentinel (-1) indexes this last entry
        dtype=np.int64,
    )
    to_stage = event_stage[event_codes]
    ignored = to_stage == -2

    def flags_for(given: Sequence[str] | None, from_journey: str, default: tuple) -> np.ndarray:
        chosen = (
            given
            if given is not None
            else (info[from_journey] if info else [s for s in default if s in code_of])
        )
        for s in chosen:
            if s not in code_of:
                raise EventLogError(
                    f"unknown stage '{s}'",
                    field=from_journey,
                    fix=suggest(s, names) if names else "",
                )
        mask = np.zeros(len(names), dtype=bool)
        mask[[code_of[s] for s in chosen]] = True
        return mask

    purchase = flags_for(purchase_stages, "purchase_stages", DEFAULT_PURCHASE)
    ends = flags_for(end_stages, "end_stages", DEFAULT_ENDS)

    # times: days since start
    raw_time = col["time"]
    numeric = pd.api.types.is_numeric_dtype(raw_time.dtype) and not pd.api.types.is_bool_dtype(
        raw_time.dtype
    )
    if numeric:
        days = raw_time.to_numpy(dtype=np.float64, na_value=np.nan)
        bad_time = ~np.isfinite(days)
        start_day = 0.0 if start is None else number(start, "start")
        days = days - start_day
        end_day = None if end is None else number(end, "end") - start_day
        start_date = None
    else:
        stamps, aware = timestamps(raw_time)
        bad_time = stamps.isna().to_numpy()
        ns = stamps.to_numpy(dtype="datetime64[ns]").view(np.int64)
        if start is None:
            origin = (
                pd.Timestamp(int(ns[~bad_time].min()), tz="UTC")
                if (~bad_time).any()
                else pd.Timestamp(0, tz="UTC")
            )
        else:
            origin = instant(start, "start")
        days = (ns - origin.value) / DAY_NS
        end_day = None if end is None else (instant(end, "end").value - origin.value) / DAY_NS
        given_zone = start is not None and pd.Timestamp(start).tzinfo is not None
        start_date = iso(origin if aware or given_zone else origin.tz_localize(None))
    flag("missing customer", col["customer"].isna().to_numpy())
    flag("unparseable time", bad_time)
    flag("unknown event", to_stage == -1)
    if "value" in col:
        raw_value = col["value"]
        amount = pd.to_numeric(raw_value, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        flag("unparseable value", (np.isnan(amount) & raw_value.notna().to_numpy()))
        flag("unparseable value", np.isinf(amount))
        amount = np.nan_to_num(amount, nan=0.0, posinf=0.0, neginf=0.0)
        flag("negative value", amount < 0)
    else:
        amount = np.zeros(n)
    flag("before start", days < 0)
    # customers: one key per (replication, customer id)
    cust_codes, _ = pd.factorize(col["customer"], use_na_sentinel=True)
    if "replication" in col:
        rep_raw = pd.to_numeric(col["replication"], errors="coerce")
        _, rep_codes = np.unique(rep_raw.fillna(-1).to_numpy(), return_inverse=True)
        rep_codes = rep_codes.reshape(-1).astype(np.int64)
        flag("missing customer", rep_raw.isna().to_numpy())
    else:
        rep_codes = np.zeros(n, dtype=np.int64)
    key = rep_codes * (int(cust_codes.max()) + 2 if n else 1) + cust_codes
    if not keep_duplicates:
        flag("duplicate", repeated(frame, columns, key, days, event_codes, amount))
    stage_ok = to_stage >= 0
    not_purchase = np.ones(n, dtype=bool)
    not_purchase[stage_ok] = ~purchase[to_stage[stage_ok]]
    flag("value not on a purchase", (amount != 0) & not_purchase & ~ignored)
    if end_day is not None:
        left_out["after end"] = (reason < 0) & ~ignored & (days > end_day)
    left_out["ignored event"] = (reason < 0) & ignored
    out = np.zeros(n, dtype=bool)
    for mask in left_out.values():
        out |= mask

    # a customer's rows must not go back in time, and stop at an end stage: both depend on
    # which rows are kept, so they are checked on the rows still good, taken customer by
    # customer in file order from one sort
    by_customer = np.argsort(key, kind="stable")

    def path_check(kind: str) -> None:
        good = (reason < 0) & ~out
        by = by_customer[good[by_customer]]
        if not len(by):
            return
        ks = key[by]
        first = np.r_[True, ks[1:] != ks[:-1]]
        group = np.cumsum(first) - 1
        if kind == "out of time order":
            # running maximum per customer in one pass: exact integer ranks of the times,
            # lifted by the customer's group number so that groups never mix
            _, rank = np.unique(days[by], return_inverse=True)
            level = rank.reshape(-1).astype(np.int64) + group * (len(by) + 1)
            before = np.r_[-1, np.maximum.accumulate(level)[:-1]]
            bad = ~first & (level < before)
        else:
            is_end = ends[to_stage[by]].astype(np.int64)
            ended_before = np.cumsum(is_end) - is_end
            bad = (ended_before - ended_before[first][group]) > 0
        mask = np.zeros(n, dtype=bool)
        mask[by[bad]] = True
        flag(kind, mask)

    path_check("out of time order")
    path_check("after an end stage")

    bad_rows = reason >= 0
    if bad_rows.any() and errors == "raise":
        raise_bad_rows(reason, frame, columns, line_offset, lines)
    skipped = {
        REASONS[r]: int(c)
        for r, c in enumerate(np.bincount(reason[bad_rows], minlength=len(REASONS)))
        if c
    }
    skipped |= {k: int(m.sum()) for k, m in left_out.items() if m.any()}
    keep = np.flatnonzero(~bad_rows & ~out)
    if not len(keep):
        raise EventLogError(
            f"no events left to read (of {n} rows)",
            field=f"column '{columns['stage']}'",
            fix="check the column names and the stage map",
        )
    return _assemble(
        keep=keep,
        key=key,
        by_customer=by_customer,
        rep_codes=rep_codes,
        days=days,
        to_stage=to_stage,
        amount=amount,
        col=col,
        journey=journey,
        names=names,
        purchase=purchase,
        ends=ends,
        info=info,
        end_day=end_day,
        start_date=start_date,
        skipped=skipped,
    )


def _labels(
    col: dict[str, pd.Series], role: str, keep: np.ndarray, first_row: np.ndarray, given: tuple
) -> tuple[tuple[str, ...], np.ndarray]:
    """Names and per-customer codes of a persona or channel column (first row per customer)."""
    if role not in col:
        # no column: nobody is known to be any of the scenario's personas (or channels);
        # labelling them all the first would be a guess
        return (ALL,), np.zeros(len(first_row), dtype=np.int64)
    raw = col[role].iloc[keep[first_row]]
    values = raw.astype(str).where(raw.notna(), UNKNOWN).to_numpy()
    seen = sorted(set(pd.unique(values)) - set(given))
    known = (*given, *seen)
    return known, pd.Categorical(values, categories=list(known)).codes.astype(np.int64)


def _assemble(
    *,
    keep: np.ndarray,
    key: np.ndarray,
    by_customer: np.ndarray,
    rep_codes: np.ndarray,
    days: np.ndarray,
    to_stage: np.ndarray,
    amount: np.ndarray,
    col: dict[str, pd.Series],
    journey: Journey | Scenario | None,
    names: list[str],
    purchase: np.ndarray,
    ends: np.ndarray,
    info: dict[str, Any] | None,
    end_day: float | None,
    start_date: str | None,
    skipped: dict[str, int],
) -> EventLog:
    # time order within replications; a customer's rows keep their file order (stable sort,
    # and their times never go back), so each path stays in order
    if rep_codes.any():
        order = keep[np.lexsort((days[keep], rep_codes[keep]))]
        # replications numbered 0.. among the rows kept, in the order of their numbers
        _, rep = np.unique(rep_codes[order], return_inverse=True)
        rep = rep.reshape(-1)
    else:
        order = keep[np.argsort(days[keep], kind="stable")]
        rep = np.zeros(len(order), dtype=np.int64)
    k, t, to = key[order], days[order], to_stage[order]
    # each customer's rows together, in time order: for the rows kept, file order is time
    # order within a customer (ties keep file order in both), so the sort by customer made
    # for the checks serves, renumbered to positions in ``order``
    position = np.empty(len(key), dtype=np.int64)
    position[order] = np.arange(len(order))
    kept = np.zeros(len(key), dtype=bool)
    kept[order] = True
    by_cust = position[by_customer[kept[by_customer]]]
    ks = k[by_cust]
    first = np.r_[True, ks[1:] != ks[:-1]]
    inverse = np.empty(len(k), dtype=np.int64)
    inverse[by_cust] = np.cumsum(first) - 1  # customer number in order of key
    first_pos = by_cust[first]  # each customer's first row in time order
    # customers numbered 0.. within each replication in order of entry
    by_entry = np.argsort(first_pos, kind="stable")
    rank = np.empty(len(first_pos), dtype=np.int64)
    rank[by_entry] = np.arange(len(first_pos))
    cust_rep = rep[first_pos]
    reps = int(rep.max()) + 1
    counts = np.bincount(cust_rep, minlength=reps)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    local = rank - offsets[cust_rep]
    customer = local[inverse]
    # each move comes from the stage of the customer's previous row
    prev = np.r_[ENTRY, to[by_cust][:-1]]
    from_stage = np.empty(len(order), dtype=np.int64)
    from_stage[by_cust] = np.where(first, ENTRY, prev)
    # persona and channel of each customer: those of their first row
    first_row = first_pos
    scenario = journey if isinstance(journey, Scenario) else None
    personas, persona = _labels(
        col, "persona", order, first_row, scenario.persona_names if scenario else ()
    )
    channels, channel = _labels(
        col, "channel", order, first_row, scenario.channel_names if scenario else ()
    )
    cust_index = inverse
    moves = from_stage >= 0
    pairs = np.unique(from_stage[moves] * len(names) + to[moves])
    seen = {(int(p) // len(names), int(p) % len(names)) for p in pairs}
    if info:
        code = {s: i for i, s in enumerate(names)}
        edges = {(code[a], code[b]) for a, b in info["edges"]} | seen
    else:
        edges = seen
    horizon = float(t.max()) if end_day is None else max(float(end_day), float(t.max()))
    log = EventLog(
        replication=rep.astype(np.int32),
        customer=customer.astype(np.int32),
        persona=persona[cust_index].astype(np.int16),
        channel=channel[cust_index].astype(np.int16),
        time=t.astype(np.float64),
        from_stage=from_stage.astype(np.int16),
        to_stage=to.astype(np.int16),
        value=amount[order],
        customers=counts.astype(np.int64),
        stages=tuple(names),
        personas=personas,
        channels=channels,
        horizon_days=horizon,
        purchase_stages=tuple(bool(x) for x in purchase),
        end_stages=tuple(bool(x) for x in ends),
        edges=tuple(sorted(edges)),
        start_date=start_date,
        skipped=skipped,
    )
    return log.validate()


def read_run_events(out_dir: str | Path) -> EventLog:
    """The event log a ``sim run --out`` directory holds (``events.parquet`` or
    ``events.csv``), with its stages, personas, channels, horizon and start date taken from
    the ``scenario.toml`` beside it."""
    from sim.io.scenario_toml import load_scenario

    out = Path(out_dir)
    events = next((out / n for n in ("events.parquet", "events.csv") if (out / n).is_file()), None)
    if events is None or not (out / "scenario.toml").is_file():
        raise EventLogError(
            "not a run directory: events.parquet (or events.csv) and scenario.toml are needed",
            source=str(out),
            fix="give a directory written by `sim run --out`, or an event file with --customer, "
            "--time and --stage",
        )
    scenario = load_scenario(out / "scenario.toml")
    frame = pd.read_parquet(events) if events.suffix == ".parquet" else pd.read_csv(events)
    try:
        return EventLog.from_frame(
            frame,
            **journey_stage_info(scenario),
            horizon_days=scenario.horizon_days,
            personas=scenario.persona_names,
            channels=scenario.channel_names,
            start_date=scenario.start_date,
        )
    except EventLogError as err:
        raise err.located(str(events)) from None
