"""Event logs streamed to disk as a Parquet dataset: one part per chunk of customers.

Layout of a dataset folder::

    part-r00003-c0000400000.parquet   rows of replication 3, customers 400,000 onward
    _reach-r00003-c0000400000.parquet its reach records (when there are interventions)
    _log.json                         stage, persona and channel names, horizon, customers

Each part holds whole customers (every row of each), with the columns of
:data:`sim.events.SCHEMA` as codes; ``customer`` is the customer's number in the whole
replication. Files starting with '_' or '.' are not rows, so ``pyarrow.dataset`` reads the
folder as the event table directly. Parts are written atomically, so a reader never sees half
of one. pyarrow is imported only here and only when a dataset is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import EventLogError
from sim.events import COLUMNS, ENTRY, REACH_SCHEMA, SCHEMA, EventLog
from sim.io.atomic import write_atomic, write_text_atomic

#: The dataset's description file.
META = "_log.json"
#: What a streamed run is of (scenario, seed, engine, chunks), so that it can be resumed.
STATE = "_stream.json"
#: Where an interrupted streamed run sets aside the chunks of replications it did not finish
#: (outside the dataset), for a resumed run.
PENDING = "_pending"

PART = re.compile(r"part-r(\d+)-c(\d+)\.parquet$")
SUMMARY = re.compile(r"_summary-r(\d+)-c(\d+)\.npz$")


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EventLogError(
            "streaming event logs to Parquet needs pyarrow",
            field="pyarrow",
            fix="pip install 'journey-sim[parquet]'",
        ) from None
    return pa, pq


#: What a streamed run's folder holds: parts, reach records, chunk summaries, its description
#: and state, chunks set aside, and the temporary files of writes under way (``.NAME.*.tmp``).
_DATASET_FILE = re.compile(
    r"^(part-r\d+-c\d+\.parquet|_reach-r\d+-c\d+\.parquet|_summary-r\d+-c\d+\.npz"
    r"|_log\.json|_stream\.json|_pending|\..*\.tmp)$"
)


def check_dataset_folder(path: str | Path, option: str) -> Path:
    """A ScenarioError unless a streamed event log may be written into the folder ``path``:
    it is new, empty or holds a streamed log already (written over, as a run's --out is),
    and it is not the current folder or one holding it (never mixed with other files)."""
    from sim.io.locations import check_folder_of_its_own

    return check_folder_of_its_own(
        path,
        option,
        lambda name: _DATASET_FILE.match(name) is not None,
        "other than a streamed event log",
        "",
        f"give {option} a new or empty folder of its own",
    )


def part_name(replication: int, first: int) -> str:
    """File name of the part holding replication ``replication`` from customer ``first``."""
    return f"part-r{replication:05d}-c{first:010d}.parquet"


def clear_dataset(directory: str | Path) -> Path:
    """Make ``directory`` (and its parents) and remove the parts and description a previous
    dataset left there (nothing else), so a new run never mixes with an old one."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for path in [
        *d.glob("part-r*.parquet"),
        *d.glob("_reach-r*.parquet"),
        *d.glob("_summary-r*.npz"),
        d / META,
        d / STATE,
        *(d / PENDING).glob("*"),
    ]:
        path.unlink(missing_ok=True)
    if (d / PENDING).is_dir():
        (d / PENDING).rmdir()
    return d


def write_part(log: EventLog, directory: str | Path, replication: int, first: int) -> Path:
    """Write one chunk's log (a single replication, customers numbered from 0) as a part:
    customer numbers become ``first + k`` and the replication column ``replication``."""
    pa, pq = _pyarrow()
    d = Path(directory)
    cols: dict[str, Any] = {c: getattr(log, c) for c in COLUMNS}
    cols["replication"] = np.full(len(log), replication, dtype=np.int32)
    cols["customer"] = (log.customer.astype(np.int64) + first).astype(np.int32)
    table = pa.table(cols)
    # the reach records first: a part on disk has its reach records (a run stopped between
    # the two leaves no part, and a resumed run writes the chunk again)
    if len(log.reach_customer):
        reach = {c: getattr(log, c) for c in REACH_SCHEMA}
        reach["reach_replication"] = np.full(len(log.reach_customer), replication, np.int32)
        reach["reach_customer"] = (log.reach_customer.astype(np.int64) + first).astype(np.int32)
        write_atomic(
            d / f"_reach-{part_name(replication, first)[5:]}",
            lambda p: pq.write_table(pa.table(reach), p),
        )
    return write_atomic(d / part_name(replication, first), lambda p: pq.write_table(table, p))


