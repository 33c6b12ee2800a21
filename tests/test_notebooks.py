"""The notebooks run from top to bottom, warnings as errors, on small customer counts."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.validation import SCENARIOS

NOTEBOOKS = SCENARIOS.parent / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["what_if.ipynb", "personas.ipynb", "capacity_and_word_of_mouth.ipynb", "calibration.ipynb"],
)
def test_notebook_runs_and_shows_its_figures(name, monkeypatch):
    """Every cell runs without error or warning, and each plotting cell shows an image."""
    if name == "calibration.ipynb":
        pytest.importorskip(
            "lifetimes",
            reason="calibration.ipynb reads the CDNOW sample from the lifetimes package "
            "(pip install -e '.[cdnow]')",
        )
    monkeypatch.setenv("JOURNEY_SIM_CUSTOMERS", "1500")
    monkeypatch.setenv("JOURNEY_SIM_REPLICATIONS", "3")
    monkeypatch.setenv("PYTHONWARNINGS", "error")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "notebooks are stored without outputs"
    )
    # warnings raised inside the kernel become errors in the cells that cause them
    notebook.cells.insert(
        0, nbformat.v4.new_code_cell("import warnings\nwarnings.simplefilter('error')")
    )
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    images = sum(
        any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
        for cell in notebook.cells
        if cell.cell_type == "code"
    )
    plotting = sum(
        ("plot." in cell.source.splitlines()[-1] or cell.source.endswith("fig"))
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source
    )
    assert images == plotting >= 3
