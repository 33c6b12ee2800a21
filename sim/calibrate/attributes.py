r"""Customer attributes on transitions: a multinomial logit per stage, by maximum likelihood.

Where each customer carries numeric attributes :math:`x` (age, tenure, a 0/1 flag ...), the
move out of a stage with targets :math:`j = 0 .. J-1` is modelled as

.. math:: P(j \mid x) = \frac{e^{\alpha_j + \beta_j^\top x}}{\sum_k e^{\alpha_k + \beta_k^\top x}},
   \qquad \alpha_0 = 0,\ \beta_0 = 0,

which is exactly the effect rule of :mod:`sim.model.logit`: with base probabilities
:math:`p_j = P(j \mid \bar x)` at the customers' mean attributes and one effect per
(transition, attribute) with ``coefficient`` :math:`\beta_{ja}` and ``reference``
:math:`\bar x_a`, :math:`p_j e^{\delta_j} / \sum_k p_k e^{\delta_k}` gives :math:`P(j \mid x)`
back. So a fitted scenario carries the attributes the same way a hand-written one does.

The likelihood is maximised with the exact gradient and Hessian (trust region); standard
errors come from the inverse of the observed information, intervals are Wald intervals.
Only completed visits count: a visit still open at the end of the data has no choice yet.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from sim.errors import EventLogError

#: Above this many distinct attribute combinations, the fitted scenario's personas are
#: groups of customers binned by attribute quartiles (each at its mean attributes).
MAX_GROUPS = 16

#: A coefficient this large on the log-odds scale means the data separate the choices
#: perfectly: the likelihood has no maximum.
SEPARATION = 25.0


@dataclass(frozen=True)
class LogitFit:
    """A multinomial logit of one stage: targets[0] is the reference choice."""

    targets: tuple[int, ...]
    attributes: tuple[str, ...]
    intercepts: np.ndarray  # J - 1
    coefficients: np.ndarray  # (J - 1) x A
    covariance: np.ndarray  # ((J - 1)(A + 1))^2, per target: intercept then coefficients
    log_likelihood: float
    visits: int

    def standard_errors(self) -> np.ndarray:
        """(J - 1) x A standard errors of the coefficients."""
        a = len(self.attributes)
        se = np.sqrt(np.maximum(np.diag(self.covariance), 0.0)).reshape(-1, a + 1)
        return se[:, 1:]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Choice probabilities (rows x J) at attribute rows ``x``."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        eta = np.zeros((len(x), len(self.targets)))
        eta[:, 1:] = self.intercepts[None, :] + x @ self.coefficients.T
        return np.exp(eta - special.logsumexp(eta, axis=1, keepdims=True))


def fit_logit(
    choice: np.ndarray, n_choices: int, x: np.ndarray, attributes: Sequence[str], where: str
) -> LogitFit:
    """Maximum likelihood multinomial logit of ``choice`` (0 .. n_choices - 1, 0 the
    reference) on the attribute matrix ``x`` (visits x attributes)."""
    x = np.asarray(x, dtype=float)
    n, a = x.shape
    j = n_choices - 1
    design = np.column_stack([np.ones(n), x])  # n x (A + 1)
    y = np.zeros((n, n_choices))
    y[np.arange(n), choice] = 1.0
    for k, name in enumerate(attributes):
        if np.ptp(x[:, k]) == 0:
            raise EventLogError(
                f"{where}: attribute '{name}' takes one value ({x[0, k]:g}) on every visit, so "
                "its effect cannot be estimated",
                field=name,
                fix="leave that attribute out, or fit on data where it varies",
            )

    def unpack(theta: np.ndarray) -> np.ndarray:
        return theta.reshape(j, a + 1)

    def probabilities(theta: np.ndarray) -> np.ndarray:
        eta = np.zeros((n, n_choices))
        eta[:, 1:] = design @ unpack(theta).T
        return np.exp(eta - special.logsumexp(eta, axis=1, keepdims=True))

    def negative(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = np.zeros((n, n_choices))
        eta[:, 1:] = design @ unpack(theta).T
        log_p = eta - special.logsumexp(eta, axis=1, keepdims=True)
        gradient = (y - np.exp(log_p))[:, 1:].T @ design  # J-1 x A+1
        return -float(np.sum(y * log_p)), -gradient.ravel()

    def information(theta: np.ndarray) -> np.ndarray:
        p = probabilities(theta)[:, 1:]  # n x J-1
        out = np.empty((j, a + 1, j, a + 1))
        for r in range(j):
            for c in range(j):
                w = p[:, r] * ((r == c) - p[:, c])
                out[r, :, c, :] = design.T @ (design * w[:, None])
        return out.reshape(j * (a + 1), j * (a + 1))

    # start from the choice shares: the intercept-only maximum
    shares = np.maximum(y.mean(axis=0), 0.5 / n)
    theta0 = np.zeros((j, a + 1))
    theta0[:, 0] = np.log(shares[1:] / shares[0])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = optimize.minimize(
            negative, theta0.ravel(), jac=True, hess=information, method="trust-exact"
        )
    theta = unpack(result.x)
    info = information(result.x)
    if np.any(np.abs(theta[:, 1:]) > SEPARATION) or not np.all(np.isfinite(theta)):
        raise EventLogError(
            f"{where}: the attributes separate the choices perfectly (a coefficient runs off "
            "to infinity), so the logit has no maximum",
            field=", ".join(attributes),
            fix="merge rare choices, leave out the attribute that decides them, or add data",
        )
    try:
        covariance = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        raise EventLogError(
            f"{where}: the attributes {', '.join(attributes)} are collinear (one is a "
            "combination of the others), so their effects cannot be told apart",
            field=", ".join(attributes),
            fix="leave one of them out",
        ) from None
    return LogitFit(
        targets=tuple(range(n_choices)),
        attributes=tuple(attributes),
        intercepts=theta[:, 0].copy(),
        coefficients=theta[:, 1:].copy(),
        covariance=covariance,
        log_likelihood=-float(result.fun),
        visits=n,
    )


def attribute_matrix(frame: pd.DataFrame, names: Sequence[str], customers: int) -> np.ndarray:
    """The customers x attributes matrix of ``frame`` (one row per customer, in the log's
    customer order), checked: every named column present, numeric and complete."""
    if not isinstance(frame, pd.DataFrame):
        raise EventLogError(
            f"attributes must be a DataFrame with one row per customer, not {type(frame).__name__}",
            field="attributes",
            fix="e.g. sim.calibrate.read_attributes(path, columns, customer=..., time=...)",
        )
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise EventLogError(
            f"no attribute column(s) {', '.join(missing)}",
            field="attributes",
            fix=f"the attribute table has {', '.join(map(str, frame.columns))}",
        )
    if len(frame) != customers:
        raise EventLogError(
            f"the attribute table has {len(frame)} rows but the log {customers} customers",
            field="attributes",
            fix="give one row per customer of the log, in the log's customer order "
            "(read_attributes does this)",
        )
    out = np.empty((customers, len(names)))
    for k, name in enumerate(names):
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise EventLogError(
                f"attribute '{name}': {int(bad.sum())} customers have no number "
                f"(e.g. {frame[name].to_numpy()[bad][:3].tolist()})",
                field=name,
                fix="give a number for every customer (code categories as 0/1 columns)",
            )
        out[:, k] = values
    return out


def attribute_groups(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group of each customer, attribute values of each group): the distinct attribute
    rows when there are at most MAX_GROUPS, else quartile bins of each attribute, each group
    at its customers' mean values."""
    rows, group = np.unique(x, axis=0, return_inverse=True)
    if len(rows) <= MAX_GROUPS:
        return group.ravel(), rows
    bins = np.zeros(len(x), dtype=np.int64)
    for k in range(x.shape[1]):
        edges = np.unique(np.quantile(x[:, k], [0.25, 0.5, 0.75]))
        bins = bins * 4 + np.searchsorted(edges, x[:, k], side="right")
    _, group = np.unique(bins, return_inverse=True)
    group = group.ravel()
    counts = np.bincount(group)
    means = np.stack([np.bincount(group, weights=x[:, k]) / counts for k in range(x.shape[1])])
    return group, means.T


def wald_interval(estimate: float, se: float, confidence: float) -> tuple[float, float]:
    """Wald interval estimate -/+ z se."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    if not math.isfinite(se):
        return math.nan, math.nan
    return estimate - z * se, estimate + z * se
