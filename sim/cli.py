"""Command line: ``sim run``, ``sim compare``, ``sim report``, ``sim expected``,
``sim validate``, ``sim export``, ``sim fit`` and ``sim check``.

Bad input prints one message naming the file, the field and the fix, and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sim.errors import ScenarioError

if TYPE_CHECKING:
    import pandas as pd

    from sim.model.scenario import Scenario

# Heavy libraries (numpy, pandas, scipy, matplotlib) are imported by the commands that use
# them, inside main(): `sim --help` and `sim validate` start quickly, and Ctrl-C while they
# load is an interruption like any other (exit 130, one line).

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
#: what a shell reports for a command ended by SIGPIPE (128 + 13): `sim run ... | head`
EXIT_BROKEN_PIPE = 141


def _version() -> str:
    import sim

    return sim.__version__


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file (:func:`sim.load_scenario`)."""
    from sim.io.scenario_toml import load_scenario as load

    return load(path)


def _workers(requested: int) -> int:
    """Worker processes capped at the CPUs available, saying so on stderr."""
    from sim.run.replications import available_cpus

    cpus = available_cpus()
    if requested > cpus:
        print(
            f"note: -w {requested} is more than the {cpus} CPUs available; using {cpus}",
            file=sys.stderr,
        )
        return cpus
    return requested


def customer_count(text: str) -> int:
    """A number of customers as analysts write it: 1000000, 1e6, 1_000_000 or 1,000,000; a
    whole number of at least 1."""
    cleaned = text.strip().replace(",", "").replace("_", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of customers (e.g. 10000, 1e6 or 1,000,000)"
        ) from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the number of customers must be a whole number of at least 1"
        )
    return int(value)


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, as every other error (the usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sim", description="Customer journey simulation: run scenarios, see funnels."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s (journey-sim) {_version()}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate a scenario file and print/write its results")
    run.add_argument("scenario", type=Path, help="scenario file (TOML)")
    run.add_argument("--customers", type=customer_count, help="cohort size (overrides the file)")
    run.add_argument("--seed", type=int, help="root seed (overrides the file)")
    run.add_argument("-r", "--replications", type=int, default=1, help="replications (1)")
    run.add_argument("-w", "--workers", type=int, default=1, help="worker processes (1)")
    run.add_argument("--out", type=Path, help="directory for events, tables and run.json")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run into the same --out (same scenario, seed, version)",
    )
    _engine_option(run)
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
    cmp.add_argument("--customers", type=customer_count, help="cohort size (overrides the files)")
    cmp.add_argument("-w", "--workers", type=int, default=1, help="worker processes (1)")
    cmp.add_argument(
        "--metric",
        default="conversion",
        help="metric whose differences -r auto narrows (conversion); e.g. revenue_per_customer",
    )
    cmp.add_argument(
        "--target-half-width",
        type=float,
        help="with -r auto: stop when every difference's 95%% CI is this narrow",
    )
    cmp.add_argument(
        "--max-replications",
        type=int,
        default=300,
        help="with -r auto: stop adding replications here (300)",
    )
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
        help="directory for comparison.csv, roi.csv, per_replication.csv (and events/ when "
        "the runs are too big for memory: they then stream there)",
    )
    cmp.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted comparison into the same --out",
    )
    _engine_option(cmp)
    rep = sub.add_parser("report", help="run scenarios and write a self-contained HTML report")
    rep.add_argument(
        "scenarios", type=Path, nargs="+", help="scenario files; the first is the baseline"
    )
    rep.add_argument(
        "-r", "--replications", type=int, default=30, help="replications per scenario (30)"
    )
    rep.add_argument("--seed", type=int, help="root seed (default: the baseline file's)")
    rep.add_argument("--customers", type=customer_count, help="cohort size (overrides the files)")
    rep.add_argument("-w", "--workers", type=int, default=1, help="worker processes (1)")
    rep.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("out/report.html"),
        help="the HTML file to write (out/report.html)",
    )
    rep.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted report's runs (kept beside --output)",
    )
    _engine_option(rep)
    rep.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run replications on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786), or 'local' for a LocalCluster of --workers processes",
    )
    exp = sub.add_parser("expected", help="exact expectations from the absorbing Markov chain")
    exp.add_argument("scenario", type=Path, help="scenario file (TOML)")
    val = sub.add_parser("validate", help="check a scenario file and report the first problem")
    val.add_argument("scenario", type=Path, help="scenario file (TOML)")
    init = sub.add_parser("init", help="write a commented starter scenario to edit")
    init.add_argument(
        "name",
        type=Path,
        help="scenario name or file: 'shop' writes shop.toml, 'scenarios/shop.toml' that file",
    )
    _export_parser(sub)
    _add_calibration_commands(sub)
    return parser


