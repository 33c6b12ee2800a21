"""A self-contained HTML report: plots embedded as images, tables, scenario definitions and
provenance, readable by anyone with a browser."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from sim import plot
from sim.display import number, percent
from sim.io.atomic import write_text_atomic
from sim.io.scenario_toml import save_scenario
from sim.results import Comparison, RunResult
from sim.run.provenance import package_version

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; margin: 0.5em 0; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
.meta { color: #666; font-size: 0.9em; }
#broken { display: none; background: #fdd; padding: 0.5em; }
"""

# marks the page with how many images loaded, and warns the reader when one did not
_CHECK = """
<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-total", images.length);
  document.body.setAttribute("data-images-loaded", loaded.length);
  if (loaded.length < images.length) {
    document.getElementById("broken").style.display = "block";
  }
});
</script>
"""


def _image(fig: Figure, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(frame, shares: tuple[str, ...] = ()) -> str:
    shown = frame.copy()
    for col in shares:
        if col in shown.columns:
            shown[col] = shown[col].map(percent)
    return shown.to_html(index=False, border=0, float_format=number, na_rep="")


def build_report(obj: Comparison | RunResult, path: str | Path, title: str | None = None) -> Path:
    """Write the report of a comparison (or of a single run) to ``path`` (atomically)."""
    results = dict(obj.results) if isinstance(obj, Comparison) else {obj.scenario.name: obj}
    first = next(iter(results.values()))
    title = title or (
        "What if: " + " vs ".join(results)
        if len(results) > 1
        else f"Customer journey: {first.scenario.name}"
    )
    seed = obj.seed if isinstance(obj, Comparison) else first.provenance.get("seed")
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='meta'>journey-sim {html.escape(package_version())}, seed {seed}, "
        f"{first.replications} replication(s) per scenario, created {created}</p>",
        "<div id='broken'>Some images in this report failed to load.</div>",
    ]
    if isinstance(obj, Comparison):
        summary = obj.summary()
        parts += [
            "<h2>Differences from the baseline</h2>",
            f"<p>Baseline: <strong>{html.escape(obj.baseline)}</strong>. Means per "
            "replication with 95% confidence intervals; differences are paired over "
            "replications (common random numbers); p-values Holm-adjusted.</p>",
            _table(summary),
            "<h2>Return on the interventions</h2>",
            "<p>Per replication, against the baseline; profit is revenue less the "
            "interventions' costs.</p>",
            _table(
                obj.roi()[
                    [
                        "scenario",
                        "cost",
                        "incremental_conversions",
                        "incremental_revenue",
                        "incremental_profit",
                        "incremental_profit_ci_low",
                        "incremental_profit_ci_high",
                        "cost_per_incremental_conversion",
                        "roi",
                    ]
                ]
            ),
            _image(plot.uplift(obj), "uplift against the baseline"),
            _image(plot.cost_profit(obj), "cost against incremental profit"),
        ]
    parts += ["<h2>Funnel</h2>", _image(plot.funnel(obj), "funnel")]
    for name, res in results.items():
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(
            _table(
                res.funnel(by=None)[["stage", "customers", "conversion", "step_conversion"]],
                ("conversion", "step_conversion"),
            )
        )
    parts += [
        "<h2>Moves between stages</h2>",
        _image(plot.flow(first), "flow diagram"),
        "<h2>Retention after first purchase</h2>",
        _image(plot.retention(obj if len(results) > 1 else first), "retention curves"),
    ]
    for name, res in results.items():
        table = res.retention_summary(by="persona")
        days = [c for c in table.columns if c.startswith("active_day_")]
        shares = (*days, "repeat_purchase_rate")
        parts += [f"<h3>{html.escape(name)}</h3>", _table(table, shares)]
    parts += [
        "<h2>Time to first purchase</h2>",
        _image(plot.time_to_purchase(obj), "time to first purchase"),
        "<h2>Customers in each stage over time</h2>",
        _image(plot.occupancy(first), "stage occupancy"),
    ]
    parts += interaction_sections(results)
    parts.append("<h2>Scenarios</h2>")
    for name, res in results.items():
        s = res.scenario
        parts += [
            f"<h3>{html.escape(name)}</h3>",
            f"<p>{html.escape(s.description)}</p>" if s.description else "",
            "<details><summary>Definition (scenario file)</summary>"
            f"<pre>{html.escape(save_scenario(s))}</pre></details>",
            "<details><summary>Provenance</summary>"
            f"<pre>{html.escape(json.dumps(res.provenance, indent=2))}</pre></details>",
        ]
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(parts)
        + _CHECK
        + "</body></html>\n"
    )
    path = Path(path)
    write_text_atomic(path, page)
    return path


# -- customers who affect each other: sections only for scenarios that have them -------------


def interaction_sections(results: dict[str, RunResult]) -> list[str]:
    """HTML of the queue, adoption, referral and satisfaction sections, each only when some
    scenario has the section of the scenario file behind it ([[resource]], [market],
    [referrals], [satisfaction]); nothing for scenarios without them."""
    parts: list[str] = []
    queued = {n: r for n, r in results.items() if r.scenario.resources}
    if queued:
        parts += _queue_section(queued)
    market = {n: r for n, r in results.items() if r.scenario.market is not None}
    if market:
        parts += _adoption_section(market)
    referring = {n: r for n, r in results.items() if r.scenario.referrals is not None}
    if referring:
        parts += _referral_section(referring)
    scored = {n: r for n, r in results.items() if r.scenario.satisfaction is not None}
    if scored:
        parts += _satisfaction_section(scored)
    return parts


