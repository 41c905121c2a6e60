"""Numbers on documentation pages that scripts compute: the markers and their rendering.

A page quotes a computed value as ``<!-- value: KEY -->TEXT<!-- /value -->`` inline, or a
computed table between ``<!-- table: KEY -->`` and ``<!-- /table -->`` on their own lines.
A script computes ``{KEY: TEXT}`` and :func:`render` puts each value in place; a test
compares ``render(page, compute())`` with the page, so a stale number fails it. Used by
``scripts/divergence_cases.py`` (docs/divergence.md) and ``scripts/intuition_numbers.py``
(docs/intuition.md).
"""

from __future__ import annotations

import re

__all__ = ["MARKER", "Values", "markers", "render", "shown"]

MARKER = re.compile(r"<!-- (value|table): ([\w.]+) -->(.*?)<!-- /\1 -->", re.S)
Values = dict[str, str]


def markers(page: str) -> list[tuple[str, str, str]]:
    """``(kind, key, text)`` of every marker on ``page``, in order."""
    return [(m.group(1), m.group(2), m.group(3)) for m in MARKER.finditer(page)]


def shown(kind: str, value: str) -> str:
    """The text between a marker's tags for ``value``: tables sit on their own lines."""
    return f"\n{value}\n" if kind == "table" else value


def render(page: str, values: Values) -> str:
    """``page`` with every marker's text replaced by its value (KeyError for an unknown key)."""
    return MARKER.sub(
        lambda m: (
            f"<!-- {m.group(1)}: {m.group(2)} -->"
            f"{shown(m.group(1), values[m.group(2)])}<!-- /{m.group(1)} -->"
        ),
        page,
    )