def _export_parser(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser(
        "export",
        help="write an event log for process-mining or customer-value tools",
        description="Export the event log of a `sim run --out` directory, or of a real event "
        "file (CSV or Parquet, read with --customer, --time and --stage), as a process log "
        "(case:concept:name, concept:name, time:timestamp, ...) or as transactions "
        "(customer_id, date, value).",
    )
    ex.add_argument("source", type=Path, help="a `sim run --out` directory, or an event file")
    ex.add_argument(
        "--to",
        choices=["process", "transactions"],
        required=True,
        help="process: case/activity/timestamp rows for process mining; transactions: "
        "customer_id/date/value rows for customer-value models",
    )
    ex.add_argument("-o", "--output", type=Path, required=True, help="file.csv or file.parquet")
    ex.add_argument("--start", help="calendar date of day 0 (default: start_date, first event)")
    for name in ("customer", "time", "stage", "value", "persona", "channel"):
        ex.add_argument(f"--{name}", help=f"event file: the column holding the {name}")
    ex.add_argument("--stages", type=Path, help='event file: TOML of event = "stage" lines')
    ex.add_argument("--scenario", type=Path, help="event file: scenario whose journey it follows")
    ex.add_argument("--end", help="event file: end of observation (default: the last event)")
    ex.add_argument(
        "--errors",
        choices=["raise", "skip"],
        default="raise",
        help="bad rows of an event file: stop and list them (raise), or leave them out and "
        "count them per reason (skip)",
    )


def _engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=("auto", "simpy", "vectorised"),
        default="auto",
        help="simulation engine: auto (vectorised where it can run the scenario, else simpy), "
        "simpy (runs everything) or vectorised (customers who share no budget) (auto)",
    )


def _add_calibration_commands(sub) -> None:
    fit = sub.add_parser("fit", help="fit a scenario to an export of customer events")
    fit.add_argument("data", type=Path, help="export with one row per event (CSV or Parquet)")
    _data_options_after_data(fit)
    fit.add_argument("--until", help="use the data up to this date (or day) only")
    fit.add_argument(
        "--min-observations",
        type=int,
        default=30,
        help="below this many observations a persona uses the pooled estimate (30)",
    )
    fit.add_argument(
        "--personas",
        help="'auto': find latent personas in the data (K by BIC); a number: that many; "
        "'gamma' (transaction log): each customer's own purchase rate and never-again share",
    )
    fit.add_argument(
        "--attribute",
        action="append",
        default=[],
        metavar="COL",
        help="numeric column of a customer attribute (repeatable): its log-odds effect on each "
        "stage's moves is fitted by multinomial logit and written as [[effect]] rules",
    )
    fit.add_argument("-o", "--output", type=Path, required=True, help="scenario file to write")
    chk = sub.add_parser("check", help="simulate a fitted scenario beside the observed data")
    chk.add_argument("scenario", type=Path, help="fitted scenario file (TOML)")
    chk.add_argument("data", type=Path, help="export with one row per event (CSV or Parquet)")
    _data_options_after_data(chk)
    chk.add_argument(
        "--from",
        dest="start",
        help="forecast from this date (or day): every customer is warm-started there (their "
        "stage and time spent in it) and the period after it is compared, out of sample for "
        "a scenario fitted with --until",
    )
    chk.add_argument("-r", "--replications", type=int, default=20, help="replications (20)")
    chk.add_argument("--seed", type=int, default=0, help="root seed (0)")
    chk.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("out/fit_report.html"),
        help="HTML report; its tables go beside it as .csv",
    )


