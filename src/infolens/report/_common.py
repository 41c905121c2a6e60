"""What the score and compare reports share beyond :mod:`infolens.report.html`.

UTF-8 character boundaries and the text around a span of tokens, the streaming capped
renderer of coloured token text, statistics binned by the context a prediction had, a
histogram quantile, the page's meta line, the figures section, the per-document table and
the atomic write.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infolens._atomic import atomic_output
from infolens.report import plots
from infolens.report.html import (
    Column,
    Page,
    TokenSpan,
    _num,
    esc,
    figure,
    format_number,
    section,
    sortable_table,
)

__all__ = [
    "BYTE_LEVEL_RENDER_CAP",
    "INTERVAL_GLOSSES",
    "RENDER_CAP",
    "ContextBins",
    "TextRenderer",
    "bin_quantile",
    "context_cell",
    "doc_table",
    "figure_blocks",
    "figures_section",
    "is_boundary",
    "meta_header",
    "snippet",
    "widen",
    "write_atomic",
]

#: How to read the two perplexity intervals (docs/scoring.md, "Intervals for perplexity"),
#: shared by the reports and the terminal summary.
INTERVAL_GLOSSES = {
    "iid": "treats tokens as independent (llama.cpp's formula): usually too narrow",
    "batch_means": "from blocks of consecutive tokens: allows for correlated tokens",
}

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


class TextRenderer:
    """Streams tokens into coloured text, for all documents together, up to a byte cap.

    With a document's bytes, the text between and under the tokens is the document's own
    (whole characters: tokens that split a character are grouped into one span, their
    values summed); without them, or for a token with no byte span, the token's text is
    shown. Rendering stops, for good, at the first token that would take the rendered
    bytes over ``max_bytes``: the cap is never exceeded.

    Parameters
    ----------
    max_bytes : int
        Cap on the rendered bytes, all documents together.
    summed : str
        What a grouped span's note says was summed (e.g. ``"surprisal"``).

    Examples
    --------
    >>> r = TextRenderer(100)
    >>> r.start_doc("d", "né")  # "é" is two bytes, here two tokens
    >>> for lo, hi in [(0, 1), (1, 2), (2, 3)]:
    ...     r.add("?", (lo, hi), (1.0,), [])
    >>> r.end_doc()
    >>> [(s.text, s.value, s.note[:8]) for s in r.docs[0][1]]
    [('n', 1.0, ''), ('é', 2.0, '2 tokens')]
    """

    def __init__(self, max_bytes: int, *, summed: str = "value") -> None:
        self.max_bytes = int(max_bytes)
        self.summed = summed
        self.rendered_bytes = 0
        self.total_bytes = 0  # of the documents' texts, rendered or not
        self.n_docs = 0
        self.capped = False
        #: Rendered documents: ``(name, segments, truncated)``.
        self.docs: list[tuple[str, list[str | TokenSpan], bool]] = []
        #: Element id of each rendered document's text, by name.
        self.anchors: dict[str, str] = {}
        self.name: str | None = None
        self.data: bytes | None = None  # the current document's bytes
        self.rendering = False
        self._segs: list[str | TokenSpan] = []
        self._truncated = False
        self._pos = 0  # bytes of the current document already emitted
        self._group: list[tuple[tuple[float, ...], Any]] = []
        self._gstart = 0
        self._gend = 0

    def start_doc(self, name: str, text: str | bytes | None) -> None:
        """Begin document ``name`` with its text (``None``: show the token texts)."""
        self.end_doc()
        self.name = name
        self.n_docs += 1
        self.data = text.encode("utf-8") if isinstance(text, str) else text
        self.total_bytes += len(self.data) if self.data is not None else 0
        self._segs = []
        self._pos = 0
        self._group = []
        self._truncated = False
        self.rendering = not self.capped

    def add(
        self, token: str, span: tuple[int, int] | None, fields: tuple[float, ...], alts: Any
    ) -> None:
        """Add the next token of the document.

        Parameters
        ----------
        token : str
            Its text, shown when the document's bytes or its ``span`` are unknown.
        span : (int, int) or None
            Its bytes ``[lo, hi)`` in the document.
        fields : tuple of float
            The tooltip's numbers; the first is the value the colour encodes.
        alts : sequence of sequence of (str, float)
            The tooltip's alternatives.
        """
        if not self.rendering:
            return
        b = self.data
        if b is None or span is None:
            size = len(token.encode("utf-8", errors="replace"))
            if self.rendered_bytes + size > self.max_bytes:
                self._stop()
                return
            self.rendered_bytes += size
            self._segs.append(TokenSpan(token, fields[0], fields, alts))
            return
        start, end = max(int(span[0]), 0), min(int(span[1]), len(b))
        if self._group:
            if start > self._gend:  # a gap after an unfinished character: show what we have
                self._flush()
            else:
                end = max(self._gend, end)
                if self.rendered_bytes + (end - self._pos) > self.max_bytes:
                    self._group = []  # an unfinished character is not shown
                    self._stop()
                    return
                self._group.append((fields, alts))
                self._gend = end
                if is_boundary(b, end):
                    self._flush()
                return
        start = max(start, self._pos)
        if end <= start:  # nothing new to show (overlapping or empty span)
            return
        if self.rendered_bytes + (end - self._pos) > self.max_bytes:
            self._stop()
            return
        if start > self._pos:  # text between tokens stays plain
            self._segs.append(b[self._pos : start].decode("utf-8", errors="replace"))
            self.rendered_bytes += start - self._pos
            self._pos = start
        self._group = [(fields, alts)]
        self._gstart, self._gend = start, end
        if is_boundary(b, end):
            self._flush()

    def _flush(self) -> None:
        g = self._group
        if not g or self.data is None:
            self._group = []
            return
        text = self.data[self._gstart : self._gend].decode("utf-8", errors="replace")
        fields, alts = g[0]
        note = ""
        if len(g) > 1:
            total = sum(f[0] for f, _ in g)
            fields = (total, *fields[1:])
            note = f"{len(g)} tokens (a character split across tokens); {self.summed} summed"
        self._segs.append(TokenSpan(text, fields[0], fields, alts, note))
        self.rendered_bytes += self._gend - self._gstart
        self._pos = self._gend
        self._group = []

    def _stop(self) -> None:
        self._flush()
        self.rendering = False
        self._truncated = True
        self.capped = True

    def end_doc(self) -> None:
        """End the current document (its text after the last token is shown, if it fits)."""
        if self.name is None:
            return
        if self.rendering:
            self._flush()
            b = self.data
            if b is not None and self._pos < len(b):
                rest = len(b) - self._pos
                if self.rendered_bytes + rest <= self.max_bytes:
                    self._segs.append(b[self._pos :].decode("utf-8", errors="replace"))
                    self.rendered_bytes += rest
                else:
                    self._truncated = self.capped = True
        if self._segs or self.rendering:
            self.anchors.setdefault(self.name, f"doc-{len(self.docs)}")
            self.docs.append((self.name, self._segs, self._truncated))
        self.name = None
        self._segs = []
        self.rendering = False

    def notice(self, n_tokens: int) -> str:
        """The ``#cap-notice`` paragraph: whether the text is complete, and how much shows."""
        shown = sum(1 for _, segs, _ in self.docs if segs)
        if self.capped:
            msg = (
                f"The text below is capped at {format_number(self.max_bytes)} bytes "
                f"(max_rendered_bytes): it shows {format_number(self.rendered_bytes)} of "
                f"{format_number(self.total_bytes)} bytes, in {format_number(shown)} of "
                f"{format_number(self.n_docs)} documents. All numbers, tables and plots cover "
                f"all {format_number(n_tokens)} tokens."
            )
        else:
            what = (
                "The document is"
                if self.n_docs == 1
                else f"All {format_number(self.n_docs)} documents are"
            )
            msg = f"{what} shown in full ({format_number(n_tokens)} tokens)."
        return (
            f'<p class="note" id="cap-notice" data-capped="{int(self.capped)}" '
            f'data-rendered-bytes="{self.rendered_bytes}">{esc(msg)}</p>'
        )

    def html(self, page: Page) -> str:
        """Each rendered document's coloured text (its tooltips go to ``page``)."""
        parts = []
        more = '<p class="note">… the rest of this document is not shown (cap).</p>'
        for name, segs, truncated in self.docs:
            if not segs:
                continue
            anchor = esc(self.anchors.get(name, ""))
            body = page.token_text(segs, label=f"document {name}")
            parts.append(
                f'<div class="doc" id="{anchor}"><h3><a href="#{anchor}">{esc(name)}</a></h3>'
                f"{body}{more if truncated else ''}</div>"
            )
        return "".join(parts)


