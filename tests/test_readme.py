"""The README's example runs as written, and its error example is what users see."""

from __future__ import annotations

import re

import pytest

import sim
from tests.validation import SCENARIOS

README = SCENARIOS.parent / "README.md"


def test_the_five_line_example_runs(monkeypatch, capsys):
    """The Python block under 'Five lines of Python' runs from the repository root and prints
    the funnel and the exact summary."""
    text = README.read_text()
    block = re.search(r"## Five lines of Python\s+```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) == 5
    monkeypatch.chdir(README.parent)
    exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "awareness" in out and "casual_browser" in out and "brand_loyal" in out


def test_the_documented_error_message_is_real(tmp_path):
    """The error shown in the README is the message a misspelt stage produces."""
    text = (
        (SCENARIOS / "baseline.toml")
        .read_text()
        .replace("consideration = 0.55", "considration = 0.55")
    )
    path = tmp_path / "shop.toml"
    path.write_text(text)
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    shown = re.search(r"error: scenarios/shop.toml: (.*)", README.read_text()).group(1)
    assert str(info.value) == f"{path}: {shown}"


def test_the_comparison_example_runs(monkeypatch):
    """The 'What if?' block runs as written (with 3 replications instead of 30) and its
    discount raises conversion."""
    text = README.read_text()
    block = re.search(r"## What if\? Comparing scenarios\s+```python\n(.*?)```", text, re.S)
    code = block.group(1).replace("replications=30", "replications=3")
    monkeypatch.chdir(README.parent)
    names: dict = {"sim": sim}
    exec(compile(code, "README.md", "exec"), names)
    summary = names["res"].summary(metrics=["conversion"]).set_index("scenario")
    assert summary.loc["discount", "diff_vs_baseline"] > 0
    assert set(names["res"].roi().columns) >= {"cost", "roi", "incremental_profit"}


def test_the_bass_example_runs(monkeypatch, capsys):
    """The worked Bass example in 'Customers who affect each other' runs as written, its
    simulated curve ends near Bass's 91% after a year, and the mean-field curve is labelled
    exact."""
    text = README.read_text()
    block = re.search(r"## Customers who affect each other.*?```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(README.parent)
    names: dict = {"sim": sim}
    exec(compile(block.group(1), "README.md", "exec"), names)
    curve = names["curve"]
    assert abs(curve["adopted"].iloc[-1] / 2000 - 0.91) < 0.03
    assert "exact" in capsys.readouterr().out
