"""The terminal output the README shows is what ``infolens score`` prints now."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from infolens.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_shows_the_real_score_output(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- score-output -->\n```text\n\$ infolens score (\S+)\n(.*?)\n```", readme, re.S)
    assert m, "README: no score-output block"
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, ["score", m.group(1)])
    assert r.exit_code == 0, r.output
    assert r.stdout.rstrip("\n") == m.group(2), "README's score output is stale: run the command again"
