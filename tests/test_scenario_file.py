"""Scenario files: round trips, and a clear message for every kind of bad input."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.io.scenario_toml import scenario_from_dict
from sim.run.provenance import scenario_digest
from tests.strategies import scenarios
from tests.validation import SCENARIOS

GOOD = """
[scenario]
name = "shop"
horizon_days = 90

[acquisition]
cohort = 100

[[stage]]
name = "awareness"
dwell = "exponential(mean=3)"
next = { intent = 0.5, lost = 0.5 }

[[stage]]
name = "intent"
dwell = "gamma(shape=2, mean=4)"
next = { purchase = 0.6, lost = 0.4 }

[[stage]]
name = "purchase"
purchase = true
next = { lost = 1.0 }

[[stage]]
name = "lost"
absorbing = true

[[persona]]
name = "thrifty"
share = 0.6
attributes = { price_sensitivity = 0.8 }
order_value = "lognormal(mean=40, sigma=0.5)"

[[persona]]
name = "loyal"
share = 0.4
attributes = { price_sensitivity = 0.1 }
order_value = "fixed(70)"

[[effect]]
stage = "intent"
to = "purchase"
attribute = "price_sensitivity"
coefficient = -0.8
"""


@given(scenarios())
def test_a_saved_scenario_loads_back_equal(scenario):
    """Object -> TOML -> object gives an equal scenario (so notebooks can save variants)."""
    import tomllib

    assert scenario_from_dict(tomllib.loads(sim.save_scenario(scenario))) == scenario


@pytest.mark.parametrize("name", ["baseline.toml", "subscription.toml"])
def test_bundled_scenarios_round_trip_through_files(name, tmp_path):
    """The shipped scenarios load, save and load back equal, with the same content hash."""
    scenario = sim.load_scenario(SCENARIOS / name)
    sim.save_scenario(scenario, tmp_path / name)
    again = sim.load_scenario(tmp_path / name)
    assert again == scenario and scenario_digest(again) == scenario_digest(scenario)


def test_a_good_file_loads(write_toml):
    """The documented fields load into the model objects they describe."""
    s = sim.load_scenario(write_toml(GOOD))
    assert s.journey.names == ("awareness", "intent", "purchase", "lost")
    assert s.journey.stage("purchase").purchase
    assert [p.name for p in s.personas] == ["thrifty", "loyal"]
    assert s.personas[1].order_value == sim.Fixed(70)
    assert s.acquisition == sim.Cohort(size=100) and s.horizon_days == 90


def _error(write_toml, text: str) -> str:
    path = write_toml(text)
    with pytest.raises(sim.ScenarioError) as info:
        sim.load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)), "the message names the file"
    return message


BAD = [
    # (what is wrong, edit of the good file, words the message must contain)
    (
        "probabilities do not sum to 1",
        ("intent = 0.5, lost = 0.5", "intent = 0.5, lost = 0.4"),
        ["stage 'awareness'", "'next'", "sum to 0.9", "off by +0.1"],
    ),
    (
        "unknown stage, with the closest name",
        ("intent = 0.5, lost", "intnet = 0.5, lost"),
        ["stage 'awareness'", "unknown stage 'intnet'", "did you mean 'intent'"],
    ),
    (
        "persona shares do not sum to 1",
        ("share = 0.4", "share = 0.3"),
        ["persona", "share", "sum to 0.9"],
    ),
    (
        "negative time",
        ('"exponential(mean=3)"', '"exponential(mean=-3)"'),
        ["stage 'awareness'", "'dwell'", "mean must be a positive number", "-3"],
    ),
    ("negative horizon", ("horizon_days = 90", "horizon_days = -5"), ["horizon_days", "-5"]),
    (
        "unknown distribution",
        ('"gamma(shape=2, mean=4)"', '"gamm(shape=2, mean=4)"'),
        ["stage 'intent'", "unknown distribution 'gamm'", "did you mean 'gamma'"],
    ),
    (
        "wrong type",
        ("cohort = 100", 'cohort = "many"'),
        ["acquisition", "'cohort' must be a whole number"],
    ),
    (
        "a typo in a field name",
        ("absorbing = true", "absorbng = true"),
        ["stage 'lost'", "unknown field 'absorbng'", "did you mean 'absorbing'"],
    ),
    (
        "a typo in an effect's field",
        ('attribute = "price', 'atribute = "price'),
        [
            "effect on 'intent' -> 'purchase'",
            "unknown field 'atribute'",
            "did you mean 'attribute'",
        ],
    ),
    (
        "an attribute a persona lacks",
        ('attribute = "price_sensitivity"', 'attribute = "price"'),
        ["effect on 'intent' -> 'purchase'", "persona 'thrifty' has no attribute 'price'"],
    ),
    ("not TOML", ("[acquisition]", "[acquisition"), ["not valid TOML", "line"]),
    ("missing name", ('name = "shop"\n', ""), ["scenario", "missing field 'name'"]),
]


@pytest.mark.parametrize("what,edit,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_message_naming_file_field_and_fix(write_toml, what, edit, words):
    """Each kind of bad input raises ScenarioError whose message says where and what."""
    old, new = edit
    assert old in GOOD
    message = _error(write_toml, GOOD.replace(old, new, 1))
    for w in words:
        assert w in message, f"{what}: {w!r} not in {message!r}"


def test_unreachable_stage_is_reported(write_toml):
    """A stage no transition leads to is named, with the fix."""
    text = GOOD + '\n[[stage]]\nname = "orphan"\nnext = { lost = 1.0 }\n'
    message = _error(write_toml, text)
    assert "stage 'orphan'" in message and "cannot be reached" in message


def test_stage_without_way_out_is_reported(write_toml):
    """A loop with no path to an absorbing end is named (customers would never finish)."""
    text = GOOD.replace("next = { lost = 1.0 }", "next = { purchase = 1.0 }")
    message = _error(write_toml, text)
    assert "stage 'purchase'" in message and "no path leads from it to an absorbing end" in message


def test_effect_on_missing_transition_is_reported(write_toml):
    """An effect on a transition the journey does not have names the stage and suggests."""
    message = _error(write_toml, GOOD.replace('to = "purchase"', 'to = "purchas"'))
    assert "'intent' has no transition to 'purchas'" in message
    assert "did you mean 'purchase'" in message


def test_negative_arrival_rate_is_reported(write_toml):
    """A channel with a negative rate is named with the field."""
    text = GOOD.replace("cohort = 100", "").replace(
        "[acquisition]\n", '[[acquisition.channel]]\nname = "ads"\nrate_per_day = -2\n'
    )
    message = _error(write_toml, text)
    assert "channel 'ads'" in message and "rate_per_day" in message and "-2" in message


def test_a_stage_beside_a_builtin_journey_must_be_one_of_its_stages(write_toml):
    """[[stage]] tables beside a built-in journey change its stages; a name it lacks is
    refused with the closest stage and the way to define one's own stages."""
    text = GOOD.replace("horizon_days = 90", 'journey = "five_stage"').replace(
        'name = "intent"', 'name = "intnet"'
    )
    message = _error(write_toml, text)
    assert "has no stage 'intnet'" in message and "did you mean 'intent'" in message
    assert "remove journey = ..." in message


