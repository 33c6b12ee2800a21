r"""Customers who differ in how often they buy and in how likely they are to stop: the repeat
purchase loop with continuous heterogeneity, discretised into personas.

In the loop purchase -> wait -> purchase again, or never (a silent exit), each customer has
their own rate :math:`\lambda` (their gaps are exponential with mean :math:`1/\lambda`) and
their own never-again share :math:`q` (after each order they stop for good with probability
:math:`q`), drawn once from :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` and
:math:`q \sim \mathrm{Beta}(a, b)`. A customer with :math:`x` completed gaps of total length
:math:`t_x` and an open gap of :math:`o` days at the end of the data contributes

.. math::

    L = \int\!\!\int (1-q)^x \lambda^x e^{-\lambda t_x} \bigl[q + (1-q) e^{-\lambda o}\bigr]
        \, dG(\lambda)\, dB(q)
      = \frac{\Gamma(r+x)\,\alpha^r}{\Gamma(r)} \Bigl[
        \tfrac{B(a+1,\,b+x)}{B(a,b)} (\alpha+t_x)^{-(r+x)}
        + \tfrac{B(a,\,b+x+1)}{B(a,b)} (\alpha+t_x+o)^{-(r+x)} \Bigr]

(the modified BG/NBD likelihood of Batislam, Denizel and Filiztekin, 2007: a customer may
stop after any order, the first included). Its four parameters are fitted by maximum
likelihood; the person-level law is then written as personas: Gauss quadrature nodes of the
gamma (generalised Laguerre) and of the beta (Jacobi) laws, each persona a node pair with its
quadrature weight as share, the rate as a dwell factor on the waiting stage and the
never-again share as a log-odds effect on the silent exit. A finite mixture found by EM
(``personas="auto"``) is the alternative; this one has four parameters however many personas
carry it, and keeps the long tail of slow buyers that a few classes lump with the lost.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from sim.calibrate.likelihood import _hessian
from sim.errors import EventLogError
from sim.model.distributions import Exponential
from sim.model.journey import Journey
from sim.model.persona import Effect, Persona

#: Quadrature nodes of the rate and of the never-again share (personas = their product).
RATE_NODES = 16
NEVER_NODES = 8

#: The attribute carrying each persona's never-again log-odds against the stage's base.
ATTRIBUTE = "never_again_log_odds"

#: a Calibrator (sim.calibrate.fit), named loosely here: fit.py imports this module
Calibrator = Any


@dataclass(frozen=True)
class LoopFit:
    """Gamma(r, alpha) rates (per day) and Beta(a, b) never-again shares, with errors."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    covariance: np.ndarray  # of (log r, log alpha, log a, log b)
    customers: int

    def table(self, confidence: float) -> pd.DataFrame:
        """Parameters with intervals (from the log scale, so they stay positive)."""
        from scipy import stats

        z = float(stats.norm.ppf(0.5 + confidence / 2))
        se = np.sqrt(np.maximum(np.diag(self.covariance), 0.0))
        rows = []
        for name, value, s, meaning in zip(
            ("r", "alpha", "a", "b"),
            (self.r, self.alpha, self.a, self.b),
            se,
            (
                "gamma shape of the purchase rate",
                "gamma scale of the purchase rate (days)",
                "beta a of the never-again share",
                "beta b of the never-again share",
            ),
            strict=True,
        ):
            rows.append(
                {
                    "parameter": name,
                    "estimate": value,
                    "ci_low": value * math.exp(-z * s) if math.isfinite(s) else math.nan,
                    "ci_high": value * math.exp(z * s) if math.isfinite(s) else math.nan,
                    "meaning": meaning,
                }
            )
        return pd.DataFrame(rows)


def loop_log_likelihood(
    theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, o: np.ndarray, has_open: np.ndarray
) -> float:
    """Sum of the customers' log-likelihoods at log-parameters ``theta``."""
    r, alpha, a, b = np.exp(theta)
    head = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha)
    lbeta = special.betaln(a, b)
    stop = special.betaln(a + 1, b + x) - lbeta - (r + x) * np.log(alpha + t_x)
    carry = special.betaln(a, b + x + 1) - lbeta - (r + x) * np.log(alpha + t_x + o)
    closed = special.betaln(a, b + x) - lbeta - (r + x) * np.log(alpha + t_x)
    ll = head + np.where(has_open, np.logaddexp(stop, carry), closed)
    return float(np.sum(ll))


def fit_loop(x: np.ndarray, t_x: np.ndarray, o: np.ndarray, has_open: np.ndarray) -> LoopFit:
    """Maximum likelihood of the four parameters from each customer's completed gaps
    (count ``x``, total ``t_x`` days) and open gap ``o``."""
    mean_gap = float(t_x.sum() / max(x.sum(), 1))

    def negative(theta: np.ndarray) -> float:
        if np.any(np.abs(theta) > 30):
            return 1e300
        value = -loop_log_likelihood(theta, x, t_x, o, has_open)
        return value if math.isfinite(value) else 1e300

    best = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        # two starts (a spread-out and a tight rate law): the likelihood can be flat in r
        for r0 in (0.3, 1.0):
            theta0 = np.log([r0, r0 * mean_gap, 1.0, 3.0])
            result = optimize.minimize(negative, theta0, method="BFGS")
            if best is None or result.fun < best.fun:
                best = result
        assert best is not None
        try:
            covariance = np.linalg.inv(_hessian(negative, best.x))
        except np.linalg.LinAlgError:
            covariance = np.full((4, 4), np.nan)
    r, alpha, a, b = np.exp(best.x)
    return LoopFit(float(r), float(alpha), float(a), float(b), -float(best.fun), covariance, len(x))


