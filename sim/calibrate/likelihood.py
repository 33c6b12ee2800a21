r"""Censored maximum likelihood for dwell times, with an optional never-again share (cure).

A visit to a stage lasts :math:`T` days, drawn from a family :math:`F_\theta` (exponential,
gamma, lognormal, Weibull). Visits still open when the data end are right-censored at their
elapsed time :math:`t`. Where customers may leave *silently* (churn nobody records), a share
:math:`c` of the visits never ends in an observed move (a mixture "cure" model):

.. math::

    L(\theta, c) = \prod_{\text{observed}} (1 - c)\, f_\theta(t_i)
                   \prod_{\text{censored}} \bigl[c + (1 - c)\, S_\theta(t_j)\bigr]

With :math:`c = 0` this is the ordinary censored likelihood. Parameters are optimised on the log
scale (and :math:`c` on the logit scale) so that every step is valid; standard errors come from
the observed information (a numerical Hessian).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from sim.errors import ScenarioError
from sim.model.distributions import (
    Distribution,
    Empirical,
    Exponential,
    Fixed,
    Gamma,
    Lognormal,
    Weibull,
)

#: Dwell-time families tried, in the order they are reported.
FAMILIES = ("exponential", "gamma", "lognormal", "weibull")


def _shape_scale(family: str, log_params: np.ndarray) -> tuple[float, float]:
    """(shape, mean) on the natural scale from optimiser coordinates."""
    if family == "exponential":
        return 1.0, math.exp(log_params[0])
    return math.exp(log_params[0]), math.exp(log_params[1])


def _log_pdf(family: str, shape: float, mean: float, x: np.ndarray, logx: np.ndarray) -> Any:
    """log f(x) of the family given as (shape, mean); ``logx`` is log(x), computed once."""
    if family == "exponential":
        return -math.log(mean) - x / mean
    if family == "gamma":
        # special functions directly: scipy.stats' gamma is far slower on big arrays
        rate = shape / mean
        return (shape - 1) * logx - x * rate - special.gammaln(shape) + shape * math.log(rate)
    if family == "lognormal":
        mu = math.log(mean) - 0.5 * shape**2
        z = (logx - mu) / shape
        return -logx - math.log(shape) - 0.5 * math.log(2 * math.pi) - 0.5 * z**2
    if family == "weibull":
        log_scale = math.log(mean) - special.gammaln(1.0 + 1.0 / shape)
        u = shape * (logx - log_scale)
        return math.log(shape) + u - logx - np.exp(u)
    raise ValueError(family)


def _log_sf(family: str, shape: float, mean: float, x: np.ndarray, logx: np.ndarray) -> Any:
    """log S(x) of the family given as (shape, mean); ``logx`` is log(x), computed once."""
    if family == "exponential":
        return -x / mean
    if family == "gamma":
        with np.errstate(divide="ignore"):
            return np.log(special.gammaincc(shape, x * (shape / mean)))
    if family == "lognormal":
        mu = math.log(mean) - 0.5 * shape**2
        return special.log_ndtr(-(logx - mu) / shape)
    if family == "weibull":
        log_scale = math.log(mean) - special.gammaln(1.0 + 1.0 / shape)
        # far in the tail (or at parameters the optimiser tries on its way) S(x) underflows:
        # log S = -inf is the right value there, and the optimiser steps away from it
        with np.errstate(over="ignore"):
            return -np.exp(shape * (logx - log_scale))
    raise ValueError(family)


def distribution(family: str, shape: float, mean: float) -> Distribution:
    """The model's distribution object for a fitted family."""
    if family == "exponential":
        return Exponential(mean=mean)
    if family == "gamma":
        return Gamma(shape=shape, mean=mean)
    if family == "lognormal":
        return Lognormal(mean=mean, sigma=shape)
    return Weibull(shape=shape, mean=mean)