def test_unknown_builtin_journey_suggests(write_toml):
    """An unknown built-in journey name suggests the closest one."""
    text = GOOD.split("[[stage]]")[0].replace("horizon_days = 90", 'journey = "five_stages"')
    text = text + GOOD[GOOD.index("[[persona]]") :]
    message = _error(write_toml, text)
    assert "did you mean 'five_stage'" in message


def test_missing_file_is_reported(tmp_path):
    """A path that does not exist gives a ScenarioError naming it."""
    with pytest.raises(sim.ScenarioError, match="file not found"):
        sim.load_scenario(tmp_path / "nope.toml")


def test_python_and_file_routes_build_the_same_object(write_toml):
    """The scenario built in Python equals the one loaded from the file."""
    built = sim.Scenario(
        name="shop",
        horizon_days=90,
        acquisition=sim.Cohort(size=100),
        journey=sim.Journey(
            stages=(
                sim.Stage(
                    name="awareness",
                    dwell=sim.Exponential(mean=3),
                    next={"intent": 0.5, "lost": 0.5},
                ),
                sim.Stage(
                    name="intent",
                    dwell=sim.Gamma(shape=2, mean=4),
                    next={"purchase": 0.6, "lost": 0.4},
                ),
                sim.Stage(name="purchase", purchase=True, next={"lost": 1.0}),
                sim.Stage(name="lost", absorbing=True),
            )
        ),
        personas=(
            sim.Persona(
                name="thrifty",
                share=0.6,
                attributes={"price_sensitivity": 0.8},
                order_value=sim.Lognormal(mean=40, sigma=0.5),
            ),
            sim.Persona(
                name="loyal",
                share=0.4,
                attributes={"price_sensitivity": 0.1},
                order_value=sim.Fixed(70),
            ),
        ),
        effects=(
            sim.Effect(
                stage="intent", to="purchase", attribute="price_sensitivity", coefficient=-0.8
            ),
        ),
    )
    assert sim.load_scenario(write_toml(GOOD)) == built


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["drop", "value", "duplicate", "rename"]),
        st.integers(0, 10_000),
        st.sampled_from(
            [
                "-1",
                "0",
                "1e400",
                '"text"',
                "true",
                "[]",
                "{}",
                '"fixed(-1)"',
                '"gamma(shape=0, mean=1)"',
                "{ a = 1 }",
                "nan",
                "inf",
                "[1, 2]",
                '""',
            ]
        ),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(text: str, mutations) -> str:
    lines = text.splitlines()
    for kind, where, token in mutations:
        i = where % len(lines)
        line = lines[i]
        if kind == "drop":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "value" and "=" in line and not line.startswith("["):
            lines[i] = line.split("=", 1)[0] + "= " + token
        elif kind == "rename" and "=" in line:
            lines[i] = "x" + line
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


