"""The event log: the one contract between engines, real data and analysis.

Schema (one row per move of a customer, held as numpy columns, never an object per event):

=================  ========  ==============================================================
column             dtype     meaning
=================  ========  ==============================================================
replication        int32     0 .. ``len(customers) - 1``; a real log is replication 0
customer           int32     0 .. ``customers[replication] - 1`` within the replication
persona            int16     code into ``personas``; the same on every row of a customer
channel            int16     code into ``channels``; the same on every row of a customer
time               float64   days since day 0 (``start_date`` when known), in [0, horizon]
from_stage         int16     ``ENTRY`` (-1) on the customer's first row, else a stage code
to_stage           int16     code into ``stages``: the stage entered
value              float64   order value, >= 0; non-zero only where ``to_stage`` is a purchase
treatment          int64     bit i set: intervention i acted on the decision behind the row
referrer           int32     customer who referred this one (same replication), -1 if none
wait               float64   days the customer queued for a resource in the stage they leave
                             (``from_stage``) before service or abandonment; 0 without queue
abandoned          bool      the customer gave up waiting: the move is an abandonment
satisfaction       float64   the customer's satisfaction score after the row, in [-1, 1]
                             (0 where the scenario has none)
outcome            int16     code into ``outcomes``: the service outcome of the visit to
                             ``from_stage`` the row ends, -1 where none was drawn
=================  ========  ==============================================================

Invariants, all checked by :meth:`EventLog.validate`:

- every customer of every replication has exactly one entry row, and it is their first row;
- rows are in time order within each replication (a customer's entry comes before their
  moves at the same time), and replications follow each other in blocks;
- a customer's moves chain: each row's ``from_stage`` is the stage their previous row entered,
  and nobody moves out of an end stage (``end_stages``);
- ``value`` is finite, >= 0 and non-zero only on rows entering a purchase stage
  (``purchase_stages``);
- times are finite and lie in [0, ``horizon_days``]; a customer who has not reached an end
  stage is censored at the horizon (still active, never counted as lost);
- ``wait`` is finite, >= 0, and non-zero only on rows leaving a stage that uses a resource
  (``stage_resources``); ``abandoned`` rows leave such a stage too;
- ``outcome`` is -1 on entry rows and otherwise -1 or a code into ``outcomes``.

Resources (shared capacity) travel with the log too: ``resources`` (names), ``capacities``,
``capacity_changes`` (units added for a time) and, per stage, ``stage_resources`` (the code
of the resource its customers queue for, -1: none), so waiting, abandonment and utilisation
are read from the log alone.

Stage metadata travels with the log (``stages``, ``purchase_stages``, ``end_stages`` and the
``edges`` a customer may take), so every analysis runs on a simulated or a real log alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.errors import EventLogError

if TYPE_CHECKING:  # pandas loads where a frame is built, not with the log
    import pandas as pd

#: ``from_stage`` code of a customer's first row (entry into the journey).
ENTRY = -1

#: Name of the group of all customers, beside each persona or channel, in every table.
ALL = "all"

#: Columns of every row and their dtypes, in order.
SCHEMA: dict[str, type] = {
    "replication": np.int32,
    "customer": np.int32,
    "persona": np.int16,
    "channel": np.int16,
    "time": np.float64,
    "from_stage": np.int16,
    "to_stage": np.int16,
    "value": np.float64,
    "treatment": np.int64,
    "referrer": np.int32,
    "wait": np.float64,
    "abandoned": np.bool_,
    "satisfaction": np.float64,
    "outcome": np.int16,
}

#: The columns every log carries (``treatment``, ``referrer``, ``wait``, ``abandoned``,
#: ``satisfaction`` and ``outcome`` default to none).
COLUMNS = tuple(SCHEMA)

#: Columns of the per-intervention reach records.
REACH_SCHEMA: dict[str, type] = {
    "reach_replication": np.int32,
    "reach_customer": np.int32,
    "reach_intervention": np.int16,
    "reach_time": np.float64,
}

#: Columns of the negative word-of-mouth records: one per person a detractor reached.
DETRACTOR_SCHEMA: dict[str, type] = {
    "detractor_replication": np.int32,
    "detractor_customer": np.int32,
    "detractor_time": np.float64,
    "detractor_reached": np.int32,
    "detractor_lost": np.float64,
}

#: How many offending rows an error message lists.
SHOWN = 5


@dataclass(frozen=True, eq=False)
class EventLog:
    """Columnar event log of one or more replications (simulated) or of real customers.

    See the module documentation for the schema and its invariants. Build one from arrays
    (engines do), from a DataFrame with :meth:`from_frame`, or from a file with
    :func:`sim.read_events`.
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
    #: per stage: entering it is a purchase
    purchase_stages: tuple[bool, ...] = ()
    #: per stage: an end (absorbing) stage; nobody moves out of it
    end_stages: tuple[bool, ...] = ()
    #: moves a customer may make, as (from, to) stage codes; None: those seen in the log
    edges: tuple[tuple[int, int], ...] | None = None
    #: bit i set: intervention i acted on the decision that led to the row
    treatment: np.ndarray | None = None
    #: the customer who referred this row's customer (-1: none)
    referrer: np.ndarray | None = None
    #: days queued for a resource in the stage the row leaves (0: no queue)
    wait: np.ndarray | None = None
    #: the move is an abandonment of a queue
    abandoned: np.ndarray | None = None
    #: the customer's satisfaction score after the row
    satisfaction: np.ndarray | None = None
    #: code into ``outcomes`` of the service outcome of the visit the row ends (-1: none)
    outcome: np.ndarray | None = None
    interventions: tuple[str, ...] = ()
    #: one record per customer reached by an intervention: replication, customer, index, day
    reach_replication: np.ndarray | None = None
    reach_customer: np.ndarray | None = None
    reach_intervention: np.ndarray | None = None
    reach_time: np.ndarray | None = None
    #: one record per person a detractor (a customer who churned dissatisfied) reached:
    #: replication, the detractor, the day, the customer the person is or became (-1: not a
    #: customer by the horizon; the last contact before they became one), and the expected
    #: conversions lost at their decisions while put off by that contact
    detractor_replication: np.ndarray | None = None
    detractor_customer: np.ndarray | None = None
    detractor_time: np.ndarray | None = None
    detractor_reached: np.ndarray | None = None
    detractor_lost: np.ndarray | None = None
    #: calendar date of day 0 (ISO 8601), when the log has one
    start_date: str | None = None
    #: rows left out when reading, by reason (``read_events(..., errors="skip")``)
    skipped: Mapping[str, int] = field(default_factory=dict)
    #: shared resources: names, capacities, and per stage the resource used (-1: none)
    resources: tuple[str, ...] = ()
    capacities: tuple[int, ...] = ()
    stage_resources: tuple[int, ...] = ()
    #: capacity added for a time: (resource code, from day, to day, units)
    capacity_changes: tuple[tuple[int, float, float, int], ...] = ()
    #: a warm start (``sim.run(..., start_from=log, at=...)``): (day, customers). Customers
    #: 0 .. customers - 1 of each replication were carried over from a log at that day: their
    #: entry row is the stage they were in then, not an arrival, and their history before it
    #: is not in this log. None: every customer arrived in this log.
    warm_start: tuple[float, int] | None = None
    #: names of the service outcomes ``outcome`` codes into
    outcomes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.time)
        defaults = {
            "treatment": np.zeros(n, dtype=np.int64),
            "referrer": np.full(n, -1, dtype=np.int32),
            "wait": np.zeros(n),
            "abandoned": np.zeros(n, dtype=np.bool_),
            "satisfaction": np.zeros(n),
            "outcome": np.full(n, -1, dtype=np.int16),
            "reach_replication": np.zeros(0, dtype=np.int32),
            "reach_customer": np.zeros(0, dtype=np.int32),
            "reach_intervention": np.zeros(0, dtype=np.int16),
            "reach_time": np.zeros(0),
            **{name: np.zeros(0, dtype=dtype) for name, dtype in DETRACTOR_SCHEMA.items()},
        }
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        s = len(self.stages)
        if not self.purchase_stages:
            object.__setattr__(self, "purchase_stages", (False,) * s)
        if not self.end_stages:
            object.__setattr__(self, "end_stages", (False,) * s)
        if not self.stage_resources:
            object.__setattr__(self, "stage_resources", (-1,) * s)
        if self.edges is None:
            moves = self.from_stage >= 0
            pairs = np.unique(self.from_stage[moves].astype(np.int64) * s + self.to_stage[moves])
            object.__setattr__(self, "edges", tuple((int(p // s), int(p % s)) for p in pairs))

    def __len__(self) -> int:
        return len(self.time)

    @property
    def replications(self) -> int:
        """How many replications the log holds."""
        return len(self.customers)

    @property
    def purchase_mask(self) -> np.ndarray:
        """Boolean per stage: entering it is a purchase."""
        return np.array(self.purchase_stages, dtype=bool)

    @property
    def end_mask(self) -> np.ndarray:
        """Boolean per stage: an end stage."""
        return np.array(self.end_stages, dtype=bool)

    @property
    def entry_stages(self) -> tuple[int, ...]:
        """Stages customers enter on their first row."""
        return tuple(np.unique(self.to_stage[self.from_stage == ENTRY]).tolist())

    def stage_info(self) -> dict[str, Any]:
        """The stage metadata, to build a log with the same stages."""
        return {
            "stages": self.stages,
            "purchase_stages": self.purchase_stages,
            "end_stages": self.end_stages,
            "edges": self.edges,
        }

    @staticmethod
    def concat(logs: Sequence[EventLog]) -> EventLog:
        """Join the logs of separate replications (numbered as in each log)."""
        first = logs[0]
        if len(logs) == 1:
            return first  # nothing to join: no copy of a log that may be large
        names = (*COLUMNS, *REACH_SCHEMA, *DETRACTOR_SCHEMA)
        cols = {c: np.concatenate([getattr(log, c) for log in logs]) for c in names}
        skipped: dict[str, int] = {}
        for log in logs:
            for reason, count in log.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
        return replace(
            first,
            **cols,
            customers=np.concatenate([log.customers for log in logs]),
            skipped=skipped,
        )

    def customer_key(self) -> np.ndarray:
        """A number per row identifying the customer across replications (0 .. total-1)."""
        offsets = np.concatenate([[0], np.cumsum(self.customers)[:-1]]).astype(np.int64)
        return offsets[self.replication] + self.customer

    def treatment_labels(self) -> pd.Categorical:
        """Per row, the names of the interventions acting on it joined by '+' ('' for none)."""
        import pandas as pd

        masks, codes = np.unique(self.treatment, return_inverse=True)
        labels = [
            "+".join(n for i, n in enumerate(self.interventions) if int(m) >> i & 1) for m in masks
        ]
        return pd.Categorical.from_codes(codes.reshape(-1), categories=labels)

    def reached_frame(self) -> pd.DataFrame:
        """Customers reached by interventions: replication, customer, intervention, time."""
        import pandas as pd

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

    def case_ids(self) -> pd.Series:
        """Per row, the customer as text unique across replications: 'replication-customer'."""
        import pandas as pd

        rep = pd.Series(self.replication).astype(str)
        return rep + "-" + pd.Series(self.customer).astype(str)

    def timestamps(self, start: Any = None) -> pd.Series:
        """Per row, the calendar time: ``start`` (default: the log's ``start_date``) plus the
        row's days, to the microsecond."""
        import pandas as pd

        start = self.start_date if start is None else start
        try:
            origin = pd.Timestamp(start) if start is not None else None
        except (TypeError, ValueError):
            origin = None
        if origin is None or origin is pd.NaT:
            raise EventLogError(
                f"no calendar date for day 0 (start={start!r})",
                field="start",
                fix="pass start='2025-01-01', or set start_date in the scenario",
            )
        # days are floats: round off the nanoseconds they cannot hold exactly
        return origin + pd.to_timedelta(self.time, unit="D").round("us")

    def to_process_log(self, start: Any = None) -> pd.DataFrame:
        """The log in the column names process-mining tools read (the XES names of pm4py's
        DataFrame format): ``case:concept:name`` (the customer, unique across replications),
        ``concept:name`` (the stage entered: the activity), ``time:timestamp`` (``start``,
        default the log's ``start_date``, plus the row's days), then ``persona``, ``channel``,
        ``value`` and ``replication``. One row per event, entries included, in time order."""
        import pandas as pd

        stage_names = np.array(self.stages, dtype=object)
        return pd.DataFrame(
            {
                "case:concept:name": self.case_ids(),
                "concept:name": stage_names[self.to_stage],
                "time:timestamp": self.timestamps(start),
                "persona": np.array(self.personas, dtype=object)[self.persona],
                "channel": np.array(self.channels, dtype=object)[self.channel],
                "value": self.value,
                "replication": self.replication,
            }
        )

    def to_transactions(self, start: Any = None) -> pd.DataFrame:
        """One row per purchase: ``customer_id`` (as in :meth:`to_process_log`), ``date``
        (``start``, default the log's ``start_date``, plus the purchase's days) and ``value``:
        the transaction table customer-lifetime-value libraries read."""
        import pandas as pd

        bought = self.purchase_mask[self.to_stage]
        return pd.DataFrame(
            {
                "customer_id": self.case_ids()[bought].to_numpy(),
                "date": self.timestamps(start)[bought].to_numpy(),
                "value": self.value[bought],
            }
        )

    def to_frame(self, rows: slice | None = None) -> pd.DataFrame:
        """The log as a DataFrame; stage, persona and channel columns are categorical. With
        interventions, an ``interventions`` column names those acting on each move; with
        referrals, a ``referrer`` column holds the referring customer (-1: none). ``rows``:
        only those rows, with the columns and categories of the whole log (so frames of
        successive slices can be written one after another as one table)."""
        import pandas as pd

        take = slice(None) if rows is None else rows
        stage_cat = pd.CategoricalDtype(list(self.stages))

        def cat(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
            return pd.Categorical.from_codes(
                codes[take].astype(np.int64), dtype=pd.CategoricalDtype(list(names))
            )

        frame = pd.DataFrame(
            {
                "replication": self.replication[take],
                "customer": self.customer[take],
                "persona": cat(self.persona, self.personas),
                "channel": cat(self.channel, self.channels),
                "time": self.time[take],
                "from_stage": pd.Categorical.from_codes(
                    self.from_stage[take].astype(np.int64), dtype=stage_cat
                ),
                "to_stage": pd.Categorical.from_codes(
                    self.to_stage[take].astype(np.int64), dtype=stage_cat
                ),
                "value": self.value[take],
            }
        )
        if self.interventions:
            labels = self.treatment_labels()
            frame["interventions"] = labels if rows is None else labels[take]
        if (self.referrer >= 0).any():
            frame["referrer"] = self.referrer[take]
        if self.resources:
            frame["wait"] = self.wait[take]
            frame["abandoned"] = self.abandoned[take]
        if (self.satisfaction != 0).any():
            frame["satisfaction"] = self.satisfaction[take]
        if self.outcomes:
            frame["outcome"] = pd.Categorical.from_codes(
                self.outcome[take].astype(np.int64), dtype=pd.CategoricalDtype(list(self.outcomes))
            )
        return frame

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        stages: Sequence[str],
        purchase_stages: Sequence[str] = (),
        end_stages: Sequence[str] = (),
        edges: Sequence[tuple[str, str]] | None = None,
        horizon_days: float | None = None,
        personas: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        start_date: str | None = None,
    ) -> EventLog:
        """A validated log from a DataFrame in the layout :meth:`to_frame` writes.

        Columns ``customer``, ``time``, ``from_stage`` (NaN or empty on entry rows),
        ``to_stage`` are required; ``replication`` (default 0), ``persona``, ``channel``
        (default 'all'), ``value`` (default 0), ``referrer`` (default -1), ``wait`` (default 0),
        ``abandoned`` (default false), ``satisfaction`` (default 0) and ``outcome`` (names,
        empty where none) are optional. Stage,
        persona and channel columns hold names. ``horizon_days`` defaults to the last time.
        Rows are put in time order (stable, so ties keep their order); customers are numbered
        0.. within each replication in order of entry, and ``referrer`` is renumbered alike.
        """
        import pandas as pd

        missing = [c for c in ("customer", "time", "from_stage", "to_stage") if c not in frame]
        if missing:
            raise EventLogError(
                f"missing column(s) {', '.join(missing)}",
                field="columns",
                fix=f"the frame has {', '.join(map(str, frame.columns))}",
            )
        stages = tuple(stages)
        code = {name: i for i, name in enumerate(stages)}
        n = len(frame)
        rep = (
            frame["replication"].to_numpy(dtype=np.int64)
            if "replication" in frame
            else np.zeros(n, dtype=np.int64)
        )
        time = frame["time"].to_numpy(dtype=np.float64)

        def stage_codes(column: str, entry_ok: bool) -> np.ndarray:
            # names are looked up once per distinct value, not once per row
            raw, uniques = pd.factorize(frame[column], use_na_sentinel=True)
            names = [str(u) for u in uniques]
            lookup = [ENTRY if name == "" else code.get(name, -2) for name in names]
            codes = np.array([*lookup, ENTRY], dtype=np.int64)[raw]  # NA (-1) -> ENTRY
            bad = np.flatnonzero(codes == -2)
            if len(bad):
                shown = ", ".join(f"row {i} ({names[raw[i]]!r})" for i in bad[:SHOWN])
                raise EventLogError(
                    f"{len(bad)} row(s) name an unknown stage: {shown}",
                    field=column,
                    fix=f"use one of {', '.join(stages)}",
                )
            empty = codes == ENTRY
            if not entry_ok and empty.any():
                first = np.flatnonzero(empty)[:SHOWN].tolist()
                raise EventLogError(f"rows {first} have no stage", field=column)
            return codes

        from_stage = stage_codes("from_stage", entry_ok=True)
        to_stage = stage_codes("to_stage", entry_ok=False)

        def names_and_codes(column: str, given: Sequence[str] | None) -> tuple:
            if column not in frame:
                return (tuple(given) if given else (ALL,)), np.zeros(n, dtype=np.int64)
            raw, uniques = pd.factorize(frame[column], use_na_sentinel=False)
            values = [str(u) for u in uniques]
            known = tuple(given) if given else tuple(sorted(set(values)))
            index = {name: i for i, name in enumerate(known)}
            codes = np.array([index.get(v, -1) for v in values], dtype=np.int64)[raw]
            if (codes < 0).any():
                row = int(np.flatnonzero(codes < 0)[0])
                raise EventLogError(
                    f"row {row}: unknown {column} {values[raw[row]]!r}",
                    field=column,
                    fix=f"use one of {', '.join(known)}",
                )
            return known, codes

        persona_names, persona = names_and_codes("persona", personas)
        channel_names, channel = names_and_codes("channel", channels)
        value = frame["value"].to_numpy(dtype=np.float64) if "value" in frame else np.zeros(n)
        referrer = (
            frame["referrer"].to_numpy(dtype=np.int64)
            if "referrer" in frame
            else np.full(n, -1, dtype=np.int64)
        )
        wait = frame["wait"].to_numpy(dtype=np.float64) if "wait" in frame else np.zeros(n)
        abandoned = (
            frame["abandoned"].to_numpy(dtype=np.bool_)
            if "abandoned" in frame
            else np.zeros(n, dtype=np.bool_)
        )
        # time order within replications; entry rows first among equal times of a customer
        order = np.lexsort((from_stage != ENTRY, time, rep))
        satisfaction = (
            frame["satisfaction"].to_numpy(dtype=np.float64)
            if "satisfaction" in frame
            else np.zeros(n)
        )
        wait, abandoned, satisfaction = wait[order], abandoned[order], satisfaction[order]
        outcome_names: tuple[str, ...] = ()
        outcome = np.full(n, -1, dtype=np.int64)
        if "outcome" in frame:
            raw, uniques = pd.factorize(frame["outcome"], use_na_sentinel=True)
            names = [str(u) for u in uniques]
            outcome_names = tuple(sorted(set(names) - {""}))
            lookup = [outcome_names.index(u) if u else -1 for u in names]
            outcome = np.array([*lookup, -1], dtype=np.int64)[raw][order]
        rep, time, from_stage, to_stage = (
            rep[order],
            time[order],
            from_stage[order],
            to_stage[order],
        )
        persona, channel, value, referrer = (
            persona[order],
            channel[order],
            value[order],
            referrer[order],
        )
        raw_customer = frame["customer"].to_numpy()[order]
        reps = int(rep.max()) + 1 if n else 1
        customer = np.empty(n, dtype=np.int64)
        counts = np.zeros(reps, dtype=np.int64)
        for r in range(reps):
            rows = np.flatnonzero(rep == r)
            first_seen = pd.unique(raw_customer[rows])
            mapping = pd.Index(first_seen)
            customer[rows] = mapping.get_indexer(raw_customer[rows])
            counts[r] = len(first_seen)
            has = referrer[rows] >= 0
            if has.any():
                referrer[rows[has]] = mapping.get_indexer(referrer[rows[has]])
        if horizon_days is None:
            horizon_days = float(time.max()) if n else 0.0
        edge_codes = None
        if edges is not None:
            edge_codes = tuple((code[a], code[b]) for a, b in edges)
        log = cls(
            replication=rep.astype(np.int32),
            customer=customer.astype(np.int32),
            persona=persona.astype(np.int16),
            channel=channel.astype(np.int16),
            time=time,
            from_stage=from_stage.astype(np.int16),
            to_stage=to_stage.astype(np.int16),
            value=value,
            referrer=referrer.astype(np.int32),
            wait=wait,
            abandoned=abandoned,
            satisfaction=satisfaction,
            outcome=outcome.astype(np.int16),
            outcomes=outcome_names,
            customers=counts,
            stages=stages,
            personas=persona_names,
            channels=channel_names,
            horizon_days=float(horizon_days),
            purchase_stages=tuple(s in set(purchase_stages) for s in stages),
            end_stages=tuple(s in set(end_stages) for s in stages),
            edges=edge_codes,
            start_date=start_date,
        )
        return log.validate()

    def validate(self) -> EventLog:
        """Check every invariant of the schema; return the log, or raise
        :class:`~sim.errors.EventLogError` naming the column, the first offending rows and the
        fix."""
        _validate(self)
        return self


def _fail(problem: str, column: str, rows: np.ndarray | None = None, fix: str = "") -> None:
    if rows is not None and len(rows):
        shown = ", ".join(str(int(r)) for r in rows[:SHOWN])
        more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
        problem = f"{problem} (rows {shown}{more})"
    raise EventLogError(problem, field=column, fix=fix)


def _validate(log: EventLog) -> None:
    n = len(log.time)
    s = len(log.stages)
    if len(set(log.stages)) != s:
        _fail("stage names repeat", "stages")
    if len(log.purchase_stages) != s or len(log.end_stages) != s:
        _fail("purchase_stages and end_stages need one flag per stage", "stages")
    for name, dtype in SCHEMA.items():
        col = getattr(log, name)
        if not isinstance(col, np.ndarray) or col.ndim != 1 or len(col) != n:
            _fail(f"must be a 1-D array of {n} rows", name)
        if col.dtype != dtype:
            _fail(f"has dtype {col.dtype}, not {np.dtype(dtype)}", name)
    for name, dtype in REACH_SCHEMA.items():
        col = getattr(log, name)
        if col.dtype != dtype or len(col) != len(log.reach_customer):
            _fail(f"must be {np.dtype(dtype)} with one entry per reach record", name)
    reps = len(log.customers)
    if (np.asarray(log.customers) < 0).any():
        _fail("customer counts must be >= 0", "customers")
    if not np.isfinite(log.horizon_days) or log.horizon_days < 0:
        _fail(f"horizon_days must be a finite number >= 0, got {log.horizon_days}", "horizon")

    def in_range(name: str, low: int, high: np.ndarray | int) -> None:
        col = getattr(log, name)
        bad = np.flatnonzero((col < low) | (col >= high))
        if len(bad):
            _fail(f"codes outside [{low}, {high if np.isscalar(high) else 'count'})", name, bad)

    in_range("replication", 0, reps)
    _validate_detractors(log, in_range)
    if n == 0:
        return
    in_range("customer", 0, np.asarray(log.customers)[log.replication])
    in_range("persona", 0, len(log.personas))
    in_range("channel", 0, len(log.channels))
    in_range("to_stage", 0, s)
    in_range("from_stage", ENTRY, s)
    bad = np.flatnonzero(~np.isfinite(log.time) | (log.time < 0))
    if len(bad):
        _fail("times must be finite and >= 0", "time", bad)
    bad = np.flatnonzero(log.time > log.horizon_days)
    if len(bad):
        _fail(f"times after the horizon ({log.horizon_days} days)", "time", bad)
    # replications in blocks, time order within each
    step_rep = np.diff(log.replication)
    bad = np.flatnonzero(step_rep < 0)
    if len(bad):
        _fail("replications must follow each other in blocks", "replication", bad + 1)
    bad = np.flatnonzero((step_rep == 0) & (np.diff(log.time) < 0))
    if len(bad):
        _fail("rows out of time order within a replication", "time", bad + 1)
    key = log.customer_key()
    total = int(np.sum(log.customers))
    entry = log.from_stage == ENTRY
    entries = np.bincount(key[entry], minlength=total)
    if (entries != 1).any():
        who = np.flatnonzero(entries != 1)
        _fail(
            f"{len(who)} customer(s) without exactly one entry row (customer keys "
            f"{who[:SHOWN].tolist()})",
            "from_stage",
            fix="every customer's first row enters the journey (from_stage -1 or empty)",
        )
    # per customer, rows in order: the entry first, then moves that chain
    by_customer = np.argsort(key, kind="stable")
    k_sorted = key[by_customer]
    first = np.r_[True, k_sorted[1:] != k_sorted[:-1]]
    bad = by_customer[first & ~entry[by_customer]]
    if len(bad):
        _fail("a customer's first row is not their entry", "from_stage", np.sort(bad))
    prev_to = np.r_[ENTRY, log.to_stage[by_customer][:-1]]
    chained = first | (log.from_stage[by_customer] == prev_to)
    bad = by_customer[~chained]
    if len(bad):
        _fail(
            "moves do not chain: from_stage is not the stage the customer's previous row entered",
            "from_stage",
            np.sort(bad),
        )
    ends = log.end_mask
    bad = np.flatnonzero(~entry & ends[np.maximum(log.from_stage, 0)])
    if len(bad):
        _fail("moves out of an end stage", "from_stage", bad)
    for name in ("persona", "channel"):
        col = getattr(log, name)
        first_of = np.empty(total, dtype=col.dtype)
        first_of[key[entry]] = col[entry]
        bad = np.flatnonzero(col != first_of[key])
        if len(bad):
            _fail(f"a customer's {name} changes between rows", name, bad)
    bad = np.flatnonzero(~np.isfinite(log.value) | (log.value < 0))
    if len(bad):
        _fail("values must be finite and >= 0", "value", bad)
    bad = np.flatnonzero((log.value != 0) & ~log.purchase_mask[log.to_stage])
    if len(bad):
        _fail("a value on a row that is not a purchase", "value", bad)
    if not log.interventions:
        bad = np.flatnonzero(log.treatment != 0)
        if len(bad):
            _fail("treatment bits set in a log without interventions", "treatment", bad)
    bad = np.flatnonzero(
        (log.referrer < -1)
        | (log.referrer >= np.asarray(log.customers)[log.replication])
        | (log.referrer == log.customer)
    )
    if len(bad):
        _fail("referrer must be -1 or another customer of the same replication", "referrer", bad)
    _validate_queues(log, entry)
    allowed = np.zeros((s, s), dtype=bool)
    for a, b in log.edges or ():
        if not (0 <= a < s and 0 <= b < s):
            _fail(f"edge ({a}, {b}) names a stage code outside the log", "edges")
        allowed[a, b] = True
    moves = np.flatnonzero(~entry)
    bad = moves[~allowed[log.from_stage[moves], log.to_stage[moves]]]
    if len(bad):
        _fail("moves along no edge of the journey", "to_stage", bad)


def _validate_detractors(log: EventLog, in_range) -> None:
    """Negative word-of-mouth records: one length, customers of their replication, losses
    of expected conversions >= 0, days within the horizon."""
    for name, dtype in DETRACTOR_SCHEMA.items():
        col = getattr(log, name)
        if col.dtype != dtype or len(col) != len(log.detractor_customer):
            _fail(f"must be {np.dtype(dtype)} with one entry per detractor record", name)
    if not len(log.detractor_customer):
        return
    in_range("detractor_replication", 0, len(log.customers))
    size = np.asarray(log.customers)[log.detractor_replication]
    in_range("detractor_customer", 0, size)
    in_range("detractor_reached", -1, size)
    bad = np.flatnonzero(~(log.detractor_lost >= 0) | ~np.isfinite(log.detractor_lost))
    if len(bad):
        _fail("lost conversions must be finite and >= 0", "detractor_lost", bad)
    t = log.detractor_time
    bad = np.flatnonzero(~((t >= 0) & (t <= log.horizon_days)))
    if len(bad):
        _fail("contact days must lie within [0, horizon]", "detractor_time", bad)


def _validate_queues(log: EventLog, entry: np.ndarray) -> None:
    s = len(log.stages)
    n_res = len(log.resources)
    if len(log.capacities) != n_res or len(log.stage_resources) != s:
        _fail("capacities need one entry per resource, stage_resources one per stage", "resources")
    if any(not -1 <= r < n_res for r in log.stage_resources):
        _fail("stage_resources name a resource code outside the log", "stage_resources")
    bad = np.flatnonzero(~np.isfinite(log.wait) | (log.wait < 0) | (entry & (log.wait != 0)))
    if len(bad):
        _fail("waits must be finite, >= 0 and zero on entry rows", "wait", bad)
    uses = np.array(log.stage_resources, dtype=np.int64)
    leaves_queue = ~entry & (uses[np.maximum(log.from_stage, 0)] >= 0)
    bad = np.flatnonzero(
        ~np.isfinite(log.satisfaction) | (log.satisfaction < -1) | (log.satisfaction > 1)
    )
    if len(bad):
        _fail("satisfaction scores must lie in [-1, 1]", "satisfaction", bad)
    bad = np.flatnonzero(
        (log.outcome < -1) | (log.outcome >= len(log.outcomes)) | (entry & (log.outcome != -1))
    )
    if len(bad):
        _fail(
            "outcome codes must be -1 (none, always on entry rows) or a code into outcomes",
            "outcome",
            bad,
        )
    bad = np.flatnonzero(log.abandoned & ~leaves_queue)
    if len(bad):
        _fail("an abandonment of a stage that uses no resource", "abandoned", bad)
    bad = np.flatnonzero((log.wait > 0) & ~leaves_queue)
    if len(bad):
        _fail("a wait on a row that leaves no queue", "wait", bad)