def summary_name(replication: int, first: int) -> str:
    """File name of the summary of the chunk of ``part_name(replication, first)``."""
    return f"_summary-r{replication:05d}-c{first:010d}.npz"


def write_chunk_summary(
    directory: str | Path,
    replication: int,
    first: int,
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
) -> Path:
    """Keep beside a chunk's part what its run summarised of it (``header``: JSON values;
    ``arrays``: named arrays), written last: a chunk with its summary on disk is finished."""
    text = json.dumps(header)

    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, _header=np.array(text), **arrays)

    return write_atomic(Path(directory) / summary_name(replication, first), write)


def read_chunk_summaries(
    directory: str | Path,
) -> dict[tuple[int, int], tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """(replication, first customer) -> (header, arrays) of every finished chunk in
    ``directory``: those whose part and summary are both there."""
    d = Path(directory)
    found = {}
    for path in d.glob("_summary-r*.npz"):
        m = SUMMARY.search(path.name)
        if not m or not (d / part_name(int(m.group(1)), int(m.group(2)))).is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["_header"]))
                arrays = {k: data[k] for k in data.files if k != "_header"}
        except (OSError, ValueError, KeyError) as err:
            raise EventLogError(
                f"{path} cannot be read ({err})",
                field="resume",
                fix=f"remove {d} to start the run over",
            ) from None
        found[(int(m.group(1)), int(m.group(2)))] = (header, arrays)
    return found


def write_meta(
    directory: str | Path,
    stage_info: dict[str, Any],
    personas: tuple[str, ...],
    channels: tuple[str, ...],
    interventions: tuple[str, ...],
    horizon_days: float,
    customers: list[int],
) -> Path:
    """Write the dataset's description: stage metadata (as a log's ``stage_info()``), the
    names of personas, channels and interventions, the horizon and each replication's
    customers."""
    meta = {
        **{k: [list(e) if isinstance(e, tuple) else e for e in v] for k, v in stage_info.items()},
        "personas": list(personas),
        "channels": list(channels),
        "interventions": list(interventions),
        "horizon_days": float(horizon_days),
        "customers": [int(n) for n in customers],
    }
    return write_text_atomic(Path(directory) / META, json.dumps(meta, indent=1) + "\n")


