"""Satisfaction in the log: what a survey would show beside the truth it samples, and where
customers drop out or churn by how satisfied they were (pain points).

A survey invites the customers who enter the chosen stages; one with satisfaction *s*
answers with probability ``min(1, share x exp(-bias x s))`` (``bias > 0``: the unhappy answer
more; ``< 0``: the happy do), and answers the 0-10 recommendation question with
``round(5 + 5 s)``. NPS is the percentage of promoters (9-10) minus that of detractors (0-6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.events import ENTRY, EventLog

#: Satisfaction bands of the pain-point table.
BANDS = (-1.0, -1 / 3, 1 / 3, 1.0)
BAND_NAMES = ("unhappy", "neutral", "happy")


def recommendation_score(satisfaction: np.ndarray) -> np.ndarray:
    """The 0-10 answer to 'would you recommend us?' of customers with these scores."""
    return np.clip(np.rint(5 + 5 * np.asarray(satisfaction)), 0, 10)


def nps(scores: np.ndarray) -> float:
    """Net promoter score (-100 .. 100) of 0-10 answers (NaN without answers)."""
    scores = np.asarray(scores)
    if not len(scores):
        return float("nan")
    return float(100 * (np.mean(scores >= 9) - np.mean(scores <= 6)))


def survey(
    log: EventLog,
    stages: tuple[str, ...],
    share: float = 0.2,
    bias: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Per surveyed stage: customers invited (entries into the stage), responses, response
    rate, the NPS and mean satisfaction the survey shows, and the true NPS and mean
    satisfaction of everyone it invited (the gap is what the survey misses). Responses are
    drawn from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in stages:
        code = log.stages.index(name)
        invited = log.to_stage == code
        truth = log.satisfaction[invited]
        answer_chance = np.minimum(1.0, share * np.exp(-bias * truth))
        answered = rng.random(len(truth)) < answer_chance
        rows.append(
            {
                "stage": name,
                "invited": int(invited.sum()),
                "responses": int(answered.sum()),
                "response_rate": float(answered.mean()) if len(truth) else float("nan"),
                "survey_nps": nps(recommendation_score(truth[answered])),
                "true_nps": nps(recommendation_score(truth)),
                "survey_satisfaction": float(truth[answered].mean())
                if answered.any()
                else float("nan"),
                "true_satisfaction": float(truth.mean()) if len(truth) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def pain_points(log: EventLog) -> pd.DataFrame:
    """Where customers end their journey (each end stage, by the stage they left) by the
    satisfaction band they were in when they left, with the wait they had just had and
    whether they had given up a queue (and, where the log has service outcomes, the outcome
    of the visit they left: '' for none): counts per replication (mean)."""
    ends = log.end_mask[log.to_stage] & (log.from_stage != ENTRY)
    band = np.clip(np.searchsorted(BANDS[1:-1], log.satisfaction[ends], side="right"), 0, 2)
    frame = pd.DataFrame(
        {
            "end": np.array(log.stages)[log.to_stage[ends]],
            "from_stage": np.array(log.stages)[log.from_stage[ends]],
            "band": np.array(BAND_NAMES)[band],
            "waited": log.wait[ends] > 0,
            "abandoned": log.abandoned[ends],
        }
    )
    if log.outcomes:
        names = np.array([*log.outcomes, ""], dtype=object)
        frame["outcome"] = names[log.outcome[ends]]  # -1 (none) picks the last: ''
    table = frame.value_counts().rename("customers").reset_index()
    table["customers"] = table["customers"] / max(log.replications, 1)
    return table.sort_values(["end", "from_stage", "band"], ignore_index=True)


def outcome_table(log: EventLog) -> pd.DataFrame:
    """Service outcomes drawn, per stage that has them: visits served (ended other than by
    abandoning a queue), and per outcome (``''``: nothing of note) how many visits ended with
    it and their share, with the mean satisfaction after them: the observed counterpart of
    the scenario's outcome shares."""
    columns = ["stage", "outcome", "visits", "count", "share", "mean_satisfaction"]
    if not log.outcomes:
        return pd.DataFrame(columns=columns)
    served = (log.from_stage != ENTRY) & ~log.abandoned
    rows = []
    for stage in np.unique(log.from_stage[served & (log.outcome >= 0)]):
        at = served & (log.from_stage == stage)
        visits = int(at.sum())
        for code, name in [*enumerate(log.outcomes), (-1, "")]:
            hit = at & (log.outcome == code)
            count = int(hit.sum())
            rows.append(
                {
                    "stage": log.stages[stage],
                    "outcome": name,
                    "visits": visits,
                    "count": count,
                    "share": count / visits if visits else float("nan"),
                    "mean_satisfaction": float(log.satisfaction[hit].mean())
                    if count
                    else float("nan"),
                }
            )
    table = pd.DataFrame(rows, columns=columns)
    # outcomes of other stages (codes are shared by name) never occur here: leave them out
    keep = (table["count"] > 0) | (table["outcome"] == "")
    return table[keep].reset_index(drop=True)