def cdf(family: str, shape: float, mean: float, x: np.ndarray) -> np.ndarray:
    """Distribution function of the family at ``x``."""
    x = np.maximum(x, 1e-300)
    return -np.expm1(_log_sf(family, shape, mean, x, np.log(x)))


@dataclass(frozen=True)
class DwellFit:
    """One family fitted to censored durations (and, with ``cure``, a never-again share)."""

    family: str
    shape: float  # 1 for the exponential; sigma for the lognormal
    mean: float
    never: float  # share of visits that never end in an observed move (0 without cure)
    never_se: float  # standard error of ``never`` (delta method), NaN without cure
    log_likelihood: float
    parameters: int
    observed: int
    censored: int
    converged: bool
    #: standard errors of log(mean) and log(shape) from the observed information (the inverse
    #: Hessian of the log-likelihood at the optimum); NaN where not computed or not defined
    log_mean_se: float = math.nan
    log_shape_se: float = math.nan

    @property
    def aic(self) -> float:
        """Akaike's information criterion, 2k - 2 log L."""
        return 2 * self.parameters - 2 * self.log_likelihood

    def distribution(self) -> Distribution:
        """The fitted law as the model's distribution object."""
        return distribution(self.family, self.shape, self.mean)

    def interval(self, parameter: str, confidence: float) -> tuple[float, float]:
        """Wald interval for ``'mean'`` or ``'shape'`` on the log scale (so it stays
        positive), from the observed information: exp(log x -/+ z se)."""
        value, se = (
            (self.mean, self.log_mean_se)
            if parameter == "mean"
            else (self.shape, self.log_shape_se)
        )
        if not math.isfinite(se):
            return (math.nan, math.nan)
        z = stats.norm.ppf(0.5 + confidence / 2)
        return value * math.exp(-z * se), value * math.exp(z * se)

    def never_interval(self, confidence: float) -> tuple[float, float]:
        """Interval for the never-again share, symmetric on the logit scale."""
        if not math.isfinite(self.never_se) or not 0 < self.never < 1:
            return (math.nan, math.nan)
        z = stats.norm.ppf(0.5 + confidence / 2)
        logit_se = self.never_se / (self.never * (1 - self.never))
        centre = special.logit(self.never)
        return float(special.expit(centre - z * logit_se)), float(
            special.expit(centre + z * logit_se)
        )

    def ks_distance(self, observed: np.ndarray, censored: np.ndarray, km: Any = None) -> float:
        """Largest gap between the Kaplan-Meier curve of the data and the fitted curve.

        A distance, not a test: with estimated parameters and censoring its null
        distribution is not the Kolmogorov one, so no p-value is given.
        """
        if len(observed) == 0:
            return math.nan
        km = km if km is not None else kaplan_meier(observed, censored)
        days = km.quantiles
        fitted = (1 - self.never) * cdf(self.family, self.shape, self.mean, days)
        empirical = 1 - km.probabilities
        before = np.r_[0.0, empirical[:-1]]  # the step's left limit
        return float(np.max(np.maximum(np.abs(empirical - fitted), np.abs(before - fitted))))


def kaplan_meier(observed: np.ndarray, censored: np.ndarray) -> Any:
    """The Kaplan-Meier survival function of censored durations (scipy's ``ecdf``)."""
    return stats.ecdf(stats.CensoredData(uncensored=observed, right=censored)).sf


def _start(family: str, observed: np.ndarray, censored: np.ndarray) -> np.ndarray:
    """Starting point: a fit to the complete durations (scipy's ``fit``), on log scale."""
    x = observed if len(observed) >= 2 else np.r_[observed, censored]
    x = x[x > 0]
    mean = float(np.mean(x)) if len(x) else 1.0
    if family == "exponential":
        return np.array([math.log(mean)])
    cv2 = float(np.var(x) / mean**2) if len(x) >= 2 and np.var(x) > 0 else 1.0
    if family == "lognormal":
        sigma = math.sqrt(math.log1p(cv2))
        return np.array([math.log(max(sigma, 1e-3)), math.log(mean)])
    if family == "weibull" and len(x) >= 5:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                k, _, _ = stats.weibull_min.fit(x, floc=0)
                if math.isfinite(k) and k > 0:
                    return np.array([math.log(k), math.log(mean)])
            except (ValueError, RuntimeError, FloatingPointError):
                pass
    return np.array([math.log(max(1.0 / cv2, 1e-3)), math.log(mean)])


