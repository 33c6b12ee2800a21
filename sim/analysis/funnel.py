"""The funnel: customers reaching each stage, step and overall conversion, with CIs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.analysis.customers import customer_groups, reach_matrix
from sim.analysis.stats import mean_ci, proportion_ci
from sim.events import EventLog


def funnel(log: EventLog, by: str | None = "persona") -> pd.DataFrame:
    """Funnel table: for every group ('all' first, then each persona or channel) and stage.

    Columns: ``customers`` (mean count per replication entering the stage at least once, with
    ``customers_ci_low``/``_high``), ``conversion`` (share of the group's entrants who reach the
    stage) and ``step_conversion`` (share of the customers who reached any stage leading into
    this one who then reached it; the entry stage's step is its share of entrants), each with a
    95% CI. Absorbing ends have no step (NaN). With two or more replications the CIs are t-based
    over replications; with one, Wilson binomial intervals (counts get none). A customer who
    enters a stage several times (loops) is counted once. Works on any event log: the
    stages leading into a stage are the log's ``edges`` (for a real log, the moves seen in it).
    """
    reached = reach_matrix(log)
    n_stages = len(log.stages)
    # before[:, s]: reached some stage with a transition into s (loops included)
    before = np.zeros_like(reached)
    for src, target in log.edges:
        before[:, target] |= reached[:, src]
    before[:, list(log.entry_stages)] = True
    key_rep = np.repeat(np.arange(log.replications), log.customers)
    groups = []
    for name, rows in customer_groups(log, by):
        # counts[r, s]: customers of replication r in this group who reached stage s
        counts = np.zeros((log.replications, len(log.stages)))
        np.add.at(counts, key_rep[rows], reached[rows])
        entrants = np.bincount(key_rep[rows], minlength=log.replications).astype(float)
        previous = np.zeros((log.replications, n_stages))
        np.add.at(previous, key_rep[rows], before[rows])
        groups.append((name, counts, entrants, previous))
    return funnel_table(groups, log.stages, log.end_mask, by)


def funnel_table(
    groups: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    stages: tuple[str, ...],
    end_mask: np.ndarray,
    by: str | None,
) -> pd.DataFrame:
    """The funnel table from counts per group: (name, customers reaching each stage per
    replication ``[r, s]``, entrants per replication ``[r]``, customers who reached a stage
    leading into each stage ``[r, s]``). Counts add up over chunks of customers, so a
    streamed log gives the same table as one held in memory."""
    n_stages = len(stages)
    label = by or "group"
    frames = []
    for name, counts, entrants, previous in groups:
        replications = len(entrants)
        previous = previous.astype(float)
        previous[:, end_mask] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            overall = counts / entrants[:, None]
            step = counts / previous
        mean_c, lo_c, hi_c = mean_ci(counts)
        if replications >= 2:
            conv, conv_lo, conv_hi = mean_ci(overall)
            stp, stp_lo, stp_hi = mean_ci(step)
        else:
            conv, stp = overall[0], step[0]
            conv_lo, conv_hi = proportion_ci(counts[0], np.full(n_stages, entrants[0]))
            stp_lo, stp_hi = proportion_ci(counts[0], previous[0])
        frames.append(
            pd.DataFrame(
                {
                    label: name,
                    "stage": list(stages),
                    "customers": mean_c,
                    "customers_ci_low": lo_c,
                    "customers_ci_high": hi_c,
                    "conversion": conv,
                    "conversion_ci_low": conv_lo,
                    "conversion_ci_high": conv_hi,
                    "step_conversion": stp,
                    "step_ci_low": stp_lo,
                    "step_ci_high": stp_hi,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    if by is None:
        out = out.drop(columns=label)
    return out