class EventDataset:
    """A streamed event log on disk, read lazily: :meth:`table` is a ``pyarrow.dataset``
    over all rows; :meth:`chunks` gives one :class:`~sim.events.EventLog` per part (whole
    customers, so analyses can run chunk by chunk and merge); :meth:`to_log` loads it all."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / META
        if not meta_path.is_file():
            raise EventLogError(
                f"{self.directory} holds no streamed event log (no {META})",
                field="directory",
                fix="pass the folder a streamed run wrote its events to",
            )
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))

    @property
    def customers(self) -> np.ndarray:
        """Customers of each replication."""
        return np.array(self.meta["customers"], dtype=np.int64)

    def parts(self) -> list[tuple[int, int, Path]]:
        """(replication, first customer, path) of every part, in order."""
        found = []
        for path in self.directory.glob("part-r*.parquet"):
            m = PART.search(path.name)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), path))
        return sorted(found)

    def table(self):
        """The rows as a lazy ``pyarrow.dataset.Dataset`` (nothing is read until asked)."""
        _pyarrow()
        import pyarrow.dataset as ds

        return ds.dataset(self.directory, format="parquet")

    def __len__(self) -> int:
        return sum(self._pq().ParquetFile(p).metadata.num_rows for _, _, p in self.parts())

    def _pq(self):
        return _pyarrow()[1]

    def _header(self) -> dict[str, Any]:
        m = self.meta
        return {
            "stages": tuple(m["stages"]),
            "purchase_stages": tuple(m["purchase_stages"]),
            "end_stages": tuple(m["end_stages"]),
            "edges": tuple(tuple(e) for e in m["edges"]),
            "personas": tuple(m["personas"]),
            "channels": tuple(m["channels"]),
            "interventions": tuple(m["interventions"]),
            "horizon_days": float(m["horizon_days"]),
        }

    def _read(self, path: Path, columns: dict[str, type]) -> dict[str, np.ndarray]:
        if not path.is_file():
            return {c: np.zeros(0, dtype=t) for c, t in columns.items()}
        try:
            table = self._pq().read_table(path)
            return {c: table.column(c).to_numpy().astype(t, copy=False) for c, t in columns.items()}
        except (KeyError, ValueError, OSError) as err:  # pyarrow's errors derive from these
            raise EventLogError(
                f"{path} is not a part of this streamed event log ({err})",
                field="events",
                fix="put back the part a run wrote, or run the scenario again",
            ) from None

    def chunks(self) -> Iterator[tuple[int, int, EventLog]]:
        """(replication, first customer, log) per part; the log is one replication numbered
        0 with customers renumbered from 0, so it passes the event-log contract alone."""
        header = self._header()
        sizes = self._sizes()
        for replication, first, path in self.parts():
            cols = self._read(path, SCHEMA)
            reach = self._read(self.directory / f"_reach-{path.name[5:]}", REACH_SCHEMA)
            cols["replication"] = np.zeros(len(cols["time"]), dtype=np.int32)
            cols["customer"] = (cols["customer"] - first).astype(np.int32)
            reach["reach_replication"] = np.zeros(len(reach["reach_time"]), dtype=np.int32)
            reach["reach_customer"] = (reach["reach_customer"] - first).astype(np.int32)
            yield (
                replication,
                first,
                EventLog(
                    **cols,
                    **reach,
                    customers=np.array([sizes[(replication, first)]], dtype=np.int64),
                    **header,
                ),
            )

    def _sizes(self) -> dict[tuple[int, int], int]:
        """Customers in each part: up to the next part's first customer, or the end."""
        parts = self.parts()
        total = self.customers
        sizes = {}
        for i, (r, first, _) in enumerate(parts):
            following = parts[i + 1] if i + 1 < len(parts) else None
            end = following[1] if following and following[0] == r else int(total[r])
            sizes[(r, first)] = end - first
        return sizes

    def numbered_chunks(self) -> Iterator[tuple[int, EventLog]]:
        """(replication, rows) per part, with the replication and customer numbers of the
        whole log (not a log of its own: for writing the rows out chunk by chunk)."""
        for replication, first, log in self.chunks():
            yield (
                replication,
                replace(
                    log,
                    replication=np.full(len(log), replication, dtype=np.int32),
                    customer=(log.customer + first).astype(np.int32),
                    reach_replication=np.full(len(log.reach_time), replication, dtype=np.int32),
                    reach_customer=(log.reach_customer + first).astype(np.int32),
                ),
            )

    def to_log(self) -> EventLog:
        """The whole log in memory (for logs that fit): parts of a replication merged in time
        order, a customer's entry first among rows at the same time."""
        by_rep: dict[int, list[EventLog]] = {}
        for replication, shifted in self.numbered_chunks():
            by_rep.setdefault(replication, []).append(shifted)
        merged = []
        for r in sorted(by_rep):
            log = EventLog.concat(by_rep[r])
            order = np.lexsort((log.from_stage != ENTRY, log.time))
            merged.append(
                replace(log, **{c: getattr(log, c)[order] for c in COLUMNS}),
            )
        if not merged:
            raise EventLogError(f"{self.directory} holds no parts", field="directory")
        return replace(EventLog.concat(merged), customers=self.customers).validate()


def read_event_dataset(directory: str | Path) -> EventDataset:
    """Open a streamed event log (a folder written by ``sim.run(..., stream_to=DIR)``)."""
    return EventDataset(directory)
