r"""Latent personas: a finite mixture over customers' whole journeys, fitted by EM.

Each customer belongs to one of K unseen segments with probability :math:`\pi_k`; given the
segment, their visits follow the journey model with the segment's own transition
probabilities, dwell-time means (on each stage's pooled family and shape: the segments differ
by an accelerated-time factor, as personas do in a scenario), never-again shares and a
lognormal order value. A customer's likelihood is the product over their visits and orders;
EM alternates the segment responsibilities (E) and weighted maximum likelihood (M). K is
chosen by BIC, :math:`-2 \log L + p \log N`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from sim.calibrate.likelihood import _log_pdf, _log_sf, fit_family
from sim.calibrate.visits import Visits

#: EM stops when an iteration improves the log-likelihood by less than this share of it.
TOLERANCE = 1e-6

#: Random starts besides the one from journey length (the best log-likelihood wins).
RANDOM_STARTS = 1


@dataclass(frozen=True)
class StageModel:
    """What the pooled fit says of one transient stage: its family and where it leads."""

    stage: int
    targets: tuple[int, ...]
    family: str | None  # None: a fixed dwell time, no dwell likelihood
    shape: float
    cure: bool


@dataclass(frozen=True)
class Mixture:
    """A fitted mixture of K segments."""

    k: int
    shares: np.ndarray
    responsibilities: np.ndarray  # customers x K
    log_likelihood: float
    parameters: int
    customers: int
    iterations: int
    seconds_per_iteration: float
    params: dict

    @property
    def bic(self) -> float:
        """Bayesian information criterion, -2 log L + p log N."""
        return -2 * self.log_likelihood + self.parameters * math.log(self.customers)

    @property
    def labels(self) -> np.ndarray:
        """Each customer's most likely segment."""
        return np.argmax(self.responsibilities, axis=1)


