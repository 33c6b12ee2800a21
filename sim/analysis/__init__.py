"""Analysis of event logs: funnel, customers, retention and time to purchase."""

from sim.analysis.customers import customer_arrays, customer_table, reach_matrix
from sim.analysis.funnel import funnel
from sim.analysis.retention import kaplan_meier, lifetimes, median_lifetime, survival_at
from sim.analysis.stats import mean_ci, proportion_ci

__all__ = [
    "customer_arrays",
    "customer_table",
    "funnel",
    "kaplan_meier",
    "lifetimes",
    "mean_ci",
    "median_lifetime",
    "proportion_ci",
    "reach_matrix",
    "survival_at",
]
