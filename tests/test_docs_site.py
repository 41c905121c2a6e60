"""The documentation site: ``mkdocs build --strict`` (mkdocs-material, mkdocstrings) builds
offline with no broken link, anchor or reference, every page of ``docs/`` is in the
navigation, and the API reference is generated from the docstrings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("mkdocs", reason="mkdocs is not installed (the dev extra has it)")
pytest.importorskip("material", reason="mkdocs-material is not installed (the dev extra has it)")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (the dev extra has it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                       cwd=ROOT, capture_output=True, text=True, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "WARNING" not in r.stderr, r.stderr[-3000:]
    return out


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"([\w./-]+\.md)", nav))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages - listed == set(), f"pages missing from mkdocs.yml nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"nav names missing pages: {sorted(listed - pages)}"


def test_site_builds_strict_with_search_and_api(site: Path) -> None:
    for page in ("index.html", "measures/index.html", "compression/index.html",
                 "api/infolens.measures/index.html", "api/infolens.codec/index.html"):  # fmt: skip
        assert (site / page).is_file(), page
    api = (site / "api/infolens.measures/index.html").read_text(encoding="utf-8")
    assert "kl_divergence" in api and "Parameters" in api  # numpydoc rendered
    index = json.loads((site / "search/search_index.json").read_text(encoding="utf-8"))
    titles = {d["location"].split("#")[0] for d in index["docs"]}
    assert {"compression/", "ray/", "api/infolens.score/"} <= titles
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis" not in html  # offline: no external fonts
