r"""Warm start: simulate on from the state every customer of a log is in at a date.

Part of the vectorised engine (customers are independent, so all of them advance together,
wave by wave). Each customer of the log who entered before day ``at`` starts in the stage they
were in at ``at`` (their last row before ``at``), with the time they had already spent there,
``e`` days:

- the rest of their dwell is drawn from the stage's law conditional on ``e``: exponential
  waits are memoryless (a fresh draw); gamma, lognormal and Weibull invert the conditional
  survival :math:`S(e + r)/S(e) = U` with scipy's ``isf``; a fixed wait has ``value - e``
  left; an empirical law resamples its values above ``e``. A persona's dwell factor scales
  the law (``law.scaled``) before conditioning. Where :math:`S(e) = 0` under the law the
  customer moves at ``at``.
- a stage whose way out leads to a **silent end** (an end stage that the log never records,
  such as churn in a transaction log: the "buy again or never" loop of a cure model) updates
  the share gone by the silence: :math:`P(\text{never} \mid e) = \pi / (\pi + (1 - \pi)
  S(e))`. Those gone move to the silent end at ``at`` (when they left is not known); the
  others wait out the rest of their dwell and then take a way out that is not silent.
- customers already in an end stage (lost, churned) are carried over unchanged.

Personas: the log's own when every persona name of the log is one of the scenario's, else
drawn from the posterior given the customer's own history before ``at``: the persona's share
times the likelihood of their recorded moves (days spent in each stage left, by the persona's
dwell law, and the way out taken) and of their open visit (no recorded move in the ``e`` days
since: :math:`\pi + (1 - \pi) S(e)`), the conditional forecast of BG/NBD done by simulation.
Personas that do not differ on the stages the history covers are drawn from their shares (the
posterior equals them). Each customer's numbers come from their own stream, keyed by
their number in the log (``stream(seed, replication, WARM, customer)``: persona, silence, then
per move dwell, choice and order value), so the same seed gives the same log whatever the
number of workers.

The log written starts at ``at`` (days keep the clock of the given log, ``start_date`` too):
each carried-over customer has an entry row at ``at`` in the stage they were in (not a new
arrival; their history before ``at`` is not repeated), and ``EventLog.warm_start`` records the
day and how many customers (numbered first) were carried over. Interventions act as in a cold run
with their windows counted from ``at`` (a carried-over customer is settled on the stage they
are in at ``at`` and on each stage they enter after; one acting on the stage they wait in
scales the rest of the wait; the never-again update uses the ways out in force). Arrivals: a
scenario's day-0
cohort is the population, which the log's customers replace (no cohort arrives at ``at``);
arrivals by channel arrive as in a cold run with their clock restarted at ``at`` (channel
rates, time-varying rates and windows counted from ``at``), numbered after the carried-over
customers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.engine import limits, many_streams, vectorised
from sim.engine.compiled import CompiledScenario
from sim.engine.log_writer import stage_info
from sim.engine.streams import name_key
from sim.errors import EventLogError, ScenarioError
from sim.events import ENTRY, EventLog
from sim.model.acquisition import Cohort
from sim.model.distributions import (
    Distribution,
    Empirical,
    Exponential,
    Fixed,
    Gamma,
    Lognormal,
    Weibull,
)
from sim.model.scenario import Scenario

#: Purpose key of the carried-over customers' streams (beside those of streams.py).
WARM = 11

#: Numbers first drawn per carried-over customer; more are drawn as a customer needs them.
FIRST_WIDTH = 16

#: Slots of a customer's numbers: persona, silence, then per move dwell, choice and value.
PERSONA_SLOT, SILENT_SLOT, FIRST_MOVE_SLOT, PER_MOVE = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class WarmState:
    """Every carried-over customer's state at day ``at`` (codes of the scenario)."""

    at: float
    customer: np.ndarray  # the log's customer numbers (stream keys)
    stage: np.ndarray
    elapsed: np.ndarray  # days already spent in ``stage`` at ``at``
    persona: np.ndarray  # -1: drawn from the scenario's shares
    channel: np.ndarray  # codes into ``channels``
    channels: tuple[str, ...]
    silent: np.ndarray  # per stage of the scenario: an end the log never records
    start_date: str | None
    # every move of the carried-over customers before ``at``: (index into ``customer``,
    # stage left, stage entered, days spent in the stage left); what the persona posterior
    # conditions on, beside the open visit (``stage``, ``elapsed``)
    history: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.customer)


