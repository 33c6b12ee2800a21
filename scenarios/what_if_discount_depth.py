"""What if the launch discount were deeper or shallower?

Sweeps the discount from 5% to 30% off and prints, for each depth, the conversion, the
incremental profit and the ROI against the baseline, with 95% intervals. Deeper discounts sell
to more bargain hunters but give away more on every order: where does profit peak?

Run: python scenarios/what_if_discount_depth.py [--replications 20] [--customers 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sim
from sim.interventions import discount

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=20)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    baseline = sim.load_scenario(HERE / "baseline.toml")
    variants = {"baseline": baseline}
    for depth in (0.05, 0.10, 0.15, 0.20, 0.25, 0.30):
        offer = discount(
            depth=depth,
            personas=["bargain_hunter"],
            window_days=(0, 60),
            reach=0.5,
            fixed=3000,
            per_reached=0.5,
            per_conversion=1.0,
        )
        variants[f"{depth:.0%} off"] = baseline.with_interventions(offer)

    result = sim.compare(
        variants, replications=args.replications, seed=args.seed, customers=args.customers
    )
    summary = result.summary(metrics=["conversion", "profit"])
    roi = result.roi().set_index("scenario")
    print(f"{result!r}\n")
    print(f"{'discount':>9} {'conversion':>11} {'incremental profit (95% CI)':>34} {'ROI':>7}")
    for name in variants:
        conv = summary[(summary.scenario == name) & (summary.metric == "conversion")].iloc[0]
        if name == "baseline":
            print(f"{name:>9} {conv['mean']:>11.2%}")
            continue
        r = roi.loc[name]
        interval = (
            f"{r.incremental_profit:>10,.0f} [{r.incremental_profit_ci_low:,.0f}, "
            f"{r.incremental_profit_ci_high:,.0f}]"
        )
        print(f"{name:>9} {conv['mean']:>11.2%} {interval:>34} {r.roi:>7.2f}")
    best = roi["incremental_profit"].idxmax()
    print(
        f"\nMost profitable depth here: {best} "
        f"(incremental profit {roi.loc[best, 'incremental_profit']:,.0f} per replication)"
    )


if __name__ == "__main__":
    main()
