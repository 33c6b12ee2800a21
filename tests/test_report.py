"""The HTML report: self-contained, complete, and it loads in a real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import pytest

import sim
from sim.cli import main
from sim.report import build_report
from tests.validation import SCENARIOS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    comparison = sim.compare(
        [sim.load_scenario(SCENARIOS / f"{n}.toml") for n in ("baseline", "discount", "loyalty")],
        replications=2,
        seed=1,
        customers=800,
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    return build_report(comparison, path), comparison


def test_report_is_self_contained(report):
    """No external resource: every image is an embedded PNG, nothing is fetched."""
    path, _ = report
    text = path.read_text()
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(sources) == 7
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_report_holds_tables_definitions_and_provenance(report):
    """Comparison and ROI tables, each scenario's definition and provenance are in the page."""
    path, comparison = report
    text = path.read_text()
    assert text.count("<table") >= 2 + 2 * len(comparison.scenarios)
    for name in comparison.scenarios:
        assert f"name = &quot;{name}&quot;" in text
    assert "package_version" in text and "seed 1" in text


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(
            "chromium is not installed (make test installs Debian's chromium where it "
            "can; apt-get install chromium to run this check)"
        )
    return found


def test_report_loads_in_a_headless_browser(report, tmp_path):
    """Opened in headless Chromium, every image loads and the tables are in the DOM."""
    path, comparison = report
    dom = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    total = re.search(r'data-images-total="(\d+)"', body.group(1))
    loaded = re.search(r'data-images-loaded="(\d+)"', body.group(1))
    assert total and loaded and total.group(1) == loaded.group(1) == "7"
    assert dom.count("<table") >= 2 + 2 * len(comparison.scenarios)


def test_report_command_writes_one_file(tmp_path, capsys):
    """`sim report` runs the scenarios and writes the report where asked."""
    out = tmp_path / "r.html"
    assert (
        main(
            [
                "report",
                str(SCENARIOS / "baseline.toml"),
                "-r",
                "2",
                "--customers",
                "500",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert out.exists() and f"Report: {out}" in capsys.readouterr().out


INTERACTION_SECTIONS = (
    "<h2>Queues</h2>",
    "<h2>Adoption from the market</h2>",
    "<h2>Referrals</h2>",
    "<h2>Satisfaction: surveys against the truth, and pain points</h2>",
)


def test_report_shows_queues_adoption_referrals_and_satisfaction_where_they_exist(report, tmp_path):
    """The report of support_staffing holds the queue section (summary, waiting-time
    distribution, plot) and the satisfaction section (surveys beside the truth, pain points);
    that of referral_programme the adoption section (against the fitted Bass curve and the
    mean field) and the referral section (K-factor); the baseline comparison's holds none."""
    support = sim.load_scenario(SCENARIOS / "support_staffing.toml").replace(horizon_days=40)
    referral = sim.load_scenario(SCENARIOS / "referral_programme.toml").replace(
        horizon_days=90, market=sim.Market(size=2000, external_rate=0.002)
    )
    expected = {
        "support": (support, {INTERACTION_SECTIONS[0], INTERACTION_SECTIONS[3]}),
        "referral": (referral, {INTERACTION_SECTIONS[1], INTERACTION_SECTIONS[2]}),
    }
    for name, (scenario, sections) in expected.items():
        result = sim.run(scenario, replications=2, seed=1)
        text = build_report(result, tmp_path / f"{name}.html").read_text()
        assert {s for s in INTERACTION_SECTIONS if s in text} == sections, name
    support_text = (tmp_path / "support.html").read_text()
    assert "wait_q90" in support_text and "true_nps" in support_text
    assert 'alt="queues of support_staffing"' in support_text
    referral_text = (tmp_path / "referral.html").read_text()
    assert "Fitted Bass" in referral_text and "k_factor" in referral_text
    assert "mean_field" in referral_text
    baseline_text = report[0].read_text()
    assert not any(s in baseline_text for s in INTERACTION_SECTIONS)
