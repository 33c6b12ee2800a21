"""Keeping finished replications on disk as a run goes, and resuming an interrupted run.

A *keep directory* holds ``state.json`` (what the replications are of: the scenarios and their
digests, the seed, the engines, the package version) and one file per finished replication
(``replications/r00012.npz``), each written atomically as it finishes. Resuming reads back the
replications already there and runs only the others: since every replication draws from
streams of its own (seed and number), the result is byte for byte that of an uninterrupted
run. A directory made from another scenario, seed, engine or version is refused, with the
reason.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from sim.errors import ScenarioError
from sim.events import EventLog
from sim.io.atomic import current_umask, is_stale, write_text_atomic
from sim.io.replication_file import read_replication, write_replication

STATE = "state.json"
FOLDER = "replications"
LOCK = "lock"


def _describe(field: str, value: Any) -> str:
    if field == "scenarios":
        return ", ".join(f"'{n}' (digest {d})" for n, d in value)
    if field == "scenario" and isinstance(value, list) and len(value) == 2:
        return f"'{value[0]}' (digest {value[1]})"
    if field == "package_version":
        return f"journey-sim {value}"
    return f"{value}"


def read_state(path: Path, directory: Path, field: str) -> dict[str, Any] | None:
    """What an earlier run recorded it was of (its state file ``path``), or None where it
    recorded nothing; an unreadable file is a ScenarioError naming ``field``."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ScenarioError(
            f"{path} cannot be read ({err})",
            field=field,
            fix=f"remove {directory} to start over",
        ) from None


def check_same_run(
    directory: Path, state: dict[str, Any], identity: dict[str, Any], made: str, field: str
) -> None:
    """Refuse to resume in ``directory`` a run that is not the one recorded there (``state``):
    the first field of ``identity`` that differs is named, with both values."""
    for name, want in identity.items():
        have = state.get(name)
        if have != want:
            raise ScenarioError(
                f"cannot resume {directory}: it was {made} with {name} "
                f"{_describe(name, have)}, this run has {_describe(name, want)}",
                field=field,
                fix=f"run with the same {name}, or remove {directory} to start over",
            )


def _lock(directory: Path) -> int:
    """Hold an exclusive lock on ``directory`` for as long as this process lives (the system
    drops it when the process ends, however it ends), so two runs never write into one
    directory; returns the descriptor that holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ScenarioError(
            f"another run is writing into {directory} right now",
            field="--out",
            fix="wait for it to finish, or write elsewhere",
        ) from None
    return fd


def refuse_kept_in_memory(directory: str | Path | None) -> None:
    """Refuse a streamed run into ``directory`` where an interrupted run held in memory kept
    finished replications: the streamed run would not use them, and its results would take
    their place."""
    if directory is None:
        return
    d = Path(directory)
    kept = len(list((d / FOLDER).glob("*.npz"))) if (d / STATE).is_file() else 0
    if kept:
        raise ScenarioError(
            f"{d} holds {kept} finished replication(s) of an interrupted run held in memory, "
            "and this run streams its event log to disk",
            field="--resume",
            fix=f"run the interrupted command again (the same options) with --resume, or "
            f"remove {d} to start over",
        )


class KeptReplications:
    """Finished replications of one run (or comparison) kept in ``directory``.

    ``identity`` says what they are of; ``name(key)`` gives a replication's file name. With
    ``resume`` False the directory must not hold replications already (so nothing is mixed
    or lost by mistake); with ``resume`` True it must hold replications of the same
    identity, or none."""

    def __init__(
        self,
        directory: str | Path,
        identity: dict[str, Any],
        resume: bool,
        name: Callable[[Hashable], str],
    ) -> None:
        self._lock: int | None = None
        self.directory = Path(directory)
        self.folder = self.directory / FOLDER
        self.identity = json.loads(json.dumps(identity))  # as it reads back from the file
        self.name = name
        self._lock = _lock(self.directory)
        try:
            self._open(resume)
        except BaseException:
            self.close()  # an error must not hold the directory while it is reported
            raise

    def _open(self, resume: bool) -> None:
        state_path = self.directory / STATE
        state = read_state(state_path, self.directory, "--resume")
        if state is not None:
            kept = self.count()
            if not resume and kept:
                raise ScenarioError(
                    f"{self.directory} holds {kept} finished replication(s) of an interrupted run",
                    field="--resume",
                    fix=f"add --resume to continue it, or remove {self.directory} to start over",
                )
            if resume:
                check_same_run(self.directory, state, self.identity, "made", "--resume")
        self.directory.mkdir(exist_ok=True)
        os.chmod(self.directory, 0o777 & ~current_umask())
        self.folder.mkdir(exist_ok=True)
        for path in self.folder.iterdir():  # half-written files of a killed run
            if is_stale(path):
                path.unlink(missing_ok=True)
        write_text_atomic(state_path, json.dumps(self.identity, indent=2) + "\n")

    def close(self) -> None:
        """Let another run use the directory."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()

    def count(self) -> int:
        """Replications kept so far."""
        return len(list(self.folder.glob("*.npz"))) if self.folder.is_dir() else 0

    def load(self, key: Hashable) -> EventLog | None:
        """A kept replication, or None."""
        path = self.folder / self.name(key)
        return read_replication(path) if path.exists() else None

    def save(self, key: Hashable, log: EventLog) -> None:
        """Keep a finished replication (atomically: whole or absent)."""
        write_replication(log, self.folder / self.name(key))
