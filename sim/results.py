"""Thin result objects: a run (event log + scenario + provenance) and a comparison of runs.

The analyses themselves live in :mod:`sim.analysis` and work on any event log."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.errors import EventLogError
from sim.events import ALL, EventLog
from sim.io.event_dataset import EventDataset
from sim.model.scenario import Scenario

if TYPE_CHECKING:  # a run builds its result without them: they load where a table is built
    import pandas as pd

    from sim.analysis.summary import LogSummary


class _AnalysisDefault(tuple):
    """A default argument that is a constant of :mod:`sim.analysis` (``KEY_METRICS``,
    ``RETENTION_DAYS``), read where a table is built: importing sim.analysis with the result
    types would load pandas and scipy.stats into every run. Shown by the constant's name."""

    def __new__(cls, module: str, name: str) -> _AnalysisDefault:
        out = super().__new__(cls)
        out.module, out.name = module, name
        return out

    def __repr__(self) -> str:
        return self.name

    def __call__(self, given: Any) -> Any:
        """``given``, or the constant where ``given`` is this default."""
        if given is not self:
            return given
        import importlib

        return getattr(importlib.import_module(self.module), self.name)


_KEY_METRICS = _AnalysisDefault("sim.analysis.comparison", "KEY_METRICS")
_RETENTION_DAYS = _AnalysisDefault("sim.analysis.tables", "RETENTION_DAYS")


@dataclass(frozen=True, eq=False)
class RunResult:
    """Replications of one scenario: the event log (``log``, ``events``) and its analyses.

    ``complete`` is False when a run was interrupted and holds only the replications that
    finished. ``provenance`` records seed, package version, engine and scenario hash.
    """

    scenario: Scenario
    log: EventLog
    provenance: dict[str, Any]
    complete: bool = True

    @functools.cached_property
    def events(self) -> pd.DataFrame:
        """The event log as a DataFrame (one row per transition; entry rows have no from_stage)."""
        return self.log.to_frame()

    @property
    def replications(self) -> int:
        """Number of replications held."""
        return self.log.replications

    @functools.cached_property
    def _customers(self) -> dict[str, np.ndarray]:
        from sim.analysis.customers import customer_arrays

        return customer_arrays(self.log)

    def customers(self) -> pd.DataFrame:
        """One row per customer and replication: persona, channel, arrival, final stage, whether
        the journey ended, first purchase day, number of purchases and revenue."""
        from sim.analysis.customers import customer_table

        return customer_table(self.log)

    def funnel(self, by: str | None = "persona") -> pd.DataFrame:
        """Customers reaching each stage with overall and step conversion (see
        :func:`sim.analysis.funnel`); ``by`` is 'persona', 'channel' or None."""
        from sim.analysis.funnel import funnel

        return funnel(self.log, by=by)

    def retention(self, by: str | None = "persona", days=None) -> pd.DataFrame:
        """Kaplan-Meier survival of active customers since their first purchase, censored at
        the horizon, pooled over replications (see :func:`sim.analysis.retention`): the full
        curve, or read at ``days`` (run directories hold it on a fixed grid of days)."""
        from sim.analysis.tables import retention

        return retention(self.log, by, self._customers, days)

    def retention_summary(
        self, by: str | None = "persona", days: tuple[int, ...] = _RETENTION_DAYS
    ) -> pd.DataFrame:
        """Per group: purchasers, share still active at chosen days after first purchase,
        median active lifetime, repeat purchases and revenue per customer (see
        :func:`sim.analysis.retention_summary`)."""
        from sim.analysis.tables import retention_summary

        return retention_summary(self.log, by, _RETENTION_DAYS(days), self._customers)

    def time_to_purchase(self, by: str | None = "persona") -> pd.DataFrame:
        """Days from entry to first purchase among customers who bought within the horizon:
        share who bought, mean, median and quartiles."""
        from sim.analysis.tables import time_to_purchase

        return time_to_purchase(self.log, by, self._customers)

    def costs(self) -> pd.DataFrame:
        """Cost of each intervention per replication: fixed, reached customers x per-reached
        price, and the purchases credited to it x its per-conversion price (see
        :func:`sim.analysis.credited_purchases` for which purchases those are)."""
        from sim.analysis.metrics import intervention_costs

        return intervention_costs(self.log, self.scenario.interventions, self.scenario.journey)

    def metrics(self, days: tuple[int, ...] = (30, 90, 180)) -> pd.DataFrame:
        """Per-replication metrics as a long table (replication, persona, metric, value)."""
        from sim.analysis.metrics import replication_metrics

        return replication_metrics(
            self.log, self.scenario.interventions, days, self._customers, self.scenario.journey
        )

    def _repr_html_(self) -> str:
        from sim.display import html_block, percent

        funnel = self.funnel(by=None)[["stage", "customers", "conversion", "step_conversion"]]
        retention = self.retention_summary(by="persona")
        keep = [c for c in retention.columns if c.startswith("active_day_")] + [
            "persona",
            "purchasers",
            "median_lifetime_days",
            "repeat_purchase_rate",
            "revenue_per_customer",
        ]
        retention = retention[[c for c in retention.columns if c in keep]]
        shares = {
            c: percent
            for c in (
                "conversion",
                "step_conversion",
                "repeat_purchase_rate",
                *[c for c in keep if c.startswith("active_day_")],
            )
        }
        return html_block(
            repr(self),
            [],
            {"Funnel (mean per replication)": funnel, "Retention after first purchase": retention},
            shares,
        )

    def __repr__(self) -> str:
        p = self.provenance
        state = "" if self.complete else ", INCOMPLETE"
        return (
            f"RunResult({self.scenario.name!r}: {self.replications} replication(s), "
            f"{int(self.log.customers.sum()):,} customers, {len(self.log):,} events, "
            f"seed {p.get('seed')}, engine {p.get('engine')}{state})"
        )