def _queue_section(results: dict[str, RunResult]) -> list[str]:
    from sim.analysis.queues import queue_summary, waiting_time_distribution

    parts = [
        "<h2>Queues</h2>",
        "<p>Per resource: capacity (units in force, averaged over time, with the fewest and "
        "most), probability of waiting, mean wait, abandonment (customers who gave "
        "up waiting) and utilisation of the capacity in force, means over replications with "
        "95% CIs; then the "
        "waiting-time distribution (days, all queue visits pooled) and queue length and "
        "utilisation day by day.</p>",
    ]
    for name, res in results.items():
        summary = queue_summary(res.log)
        columns = ["resource", "capacity", "capacity_min", "capacity_max"]
        columns += ["visits", "p_wait", "mean_wait", "mean_wait_ci_low"]
        columns += ["mean_wait_ci_high", "abandonment", "abandonment_ci_low"]
        columns += ["abandonment_ci_high", "utilisation", "utilisation_ci_low"]
        columns += ["utilisation_ci_high"]
        shares = ("p_wait", "abandonment", "abandonment_ci_low", "abandonment_ci_high")
        shares += ("utilisation", "utilisation_ci_low", "utilisation_ci_high")
        parts += [
            f"<h3>{html.escape(name)}</h3>",
            _table(summary[columns], shares),
            _table(waiting_time_distribution(res.log), ("waited",)),
            _image(plot.queues(res), f"queues of {name}"),
        ]
    return parts


def _adoption_section(results: dict[str, RunResult]) -> list[str]:
    import numpy as np

    from sim.analysis.adoption import acquisition_sources, adoption_curve
    from sim.engine.mean_field import expected_adoption

    parts = [
        "<h2>Adoption from the market</h2>",
        "<p>Customers from the market, cumulative: the simulated mean (95% CI), the Bass "
        "curve fitted to it on the market's size, and the mean-field expectation "
        "(sim.expected_adoption); then how customers came.</p>",
    ]
    for name, res in results.items():
        s = res.scenario
        curve = adoption_curve(res.log, s.market.size)
        fitted = curve.attrs["bass"]
        days = np.unique(np.linspace(0, np.floor(s.horizon_days), 7).round())
        shown = curve.set_index("day").loc[days].reset_index()
        expected = expected_adoption(s, days=days)
        shown["mean_field"] = expected["adopted"].to_numpy()
        columns = ["day", "adopted", "adopted_ci_low", "adopted_ci_high", "by_word_of_mouth"]
        columns += ["by_referral", "bass", "mean_field"]
        parts += [
            f"<h3>{html.escape(name)}</h3>",
            f"<p>Fitted Bass: p = {fitted['p']:.3g}, q = {fitted['q']:.3g} per day; the "
            f"scenario's p = {s.market.external_rate:.3g}. Mean field: "
            f"{html.escape(expected.attrs['method'])}.</p>",
            _table(shown[columns]),
            _image(plot.adoption(res, p=fitted["p"], q=fitted["q"]), f"adoption curve of {name}"),
            _table(acquisition_sources(res.log), ("share", "share_ci_low", "share_ci_high")),
        ]
    return parts


def _referral_section(results: dict[str, RunResult]) -> list[str]:
    from sim.analysis.adoption import k_factor_by_cohort, referral_summary

    parts = [
        "<h2>Referrals</h2>",
        "<p>Customers referred per replication, the viral coefficient (K-factor), the depth "
        "of the referral trees and the cycle time in days (means with 95% CIs); then the "
        "K-factor of each month's new customers (later months have had less time to "
        "refer).</p>",
    ]
    for name, res in results.items():
        parts += [
            f"<h3>{html.escape(name)}</h3>",
            _table(referral_summary(res.log)),
            _table(k_factor_by_cohort(res.log)),
        ]
    return parts


def _satisfaction_section(results: dict[str, RunResult]) -> list[str]:
    import pandas as pd

    from sim.analysis.satisfaction import outcome_table, pain_points, survey

    parts = [
        "<h2>Satisfaction: surveys against the truth, and pain points</h2>",
        "<p>A survey of 20% of the customers entering the stages where satisfaction moves "
        "decisions, answered by all alike and when the unhappy answer more (bias 2), beside "
        "the truth of everyone invited; then where customers end their journey, by "
        "satisfaction band and what they had just been through (mean per replication).</p>",
    ]
    for name, res in results.items():
        s = res.scenario
        sat = s.satisfaction
        stages = tuple(dict.fromkeys(e.stage for e in sat.effects)) or s.journey.transient
        rows = []
        for label, bias in (("all answer alike", 0.0), ("the unhappy answer more", 2.0)):
            table = survey(res.log, stages, share=0.2, bias=bias)
            table.insert(1, "respondents", label)
            rows.append(table)
        surveys = pd.concat(rows, ignore_index=True)
        pains = pain_points(res.log).sort_values("customers", ascending=False).head(15)
        parts += [
            f"<h3>{html.escape(name)}</h3>",
            _table(surveys, ("response_rate",)),
            _table(pains),
        ]
        if sat.outcomes:
            parts.append(_table(outcome_table(res.log), ("share",)))
    return parts