def _data_options_after_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customer", required=True, help="column of customer ids")
    p.add_argument("--time", required=True, help="column of dates or days")
    p.add_argument(
        "--stage", help="column of stage labels (none: every row is a purchase, a transaction log)"
    )
    p.add_argument("--value", help="column of order values")
    p.add_argument("--segment", help="column of customer segments (fitted as personas)")
    p.add_argument("--map", type=Path, help="stage map (TOML): stages, purchase, ends, labels")
    p.add_argument(
        "--repeat-steps",
        type=int,
        help="transaction log: give the first N-1 orders stages of their own (1; check: as "
        "in the scenario)",
    )


#: read_events' keywords and the options of sim fit / sim check that set them
_READ_OPTIONS = {
    "customer": "--customer",
    "time": "--time",
    "stage": "--stage",
    "value": "--value",
    "persona": "--segment",
    "stages": "--map",
    "purchase_stages": "--map (purchase = [...])",
    "end_stages": "--map (ends = [...])",
    "end": "--until",
}


def _fit_data_error(err: ScenarioError, args: argparse.Namespace) -> ScenarioError:
    """The error naming the file it is about: the stage map for a stage map's problem, else
    the data file (kept when the error names a file already)."""
    if err.field == "stage map" and getattr(args, "map", None):
        return err.located(str(args.map))
    return err.located(str(args.data))


def _read_data(args: argparse.Namespace, until: str | None = None, repeat_steps: int = 1):
    from sim.calibrate.table import read_table
    from sim.errors import EventLogError

    try:
        log = read_table(
            args.data,
            customer=args.customer,
            time=args.time,
            stage=args.stage,
            value=args.value,
            segment=args.segment,
            stage_map=args.map,
            until=until,
            repeat_steps=repeat_steps,
        )
    except EventLogError as err:
        # read_events speaks Python (customer=); here the same choice is an option
        fix = err.fix
        for keyword, option in _READ_OPTIONS.items():
            fix = fix.replace(f"pass {keyword}=", f"give {option}").replace(
                f"in {keyword}=", f"in {option}"
            )
        fix = fix.replace(
            ', or pass errors="skip" to leave bad rows out (counted in log.skipped)', ""
        )
        problem = err.problem
        refusal = EventLogError(problem, field=err.field, fix=fix, source=err.source)
        raise _fit_data_error(refusal, args) from None
    skipped = "".join(f"; {n} {reason}" for reason, n in log.skipped.items())
    print(
        f"{args.data}: {len(log)} moves of {int(log.customers.sum())} customers over "
        f"{log.horizon_days:g} days{skipped}"
    )
    return log


