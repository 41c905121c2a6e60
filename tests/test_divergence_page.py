"""docs/divergence.md quotes only numbers that scripts/divergence_cases.py computes now.

The script is run once (about 15 s on one CPU core, most of it building the tiny GPT-2);
every ``<!-- value: KEY -->`` / ``<!-- table: KEY -->`` marker on the page must hold exactly
the freshly computed, formatted value, and every computed value must be on the page. A
page that is stale fails here: refresh it with
``python scripts/divergence_cases.py --write docs/divergence.md``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "divergence_cases.py"
PAGE = ROOT / "docs" / "divergence.md"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("divergence_cases", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("divergence_cases", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def values(script: ModuleType) -> dict[str, str]:
    return script.compute()


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_every_marked_number_is_current(
    script: ModuleType, values: dict[str, str], page: str
) -> None:
    found = script.markers(page)
    assert found, "no markers on the page"
    stale = [
        (key, text, script.shown(kind, values[key]))
        for kind, key, text in found
        if key in values and text != script.shown(kind, values[key])
    ]
    assert not stale, (
        "stale numbers on docs/divergence.md (run python scripts/divergence_cases.py "
        f"--write docs/divergence.md): {stale}"
    )


def test_page_and_script_have_the_same_keys(
    script: ModuleType, values: dict[str, str], page: str
) -> None:
    on_page = {key for _, key, _ in script.markers(page)}
    assert on_page - set(values) == set(), "markers that the script does not compute"
    assert set(values) - on_page == set(), "computed numbers that the page does not quote"


def test_every_marker_is_parsed(script: ModuleType, page: str) -> None:
    # a marker the pattern misses (broken across lines, misspelt closing tag) would be
    # neither checked nor refreshed
    opened = re.findall(r"<!--\s*(value|table)\s*:", page)
    closed = re.findall(r"<!--\s*/(value|table)\s*-->", page)
    assert len(opened) == len(closed) == len(script.markers(page))


def test_rendering_is_idempotent_and_repairs_a_stale_page(
    script: ModuleType, values: dict[str, str], page: str, tmp_path: Path
) -> None:
    assert script.render(page, values) == page
    stale = page.replace(
        f"<!-- value: bias.h_true -->{values['bias.h_true']}<!-- /value -->",
        "<!-- value: bias.h_true -->7.0000<!-- /value -->",
    )
    assert stale != page
    assert script.render(stale, values) == page
    with pytest.raises(KeyError):
        script.render("<!-- value: no.such.key -->1<!-- /value -->", values)


def test_check_and_write_commands(
    script: ModuleType,
    values: dict[str, str],
    page: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(script, "compute", lambda: values)  # the numbers computed above
    copy = tmp_path / "divergence.md"
    copy.write_text(page.replace(values["kl.mean"], "0.1", 1), encoding="utf-8")
    assert script.main(["--check", str(copy)]) == 1
    assert "stale" in capsys.readouterr().out
    assert script.main(["--write", str(copy)]) == 0
    assert copy.read_text(encoding="utf-8") == page
    assert script.main(["--check", str(copy)]) == 0


def test_measured_claims_hold(values: dict[str, str]) -> None:
    # the prose states these relations in words; they must hold for the numbers it quotes
    assert values["kl.batchmean"] == values["kl.d_pq"] != values["kl.swapped"]
    assert values["kl.swapped"] == values["kl.d_qp"]
    assert float(values["kl.factor"]) == 1000.0
    assert int(values["half.float16.zeros"].replace(",", "")) > 0
    assert values["half.bfloat16.zeros"] == "0"
    gaps = [float(values[f"bias.plugin_gap.{n}"]) for n in (1000, 10000, 100000)]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert float(values["quant.coder_overhead"]) > abs(float(values["quant.diff_bits"])) / 8
    for line in values["trunc.table"].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[3] == cells[4]  # D(trunc||full) = -ln(kept mass)
        assert cells[5] == "inf"  # D(full||trunc)
    assert "nan" in values["half.table"] and "nan" in values["zero.table"]


def test_figure_is_drawn(script: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "bias.png"
    script.figure(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs" / "img" / "divergence_plugin_bias.png").is_file()
    assert "img/divergence_plugin_bias.png" in PAGE.read_text(encoding="utf-8")
