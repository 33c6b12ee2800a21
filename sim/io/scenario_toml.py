"""Scenario files (TOML): load with precise errors, save so that the file loads back equal."""

from __future__ import annotations

import dataclasses
import datetime
import math
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from sim.errors import ScenarioError, suggest
from sim.io.atomic import write_text_atomic
from sim.model.acquisition import Arrivals, Channel, Cohort
from sim.model.builtin import BUILTIN_JOURNEYS, builtin_journey
from sim.model.intervention import EFFECT_KINDS, Cost, Intervention
from sim.model.journey import Journey, Stage
from sim.model.market import Market, NegativeWordOfMouth, Referrals, WordOfMouth
from sim.model.persona import Effect, Persona
from sim.model.presets import preset
from sim.model.resource import WEEKDAYS, Resource
from sim.model.satisfaction import Satisfaction
from sim.model.scenario import DEFAULT_PERSONA, Scenario

_SECTIONS = {
    "scenario": (
        "name",
        "description",
        "horizon_days",
        "seed",
        "journey",
        "entry",
        "extends",
        "start_date",
    ),
    "acquisition": ("cohort", "channel"),
    "stage": ("name", "dwell", "next", "purchase", "absorbing", "uses", "patience", "abandon_to"),
    "persona": ("name", "share", "attributes", "order_value", "dwell_factors", "patience_factor"),
    "effect": ("stage", "to", "attribute", "coefficient", "reference"),
    "channel": ("name", "rate_per_day", "persona_mix"),
    "intervention": (
        "name",
        "description",
        "personas",
        "stages",
        "channels",
        "window_days",
        "reach",
        "lasting",
        "effects",
        "cost",
        "budget",
        "preset",
    ),
    "cost": (
        "fixed",
        "per_reached",
        "per_conversion",
        "per_referral",
        "per_unit_day",
        "per_credit",
    ),
    "market": ("size", "external_rate"),
    "word_of_mouth": ("stages", "rate", "negative"),
    "word_of_mouth.negative": (
        "rate",
        "threshold",
        "odds_ratio",
        "lasting",
        "talking_days",
        "stages",
    ),
    "resource": ("name", "capacity", "schedule", "changes", "discipline", "priority"),
    "referrals": ("stages", "rate", "conversion", "persona_factors"),
    "satisfaction": (
        "start",
        "persona_start",
        "per_day_waited",
        "abandoned",
        "effects",
        "outcomes",
        "referral_rate_per_point",
    ),
}
_TOP = (
    "scenario",
    "acquisition",
    "stage",
    "persona",
    "effect",
    "intervention",
    "market",
    "word_of_mouth",
    "resource",
    "referrals",
    "satisfaction",
)

_TYPE_NAMES = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


def _label(kind: str, table: dict[str, Any], unnamed: str = "") -> str:
    """How errors name a table: by its name when it has one."""
    name = table.get("name")
    return f"{kind} '{name}'" if isinstance(name, str) else (unnamed or kind)


def _check_keys(table: dict[str, Any], section: str, where: str) -> None:
    allowed = _SECTIONS[section]
    for key in table:
        if key not in allowed:
            raise ScenarioError(f"unknown field '{key}'", field=where, fix=suggest(key, allowed))


def _get(
    table: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = ...,
) -> Any:
    if key not in table:
        if default is ...:
            raise ScenarioError(f"missing field '{key}'", field=where, fix=f"add {key} = ...")
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise ScenarioError(
            f"field '{key}' must be {expected}, got {value!r}",
            field=where,
            fix=f"write {key} as {expected}",
        )
    return value


