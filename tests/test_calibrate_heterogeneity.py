"""personas='gamma': every customer's own purchase rate and never-again share, recovered.

Orders are drawn directly (numpy, not the engine): each customer has a rate from
Gamma(r, alpha days) and a never-again share from Beta(a, b); after each order they stop for
good with their share, else wait an exponential gap; the data end at day 365.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sim
from sim.calibrate.heterogeneity import loop_log_likelihood
from sim.calibrate.table import read_table
from sim.cli import main
from sim.errors import EventLogError
from tests.test_calibrate import observed_log, truth

TRUE = {"r": 0.8, "alpha": 40.0, "a": 1.0, "b": 3.0}
HORIZON = 365.0


def orders(n: int, seed: int, **moved: float) -> pd.DataFrame:
    """customer, day of every order (first orders in the first 90 days)."""
    t_ = {**TRUE, **moved}
    rng = np.random.default_rng(seed)
    rate = rng.gamma(t_["r"], 1 / t_["alpha"], n)
    never = rng.beta(t_["a"], t_["b"], n)
    t = rng.uniform(0, 90, n)
    alive = np.ones(n, dtype=bool)
    rows = [(np.arange(n), t.copy())]
    while alive.any():
        alive &= rng.random(n) >= never
        t = t + rng.exponential(1 / rate)
        alive &= t <= HORIZON
        rows.append((np.flatnonzero(alive), t[alive]))
    return pd.DataFrame(
        {
            "customer": np.concatenate([c for c, _ in rows]),
            "day": np.concatenate([d for _, d in rows]),
        }
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[sim.Calibrator, sim.EventLog]:
    path = tmp_path_factory.mktemp("gamma") / "orders.csv"
    orders(3000, seed=1).to_csv(path, index=False)
    log = read_table(path, customer="customer", time="day", until=HORIZON)
    return sim.Calibrator(personas="gamma").fit(log), log


def likelihood_ratio(fit: sim.Calibrator, log: sim.EventLog, **moved: float) -> float:
    """2 (log L at the estimate - log L at the truth, possibly moved)."""
    v = fit._visits
    s, n = log.stages.index("post_purchase"), int(log.customers.sum())
    here = v.stage == s
    ended, open_ = here & ~v.censored, here & v.censored
    x = np.bincount(v.customer[ended], minlength=n).astype(float)
    t_x = np.bincount(v.customer[ended], weights=v.duration[ended], minlength=n)
    o = np.bincount(v.customer[open_], weights=v.duration[open_], minlength=n)
    has_open = np.bincount(v.customer[open_], minlength=n) > 0
    theta = np.log([{**TRUE, **moved}[k] for k in ("r", "alpha", "a", "b")])
    at_truth = loop_log_likelihood(theta, x, t_x, o, has_open)
    return 2 * (float(fit.heterogeneity_["log_likelihood"].iloc[0]) - at_truth)


def test_rates_and_never_again_shares_are_recovered(fitted):
    """Each parameter's 95% interval holds the truth, and the likelihood-ratio statistic of
    the truth lies below the chi-square(4) 95% point; the twin with r moved from 0.8 to 1.2 is
    rejected by both."""
    fit, log = fitted
    h = fit.heterogeneity_.set_index("parameter")
    for name, value in TRUE.items():
        assert h.loc[name, "ci_low"] <= value <= h.loc[name, "ci_high"], name
    limit = stats.chi2.ppf(0.95, 4)
    assert 0 <= likelihood_ratio(fit, log) < limit
    assert not h.loc["r", "ci_low"] <= 1.2 <= h.loc["r", "ci_high"]
    assert likelihood_ratio(fit, log, r=1.2) > limit


def test_quadrature_personas_carry_the_fitted_laws(fitted):
    """The personas' shares sum to 1; their mean rate is r / alpha and their mean
    never-again share a / (a + b) (quadrature is exact for these); the scenario simulates
    and passes its check on the data it was fitted to."""
    fit, log = fitted
    h = fit.heterogeneity_.set_index("parameter")["estimate"]
    p = fit.personas_
    assert p["share"].sum() == pytest.approx(1.0)
    assert (p["share"] / p["mean gap (days)"]).sum() == pytest.approx(h["r"] / h["alpha"])
    assert (p["share"] * p["never again"]).sum() == pytest.approx(h["a"] / (h["a"] + h["b"]))
    s = fit.scenario_
    assert len(s.personas) == len(p) and math.isclose(sum(x.share for x in s.personas), 1.0)
    assert fit.check(log, replications=4).passed


def test_gamma_personas_need_a_repeat_purchase_loop():
    """A journey whose churn is recorded has no silent loop: a message with the fix."""
    log = observed_log(seed=2, size=400)  # quiet() removed churn rows: loop is there
    sim.Calibrator(personas="gamma").fit(log)
    loud = sim.run(truth(size=400), seed=2).log  # churn recorded: no silent exit
    with pytest.raises(EventLogError, match="needs one repeat-purchase loop"):
        sim.Calibrator(personas="gamma").fit(loud)


def test_sim_fit_personas_gamma(tmp_path, capsys):
    """`sim fit orders.csv --personas gamma` prints the four parameters and writes a
    scenario whose personas carry them."""
    path = tmp_path / "orders.csv"
    orders(600, seed=3).to_csv(path, index=False)
    out = tmp_path / "fitted.toml"
    args = ["fit", str(path), "--customer", "customer", "--time", "day", "--personas", "gamma"]
    assert main([*args, "-o", str(out)]) == 0
    assert "own purchase rate (gamma)" in capsys.readouterr().out
    assert len(sim.load_scenario(out).personas) > 1