def _hessian(f, x: np.ndarray, step: float = 1e-4) -> np.ndarray:
    n = len(x)
    h = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.eye(n)[i] * step, np.eye(n)[j] * step
            h[i, j] = h[j, i] = (
                f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            ) / (4 * step * step)
    return h


def fit_family(
    family: str,
    observed: np.ndarray,
    censored: np.ndarray,
    *,
    cure: bool = False,
    shape: float | None = None,
    weights: tuple[np.ndarray, np.ndarray] | None = None,
    standard_errors: bool = True,
    start: tuple[float, float] | None = None,
) -> DwellFit:
    """Maximum-likelihood fit of one family to durations ``observed`` (ended) and
    ``censored`` (still open at the end of the data), all > 0.

    With ``cure`` a never-again share is estimated beside the law. With ``shape`` given the
    shape is held there and only the mean (and the share) is fitted: a persona's accelerated
    time on a stage's pooled law. ``weights`` (for ``observed``, for ``censored``) weigh each
    duration's log-likelihood (EM over latent personas); ``start`` (mean, never share)
    starts the optimiser there when the shape is held.
    """
    observed = np.asarray(observed, dtype=float)
    censored = np.asarray(censored, dtype=float)
    free_shape = family != "exponential" and shape is None
    given = start
    start = _start(family, observed, censored)
    if not free_shape:
        start = start[-1:]
    if cure:
        share = len(censored) / max(len(observed) + len(censored), 1)
        start = np.r_[start, special.logit(min(max(share / 2, 0.02), 0.98))]
    if given is not None and not free_shape:
        start[0] = math.log(given[0])
        if cure:
            start[-1] = special.logit(min(max(given[1], 1e-4), 1 - 1e-4))

    log_observed, log_censored = np.log(observed), np.log(censored)
    w_obs, w_cens = weights if weights is not None else (None, None)
    n_obs = float(np.sum(w_obs)) if w_obs is not None else len(observed)

    def total_of(values: np.ndarray, w: np.ndarray | None) -> float:
        return float(values.sum() if w is None else values @ w)

    def unpack(theta: np.ndarray) -> tuple[float, float, float]:
        if free_shape:
            k, m = math.exp(theta[0]), math.exp(theta[1])
        else:
            k = 1.0 if family == "exponential" else float(shape)
            m = math.exp(theta[0])
        c = float(special.expit(theta[-1])) if cure else 0.0
        return k, m, c

    def negative(theta: np.ndarray) -> float:
        if np.any(np.abs(theta) > 50):
            return 1e300
        k, m, c = unpack(theta)
        lp = _log_pdf(family, k, m, observed, log_observed)
        ls = _log_sf(family, k, m, censored, log_censored)
        if cure:
            total = total_of(lp, w_obs) + n_obs * math.log1p(-c) if c < 1 else -np.inf
            total += total_of(
                np.logaddexp(math.log(c) if c > 0 else -np.inf, math.log1p(-c) + ls), w_cens
            )
        else:
            total = total_of(lp, w_obs) + total_of(ls, w_cens)
        return float(-total) if np.isfinite(total) else 1e300

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = optimize.minimize(negative, start, method="BFGS")
        if not result.success:
            result = optimize.minimize(
                negative, result.x, method="Nelder-Mead", options={"maxiter": 4000}
            )
        theta = result.x
        k, m, c = unpack(theta)
        se = se_mean = se_shape = math.nan
        if standard_errors:
            # theta is (log shape, log mean[, logit never]) or (log mean[, logit never])
            try:
                cov = np.linalg.inv(_hessian(negative, theta))
            except np.linalg.LinAlgError:
                cov = np.full((len(theta), len(theta)), np.nan)
            var = np.diag(cov)
            var = np.where(np.isfinite(var) & (var > 0), var, np.nan)
            if cure and math.isfinite(var[-1]):
                se = math.sqrt(var[-1]) * c * (1 - c)
            se_mean = float(np.sqrt(var[1 if free_shape else 0]))
            if free_shape:
                se_shape = float(np.sqrt(var[0]))
    return DwellFit(
        family=family,
        shape=k,
        mean=m,
        never=c,
        never_se=se,
        log_likelihood=-float(result.fun),
        parameters=len(theta),
        observed=len(observed),
        censored=len(censored),
        converged=bool(result.success) and float(result.fun) < 1e299,
        log_mean_se=se_mean,
        log_shape_se=se_shape,
    )


