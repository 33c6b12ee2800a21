"""Plots draw what they claim (checked on the drawn artists, with the Agg canvas)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

import sim
from sim import plot
from tests.validation import SCENARIOS


@pytest.fixture(scope="module")
def comparison() -> sim.Comparison:
    base = sim.load_scenario(SCENARIOS / "baseline.toml")
    return sim.compare(
        {
            "baseline": base,
            "discount": sim.load_scenario(SCENARIOS / "discount.toml"),
            "loyalty": sim.load_scenario(SCENARIOS / "loyalty.toml"),
        },
        replications=3,
        seed=1,
        customers=1500,
    )


@pytest.fixture(scope="module")
def result(comparison) -> sim.RunResult:
    return comparison.results["baseline"]


@pytest.fixture(scope="module")
def subscription() -> sim.RunResult:
    scenario = sim.load_scenario(SCENARIOS / "subscription.toml").replace(horizon_days=120)
    return sim.run(scenario, replications=2, seed=3)


def _render(fig: Figure) -> None:
    FigureCanvasAgg(fig).draw()  # every artist must actually render


def test_funnel_has_one_bar_per_journey_stage(result):
    """One scenario: one bar per transient stage, top to bottom in journey order, lengths equal
    to the funnel table."""
    fig = plot.funnel(result)
    _render(fig)
    ax = fig.axes[0]
    transient = [s.name for s in result.scenario.journey.stages if not s.absorbing]
    assert len(ax.patches) == len(transient)
    top_down = sorted(
        zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), key=lambda pair: -pair[0]
    )
    assert [label.get_text() for _, label in top_down] == transient
    heights = result.funnel(by=None).set_index("stage").loc[transient, "customers"]
    np.testing.assert_allclose(sorted(b.get_width() for b in ax.patches), sorted(heights))


def test_funnel_of_a_comparison_puts_scenarios_side_by_side(comparison):
    """Several scenarios: stages x scenarios bars, with CI whiskers and a legend of names."""
    fig = plot.funnel(comparison)
    ax = fig.axes[0]
    assert len(ax.patches) == 5 * 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(comparison.scenarios)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 3 and all(c.errorbar is not None for c in bars)


def test_flow_bands_are_proportional_to_the_moves(result):
    """Every observed move is drawn once, named by its stages, and forward bands are as thick
    as the customers moving (one scale for all)."""
    fig = plot.flow(result)
    _render(fig)
    counts = plot.transition_counts(result)
    drawn = {a.get_gid(): a for a in fig.axes[0].patches if (a.get_gid() or "").startswith("flow:")}
    expected = {f"flow:{a}->{b}" for a, b in zip(counts.from_stage, counts.to_stage, strict=True)}
    assert set(drawn) == expected
    ratios = []
    for row in counts.itertuples():
        patch = drawn[f"flow:{row.from_stage}->{row.to_stage}"]
        if hasattr(patch, "get_path") and patch.get_path().vertices.shape[0] == 9:
            v = patch.get_path().vertices
            ratios.append((v[0, 1] - v[7, 1]) / row.customers)
    assert len(ratios) >= 5 and np.allclose(ratios, ratios[0])


def test_flow_draws_loops_of_a_subscription(subscription):
    """Renewals (renewal -> retention) appear as a loop among the drawn moves."""
    fig = plot.flow(subscription)
    gids = {a.get_gid() for a in fig.axes[0].patches}
    assert "flow:renewal->retention" in gids and "stage:lost" in gids


def test_retention_curves_start_at_one_and_never_rise(result, comparison):
    """Per persona for one run, per scenario for a comparison: every curve starts at 1 and
    never rises; labels carry the names; the number at risk is printed."""
    fig = plot.retention(result)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 1 + len(result.scenario.personas)
    for line in lines:
        y = line.get_ydata()
        assert y[0] == 1 and np.all(np.diff(y) <= 1e-12)
    fig = plot.retention(comparison)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == list(comparison.scenarios)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "at risk" in texts


def test_uplift_forest_has_a_point_per_scenario_and_metric(comparison):
    """One point per (non-baseline scenario, metric), a zero line, metrics as labels."""
    fig = plot.uplift(comparison)
    ax = fig.axes[0]
    assert len(ax.containers) == 2
    assert all(len(c.lines[0].get_xdata()) == len(plot.UPLIFT_METRICS) for c in ax.containers)
    assert any(line.get_gid() == "zero" and set(line.get_xdata()) == {0} for line in ax.get_lines())
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert labels == set(plot.UPLIFT_METRICS)


def test_occupancy_stacks_to_the_customers_in_the_journey(subscription):
    """On every day, the stages' counts add up exactly to the customers who have entered and
    not yet ended their journey."""
    table = plot.stage_occupancy(subscription)
    c = subscription._customers
    days = table.index.to_numpy()
    active = (
        np.array([np.sum((c["arrival"] <= d) & ~(c["ended"] & (c["end_time"] <= d))) for d in days])
        / subscription.replications
    )
    np.testing.assert_allclose(table.sum(axis=1).to_numpy(), active)
    fig = plot.occupancy(subscription)
    assert len([a for a in fig.axes[0].collections if isinstance(a, PolyCollection)]) == 6


def test_time_to_purchase_curves_rise_to_one(comparison):
    """One cumulative curve per scenario, non-decreasing from 0 to 1."""
    fig = plot.time_to_purchase(comparison)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3
    for line in lines:
        y = line.get_ydata()
        assert y[0] == 0 and y[-1] == 1 and np.all(np.diff(y) >= 0)


def test_cost_profit_has_a_point_per_intervention(comparison):
    """One point per scenario against the baseline at its incremental cost and profit."""
    fig = plot.cost_profit(comparison)
    ax = fig.axes[0]
    roi = comparison.roi()
    points = [c.lines[0].get_xydata()[0] for c in ax.containers]
    np.testing.assert_allclose(points, roi[["incremental_cost", "incremental_profit"]])
    assert any(line.get_gid() == "break-even" for line in ax.get_lines())


def test_plots_draw_on_the_axes_given(result, comparison):
    """Given an ax, each plot draws there and returns that ax's figure."""
    fig = Figure()
    axes = fig.subplots(2, 4).flat
    calls = [
        (plot.funnel, result),
        (plot.flow, result),
        (plot.retention, result),
        (plot.uplift, comparison),
        (plot.occupancy, result),
        (plot.time_to_purchase, result),
        (plot.cost_profit, comparison),
    ]
    for ax, (draw, obj) in zip(axes, calls, strict=False):
        assert draw(obj, ax=ax) is fig
        assert ax.has_data() or ax.patches
    _render(fig)
