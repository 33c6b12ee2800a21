"""Plots draw what they claim: one bar per stage, curves that start at 1 and never rise."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

import sim
from sim import plot
from tests.validation import SCENARIOS


@pytest.fixture(scope="module")
def result() -> sim.RunResult:
    scenario = sim.Scenario.from_toml(SCENARIOS / "baseline.toml")
    return sim.run(scenario, replications=3, seed=1, customers=1500)


def test_funnel_has_one_bar_per_journey_stage(result):
    """Bars: one per transient stage, in journey order top to bottom, heights = funnel."""
    fig = plot.funnel(result)
    ax = fig.axes[0]
    bars = ax.patches
    transient = [s.name for s in result.scenario.journey.stages if not s.absorbing]
    assert len(bars) == len(transient)
    top_to_bottom = sorted(
        zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), key=lambda pair: -pair[0]
    )
    assert [label.get_text() for _, label in top_to_bottom] == transient
    heights = result.funnel(by=None).set_index("stage").loc[transient, "customers"]
    np.testing.assert_allclose(sorted(b.get_width() for b in bars), sorted(heights))
    assert "baseline" in ax.get_title()


def test_retention_curves_start_at_one_and_never_rise(result):
    """Every Kaplan-Meier curve starts at 1 and is non-increasing; one line per persona and
    overall, labelled by name."""
    fig = plot.retention(result)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 1 + len(result.scenario.personas)
    for line in lines:
        y = line.get_ydata()
        assert y[0] == 1 and np.all(np.diff(y) <= 1e-12)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert all(any(p.name in label for label in labels) for p in result.scenario.personas)


def test_plots_draw_on_the_axes_given(result):
    """Given an ax, a plot draws there and returns that ax's figure."""
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert plot.funnel(result, ax=left) is fig
    assert plot.retention(result, ax=right, by=None) is fig
    assert len(left.patches) > 0 and len(right.get_lines()) == 1
