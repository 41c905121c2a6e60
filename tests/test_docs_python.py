"""Every fenced ```python block in README.md and docs/*.md runs.

Blocks of one file run in order in one namespace, in a fresh temporary working directory
(a block may write the small files it reads). ``>>>`` blocks are doctests, which pytest's
``--doctest-glob='*.md'`` already runs with their outputs checked; they are left to it here
(``test_doctests_are_collected`` checks that the configuration still says so). A block that
cannot run offline on a CPU must be preceded by ``<!-- no-test: REASON -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
NO_TEST = re.compile(r"^<!--\s*no-test:\s*(\S.*?)\s*-->$")
#: At most this many blocks may opt out; raise it only with a reason in the block's comment.
MAX_NO_TEST = 2


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    source: str
    no_test: str | None  # the reason, if marked

    @property
    def is_doctest(self) -> bool:
        first = next((s.strip() for s in self.source.splitlines() if s.strip()), "")
        return first.startswith(">>>")


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the ``no-test`` marker before each."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: unclosed code fence")
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NO_TEST.match(lines[k].strip()) if k >= 0 else None
        out.append(
            Block(
                path,
                start + 1,
                lang,
                "\n".join(lines[start + 1 : j]) + "\n",
                marker.group(1) if marker else None,
            )
        )
        i = j + 1
    return out


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.lang in ("python", "py") and not b.is_doctest]


RUNNABLE = [p for p in FILES if python_blocks(p)]


@pytest.mark.parametrize("path", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"__docs_{path.stem}__"}
    ran = 0
    for b in python_blocks(path):
        if b.no_test:
            continue
        code = compile(b.source, f"{path.relative_to(ROOT)}:{b.line}", "exec")
        try:
            exec(code, namespace)
        except Exception as exc:  # name the block, keep the traceback
            raise AssertionError(
                f"{path.relative_to(ROOT)}, block at line {b.line}: {exc!r}"
            ) from exc
        ran += 1
    assert ran > 0, f"{path.name}: every python block is marked no-test"


def test_blocks_are_found() -> None:
    # the parser finds the blocks these pages are known to have (a broken parser would
    # otherwise pass the test above by finding nothing)
    names = {p.name for p in RUNNABLE}
    assert {"compare.md", "ngram.md", "scoring.md"} <= names
    readme = blocks(ROOT / "README.md")
    assert any(b.lang == "python" and b.is_doctest for b in readme)
    assert any(b.lang == "bash" and "pip install" in b.source for b in readme)


def test_few_blocks_opt_out() -> None:
    marked = [b for p in FILES for b in python_blocks(p) if b.no_test]
    assert len(marked) <= MAX_NO_TEST, [(b.path.name, b.line, b.no_test) for b in marked]


def test_no_test_marker_and_doctest_detection(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text(
        "Text.\n\n<!-- no-test: needs a GPU -->\n\n```python\nimport cuda_only\n```\n\n"
        "```python\n>>> 1 + 1\n2\n\n```\n\n````python\nx = '```'\n````\n\n```pycon\n>>> 3\n3\n```\n",
        encoding="utf-8",
    )
    bs = blocks(md)
    assert [(b.lang, b.line, b.no_test, b.is_doctest) for b in bs] == [
        ("python", 5, "needs a GPU", False),
        ("python", 9, None, True),
        ("python", 15, None, False),
        ("pycon", 19, None, True),
    ]
    assert [b.source for b in python_blocks(md)] == ["import cuda_only\n", "x = '```'\n"]


def test_doctests_are_collected() -> None:
    # the '>>>' blocks skipped above run as doctests under the project's pytest settings
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    addopts = re.search(r"^addopts\s*=\s*(.*)$", text, re.M)
    testpaths = re.search(r"^testpaths\s*=\s*(.*)$", text, re.M)
    assert addopts and "--doctest-glob='*.md'" in addopts.group(1)
    assert testpaths and '"docs"' in testpaths.group(1) and '"README.md"' in testpaths.group(1)
