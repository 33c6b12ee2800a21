"""``sim init``: a commented starter scenario a new user edits into their own."""

from __future__ import annotations

from pathlib import Path

from sim.errors import ScenarioError
from sim.io.atomic import write_text_atomic

#: The starter file; ``{name}`` is the scenario's name. Every line loads as written.
STARTER = """\
# A starter scenario: edit it into your own. Every field is described in
# docs/scenario-format.md. Times are in days, money in your own currency.
# Check it with `sim validate FILE`, run it with `sim run FILE`.

[scenario]
name = "{name}"                  # shown in tables, plots and comparisons
description = "An online shop: aware, consider, buy, and maybe buy again."
horizon_days = 365               # the run stops here; customers on their way are censored
seed = 1                         # same seed, same results (sim run --seed overrides it)
# journey = "five_stage"         # or use a built-in journey instead of the [[stage]] tables

[acquisition]
cohort = 5000                    # customers who enter on day 0
# For arrivals over time instead, remove `cohort` and add one table per channel:
# [[acquisition.channel]]
# name = "search"
# rate_per_day = 40              # expected new customers a day (Poisson)
# persona_mix = {{ bargain_hunter = 0.7, loyal = 0.3 }}

# Stages, in journey order; customers enter at the first. Each stage holds a customer for a
# dwell time, then sends them to one of its `next` stages with these probabilities (sum 1).
# Dwell laws: exponential(mean=3), gamma(shape=2, mean=5), lognormal(mean=4, sigma=0.5),
# weibull(shape=1.5, mean=10), fixed(2), empirical(1, 2, 4.5).
[[stage]]
name = "awareness"
dwell = "exponential(mean=3)"
next = {{ consideration = 0.6, lost = 0.4 }}

[[stage]]
name = "consideration"
dwell = "gamma(shape=2, mean=5)"
next = {{ purchase = 0.45, lost = 0.55 }}

[[stage]]
name = "purchase"
purchase = true                  # entering it is an order: a value is drawn from the persona
dwell = "fixed(0)"
next = {{ active = 1.0 }}

[[stage]]
name = "active"
dwell = "exponential(mean=60)"
next = {{ purchase = 0.4, churned = 0.6 }}   # buy again, or leave

[[stage]]
name = "lost"                    # left before buying
absorbing = true

[[stage]]
name = "churned"                 # left after buying
absorbing = true

# Personas: shares sum to 1. Attributes are numbers that effects below can use.
[[persona]]
name = "bargain_hunter"
share = 0.6
attributes = {{ price_sensitivity = 0.9 }}
order_value = "lognormal(mean=35, sigma=0.4)"
dwell_factors = {{ consideration = 1.5 }}    # takes 1.5 times as long to decide

[[persona]]
name = "loyal"
share = 0.4
attributes = {{ price_sensitivity = 0.2 }}
order_value = "lognormal(mean=60, sigma=0.3)"

# An effect moves a transition's log-odds by coefficient x (attribute - reference): the
# probabilities above hold for a customer whose attribute equals the reference.
[[effect]]
stage = "consideration"
to = "purchase"
attribute = "price_sensitivity"
coefficient = -1.0
reference = 0.5

# A what-if: uncomment to run a 10% discount for bargain hunters during the first 60 days.
# [[intervention]]
# preset = "discount"
# name = "spring_sale"
# depth = 0.10
# stage = "consideration"        # where the offer is made: odds of consideration -> purchase rise
# personas = ["bargain_hunter"]
# window_days = [0, 60]
# fixed = 2000                   # cost once per replication
# per_reached = 0.5              # cost per customer reached
"""


def starter_path(name: str | Path) -> Path:
    """The file ``sim init NAME`` writes: NAME itself when it ends in .toml, else NAME.toml."""
    path = Path(name)
    return path if path.suffix == ".toml" else path.with_name(path.name + ".toml")


def write_starter(name: str | Path) -> Path:
    """Write the commented starter scenario for ``name`` and return its path. Refuses to
    overwrite a file or to make folders (ScenarioError saying what to do)."""
    path = starter_path(name)
    if not path.stem.strip() or not str(name).strip():
        raise ScenarioError("a name is needed", field="NAME", fix="e.g. sim init my_shop")
    if path.exists():
        raise ScenarioError(
            "already exists", source=str(path), fix="choose another name, or remove the file"
        )
    if not path.parent.is_dir():
        raise ScenarioError(
            f"the folder '{path.parent}' does not exist",
            source=str(path),
            fix="create it first, or give a path in an existing folder",
        )
    text = STARTER.format(name=path.stem.replace("\\", "\\\\").replace('"', '\\"'))
    return write_text_atomic(path, text)