WITH_INTERVENTIONS = (
    GOOD
    + """
[[intervention]]
name = "offer"
personas = ["thrifty"]
stages = ["intent"]
window_days = [0, 30]
reach = 0.5
effects = [
  { kind = "odds_ratio", stage = "intent", to = "purchase", ratio = 1.4 },
  { kind = "dwell_factor", stage = "intent", factor = 0.8 },
  { kind = "new_transition", stage = "awareness", to = "purchase", probability = 0.1 },
]
cost = { fixed = 10, per_reached = 0.5, per_conversion = 1 }
budget = 100

[[intervention]]
preset = "discount"
name = "sale"
depth = 0.2
elasticity = 2.0
reach = 0.3
"""
)


@settings(max_examples=300)
@given(st.sampled_from([GOOD, WITH_INTERVENTIONS]), MUTATIONS)
def test_any_damaged_file_loads_or_is_explained(tmp_path_factory, text, mutations):
    """Whatever is damaged in a scenario file, loading it gives a scenario or a ScenarioError
    naming the file; never another exception from deep inside."""
    path = tmp_path_factory.mktemp("fuzz") / "shop.toml"
    path.write_text(_mutate(text, mutations))
    try:
        sim.load_scenario(path)
    except sim.ScenarioError as err:
        assert str(err).startswith(str(path))


@given(scenarios(), st.one_of(st.dates(), st.datetimes()))
def test_a_start_date_survives_the_file_round_trip(scenario, day):
    """A scenario's start_date (a date or a date and time) is saved and loads back equal."""
    dated = scenario.replace(start_date=day)
    assert dated.start_date == day.isoformat()
    assert scenario_from_dict(tomllib.loads(sim.save_scenario(dated))) == dated


def test_a_toml_date_literal_sets_the_start_date(write_toml):
    """start_date = 2025-01-01 (a TOML date, not text) is read; a bad date names the field."""
    text = (SCENARIOS / "baseline.toml").read_text()
    text = text.replace("seed = 7", "seed = 7\nstart_date = 2025-01-01")
    assert sim.load_scenario(write_toml(text)).start_date == "2025-01-01"
    with pytest.raises(sim.ScenarioError, match="start_date"):
        sim.load_scenario(write_toml(text.replace("2025-01-01", '"first of May"')))
