"""Command line: ``sim run``, ``sim expected``, ``sim validate``.

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

from sim.analytic import expected
from sim.errors import ScenarioError
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
        pivot = pivot[list(result.log.stages)].loc[["all", *result.log.personas]]
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


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.output import write_run
    from sim.runner import run

    scenario = Scenario.from_toml(args.scenario)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = run(
                scenario,
                replications=args.replications,
                seed=args.seed,
                customers=args.customers,
                workers=args.workers,
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


def _cmd_expected(args: argparse.Namespace) -> int:
    scenario = Scenario.from_toml(args.scenario)
    exp = expected(scenario)
    print(f"{scenario.name}: exact expectations over whole journeys (no horizon)\n")
    print(exp.summary.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
    print("\nReach (probability of ever entering) by persona")
    pivot = exp.stages.pivot(index="persona", columns="stage", values="reach")
    print(pivot[list(scenario.journey.names)].to_string(float_format=lambda x: f"{x:.4f}"))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    scenario = Scenario.from_toml(args.scenario)
    print(
        f"{args.scenario}: OK ({scenario.name}: {len(scenario.journey.stages)} stages, "
        f"{len(scenario.personas)} personas)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {"run": _cmd_run, "expected": _cmd_expected, "validate": _cmd_validate}
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
