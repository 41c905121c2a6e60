"""docs/intuition.md shows exactly the numbers scripts/intuition_numbers.py computes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("intuition_numbers", ROOT / "scripts" / "intuition_numbers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_number_on_the_page_is_computed() -> None:
    mod = _script()
    page = (ROOT / "docs" / "intuition.md").read_text(encoding="utf-8")
    marked = {key for _, key, _ in mod.markers(page)}
    values = mod.compute()
    assert marked == set(values), f"computed but not shown: {set(values) - marked}; shown but not computed: {marked - set(values)}"
    assert mod.render(page, values) == page, "docs/intuition.md is stale: run scripts/intuition_numbers.py --write docs/intuition.md"


def test_the_decomposition_holds_within_its_noise() -> None:
    d = _script().decomposition()
    assert abs(float(d["d_resid"])) < 3 * float(d["d_se"])  # CE = H + KL, up to sampling
    assert float(d["d_ce"]) > float(d["d_h"])  # no model beats the data's own entropy


def test_kl_directions() -> None:
    k = _script().kl_fits()
    assert abs(float(k["kl_fwd_mu"])) < 0.2 and float(k["kl_fwd_sigma"]) > 2  # covers both modes
    assert abs(float(k["kl_rev_mu"]) - 2.5) < 0.2 and float(k["kl_rev_sigma"]) < 1  # one mode
