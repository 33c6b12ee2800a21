"""Start-up time: ``import sim``, ``sim --help`` and ``sim validate`` in fresh processes.

Each command runs ``--repeat`` times (default 7) in a new interpreter, one at a time,
interleaved with the reference, and the median wall time is reported. The reference is the
least any ``sim`` command can cost: a fresh interpreter importing numpy (``python -c "import
numpy"``), measured in the same run. Ratio = command / reference. Also listed: which heavy
libraries ``import sim`` leaves loaded (none of pandas, scipy.stats, pyarrow, matplotlib is
expected). This machine is shared, so only the ratios, measured in the same run, mean much.

Run: ``python benchmarks/startup.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "scipy.stats", "pyarrow", "matplotlib", "simpy", "scipy")
CLI = "import sys; from sim.cli import main; sys.exit(main(sys.argv[1:]))"


def _seconds(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    commands = {
        "python -c 'import numpy' (reference)": [py, "-c", "import numpy"],
        "import sim": [py, "-c", "import sim"],
        "sim --help": [py, "-c", CLI, "--help"],
        "sim validate baseline": [py, "-c", CLI, "validate", "scenarios/baseline.toml"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            times[name].append(_seconds(command))
    loaded = subprocess.run(
        [py, "-c", f"import sim, sys; print([m for m in {HEAVY!r} if m in sys.modules])"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    reference = statistics.median(next(iter(times.values())))
    print(f"fresh processes, one at a time, median of {args.repeat}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<40} {median:6.3f} s  ratio to reference {median / reference:5.2f}")
    print(f"  heavy libraries loaded by 'import sim': {loaded}")


if __name__ == "__main__":
    main()
