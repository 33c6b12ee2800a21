"""The report of ``sim check``: a fitted scenario's simulation beside the observed data, as
one self-contained HTML page with its tables also written as CSV beside it."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.calibrate.check import Z_LIMIT, CheckResult
from sim.io.atomic import write_text_atomic
from sim.plot import PALETTE
from sim.report import _STYLE, _image
from sim.run.provenance import package_version


def plot_check(result: CheckResult, ax: Axes | None = None) -> Figure:
    """Purchases per week: observed (points) over the simulated mean and its predictive band."""
    if ax is None:
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.subplots()
    fig = ax.figure
    w = result.weekly
    weeks = w["item"].astype(float)
    ax.fill_between(
        weeks,
        w["low"],
        w["high"],
        color=PALETTE[0],
        alpha=0.25,
        step="mid",
        label=f"simulated, {result.confidence:.0%} predictive band",
    )
    ax.plot(weeks, w["simulated"], color=PALETTE[0], drawstyle="steps-mid", label="simulated mean")
    ax.plot(weeks, w["observed"], "o", color=PALETTE[5], markersize=3, label="observed")
    ax.set_xlabel("week")
    ax.set_ylabel("purchases")
    ax.legend(loc="upper right", frameon=False)
    return fig


def plot_check_funnel(result: CheckResult, ax: Axes | None = None) -> Figure:
    """Share of customers reaching each stage: observed against simulated with its band."""
    if ax is None:
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.subplots()
    fig = ax.figure
    f = result.funnel
    x = range(len(f))
    ax.bar([i - 0.2 for i in x], f["observed"], width=0.4, color=PALETTE[5], label="observed")
    ax.bar(
        [i + 0.2 for i in x],
        f["simulated"],
        width=0.4,
        color=PALETTE[0],
        label="simulated",
        yerr=[f["simulated"] - f["low"], f["high"] - f["simulated"]],
        capsize=3,
    )
    ax.set_xticks(list(x), f["item"])
    ax.set_ylabel("share of customers reaching")
    ax.legend(loc="upper right", frameon=False)
    return fig


def plot_check_retention(result: CheckResult, ax: Axes | None = None) -> Figure:
    """Share of customers buying again at or after each day: observed over the simulated
    mean and its predictive band."""
    if ax is None:
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.subplots()
    fig = ax.figure
    r = result.retention
    days = r["item"].astype(float)
    ax.fill_between(
        days,
        r["low"],
        r["high"],
        color=PALETTE[0],
        alpha=0.25,
        label=f"simulated, {result.confidence:.0%} predictive band",
    )
    ax.plot(days, r["simulated"], color=PALETTE[0], label="simulated mean")
    ax.plot(days, r["observed"], "o", color=PALETTE[5], markersize=4, label="observed")
    warm = result.warm_start is not None
    ax.set_xlabel("day of the data" if warm else "days since the customer's start")
    ax.set_ylabel("share buying again at or after")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", frameon=False)
    return fig


def write_check_report(result: CheckResult, path: str | Path, title: str = "") -> Path:
    """Write the HTML report to ``path`` and its tables to ``path`` with suffix ``.csv``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = result.table
    write_text_atomic(path.with_suffix(".csv"), table.to_csv(index=False))
    verdict = "passes" if result.passed else "fails"
    fmt = {c: "{:.4g}".format for c in ("observed", "simulated", "low", "high", "difference", "z")}

    def block(name: str, frame) -> str:
        return f"<h2>{html.escape(name)}</h2>" + frame.to_html(
            index=False, formatters=fmt, border=0
        )

    body = [
        f"<h1>Fit check{': ' + html.escape(title) if title else ''}</h1>",
        f'<p class="meta">sim {package_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; '
        f"{result.replications} simulated replications</p>",
        f"<p><b>The fitted scenario {verdict}</b>: {result.coverage:.0%} of {len(table)} "
        f"measures lie inside their {result.confidence:.0%} predictive intervals; a measure "
        f"fails when it is more than {Z_LIMIT:g} simulated standard deviations from the "
        "simulated mean.</p>",
        _image(plot_check_funnel(result), "funnel: observed and simulated"),
        _image(plot_check(result), "purchases per week: observed and simulated"),
        _image(plot_check_retention(result), "retention: observed and simulated"),
        (
            f"<p>Out of sample: every customer who entered before day {result.warm_start:g} "
            "was warm-started there (their stage and the time already spent in it) and the "
            "period after it forecast; customers who entered later are neither forecast "
            "nor counted.</p>"
            if result.warm_start is not None
            else ""
        ),
        block("Customers reaching each stage", result.funnel),
        block("Purchases per customer (share of customers)", result.purchases),
        block("Purchases per week", result.weekly),
        *([block("Purchases in total", result.total)] if result.total is not None else []),
        block("Customers buying again at or after a day (retention)", result.retention),
        "<h2>Distributions (two-sample Kolmogorov-Smirnov, reported only)</h2>"
        + result.distances.to_html(index=False, float_format="{:.4g}".format, border=0),
    ]
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fit check</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    write_text_atomic(path, page)
    return path