def day_of(log: EventLog, at: str | float | int, field: str = "at") -> float:
    """Day ``at`` on the log's clock: a number of days since the log's day 0, or a date."""
    if isinstance(at, bool):
        raise ScenarioError(f"{field} must be a date or a day number, got {at!r}", field=field)
    if isinstance(at, int | float | np.integer | np.floating):
        day = float(at)
    else:
        if log.start_date is None:
            raise ScenarioError(
                f"{field}={at!r} is a date but the log has no calendar date for day 0",
                field=field,
                fix="give a day number, or read the log with a start date",
            )
        import pandas as pd  # here, not on top: this module loads with every run

        try:
            stamp = pd.Timestamp(at)
        except (ValueError, TypeError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            raise ScenarioError(
                f"{field}={at!r} is neither a date nor a day number",
                field=field,
                fix="e.g. at='2025-06-30' or at=180",
            ) from None
        origin = pd.Timestamp(log.start_date)
        if stamp.tzinfo is not None and origin.tzinfo is None:
            stamp = stamp.tz_localize(None)
        day = (stamp - origin) / pd.Timedelta(days=1)
    if not math.isfinite(day) or day < 0:
        raise ScenarioError(
            f"{field}={at!r} lies before the log's day 0", field=field, fix="give a later date"
        )
    return day


def warm_state(scenario: Scenario, log: EventLog, at: str | float) -> WarmState:
    """The state at ``at`` of every customer of ``log`` who entered before it."""
    if not isinstance(log, EventLog):
        raise ScenarioError(
            f"start_from takes an EventLog, not {type(log).__name__}",
            field="start_from",
            fix="read it first: sim.read_events('crm.csv', customer=..., time=..., stage=...)",
        )
    if log.replications != 1:
        raise ScenarioError(
            f"start_from holds {log.replications} replications; a warm start begins from one "
            "set of customers",
            field="start_from",
            fix="pass one replication of the log (or a log read from data)",
        )
    day = day_of(log, at)
    if day > log.horizon_days:
        raise ScenarioError(
            f"at={at!r} (day {day:g}) lies after the end of the log (day {log.horizon_days:g}): "
            "what customers did in between is not known",
            field="at",
            fix="give a date inside the log's period",
        )
    names = scenario.journey.names
    code = {n: i for i, n in enumerate(names)}
    missing = [n for n in log.stages if n not in code]
    if missing:
        raise ScenarioError(
            f"the log names stages the scenario lacks: {', '.join(missing)}",
            field="start_from",
            fix="read the log with a stage map onto the scenario's stages (stages=...)",
        )
    stage_code = np.array([code[n] for n in log.stages], dtype=np.int64)
    before = np.flatnonzero(log.time < day)
    # each customer's last row before ``at`` (rows are in time order, entries first)
    who = log.customer[before].astype(np.int64)
    last = np.full(int(log.customers[0]), -1, dtype=np.int64)
    last[who] = before  # later rows overwrite earlier ones
    customers = np.flatnonzero(last >= 0)
    rows = last[customers]
    stage = stage_code[log.to_stage[rows]]
    persona_names = scenario.persona_names
    if all(p in persona_names for p in log.personas):
        persona = np.array([persona_names.index(p) for p in log.personas], dtype=np.int64)
        persona = persona[log.persona[rows]]
    else:
        persona = np.full(len(rows), -1, dtype=np.int64)
    rows_into = np.bincount(log.to_stage, minlength=len(log.stages))
    recorded = {n for n, c in zip(log.stages, rows_into, strict=True) if c > 0}
    silent = np.array([st.absorbing and st.name not in recorded for st in scenario.journey.stages])
    channels = tuple(scenario.channel_names)
    extra = tuple(c for c in log.channels if c not in channels)
    channels = channels + extra
    channel = np.array([channels.index(c) for c in log.channels], dtype=np.int64)[log.channel[rows]]
    # each move's days in the stage it left: the time since the customer's row before it
    by_customer = before[np.argsort(who, kind="stable")]  # rows stay in time order per customer
    owner = log.customer[by_customer].astype(np.int64)
    moved = np.flatnonzero(log.from_stage[by_customer] != ENTRY)
    moved = moved[moved > 0]
    moved = moved[owner[moved - 1] == owner[moved]]
    history = (
        np.searchsorted(customers, owner[moved]),
        stage_code[log.from_stage[by_customer[moved]]],
        stage_code[log.to_stage[by_customer[moved]]],
        log.time[by_customer[moved]] - log.time[by_customer[moved - 1]],
    )
    return WarmState(
        at=day,
        customer=customers.astype(np.int64),
        stage=stage,
        elapsed=day - log.time[rows],
        persona=persona,
        channel=channel,
        channels=channels,
        silent=silent,
        start_date=log.start_date,
        history=history,
    )


def _frozen(law: Distribution):
    """The scipy law of a gamma, lognormal or Weibull dwell (for its survival and inverse)."""
    from scipy import stats  # here, not on top: this module loads with every run

    if isinstance(law, Gamma):
        return stats.gamma(law.shape, scale=law.mean / law.shape)
    if isinstance(law, Lognormal):
        return stats.lognorm(law.sigma, scale=math.exp(law.mu))
    if isinstance(law, Weibull):
        return stats.weibull_min(law.shape, scale=law.scale)
    raise ScenarioError(f"no conditional draw for dwell law {law!r}", field="dwell")


def survival(law: Distribution, e: np.ndarray) -> np.ndarray:
    """P(dwell > e) under ``law``."""
    e = np.asarray(e, dtype=float)
    if isinstance(law, Exponential):
        return np.exp(-e / law.mean)
    if isinstance(law, Fixed):
        return (law.value > e).astype(float)
    if isinstance(law, Empirical):
        values = np.asarray(law.samples)
        return 1 - np.searchsorted(values, e, side="right") / len(values)
    return _frozen(law).sf(e)


def remaining(law: Distribution, e: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Days left of a dwell drawn from ``law`` given ``e`` days already spent, from uniforms
    ``u`` in [0, 1)."""
    e = np.asarray(e, dtype=float)
    if isinstance(law, Exponential):
        return law.quantile(u)  # memoryless
    if isinstance(law, Fixed):
        return np.maximum(law.value - e, 0.0)
    if isinstance(law, Empirical):
        values = np.asarray(law.samples)
        first = np.searchsorted(values, e, side="right")
        above = len(values) - first
        pick = np.minimum(first + (u * above).astype(np.int64), len(values) - 1)
        return np.where(above > 0, values[pick] - e, 0.0)
    dist = _frozen(law)
    left = dist.sf(e)
    # S(e + r) / S(e) = 1 - u, so the whole dwell is isf((1 - u) S(e)) (u = 0: r = 0)
    with np.errstate(invalid="ignore"):
        whole = dist.isf((1 - u) * left)
    r = whole - e
    return np.where((left > 0) & np.isfinite(r), np.maximum(r, 0.0), 0.0)


def _scipy_law(law: Distribution):
    """The scipy law of a dwell with a density (None: a fixed or empirical wait)."""
    from scipy import stats

    if isinstance(law, Exponential):
        return stats.expon(scale=law.mean)
    if isinstance(law, Fixed | Empirical):
        return None
    return _frozen(law)


def _persona_law(c: CompiledScenario, p: int, stage: int):
    """Persona ``p``'s scipy dwell law in ``stage`` (its dwell factor applied)."""
    law = c.dwell[stage]
    factor = float(c.dwell_factor[p, stage])
    return _scipy_law(law.scaled(factor) if factor != 1.0 else law)


def _covered(c: CompiledScenario, state: WarmState, which: np.ndarray) -> np.ndarray:
    """Stages the history of customers ``which`` says something about: those they left and
    those they wait in at ``at``."""
    stages = [state.stage[which][~np.array(c.absorbing)[state.stage[which]]]]
    if state.history is not None:
        who, left = state.history[0], state.history[1]
        stages.append(left[np.isin(who, which)])
    return np.unique(np.concatenate(stages)).astype(np.int64)


def personas_differ(c: CompiledScenario, state: WarmState, which: np.ndarray) -> bool:
    """Whether the scenario's personas differ in dwell or ways out on a stage the history of
    customers ``which`` covers (else their history says nothing about who they are)."""
    if len(c.scenario.personas) < 2 or len(which) == 0:
        return False
    stages = _covered(c, state, which)
    factors = c.dwell_factor[:, stages]
    rows = np.array([[c.untreated[p][a] for a in stages] for p in range(len(c.untreated))])
    return bool(np.any(factors != factors[0]) or np.any(rows != rows[0]))


def history_log_likelihood(
    c: CompiledScenario, state: WarmState, which: np.ndarray, p: int
) -> np.ndarray:
    r"""Log-likelihood of each customer's history before ``at`` (customers ``which``) were
    they of persona ``p``: each recorded move (the days spent in the stage left, by the
    persona's dwell law, and the way out taken) and the open visit (no recorded move in the
    ``elapsed`` days since: :math:`\pi + (1 - \pi) S(e)` with :math:`\pi` the share of silent
    ways out). A fixed or empirical wait has no density: such a stage counts by its ways out
    only. Interventions in force before ``at`` are not known to the log and are left out."""
    m = len(which)
    pos = np.full(len(state), -1, dtype=np.int64)
    pos[which] = np.arange(m)
    ll = np.zeros(m)
    rows = [_probability_row(np.array(r)) for r in c.untreated[p]]
    with np.errstate(divide="ignore", invalid="ignore"):
        if state.history is not None:
            who, left, entered, days = state.history
            mine = pos[who] >= 0
            who, left, entered, days = who[mine], left[mine], entered[mine], days[mine]
            for a in np.unique(left):
                g = np.flatnonzero(left == a)
                term = np.log(rows[a][entered[g]])
                law = _persona_law(c, p, int(a))
                if law is not None:
                    d = days[g]
                    positive = d[d > 0]
                    # a visit of 0 days (same-day moves) counts as half the shortest positive
                    # one, as the fit counts it (a density may be infinite at 0)
                    floor = positive.min() / 2 if len(positive) else 0.5
                    term = term + law.logpdf(np.where(d > 0, d, floor))
                ll += np.bincount(pos[who[g]], weights=term, minlength=m)
        stage, e = state.stage[which], state.elapsed[which]
        waiting = ~np.array(c.absorbing)[stage]
        for a in np.unique(stage[waiting]):
            g = np.flatnonzero(stage == a)
            pi = float(rows[a][state.silent].sum())
            law = _persona_law(c, p, int(a))
            if law is None:
                base = survival(c.dwell[a].scaled(float(c.dwell_factor[p, a])), e[g])
                log_stay = np.log(base)
            else:
                log_stay = law.logsf(e[g])
            ll[g] += np.logaddexp(np.log(pi), np.log1p(-pi) + log_stay)
    return ll


def posterior_personas(
    c: CompiledScenario, state: WarmState, which: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Personas of customers ``which`` drawn, by inversion of uniforms ``u``, from the
    posterior given their history: share of the persona times the likelihood of the history
    under it (:func:`history_log_likelihood`). Personas that do not differ on the stages the
    history covers leave the posterior equal to the shares, which are then drawn from
    directly; so is a customer whose history no persona can have produced."""
    shares = np.array([p.share for p in c.scenario.personas], dtype=float)
    mix = np.cumsum(shares)
    prior = np.minimum(np.searchsorted(mix, u, side="right"), len(mix) - 1)
    if not personas_differ(c, state, which):
        return prior
    log_share = np.log(shares / shares.sum())
    # two passes over the personas (the normaliser, then the inversion) keep memory at a
    # few vectors per customer, however many personas (the gamma quadrature has 128)
    total = np.full(len(which), -np.inf)
    for p in range(len(shares)):
        total = np.logaddexp(total, log_share[p] + history_log_likelihood(c, state, which, p))
    known = np.isfinite(total)
    cum = np.zeros(len(which))
    chosen = np.zeros(len(which), dtype=np.int64)
    for p in range(len(shares)):
        weight = np.exp(log_share[p] + history_log_likelihood(c, state, which, p) - total)
        cum += np.where(known, weight, 0.0)
        chosen += cum <= u
    chosen = np.minimum(chosen, len(shares) - 1)
    return np.where(known, chosen, prior)


class _Numbers:
    """Each carried-over customer's own numbers, drawn in blocks as they need them."""

    def __init__(self, seed: int, replication: int, customers: np.ndarray) -> None:
        self.seed, self.replication, self.customers = seed, replication, customers
        self.width = FIRST_WIDTH
        self.table = self._draw(np.arange(len(customers)), self.width)
        self.row = np.arange(len(customers))
        self.last = self.row

    def _draw(self, which: np.ndarray, width: int) -> np.ndarray:
        return many_streams.uniforms(
            self.seed, (self.replication, WARM), self.customers[which], width
        )

    def __call__(self, which: np.ndarray, slot: np.ndarray | int) -> np.ndarray:
        """Number ``slot`` of customers ``which`` (indices into ``customers``)."""
        slot = np.broadcast_to(np.asarray(slot, dtype=np.int64), which.shape)
        if len(slot) and int(slot.max()) >= self.width:
            # rare: a customer moved more often than drawn for; redraw, wider, the rows of
            # those asked for now and of those asked for last time (still moving)
            self.width = max(2 * self.width, int(slot.max()) + 1)
            mask = np.zeros(len(self.customers), dtype=bool)
            mask[which] = True
            mask[self.last] = True
            keep = np.flatnonzero(mask)
            self.table = self._draw(keep, self.width)
            self.row = np.full(len(self.customers), -1, dtype=np.int64)
            self.row[keep] = np.arange(len(keep))
        if len(which) >= len(self.last) // 2:
            # the moving customers (a call for a few of them, such as buyers, keeps the set)
            self.last = which
        return self.table[self.row[which], slot]


def _by_group(*keys: np.ndarray):
    """(key tuple, positions) for each distinct combination of ``keys``."""
    if len(keys[0]) == 0:
        return
    # one integer per combination (codes are small and >= 0), grouped by one sort
    key = np.zeros(len(keys[0]), dtype=np.int64)
    for k in keys:
        key = key * (int(k.max()) + 1) + k
    order = np.argsort(key, kind="stable")
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    for g in np.split(order, cuts):
        yield [int(k[g[0]]) for k in keys], g


class _Reach:
    """Interventions on the carried-over customers, as the vectorised engine settles them,
    with their windows counted from ``at`` (the clock restarts there, as for new arrivals).
    Who is eligible is drawn per customer and intervention from a stream keyed by both."""

    def __init__(
        self, c: CompiledScenario, state: WarmState, persona: np.ndarray, seed: int, rep: int
    ) -> None:
        s = c.scenario
        n = len(state)
        self.at = state.at
        self.elig = np.zeros(n, dtype=np.int64)
        self.reached = np.zeros(n, dtype=np.int64)
        stages = np.arange(len(c.names))
        self.windows = [iv.window_days for iv in s.interventions]
        self.lasting = [iv.lasting for iv in s.interventions]
        self.targets = [
            np.isin(stages, [s.journey.index(x) for x in iv.stages]) if iv.stages else stages >= 0
            for iv in s.interventions
        ]
        for i, iv in enumerate(s.interventions):
            key = (rep, WARM, name_key(iv.name))
            ok = many_streams.uniforms(seed, key, state.customer, 1)[:, 0] < iv.reach
            if iv.personas:
                ok &= np.isin(persona, [s.persona_names.index(p) for p in iv.personas])
            if iv.channels:
                codes = [state.channels.index(ch) for ch in iv.channels if ch in state.channels]
                ok &= np.isin(state.channel, codes)
            self.elig[ok] |= 1 << i
        self.records: list[tuple[np.ndarray, ...]] = []

    def enter(self, who: np.ndarray, stage: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Settle for customers ``who`` entering ``stage`` at ``time``: the interventions
        acting on them there (bit mask), reaching those newly reached."""
        act = np.zeros(len(who), dtype=np.int64)
        now = time - self.at
        for i, (begin, end) in enumerate(self.windows):
            bit = 1 << i
            eligible = (self.elig[who] & bit) != 0
            if not eligible.any():
                continue
            new = eligible & ((self.reached[who] & bit) == 0) & (begin <= now) & (now < end)
            new &= self.targets[i][stage]
            if new.any():
                self.reached[who[new]] |= bit
                self.records.append((who[new], np.full(int(new.sum()), i), time[new]))
            acting = eligible & ((self.reached[who] & bit) != 0)
            if not self.lasting[i]:
                acting &= now < end
            act[acting] |= bit
        return act


def _tables(c: CompiledScenario, p: int, act: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative rows (S, S), dwell factors beyond the persona's (S,) and the order-value
    factor of persona ``p`` while the interventions of ``act`` act on them."""
    if act == 0:
        return np.array(c.untreated[p]), np.ones(len(c.names)), 1.0
    tr = c.treatment(p, act)
    return np.array(tr.cumulative), np.array(tr.dwell_factor), tr.value_factor


def _probability_row(cumulative: np.ndarray) -> np.ndarray:
    """Probabilities of the ways out from a cumulative row (inf closes the last way)."""
    cum = np.where(np.isinf(cumulative), 1.0, cumulative)
    return np.diff(np.concatenate([[0.0], cum]))


def simulate_warm(c: CompiledScenario, state: WarmState, seed: int, replication: int) -> EventLog:
    """One replication of the carried-over customers of ``state`` from day ``state.at`` to
    ``state.at + horizon_days`` (no new arrivals: see :func:`merge_arrivals`)."""
    s = c.scenario
    n = len(state)
    at, horizon = state.at, state.at + s.horizon_days
    numbers = _Numbers(seed, replication, state.customer)
    persona = state.persona.copy()
    draw = np.flatnonzero(persona < 0)
    if len(draw):
        persona[draw] = posterior_personas(c, state, draw, numbers(draw, PERSONA_SLOT))
    reach = _Reach(c, state, persona, seed, replication) if s.interventions else None
    absorbing = np.array(c.absorbing)
    purchase = np.array(c.purchase)
    silent = state.silent
    rows: list[tuple[np.ndarray, ...]] = []
    # entry rows at ``at``: the stage each customer is in (values are not new orders)
    everyone = np.arange(n)
    zero = np.zeros(n, dtype=np.int64)
    rows.append((everyone, np.full(n, at), np.full(n, ENTRY), state.stage, np.zeros(n), zero))
    idx = np.flatnonzero(~absorbing[state.stage])
    st = state.stage[idx]
    per = persona[idx]
    e = state.elapsed[idx]
    act = reach.enter(idx, st, np.full(len(idx), at)) if reach else np.zeros(len(idx), np.int64)
    leave = np.empty(len(idx))
    nxt = np.empty(len(idx), dtype=np.int64)
    gone = np.zeros(len(idx), dtype=bool)
    u_dwell = numbers(idx, FIRST_MOVE_SLOT)
    u_choice = numbers(idx, FIRST_MOVE_SLOT + 1)
    for (stage, p, a), g in _by_group(st, per, act):
        law = c.dwell[stage]
        factor = float(c.dwell_factor[p, stage])
        if factor != 1.0:
            law = law.scaled(factor)
        cum, dwell_factor, _ = _tables(c, p, a)
        row = _probability_row(cum[stage])
        pi = float(row[silent].sum())
        ways = row.copy()
        if pi > 0:
            # Bayes: the longer the silence, the likelier the customer is gone for good
            surv = survival(law, e[g])
            denom = pi + (1 - pi) * surv
            never = np.where(denom > 0, pi / np.where(denom > 0, denom, 1.0), 1.0)
            out = numbers(idx[g], SILENT_SLOT) < never
            gone[g] = out
            quiet = row * silent
            if out.any():
                cq = np.cumsum(quiet / pi)
                cq[np.flatnonzero(quiet)[-1] :] = np.inf
                nxt[g[out]] = (cq <= u_choice[g[out], None]).sum(axis=1)
            ways = row * ~silent / (1 - pi) if pi < 1 else row * 0
        if (~gone[g]).any():
            stay = g[~gone[g]]
            # the time already spent ran under the persona's law; an intervention acting now
            # scales what is left (accelerated time)
            left = remaining(law, e[stay], u_dwell[stay]) * dwell_factor[stage]
            leave[stay] = at + left
            if ways.sum() > 0:
                cw = np.cumsum(ways)
                cw[np.flatnonzero(ways)[-1] :] = np.inf
                nxt[stay] = (cw <= u_choice[stay, None]).sum(axis=1)
        leave[g[gone[g]]] = at
    step = np.zeros(len(idx), dtype=np.int64)
    max_moves, waves = limits.MAX_MOVES_PER_CUSTOMER, 0
    while len(idx):
        waves += 1
        if waves > max_moves:
            who = int(state.customer[idx[0]])
            raise limits.runaway(c, who, int(st[0]), float(leave[0]), max_moves)
        # a move at or after the horizon never happens: the customer is censored
        alive = leave < horizon
        idx, st, per, leave, nxt, step, act = (
            x[alive] for x in (idx, st, per, leave, nxt, step, act)
        )
        if not len(idx):
            break
        value = np.zeros(len(idx))
        buying = np.flatnonzero(purchase[nxt])
        if len(buying):
            uv = numbers(idx[buying], FIRST_MOVE_SLOT + PER_MOVE * step[buying] + 2)
            for (p, a), g in _by_group(per[buying], act[buying]):
                value[buying[g]] = c.order_value[p].quantile(uv[g]) * _tables(c, p, a)[2]
        rows.append((idx, leave.copy(), st, nxt.copy(), value, act))
        st = nxt
        keep = ~absorbing[st]
        idx, st, per, leave, step = (x[keep] for x in (idx, st, per, leave, step))
        step = step + 1
        act = reach.enter(idx, st, leave) if reach else np.zeros(len(idx), np.int64)
        base = FIRST_MOVE_SLOT + PER_MOVE * step
        ud, uc = numbers(idx, base), numbers(idx, base + 1)
        days = np.empty(len(idx))
        nxt = np.empty(len(idx), dtype=np.int64)
        for (stage, p, a), g in _by_group(st, per, act):
            cum, dwell_factor, _ = _tables(c, p, a)
            scale = c.dwell_factor[p, stage] * dwell_factor[stage]
            days[g] = c.dwell[stage].quantile(ud[g]) * scale
            nxt[g] = (cum[stage] <= uc[g, None]).sum(axis=1)
        leave = leave + days
    return _log(c, state, persona, rows, replication, horizon, reach)


def _log(c, state, persona, rows, replication, horizon, reach) -> EventLog:
    who = np.concatenate([r[0] for r in rows])
    time = np.concatenate([r[1] for r in rows])
    # time order; at one time a customer's rows stay in the order they were made
    order = np.lexsort((np.arange(len(time)), time))
    who, time = who[order], time[order]
    s = c.scenario
    info = stage_info(s)
    count = len(who)
    return EventLog(
        replication=np.full(count, replication, dtype=np.int32),
        customer=who.astype(np.int32),
        persona=persona[who].astype(np.int16),
        channel=state.channel[who].astype(np.int16),
        time=time,
        from_stage=np.concatenate([r[2] for r in rows])[order].astype(np.int16),
        to_stage=np.concatenate([r[3] for r in rows])[order].astype(np.int16),
        value=np.concatenate([r[4] for r in rows])[order],
        treatment=np.concatenate([r[5] for r in rows])[order].astype(np.int64),
        customers=np.array([len(state)], dtype=np.int64),
        **_reach_columns(reach, replication),
        personas=s.persona_names,
        channels=state.channels,
        horizon_days=float(horizon),
        start_date=state.start_date,
        interventions=tuple(iv.name for iv in s.interventions),
        warm_start=(float(state.at), len(state)),
        **info,
    )


def _reach_columns(reach: _Reach | None, replication: int) -> dict[str, np.ndarray]:
    """The reach records of the carried-over customers, in time order."""
    if reach is None or not reach.records:
        return {}
    who, index, time = (np.concatenate([r[j] for r in reach.records]) for j in range(3))
    order = np.argsort(time, kind="stable")
    return {
        "reach_replication": np.full(len(who), replication, dtype=np.int32),
        "reach_customer": who[order].astype(np.int32),
        "reach_intervention": index[order].astype(np.int16),
        "reach_time": time[order],
    }


def merge_arrivals(warm: EventLog, cold: EventLog, at: float) -> EventLog:
    """The carried-over customers' log joined with a cold run's new arrivals, whose clock
    restarts at ``at`` (they are numbered after the carried-over customers)."""
    if len(cold.channels) and any(ch not in warm.channels for ch in cold.channels):
        raise EventLogError("new arrivals come by a channel the warm log lacks", field="channel")
    remap = np.array([warm.channels.index(ch) for ch in cold.channels], dtype=np.int16)
    offset = int(warm.customers[0])
    cols = {}
    for name in ("replication", "persona", "from_stage", "to_stage", "value", "treatment"):
        cols[name] = np.concatenate([getattr(warm, name), getattr(cold, name)])
    cols["customer"] = np.concatenate([warm.customer, cold.customer + offset]).astype(np.int32)
    cols["channel"] = np.concatenate([warm.channel, remap[cold.channel]]).astype(np.int16)
    cols["time"] = np.concatenate([warm.time, cold.time + at])
    order = np.lexsort((np.arange(len(cols["time"])), cols["time"]))
    cols = {k: v[order] for k, v in cols.items()}
    return EventLog(
        **cols,
        customers=np.array([offset + int(cold.customers[0])], dtype=np.int64),
        stages=warm.stages,
        personas=warm.personas,
        channels=warm.channels,
        horizon_days=warm.horizon_days,
        purchase_stages=warm.purchase_stages,
        end_stages=warm.end_stages,
        edges=warm.edges,
        interventions=warm.interventions,
        **_merged_reach(warm, cold, offset, at),
        start_date=warm.start_date,
        warm_start=warm.warm_start,
    )


def _merged_reach(warm: EventLog, cold: EventLog, offset: int, at: float) -> dict:
    """Reach records of both logs (the cold one's customers and clock moved), in time order."""
    time = np.concatenate([warm.reach_time, cold.reach_time + at])
    order = np.argsort(time, kind="stable")
    customer = np.concatenate([warm.reach_customer, cold.reach_customer + offset])
    return {
        "reach_replication": np.concatenate([warm.reach_replication, cold.reach_replication])[
            order
        ].astype(np.int32),
        "reach_customer": customer[order].astype(np.int32),
        "reach_intervention": np.concatenate([warm.reach_intervention, cold.reach_intervention])[
            order
        ].astype(np.int16),
        "reach_time": time[order],
    }


def cannot_warm_start(scenario: Scenario, engine: str) -> str | None:
    """Why a warm start cannot run ``scenario`` on ``engine`` (None: it can)."""
    if engine == "simpy":
        return "a warm start runs on the vectorised engine only, not the SimPy engine"
    reason = scenario.interacting
    if reason is not None:
        return (
            f"its customers interact ({reason}); a warm start runs on the vectorised engine, "
            "which simulates customers one by one"
        )
    reason = vectorised.cannot_run(scenario)
    if reason is not None:
        return reason
    return None


def warm_replication(
    c: CompiledScenario, state: WarmState, seed: int, replication: int
) -> EventLog:
    """One replication from a warm state, with the scenario's new arrivals (if any) after
    ``state.at`` (a module-level function, so worker processes can run it)."""
    log = simulate_warm(c, state, seed, replication)
    if isinstance(c.scenario.acquisition, Cohort):
        return log  # a day-0 cohort is the population: the log's customers take its place
    cold = vectorised.simulate(c, seed, replication)
    return merge_arrivals(log, cold, state.at)
