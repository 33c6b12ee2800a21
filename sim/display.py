"""Compact HTML for notebooks: a headline and small tables (used by the ``_repr_html_`` of
results, comparisons and expectations)."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd


def percent(x: float) -> str:
    """A share as a percentage ('' for NaN)."""
    return "" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}%"


def number(x: float) -> str:
    """A number with thousands separators and four significant digits ('' for NaN)."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def html_block(
    title: str,
    lines: list[str],
    tables: Mapping[str, pd.DataFrame],
    formats: Mapping[str, Callable[[float], str]] | None = None,
) -> str:
    """A headline, a few lines of text and captioned tables, as one HTML fragment."""
    parts = [f"<div class='journey-sim'><strong>{html.escape(title)}</strong>"]
    parts += [f"<div>{html.escape(line)}</div>" for line in lines]
    for caption, frame in tables.items():
        shown = frame.copy()
        for col, fmt in (formats or {}).items():
            if col in shown.columns:
                shown[col] = shown[col].map(fmt)
        parts.append(f"<div style='margin-top:0.5em'><em>{html.escape(caption)}</em></div>")
        parts.append(shown.to_html(index=False, border=0, float_format=number, na_rep=""))
    parts.append("</div>")
    return "\n".join(parts)
