"""The layout's rules hold: imports only point down the floors, and there are no circles.

Floors, bottom up: errors/events/display/progress, model, io and engine and analysis,
results, run, plot/report/output, cli. The model knows no engine and no file format; engines
never import analysis, results, the runner, plots or the CLI; analysis never runs an engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sim"

#: what each part of the package may import from the package (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "events": {"errors"},
    "display": set(),
    "progress": set(),
    "model": {"errors"},
    "interventions": {"model"},
    "io": {"errors", "events", "model"},
    "engine": {"errors", "events", "model", "display"},
    "analysis": {"errors", "events", "model", "display"},
    "calibrate": {"errors", "events", "model", "io", "analysis", "engine"},
    "results": {"errors", "events", "model", "analysis", "display", "io"},
    "run": {"errors", "events", "model", "io", "engine", "analysis", "results", "progress"},
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def package_imports(path: Path) -> set[str]:
    """The parts of ``sim`` a file imports (at any depth of the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "sim":
                names = [f"sim.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {_part(n) for n in names if n == "sim" or n.startswith("sim.")}
    return found - {""}


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import of a file under ``root`` that its part of the package may not make."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        part = rel.parts[0].removesuffix(".py")
        if part not in ALLOWED:
            continue
        for imported in sorted(package_imports(path) - {part} - ALLOWED[part]):
            out.append(f"{rel} imports sim.{imported}")
    return out


def test_imports_only_point_down():
    """No module imports a part of the package above its own floor."""
    assert violations() == []


def test_a_model_module_importing_an_engine_is_caught(tmp_path):
    """The check has power: a model file that imports the engine is reported."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "bad.py").write_text("from sim.engine import simulate\n")
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "worse.py").write_text("def f():\n    import sim.run\n")
    assert violations(tmp_path) == [
        "analysis/worse.py imports sim.run",
        "model/bad.py imports sim.engine",
    ]


@pytest.mark.parametrize("shadowed", ["simpy", "numpy", "pandas", "scipy", "dask"])
def test_no_module_shadows_a_library(shadowed):
    """No file of the package is named like a library it uses."""
    assert not list(PACKAGE.rglob(f"{shadowed}.py"))
