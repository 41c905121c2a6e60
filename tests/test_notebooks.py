"""The tutorial notebooks run, top to bottom, offline (executed with nbclient, the engine
nbmake uses), and every cell's assertions hold."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (the dev extra has it)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (the dev extra has it)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (the dev extra has it)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert not errors
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_there_is_a_tutorial() -> None:
    assert NOTEBOOKS, "no notebook in notebooks/"
