"""Out-of-sample forecast on real customers: the CDNOW sample against BG/NBD.

Data: the CDNOW sample (2,357 customers who first bought in the first quarter of 1997, their
purchases to the end of June 1998) as shipped by the ``lifetimes`` package; it is read from
that package at run time and never stored here. Purchases are counted per customer and day.

Split: fit on weeks 1-39 (1997-01-01 to 1997-09-30), forecast the repeat purchases of weeks
40-78 week by week and in total.

- Journey model: ``sim fit``'s transaction-log route (purchase -> wait a gap from F -> buy
  again, or never), with the first k - 1 orders in stages of their own (``--repeat-steps``;
  k chosen inside the calibration weeks: fit weeks 1-26, forecast 27-39), every customer
  warm-started at the end of the calibration weeks from their own state (order step reached,
  days silent since their last order: the never-again share updated by that silence and the
  rest of the gap drawn given it), ``sim.calibrate.check`` with ``holdout_from``; mean of R
  replications.
- Journey model with ``personas="gamma"`` (``sim fit --personas gamma``): one order loop,
  every customer with their own purchase rate (gamma) and never-again share (beta), fitted
  by maximum likelihood and simulated through 128 quadrature personas; warm-started at the
  end of the calibration weeks with each customer's persona drawn from the posterior given
  their own history (their gaps, order count and current silence): a conditional forecast.
- BG/NBD (``lifetimes.BetaGeoFitter``) fitted on the same weeks: its unconditional forecast
  for the same customers, and its conditional forecast (each customer's expectation given
  their own calibration history: frequency and recency). Beside it the conditional forecast
  of lifetimes' modified BG/NBD (``ModifiedBetaGeoFitter``: a customer may stop after any
  order, the first included), the same model family as the gamma personas.

Both run here, on the same split, in the same process. Needs ``pip install -e ".[cdnow]"``
(``lifetimes`` 0.11.3 imports and fits with numpy 2 / pandas 3; its data helpers do not, so the
summary it needs is computed here).

Run: ``python benchmarks/calibration_cdnow.py [--replications R]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import sim
from sim.calibrate import check, read_table

START = pd.Timestamp("1997-01-01")
CALIBRATION_WEEKS, WEEKS = 39, 78


def load_cdnow() -> pd.DataFrame:
    """Transactions of the CDNOW sample: customer, date, amount (one row per order line)."""
    try:
        import lifetimes.datasets as datasets
    except ImportError:
        sys.exit("this benchmark needs the lifetimes package: pip install lifetimes")
    path = Path(datasets.__file__).parent / "CDNOW_sample.txt"
    tx = pd.read_csv(
        path, sep=r"\s+", header=None, names=["customer", "index", "date", "cds", "amount"]
    )
    tx["date"] = pd.to_datetime(tx["date"].astype(str), format="%Y%m%d")
    return tx[["customer", "date", "amount"]]


def bgnbd_forecasts(days: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict]:
    """Weekly repeat purchases of weeks 40-78 by BG/NBD: unconditional and conditional."""
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter

    cut = START + pd.Timedelta(weeks=CALIBRATION_WEEKS)
    cal = days[days["date"] < cut]
    first = cal.groupby("customer")["date"].min()
    last = cal.groupby("customer")["date"].max()
    frequency = cal.groupby("customer").size() - 1
    recency = (last - first).dt.days / 7
    age = (cut - first).dt.days / 7
    started = time.perf_counter()
    bg = BetaGeoFitter().fit(frequency, recency, age)
    seconds = time.perf_counter() - started
    edges = np.arange(CALIBRATION_WEEKS, WEEKS + 1, dtype=float)
    # unconditional: E[X(t)] from each customer's first purchase, differenced by week
    since = (edges[None, :] * 7 - (first - START).dt.days.to_numpy()[:, None]) / 7
    cum = np.stack([bg.expected_number_of_purchases_up_to_time(s) for s in since.T], axis=1)
    unconditional = np.diff(cum, axis=1).sum(axis=0)
    # conditional on each customer's history, for t weeks after the end of calibration
    cond = np.stack(
        [
            bg.conditional_expected_number_of_purchases_up_to_time(t, frequency, recency, age)
            for t in edges - CALIBRATION_WEEKS
        ],
        axis=1,
    )
    conditional = np.diff(cond, axis=1).sum(axis=0)
    mbg = ModifiedBetaGeoFitter().fit(frequency, recency, age)
    modified = np.stack(
        [
            mbg.conditional_expected_number_of_purchases_up_to_time(t, frequency, recency, age)
            for t in edges - CALIBRATION_WEEKS
        ],
        axis=1,
    )
    modified = np.diff(modified, axis=1).sum(axis=0)
    info = {"params": dict(bg.params_.round(4)), "seconds": seconds, "modified": modified}
    return unconditional, conditional, info


def errors(forecast: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """Total error (%), weekly mean absolute error and the cumulative error at week 78."""
    total_obs, total = observed.sum(), forecast.sum()
    return {
        "total": float(total),
        "total_error_pct": float(100 * (total - total_obs) / total_obs),
        "weekly_mae": float(np.mean(np.abs(forecast - observed))),
        "weekly_mape_pct": float(100 * np.mean(np.abs(forecast - observed) / observed)),
    }


def journey_forecast(
    path: Path,
    fit_weeks: int,
    end_weeks: int,
    steps: int,
    replications: int,
    personas: str | None = None,
) -> tuple[sim.Calibrator, pd.DataFrame, float]:
    """Fit on weeks 1..fit_weeks, simulate to end_weeks; weekly observed and simulated
    purchases of the weeks after the fit, and the seconds the fit took."""
    cols = {"customer": "customer", "time": "date", "value": "amount", "repeat_steps": steps}
    cut = START + pd.Timedelta(weeks=fit_weeks) - pd.Timedelta(seconds=1)
    end = START + pd.Timedelta(weeks=end_weeks)  # the data hold nothing on that day
    calibration = read_table(path, **cols, until=str(cut))
    full = read_table(path, **cols, until=str(end))
    started = time.perf_counter()
    fit = sim.Calibrator(personas=personas).fit(calibration)
    seconds = time.perf_counter() - started
    result = check(fit, full, replications=replications, holdout_from=fit_weeks * 7.0)
    weekly = result.weekly[result.weekly["item"].astype(int) < end_weeks]
    return fit, weekly, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--max-steps", type=int, default=5)
    parser.add_argument(
        "--personas",
        action="store_true",
        help="also forecast with latent personas (EM, K <= 4 by BIC; one order step)",
    )
    args = parser.parse_args()
    tx = load_cdnow()
    # purchases counted per customer and day (the BG/NBD convention); amounts summed
    days = tx.groupby(["customer", "date"], as_index=False)["amount"].sum()
    steps_range = range(1, args.max_steps + 1)
    tracemalloc.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cdnow.csv"
        days.assign(date=days["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
        # the number of order steps is chosen inside the calibration weeks: fit weeks 1-26,
        # forecast weeks 27-39; the holdout weeks 40-78 play no part in the choice
        inner = {}
        for k in steps_range:
            _, w, _ = journey_forecast(path, 26, CALIBRATION_WEEKS, k, args.replications)
            inner[k] = float(np.mean(np.abs(w["simulated"] - w["observed"])))
        chosen = min(inner, key=inner.get)
        outer = {}
        for k in steps_range:
            outer[k] = journey_forecast(path, CALIBRATION_WEEKS, WEEKS, k, args.replications)
        gamma = journey_forecast(
            path, CALIBRATION_WEEKS, WEEKS, 1, args.replications, personas="gamma"
        )
        latent = None
        if args.personas:
            latent = journey_forecast(
                path, CALIBRATION_WEEKS, WEEKS, 1, args.replications, personas="auto"
            )
    journey_seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    fit, weekly, fit_seconds = outer[chosen]
    observed = weekly["observed"].to_numpy()
    ours = weekly["simulated"].to_numpy()
    started = time.perf_counter()
    unconditional, conditional, bg = bgnbd_forecasts(days)
    bg_seconds = time.perf_counter() - started

    print(__doc__.splitlines()[0])
    print(
        f"{days['customer'].nunique()} customers; calibration weeks 1-{CALIBRATION_WEEKS}, "
        f"holdout weeks {CALIBRATION_WEEKS + 1}-{WEEKS}; {args.replications} replications "
        "per forecast, one process"
    )
    print("\norder steps k: weekly MAE of weeks 27-39 when fitted on weeks 1-26 (the choice)")
    print("  " + ", ".join(f"k={k}: {v:.1f}" for k, v in inner.items()) + f"  -> k = {chosen}")
    print(
        "holdout weekly MAE for every k (shown for honesty, not used to choose): "
        + ", ".join(
            f"k={k}: {np.mean(np.abs(w['simulated'] - w['observed'])):.1f}"
            for k, (_, w, _) in outer.items()
        )
    )
    gaps = [
        f"{st.name}: {st.dwell.spec()}, never {st.probabilities.get('churned', 0):.3f}"
        for st in fit.scenario_.journey.stages
        if st.name.startswith("post_purchase")
    ]
    print(f"\njourney fit (k = {chosen}, {fit_seconds:.2f} s):\n  " + "\n  ".join(gaps))
    print(f"BG/NBD fit: { ({k: float(v) for k, v in bg['params'].items()}) }")
    print(
        f"time: journey model, all {2 * len(steps_range) + 1} fits and forecasts "
        f"{journey_seconds:.1f} s; BG/NBD fit and forecasts {bg_seconds:.1f} s "
        f"(ratio {journey_seconds / bg_seconds:.0f}x); peak traced memory {peak:.0f} MiB"
    )
    pooled = f"journey k={chosen}, one pooled customer, warm start (step + silence)"
    conditional_gamma = "journey, personas='gamma', warm start, persona | own history"
    gfit, gweekly, gseconds = gamma
    rows = {
        pooled: errors(ours, observed),
        conditional_gamma: errors(gweekly["simulated"].to_numpy(), observed),
        "BG/NBD (unconditional)": errors(unconditional, observed),
        "BG/NBD (conditional on history)": errors(conditional, observed),
        "modified BG/NBD (conditional on history)": errors(bg["modified"], observed),
    }
    h = gfit.heterogeneity_.set_index("parameter")["estimate"]
    print(
        f"gamma personas ({gseconds:.2f} s): rate Gamma(r={h['r']:.3f}, alpha={h['alpha']:.1f} "
        f"days), never-again Beta(a={h['a']:.3f}, b={h['b']:.3f}); log-likelihood "
        f"{gfit.heterogeneity_['log_likelihood'].iloc[0]:.1f} on "
        f"{len(gfit.personas_)} quadrature personas"
    )
    if latent is not None:
        lfit, lweekly, lseconds = latent
        rows["journey, latent personas, warm start, persona | own history"] = errors(
            lweekly["simulated"].to_numpy(), observed
        )
        k_chosen = int(lfit.mixture_.loc[lfit.mixture_["chosen"], "personas"].iloc[0])
        per_iteration = lfit.mixture_["seconds_per_iteration"].max()
        print(
            f"latent personas: K = {k_chosen} by BIC ({lseconds:.1f} s for K = 1..4, at most "
            f"{per_iteration:.2f} s per EM iteration)"
        )
    print(f"\nobserved repeat purchases, weeks 40-78: {observed.sum():.0f}")
    print(pd.DataFrame(rows).T.to_string(float_format=lambda x: f"{x:,.1f}"))
    for name in (pooled, conditional_gamma):
        ratio = rows[name]["weekly_mae"] / rows["BG/NBD (conditional on history)"]["weekly_mae"]
        print(f"weekly MAE ratio, {name} / BG/NBD (conditional): {ratio:.2f}")
    by_week = pd.DataFrame(
        {
            "week": weekly["item"].astype(int) + 1,
            "observed": observed,
            "journey": ours,
            "journey_gamma": gweekly["simulated"].to_numpy(),
            "bgnbd_unconditional": unconditional,
            "bgnbd_conditional": conditional,
        }
    )
    print("\n" + by_week.iloc[::6].to_string(index=False, float_format=lambda x: f"{x:.1f}"))


if __name__ == "__main__":
    main()
