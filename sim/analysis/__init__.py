"""Analysis of any event log, simulated or real: funnel, customers, retention, time to
purchase, per-replication metrics, statistics and comparison tables. Never runs an engine."""

from sim.analysis.adoption import (
    acquisition_sources,
    adoption_curve,
    detractor_summary,
    fit_bass,
    k_factor_by_cohort,
    referral_depth,
    referral_summary,
    word_of_mouth_share,
)
from sim.analysis.comparison import KEY_METRICS, comparison_roi, comparison_summary
from sim.analysis.customers import customer_arrays, customer_table, reach_matrix
from sim.analysis.funnel import funnel
from sim.analysis.metrics import credited_purchases, intervention_costs, replication_metrics
from sim.analysis.queues import (
    queue_over_time,
    queue_summary,
    queue_visits,
    waiting_time_distribution,
)
from sim.analysis.satisfaction import nps, outcome_table, pain_points, survey
from sim.analysis.stats import holm, mean_ci, proportion_ci
from sim.analysis.survival import kaplan_meier, lifetimes, median_lifetime, survival_at
from sim.analysis.tables import retention, retention_grid, retention_summary, time_to_purchase

__all__ = [
    "KEY_METRICS",
    "acquisition_sources",
    "adoption_curve",
    "comparison_roi",
    "comparison_summary",
    "credited_purchases",
    "customer_arrays",
    "customer_table",
    "detractor_summary",
    "fit_bass",
    "funnel",
    "holm",
    "intervention_costs",
    "k_factor_by_cohort",
    "kaplan_meier",
    "lifetimes",
    "mean_ci",
    "median_lifetime",
    "nps",
    "outcome_table",
    "pain_points",
    "proportion_ci",
    "queue_over_time",
    "queue_summary",
    "queue_visits",
    "reach_matrix",
    "referral_depth",
    "referral_summary",
    "replication_metrics",
    "retention",
    "retention_grid",
    "retention_summary",
    "survey",
    "survival_at",
    "time_to_purchase",
    "waiting_time_distribution",
    "word_of_mouth_share",
]
