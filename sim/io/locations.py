"""Checking where results will go before any simulation runs, so a long run is never lost to
an output path that cannot be written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from sim.errors import ScenarioError


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (the folder that will hold what is made)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _can_write_in(folder: Path) -> str | None:
    """None if a file can be created in ``folder``, else the reason. Tried for real (a file is
    made and removed): permission bits alone do not tell about read-only mounts, ACLs or root."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sim-write-check.", suffix=".tmp")
    except OSError as err:
        return err.strerror or str(err)
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output_dir(path: str | Path, option: str) -> Path:
    """A ScenarioError (exit status 2 on the command line) unless results can be written into
    the folder ``path``: it is a folder we can write to, or can be made inside one."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ScenarioError(
            "is a file, not a folder",
            source=str(path),
            field=option,
            fix=f"give {option} a folder (it is made if it does not exist)",
        )
    holder = _nearest_existing(path)
    if not holder.is_dir():
        raise ScenarioError(
            f"'{holder}' is a file, so the folder cannot be made",
            source=str(path),
            field=option,
            fix=f"give {option} a path under a folder",
        )
    reason = _can_write_in(holder)
    if reason is not None:
        where = "the folder" if holder == Path(os.path.abspath(path)) else f"'{holder}'"
        raise ScenarioError(
            f"cannot write in {where}: {reason}",
            source=str(path),
            field=option,
            fix=f"give {option} a folder you can write to",
        )
    return path


#: The file every folder written by ``sim run --out`` or ``sim compare --out`` holds (its
#: provenance): a folder without it is not one of ours to replace.
RUN_RECORD = "run.json"


def check_replaceable_dir(path: str | Path, option: str) -> Path:
    """A ScenarioError unless the folder ``path`` may be replaced as a whole by a run's
    results: it is new, empty, or written by an earlier run (it holds :data:`RUN_RECORD`).
    Refused too: an empty name, and the current folder or one that holds it."""
    if not str(path).strip():
        raise ScenarioError(
            "is empty", field=option, fix=f"give {option} a folder name, e.g. out/run1"
        )
    ours = written_by_a_run(Path(os.path.abspath(path)))
    return check_folder_of_its_own(
        path,
        option,
        ours.__contains__,
        "this tool did not write",
        ", and the results replace the whole folder",
        f"give {option} a new or empty folder, or move those files out first",
    )


def check_folder_of_its_own(
    path: str | Path,
    option: str,
    ours: Callable[[str], bool],
    others: str,
    why: str,
    fix: str,
) -> Path:
    """A ScenarioError unless the folder ``path`` is not the current folder (nor holds it)
    and holds only names ``ours`` accepts: results written there never mix with, or replace,
    an analyst's files. ``others`` says what the other files are, ``why`` (appended to each
    message) why that matters."""
    absolute = Path(os.path.abspath(path))
    here = Path.cwd()
    if absolute == here or absolute in here.parents:
        raise ScenarioError(
            f"is the current folder (or holds it){why}",
            source=str(path),
            field=option,
            fix=f"give {option} a folder of its own, e.g. out/run1",
        )
    if absolute.is_dir():
        foreign = sorted(p.name for p in absolute.iterdir() if not ours(p.name))
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ScenarioError(
                f"holds files {others} ({shown}){why}",
                source=str(path),
                field=option,
                fix=fix,
            )
    return Path(path)


#: What a run or comparison folder holds, for folders whose run.json does not list its files.
_RUN_FILES = frozenset(
    {
        "events",
        "events.parquet",
        "events.csv",
        "funnel.csv",
        "retention.csv",
        "retention_curve.parquet",
        "retention_curve.csv",
        "time_to_purchase.csv",
        "funnel.png",
        "retention.png",
        "scenario.toml",
        "comparison.csv",
        "roi.csv",
        "per_replication.csv",
    }
)


def written_by_a_run(folder: Path) -> set[str]:
    """The names in ``folder`` an earlier run wrote: none without its run.json; the files
    its run.json lists (or, where it lists none, the names runs write) and run.json."""
    import json

    record = folder / RUN_RECORD
    if not record.is_file():
        return set()
    try:
        files = json.loads(record.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return set()
    return {*(files if isinstance(files, list) else _RUN_FILES), RUN_RECORD}


def check_output_file(path: str | Path, option: str) -> Path:
    """A ScenarioError unless the file ``path`` can be written (its folder is made if
    missing): not a folder, and inside a folder we can write to."""
    path = Path(path)
    if path.is_dir():
        raise ScenarioError(
            "is a folder, not a file",
            source=str(path),
            field=option,
            fix=f"give {option} a file name, e.g. {path / 'report.html'}",
        )
    check_output_dir(Path(os.path.abspath(path)).parent, option)
    return path
