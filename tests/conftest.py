"""Shared fixtures and hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import sim
from tests.validation import SCENARIOS

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def baseline() -> sim.Scenario:
    """The bundled e-commerce baseline scenario."""
    return sim.load_scenario(SCENARIOS / "baseline.toml")


@pytest.fixture
def subscription() -> sim.Scenario:
    """The bundled subscription scenario (channel arrivals)."""
    return sim.load_scenario(SCENARIOS / "subscription.toml")


@pytest.fixture
def write_toml(tmp_path: Path):
    """Write TOML text to a file in a temporary folder and return its path."""

    def write(text: str, name: str = "scenario.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
