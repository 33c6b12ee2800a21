"""Latent personas inside a fit: the EM mixture's segments labelled on the log, their
estimates carried into the scenario, and the table of what distinguishes them; and the
summary table of a fit."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from sim.calibrate.likelihood import DwellFit, distribution
from sim.calibrate.mixture import StageModel, fit_mixture
from sim.events import EventLog
from sim.model.distributions import Lognormal

#: a Calibrator (sim.calibrate.fit), named loosely here: fit.py imports this module
Calibrator = Any


def latent_personas(cal: Calibrator, log: EventLog, hidden: np.ndarray) -> EventLog:
    """The log with each customer labelled by their most likely latent segment."""
    if len(log.personas) > 1:
        cal._note("the data's segments are set aside: personas are found in the data")
    one = replace(log, persona=np.zeros(len(log), dtype=np.int16), personas=("all",)).validate()
    pooled = type(cal)(
        min_observations=cal.min_observations,
        families=cal.families,
        confidence=cal.confidence,
        hidden_ends=cal.hidden_ends,
    ).fit(one)
    v = pooled._visits
    models, durations = [], v.duration.copy()
    for s, sf in pooled._stage_fit.items():
        dwell: DwellFit | None = sf["fit"]
        here = v.stage == s
        targets = tuple(sorted({j for a, j in log.edges if a == s and not hidden[j]}))
        if dwell is not None:
            ended = here & ~v.censored
            positive = v.duration[ended & (v.duration > 0)]
            floor = float(positive.min()) / 2 if len(positive) else 1e-3
            durations[ended & (durations <= 0)] = floor
            durations[here & v.censored] = np.maximum(durations[here & v.censored], 1e-9)
        models.append(
            StageModel(
                stage=s,
                targets=targets,
                family=dwell.family if dwell is not None else None,
                shape=dwell.shape if dwell is not None else 1.0,
                cure=sf["silent_to"] is not None and dwell is not None,
            )
        )
    v = replace(v, duration=durations)
    key = log.customer_key()
    buy = log.purchase_mask[log.to_stage] & (log.value > 0)
    values = (key[buy], log.value[buy])
    total = int(np.sum(log.customers))
    choices = range(1, cal.max_personas + 1) if cal.personas == "auto" else [cal.personas]
    fits = {k: fit_mixture(v, models, total, len(log.stages), values, k, cal.seed) for k in choices}
    chosen = min(fits, key=lambda k: fits[k].bic) if cal.personas == "auto" else cal.personas
    cal.mixture_ = pd.DataFrame(
        [
            {
                "personas": k,
                "log_likelihood": m.log_likelihood,
                "parameters": m.parameters,
                "bic": m.bic,
                "iterations": m.iterations,
                "seconds_per_iteration": m.seconds_per_iteration,
                "chosen": k == chosen,
            }
            for k, m in fits.items()
        ]
    )
    best = fits[chosen]
    cal._mixture = best
    cal._mixture_shares = best.shares
    labels = best.labels[key].astype(np.int16)
    names = tuple(f"segment_{i + 1}" for i in range(best.k))
    return replace(log, persona=labels, personas=names).validate()


def use_mixture(cal: Calibrator, log: EventLog, personas: list[tuple[int, str, int]]) -> None:
    """Segments take the EM estimates (each customer weighed by how likely they belong),
    not those of the customers assigned to them, which would overstate the differences."""
    params = cal._mixture.params
    move, mean, never = params["move"], params["dwell_mean"], params["never"]
    t = cal.transitions_
    for p, pname, _ in personas:
        for s, sf in cal._stage_fit.items():
            targets = sorted({j for a, j in log.edges if a == s} - {sf["silent_to"]})
            leave = 1.0 - never[p, s] if sf["silent_to"] is not None else 1.0
            probs = {log.stages[j]: leave * move[p, s, j] for j in targets}
            if sf["silent_to"] is not None:
                probs[log.stages[sf["silent_to"]]] = never[p, s]
            probs = {k: v for k, v in probs.items() if v > 0}
            sf["persona"][p]["next"] = probs
            if sf["fit"] is not None:
                base = float(cal._mixture.shares @ mean[:, s])
                sf["dwell"] = distribution(sf["fit"].family, params["shape"][s], base)
                sf["persona"][p]["dwell_factor"] = mean[p, s] / base
            rows = (t["persona"] == pname) & (t["stage"] == log.stages[s])
            for i in np.flatnonzero(rows.to_numpy()):
                t.iloc[i, t.columns.get_loc("probability")] = probs.get(t["to"].iloc[i], 0.0)
            t.loc[rows, ["ci_low", "ci_high"]] = math.nan
            t.loc[rows, "method"] = "EM (latent personas)"
        if "value" in params:
            mu, sigma = params["value"][0][p], params["value"][1][p]
            cal._values[p] = Lognormal(mean=math.exp(mu + sigma**2 / 2), sigma=float(sigma))
    cal._note(
        "latent personas: their transition probabilities, dwell factors and order values "
        "are EM estimates without intervals; 'all' keeps its intervals"
    )


def persona_table(cal: Calibrator, personas: list[tuple[int, str, int]]) -> pd.DataFrame:
    """Per persona: share, customers, and what distinguishes them (transition
    probabilities, dwell factors, never-again shares, mean order value)."""
    rows = []
    t = cal.transitions_
    for p, name, count in personas:
        row: dict[str, Any] = {"persona": name, "customers": count}
        if cal.mixture_ is not None:
            row["share"] = float(cal._mixture_shares[p])
        mine = t[t["persona"] == (name if len(personas) > 1 else "all")]
        for r in mine.itertuples():
            row[f"{r.stage} -> {r.to}"] = r.probability
        for s, sf in cal._stage_fit.items():
            row[f"dwell factor {cal._log.stages[s]}"] = sf["persona"][p]["dwell_factor"]
        row["mean order value"] = cal._values[p].mean
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(cal: Calibrator) -> pd.DataFrame:
    parts = []
    t = cal.transitions_
    if len(t):
        parts.append(
            pd.DataFrame(
                {
                    "part": "transition",
                    "stage": t["stage"],
                    "persona": t["persona"],
                    "what": "to " + t["to"],
                    "estimate": t["probability"],
                    "ci_low": t["ci_low"],
                    "ci_high": t["ci_high"],
                    "observations": t["ended"],
                    "note": np.where(t["pooled"], "pooled (thin data)", t["method"]),
                }
            )
        )
    d = cal.dwell_[cal.dwell_["chosen"]] if len(cal.dwell_) else cal.dwell_
    if len(d):
        parts.append(
            pd.DataFrame(
                {
                    "part": "dwell",
                    "stage": d["stage"],
                    "persona": d["persona"],
                    "what": d["parameters"],
                    "estimate": d["mean"],
                    "ci_low": d.get("mean_ci_low", math.nan),
                    "ci_high": d.get("mean_ci_high", math.nan),
                    "observations": d["ended"] + d["open"],
                    "note": [
                        f"mean; chosen by AIC; KS distance {k:.3f}; {o} open"
                        for k, o in zip(d["ks_distance"], d["open"], strict=True)
                    ],
                }
            )
        )
    if len(d) and "shape_ci_low" in d:
        shaped = d[np.isfinite(d["shape"])]
        parts.append(
            pd.DataFrame(
                {
                    "part": "dwell shape",
                    "stage": shaped["stage"],
                    "persona": shaped["persona"],
                    "what": "shape of " + shaped["family"],
                    "estimate": shaped["shape"],
                    "ci_low": shaped["shape_ci_low"],
                    "ci_high": shaped["shape_ci_high"],
                    "observations": shaped["ended"] + shaped["open"],
                    "note": "Wald interval on the log scale, from the observed information",
                }
            )
        )
    v = cal.order_values_
    if len(v):
        parts.append(
            pd.DataFrame(
                {
                    "part": "order value",
                    "stage": "",
                    "persona": v["persona"],
                    "what": v["parameters"],
                    "estimate": v["mean"],
                    "ci_low": v.get("mean_ci_low", math.nan),
                    "ci_high": v.get("mean_ci_high", math.nan),
                    "observations": v["purchases"],
                    "note": np.where(v["pooled"], "pooled (thin data)", "mean; by AIC"),
                }
            )
        )
    h = getattr(cal, "heterogeneity_", None)
    if h is not None:
        parts.append(
            pd.DataFrame(
                {
                    "part": "heterogeneity",
                    "stage": "",
                    "persona": "all",
                    "what": h["parameter"] + ": " + h["meaning"],
                    "estimate": h["estimate"],
                    "ci_low": h["ci_low"],
                    "ci_high": h["ci_high"],
                    "observations": h["customers"],
                    "note": "maximum likelihood (gamma rates, beta never-again shares)",
                }
            )
        )
    a = getattr(cal, "attribute_effects_", None)
    if a is not None and len(a):
        parts.append(
            pd.DataFrame(
                {
                    "part": "attribute effect",
                    "stage": a["stage"],
                    "persona": "all",
                    "what": "log-odds of to "
                    + a["to"]
                    + " against "
                    + a["against"]
                    + " per unit of "
                    + a["attribute"],
                    "estimate": a["coefficient"],
                    "ci_low": a["ci_low"],
                    "ci_high": a["ci_high"],
                    "observations": a["visits"],
                    "note": "multinomial logit (reference: the mean " + a["attribute"] + ")",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)
