"""Analysis of any event log, simulated or real: funnel, customers, retention, time to
purchase, per-replication metrics, statistics and comparison tables. Never runs an engine."""

from sim.analysis.comparison import KEY_METRICS, comparison_roi, comparison_summary
from sim.analysis.customers import customer_arrays, customer_table, reach_matrix
from sim.analysis.funnel import funnel
from sim.analysis.metrics import credited_purchases, intervention_costs, replication_metrics
from sim.analysis.stats import holm, mean_ci, proportion_ci
from sim.analysis.survival import kaplan_meier, lifetimes, median_lifetime, survival_at
from sim.analysis.tables import retention, retention_grid, retention_summary, time_to_purchase

__all__ = [
    "KEY_METRICS",
    "comparison_roi",
    "comparison_summary",
    "credited_purchases",
    "customer_arrays",
    "customer_table",
    "funnel",
    "holm",
    "intervention_costs",
    "kaplan_meier",
    "lifetimes",
    "mean_ci",
    "median_lifetime",
    "proportion_ci",
    "reach_matrix",
    "replication_metrics",
    "retention",
    "retention_grid",
    "retention_summary",
    "survival_at",
    "time_to_purchase",
]
