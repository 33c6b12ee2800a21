"""Plots of results and comparisons.

Each function takes a :class:`~sim.results.RunResult` or a :class:`~sim.compare.Comparison`
and an optional ``ax``, draws only there, and returns the Figure (no pyplot state: works
headless, in scripts and in notebooks). Colours are the Okabe-Ito palette, which stays
distinguishable with the common colour-vision deficiencies.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, PathPatch, Rectangle
from matplotlib.path import Path

from sim.analysis.adoption import adoption_curve
from sim.analysis.queues import queue_over_time
from sim.engine.sizing import GRID_POINTS
from sim.events import ENTRY
from sim.results import RunResult, StreamedRunResult

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
UPLIFT_METRICS = (
    "conversion",
    "purchases_per_customer",
    "active_day_90",
    "revenue_per_customer",
    "profit",
)


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def _results(obj) -> dict[str, RunResult]:
    """Scenario name -> run, from a run or a comparison."""
    if isinstance(obj, RunResult | StreamedRunResult):
        return {obj.scenario.name: obj}
    return dict(obj.results)


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# -- funnel ----------------------------------------------------------------------------------


def funnel(obj, ax: Axes | None = None) -> Figure:
    """Bars of customers reaching each journey stage (mean per replication, 95% CI whiskers);
    one scenario is annotated with overall and step conversion, several stand side by side."""
    results = _results(obj)
    first = next(iter(results.values()))
    transient = [s.name for s in first.scenario.journey.stages if not s.absorbing]
    fig, ax = _axes(ax, (7.5, 0.55 * len(transient) * max(1, len(results) ** 0.5) + 1.6))
    y = np.arange(len(transient))[::-1].astype(float)
    height = 0.8 / len(results)
    top = 0.0
    for k, (name, res) in enumerate(results.items()):
        table = res.funnel(by=None).set_index("stage").loc[transient]
        err = None
        if res.replications > 1:
            err = np.vstack(
                [
                    table["customers"] - table["customers_ci_low"],
                    table["customers_ci_high"] - table["customers"],
                ]
            )
        offset = (len(results) - 1) / 2 * height - k * height
        ax.barh(
            y + offset,
            table["customers"],
            height=height,
            xerr=err,
            capsize=2,
            color=_colour(k),
            label=name,
        )
        top = max(top, float(table["customers"].max()))
        if len(results) == 1:
            for yi, (_, row) in zip(y, table.iterrows(), strict=True):
                ax.text(
                    row.customers + 0.01 * top,
                    yi,
                    f" {100 * row.conversion:.1f}% of entrants,"
                    f" step {100 * row.step_conversion:.0f}%",
                    va="center",
                    fontsize=8,
                )
    ax.set_yticks(y, transient)
    ax.set_xlim(0, top * (1.6 if len(results) == 1 else 1.1))
    ax.set_xlabel("customers reaching the stage (mean per replication)")
    if len(results) == 1:
        ax.set_title(f"Funnel: {first.scenario.name}")
    else:
        ax.set_title("Funnel by scenario")
        ax.legend(loc="upper right", frameon=False, fontsize=8)
    return fig


# -- flow --------------------------------------------------------------------------------------


def transition_counts(result: RunResult) -> pd.DataFrame:
    """Moves between stages per replication (mean): from_stage, to_stage, customers."""
    log = result.log
    moves = log.from_stage != ENTRY
    n = len(log.stages)
    counts = np.zeros((n, n))
    np.add.at(counts, (log.from_stage[moves], log.to_stage[moves]), 1)
    counts /= max(log.replications, 1)
    i, j = np.nonzero(counts)
    return pd.DataFrame(
        {
            "from_stage": [log.stages[a] for a in i],
            "to_stage": [log.stages[b] for b in j],
            "customers": counts[i, j],
        }
    )


def _depths(result: RunResult) -> dict[str, int]:
    """Column of each stage: steps from the entry; absorbing ends share the last column."""
    journey = result.scenario.journey
    depth = {journey.entry: 0}
    todo = deque([journey.entry])
    while todo:
        name = todo.popleft()
        for target, p in journey.stage(name).next:
            if p > 0 and target not in depth and not journey.stage(target).absorbing:
                depth[target] = depth[name] + 1
                todo.append(target)
    # a move between two stages of one column pushes the later one a column right, unless
    # the two lead to each other (a loop, drawn as an arc)
    edges = {(s.name, t) for s in journey.stages for t, p in s.next if p > 0}
    for _ in range(len(journey.stages)):
        moved = False
        for a, b in edges:
            if (
                a in depth
                and b in depth
                and depth[a] == depth[b]
                and (b, a) not in edges
                and b != journey.entry
            ):
                depth[b] += 1
                moved = True
        if not moved:
            break
    last = max(depth.values()) + 1
    return {s.name: (last if s.absorbing else depth.get(s.name, last - 1)) for s in journey.stages}


def _band(x0: float, y0: tuple[float, float], x1: float, y1: tuple[float, float]) -> Path:
    mid = (x0 + x1) / 2
    (top0, bottom0), (top1, bottom1) = y0, y1
    vertices = [
        (x0, top0),
        (mid, top0),
        (mid, top1),
        (x1, top1),
        (x1, bottom1),
        (mid, bottom1),
        (mid, bottom0),
        (x0, bottom0),
        (x0, top0),
    ]
    codes = [
        Path.MOVETO,
        Path.CURVE4,
        Path.CURVE4,
        Path.CURVE4,
        Path.LINETO,
        Path.CURVE4,
        Path.CURVE4,
        Path.CURVE4,
        Path.CLOSEPOLY,
    ]
    return Path(vertices, codes)


def flow(result: RunResult, ax: Axes | None = None) -> Figure:
    """Alluvial diagram of moves between stages: stages are columns from the entry onwards,
    drop-outs and churn flow to the ends on the right, band widths are proportional to the
    customers moving (mean per replication); moves back to an earlier stage (repeat
    purchases, renewals) are drawn as arcs below, their width proportional too."""
    counts = transition_counts(result)
    depth = _depths(result)
    names = list(result.scenario.journey.names)
    log = result.log
    inflow = counts.groupby("to_stage")["customers"].sum()
    outflow = counts.groupby("from_stage")["customers"].sum()
    entrants = np.sum(log.from_stage == ENTRY) / max(log.replications, 1)
    size = {
        n: max(
            float(inflow.get(n, 0.0)) + (entrants if n == result.scenario.journey.entry else 0.0),
            float(outflow.get(n, 0.0)),
        )
        for n in names
    }
    columns: dict[int, list[str]] = {}
    for n in names:
        if size[n] > 0:
            columns.setdefault(depth[n], []).append(n)
    gap = 0.04
    scale = min((1 - gap * (len(col) - 1)) / sum(size[n] for n in col) for col in columns.values())
    box: dict[str, tuple[float, float, float]] = {}  # x, top, bottom
    width = 0.12
    for d, col in columns.items():
        top = 1.0
        for n in col:
            h = size[n] * scale
            box[n] = (float(d), top, top - h)
            top -= h + gap
    fig, ax = _axes(ax, (9, 4.5))
    for n, (x, top, bottom) in box.items():
        ax.add_patch(
            Rectangle((x, bottom), width, top - bottom, color="#555555", zorder=3, gid=f"stage:{n}")
        )
        ax.text(
            x + width / 2, top + 0.01, f"{n}\n{size[n]:,.0f}", ha="center", va="bottom", fontsize=7
        )
    out_cursor = {n: box[n][1] for n in box}
    in_cursor = {n: box[n][1] for n in box}
    forward = counts[
        [depth[a] < depth[b] for a, b in zip(counts.from_stage, counts.to_stage, strict=True)]
    ]
    backward = counts.drop(forward.index)
    journey = result.scenario.journey
    ends = [journey.stage(b).absorbing for b in forward.to_stage]
    order = forward.assign(end=ends, key=[-box[b][1] for b in forward.to_stage]).sort_values(
        ["from_stage", "end", "key"]
    )
    for _, row in order.iterrows():
        h = row.customers * scale
        a, b = row.from_stage, row.to_stage
        y0 = (out_cursor[a], out_cursor[a] - h)
        y1 = (in_cursor[b], in_cursor[b] - h)
        out_cursor[a] -= h
        in_cursor[b] -= h
        end = journey.stage(b).absorbing
        # drop-out and churn bands lie behind the path through the journey
        ax.add_patch(
            PathPatch(
                _band(box[a][0] + width, y0, box[b][0], y1),
                facecolor="#BBBBBB" if end else _colour(names.index(b)),
                alpha=0.35 if end else 0.6,
                lw=0,
                zorder=1 if end else 2,
                gid=f"flow:{a}->{b}",
            )
        )
    peak = max(backward.customers.max() if len(backward) else 1.0, 1.0)
    for k, (_, row) in enumerate(backward.iterrows()):
        a, b = row.from_stage, row.to_stage
        arc = FancyArrowPatch(
            (box[a][0] + width / 2, box[a][2]),
            (box[b][0] + width / 2, box[b][2]),
            connectionstyle="arc3,rad=-0.4",
            arrowstyle="-|>",
            mutation_scale=10,
            lw=0.5 + 6 * row.customers / peak,
            color=_colour(names.index(b)),
            alpha=0.7,
            gid=f"flow:{a}->{b}",
        )
        ax.add_patch(arc)
        ax.text(
            (box[a][0] + box[b][0]) / 2 + width / 2,
            min(box[a][2], box[b][2]) - 0.16 - 0.07 * k,
            f"{a} \u2192 {b}: {row.customers:,.0f}",
            ha="center",
            fontsize=7,
        )
    ax.set_xlim(-0.2, max(depth.values()) + 0.4)
    ax.set_ylim(-0.35, 1.15)
    ax.axis("off")
    ax.set_title(f"Moves between stages: {result.scenario.name} (customers per replication)")
    return fig


# -- retention ----------------------------------------------------------------------------------


def day_ticks(horizon: float, most: int = 13) -> list[float]:
    """Ticks every 30, 90 or 180 days, or for long horizons a round number of years (then
    powers of ten years), so that at most ``most`` ticks are drawn whatever the horizon."""
    for step in (30, 90, 180):
        if horizon / step < most:
            break
    else:
        years = horizon / 365 / (most - 1)
        nice = 10 ** math.floor(math.log10(years))
        step = 365 * next(m * nice for m in (1, 2, 5, 10) if m * nice >= years)
    return list(np.arange(0, horizon + 1e-9, step))


def retention(obj, ax: Axes | None = None, by: str | None = "persona") -> Figure:
    """Kaplan-Meier curves of customers still active after their first purchase with 95%
    bands: per persona (``by``) for one run, one per scenario for a comparison; the number
    at risk is printed under the axis."""
    results = _results(obj)
    fig, ax = _axes(ax, (7.5, 4.5))
    curves = []
    if len(results) == 1:
        res = next(iter(results.values()))
        frame = res.retention(by=by)
        column = by or "group"
        if by is None:
            frame = frame.assign(group="all")
        for name, curve in frame.groupby(column, sort=False, observed=True):
            curves.append((str(name), curve))
        title = f"Retention: {res.scenario.name}"
        horizon = res.scenario.horizon_days
    else:
        for name, res in results.items():
            curves.append((name, res.retention(by=None)))
        title = "Retention by scenario"
        horizon = max(r.scenario.horizon_days for r in results.values())
    for i, (name, curve) in enumerate(curves):
        thick = 2.2 if name in ("all", next(iter(results))) else 1.4
        ax.step(
            curve["day"], curve["survival"], where="post", color=_colour(i), lw=thick, label=name
        )
        ax.fill_between(
            curve["day"],
            curve["ci_low"].fillna(0),
            curve["ci_high"].fillna(1),
            step="post",
            color=_colour(i),
            alpha=0.15,
            lw=0,
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, horizon)
    ticks = day_ticks(horizon)
    ax.set_xticks(ticks)
    for i, (_, curve) in enumerate(curves):
        days = curve["day"].to_numpy()
        at_risk = curve["at_risk"].to_numpy()
        for t in ticks:
            j = np.searchsorted(days, t, side="left")
            n = int(at_risk[j]) if j < len(at_risk) else 0
            ax.annotate(
                f"{n:,}",
                xy=(t, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, -30 - 10 * i),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color=_colour(i),
            )
    ax.annotate(
        "at risk",
        xy=(0, 0),
        xycoords="axes fraction",
        xytext=(-30, -30),
        textcoords="offset points",
        ha="right",
        fontsize=7,
    )
    ax.set_xlabel("days since first purchase", labelpad=12 + 10 * len(curves))
    ax.set_ylabel("share still active")
    ax.set_title(title)
    ax.legend(loc="upper right", frameon=False, fontsize=8)
    return fig


# -- uplift -----------------------------------------------------------------------------------


def uplift(comparison, ax: Axes | None = None, metrics: tuple[str, ...] = UPLIFT_METRICS) -> Figure:
    """Forest plot: each scenario's difference from the baseline per metric, as a relative
    change with its 95% interval, and a line at zero."""
    table = comparison.summary(metrics=metrics)
    table = table[table.scenario != comparison.baseline]
    base = comparison.summary(metrics=metrics)
    base = base[base.scenario == comparison.baseline].set_index("metric")["mean"]
    others = [n for n in comparison.scenarios if n != comparison.baseline]
    fig, ax = _axes(ax, (7.5, 0.45 * len(metrics) * len(others) + 1.5))
    rows = len(metrics)
    step = 0.8 / max(len(others), 1)
    for k, name in enumerate(others):
        part = table[table.scenario == name].set_index("metric").loc[list(metrics)]
        scale = 100 / base.loc[list(metrics)].abs().replace(0, np.nan).to_numpy()
        centre = part["diff_vs_baseline"].to_numpy() * scale
        low = part["diff_ci_low"].to_numpy() * scale
        high = part["diff_ci_high"].to_numpy() * scale
        y = np.arange(rows)[::-1] + (len(others) - 1) / 2 * step - k * step
        ax.errorbar(
            centre,
            y,
            xerr=np.vstack([centre - low, high - centre]),
            fmt="o",
            color=_colour(k + 1),
            capsize=3,
            label=name,
        )
    ax.axvline(0, color="#333333", lw=1, gid="zero")
    ax.set_yticks(np.arange(rows)[::-1], list(metrics))
    ax.set_xlabel(f"change from {comparison.baseline} (%, 95% CI)")
    ax.set_title("Uplift against the baseline")
    ax.legend(frameon=False, fontsize=8)
    return fig


# -- occupancy ----------------------------------------------------------------------------------


def day_grid(horizon: float, points: int = GRID_POINTS) -> np.ndarray:
    """Whole days from 0 to the horizon, or for a long horizon ``points`` evenly spaced days:
    curves by day stay the same size whatever the horizon."""
    if horizon + 1 <= points:
        return np.arange(0, np.floor(horizon) + 1)
    return np.linspace(0, horizon, points)


def stage_occupancy(result: RunResult, days: np.ndarray | None = None) -> pd.DataFrame:
    """Customers in each transient stage at each day (mean over replications): a customer who
    entered a stage at t and left at t' counts for t <= day < t'."""
    log = result.log
    journey = result.scenario.journey
    if days is None:
        days = day_grid(log.horizon_days)
    key = log.customer_key()
    order = np.lexsort((np.arange(len(key)), key))
    k, t, to = key[order], log.time[order], log.to_stage[order]
    same_next = np.r_[k[1:] == k[:-1], False]
    leave = np.where(same_next, np.r_[t[1:], np.inf], np.inf)
    out = {}
    for s in journey.stages:
        if s.absorbing:
            continue
        rows = to == journey.index(s.name)
        enters, leaves = np.sort(t[rows]), np.sort(leave[rows])
        inside = np.searchsorted(enters, days, side="right") - np.searchsorted(
            leaves, days, side="right"
        )
        out[s.name] = inside / max(log.replications, 1)
    return pd.DataFrame(out, index=pd.Index(days, name="day"))


def occupancy(result: RunResult, ax: Axes | None = None) -> Figure:
    """Stacked area of how many customers are in each stage, day by day (mean per
    replication): the shape of a campaign or of arrivals over time."""
    table = stage_occupancy(result)
    fig, ax = _axes(ax, (8, 4))
    ax.stackplot(
        table.index,
        table.to_numpy().T,
        labels=list(table.columns),
        colors=[_colour(i) for i in range(len(table.columns))],
        alpha=0.85,
    )
    ax.set_xlim(table.index[0], table.index[-1])
    ax.set_xlabel("day")
    ax.set_ylabel("customers in the stage")
    ax.set_title(f"Stage occupancy: {result.scenario.name}")
    ax.legend(loc="upper right", frameon=False, fontsize=8)
    return fig


# -- time to purchase --------------------------------------------------------------------------


def time_to_purchase(obj, ax: Axes | None = None) -> Figure:
    """Distribution of days from entry to first purchase among purchasers: one cumulative
    curve per scenario (or per persona for a single run)."""
    results = _results(obj)
    fig, ax = _axes(ax, (7.5, 4))
    series = []
    if len(results) == 1:
        res = next(iter(results.values()))
        c = res._customers
        wait = c["first_purchase"] - c["arrival"]
        series.append(("all", wait))
        for i, name in enumerate(res.log.personas):
            series.append((name, wait[c["persona"] == i]))
        ax.set_title(f"Time to first purchase: {res.scenario.name}")
    else:
        for name, res in results.items():
            c = res._customers
            series.append((name, c["first_purchase"] - c["arrival"]))
        ax.set_title("Time to first purchase by scenario")
    for i, (name, wait) in enumerate(series):
        w = np.sort(wait[~np.isnan(wait)])
        if not len(w):
            continue
        share = np.arange(1, len(w) + 1) / len(w)
        ax.step(
            np.r_[0, w],
            np.r_[0, share],
            where="post",
            color=_colour(i),
            lw=2.2 if i == 0 else 1.4,
            label=f"{name} (median {np.median(w):.1f} d)",
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("days from entry to first purchase")
    ax.set_ylabel("share of purchasers")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return fig


# -- cost vs profit ----------------------------------------------------------------------------


def cost_profit(comparison, ax: Axes | None = None) -> Figure:
    """Each intervention scenario's incremental cost against its incremental profit (95% CI)
    per replication; above the line it pays."""
    roi = comparison.roi()
    fig, ax = _axes(ax, (6.5, 4.5))
    for k, row in enumerate(roi.itertuples()):
        yerr = [
            [row.incremental_profit - row.incremental_profit_ci_low],
            [row.incremental_profit_ci_high - row.incremental_profit],
        ]
        ax.errorbar(
            [row.incremental_cost],
            [row.incremental_profit],
            yerr=yerr,
            fmt="o",
            color=_colour(k + 1),
            capsize=3,
            label=row.scenario,
        )
        ax.annotate(f" {row.scenario}", (row.incremental_cost, row.incremental_profit), fontsize=8)
    ax.axhline(0, color="#333333", lw=1, gid="break-even")
    ax.set_xlim(left=0)
    ax.set_xlabel(f"incremental cost against {comparison.baseline} (per replication)")
    ax.set_ylabel("incremental profit (per replication)")
    ax.set_title("Cost and incremental profit")
    ax.legend(frameon=False, fontsize=8)
    return fig


# -- adoption ----------------------------------------------------------------------------------


def adoption(
    result: RunResult,
    ax: Axes | None = None,
    per_day: bool = False,
    p: float | None = None,
    q: float | None = None,
) -> Figure:
    """Customers from the market, day by day: cumulative (mean with a 95% CI band) or new per
    day (``per_day``), beside the Bass curve for the given ``p``, ``q`` (default: the
    scenario's external and word-of-mouth rates) on the scenario's market size."""
    s = result.scenario
    size = s.market.size if s.market is not None else None
    if p is None and s.market is not None:
        p = s.market.external_rate
    if q is None and s.market is not None:
        q = s.word_of_mouth.rate if s.word_of_mouth is not None else 0.0
    table = adoption_curve(result.log, size, p, q)
    fig, ax = _axes(ax, (8, 4))
    days = table["day"].to_numpy()
    if per_day:
        ax.bar(days, table["adopted_per_day"], width=0.9, color=_colour(0), label="simulated")
        ax.plot(days, table["bass_per_day"], color=_colour(5), ls="--", label="Bass")
        ax.set_ylabel("new customers from the market per day")
    else:
        ax.fill_between(
            days, table["adopted_ci_low"], table["adopted_ci_high"], color=_colour(0), alpha=0.3
        )
        ax.plot(days, table["adopted"], color=_colour(0), label="simulated (95% CI)")
        ax.plot(days, table["by_word_of_mouth"], color=_colour(2), label="of them by word of mouth")
        ax.plot(days, table["bass"], color=_colour(5), ls="--", label="Bass")
        ax.set_ylabel("customers from the market")
    bass = table.attrs["bass"]
    ax.set_xlabel("day")
    ax.set_title(f"Adoption: {s.name} (Bass p={bass['p']:.3g}, q={bass['q']:.3g})")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return fig


# -- queues ------------------------------------------------------------------------------------


def queues(result: RunResult, ax: Axes | None = None) -> Figure:
    """Per resource, day by day: customers waiting (solid) and utilisation of its capacity
    (dashed, right axis), means over replications."""
    table = queue_over_time(result.log)
    fig, ax = _axes(ax, (8, 4))
    right = ax.twinx()
    for i, (name, rows) in enumerate(table.groupby("resource", sort=False)):
        ax.plot(rows["day"], rows["queue"], color=_colour(i), label=f"{name}: waiting")
        right.plot(
            rows["day"],
            rows["utilisation"],
            color=_colour(i),
            ls="--",
            label=f"{name}: utilisation",
        )
    right.set_ylim(0, 1.05)
    right.set_ylabel("utilisation")
    ax.set_xlabel("day")
    ax.set_ylabel("customers waiting")
    ax.set_title(f"Queues: {result.scenario.name}")
    lines = ax.get_lines() + right.get_lines()
    ax.legend(
        lines, [line.get_label() for line in lines], loc="upper left", frameon=False, fontsize=8
    )
    return fig