def _cmd_fit(args: argparse.Namespace) -> int:
    from sim.calibrate import Calibrator
    from sim.io.scenario_toml import save_scenario

    log = _read_data(args, args.until, args.repeat_steps or 1)
    personas = args.personas
    if personas is not None and personas not in ("auto", "gamma"):
        if not personas.isdigit():
            raise ScenarioError(
                f"--personas must be 'auto' or a number (or 'gamma'), got {personas!r}",
                field="--personas",
            )
        personas = int(personas)
    attributes = None
    if args.attribute:
        from sim.calibrate.table import read_attributes

        attributes = read_attributes(
            args.data,
            args.attribute,
            customer=args.customer,
            time=args.time,
            stage=args.stage,
            stage_map=args.map,
            until=args.until,
        )
    calibrator = Calibrator(
        min_observations=args.min_observations,
        name=args.output.stem,
        personas=personas,
        attributes=args.attribute,
    )
    try:
        fit = calibrator.fit(log, attributes=attributes)
    except ScenarioError as err:
        raise _fit_data_error(err, args) from None
    if fit.attribute_effects_ is not None and len(fit.attribute_effects_):
        print("Attribute effects (multinomial logit: log-odds of 'to' against 'against')")
        print(fit.attribute_effects_.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if fit.heterogeneity_ is not None:
        print("Each customer's own purchase rate (gamma) and never-again share (beta), by ML")
        print(fit.heterogeneity_.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if fit.mixture_ is not None:
        print("Latent personas (EM; the number with the lowest BIC is chosen)")
        print(fit.mixture_.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
        print(fit.personas_.T.to_string(header=False, float_format=lambda x: f"{x:.4g}"))
    for note in fit.warnings_:
        print(f"note: {note}")
    chosen = fit.dwell_[fit.dwell_["chosen"]]
    print(
        "\nDwell times (family chosen by AIC among those fitted with censoring; mean with its "
        "95% interval from the observed information)"
    )
    cols = ["stage", "parameters", "mean_ci_low", "mean_ci_high", "ks_distance", "ended", "open"]
    print(chosen[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if len(fit.never_again_):
        print("\nNever again (share of visits with no further move, from censored gaps)")
        print(fit.never_again_.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    t = fit.transitions_[fit.transitions_["persona"] == "all"]
    print("\nTransitions (all customers)")
    cols = ["stage", "to", "probability", "ci_low", "ci_high", "moves", "ended", "open"]
    print(t[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_scenario(fit.scenario_, args.output)
    summary = args.output.with_name(args.output.stem + "_summary.csv")
    fit.summary_.to_csv(summary, index=False)
    print(f"\nScenario: {args.output}\nSummary: {summary}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from sim.calibrate import check
    from sim.calibrate.table import day_of
    from sim.check_report import write_check_report

    scenario = load_scenario(args.scenario)
    steps = args.repeat_steps or max(len(scenario.journey.purchase_stages), 1)
    log = _read_data(args, repeat_steps=steps if args.stage is None else 1)
    start = day_of(log, args.start) if args.start is not None else 0.0
    result = check(
        scenario, log, replications=args.replications, seed=args.seed, holdout_from=start
    )
    print(repr(result))
    bad = result.table[~result.table["ok"]]
    if len(bad):
        print("Outside the limits:")
        print(bad.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("Distributions (KS, reported only):")
    print(result.distances.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    path = write_check_report(result, args.output, title=scenario.name)
    print(f"Report: {path}\nTables: {path.with_suffix('.csv')}")
    return 0


def _pct(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:5.1f}%"


def _print_funnel(result) -> None:
    table = result.funnel(by="persona")
    overall = table[table["persona"] == "all"]
    print("Funnel, all customers (mean per replication; 95% CI)")
    rows = []
    for _, r in overall.iterrows():
        ci = (
            ""
            if math.isnan(r.conversion_ci_low)
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
    import pandas as pd

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
    if len(ttp) and not math.isnan(ttp["median_days"].iloc[0]):
        t = ttp.iloc[0]
        print(
            f"\nTime to first purchase (purchasers): median {t.median_days:.1f} days, "
            f"quartiles {t.q25_days:.1f}-{t.q75_days:.1f}, mean {t.mean_days:.1f}"
        )


def _run_options(args: argparse.Namespace, keep: Path | None) -> dict:
    """Keyword arguments that sim run, compare and report pass alike: seed, customers,
    workers, the kept replications and --resume, the engine and the backend."""
    return {
        "seed": args.seed,
        "customers": args.customers,
        "workers": args.workers,
        "keep": keep,
        "resume": args.resume,
        "engine": args.engine,
        **_backend(args),
    }


def _backend(args: argparse.Namespace) -> dict:
    """Keyword arguments choosing where replications run, from ``--dask``."""
    if args.dask is None:
        return {}
    from sim.run.backends import LOCAL

    return {"backend": "dask", "address": None if args.dask == LOCAL else args.dask}


def _streaming(args: argparse.Namespace) -> dict:
    """With ``--out``, stream the event log when the run would not fit in memory (the rule:
    :data:`sim.run.streaming.STREAM_SHARE`): into the directory that becomes ``OUT`` (so it
    ends as ``OUT/events``, and ``OUT`` stays complete or absent)."""
    from sim.output import work_directory

    if args.out is None:
        return {}
    events = _fresh_events(work_directory(args.out), getattr(args, "resume", False))
    return {"stream_to": events, "stream": "auto"}


def _fresh_events(keep: Path, resume: bool = False) -> Path:
    """Where a run kept in ``keep`` streams its events: ``keep/events``. With ``resume`` it
    is left as an interrupted streamed run left it (the run goes on from there); otherwise
    it is emptied, so that an old dataset never ends up in a new output directory, unless it
    holds chunks an interrupted run finished: those are not thrown away without consent."""
    import shutil

    from sim.run.streaming import finished_chunks

    events = keep / "events"
    if resume:
        return events
    kept = finished_chunks(events)
    if kept:
        raise ScenarioError(
            f"{keep} holds {kept} finished chunk(s) of an interrupted streamed run",
            field="--resume",
            fix=f"add --resume to continue it, or remove {keep} to start over",
        )
    shutil.rmtree(events, ignore_errors=True)
    return events


def _streamed_note(provenance: dict) -> None:
    """Say that a run streamed, and why."""
    streamed = provenance.get("streamed")
    if streamed:
        print(
            f"Streamed the event log to disk in {streamed['chunks']:,} chunk(s): "
            f"{streamed['reason']}; tables come from counts merged over the chunks.\n"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.io.locations import check_output_dir, check_replaceable_dir
    from sim.output import work_directory, write_run
    from sim.run import run

    scenario = load_scenario(args.scenario)
    if args.out is not None:
        check_output_dir(args.out, "--out")
        check_replaceable_dir(args.out, "--out")
    args.workers = _workers(args.workers)
    keep = work_directory(args.out) if args.out else None
    if args.resume and keep is None:
        raise ScenarioError("--resume needs --out", field="--resume", fix="add --out DIR")
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = run(
                scenario,
                replications=args.replications,
                **_run_options(args, keep),
                **_streaming(args),
            )
    except ScenarioError as err:
        if err.field in ("--resume", "resume"):
            raise
        raise err.located(str(args.scenario)) from None
    except KeyboardInterrupt:
        _kept_message(keep, args)
        return EXIT_INTERRUPTED
    p = result.provenance
    resumed = p.get("resumed", {})
    read_back = (
        f"; {n} replication(s) read back" if (n := resumed.get("replications_read_back")) else ""
    ) + (f"; {n} chunk(s) read back" if (n := resumed.get("chunks_read_back")) else "")
    print(
        f"{scenario.name}: {p['customers']:,} customers over {p['replications']} "
        f"replication(s), seed {p['seed']}, horizon {scenario.horizon_days:g} days "
        f"({p['engine']} engine, {p['elapsed_seconds']:.1f} s{read_back})\n"
    )
    _streamed_note(p)
    _print_funnel(result)
    _print_retention(result)
    if scenario.interventions:
        costs = _intervention_table(result.costs())
        print("\nInterventions (mean per replication)")
        print(costs.to_string(float_format=lambda x: f"{x:,.1f}"))
    if not result.complete:
        print(
            f"\nInterrupted after {p['replications']} of {p['replications_requested']} "
            "replications.",
            file=sys.stderr,
        )
        _kept_message(keep, args)
        return EXIT_INTERRUPTED
    if args.out:
        try:
            paths = write_run(result, args.out, work=keep)
        except KeyboardInterrupt:
            # the output folder is complete or absent; what was kept is said
            _kept_message(keep, args)
            return EXIT_INTERRUPTED
        print(f"\nWrote {', '.join(str(x) for x in paths)}")
    else:
        print(
            "\nNothing written: add --out DIR to keep the event log, tables, plots and provenance."
        )
    return 0


#: Counts and the cost each one brings, shown when that cost is not zero in every row.
_OPTIONAL_COSTS = (
    ("referrals", "referral_cost"),
    ("unit_days", "capacity_cost"),
    ("credits", "credit_cost"),
)


def _intervention_table(costs: pd.DataFrame) -> pd.DataFrame:
    """Mean cost of each intervention per replication, with every cost column that is not
    zero somewhere, so the printed parts of a row add up to its total."""
    columns = ["reached", "purchases", "fixed", "reach_cost", "purchase_cost"]
    for count, cost in _OPTIONAL_COSTS:
        if cost in costs.columns and (costs[cost] != 0).any():
            columns += [count, cost]
    return costs.groupby("intervention", sort=False)[[*columns, "total"]].mean()


def _kept_message(keep: Path | None, args: argparse.Namespace) -> None:
    """Where an interrupted run's finished replications (or a streamed run's finished
    chunks) are, and how to go on."""
    from sim.run.resume import FOLDER, STATE
    from sim.run.streaming import finished_chunks

    if keep is not None and (keep / STATE).is_file() and any((keep / FOLDER).glob("*.npz")):
        print(
            f"Finished replications are kept in {keep}; run the same command with --resume "
            "to continue.",
            file=sys.stderr,
        )
    elif keep is not None and finished_chunks(keep / "events"):
        print(
            f"Finished chunks of the streamed event log are kept in {keep}; run the same "
            "command with --resume to continue.",
            file=sys.stderr,
        )
    elif keep is not None:
        import shutil

        # nothing in it to resume from: the working folder goes, as "nothing written" says
        shutil.rmtree(keep, ignore_errors=True)
        print("interrupted: nothing kept to resume from; nothing written", file=sys.stderr)
    else:
        print("interrupted: nothing written", file=sys.stderr)


def _cmd_compare(args: argparse.Namespace) -> int:
    from sim.io.locations import check_output_dir, check_replaceable_dir
    from sim.output import work_directory, write_comparison
    from sim.run import compare
    from sim.run.compare import check_metric

    scenarios = _load_named(args.scenarios)
    check_output_dir(args.out, "--out")
    check_replaceable_dir(args.out, "--out")
    check_metric(args.metric, scenarios.values(), (30, 90, 180))
    args.workers = _workers(args.workers)
    keep = work_directory(args.out)
    keep.parent.mkdir(parents=True, exist_ok=True)
    replications = args.replications
    if replications != "auto":
        try:
            replications = int(replications)
        except ValueError:
            raise ScenarioError(
                f"--replications must be a number or 'auto', got {replications!r}",
                field="--replications",
            ) from None
    try:
        res = compare(
            scenarios,
            replications,
            metric=args.metric,
            target_half_width=args.target_half_width,
            max_replications=args.max_replications,
            **_run_options(args, keep),
            # each scenario's log streams into OUT/events/<scenario> when it would not fit
            stream_to=_fresh_events(keep, args.resume),
            stream="auto",
        )
    except KeyboardInterrupt:
        _kept_message(keep, args)
        return EXIT_INTERRUPTED
    auto = (
        ""
        if res.converged is None
        else (" (target reached)" if res.converged else " (maximum reached before the target)")
    )
    print(f"{res!r}{auto}, {res.elapsed_seconds:.1f} s\n")
    if res.streamed:
        print(
            f"Streamed each scenario's event log to disk: {res.streamed}; tables come from "
            "counts merged over the chunks.\n"
        )
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
        ("" if n == res.baseline or math.isnan(u) else f"{100 * u:+.1f}%")
        for n, u in zip(shown.scenario, shown.relative_uplift, strict=True)
    ]
    shown["p (Holm)"] = ["" if math.isnan(p) else f"{p:.3g}" for p in shown.p_adjusted]
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
    try:
        written = write_comparison(res, args.out, bootstrap=args.bootstrap, work=keep)
    except KeyboardInterrupt:
        _kept_message(keep, args)
        return EXIT_INTERRUPTED
    print(f"\nWrote {', '.join(str(p) for p in written)}")
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
    import shutil

    from sim.io.locations import check_output_file
    from sim.output import work_directory
    from sim.report import build_report
    from sim.results import RunResult
    from sim.run import compare, run

    scenarios = _load_named(args.scenarios)
    check_output_file(args.output, "-o/--output")
    args.workers = _workers(args.workers)
    keep = work_directory(args.output)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    try:
        if len(scenarios) == 1:
            obj = run(
                next(iter(scenarios.values())),
                replications=args.replications,
                **_run_options(args, keep),
            )
        else:
            obj = compare(
                scenarios,
                args.replications,
                **_run_options(args, keep),
            )
    except KeyboardInterrupt:
        _kept_message(keep, args)
        return EXIT_INTERRUPTED
    if isinstance(obj, RunResult) and not obj.complete:
        _kept_message(keep, args)
        return EXIT_INTERRUPTED
    print(repr(obj))
    path = build_report(obj, args.output)
    shutil.rmtree(keep, ignore_errors=True)
    print(f"Report: {path}")
    return 0


def _cmd_expected(args: argparse.Namespace) -> int:
    from sim.engine.analytic import expected

    scenario = load_scenario(args.scenario)
    if scenario.market is not None:
        try:
            expected(scenario)
        except ScenarioError as refusal:
            # the same refusal as sim.expected, then the curve its message points to
            return _expected_adoption(scenario, refusal)
    try:
        exp = expected(scenario)
    except ScenarioError as err:
        fix = err.fix
        if scenario.market is None and scenario.interacting is not None:
            # the mean-field curve needs a [market]: without one, simulating is the way
            fix = f"simulate it: sim run {args.scenario}"
        refusal = ScenarioError(err.problem, field=err.field, fix=fix, source=err.source)
        raise refusal.located(str(args.scenario)) from None
    print(f"{scenario.name}: exact expectations over whole journeys (no horizon)\n")
    print(exp.summary.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
    print("\nReach (probability of ever entering) by persona")
    pivot = exp.stages.pivot(index="persona", columns="stage", values="reach")
    print(pivot[list(scenario.journey.names)].to_string(float_format=lambda x: f"{x:.4f}"))
    return 0


def _expected_adoption(scenario: Scenario, refusal: ScenarioError) -> int:
    """A scenario with a market has no exact chain: say so in the words of sim.expected, then
    print the mean-field adoption curve (sim.expected_adoption)."""
    from sim.engine.mean_field import expected_adoption

    curve = expected_adoption(scenario)
    print(
        f"{scenario.name}: no exact answer (sim.expected refuses: {refusal.problem}).\n"
        f"The adoption curve from the mean-field equations instead (sim.expected_adoption).\n"
        f"Method: {curve.attrs['method']}\n"
    )
    step = max(1, len(curve) // 12)
    shown = curve.iloc[::step]
    print(shown.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    print(
        f"{args.scenario}: OK ({scenario.name}: {len(scenario.journey.stages)} stages, "
        f"{len(scenario.personas)} persona{'s' if len(scenario.personas) != 1 else ''})"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from sim.io.event_files import read_events, read_run_events
    from sim.output import write_frame

    if args.output.is_dir():
        raise ScenarioError(
            f"{args.output} is a folder",
            field="--output",
            fix=f"name a file in it, e.g. -o {args.output / 'events.csv'}",
        )
    if args.output.suffix not in (".csv", ".parquet"):
        raise ScenarioError(
            f"cannot write {args.output}: its name ends in neither .csv nor .parquet",
            field="--output",
            fix="name a .csv or .parquet file",
        )
    from sim.io.locations import written_by_a_run

    target = Path(os.path.abspath(args.output))
    for folder in list(target.parents)[:4]:
        if target.relative_to(folder).parts[0] in written_by_a_run(folder):
            raise ScenarioError(
                f"{args.output} is (or is inside) one of the files the run in {folder} wrote",
                field="--output",
                fix="write the export to another file, outside the run's files",
            )
    if args.source.is_dir() and (args.source / "events" / "_log.json").is_file():
        return _export_streamed(args)
    if args.source.is_dir():
        log = read_run_events(args.source)
    else:
        missing = [f"--{n}" for n in ("customer", "time", "stage") if not getattr(args, n)]
        if missing:
            raise ScenarioError(
                f"an event file needs {', '.join(missing)}",
                source=str(args.source),
                field="columns",
                fix="name the columns holding the customer id, the timestamp and the event",
            )
        log = read_events(
            args.source,
            customer=args.customer,
            time=args.time,
            stage=args.stage,
            value=args.value,
            persona=args.persona,
            channel=args.channel,
            stages=args.stages,
            journey=load_scenario(args.scenario) if args.scenario else None,
            start=args.start,
            end=args.end,
            errors=args.errors,
        )
    if args.start is None and log.start_date is None:
        raise ScenarioError(
            "the log has no calendar date for day 0",
            field="--start",
            fix="add --start 2025-01-01 (or set start_date in the scenario file)",
        )
    frame = (
        log.to_process_log(start=args.start)
        if args.to == "process"
        else log.to_transactions(start=args.start)
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    path = write_frame(frame, args.output)
    print(
        f"{int(log.customers.sum()):,} customers, {len(log):,} events over "
        f"{log.horizon_days:,.1f} days from {log.start_date or args.start}"
    )
    if log.skipped:
        print(
            "Skipped rows: " + ", ".join(f"{n:,} {why}" for why, n in log.skipped.items()),
            file=sys.stderr,
        )
    print(f"Wrote {len(frame):,} rows to {path}")
    return 0


def _export_streamed(args: argparse.Namespace) -> int:
    """`sim export` of a run directory whose event log was streamed (``events/``): the rows
    are converted and written chunk by chunk of customers, so the log is never held whole."""
    from sim.io.event_dataset import read_event_dataset
    from sim.output import write_frames

    dataset = read_event_dataset(args.source / "events")
    scenario = load_scenario(args.source / "scenario.toml")
    start = args.start or scenario.start_date
    if start is None:
        raise ScenarioError(
            "the log has no calendar date for day 0",
            field="--start",
            fix="add --start 2025-01-01 (or set start_date in the scenario file)",
        )
    rows = 0

    def frames():
        nonlocal rows
        for _, log in dataset.numbered_chunks():
            frame = (
                log.to_process_log(start=start)
                if args.to == "process"
                else log.to_transactions(start=start)
            )
            rows += len(frame)
            yield frame

    args.output.parent.mkdir(parents=True, exist_ok=True)
    path = write_frames(frames(), args.output)
    print(
        f"{int(dataset.customers.sum()):,} customers, streamed event log over "
        f"{scenario.horizon_days:,.1f} days from {start}, written chunk by chunk of customers"
    )
    print(f"Wrote {rows:,} rows to {path}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from sim.io.starter import write_starter

    path = write_starter(args.name)
    print(
        f"Wrote {path}: a starter scenario with comments on every field.\n"
        f"Try it:  sim validate {path}  then  sim run {path}\n"
        "Every field is described in docs/scenario-format.md."
    )
    return 0


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``sim run ... | head``): stop quietly, as
    command-line tools do. Python would report the failed flush again at exit, so stdout is
    pointed at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sim`` command; returns the exit status. Ctrl-C anywhere in it
    (parsing, importing, simulating, writing) exits with status 130 and one line; files are
    written atomically, so none is left half-written."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    """Say so in one line."""
    with contextlib.suppress(OSError, ValueError):  # stderr closed
        print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


#: Python arguments whose fixes name them, and the option that makes the same choice here.
_CLI_OPTIONS = {"engine": "--engine"}


def _in_cli_words(err: ScenarioError) -> str:
    """The error's message with a fix in Python words (engine='auto') given as the command
    line's option (--engine auto); the library keeps its Python text."""
    import re

    fix, field = err.fix, err.field
    for keyword, option in _CLI_OPTIONS.items():
        fix = re.sub(rf"\b{keyword}=(['\"])([\w-]+)\1", rf"{option} \2", fix)
        if field == keyword:
            field = option
    if (fix, field) == (err.fix, err.field):
        return str(err)
    return str(type(err)(err.problem, field=field, fix=fix, source=err.source))


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "run": _cmd_run,
        "compare": _cmd_compare,
        "report": _cmd_report,
        "expected": _cmd_expected,
        "validate": _cmd_validate,
        "export": _cmd_export,
        "init": _cmd_init,
        "fit": _cmd_fit,
        "check": _cmd_check,
    }
    try:
        status = commands[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return status
    except ScenarioError as err:
        print(f"error: {_in_cli_words(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as err:  # a disk that fills up or a folder removed while writing
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
