"""Bad input from Python and in files: a ScenarioError that says where and what to pass,
never a traceback from deep inside."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import sim
from tests.validation import SCENARIOS

BASELINE = SCENARIOS / "baseline.toml"


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    """One Latin-1 byte in a comment gives a ScenarioError naming the file, line and column."""
    raw = BASELINE.read_bytes().split(b"\n")
    raw[2] = b"# caf\xe9 " + raw[2]
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"\n".join(raw))
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "not UTF-8" in message and "0xe9" in message
    assert "line 3, column 6" in message and "save the file as UTF-8" in message


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    """A file saved with a UTF-8 byte-order mark loads like the same file without one."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASELINE.read_bytes())
    assert sim.load_scenario(path) == sim.load_scenario(BASELINE)


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_scenario_name_is_refused(baseline, name):
    """A scenario needs a name to show in tables; empty text is refused with the field."""
    with pytest.raises(sim.ScenarioError, match=r"scenario, field 'name'.*non-empty"):
        baseline.replace(name=name)


def test_an_empty_name_in_a_file_is_refused(write_toml):
    """`name = ""` in a file gives the file and field."""
    path = write_toml(BASELINE.read_text().replace('name = "baseline"', 'name = ""', 1))
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    assert str(info.value).startswith(f"{path}: scenario, field 'name'")


@pytest.mark.parametrize("name", ["all", "All "])
def test_a_persona_called_all_is_refused(name):
    """'all' labels the overall row of every table, so a persona may not take it."""
    with pytest.raises(sim.ScenarioError, match="reserved for the overall row") as info:
        sim.Persona(name=name, share=1.0)
    assert "persona name" in str(info.value) and "customers" in str(info.value)


def test_a_persona_called_all_in_a_file_names_the_file(write_toml):
    """`name = "all"` in a [[persona]] gives the file, the field and another name to use."""
    text = BASELINE.read_text().replace('name = "bargain_hunter"', 'name = "all"', 1)
    path = write_toml(text)
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "persona name" in message
    assert "reserved for the overall row" in message


def test_an_empty_channel_name_is_refused():
    """A channel needs a name (streams and tables are keyed by it)."""
    with pytest.raises(sim.ScenarioError, match="channel name must be non-empty"):
        sim.Channel(name="", rate_per_day=3)


@pytest.mark.parametrize("days", [[-5], [float("nan")], ["30"], 30])
def test_retention_summary_refuses_impossible_days(days):
    """Negative, missing or non-numeric days are refused, naming the value."""
    result = sim.run(sim.load_scenario(BASELINE), customers=100)
    with pytest.raises(sim.ScenarioError, match="days"):
        result.retention_summary(days=days)


def test_retention_summary_still_takes_good_days():
    """The check lets real days through (the twin of the refusal above)."""
    result = sim.run(sim.load_scenario(BASELINE), customers=100)
    table = result.retention_summary(by=None, days=(0, 30))
    assert table["active_day_0"].iloc[0] == 1.0 and "active_day_30" in table


@pytest.mark.parametrize(
    "scenarios",
    [["a.toml", "b.toml"], "a.toml", [Path("a.toml"), Path("b.toml")], {"a": "a.toml", "b": 1}],
)
def test_compare_given_file_names_says_to_load_them(scenarios):
    """compare() with paths instead of scenarios says how to load them."""
    with pytest.raises(sim.ScenarioError, match=r"sim\.load_scenario"):
        sim.compare(scenarios, 2)


def test_with_interventions_given_a_name_says_what_to_pass(baseline):
    """with_interventions('x') says it takes Intervention objects, with an example."""
    with pytest.raises(sim.ScenarioError) as info:
        baseline.with_interventions("x")
    message = str(info.value)
    assert "Intervention objects" in message and "'x'" in message
    assert "sim.interventions.discount" in message


def test_saving_into_a_missing_folder_makes_no_folder(baseline, tmp_path):
    """save_scenario into a folder that does not exist makes nothing and says so."""
    target = tmp_path / "missing" / "x.toml"
    with pytest.raises(sim.ScenarioError) as info:
        sim.save_scenario(baseline, target)
    assert not target.parent.exists()
    assert "the folder" in str(info.value) and "does not exist" in str(info.value)
    assert str(info.value).startswith(str(target))


def test_saving_onto_a_folder_is_refused(baseline, tmp_path):
    """A folder given as the file to save is refused with the fix."""
    with pytest.raises(sim.ScenarioError, match="is a folder, not a file"):
        sim.save_scenario(baseline, tmp_path)


def test_unknown_metric_is_refused_before_running(baseline, monkeypatch):
    """compare(metric=...) with an unknown metric lists the known ones, whether replications
    are fixed or 'auto', and nothing is simulated."""
    compare_module = importlib.import_module("sim.run.compare")

    def boom(*args, **kwargs):
        raise AssertionError("simulated before checking the metric")

    monkeypatch.setattr(compare_module, "simulate_tasks", boom)
    pair = [baseline, baseline.replace(name="b")]
    for kwargs in ({}, {"target_half_width": 0.01}):
        reps = "auto" if kwargs else 3
        with pytest.raises(sim.ScenarioError) as info:
            sim.compare(pair, reps, metric="nope", **kwargs)
        assert "unknown metric 'nope'" in str(info.value)
        assert "revenue_per_customer" in str(info.value) and "reach_intent" in str(info.value)
    with pytest.raises(sim.ScenarioError, match="did you mean 'conversion'"):
        sim.compare(pair, 3, metric="conversoin")


def test_compare_refuses_impossible_days_before_running(baseline):
    """compare(days=[-5]) names the value instead of computing a nonsense retention."""
    with pytest.raises(sim.ScenarioError, match="days must be numbers of days >= 0, got -5"):
        sim.compare([baseline, baseline.replace(name="b")], 2, days=(-5,))
