r"""Fitting a scenario to an event log: transitions, dwell times, silent churn, order values.

The fitted model is the engine's own semi-Markov journey: on entering a stage a customer waits
a dwell time, then moves along one of the stage's transitions. Per stage and persona:

- **Transitions** by maximum likelihood, :math:`\hat p_j = n_j / n`, over the visits that ended
  in a move. A visit still open when the data end is right-censored: it tells how long the
  customer has waited, not where they go, so it is never counted as a drop-out. Wilson
  intervals at ``confidence``.
- **Dwell times**: exponential, gamma, lognormal and Weibull fitted with censoring, the family
  with the lowest AIC chosen, alternatives and a goodness-of-fit distance reported. Personas
  differ by an accelerated-time factor on the stage's law (the model's dwell factor).
- **Silent exits**: an end stage that the data never record (churn in a non-contractual
  business: a customer who stopped buying looks like one between orders) is fitted as a
  never-again share :math:`c` by the mixture likelihood of :mod:`sim.calibrate.likelihood`:
  each visit either ends after a time from :math:`F` or never does.
- **Order values** per persona: lognormal or gamma, by AIC.

Below ``min_observations`` a persona's estimate falls back to the pooled one, and
``warnings_`` and ``summary_`` say so, naming the stage and the persona.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.stats import proportion_ci
from sim.calibrate.attributes import attribute_groups, attribute_matrix, fit_logit, wald_interval
from sim.calibrate.check import CheckResult, check
from sim.calibrate.heterogeneity import use_gamma_personas
from sim.calibrate.latent import latent_personas, persona_table, summary_table, use_mixture
from sim.calibrate.likelihood import (
    FAMILIES,
    DwellFit,
    fit_family,
    kaplan_meier,
    order_value_intervals,
    order_value_law,
)
from sim.calibrate.visits import Visits, visits
from sim.errors import EventLogError, ScenarioError
from sim.events import ALL, ENTRY, EventLog
from sim.model.acquisition import Cohort
from sim.model.distributions import Distribution, Fixed
from sim.model.journey import Journey, Stage
from sim.model.persona import Effect, Persona
from sim.model.scenario import Scenario

#: Name of the stage added when customers enter the data at several stages.
START = "start"
# the name of a single fitted persona ("all" labels the overall row of the tables)
FITTED_PERSONA = "customers"

#: Above this many visits to a stage, dwell families are compared on a random sample of
#: about this size (AIC differences there are already decisive); the chosen one is then
#: fitted to every visit. ``dwell_`` says on how many visits each row was fitted.
SELECTION_SAMPLE = 20_000

#: Floor on a persona's probability when turned into a log-odds shift (finite effects).
FLOOR = 1e-6


class Calibrator:
    """Fit a scenario to an event log (simulated, or read from an analyst's export).

    Options here, data in :meth:`fit`, learned values end in ``_`` (``scenario_``,
    ``transitions_``, ``dwell_``, ``never_again_``, ``order_values_``, ``summary_``,
    ``warnings_``).

    Parameters
    ----------
    min_observations:
        Fewer completed visits (or purchases, for order values) than this for a persona on a
        stage, and the pooled estimate of all personas is used instead (and reported).
    families:
        Dwell-time families to try; the one with the lowest AIC is chosen.
    confidence:
        Level of the reported intervals.
    hidden_ends:
        End stages whose rows in the data are not observations (for example 'churned' set by
        a rule such as "no order for a year"): the rows are ignored and the share is fitted
        as silent exits. End stages with no rows at all are silent automatically.
    name:
        Name of the fitted scenario.
    personas:
        None: the log's own personas (segments). ``"auto"``: latent personas found in the
        data (a mixture over customers' whole journeys by EM, the number chosen by BIC among
        1 .. ``max_personas``); a whole number K: exactly K latent personas. They are named
        ``segment_1`` ...; ``personas_`` says what distinguishes them and ``mixture_`` how
        each K scored. ``"gamma"`` (a transaction log's repeat-purchase loop): every customer
        has their own purchase rate and never-again share, from a gamma and a beta law
        fitted by maximum likelihood (``heterogeneity_``) and carried by quadrature personas
        (see :mod:`sim.calibrate.heterogeneity`).
    attributes:
        Names of numeric customer attributes (columns of the table given to :meth:`fit`)
        whose log-odds effects on each stage's moves are fitted by multinomial logit.
    """

    def __init__(
        self,
        *,
        min_observations: int = 30,
        families: Sequence[str] = FAMILIES,
        confidence: float = 0.95,
        hidden_ends: Sequence[str] = (),
        name: str = "fitted",
        personas: str | int | None = None,
        max_personas: int = 4,
        seed: int = 0,
        attributes: Sequence[str] = (),
    ) -> None:
        if isinstance(min_observations, bool) or not isinstance(min_observations, int):
            raise ScenarioError(
                f"min_observations must be a whole number, got {min_observations!r}",
                field="min_observations",
            )
        if min_observations < 1:
            raise ScenarioError(
                f"min_observations must be >= 1, got {min_observations}", field="min_observations"
            )
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ScenarioError(
                f"unknown dwell families {unknown}" if unknown else "no dwell family given",
                field="families",
                fix=f"choose from {', '.join(FAMILIES)}",
            )
        if not 0 < confidence < 1:
            raise ScenarioError(
                f"confidence must lie in (0, 1), got {confidence}", field="confidence"
            )
        self.min_observations = min_observations
        self.families = tuple(families)
        self.confidence = float(confidence)
        self.hidden_ends = tuple(hidden_ends)
        self.name = name
        if personas not in (None, "auto", "gamma") and (
            isinstance(personas, bool) or not isinstance(personas, int) or personas < 1
        ):
            raise ScenarioError(
                f"personas must be 'auto', 'gamma' or a whole number >= 1, got {personas!r}",
                field="personas",
            )
        self.personas = personas
        self.max_personas = max_personas
        self.seed = seed
        if isinstance(attributes, str):
            attributes = (attributes,)
        if len(set(attributes)) != len(attributes):
            raise ScenarioError(f"attributes named twice in {list(attributes)}", field="attributes")
        if attributes and personas is not None:
            raise ScenarioError(
                "attributes and latent personas cannot be fitted together yet",
                field="attributes",
                fix="fit either attribute effects (attributes=[...]) or personas='auto'",
            )
        self.attributes = tuple(attributes)

    def __repr__(self) -> str:
        fitted = "fitted" if hasattr(self, "scenario_") else "not fitted"
        return (
            f"Calibrator(min_observations={self.min_observations}, "
            f"families={self.families}, confidence={self.confidence}) [{fitted}]"
        )

    # -- fitting --------------------------------------------------------------------------
    def fit(self, log: EventLog, attributes: pd.DataFrame | None = None) -> Calibrator:
        """Fit every part of the scenario to ``log``; returns ``self``.

        ``attributes``: one row per customer of ``log`` (in its customer order, as
        :func:`~sim.calibrate.read_attributes` gives), with the numeric columns named by the
        Calibrator's ``attributes``; their log-odds coefficients on every stage's moves are
        estimated by multinomial logit (``attribute_effects_``) and the fitted scenario
        carries them as ``[[effect]]`` rules on personas that are groups of customers with
        like attributes.

        Raises :class:`~sim.errors.EventLogError` naming the problem and the fix when the
        data cannot support a fit (a stage without data, no purchases, one customer, every
        visit to a stage still open).
        """
        if not isinstance(log, EventLog):
            raise EventLogError(
                f"fit() takes an EventLog, not {type(log).__name__}",
                field="log",
                fix="read the data first, e.g. sim.EventLog.from_frame(frame, stages=...)",
            )
        self.warnings_: list[str] = []
        self._log = log
        hidden = self._hidden(log)
        self._check_data(log, hidden)
        self.mixture_ = None
        x = self._attribute_matrix(log, attributes)
        if self.personas == "gamma" and len(log.personas) > 1:
            self._note("the data's segments are set aside: personas='gamma' finds its own")
            one = np.zeros(len(log), dtype=np.int16)
            log = replace(log, persona=one, personas=("all",)).validate()
        elif self.personas is not None and self.personas != "gamma":
            log = latent_personas(self, log, hidden)
        v = visits(log, hidden)
        self._visits = v
        personas = self._personas(log)
        rows_t: list[dict[str, Any]] = []
        rows_d: list[dict[str, Any]] = []
        rows_n: list[dict[str, Any]] = []
        self._stage_fit: dict[int, dict[str, Any]] = {}
        for s in range(len(log.stages)):
            if log.end_stages[s]:
                continue
            self._stage_fit[s] = self._fit_stage(
                log, v, s, hidden, personas, rows_t, rows_d, rows_n
            )
        self.transitions_ = pd.DataFrame(rows_t)
        self.dwell_ = pd.DataFrame(rows_d)
        self.never_again_ = pd.DataFrame(
            rows_n,
            columns=["stage", "persona", "share", "ci_low", "ci_high", "ended", "open", "pooled"],
        )
        self.order_values_ = self._fit_values(log, personas)
        if self.mixture_ is not None and len(personas) > 1:
            use_mixture(self, log, personas)
        self.scenario_ = self._scenario(log, personas)
        self.attribute_effects_ = None
        self.heterogeneity_ = None
        if x is not None:
            self._use_attributes(log, v, x)
        if self.personas == "gamma":
            use_gamma_personas(self, log, v)
        self.summary_ = summary_table(self)
        self.personas_ = (
            self._gamma_personas if self.personas == "gamma" else persona_table(self, personas)
        )
        return self

    def _attribute_matrix(self, log: EventLog, frame: pd.DataFrame | None) -> np.ndarray | None:
        if not self.attributes:
            if frame is not None:
                raise ScenarioError(
                    "an attribute table was given but no attribute is named",
                    field="attributes",
                    fix="name its columns: Calibrator(attributes=[...])",
                )
            return None
        if frame is None:
            raise ScenarioError(
                f"attributes {list(self.attributes)} are named but fit() got no attribute table",
                field="attributes",
                fix="fit(log, attributes=frame), the frame from sim.calibrate.read_attributes",
            )
        if len(log.personas) > 1:
            raise ScenarioError(
                "attributes and the data's segments cannot be fitted together yet",
                field="attributes",
                fix="leave out the segment column, or the attributes",
            )
        return attribute_matrix(frame, self.attributes, int(np.sum(log.customers)))

    def _use_attributes(self, log: EventLog, v: Visits, x: np.ndarray) -> None:
        """Multinomial logits of every stage's moves on the attributes, carried into the
        scenario as effects (reference: the customers' mean attributes) on personas that are
        groups of customers with like attributes."""
        mean = x.mean(axis=0)
        journey = self.scenario_.journey
        stages = list(journey.stages)
        effects: list[Effect] = []
        rows: list[dict[str, Any]] = []
        for s, sf in self._stage_fit.items():
            name = log.stages[s]
            ended = (v.stage == s) & ~v.censored
            targets = np.unique(v.next[ended])
            if len(targets) < 2:
                continue
            if sf["silent_to"] is not None:
                # the logit rule would move the never-again share too, which the mixture
                # likelihood holds the same for every customer
                self._note(
                    f"stage '{name}': attribute effects are not estimated on a stage with "
                    "silent exits"
                )
                continue
            code = np.zeros(len(log.stages), dtype=np.int64)
            code[targets] = np.arange(len(targets))
            where = f"stage '{name}'"
            logit = fit_logit(
                code[v.next[ended]], len(targets), x[v.customer[ended]], self.attributes, where
            )
            base = logit.probabilities(mean)[0]
            i = journey.index(name)
            stages[i] = replace(
                stages[i],
                next={log.stages[t]: float(p) for t, p in zip(targets, base, strict=True)},
            )
            se = logit.standard_errors()
            for j, t in enumerate(targets[1:]):
                for k, attribute in enumerate(self.attributes):
                    beta, err = float(logit.coefficients[j, k]), float(se[j, k])
                    low, high = wald_interval(beta, err, self.confidence)
                    effects.append(
                        Effect(
                            stage=name,
                            to=log.stages[t],
                            attribute=attribute,
                            coefficient=beta,
                            reference=float(mean[k]),
                        )
                    )
                    rows.append(
                        {
                            "stage": name,
                            "to": log.stages[t],
                            "against": log.stages[targets[0]],
                            "attribute": attribute,
                            "coefficient": beta,
                            "se": err,
                            "ci_low": low,
                            "ci_high": high,
                            "reference": float(mean[k]),
                            "visits": logit.visits,
                        }
                    )
        self.attribute_effects_ = pd.DataFrame(
            rows,
            columns=[
                "stage", "to", "against", "attribute", "coefficient", "se", "ci_low",
                "ci_high", "reference", "visits",
            ],
        )  # fmt: skip
        group, values = attribute_groups(x)
        counts = np.bincount(group, minlength=len(values))
        only = self.scenario_.personas[0]
        groups = tuple(
            Persona(
                name=f"group_{g + 1}",
                share=float(c / counts.sum()),
                attributes={a: float(values[g, k]) for k, a in enumerate(self.attributes)},
                order_value=only.order_value,
                dwell_factors=dict(only.dwell_factors),
            )
            for g, c in enumerate(counts)
        )
        if not rows:
            self._note(
                "no stage has two recorded ways out: the attributes move nothing in the "
                "fitted scenario"
            )
        self.scenario_ = self.scenario_.replace(
            journey=Journey(stages=tuple(stages), entry=journey.entry),
            personas=groups,
            effects=tuple(effects),
        )
        self.attribute_groups_ = pd.DataFrame(
            {"persona": [p.name for p in groups], "customers": counts}
        ).join(pd.DataFrame(values, columns=list(self.attributes)))

    def _hidden(self, log: EventLog) -> np.ndarray:
        hidden = np.zeros(len(log.stages), dtype=bool)
        for name in self.hidden_ends:
            if name not in log.stages:
                raise EventLogError(
                    f"unknown stage '{name}' in hidden_ends",
                    field="hidden_ends",
                    fix=f"use one of {', '.join(log.stages)}",
                )
            s = log.stages.index(name)
            if not log.end_stages[s]:
                raise EventLogError(
                    f"'{name}' is not an end stage; only ends can be hidden",
                    field="hidden_ends",
                    fix="list end stages such as 'churned'",
                )
            hidden[s] = True
        rows_into = np.bincount(log.to_stage, minlength=len(log.stages))
        hidden |= log.end_mask & (rows_into == 0)
        return hidden

    def _check_data(self, log: EventLog, hidden: np.ndarray) -> None:
        total = int(np.sum(log.customers))
        if len(log) == 0 or total == 0:
            raise EventLogError("the log has no rows", field="log", fix="give a non-empty export")
        if total == 1:
            raise EventLogError(
                "the data hold a single customer: nothing can be estimated from one journey",
                field="customer",
                fix="give the export of all customers (check the --customer column is the "
                "customer id, not a constant)",
            )
        if not (log.from_stage != ENTRY).any():
            raise EventLogError(
                f"all {total} customers are still in the stage they entered when the data end "
                "(every journey is censored at entry): nothing shows where customers go next",
                field="time",
                fix="give data over a longer period, or check the time and stage columns",
            )
        rows_into = np.bincount(log.to_stage, minlength=len(log.stages))
        into_from = {j: [a for a, b in log.edges if b == j] for j in range(len(log.stages))}
        for s, name in enumerate(log.stages):
            if rows_into[s]:
                continue
            fed = any(rows_into[a] for a in into_from[s])
            if not (log.end_stages[s] and fed):
                raise EventLogError(
                    f"stage '{name}' has no rows in the data"
                    + ("" if log.end_stages[s] else " and it is not an end stage"),
                    field="stage map",
                    fix=f"map a label of the data to '{name}' or remove it from the stage map",
                )
        purchase = log.purchase_mask
        if not purchase.any():
            raise EventLogError(
                "no stage of the journey is a purchase, so there is nothing to convert to",
                field="stage map",
                fix="name the purchase stage(s) in the stage map (purchase = [...])",
            )
        if not purchase[log.to_stage].any():
            names = ", ".join(n for n, p in zip(log.stages, purchase, strict=True) if p)
            raise EventLogError(
                f"no customer ever entered a purchase stage ({names})",
                field="stage",
                fix="check the stage labels map purchases to the purchase stage",
            )

    def _personas(self, log: EventLog) -> list[tuple[int, str, int]]:
        """(code, name, customers) of the personas with customers in the log."""
        first = log.from_stage == ENTRY
        counts = np.bincount(log.persona[first], minlength=len(log.personas))
        for name, c in zip(log.personas, counts, strict=True):
            if c == 0:
                self._note(f"persona '{name}' has no customers in the data; it is left out")
        return [
            (i, n, int(c))
            for i, (n, c) in enumerate(zip(log.personas, counts, strict=True))
            if c > 0
        ]

    def _note(self, text: str) -> None:
        self.warnings_.append(text)

    def _fit_stage(
        self,
        log: EventLog,
        v: Visits,
        s: int,
        hidden: np.ndarray,
        personas: list[tuple[int, str, int]],
        rows_t: list,
        rows_d: list,
        rows_n: list,
    ) -> dict[str, Any]:
        name = log.stages[s]
        here = v.stage == s
        ended = here & ~v.censored
        open_ = here & v.censored
        silent = [j for a, j in log.edges if a == s and hidden[j]]
        if silent and len(silent) > 1:
            self._note(
                f"stage '{name}': several silent ends ({', '.join(log.stages[j] for j in silent)});"
                f" all silent exits are put on '{log.stages[silent[0]]}'"
            )
        silent_to = silent[0] if silent else None
        if not ended.any():
            if silent_to is None:
                raise EventLogError(
                    f"all {int(open_.sum())} visits to stage '{name}' are still open when the data"
                    " end (censored): nothing shows where customers go next or how long they stay",
                    field="stage",
                    fix="give data over a longer period, or declare an end stage for silent exits"
                    " in the stage map",
                )
            raise EventLogError(
                f"no visit to stage '{name}' ended in a recorded move, so the share who never "
                f"move on ('{log.stages[silent_to]}') cannot be told from the waiting time",
                field="stage",
                fix="give data over a longer period (for a transaction log: some customers must "
                "buy twice)",
            )
        fit = self._fit_dwell(name, v.duration[ended], v.duration[open_], silent_to is not None)
        pooled_fit: DwellFit | None = fit["fit"]
        for row in fit["table"]:
            rows_d.append({"stage": name, "persona": "all", **row})
        # the persona refits see the durations as the pooled fit did (zeros floored)
        durations = v.duration
        if pooled_fit is not None:
            positive = v.duration[ended & (v.duration > 0)]
            floor = _zero_floor(positive)
            durations = np.where(ended & (v.duration <= 0), floor, v.duration)
            durations = np.where(open_, np.maximum(durations, 1e-9), durations)
        never_pool = pooled_fit.never if pooled_fit is not None else fit.get("never", 0.0)
        never_ci = (
            pooled_fit.never_interval(self.confidence) if pooled_fit is not None else fit["ci"]
        )
        targets = sorted({j for a, j in log.edges if a == s and not hidden[j]})
        n_targets = len(log.stages)
        pooled_counts = np.bincount(v.next[ended], minlength=n_targets).astype(float)
        out: dict[str, Any] = {
            "dwell": fit["distribution"],
            "fit": pooled_fit,
            "silent_to": silent_to,
            "persona": {},
        }
        groups = [(-1, "all", np.ones(len(v.stage), dtype=bool))]
        if len(personas) > 1:
            groups += [(p, pname, v.persona == p) for p, pname, _ in personas]
        for p, pname, mask in groups:
            n_ended = int((ended & mask).sum())
            n_open = int((open_ & mask).sum())
            counts = np.bincount(v.next[ended & mask], minlength=n_targets).astype(float)
            pooled = p >= 0 and n_ended < self.min_observations
            if pooled:
                self._note(
                    f"stage '{name}', persona '{pname}': {n_ended} completed visits "
                    f"(< {self.min_observations}); the pooled estimate of all personas is used"
                )
                counts = pooled_counts
            never, never_lo, never_hi, factor = never_pool, *never_ci, 1.0
            if p >= 0 and not pooled and pooled_fit is not None and len(personas) > 1:
                own = fit_family(
                    pooled_fit.family,
                    durations[ended & mask],
                    durations[open_ & mask],
                    cure=silent_to is not None,
                    shape=pooled_fit.shape,
                )
                factor = own.mean / pooled_fit.mean
                if silent_to is not None:
                    never = own.never
                    never_lo, never_hi = own.never_interval(self.confidence)
            if silent_to is not None and not (math.isfinite(never_lo) and math.isfinite(never_hi)):
                self._note(
                    f"stage '{name}', persona '{pname}': the never-again share "
                    f"{never:.3g} has no interval (its likelihood is flat there: too few "
                    "customers were watched long enough); treat it as a guess"
                )
            moves = counts.sum()
            q = counts / moves
            lo, hi = proportion_ci(counts, np.full(n_targets, moves), self.confidence)
            keep = (1 - never) if silent_to is not None else 1.0
            for j in targets:
                low, high = lo[j], hi[j]
                if silent_to is not None:
                    low, high = low * (1 - never_hi), high * (1 - never_lo)
                rows_t.append(
                    {
                        "stage": name,
                        "persona": pname,
                        "to": log.stages[j],
                        "probability": keep * q[j],
                        "ci_low": low,
                        "ci_high": high,
                        "moves": int(counts[j]),
                        "ended": n_ended,
                        "open": n_open,
                        "pooled": pooled,
                        "method": "mixture (silent exits)" if silent_to is not None else "counts",
                    }
                )
            if silent_to is not None:
                rows_t.append(
                    {
                        "stage": name,
                        "persona": pname,
                        "to": log.stages[silent_to],
                        "probability": never,
                        "ci_low": never_lo,
                        "ci_high": never_hi,
                        "moves": 0,
                        "ended": n_ended,
                        "open": n_open,
                        "pooled": pooled,
                        "method": "mixture (silent exits)",
                    }
                )
                rows_n.append(
                    {
                        "stage": name,
                        "persona": pname,
                        "share": never,
                        "ci_low": never_lo,
                        "ci_high": never_hi,
                        "ended": n_ended,
                        "open": n_open,
                        "pooled": pooled,
                    }
                )
            probs = {log.stages[j]: keep * q[j] for j in targets if q[j] > 0}
            if silent_to is not None and never > 0:
                probs[log.stages[silent_to]] = never
            if p >= 0:
                out["persona"][p] = {"next": probs, "dwell_factor": factor}
            else:
                out["next"] = probs
        if len(personas) == 1:
            out["persona"][personas[0][0]] = {"next": out["next"], "dwell_factor": 1.0}
        return out

    def _fit_dwell(
        self, stage: str, ended: np.ndarray, open_: np.ndarray, cure: bool
    ) -> dict[str, Any]:
        """Dwell law of a stage: a fixed time when every visit took the same, else the family
        with the lowest AIC among those fitted with censoring."""
        if np.all(ended == ended[0]) and np.all(open_ <= ended[0] + 1e-12):
            value = float(ended[0])
            row = {
                "family": "fixed",
                "parameters": f"value={value:.6g}",
                "mean": value,
                "mean_ci_low": math.nan,
                "mean_ci_high": math.nan,
                "shape": math.nan,
                "shape_ci_low": math.nan,
                "shape_ci_high": math.nan,
                "log_likelihood": math.nan,
                "aic": math.nan,
                "delta_aic": 0.0,
                "ks_distance": 0.0,
                "ended": len(ended),
                "open": len(open_),
                "chosen": True,
            }
            never, ci = 0.0, (math.nan, math.nan)
            if cure:
                # visits open longer than the fixed time can only be silent exits
                gone = int((open_ > value).sum())
                never = gone / (gone + len(ended))
                lo, hi = proportion_ci(np.array([gone]), np.array([gone + len(ended)]))
                ci = (float(lo[0]), float(hi[0]))
            return {
                "distribution": Fixed(value),
                "fit": None,
                "table": [row],
                "never": never,
                "ci": ci,
            }
        zeros = ended <= 0
        if zeros.any():
            floor = _zero_floor(ended[~zeros])
            self._note(
                f"stage '{stage}': {int(zeros.sum())} visits lasted 0 days (same timestamp); "
                f"counted as {floor:.3g} days so that continuous laws can be fitted"
            )
            ended = np.where(zeros, floor, ended)
        # below a tenth of a millisecond a duration is rounding; a log of 0 would be -inf
        ended = np.maximum(ended, 1e-9)
        open_ = np.maximum(open_, 1e-9)
        families = self.families
        if len(ended) < 5:
            families = ("exponential",)
            self._note(
                f"stage '{stage}', persona 'all': only {len(ended)} completed visits; "
                "dwell fitted as exponential only"
            )
        elif len(ended) < self.min_observations:
            self._note(
                f"stage '{stage}', persona 'all': only {len(ended)} completed visits "
                f"(< {self.min_observations}); the dwell law is a rough estimate"
            )
        sampled = len(ended) + len(open_) > SELECTION_SAMPLE
        if sampled:
            # choosing among families needs no million visits: AIC differences on a fixed
            # random sample decide, and the chosen family is then fitted to all of them
            rng = np.random.default_rng(0)
            share = SELECTION_SAMPLE / (len(ended) + len(open_))
            pick_e = rng.random(len(ended)) < share
            pick_o = rng.random(len(open_)) < share
            fits = [fit_family(f, ended[pick_e], open_[pick_o], cure=cure) for f in families]
        else:
            fits = [fit_family(f, ended, open_, cure=cure) for f in families]
        good = [f for f in fits if f.converged and math.isfinite(f.aic)]
        if not good:
            raise EventLogError(
                f"stage '{stage}': no dwell-time family could be fitted to its "
                f"{len(ended)} durations",
                field="time",
                fix="check the time column (units, parsing) for this stage",
            )
        best = min(good, key=lambda f: f.aic)
        lowest = best.aic
        if sampled:
            full = fit_family(best.family, ended, open_, cure=cure)
            fits = [full if f is best else f for f in fits]
            best = full
        km = kaplan_meier(ended, open_)
        table = []
        for f in fits:
            table.append(
                {
                    "family": f.family,
                    "parameters": f.distribution().spec(),
                    "mean": f.mean,
                    "mean_ci_low": f.interval("mean", self.confidence)[0],
                    "mean_ci_high": f.interval("mean", self.confidence)[1],
                    "shape": f.shape if f.family != "exponential" else math.nan,
                    "shape_ci_low": f.interval("shape", self.confidence)[0],
                    "shape_ci_high": f.interval("shape", self.confidence)[1],
                    "log_likelihood": f.log_likelihood,
                    "aic": f.aic,
                    "delta_aic": 0.0 if f is best else f.aic - lowest,
                    "ks_distance": f.ks_distance(ended, open_, km),
                    "ended": f.observed,
                    "open": f.censored,
                    "chosen": f is best,
                }
            )
        return {"distribution": best.distribution(), "fit": best, "table": table}

    def _fit_values(self, log: EventLog, personas: list[tuple[int, str, int]]) -> pd.DataFrame:
        """Order values per persona: lognormal or gamma by AIC (pooled below the threshold)."""
        buy = log.purchase_mask[log.to_stage]
        values, owner = log.value[buy], log.persona[buy]
        rows = []
        self._values: dict[int, Distribution] = {}
        positive = values > 0
        if not positive.any():
            self._note("no order values in the data; purchases are worth 0")
            for p, _, _ in personas:
                self._values[p] = Fixed(0.0)
            return pd.DataFrame(
                columns=["persona", "family", "parameters", "mean", "aic", "purchases", "pooled"]
            )
        if (~positive).any():
            self._note(
                f"{int((~positive).sum())} purchases have no value (0); order values are fitted "
                "to the purchases with a value"
            )
        pooled = order_value_law(values[positive])
        groups = [(-1, "all", 0), *personas] if len(personas) > 1 else [(-1, "all", 0)]
        for p, pname, _ in groups:
            mine = values[positive] if p < 0 else values[positive & (owner == p)]
            use_pooled = p >= 0 and len(mine) < self.min_observations
            if use_pooled and len(personas) > 1:
                self._note(
                    f"order values, persona '{pname}': {len(mine)} purchases "
                    f"(< {self.min_observations}); the pooled law is used"
                )
            law, aic = pooled if (use_pooled or p < 0) else order_value_law(mine)
            if p >= 0 or len(personas) == 1:
                self._values[max(p, personas[0][0])] = law
            fitted_to = values[positive] if (use_pooled or p < 0) else mine
            ci = order_value_intervals(fitted_to, law, self.confidence)
            rows.append(
                {
                    "persona": pname,
                    "family": law.family,
                    "parameters": law.spec(),
                    "mean": law.mean,
                    "mean_ci_low": ci["mean_ci"][0],
                    "mean_ci_high": ci["mean_ci"][1],
                    "shape_ci_low": ci["shape_ci"][0],
                    "shape_ci_high": ci["shape_ci"][1],
                    "aic": aic,
                    "purchases": len(mine),
                    "pooled": use_pooled,
                }
            )
        return pd.DataFrame(rows)

    # -- the scenario ---------------------------------------------------------------------
    def _scenario(self, log: EventLog, personas: list[tuple[int, str, int]]) -> Scenario:
        stages = []
        entry_rows = log.to_stage[log.from_stage == ENTRY]
        entry_counts = np.bincount(entry_rows, minlength=len(log.stages))
        entries = np.flatnonzero(entry_counts)
        entry = log.stages[int(entries[0])]
        if len(entries) > 1:
            entry = START
            while entry in log.stages:
                entry = "journey_" + entry
            shares = entry_counts / entry_counts.sum()
            stages.append(
                Stage(
                    name=entry,
                    dwell=Fixed(0.0),
                    next={log.stages[j]: float(shares[j]) for j in entries},
                )
            )
            self._note(
                f"customers enter the data at {len(entries)} stages; the fitted journey starts "
                f"at a stage '{entry}' that sends them on in the observed shares"
            )
        for s, name in enumerate(log.stages):
            purchase = bool(log.purchase_stages[s])
            if log.end_stages[s]:
                stages.append(Stage(name=name, absorbing=True, purchase=purchase))
                continue
            fit = self._stage_fit[s]
            nxt = _normalised(fit["next"])
            stages.append(Stage(name=name, dwell=fit["dwell"], next=nxt, purchase=purchase))
        try:
            journey = Journey(stages=tuple(stages), entry=entry)
        except ScenarioError as err:
            raise EventLogError(
                f"the fitted journey is not valid: {err}",
                field="stage map",
                fix="every stage needs a way to an end stage in the data; declare end stages "
                "(ends = [...]) in the stage map",
            ) from None
        multi = len(personas) > 1
        attr = dict(
            zip([p for p, _, _ in personas], _attributes([n for _, n, _ in personas]), strict=True)
        )
        total = sum(c for _, _, c in personas)
        persona_objs, effects = [], []
        for p, pname, count in personas:
            factors = {}
            for s, fit in self._stage_fit.items():
                f = fit["persona"][p]["dwell_factor"]
                if multi and abs(f - 1) > 1e-9:
                    factors[log.stages[s]] = float(f)
            persona_objs.append(
                Persona(
                    # "all" labels the overall row of the tables, so a single group is renamed
                    name=FITTED_PERSONA if pname.strip().lower() == ALL else pname,
                    # latent personas: the EM shares; counting each customer in their most
                    # likely segment would move share to the segments that are easy to tell
                    share=(
                        float(self._mixture_shares[p])
                        if self.mixture_ is not None and multi
                        else count / total
                    ),
                    attributes={attr[q]: float(q == p) for q in attr} if multi else {},
                    order_value=self._values[p],
                    dwell_factors=factors,
                )
            )
            if not multi:
                continue
            for s, fit in self._stage_fit.items():
                base = _normalised(fit["next"])
                mine = fit["persona"][p]["next"]
                for target, b in base.items():
                    shift = math.log(max(mine.get(target, 0.0), FLOOR) / b)
                    if abs(shift) > 1e-12:
                        effects.append(
                            Effect(
                                stage=log.stages[s],
                                to=target,
                                attribute=attr[p],
                                coefficient=shift,
                            )
                        )
        shares = np.array([po.share for po in persona_objs])
        persona_objs = [
            Persona(
                name=po.name,
                share=float(sh),
                attributes=po.attributes,
                order_value=po.order_value,
                dwell_factors=po.dwell_factors,
            )
            for po, sh in zip(persona_objs, shares / shares.sum(), strict=True)
        ]
        size = max(round(total / max(log.replications, 1)), 1)
        return Scenario(
            name=self.name,
            description=f"fitted to {total} customers over {log.horizon_days:g} days",
            journey=journey,
            acquisition=Cohort(size=size),
            personas=tuple(persona_objs),
            effects=tuple(effects),
            horizon_days=max(log.horizon_days, 1e-9),
        )

    def check(self, log: EventLog | None = None, **options: Any) -> CheckResult:
        """Simulate the fitted scenario over ``log``'s window (default: the data it was fitted
        to) and set it beside the observed; see :func:`sim.calibrate.check`."""
        self._fitted()
        return check(self, self._log if log is None else log, **options)

    def _fitted(self) -> None:
        if not hasattr(self, "scenario_"):
            raise ScenarioError("this Calibrator has not been fitted", fix="call .fit(log) first")


def _normalised(probabilities: dict[str, float]) -> dict[str, float]:
    total = math.fsum(probabilities.values())
    return {k: v / total for k, v in probabilities.items() if v > 0}


def _attributes(personas: Sequence[str]) -> list[str]:
    """Attribute names marking membership of each persona (0/1 indicators), all distinct."""
    out: list[str] = []
    for i, persona in enumerate(personas):
        name = "is_" + re.sub(r"\W+", "_", persona).strip("_").lower()
        out.append(name if name not in out else f"{name}_{i}")
    return out


def _zero_floor(positive: np.ndarray) -> float:
    """The duration a visit of 0 days counts as: half the shortest positive one (1e-3 days
    when there is none), never so small that its logarithm is minus infinity."""
    if not len(positive):
        return 1e-3
    return max(float(np.min(positive)) / 2, float(np.finfo(float).tiny))
