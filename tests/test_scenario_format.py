"""The scenario-format reference (docs/scenario-format.md) and what a new user meets first:
every field documented, the examples load, the built-in journeys' numbers are the code's,
built-in stages can be changed by name, the README's commands work when copied, and
``sim.plot`` is there after ``import sim`` without slowing it."""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import subprocess
import sys
import tomllib

import pandas as pd
import pytest

import sim
from sim.io.scenario_toml import _SECTIONS
from sim.model.builtin import BUILTIN_JOURNEYS
from sim.model.intervention import EFFECT_KINDS
from sim.model.presets import PRESETS
from tests.validation import SCENARIOS

ROOT = SCENARIOS.parent
FORMAT = ROOT / "docs" / "scenario-format.md"
README = ROOT / "README.md"


def _toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", FORMAT.read_text(encoding="utf-8"), re.S)


def test_every_field_of_the_format_is_documented():
    """Each field the loader accepts, each effect kind with its fields and each preset with
    its parameters appears in the reference page."""
    text = FORMAT.read_text(encoding="utf-8")
    missing = [
        f"{s}.{f}" for s, fields in _SECTIONS.items() for f in fields if f"`{f}`" not in text
    ]
    for kind, cls in EFFECT_KINDS.items():
        missing += [
            f"{kind}.{f.name}" for f in dataclasses.fields(cls) if f"`{f.name}`" not in text
        ]
        missing += [] if f"`{kind}`" in text else [kind]
    for name, make in PRESETS.items():
        params = [
            p
            for p, v in inspect.signature(make).parameters.items()
            if v.kind is inspect.Parameter.KEYWORD_ONLY and p != "name"
        ]
        missing += [] if f"`{name}`" in text else [name]
        missing += [f"{name}.{p}" for p in params if f"`{p}`" not in text]
    assert missing == []


def test_the_complete_example_uses_every_field_and_runs(tmp_path):
    """The first example holds every field of every section (but the alternatives `cohort`,
    `journey` and `extends`, shown apart), loads and runs."""
    block = _toml_blocks()[0]
    data = tomllib.loads(block)
    used = {
        "scenario": set(data["scenario"]),
        "acquisition": set(data["acquisition"]),
        "channel": {k for c in data["acquisition"]["channel"] for k in c},
        "stage": {k for t in data["stage"] for k in t},
        "persona": {k for t in data["persona"] for k in t},
        "effect": {k for t in data["effect"] for k in t},
        "intervention": {k for t in data["intervention"] for k in t},
        "cost": {k for t in data["intervention"] for k in t.get("cost", {})},
    }
    alternatives = {"cohort", "journey", "extends"}
    for section, fields in _SECTIONS.items():
        if section in INTERACTING:
            continue
        assert set(fields) - alternatives - INTERACTING_FIELDS <= used[section], section
    path = tmp_path / "shop.toml"
    path.write_text(block)
    scenario = sim.load_scenario(path)
    kinds = {e.kind for iv in scenario.interventions for e in iv.effects}
    assert kinds == set(EFFECT_KINDS) - INTERACTING_KINDS  # one of them through a preset


#: sections, fields and effect kinds of customers who interact, shown in their own example
INTERACTING = {"market", "word_of_mouth", "referrals", "resource", "satisfaction"}
INTERACTING |= {"word_of_mouth.negative"}
INTERACTING_FIELDS = {"uses", "patience", "abandon_to", "patience_factor"}
INTERACTING_FIELDS |= {"per_referral", "per_unit_day", "per_credit"}
INTERACTING_KINDS = {"referral_rate_factor", "capacity_change"}
INTERACTING_KINDS |= {"satisfaction_change", "outcome_odds_ratio"}


def test_the_interacting_example_uses_every_field_of_its_sections_and_runs(tmp_path):
    """The example of customers who affect each other holds every field of the market, word
    of mouth, referrals, resource and satisfaction sections and of queues; it loads and runs
    on the SimPy engine."""
    block = next(b for b in _toml_blocks() if "[market]" in b)
    data = tomllib.loads(block)
    for section in INTERACTING:
        table = data
        for part in section.split("."):  # a sub-table such as word_of_mouth.negative
            table = table[part]
        tables = table if isinstance(table, list) else [table]
        assert set(_SECTIONS[section]) <= {k for t in tables for k in t}, section
    used = {k for t in data["stage"] + data["persona"] for k in t}
    used |= {k for t in data["intervention"] for k in t.get("cost", {})}
    assert used >= INTERACTING_FIELDS
    path = tmp_path / "together.toml"
    path.write_text(block)
    scenario = sim.load_scenario(path)
    assert {e.kind for iv in scenario.interventions for e in iv.effects} == INTERACTING_KINDS
    result = sim.run(scenario, seed=1)
    assert result.provenance["engine"] == "simpy" and result.log.customers.sum() > 0
    result = sim.run(scenario.replace(horizon_days=60))
    assert result.log.customers.sum() > 0


