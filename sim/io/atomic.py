"""The one atomic writer: a reader sees a file's (or a directory's) old content or its new,
never half of it.

Temporary files and directories are named after the process that writes them
(``.<name>.<pid>.<random>.tmp``), so a later writer can tell a temporary left behind by a
killed process (its process is gone) from one being written right now, and remove it. Files
and directories made here get the permissions the user's umask gives any new file (``mkstemp``
alone would make them private to the owner).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_stale(path: Path) -> bool:
    """A temporary of ours whose writing process is gone."""
    match = re.search(r"\.(\d+)\.[^.]*\.(tmp|old)$", path.name)
    if not match:
        return False
    try:
        if path.lstat().st_uid != os.getuid():
            return False
    except FileNotFoundError:
        return False
    return not _alive(int(match.group(1)))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(path: str | Path) -> list[Path]:
    """Remove the temporaries that killed writers of ``path`` left beside it; returns them.

    A previous directory set aside for a swap (``.old``) is put back when ``path`` itself is
    missing (the writer died between the two renames), else removed."""
    path = Path(path)
    removed = []
    try:
        siblings = list(path.parent.glob(f".{glob_escape(path.name)}.*"))
    except OSError:
        return removed
    for sibling in siblings:
        if not is_stale(sibling):
            continue
        if sibling.name.endswith(".old") and not path.exists():
            with contextlib.suppress(OSError):
                os.rename(sibling, path)
                continue
        _remove(sibling)
        removed.append(sibling)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    The folder holding ``path`` must exist: directories a user did not ask for are not made.
    On any failure (or interruption) the temporary file is removed and ``path`` is unchanged.
    The file gets the permissions of the umask; stale temporaries of killed writers of
    ``path`` are removed first.
    """
    path = Path(path)
    clean_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def new_directory_beside(path: str | Path) -> Path:
    """A fresh, empty temporary directory beside ``path`` (same file system, so it can be
    renamed onto ``path``), with the permissions of the umask."""
    path = Path(path)
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    os.chmod(work, 0o777 & ~current_umask())
    return work


def replace_directory(path: str | Path, filled: str | Path) -> Path:
    """Put the complete directory ``filled`` in the place of ``path``.

    The previous ``path``, if any, is set aside under a temporary name and removed only once
    ``filled`` is in place, so at every moment ``path`` is either the old complete directory
    or the new one (or, for the instant between two renames, absent, with the old one kept
    beside it and put back by :func:`clean_stale` if the process dies there)."""
    path, filled = Path(path), Path(filled)
    os.chmod(filled, 0o777 & ~current_umask())
    old = None
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a directory")
        old = path.parent / f"{_temp_prefix(path)}{os.urandom(4).hex()}.old"
        os.rename(path, old)
    try:
        os.rename(filled, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path
