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
