"""One replication's event log in a file of its own (NumPy ``.npz``), read back bit for bit.

Used to keep each finished replication on disk as a run goes, so an interrupted run can be
resumed. Arrays are stored as they are (same dtype and bytes); the log's other fields as
JSON. Nothing is unpickled on reading.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from sim.errors import EventLogError
from sim.events import EventLog
from sim.io.atomic import write_atomic

_TUPLES = ("stages", "personas", "channels", "purchase_stages", "end_stages", "interventions")


def write_replication(log: EventLog, path: str | Path) -> Path:
    """Write one replication's event log to ``path`` (``.npz``), atomically."""
    arrays, meta = {}, {}
    for f in dataclasses.fields(log):
        value = getattr(log, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
        else:
            meta[f.name] = dict(value) if f.name == "skipped" else value
    arrays["_meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    return write_atomic(path, write)


def read_replication(path: str | Path) -> EventLog:
    """Read an event log written by :func:`write_replication`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise EventLogError(f"{path}: not a replication file ({err})") from None
    meta = json.loads(arrays.pop("_meta").tobytes().decode("utf-8"))
    for name in _TUPLES:
        meta[name] = tuple(meta[name])
    if meta.get("edges") is not None:
        meta["edges"] = tuple(tuple(e) for e in meta["edges"])
    return EventLog(**arrays, **meta)