@dataclass(eq=False)
class Comparison:
    """Scenarios run side by side. ``per_replication`` keeps every replication's metrics
    (scenario, replication, persona, metric, value); ``results`` each scenario's run (a
    :class:`StreamedRunResult` when the logs were streamed: ``streamed`` then says why)."""

    scenarios: dict[str, Scenario]
    baseline: str
    results: dict[str, RunResult | StreamedRunResult]
    per_replication: pd.DataFrame
    seed: int
    paired: bool
    replications: int
    converged: bool | None = None
    elapsed_seconds: float = 0.0
    streamed: str | None = None
    _cache: dict[Any, pd.DataFrame] = field(default_factory=dict, repr=False)

    def summary(
        self,
        metrics: Sequence[str] | None = _KEY_METRICS,
        persona: str | None = ALL,
        bootstrap: bool = False,
    ) -> pd.DataFrame:
        """One tidy row per scenario, persona and metric: mean with 95% CI, difference from the
        baseline with its CI, relative uplift, p-value and Holm-adjusted p-value (one fixed
        family: per persona, every non-baseline scenario x :data:`KEY_METRICS`, whatever
        ``metrics`` shows; NaN for other metrics). ``metrics`` None means all; ``persona`` None
        means every persona; ``bootstrap`` gives BCa intervals (for skewed metrics such as
        revenue) in place of t intervals, on every row."""
        metrics = _KEY_METRICS(metrics)
        key = (tuple(metrics) if metrics else None, persona, bootstrap)
        if key not in self._cache:
            from sim.analysis.comparison import comparison_summary

            self._cache[key] = comparison_summary(
                self.per_replication,
                list(self.scenarios),
                self.baseline,
                self.paired,
                self.seed,
                metrics,
                persona,
                bootstrap,
            )
        return self._cache[key].copy()

    def roi(self) -> pd.DataFrame:
        """Per scenario against the baseline (means per replication, with 95% CIs on the
        increments): cost, incremental cost, incremental conversions (buyers), incremental
        revenue, incremental profit, cost per incremental conversion, and ROI = incremental
        profit / incremental cost."""
        from sim.analysis.comparison import comparison_roi

        return comparison_roi(
            self.per_replication, list(self.scenarios), self.baseline, self.paired
        )

    def _repr_html_(self) -> str:
        from sim.display import html_block

        table = self.summary(
            metrics=("conversion", "active_day_90", "revenue_per_customer", "profit")
        )
        table = table[
            [
                "scenario",
                "metric",
                "mean",
                "diff_vs_baseline",
                "diff_ci_low",
                "diff_ci_high",
                "relative_uplift",
                "p_adjusted",
            ]
        ]
        roi = self.roi()[["scenario", "cost", "incremental_profit", "roi"]]
        return html_block(
            repr(self),
            [],
            {"Differences from the baseline (95% CI)": table, "Return on the interventions": roi},
        )

    def __repr__(self) -> str:
        kind = "paired (common random numbers)" if self.paired else "independent streams"
        return (
            f"Comparison of {len(self.scenarios)} scenarios against {self.baseline!r}: "
            f"{self.replications} replications each, seed {self.seed}, {kind}"
        )


