"""The minimum versions declared in pyproject.toml are true: each floor is at least the
version that introduced the newest API we call from that package, and the installed
versions meet the floors."""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

#: package -> (oldest version with every API we use, the newest of those APIs and where)
NEEDED = {
    "scipy": ("1.15", "stats.bootstrap(..., rng=) in sim/analysis/stats.py"),
    "pandas": ("2.1", "DataFrame.map in sim/cli.py"),
    "numpy": ("1.26", "numpy 2-compatible SeedSequence streams; Python 3.12 wheels"),
    "simpy": ("4.1", "Environment.timeout / process API of SimPy 4; its queue (env._queue)"),
    "lifelines": ("0.27", "KaplanMeierFitter.confidence_interval_survival_function_ (tests)"),
    "statsmodels": ("0.14", "proportion_confint(method='wilson'), multipletests (tests)"),
}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _floors() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    floors = {}
    for req in requirements:
        # a ceiling (',<N') is allowed where we rely on a library's internals
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,<[0-9.]+)?", req.strip())
        assert match, f"requirement {req!r} should read 'name>=version' (or 'name>=v,<w')"
        floors[match.group(1).lower()] = match.group(2)
    return floors


@pytest.mark.parametrize("package", sorted(NEEDED))
def test_declared_floor_covers_the_apis_we_use(package):
    """pyproject's '>=' floor for a package is no older than the release that brought the
    newest API of it we call (e.g. scipy 1.15 for bootstrap's rng=; scipy 1.14 raises
    TypeError there)."""
    floors = _floors()
    assert package in floors, f"{package} is used but not declared in pyproject.toml"
    needed, why = NEEDED[package]
    assert _version(floors[package]) >= _version(needed), (
        f"pyproject allows {package} {floors[package]}, but {why} needs {needed}"
    )


def test_installed_versions_meet_the_floors():
    """Every declared floor is met by what is installed, so the tests ran on allowed
    versions."""
    for package, floor in _floors().items():
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue  # an optional extra that is not installed here
        assert _version(installed) >= _version(floor), (package, installed, floor)


def test_the_floor_apis_exist_in_the_installed_scipy():
    """The scipy API that sets the floor is really there (its keyword is accepted)."""
    from scipy import stats

    assert "rng" in inspect.signature(stats.bootstrap).parameters