def _context_bin(ctx: int) -> int:
    """One bin per context length below 32, then 8 bins per doubling."""
    if ctx < 32:
        return max(ctx, 0)
    return 32 + int(8 * math.log2(ctx / 32))


class ContextBins:
    """Two per-token statistics summed by the context the prediction had (tokens of its
    window before it), in bins of :func:`_context_bin`; fixed size whatever the corpus.

    Tokens where either value is not finite are left out.

    Examples
    --------
    >>> b = ContextBins()
    >>> b.add_many(np.array([0, 0, 40]), np.array([1.0, 3.0, 5.0]), np.array([2.0, 2.0, np.inf]))
    >>> [m.tolist() for m in b.means()]
    [[0.0], [2.0], [2.0]]
    """

    def __init__(self) -> None:
        self.n = np.zeros(0, dtype=np.int64)
        self.ctx = np.zeros(0)
        self.a = np.zeros(0)
        self.b = np.zeros(0)

    def add(self, ctx: int, a: float, b: float) -> None:
        """Count one token with context ``ctx`` and values ``a``, ``b``."""
        self.add_many(np.array([ctx]), np.array([a], dtype=float), np.array([b], dtype=float))

    def add_many(self, ctx: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """Count tokens with contexts ``ctx`` and values ``a``, ``b`` (arrays, one per token)."""
        c = np.asarray(ctx, dtype=np.int64)
        if c.size == 0:
            return
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        with np.errstate(divide="ignore"):
            far = 32 + np.floor(8 * np.log2(np.maximum(c, 32) / 32.0)).astype(np.int64)
        bins = np.where(c < 32, np.maximum(c, 0), far)
        size = max(len(self.n), int(bins.max()) + 1)
        if size > len(self.n):
            grow = size - len(self.n)
            self.n = np.concatenate([self.n, np.zeros(grow, dtype=np.int64)])
            self.ctx, self.a, self.b = (np.concatenate([v, np.zeros(grow)])
                                        for v in (self.ctx, self.a, self.b))  # fmt: skip
        fin = np.isfinite(a) & np.isfinite(b)
        if not fin.all():
            bins, c, a, b = bins[fin], c[fin], a[fin], b[fin]
        self.n += np.bincount(bins, minlength=size)
        self.ctx += np.bincount(bins, weights=c.astype(np.float64), minlength=size)
        self.a += np.bincount(bins, weights=a, minlength=size)
        self.b += np.bincount(bins, weights=b, minlength=size)

    def means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Mean context, mean ``a`` and mean ``b`` of the non-empty bins (``None`` if none)."""
        idx = np.flatnonzero(self.n)
        if not idx.size:
            return None
        cnt = self.n[idx].astype(float)
        return self.ctx[idx] / cnt, self.a[idx] / cnt, self.b[idx] / cnt


def bin_quantile(
    edges: Sequence[float] | np.ndarray,
    counts: Sequence[int] | np.ndarray,
    q: float,
    *,
    below: int = 0,
    above: int = 0,
) -> float:
    """Upper edge of the histogram bin that holds the ``q`` quantile.

    Parameters
    ----------
    edges : array, shape [n + 1]
        Bin edges.
    counts : array, shape [n]
        Counts per bin.
    q : float
        The quantile, in ``[0, 1]``.
    below, above : int
        Counts below the first edge and at or above the last.

    Returns
    -------
    float
        The bin's upper edge; the last edge if the quantile is above it or nothing was
        counted.

    Examples
    --------
    >>> bin_quantile([0, 1, 2, 3], [5, 4, 1], 0.9)
    2.0
    """
    target = q * (below + int(np.sum(counts)) + above)
    acc = below
    for i, c in enumerate(np.asarray(counts).tolist()):
        acc += c
        if acc >= target and acc > 0:
            return float(edges[i + 1])
    return float(edges[-1])


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


def figures_section(
    make_figures: Callable[[], list[tuple[str, str, Any]]],
    plots_dir: str | os.PathLike[str] | None,
    *,
    enabled: bool = True,
) -> str:
    """The "Distributions" section: a note without matplotlib, nothing without figures.

    Parameters
    ----------
    make_figures : callable
        Returns ``(id, caption, matplotlib figure)`` triples; called only with matplotlib.
    plots_dir : str or Path, optional
        Also write the figures as PNG files there.
    enabled : bool
        False: no figures and no section.

    Returns
    -------
    str
        The section's HTML, or ``""``.
    """
    if not enabled:
        return ""
    if not plots.have_matplotlib():
        return section(
            "Distributions",
            '<p class="note">matplotlib is not installed: '
            "no figures (pip install 'infolens[report]').</p>",
            section_id="figures",
        )
    blocks = figure_blocks(make_figures(), plots_dir)
    if not blocks:
        return ""
    return section(
        "Distributions", f'<div class="figs">{"".join(blocks)}</div>', section_id="figures"
    )


def doc_table(
    docs: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str, bool]],
    *,
    max_rows: int,
    rank_by: tuple[str, str],
    anchors: Mapping[str, str] | None = None,
) -> str:
    """The per-document section: a sortable table, at most ``max_rows`` rows.

    Parameters
    ----------
    docs : sequence of mapping
        The result's ``documents``.
    columns : sequence of (key, label, integer)
        Candidate columns; those no document has are left out.
    max_rows : int
        With more documents, the ``max_rows`` highest by ``rank_by`` are shown, and a note
        says so.
    rank_by : (str, str)
        The key that picks the rows shown, and how the note names it.
    anchors : mapping of str to str, optional
        Element ids of documents' rendered text: their names link there.

    Returns
    -------
    str
        The section's HTML.
    """
    present = [c for c in columns if any(c[0] in d for d in docs)]
    shown: Sequence[Mapping[str, Any]] = docs
    note = ""
    if len(docs) > max_rows:
        key_name, what = rank_by

        def key(d: Mapping[str, Any]) -> float:
            v = _num(d.get(key_name))
            return v if v is not None and v == v else -math.inf

        shown = heapq.nlargest(max_rows, docs, key=key)
        note = (
            f"Showing the {format_number(len(shown))} documents with the highest {what}, "
            f"of {format_number(len(docs))}."
        )
    anchors = anchors or {}
    rows = []
    for d in shown:
        name = str(d.get("name", ""))
        anchor = anchors.get(name)
        link = f'<a href="#{esc(anchor)}">{esc(name)}</a>' if anchor else esc(name)
        row: dict[str, Any] = {"name": link, "name_sort": name}
        for k, _, _ in present:
            row[k] = d.get(k)
        rows.append(row)
    cols = [Column("name", "document", numeric=False, html=True)] + [
        Column(k, label, integer=integer) for k, label, integer in present
    ]
    body = (f'<p class="note">{esc(note)}</p>' if note else "") + sortable_table(
        "documents", cols, rows
    )
    return section(
        "Documents", body, section_id="documents", intro="Click a column header to sort."
    )


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` loss-free (:func:`infolens._atomic.atomic_output`): a file
    appears only when complete; ``-`` is standard output."""
    with atomic_output(path, "w", option="--report", encoding="utf-8") as f:
        f.write(text)
