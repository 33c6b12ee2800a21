"""Plots of results. Each function takes a result and an optional ``ax``, draws only there,
and returns the Figure (no pyplot state, so it works headless and in notebooks alike)."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sim.results import RunResult

# Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def funnel(result: RunResult, ax: Axes | None = None) -> Figure:
    """Bars of customers reaching each journey stage (mean per replication, 95% CI whiskers),
    annotated with overall and step conversion."""
    table = result.funnel(by=None)
    transient = [s.name for s in result.scenario.journey.stages if not s.absorbing]
    table = table.set_index("stage").loc[transient]
    fig, ax = _axes(ax, (7, 0.6 * len(transient) + 1.5))
    y = np.arange(len(transient))[::-1]
    err = None
    if result.replications > 1:
        err = np.vstack(
            [
                table["customers"] - table["customers_ci_low"],
                table["customers_ci_high"] - table["customers"],
            ]
        )
    ax.barh(y, table["customers"], xerr=err, color=PALETTE[0], capsize=3)
    ax.set_yticks(y, transient)
    top = table["customers"].max()
    for yi, (_, row) in zip(y, table.iterrows(), strict=True):
        ax.text(
            row.customers + 0.01 * top,
            yi,
            f" {100 * row.conversion:.1f}% of entrants, step {100 * row.step_conversion:.0f}%",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(0, top * 1.6)
    ax.set_xlabel("customers reaching the stage (mean per replication)")
    ax.set_title(f"Funnel: {result.scenario.name}")
    return fig


def retention(result: RunResult, ax: Axes | None = None, by: str | None = "persona") -> Figure:
    """Kaplan-Meier curves of customers still active after their first purchase, with 95%
    bands, one per persona (or channel) and overall."""
    curves = result.retention(by=by)
    fig, ax = _axes(ax, (7, 4))
    column = by or "group"
    if by is None:
        curves = curves.assign(group="all")
    for i, (name, curve) in enumerate(curves.groupby(column, sort=False, observed=True)):
        colour = PALETTE[i % len(PALETTE)]
        ax.step(
            curve["day"],
            curve["survival"],
            where="post",
            color=colour,
            lw=2.2 if name == "all" else 1.4,
            label=f"{name} (n={int(curve['at_risk'].iloc[0])})",
        )
        ax.fill_between(
            curve["day"],
            curve["ci_low"].fillna(0),
            curve["ci_high"].fillna(1),
            step="post",
            color=colour,
            alpha=0.15,
            lw=0,
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, result.scenario.horizon_days)
    ax.set_xlabel("days since first purchase")
    ax.set_ylabel("share still active")
    ax.set_title(f"Retention: {result.scenario.name}")
    ax.legend(frameon=False, fontsize=8)
    return fig