def _tables(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScenarioError(
            f"'{key}' must be a list of tables", field=key, fix=f"write each one as [[{key}]]"
        )
    return value


def _decode(raw: bytes, path: Path) -> str:
    """The file's text: UTF-8, with or without a byte-order mark (editors on Windows add one)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        start = err.start
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise ScenarioError(
            f"not UTF-8 text: byte 0x{raw[start]:02x} at line {line}, column {column}",
            source=str(path),
            fix="save the file as UTF-8 (or remove the character)",
        ) from None


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's data with ``extends`` resolved: the base file's content, then this file's
    [scenario] fields over it, its [[intervention]] tables after the base's, and any other
    section it gives in place of the base's."""
    try:
        text = _decode(path.read_bytes(), path)
    except FileNotFoundError:
        raise ScenarioError(
            "file not found", source=str(path), fix="check the path (scenarios live in scenarios/)"
        ) from None
    except OSError as err:
        raise ScenarioError(f"cannot read the file: {err.strerror}", source=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(
            f"not valid TOML: {err}", source=str(path), fix="check the syntax at that line"
        ) from None
    head = data.get("scenario")
    if not isinstance(head, dict) or "extends" not in head:
        return data
    base_name = head["extends"]
    where = "scenario, field 'extends'"
    if not isinstance(base_name, str):
        raise ScenarioError(
            f"extends must be a file name, got {base_name!r}", field=where, source=str(path)
        )
    base_path = (path.parent / base_name).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ScenarioError(
            f"extends '{base_name}' leads back to this file",
            source=str(path),
            field=where,
            fix="remove the cycle",
        )
    if not base_path.is_file():
        raise ScenarioError(
            f"extends '{base_name}', which is not found",
            source=str(path),
            field=where,
            fix="give a path relative to this file",
        )
    base = _read(base_path, (*seen, path.resolve()))
    merged = dict(base)
    for key, value in data.items():
        if key == "scenario":
            own = {k: v for k, v in value.items() if k != "extends"}
            merged["scenario"] = {**base.get("scenario", {}), **own}
        elif key == "intervention" and isinstance(value, list):
            merged["intervention"] = [*base.get("intervention", []), *value]
        else:
            merged[key] = value
    # a variant that switches between a built-in journey and its own stages drops the other
    if "journey" in head and "stage" not in data:
        merged.pop("stage", None)
    if "stage" in data and "journey" not in head:
        merged["scenario"].pop("journey", None)
    return merged


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (resolving ``extends``). Errors are :class:`ScenarioError` naming
    the file and field."""
    path = Path(path)
    data = _read(path)
    try:
        return scenario_from_dict(data)
    except ScenarioError as err:
        raise err.located(str(path)) from None


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Build a scenario from data in the scenario-file layout."""
    for key in data:
        if key not in _TOP:
            raise ScenarioError(f"unknown section '{key}'", field=key, fix=suggest(key, _TOP))
    head = data.get("scenario")
    if not isinstance(head, dict):
        raise ScenarioError(
            "missing [scenario] table",
            field="scenario",
            fix='start the file with [scenario] and name = "..."',
        )
    _check_keys(head, "scenario", "scenario")
    where = "scenario"
    name = _get(head, "name", str, where)
    journey = _journey(head, _tables(data, "stage"))
    personas = tuple(_persona(t) for t in _tables(data, "persona")) or (DEFAULT_PERSONA,)
    effects = tuple(_effect(t) for t in _tables(data, "effect"))
    interventions = tuple(_intervention(t) for t in _tables(data, "intervention"))
    market = _market(data.get("market"))
    acquisition = data.get("acquisition")
    if acquisition is None and market is not None:
        # customers may come from the market alone
        acquisition = {"cohort": 0}
    return Scenario(
        name=name,
        description=_get(head, "description", str, where, ""),
        horizon_days=_get(head, "horizon_days", float, where, 365.0),
        seed=_get(head, "seed", int, where, 0),
        journey=journey,
        personas=personas,
        effects=effects,
        interventions=interventions,
        acquisition=_acquisition(acquisition),
        start_date=_start_date(head),
        market=market,
        word_of_mouth=_word_of_mouth(data.get("word_of_mouth")),
        resources=tuple(_resource(t) for t in _tables(data, "resource")),
        referrals=_referrals(data.get("referrals")),
        satisfaction=_satisfaction(data.get("satisfaction")),
    )


def _start_date(head: dict[str, Any]) -> str | None:
    """``start_date``: a TOML date (2025-01-01), date-time, or ISO 8601 text."""
    value = head.get("start_date")
    if value is None or isinstance(value, str | datetime.date):
        return value
    raise ScenarioError(
        f"field 'start_date' must be a date, got {value!r}",
        field="scenario",
        fix="write start_date = 2025-01-01",
    )


def _satisfaction(t: Any) -> Satisfaction | None:
    t = _section(t, "satisfaction")
    if t is None:
        return None
    where = "satisfaction"
    return Satisfaction(
        start=_get(t, "start", float, where, 0.0),
        persona_start=_get(t, "persona_start", dict, where, {}),
        per_day_waited=_get(t, "per_day_waited", float, where, 0.0),
        abandoned=_get(t, "abandoned", float, where, 0.0),
        effects=tuple(_get(t, "effects", list, where, [])),
        outcomes=_get(t, "outcomes", dict, where, {}),
        referral_rate_per_point=_get(t, "referral_rate_per_point", float, where, 0.0),
    )


def _referrals(t: Any) -> Referrals | None:
    t = _section(t, "referrals")
    if t is None:
        return None
    return Referrals(
        stages=_names(t, "stages", "referrals"),
        rate=_get(t, "rate", float, "referrals"),
        conversion=_get(t, "conversion", float, "referrals", 1.0),
        persona_factors=_get(t, "persona_factors", dict, "referrals", {}),
    )


def _resource(t: dict[str, Any]) -> Resource:
    label = _label("resource", t)
    _check_keys(t, "resource", label)
    if "capacity" not in t and "schedule" not in t:
        raise ScenarioError(
            "missing field 'capacity'",
            field=label,
            fix="add capacity = 5, or a weekly schedule = { mon = 5, ..., sun = 0 }",
        )
    return Resource(
        name=_get(t, "name", str, label),
        capacity=_get(t, "capacity", int, label, 0),
        schedule=_get(t, "schedule", (dict, list), label, ()),
        changes=tuple(_get(t, "changes", list, label, [])),
        discipline=_get(t, "discipline", str, label, "fifo"),
        priority=_get(t, "priority", dict, label, {}),
    )


def _section(t: Any, key: str) -> dict[str, Any] | None:
    if t is None:
        return None
    if not isinstance(t, dict):
        raise ScenarioError(
            f"'{key}' must be a table", field=key, fix=f"write it as [{key}] with its fields"
        )
    _check_keys(t, key, key)
    return t


def _market(t: Any) -> Market | None:
    t = _section(t, "market")
    if t is None:
        return None
    return Market(
        size=_get(t, "size", int, "market"),
        external_rate=_get(t, "external_rate", float, "market", 0.0),
    )


def _word_of_mouth(t: Any) -> WordOfMouth | None:
    t = _section(t, "word_of_mouth")
    if t is None:
        return None
    negative = _negative(t.get("negative"))
    quiet = negative is not None  # negative word of mouth alone: no stages, no rate
    return WordOfMouth(
        stages=_names(t, "stages", "word_of_mouth"),
        rate=_get(t, "rate", float, "word_of_mouth", 0.0 if quiet else ...),
        negative=negative,
    )


def _negative(t: Any) -> NegativeWordOfMouth | None:
    key = "word_of_mouth.negative"
    t = _section(t, key)
    if t is None:
        return None
    return NegativeWordOfMouth(
        rate=_get(t, "rate", float, key),
        threshold=_get(t, "threshold", float, key),
        odds_ratio=_get(t, "odds_ratio", float, key),
        lasting=_get(t, "lasting", float, key),
        talking_days=_get(t, "talking_days", float, key, None),
        stages=_names(t, "stages", key),
    )


def _journey(head: dict[str, Any], stages: list[dict[str, Any]]) -> Journey:
    builtin = _get(head, "journey", str, "scenario", "")
    entry = _get(head, "entry", str, "scenario", "")
    if builtin:
        journey = builtin_journey(builtin, field="scenario, field 'journey'")
        if stages:
            journey = _override_stages(journey, stages)
        return Journey(stages=journey.stages, entry=entry or journey.entry, name=journey.name)
    if not stages:
        raise ScenarioError(
            "no journey: neither journey = ... nor [[stage]] tables",
            field="scenario, field 'journey'",
            fix=f"use a built-in journey ({', '.join(BUILTIN_JOURNEYS)}) or add [[stage]] tables",
        )
    return Journey(stages=tuple(_stage(i, t) for i, t in enumerate(stages)), entry=entry)


def _override_stages(journey: Journey, tables: list[dict[str, Any]]) -> Journey:
    """A built-in journey with some stages changed: each [[stage]] table names one of its
    stages and gives the fields that change (``next``, ``dwell``, ``purchase``, ``absorbing``);
    the others keep the built-in's values."""
    stages = {st.name: st for st in journey.stages}
    for i, t in enumerate(tables):
        label = _label("stage", t, f"stage #{i + 1}")
        _check_keys(t, "stage", label)
        name = _get(t, "name", str, label)
        if name not in stages:
            raise ScenarioError(
                f"the built-in journey '{journey.name}' has no stage '{name}'",
                field=f"{label}, field 'name'",
                fix=f"{suggest(name, journey.names)} A [[stage]] beside journey = ... changes "
                "a built-in stage; to define your own stages, remove journey = ...",
            )
        old = stages[name]
        absorbing = _get(t, "absorbing", bool, label, old.absorbing if "next" not in t else False)
        ends_here = absorbing and not old.absorbing
        stages[name] = Stage(
            name=name,
            dwell=_get(t, "dwell", (str, float), label, 0.0 if ends_here else old.dwell),
            next=_get(t, "next", dict, label, {} if absorbing else old.next),
            purchase=_get(t, "purchase", bool, label, old.purchase),
            absorbing=absorbing,
        )
    return Journey(stages=tuple(stages.values()), entry=journey.entry, name=journey.name)


def _stage(i: int, t: dict[str, Any]) -> Stage:
    label = _label("stage", t, f"stage #{i + 1}")
    _check_keys(t, "stage", label)
    return Stage(
        name=_get(t, "name", str, label),
        dwell=_get(t, "dwell", (str, float), label, 0.0),
        next=_get(t, "next", dict, label, {}),
        purchase=_get(t, "purchase", bool, label, False),
        absorbing=_get(t, "absorbing", bool, label, False),
        uses=_get(t, "uses", str, label, ""),
        patience=_get(t, "patience", (str, float), label, None),
        abandon_to=_get(t, "abandon_to", str, label, ""),
    )


def _persona(t: dict[str, Any]) -> Persona:
    label = _label("persona", t)
    _check_keys(t, "persona", label)
    return Persona(
        name=_get(t, "name", str, label),
        share=_get(t, "share", float, label),
        attributes=_get(t, "attributes", dict, label, {}),
        order_value=_get(t, "order_value", (str, float), label, 0.0),
        dwell_factors=_get(t, "dwell_factors", dict, label, {}),
        patience_factor=_get(t, "patience_factor", float, label, 1.0),
    )


def _effect(t: dict[str, Any]) -> Effect:
    label = f"effect on '{t.get('stage', '?')}' -> '{t.get('to', '?')}'"
    _check_keys(t, "effect", label)
    return Effect(
        stage=_get(t, "stage", str, label),
        to=_get(t, "to", str, label),
        attribute=_get(t, "attribute", str, label),
        coefficient=_get(t, "coefficient", float, label),
        reference=_get(t, "reference", float, label, 0.0),
    )


def _names(t: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = _get(t, key, (list, str), where, [])
    value = [value] if isinstance(value, str) else value
    if not all(isinstance(v, str) for v in value):
        raise ScenarioError(
            f"'{key}' must be a list of names, got {value!r}",
            field=where,
            fix=f'e.g. {key} = ["a", "b"]',
        )
    return tuple(value)


def _intervention_effect(e: Any, where: str) -> Any:
    if not isinstance(e, dict) or "kind" not in e:
        raise ScenarioError(
            f"each effect needs a kind, got {e!r}",
            field=f"{where}, field 'effects'",
            fix='e.g. { kind = "odds_ratio", stage = "intent", to = "purchase", ratio = 1.4 }',
        )
    kind = e["kind"]
    if kind not in EFFECT_KINDS:
        raise ScenarioError(
            f"unknown effect kind '{kind}'",
            field=f"{where}, field 'effects'",
            fix=suggest(str(kind), EFFECT_KINDS),
        )
    cls = EFFECT_KINDS[kind]
    allowed = [f.name for f in dataclasses.fields(cls)]
    label = f"{where}, effect {kind}"
    for key in e:
        if key != "kind" and key not in allowed:
            raise ScenarioError(f"unknown field '{key}'", field=label, fix=suggest(key, allowed))
    for key in (f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING):
        if key not in e:
            raise ScenarioError(
                f"missing field '{key}'", field=label, fix=f"{kind} takes {', '.join(allowed)}"
            )
    return cls(**{k: v for k, v in e.items() if k != "kind"})


def _intervention(t: dict[str, Any]) -> Intervention:
    label = _label("intervention", t)
    cost = _get(t, "cost", dict, label, {})
    _check_keys(cost, "cost", f"{label}, field 'cost'")
    window = tuple(_get(t, "window_days", list, label, [0.0, math.inf]))
    if "preset" in t:
        fields = {k: v for k, v in t.items() if k not in ("cost", "window_days", "preset")}
        fields.update(cost)
        if "window_days" in t:
            fields["window_days"] = window
        for key in ("personas", "stages", "channels"):
            if key in fields:
                fields[key] = _names(t, key, label)
        try:
            return preset(str(t["preset"]), **fields)
        except ScenarioError as err:
            raise ScenarioError(err.problem, field=err.field or label, fix=err.fix) from None
    _check_keys(t, "intervention", label)
    return Intervention(
        name=_get(t, "name", str, label),
        description=_get(t, "description", str, label, ""),
        personas=_names(t, "personas", label),
        stages=_names(t, "stages", label),
        channels=_names(t, "channels", label),
        window_days=window,
        reach=_get(t, "reach", float, label, 1.0),
        lasting=_get(t, "lasting", bool, label, False),
        effects=tuple(_intervention_effect(e, label) for e in _get(t, "effects", list, label)),
        cost=Cost(**cost),
        budget=_get(t, "budget", float, label, None),
    )


def _acquisition(t: Any) -> Cohort | Arrivals:
    if not isinstance(t, dict):
        raise ScenarioError(
            "missing [acquisition] table",
            field="acquisition",
            fix="add [acquisition] with cohort = 10000, or [[acquisition.channel]] tables",
        )
    _check_keys(t, "acquisition", "acquisition")
    if ("cohort" in t) == ("channel" in t):
        raise ScenarioError(
            "give either a cohort or channels",
            field="acquisition",
            fix="write cohort = 10000, or [[acquisition.channel]] tables with name and "
            "rate_per_day",
        )
    if "cohort" in t:
        return Cohort(size=_get(t, "cohort", int, "acquisition"))
    channels = []
    for c in _tables(t, "channel"):
        label = _label("channel", c)
        _check_keys(c, "channel", label)
        channels.append(
            Channel(
                name=_get(c, "name", str, label),
                rate_per_day=_get(c, "rate_per_day", float, label),
                persona_mix=_get(c, "persona_mix", dict, label, {}),
            )
        )
    return Arrivals(channels=tuple(channels))


# -- writing ------------------------------------------------------------------------------


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """The scenario as data in the file layout (built-in journeys by name)."""
    head: dict[str, Any] = {"name": s.name}
    if s.description:
        head["description"] = s.description
    head["horizon_days"] = s.horizon_days
    head["seed"] = s.seed
    if s.start_date is not None:
        head["start_date"] = s.start_date
    data: dict[str, Any] = {"scenario": head}
    j = s.journey
    # a built-in journey (perhaps with some stages changed) is saved by name, with a
    # [[stage]] table for each changed stage, so that it loads back equal
    builtin = builtin_journey(j.name) if j.name in BUILTIN_JOURNEYS else None
    is_builtin = builtin is not None and j.names == builtin.names
    if is_builtin:
        head["journey"] = j.name
    if j.entry != j.stages[0].name:
        head["entry"] = j.entry
    if isinstance(s.acquisition, Cohort):
        data["acquisition"] = {"cohort": s.acquisition.size}
    else:
        data["acquisition"] = {
            "channel": [
                {
                    "name": c.name,
                    "rate_per_day": c.rate_per_day,
                    **({"persona_mix": dict(c.persona_mix)} if c.persona_mix else {}),
                }
                for c in s.acquisition.channels
            ]
        }
    changed = [st for st in j.stages if not is_builtin or st != builtin.stage(st.name)]
    if changed:
        stages = []
        for st in changed:
            row: dict[str, Any] = {"name": st.name}
            if st.absorbing:
                row["absorbing"] = True
            else:
                row["dwell"] = st.dwell.spec()
                if st.purchase or (is_builtin and builtin.stage(st.name).purchase):
                    row["purchase"] = st.purchase
                row["next"] = dict(st.next)
            if st.uses:
                row["uses"] = st.uses
            if st.patience is not None:
                row["patience"] = st.patience.spec()
                row["abandon_to"] = st.abandon_to
            stages.append(row)
        data["stage"] = stages
    if s.personas != (DEFAULT_PERSONA,):
        data["persona"] = [
            {
                "name": p.name,
                "share": p.share,
                "attributes": dict(p.attributes),
                "order_value": p.order_value.spec(),
                **({"dwell_factors": dict(p.dwell_factors)} if p.dwell_factors else {}),
                **({"patience_factor": p.patience_factor} if p.patience_factor != 1 else {}),
            }
            for p in s.personas
        ]
    if s.interventions:
        data["intervention"] = [_intervention_to_dict(iv) for iv in s.interventions]
    if s.effects:
        data["effect"] = [
            {
                "stage": e.stage,
                "to": e.to,
                "attribute": e.attribute,
                "coefficient": e.coefficient,
                **({"reference": e.reference} if e.reference else {}),
            }
            for e in s.effects
        ]
    if s.referrals is not None:
        ref = s.referrals
        data["referrals"] = {"stages": list(ref.stages), "rate": ref.rate}
        if ref.conversion != 1.0:
            data["referrals"]["conversion"] = ref.conversion
        if ref.persona_factors:
            data["referrals"]["persona_factors"] = dict(ref.persona_factors)
    if s.satisfaction is not None:
        sat = s.satisfaction
        data["satisfaction"] = {
            "start": sat.start,
            "per_day_waited": sat.per_day_waited,
            "abandoned": sat.abandoned,
            "effects": [dataclasses.asdict(e) for e in sat.effects],
        }
        if sat.referral_rate_per_point:
            data["satisfaction"]["referral_rate_per_point"] = sat.referral_rate_per_point
        if sat.persona_start:
            data["satisfaction"]["persona_start"] = dict(sat.persona_start)
        if sat.outcomes:
            data["satisfaction"]["outcomes"] = {
                stage: {o.name: {"share": o.share, "satisfaction": o.satisfaction} for o in os}
                for stage, os in sat.outcomes
            }
    if s.resources:
        data["resource"] = [_resource_to_dict(r) for r in s.resources]
    if s.market is not None:
        data["market"] = {"size": s.market.size, "external_rate": s.market.external_rate}
    if s.word_of_mouth is not None:
        data["word_of_mouth"] = {
            "stages": list(s.word_of_mouth.stages),
            "rate": s.word_of_mouth.rate,
        }
        neg = s.word_of_mouth.negative
        if neg is not None:
            data["word_of_mouth"]["negative"] = {
                "rate": neg.rate,
                "threshold": neg.threshold,
                "odds_ratio": neg.odds_ratio,
                "lasting": neg.lasting,
                **({"talking_days": neg.talking_days} if neg.talking_days is not None else {}),
                **({"stages": list(neg.stages)} if neg.stages else {}),
            }
    return data


def _resource_to_dict(r: Resource) -> dict[str, Any]:
    def units(capacity: int, schedule: tuple[int, ...]) -> dict[str, Any]:
        if schedule:
            return {"schedule": dict(zip(WEEKDAYS, schedule, strict=True))}
        return {"capacity": capacity}

    row: dict[str, Any] = {"name": r.name, **units(r.capacity, r.schedule)}
    if r.changes:
        row["changes"] = [{"day": c.day, **units(c.capacity, c.schedule)} for c in r.changes]
    if r.discipline != "fifo":
        row["discipline"] = r.discipline
    if r.priority:
        row["priority"] = dict(r.priority)
    return row


def _intervention_to_dict(iv: Intervention) -> dict[str, Any]:
    row: dict[str, Any] = {"name": iv.name}
    if iv.description:
        row["description"] = iv.description
    for key in ("personas", "stages", "channels"):
        if getattr(iv, key):
            row[key] = list(getattr(iv, key))
    if iv.window_days != (0.0, math.inf):
        row["window_days"] = list(iv.window_days)
    if iv.reach != 1.0:
        row["reach"] = iv.reach
    if iv.lasting:
        row["lasting"] = True
    row["effects"] = [
        {"kind": e.kind, **{f.name: getattr(e, f.name) for f in dataclasses.fields(e)}}
        for e in iv.effects
    ]
    cost = {k: v for k, v in dataclasses.asdict(iv.cost).items() if v}
    if cost:
        row["cost"] = cost
    if iv.budget is not None:
        row["budget"] = iv.budget
    return row


def save_scenario(s: Scenario, path: str | Path | None = None) -> str:
    """TOML text of the scenario; written atomically to ``path`` when given (its folder must
    exist; a ScenarioError says so otherwise)."""
    text = tomli_w.dumps(scenario_to_dict(s))
    if path is not None:
        path = Path(path)
        # the folder must exist: directories a user did not ask for are not made
        if not path.parent.is_dir():
            raise ScenarioError(
                f"the folder '{path.parent}' does not exist",
                source=str(path),
                fix="create the folder first, or save somewhere that exists",
            )
        if path.is_dir():
            raise ScenarioError(
                "is a folder, not a file", source=str(path), fix="give a file name ending in .toml"
            )
        try:
            write_text_atomic(path, text)
        except OSError as err:
            raise ScenarioError(
                f"cannot write the file: {err.strerror or err}",
                source=str(path),
                fix="choose a folder you can write to",
            ) from None
    return text