def personas_of(fit: LoopFit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(share, mean gap in days, never-again share) of each quadrature persona.

    A law so tight that its quadrature weights overflow (no heterogeneity to speak of: r or
    a + b in the hundreds) is carried by one node at its mean."""
    with np.errstate(all="ignore"):
        # generalised Gauss-Laguerre: weight u^(r-1) e^-u, rate = u / alpha
        u, wu = special.roots_genlaguerre(RATE_NODES, fit.r - 1)
        wu = wu / wu.sum()
        # Gauss-Jacobi on [-1, 1] with weight (1-s)^(b-1) (1+s)^(a-1): q = (1 + s) / 2
        s, wq = special.roots_jacobi(NEVER_NODES, fit.b - 1, fit.a - 1)
        wq = wq / wq.sum()
    if not (np.all(np.isfinite(wu)) and np.all(np.isfinite(u)) and np.all(u > 0)):
        u, wu = np.array([fit.r]), np.array([1.0])
    q = (1 + s) / 2
    if not (np.all(np.isfinite(wq)) and np.all((q > 0) & (q < 1))):
        q, wq = np.array([fit.a / (fit.a + fit.b)]), np.array([1.0])
    share = np.outer(wu, wq).ravel()
    gap = np.repeat(fit.alpha / u, len(q))
    never = np.tile(q, len(u))
    return share, gap, never


def loop_stage(cal: Calibrator, log) -> tuple[int, int, int]:
    """(waiting stage, purchase stage it leads to, silent end) of the repeat-purchase loop:
    the one stage with a silent exit whose recorded moves all go to one purchase stage that
    leads straight back to it."""
    found = []
    for s, sf in cal._stage_fit.items():
        silent = sf["silent_to"]
        targets = [log.stages.index(t) for t in sf["next"] if log.stages.index(t) != silent]
        if silent is None or len(targets) != 1 or not log.purchase_stages[targets[0]]:
            continue
        back = cal._stage_fit.get(targets[0])
        if back is not None and list(back["next"]) == [log.stages[s]]:
            found.append((s, targets[0], silent))
    if len(found) != 1:
        raise EventLogError(
            "personas='gamma' needs one repeat-purchase loop (purchase -> wait -> purchase "
            f"again, or silently never); this journey has {len(found)}",
            field="personas",
            fix="use it on a transaction log read with repeat_steps=1 (sim fit without "
            "--stage and --repeat-steps), or use personas='auto'",
        )
    return found[0]


def use_gamma_personas(cal: Calibrator, log, v) -> None:
    """Fit the loop's heterogeneity and carry it into ``cal.scenario_`` as personas."""
    s, buy, silent = loop_stage(cal, log)
    n = int(np.sum(log.customers))
    here = v.stage == s
    ended = here & ~v.censored
    open_ = here & v.censored
    x = np.bincount(v.customer[ended], minlength=n).astype(float)
    t_x = np.bincount(v.customer[ended], weights=v.duration[ended], minlength=n)
    o = np.bincount(v.customer[open_], weights=v.duration[open_], minlength=n)
    has_open = np.bincount(v.customer[open_], minlength=n) > 0
    seen = np.bincount(v.customer[here], minlength=n) > 0
    fit = fit_loop(x[seen], t_x[seen], o[seen], has_open[seen])
    share, gap, never = personas_of(fit)
    base_gap = fit.alpha / fit.r  # the gap of a customer with the mean rate
    base_never = fit.a / (fit.a + fit.b)
    scenario = cal.scenario_
    journey = scenario.journey
    name, buy_name, silent_name = log.stages[s], log.stages[buy], log.stages[silent]
    stages = list(journey.stages)
    i = journey.index(name)
    stages[i] = replace(
        stages[i],
        dwell=Exponential(mean=base_gap),
        next={buy_name: 1 - base_never, silent_name: base_never},
    )
    only = scenario.personas[0]
    base_logit = special.logit(base_never)
    personas = tuple(
        Persona(
            name=f"segment_{k + 1}",
            share=float(w),
            attributes={ATTRIBUTE: float(special.logit(np.clip(q, 1e-9, 1 - 1e-9)) - base_logit)},
            order_value=only.order_value,
            dwell_factors={**dict(only.dwell_factors), name: float(g / base_gap)},
        )
        for k, (w, g, q) in enumerate(zip(share, gap, never, strict=True))
    )
    effect = Effect(stage=name, to=silent_name, attribute=ATTRIBUTE, coefficient=1.0)
    cal.scenario_ = scenario.replace(
        journey=Journey(stages=tuple(stages), entry=journey.entry),
        personas=personas,
        effects=(*scenario.effects, effect),
    )
    cal.heterogeneity_ = fit.table(cal.confidence).assign(
        log_likelihood=fit.log_likelihood, customers=fit.customers
    )
    cal._gamma_personas = pd.DataFrame(
        {
            "persona": [p.name for p in personas],
            "share": share,
            "mean gap (days)": gap,
            "never again": never,
        }
    )
    cal._note(
        f"personas='gamma': {len(personas)} personas carry a Gamma(r={fit.r:.3g}, "
        f"alpha={fit.alpha:.3g} days) purchase rate and a Beta(a={fit.a:.3g}, b={fit.b:.3g}) "
        f"never-again share on '{name}' (quadrature nodes: {len(set(gap))} rates x "
        f"{len(set(never))} shares)"
    )
