"""Command line: ``sim run``, ``sim compare``, ``sim report``, ``sim expected``,
``sim validate``.

Bad input prints one message naming the file, the field and the fix, and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from sim.engine.analytic import expected
from sim.errors import ScenarioError
from sim.io.scenario_toml import load_scenario
from sim.model.scenario import Scenario

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim", description="Customer journey simulation: run scenarios, see funnels."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate a scenario file and print/write its results")
    run.add_argument("scenario", type=Path, help="scenario file (TOML)")
    run.add_argument("--customers", type=int, help="cohort size (overrides the file)")
    run.add_argument("--seed", type=int, help="root seed (overrides the file)")
    run.add_argument("-r", "--replications", type=int, default=1, help="replications (1)")
    run.add_argument("-w", "--workers", type=int, default=1, help="worker processes (1)")
    run.add_argument("--out", type=Path, help="directory for events, tables and run.json")
    run.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run replications on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786), or 'local' for a LocalCluster of --workers processes",
    )
    cmp = sub.add_parser("compare", help="run scenarios side by side; differences from the first")
    cmp.add_argument(
        "scenarios", type=Path, nargs="+", help="scenario files; the first is the baseline"
    )
    cmp.add_argument(
        "-r",
        "--replications",
        default="30",
        help="replications per scenario, or 'auto' with --target-half-width (30)",
    )
    cmp.add_argument("--seed", type=int, help="root seed (default: the baseline file's)")
    cmp.add_argument("--customers", type=int, help="cohort size (overrides the files)")
    cmp.add_argument("-w", "--workers", type=int, default=1, help="worker processes (1)")
    cmp.add_argument("--metric", default="conversion", help="metric for -r auto (conversion)")
    cmp.add_argument(
        "--target-half-width",
        type=float,
        help="with -r auto: stop when every difference's 95%% CI is this narrow",
    )
    cmp.add_argument("--max-replications", type=int, default=300)
    cmp.add_argument("--bootstrap", action="store_true", help="BCa bootstrap intervals")
    cmp.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run replications on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786), or 'local' for a LocalCluster of --workers processes",
    )
    cmp.add_argument(
        "--out",
        type=Path,
        default=Path("out/compare"),
        help="directory for comparison.csv, roi.csv, per_replication.csv",
    )
    rep = sub.add_parser("report", help="run scenarios and write a self-contained HTML report")
    rep.add_argument(
        "scenarios", type=Path, nargs="+", help="scenario files; the first is the baseline"
    )
    rep.add_argument("-r", "--replications", type=int, default=30)
    rep.add_argument("--seed", type=int, help="root seed (default: the baseline file's)")
    rep.add_argument("--customers", type=int, help="cohort size (overrides the files)")
    rep.add_argument("-w", "--workers", type=int, default=1)
    rep.add_argument("-o", "--output", type=Path, default=Path("out/report.html"))
    rep.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run replications on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786), or 'local' for a LocalCluster of --workers processes",
    )
    exp = sub.add_parser("expected", help="exact expectations from the absorbing Markov chain")
    exp.add_argument("scenario", type=Path)
    val = sub.add_parser("validate", help="check a scenario file and report the first problem")
    val.add_argument("scenario", type=Path)
    return parser


def _pct(x: float) -> str:
    return "" if np.isnan(x) else f"{100 * x:5.1f}%"


def _print_funnel(result) -> None:
    table = result.funnel(by="persona")
    overall = table[table["persona"] == "all"]
    print("Funnel, all customers (mean per replication; 95% CI)")
    rows = []
    for _, r in overall.iterrows():
        ci = (
            ""
            if np.isnan(r.conversion_ci_low)
            else f"[{_pct(r.conversion_ci_low).strip()}, {_pct(r.conversion_ci_high).strip()}]"
        )
        rows.append(
            {
                "stage": r.stage,
                "customers": f"{r.customers:,.0f}",
                "conversion": _pct(r.conversion),
                "95% CI": ci,
                "step": _pct(r.step_conversion),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False))
    if len(result.scenario.personas) > 1:
        print("\nConversion to each stage by persona")
        pivot = table.pivot(index="persona", columns="stage", values="conversion")
        journey = result.scenario.journey
        pivot = pivot[list(journey.names)].loc[["all", *result.scenario.persona_names]]
        print(pivot.map(_pct).to_string())


def _print_retention(result) -> None:
    summary = result.retention_summary(by="persona")
    print("\nRetention after first purchase (Kaplan-Meier, censored at the horizon)")
    shown = summary.copy()
    for col in shown.columns:
        if col.startswith("active_day_") or col == "repeat_purchase_rate":
            shown[col] = shown[col].map(_pct)
    shown = shown.drop(columns=["revenue_ci_low", "revenue_ci_high"])
    print(shown.to_string(index=False, float_format=lambda x: f"{x:,.2f}"))
    ttp = result.time_to_purchase(by=None)
    if len(ttp) and not np.isnan(ttp["median_days"].iloc[0]):
        t = ttp.iloc[0]
        print(
            f"\nTime to first purchase (purchasers): median {t.median_days:.1f} days, "
            f"quartiles {t.q25_days:.1f}-{t.q75_days:.1f}, mean {t.mean_days:.1f}"
        )


def _backend(args: argparse.Namespace) -> dict:
    """Keyword arguments choosing where replications run, from ``--dask``."""
    if args.dask is None:
        return {}
    from sim.run.backends import LOCAL

    return {"backend": "dask", "address": None if args.dask == LOCAL else args.dask}


def _streaming(args: argparse.Namespace, scenario: Scenario) -> dict:
    """With ``--out``, stream the event log into ``OUT/events`` when it would be large."""
    from sim.run.streaming import STREAM_ABOVE, expected_customers

    if args.out is None:
        return {}
    if args.customers is not None and args.customers > 0:
        try:
            scenario = scenario.with_customers(args.customers)
        except ScenarioError:
            return {}  # the run itself reports it, naming the file
    if expected_customers(scenario) * max(args.replications, 1) <= STREAM_ABOVE:
        return {}
    return {"stream_to": args.out / "events"}


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.output import write_run
    from sim.run import run

    scenario = load_scenario(args.scenario)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = run(
                scenario,
                replications=args.replications,
                seed=args.seed,
                customers=args.customers,
                workers=args.workers,
                **_backend(args),
                **_streaming(args, scenario),
            )
    except ScenarioError as err:
        raise err.located(str(args.scenario)) from None
    p = result.provenance
    print(
        f"{scenario.name}: {p['customers']:,} customers over {p['replications']} "
        f"replication(s), seed {p['seed']}, horizon {scenario.horizon_days:g} days "
        f"({p['engine']} engine, {p['elapsed_seconds']:.1f} s)\n"
    )
    _print_funnel(result)
    _print_retention(result)
    if scenario.interventions:
        costs = (
            result.costs()
            .groupby("intervention", sort=False)[
                ["reached", "conversions", "fixed", "reach_cost", "conversion_cost", "total"]
            ]
            .mean()
        )
        print("\nInterventions (mean per replication)")
        print(costs.to_string(float_format=lambda x: f"{x:,.1f}"))
    if args.out:
        paths = write_run(result, args.out)
        print(f"\nWrote {', '.join(str(x) for x in paths)}")
    if not result.complete:
        print(
            f"\nInterrupted: kept {p['replications']} of {p['replications_requested']} "
            "replications.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    import json

    from sim.analysis.comparison import KEY_METRICS
    from sim.io.atomic import write_text_atomic
    from sim.output import write_frame
    from sim.run import compare

    scenarios = _load_named(args.scenarios)
    replications = args.replications
    if replications != "auto":
        try:
            replications = int(replications)
        except ValueError:
            raise ScenarioError(
                f"--replications must be a number or 'auto', got {replications!r}",
                field="--replications",
            ) from None
    res = compare(
        scenarios,
        replications,
        seed=args.seed,
        customers=args.customers,
        workers=args.workers,
        metric=args.metric,
        target_half_width=args.target_half_width,
        max_replications=args.max_replications,
        **_backend(args),
    )
    auto = (
        ""
        if res.converged is None
        else (" (target reached)" if res.converged else " (maximum reached before the target)")
    )
    print(f"{res!r}{auto}, {res.elapsed_seconds:.1f} s\n")
    table = res.summary(bootstrap=args.bootstrap)
    shown = table.copy()
    shown["95% CI"] = [
        f"[{a:,.4g}, {b:,.4g}]" for a, b in zip(shown.ci_low, shown.ci_high, strict=True)
    ]
    shown["diff 95% CI"] = [
        "" if n == res.baseline else f"[{a:+,.4g}, {b:+,.4g}]"
        for n, a, b in zip(shown.scenario, shown.diff_ci_low, shown.diff_ci_high, strict=True)
    ]
    shown["uplift"] = [
        ("" if n == res.baseline or np.isnan(u) else f"{100 * u:+.1f}%")
        for n, u in zip(shown.scenario, shown.relative_uplift, strict=True)
    ]
    shown["p (Holm)"] = ["" if np.isnan(p) else f"{p:.3g}" for p in shown.p_adjusted]
    print(
        shown[
            [
                "metric",
                "scenario",
                "mean",
                "95% CI",
                "diff_vs_baseline",
                "diff 95% CI",
                "uplift",
                "p (Holm)",
            ]
        ].to_string(index=False, float_format=lambda x: f"{x:,.4g}")
    )
    roi = res.roi()
    print("\nReturn on the interventions (per replication, against the baseline)")
    print(
        roi[
            [
                "scenario",
                "cost",
                "incremental_conversions",
                "incremental_revenue",
                "incremental_profit",
                "cost_per_incremental_conversion",
                "roi",
            ]
        ].to_string(index=False, float_format=lambda x: f"{x:,.2f}")
    )
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_frame(
            res.summary(metrics=None, persona=None, bootstrap=args.bootstrap),
            out / "comparison.csv",
        ),
        write_frame(roi, out / "roi.csv"),
        write_frame(res.per_replication, out / "per_replication.csv"),
    ]
    meta = {
        "baseline": res.baseline,
        "seed": res.seed,
        "replications": res.replications,
        "converged": res.converged,
        "paired": res.paired,
        "metrics": list(KEY_METRICS),
        "scenarios": {n: r.provenance for n, r in res.results.items()},
    }
    write_text_atomic(out / "run.json", json.dumps(meta, indent=2) + "\n")
    print(f"\nWrote {', '.join(str(p) for p in written)}, {out / 'run.json'}")
    return 0


def _load_named(paths: list[Path]) -> dict[str, Scenario]:
    scenarios: dict[str, Scenario] = {}
    for path in paths:
        scenario = load_scenario(path)
        name = scenario.name if scenario.name not in scenarios else path.stem
        if name in scenarios:
            raise ScenarioError(
                f"two scenarios are called '{name}'",
                source=str(path),
                field="scenario, field 'name'",
                fix="give each its own name",
            )
        scenarios[name] = scenario
    return scenarios


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.report import build_report
    from sim.run import compare, run

    scenarios = _load_named(args.scenarios)
    if len(scenarios) == 1:
        obj = run(
            next(iter(scenarios.values())),
            replications=args.replications,
            seed=args.seed,
            customers=args.customers,
            workers=args.workers,
            **_backend(args),
        )
    else:
        obj = compare(
            scenarios,
            args.replications,
            seed=args.seed,
            customers=args.customers,
            workers=args.workers,
            **_backend(args),
        )
    print(repr(obj))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    path = build_report(obj, args.output)
    print(f"Report: {path}")
    return 0


def _cmd_expected(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    exp = expected(scenario)
    print(f"{scenario.name}: exact expectations over whole journeys (no horizon)\n")
    print(exp.summary.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
    print("\nReach (probability of ever entering) by persona")
    pivot = exp.stages.pivot(index="persona", columns="stage", values="reach")
    print(pivot[list(scenario.journey.names)].to_string(float_format=lambda x: f"{x:.4f}"))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    print(
        f"{args.scenario}: OK ({scenario.name}: {len(scenario.journey.stages)} stages, "
        f"{len(scenario.personas)} personas)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {
        "run": _cmd_run,
        "compare": _cmd_compare,
        "report": _cmd_report,
        "expected": _cmd_expected,
        "validate": _cmd_validate,
    }
    try:
        return commands[args.command](args)
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
