"""Progress bars for long runs: a widget in notebooks, text in terminals, silent otherwise."""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any


class _Silent:
    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def interactive() -> bool:
    """True in a notebook or a terminal, False in tests, CI and pipes."""
    if os.environ.get("CI") or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return _in_kernel() or sys.stderr.isatty()


def progress_bar(total: int, desc: str, enabled: bool | None = None) -> Any:
    """A bar counting ``total`` steps; ``enabled=None`` shows it only when interactive."""
    if not (interactive() if enabled is None else enabled) or total <= 1:
        return _Silent()
    if _in_kernel() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=desc, leave=False)
