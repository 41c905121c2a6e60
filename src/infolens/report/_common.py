"""What the score and compare reports share beyond :mod:`infolens.report.html`.

UTF-8 character boundaries and the text around a span of tokens, statistics binned by the
context a prediction had, the page's meta line, the figures section and the atomic write.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from infolens.report import plots
from infolens.report.html import esc, figure, format_number

__all__ = [
    "BYTE_LEVEL_RENDER_CAP",
    "RENDER_CAP",
    "ContextBins",
    "context_cell",
    "figure_blocks",
    "is_boundary",
    "meta_header",
    "snippet",
    "widen",
    "write_atomic",
]

#: Default cap on the bytes of text rendered as coloured tokens (numbers cover everything).
RENDER_CAP = 250_000
#: The same for byte-level models (one token per byte): about as many tokens, a light page.
BYTE_LEVEL_RENDER_CAP = 50_000


def is_boundary(b: bytes, i: int) -> bool:
    """Whether byte ``i`` of ``b`` starts a UTF-8 character (or is the end)."""
    return i >= len(b) or (b[i] & 0xC0) != 0x80


def widen(b: bytes, lo: int, hi: int) -> tuple[int, int]:
    """The byte span ``lo:hi`` of ``b`` widened to whole UTF-8 characters."""
    while lo > 0 and not is_boundary(b, lo):
        lo -= 1
    while hi < len(b) and not is_boundary(b, hi):
        hi += 1
    return lo, hi


def snippet(b: bytes, lo: int, hi: int, around: int = 40) -> tuple[str, str, str]:
    """``(before, text, after)``: the whole characters ``lo:hi`` (see :func:`widen`) and up
    to ``around`` bytes either side (partial characters at the far ends dropped)."""
    return (
        b[max(0, lo - around) : lo].decode("utf-8", errors="ignore"),
        b[lo:hi].decode("utf-8", errors="replace"),
        b[hi : hi + around].decode("utf-8", errors="ignore"),
    )


def context_cell(before: str, text: str, after: str) -> str:
    """A table cell's HTML: ``text`` highlighted between its (dimmed) context."""
    return (
        f'<span class="ctx">{esc(before)}</span><mark class="span">{esc(text)}'
        f'</mark><span class="ctx">{esc(after)}</span>'
    )


def _context_bin(ctx: int) -> int:
    """One bin per context length below 32, then 8 bins per doubling."""
    if ctx < 32:
        return max(ctx, 0)
    return 32 + int(8 * math.log2(ctx / 32))


class ContextBins:
    """Two per-token statistics summed by the context the prediction had (tokens of its
    window before it), in bins of :func:`_context_bin`; fixed size whatever the corpus.

    Tokens where either value is not finite are left out.
    """

    def __init__(self) -> None:
        self.n: list[int] = []
        self.ctx: list[float] = []
        self.a: list[float] = []
        self.b: list[float] = []

    def add(self, ctx: int, a: float, b: float) -> None:
        """Count one token with context ``ctx`` and values ``a``, ``b``."""
        i = _context_bin(ctx)
        while len(self.n) <= i:
            self.n.append(0)
            self.ctx.append(0.0)
            self.a.append(0.0)
            self.b.append(0.0)
        if math.isfinite(a) and math.isfinite(b):
            self.n[i] += 1
            self.ctx[i] += ctx
            self.a[i] += a
            self.b[i] += b

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Mean context, mean ``a`` and mean ``b`` of the non-empty bins (``None`` if none)."""
        idx = [i for i, c in enumerate(self.n) if c]
        if not idx:
            return None
        cnt = np.array([self.n[i] for i in idx], dtype=float)
        x = np.array([self.ctx[i] for i in idx]) / cnt
        return (
            x,
            np.array([self.a[i] for i in idx]) / cnt,
            np.array([self.b[i] for i in idx]) / cnt,
        )


def meta_header(result: Mapping[str, Any], keys: Iterable[str], documents: int) -> str:
    """The line under the title: ``keys`` of ``result`` that are set, then the documents."""
    meta = [
        f"<b>{esc(k.replace('_', ' '))}</b> {esc(result[k])}"
        for k in keys
        if result.get(k) is not None
    ]
    meta.append(f"<b>documents</b> {format_number(documents)}")
    return f'<p class="meta">{" · ".join(meta)}</p>'


def figure_blocks(
    figs: Iterable[tuple[str, str, Any]], plots_dir: str | os.PathLike[str] | None
) -> list[str]:
    """Inline-SVG figures of ``(id, caption, matplotlib figure)``; also PNGs in ``plots_dir``."""
    blocks = []
    for fig_id, caption, fig in figs:
        if plots_dir is not None:
            plots.to_png(fig, Path(plots_dir) / f"{fig_id}.png")
        blocks.append(figure(fig_id, plots.to_svg(fig, salt=fig_id), caption))
    return blocks


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: it appears only when complete."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