@dataclass(frozen=True, eq=False)
class StreamedRunResult:
    """Replications of one scenario whose event log went to disk chunk by chunk (or, with
    ``keep_events=False``, nowhere): analyses come from mergeable counts (``summary``, see
    :mod:`sim.analysis.summary`), never from the whole log in memory.

    ``events`` reads the Parquet dataset lazily (a ``pyarrow.dataset.Dataset``);
    ``event_dataset`` gives it chunk by chunk or, for logs that fit, whole (``to_log()``).
    """

    scenario: Scenario
    summary: LogSummary
    provenance: dict[str, Any]
    directory: Path | None = None
    complete: bool = True

    def _dataset(self) -> EventDataset:
        if self.directory is None:
            raise EventLogError(
                "this run kept no events (keep_events=False): only its summaries",
                field="events",
                fix="run with stream_to=DIR to keep the event log on disk",
            )
        return EventDataset(self.directory)

    @property
    def event_dataset(self) -> EventDataset:
        """The streamed event log on disk (parts per chunk of customers)."""
        return self._dataset()

    @property
    def events(self):
        """The event log as a lazy ``pyarrow.dataset.Dataset`` (stage, persona and channel
        as codes; names in ``event_dataset.meta``): filter and aggregate it with pyarrow
        without loading it whole."""
        return self._dataset().table()

    @property
    def replications(self) -> int:
        """Number of replications held."""
        return self.summary.replications

    def funnel(self, by: str | None = "persona") -> pd.DataFrame:
        """Customers reaching each stage with overall and step conversion (as
        :meth:`RunResult.funnel`)."""
        return self.summary.funnel(by)

    def retention(self, by: str | None = "persona") -> pd.DataFrame:
        """Kaplan-Meier survival since first purchase on a 1/64-day grid."""
        return self.summary.retention(by)

    def retention_summary(
        self, by: str | None = "persona", days: tuple[int, ...] = _RETENTION_DAYS
    ) -> pd.DataFrame:
        """As :meth:`RunResult.retention_summary` (survival on a 1/64-day grid)."""
        return self.summary.retention_summary(by, _RETENTION_DAYS(days))

    def time_to_purchase(self, by: str | None = "persona") -> pd.DataFrame:
        """As :meth:`RunResult.time_to_purchase` (quartiles rounded up to 1/64 day)."""
        return self.summary.time_to_purchase(by)

    def costs(self) -> pd.DataFrame:
        """Cost of each intervention per replication (fixed, per reached, per conversion)."""
        return self.summary.costs(self.scenario.interventions)

    def metrics(self, days: tuple[int, ...] = (30, 90, 180)) -> pd.DataFrame:
        """Per-replication metrics as a long table (replication, persona, metric, value)."""
        return self.summary.metrics(self.scenario.interventions, days)

    def __repr__(self) -> str:
        p = self.provenance
        state = "" if self.complete else ", INCOMPLETE"
        where = f"events in {self.directory}" if self.directory else "summaries only"
        return (
            f"StreamedRunResult({self.scenario.name!r}: {self.replications} replication(s), "
            f"{int(self.summary.customers.sum()):,} customers, {where}, "
            f"seed {p.get('seed')}, engine {p.get('engine')}{state})"
        )