def test_every_example_in_the_reference_loads(tmp_path):
    """The other examples (customers who interact, a changed built-in stage, a variant by
    extends) load as shown."""
    shutil.copy(SCENARIOS / "baseline.toml", tmp_path / "baseline.toml")
    names = []
    for i, block in enumerate(_toml_blocks()):
        path = tmp_path / f"example{i}.toml"
        path.write_text(block)
        names.append(sim.load_scenario(path).name)
    assert names == ["shop", "referrals_and_support", "better_checkout", "discount"]


@pytest.mark.parametrize("name", sorted(BUILTIN_JOURNEYS))
def test_the_built_in_journeys_tables_are_the_codes(name):
    """Each built-in stage's row in the reference shows the code's dwell law and
    probabilities."""
    text = FORMAT.read_text(encoding="utf-8")
    section = text[text.index(f"**`{name}`**") :]
    for st in BUILTIN_JOURNEYS[name]().stages:
        following = ", ".join(f"{t} {p:g}" for t, p in st.next) or "(end)"
        dwell = "—" if st.absorbing else f"`{st.dwell.spec()}`"
        row = f"| `{st.name}` | {dwell} | {following} | {'yes' if st.purchase else ''} |"
        assert row in section, row


def test_a_built_in_stage_can_be_changed_by_name(write_toml):
    """Beside journey = "five_stage", a [[stage]] naming 'intent' changes its next stages and
    keeps its dwell; the other stages stay the built-in's; saved and loaded back, it is
    equal."""
    path = write_toml(
        '[scenario]\nname = "x"\njourney = "five_stage"\n[acquisition]\ncohort = 100\n'
        '[[stage]]\nname = "intent"\nnext = { purchase = 0.7, lost = 0.3 }\n'
        '[[stage]]\nname = "post_purchase"\ndwell = "exponential(mean=30)"\n'
    )
    scenario = sim.load_scenario(path)
    builtin = sim.five_stage()
    intent = scenario.journey.stage("intent")
    assert intent.probabilities == {"purchase": 0.7, "lost": 0.3}
    assert intent.dwell == builtin.stage("intent").dwell
    assert scenario.journey.stage("post_purchase").dwell == sim.Exponential(mean=30)
    assert scenario.journey.stage("awareness") == builtin.stage("awareness")
    assert scenario.journey.name == "five_stage"
    assert sim.expected(scenario).summary.set_index("persona").loc["all", "conversion"] == (
        pytest.approx(0.55 * 0.5 * 0.7)
    )
    again = write_toml(sim.save_scenario(scenario), "again.toml")
    assert sim.load_scenario(again) == scenario


def test_a_variant_can_change_a_stage_of_its_bases_built_in_journey(write_toml, tmp_path):
    """A file extending the subscription (six_stage) with its own journey line changes one
    stage and keeps the rest."""
    shutil.copy(SCENARIOS / "subscription.toml", tmp_path / "subscription.toml")
    path = write_toml(
        '[scenario]\nname = "v"\nextends = "subscription.toml"\njourney = "six_stage"\n'
        '[[stage]]\nname = "renewal"\nnext = { retention = 0.9, churned = 0.1 }\n',
        "variant.toml",
    )
    scenario = sim.load_scenario(path)
    assert scenario.journey.stage("renewal").probabilities == {"retention": 0.9, "churned": 0.1}
    assert scenario.journey.stage("retention") == sim.six_stage().stage("retention")
    assert len(scenario.personas) == 2


def test_the_readme_links_the_reference_and_says_how_to_run_commands():
    """The README points to the format page, and says how to reach `sim` (activate .venv or
    call .venv/bin/sim) before its first command."""
    text = README.read_text(encoding="utf-8")
    assert "(docs/scenario-format.md)" in text
    first_command = text.index("\nsim ")
    before = text[:first_command]
    assert "source .venv/bin/activate" in before and ".venv/bin/sim" in before


def test_the_five_line_example_shows_conversion_in_a_terminal(monkeypatch, capsys):
    """Printed in an 80-column terminal, the README's example shows the conversion columns of
    the funnel and of the exact answers, not '...'."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Five lines of Python\s+```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(ROOT)
    block = block.replace("replications=10", "replications=2")
    with pd.option_context("display.width", 80, "display.max_columns", 0):
        exec(compile(block, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "..." not in out
    assert out.count("conversion") >= 2 and "step_conversion" in out
    assert "revenue" in out and "casual_browser" in out


def test_sim_plot_works_after_import_sim_without_loading_matplotlib():
    """`import sim` does not import matplotlib; `sim.plot.funnel` is there when asked for."""
    code = (
        "import sys, sim\n"
        "assert 'matplotlib' not in sys.modules, 'import sim loaded matplotlib'\n"
        "assert callable(sim.plot.funnel) and 'plot' in dir(sim)\n"
        "assert 'matplotlib' in sys.modules\n"
        "try:\n    sim.no_such_thing\nexcept AttributeError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "no attribute 'no_such_thing'" in proc.stdout
