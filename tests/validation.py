"""Holding simulations against exact answers: the comparisons the validation tests use.

Tolerances come from the statistics: a simulated proportion from n independent customers has
standard error sqrt(p(1-p)/n); a mean has standard error sd/sqrt(n), with the exact sd from the
chain where it is known. A check fails beyond ``K`` standard errors (K = 4: a false alarm has
probability about 6e-5 per comparison; the seeds are fixed, so CI is deterministic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import sim

K = 4.0
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def perturbed(scenario: sim.Scenario, stage: str, to: str, delta: float) -> sim.Scenario:
    """The scenario with P(stage -> to) moved by ``delta``; the other branches absorb the change
    in proportion, so the row still sums to 1."""
    stages = []
    for st in scenario.journey.stages:
        if st.name == stage:
            probs = dict(st.next)
            rest = 1 - probs[to]
            new_rest = rest - delta
            probs = {t: (p + delta if t == to else p * new_rest / rest) for t, p in probs.items()}
            st = sim.Stage(name=st.name, dwell=st.dwell, purchase=st.purchase, next=probs)
        stages.append(st)
    journey = sim.Journey(stages=tuple(stages), entry=scenario.journey.entry)
    return scenario.replace(journey=journey)


def disagreements(result: sim.RunResult, exact: sim.Expectation) -> list[str]:
    """Every quantity where the simulation and the exact answer differ by more than K standard
    errors: reach of each stage, conversion, purchases and time to the end of the journey, per
    persona and overall. The run must be long enough for every journey to end."""
    cust = result._customers
    assert cust["ended"].all(), "horizon too short: some journeys were censored"
    log = result.log
    key = log.customer_key()
    reached = np.zeros((len(cust["persona"]), len(log.stages)), dtype=bool)
    reached[key, log.to_stage] = True
    end_time = cust["end_time"] - cust["arrival"]
    problems = []
    for chain in (exact.population(), *exact.chains):
        if chain.persona == "all":
            rows = np.ones(len(cust["persona"]), dtype=bool)
        else:
            rows = cust["persona"] == log.personas.index(chain.persona)
        n = rows.sum()
        for s, name in enumerate(log.stages):
            p, p_hat = chain.reach[s], reached[rows, s].mean()
            se = np.sqrt(p * (1 - p) / n)
            if abs(p_hat - p) > K * se + 1e-12:
                problems.append(f"{chain.persona}: reach of {name} {p_hat:.4f} vs {p:.4f}")
        conv_hat = (~np.isnan(cust["first_purchase"][rows])).mean()
        se = np.sqrt(chain.conversion * (1 - chain.conversion) / n)
        if abs(conv_hat - chain.conversion) > K * se + 1e-12:
            problems.append(f"{chain.persona}: conversion {conv_hat:.4f} vs {chain.conversion:.4f}")
        purchases = cust["purchases"][rows]
        if abs(purchases.mean() - chain.purchases) > K * purchases.std(ddof=1) / np.sqrt(n):
            problems.append(
                f"{chain.persona}: purchases {purchases.mean():.4f} vs {chain.purchases:.4f}"
            )
        sd = np.sqrt(chain.time_second_moment - chain.time_mean**2)
        t_hat = end_time[rows].mean()
        if abs(t_hat - chain.time_mean) > K * sd / np.sqrt(n):
            problems.append(f"{chain.persona}: time to end {t_hat:.3f} vs {chain.time_mean:.3f}")
    return problems


def pure_birth_moments(
    size: int, p: float, q: float, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and standard deviation of the number adopted by ``days`` in a finite Bass
    market of ``size`` people: the pure-birth chain k -> k + 1 at rate (N - k)(p + q k / N),
    solved through its Kolmogorov forward equations dP/dt = M P (sparse matrix exponential)."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import expm_multiply

    k = np.arange(size + 1)
    rate = (size - k) * (p + q * k / size)
    generator = diags([-rate, rate[:-1]], [0, -1], format="csc")
    start = np.zeros(size + 1)
    start[0] = 1.0
    means, sds = [], []
    for day in np.atleast_1d(days):
        prob = expm_multiply(generator * float(day), start)
        mean = prob @ k
        means.append(mean)
        sds.append(np.sqrt(max(prob @ k**2 - mean**2, 0.0)))
    return np.array(means), np.array(sds)


def bass_scenario(size: int, p: float, q: float, horizon_days: float) -> sim.Scenario:
    """Awareness leads straight to adoption: the market's people enter a stage they never
    leave within the horizon, and every stage influences others (Bass's model)."""
    journey = sim.Journey(
        stages=(
            sim.Stage(name="customer", dwell=f"fixed({horizon_days * 10})", next={"gone": 1}),
            sim.Stage(name="gone", absorbing=True),
        )
    )
    return sim.Scenario(
        name=f"bass p={p} q={q}",
        journey=journey,
        acquisition=sim.Cohort(size=0),
        market=sim.Market(size=size, external_rate=p),
        word_of_mouth=sim.WordOfMouth(stages=("customer", "gone"), rate=q),
        horizon_days=horizon_days,
    )
