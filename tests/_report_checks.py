"""Checks shared by the report tests (and flags shared with benchmarks/bench_report.py)."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from _mini_dom import Node, parse
from infolens.report.html import SummaryRow, format_number

#: Headless chromium flags: no network, no background services (tests and benchmarks).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--mute-audio", "--hide-scrollbars",
]  # fmt: skip

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_self_contained(page: str) -> None:
    """Nothing on the page loads from outside it (no URLs, links, scripts, fonts, frames)."""
    assert not re.search(r"""\b(?:src|href|xlink:href|action)\s*=\s*["']?\s*(?:https?:|//|file:)""",
                         page, re.I)  # fmt: skip
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:|//)", page, re.I)
    assert "@import" not in page and "<link" not in page.lower()
    assert not re.search(r"<script[^>]*\bsrc=", page, re.I)
    assert not re.search(r"<(?:iframe|img|object|embed)\b", page, re.I)
    assert "@font-face" not in page


def summary_cells(dom: Node) -> dict[str, Node]:
    """The summary table's value cells by ``data-key``."""
    out = {}
    for tr in dom.find_all(lambda n: n.tag == "tr" and "data-key" in n.attrs):
        cell = tr.find(lambda n: n.tag == "td" and "data-value" in n.attrs)
        assert cell is not None, tr.attrs["data-key"]
        out[tr.attrs["data-key"]] = cell
    return out


def check_summary(dom: Node, expected: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Each key's cell holds the exact number (``data-value``) and shows it formatted."""
    cells = summary_cells(dom)
    for key in keys:
        cell = cells[key]
        assert float(cell.attrs["data-value"]) == float(expected[key]), key
        assert cell.text() == format_number(expected[key]), key


def check_summary_rows(dom: Node, rows: Iterable[SummaryRow]) -> None:
    """The page's summary rows are ``rows``: value, and CI where there is one."""
    trs = {
        n.attrs["data-key"]: n
        for n in dom.find_all(lambda n: n.tag == "tr" and "data-key" in n.attrs)
    }
    for r in rows:
        tr = trs[r.key]
        cell = tr.find(lambda n: n.tag == "td" and "data-value" in n.attrs)
        assert cell is not None and float(cell.attrs["data-value"]) == float(r.value), r.key
        assert cell.text() == format_number(r.value), r.key
        ci = tr.find(lambda n: n.has_class("ci"))
        if r.ci is None:
            assert ci is None, r.key
        else:
            assert ci is not None, r.key
            assert (float(ci.attrs["data-lo"]), float(ci.attrs["data-hi"])) == tuple(
                map(float, r.ci)
            )


def tooltip_data(page: str) -> dict[str, Any]:
    """The page's token tooltip data (the ``tokdata`` JSON block), checked to be inert."""
    m = re.search(r'<script type="application/json" id="tokdata">(.*?)</script>', page, re.S)
    assert m is not None and "</" not in m.group(1)
    return json.loads(m.group(1))  # type: ignore[no-any-return]


def token_boxes(page: str | Node) -> list[str]:
    """The text of each coloured-token box, in order."""
    dom = parse(page) if isinstance(page, str) else page
    return [b.text() for b in dom.find_all(lambda n: n.has_class("tokens"))]


def check_pngs(directory: Path, names: list[str]) -> None:
    """``directory`` holds exactly the PNG files ``names``."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)
    for n in names:
        assert (directory / n).read_bytes()[:8] == PNG_MAGIC


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])  # type: ignore[return-value]