def fit_mixture(
    v: Visits,
    stages: list[StageModel],
    customers: int,
    n_stages: int,
    values: tuple[np.ndarray, np.ndarray],
    k: int,
    seed: int = 0,
    max_iterations: int = 100,
) -> Mixture:
    """EM for ``k`` segments; the best of a few starts (one from journey length, the others
    random, all from ``seed``)."""
    rng = np.random.default_rng(seed)
    length = np.bincount(v.customer, minlength=customers).astype(float)
    ranks = np.argsort(np.argsort(length + rng.random(customers) * 1e-3))
    starts = [np.minimum(ranks * k // customers, k - 1)]
    starts += [rng.integers(0, k, customers) for _ in range(RANDOM_STARTS if k > 1 else 0)]
    best: Mixture | None = None
    for labels in starts:
        r = np.full((customers, k), 0.1 / k)
        r[np.arange(customers), labels] += 0.9
        fitted = _em(v, stages, customers, n_stages, values, r, max_iterations)
        if best is None or fitted.log_likelihood > best.log_likelihood:
            best = fitted
    assert best is not None
    return best


def _em(
    v: Visits,
    stages: list[StageModel],
    customers: int,
    n_stages: int,
    values: tuple[np.ndarray, np.ndarray],
    r: np.ndarray,
    max_iterations: int,
) -> Mixture:
    k = r.shape[1]
    by_stage = {m.stage: v.stage == m.stage for m in stages}
    value_owner, value = values
    log_value = np.log(value)
    params: dict[str, Any] = {}
    previous = -np.inf
    started = time.perf_counter()
    iterations = 0
    ll = -np.inf
    for iterations in range(1, max_iterations + 1):  # noqa: B007
        params = _m_step(v, stages, by_stage, n_stages, value_owner, log_value, r, params)
        per_customer = _e_step(v, stages, by_stage, customers, value_owner, log_value, params)
        joint = per_customer + np.log(params["shares"])[None, :]
        total = special.logsumexp(joint, axis=1)
        r = np.exp(joint - total[:, None])
        ll = float(total.sum())
        if ll - previous < TOLERANCE * abs(ll):
            break
        previous = ll
    seconds = (time.perf_counter() - started) / max(iterations, 1)
    per_class = sum(len(m.targets) - 1 for m in stages)
    per_class += sum(1 for m in stages if m.family is not None) + sum(m.cure for m in stages)
    shapes = sum(1 for m in stages if m.family not in (None, "exponential"))
    per_class += 2 if len(value) else 0
    return Mixture(
        k=k,
        shares=params["shares"],
        responsibilities=r,
        log_likelihood=ll,
        parameters=k * per_class + k - 1 + shapes,
        customers=customers,
        iterations=iterations,
        seconds_per_iteration=seconds,
        params=params,
    )


def _m_step(v, stages, by_stage, n_stages, value_owner, log_value, r, previous) -> dict:
    k = r.shape[1]
    w = r[v.customer]  # visits x K
    done = ~v.censored
    move = np.zeros((k, n_stages, n_stages))
    dwell_mean = np.ones((k, n_stages))
    never = np.zeros((k, n_stages))
    shape = np.ones(n_stages)
    for m in stages:
        here = by_stage[m.stage]
        ended, open_ = here & done, here & ~done
        for c in range(k):
            counts = np.bincount(v.next[ended], weights=w[ended, c], minlength=n_stages)
            counts = counts[list(m.targets)] + 1e-6  # keeps every seen move possible
            move[c, m.stage, list(m.targets)] = counts / counts.sum()
        if m.family is None:
            continue
        start = None
        if "shape" in previous:
            start = (
                previous["shape"][m.stage],
                previous["dwell_mean"][:, m.stage],
                previous["never"][:, m.stage],
            )
        shape[m.stage], dwell_mean[:, m.stage], never[:, m.stage] = _stage_dwell(
            m, v.duration[ended], v.duration[open_], w[ended], w[open_], start
        )
    out = {
        "move": move,
        "dwell_mean": dwell_mean,
        "never": never,
        "shape": shape,
        "shares": r.mean(axis=0),
    }
    if len(log_value):
        wv = r[value_owner]
        total = wv.sum(axis=0)
        mu = (wv * log_value[:, None]).sum(axis=0) / total
        var = (wv * (log_value[:, None] - mu) ** 2).sum(axis=0) / total
        out["value"] = (mu, np.sqrt(np.maximum(var, 1e-6)))
    return out


def _stage_dwell(
    m: StageModel,
    ended: np.ndarray,
    open_: np.ndarray,
    w_ended: np.ndarray,
    w_open: np.ndarray,
    start: tuple | None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted MLE of one stage's dwell law for all segments at once: one shape for the
    stage (as in a scenario), a mean and (with silent exits) a never-again share per
    segment."""
    k = w_ended.shape[1]
    free_shape = m.family != "exponential"
    if start is None:
        fit = fit_family(m.family, ended, open_, cure=m.cure, standard_errors=False)
        start = (fit.shape, np.full(k, fit.mean), np.full(k, max(fit.never, 0.05)))
    theta0 = np.r_[
        [math.log(start[0])] if free_shape else [],
        np.log(start[1]),
        special.logit(np.clip(start[2], 1e-4, 1 - 1e-4)) if m.cure else [],
    ]
    log_ended, log_open = np.log(ended), np.log(open_)
    n_ended = w_ended.sum(axis=0)

    def unpack(theta):
        shape = math.exp(theta[0]) if free_shape else 1.0
        i = 1 if free_shape else 0
        means = np.exp(theta[i : i + k])
        nevers = special.expit(theta[i + k :]) if m.cure else np.zeros(k)
        return shape, means, nevers

    def negative(theta):
        if np.any(np.abs(theta) > 50):
            return 1e300
        shape, means, nevers = unpack(theta)
        total = 0.0
        for c in range(k):
            lp = _log_pdf(m.family, shape, means[c], ended, log_ended)
            ls = _log_sf(m.family, shape, means[c], open_, log_open)
            if m.cure:
                q = min(max(float(nevers[c]), 1e-12), 1 - 1e-12)  # expit can round to 0 or 1
                total += lp @ w_ended[:, c] + n_ended[c] * math.log1p(-q)
                total += np.logaddexp(math.log(q), math.log1p(-q) + ls) @ w_open[:, c]
            else:
                total += lp @ w_ended[:, c] + ls @ w_open[:, c]
        return float(-total) if np.isfinite(total) else 1e300

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = optimize.minimize(negative, theta0, method="BFGS")
    return unpack(result.x)


def _e_step(v, stages, by_stage, customers, value_owner, log_value, params) -> np.ndarray:
    """Per customer and segment: the log-likelihood of everything they did."""
    move, dwell_mean, never = params["move"], params["dwell_mean"], params["never"]
    k = move.shape[0]
    done = ~v.censored
    out = np.zeros((customers, k))
    with np.errstate(divide="ignore"):
        for c in range(k):
            ll = np.zeros(len(v.stage))
            ll[done] = np.log(move[c, v.stage[done], v.next[done]])
            for m in stages:
                if m.family is None:
                    continue
                here = by_stage[m.stage]
                ended, open_ = here & done, here & ~done
                mean, shape = dwell_mean[c, m.stage], params["shape"][m.stage]
                d = v.duration
                ll[ended] += _log_pdf(m.family, shape, mean, d[ended], np.log(d[ended]))
                log_sf = _log_sf(m.family, shape, mean, d[open_], np.log(d[open_]))
                if m.cure:
                    q = never[c, m.stage]
                    ll[ended] += math.log1p(-q) if q < 1 else -np.inf
                    ll[open_] += np.logaddexp(math.log(q) if q > 0 else -np.inf,
                                              math.log1p(-q) + log_sf)  # fmt: skip
                else:
                    ll[open_] += log_sf
            out[:, c] = np.bincount(v.customer, weights=ll, minlength=customers)
            if "value" in params:
                mu, sigma = params["value"][0][c], params["value"][1][c]
                z = (log_value - mu) / sigma
                lv = -log_value - math.log(sigma) - 0.5 * math.log(2 * math.pi) - 0.5 * z**2
                out[:, c] += np.bincount(value_owner, weights=lv, minlength=customers)
    return np.where(np.isfinite(out), out, -1e300)