def order_value_law(x: np.ndarray) -> tuple[Distribution, float]:
    """Lognormal or gamma by AIC; a fixed value when all are equal; the values themselves
    (empirical) when neither family can be fitted to them."""
    if len(x) < 2 or np.all(x == x[0]):
        return Fixed(float(x[0])), math.nan
    candidates: list[tuple[float, Distribution]] = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            s, _, scale = stats.lognorm.fit(x, floc=0)
            aic = 4 - 2 * float(np.sum(stats.lognorm.logpdf(x, s, scale=scale)))
            mean = math.exp(math.log(scale) + s * s / 2)
            candidates.append((aic, Lognormal(mean=mean, sigma=float(s))))
        except (ArithmeticError, ValueError, RuntimeError, ScenarioError):
            pass
        try:
            a, _, gscale = stats.gamma.fit(x, floc=0)
            aic = 4 - 2 * float(np.sum(stats.gamma.logpdf(x, a, scale=gscale)))
            candidates.append((aic, Gamma(shape=float(a), mean=float(a * gscale))))
        except (ArithmeticError, ValueError, RuntimeError, ScenarioError):
            pass
    usable = [(aic, law) for aic, law in candidates if math.isfinite(aic)]
    if not usable:
        return Empirical(tuple(float(v) for v in x)), math.nan
    aic, law = min(usable, key=lambda c: c[0])
    return law, aic


def order_value_intervals(x: np.ndarray, law: Distribution, confidence: float) -> dict:
    """Wald intervals for an order-value law's mean and its shape (gamma shape, lognormal
    sigma), on the log scale from the observed information: the inverse Hessian of the
    log-likelihood at scipy's fit, in (log shape, log mean). NaN for a fixed or empirical
    law."""
    nan = {"mean_ci": (math.nan, math.nan), "shape_ci": (math.nan, math.nan)}
    if not isinstance(law, Gamma | Lognormal) or len(x) < 2:
        return nan

    def negative(theta: np.ndarray) -> float:
        shape, mean = math.exp(theta[0]), math.exp(theta[1])
        if isinstance(law, Gamma):
            lp = stats.gamma.logpdf(x, shape, scale=mean / shape)
        else:
            lp = stats.lognorm.logpdf(x, shape, scale=math.exp(math.log(mean) - shape**2 / 2))
        total = float(np.sum(lp))
        return -total if math.isfinite(total) else 1e300

    shape = law.shape if isinstance(law, Gamma) else law.sigma
    theta = np.array([math.log(shape), math.log(law.mean)])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            var = np.diag(np.linalg.inv(_hessian(negative, theta)))
        except np.linalg.LinAlgError:
            return nan
    z = stats.norm.ppf(0.5 + confidence / 2)
    out = {}
    for key, value, v in (("shape_ci", shape, var[0]), ("mean_ci", law.mean, var[1])):
        if math.isfinite(v) and v > 0:
            se = math.sqrt(v)
            out[key] = (value * math.exp(-z * se), value * math.exp(z * se))
        else:
            out[key] = (math.nan, math.nan)
    return out
