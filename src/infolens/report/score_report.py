"""The ``infolens score --report`` page: where a model is surprised, token by token.

:func:`render_score_report` streams the token records once. It keeps only the rendered
(capped) text and fixed-size aggregates: histogram counts of surprisal and entropy, sums per
context-length bin, and a bounded heap of the most surprising spans; memory does not grow
with the corpus. The summary numbers and the per-document table come from the score result.
"""

from __future__ import annotations

import heapq
import math
import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infolens.report import plots
from infolens.report._common import (
    RENDER_CAP,
    ContextBins,
    TextRenderer,
    bin_quantile,
    context_cell,
    doc_table,
    figures_section,
    meta_header,
    snippet,
    widen,
    write_atomic,
)
from infolens.report.html import (
    ColorScale,
    Column,
    Page,
    SummaryRow,
    TipField,
    TipSchema,
    _num,
    format_number,
    section,
    sortable_table,
    summary_table,
)
from infolens.tokens import TokenRecord, as_record

__all__ = ["SCORE_TIP_SCHEMA", "SUMMARY_KEYS", "ScoreReport", "render_score_report"]

#: The summary numbers, in the order shown: (key, label, how to read it).
SUMMARY_KEYS: tuple[tuple[str, str, str], ...] = (
    ("perplexity", "perplexity", "exp(mean NLL per token): the model's effective number of choices"),
    ("bits_per_token", "bits per token", "mean surprisal per token, in bits"),
    ("bits_per_byte", "bits per byte", "total surprisal / UTF-8 bytes: comparable across tokenizers"),
    ("word_perplexity", "word perplexity", "2^(total bits / words): comparable across tokenizers"),
    ("nll_nats", "total NLL (nats)", "sum of -ln p over all scored tokens"),
    ("mean_surprisal_bits", "mean surprisal (bits)", "how surprised the model was, on average"),
    ("mean_entropy_bits", "mean entropy (bits)", "how uncertain the model expected to be"),
    ("calibration_gap_bits", "calibration gap (bits)", "surprisal − entropy: > 0 means over-confident on this text"),
    ("tokens", "tokens", "tokens scored"),
    ("bytes", "bytes", "UTF-8 bytes"),
    ("characters", "characters", "Unicode code points"),
    ("words", "words", "whitespace-separated words"),
)  # fmt: skip

_INT_KEYS = {"tokens", "bytes", "characters", "words"}
_META_KEYS = {"model", "max_length", "stride", "bos", "documents", "name"}

#: The tooltip of a scored token.
SCORE_TIP_SCHEMA = TipSchema(
    fields=(
        TipField("surprisal_bits", "surprisal", "bits", 2),
        TipField("entropy_bits", "entropy", "bits", 2),
        TipField("rank", "rank", "", None),
        TipField("context", "context", "tokens", None),
    ),
    alternatives=("top alternatives",),
)

_DOC_COLUMNS = (
    ("tokens", "tokens", True),
    ("bytes", "bytes", True),
    ("perplexity", "perplexity", False),
    ("bits_per_token", "bits/token", False),
    ("bits_per_byte", "bits/byte", False),
    ("mean_surprisal_bits", "surprisal", False),
    ("mean_entropy_bits", "entropy", False),
    ("calibration_gap_bits", "gap", False),
    ("word_perplexity", "word ppl", False),
)


#: Where ``infolens score`` puts a number's 95% confidence interval, preferred first:
#: batch means (blocks of tokens; honest for correlated tokens), then iid.
_CI_SUFFIXES = ("_ci95_batch_means", "_ci95_iid")


def _find_ci(result: Mapping[str, Any], key: str) -> tuple[Any, Any] | None:
    """The ``[low, high]`` of ``key``'s confidence interval in a score result, if any."""
    for suffix in _CI_SUFFIXES:
        v = result.get(key + suffix)
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return (v[0], v[1])
    return None


def summary_rows(result: Mapping[str, Any]) -> list[SummaryRow]:
    """The summary table's rows for a score result: known keys first, other numbers after.

    Parameters
    ----------
    result : mapping
        The score result (JSON-able, as ``infolens score --json`` prints).

    Returns
    -------
    list of SummaryRow
        With the 95% confidence interval where the result has one (batch means preferred
        to iid).

    Examples
    --------
    >>> rows = summary_rows({"perplexity": 9.0, "perplexity_ci95_iid": [8.0, 10.0], "tokens": 4})
    >>> [(r.key, r.value, r.ci) for r in rows]
    [('perplexity', 9.0, (8.0, 10.0)), ('tokens', 4, None)]
    """
    rows = []
    known = set()
    for key, label, help_ in SUMMARY_KEYS:
        known.add(key)
        if key in result:
            rows.append(SummaryRow(key, label, result[key], _find_ci(result, key), help_))
    for key, v in result.items():
        if key in known or key in _META_KEYS or key.endswith(_CI_SUFFIXES):
            continue
        if _num(v) is not None and not isinstance(v, str):
            rows.append(SummaryRow(key, key.replace("_", " "), v, _find_ci(result, key)))
    return rows


class _Hist:
    """Fixed-bin histogram with under/overflow counts."""

    def __init__(self, lo: float, hi: float, n: int) -> None:
        self.lo, self.hi, self.n = lo, hi, n
        self.width = (hi - lo) / n
        self.counts = [0] * n
        self.over = 0
        self.total = 0

    def add(self, x: float) -> None:
        """Count ``x`` (NaN is not counted)."""
        if x != x:
            return
        self.total += 1
        if x >= self.hi:
            self.over += 1
            return
        i = int((x - self.lo) / self.width)
        self.counts[i if i > 0 else 0] += 1

    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.n + 1)

    def quantile(self, q: float) -> float:
        """Upper edge of the bin holding the ``q`` quantile (``hi`` if in the overflow)."""
        return bin_quantile(self.edges(), self.counts, q, above=self.over)

    def used(self) -> int:
        """Number of bins up to the last non-empty one."""
        last = max((i for i, c in enumerate(self.counts) if c), default=0)
        return last + 1


@dataclass(order=True)
class _Span:
    score: float
    seq: int
    doc: str = field(compare=False)
    lo: int = field(compare=False)  # byte span, or position span without document text
    hi: int = field(compare=False)
    n_tokens: int = field(compare=False)
    before: str = field(compare=False)
    text: str = field(compare=False)
    after: str = field(compare=False)
    first_pos: int = field(compare=False)


class ScoreReport:
    """Accumulates token records into a score report (see :func:`render_score_report`).

    Parameters
    ----------
    result : mapping, optional
        The score result; may instead be given to :meth:`finish` / :meth:`write` (it is
        only needed at the end, so records can be added while scoring).
    documents_text : mapping of str to str or bytes, optional
        Document texts by name, for rendering and span context; where a document is
        missing, token texts are shown instead. A document's text is looked up (``.get``)
        once, when its first record arrives, so a dict filled just before each document's
        records (and emptied after) keeps memory bounded.
    max_rendered_bytes : int
        Cap on the document text rendered as coloured tokens (all documents together).
    span_tokens : int
        Length, in tokens, of the "most surprising spans".
    n_spans : int
        How many spans to list.
    max_table_rows : int
        Cap on the per-document table.

    Examples
    --------
    Streaming while scoring, with the result known only at the end:

    >>> import pathlib, tempfile
    >>> rep = ScoreReport(documents_text={"d": "Hi there"})
    >>> for i, (tok, lo, hi) in enumerate([("Hi", 0, 2), (" there", 2, 8)]):
    ...     rep.add({"doc": "d", "position": i, "token": tok, "bytes": [lo, hi],
    ...              "surprisal_bits": 3.0 + i, "entropy_bits": 2.5, "rank": 2})
    >>> out = rep.write(pathlib.Path(tempfile.mkdtemp()) / "report.html",
    ...                 result={"model": "demo", "perplexity": 11.3, "tokens": 2},
    ...                 figures=False)
    >>> rep.n_records, rep.capped, out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    (2, False, True)
    """

    def __init__(
        self,
        result: Mapping[str, Any] | None = None,
        documents_text: Mapping[str, str | bytes] | None = None,
        *,
        max_rendered_bytes: int = RENDER_CAP,
        span_tokens: int = 8,
        n_spans: int = 20,
        max_table_rows: int = 2000,
    ) -> None:
        self.result: Mapping[str, Any] = result or {}
        self.texts: Mapping[str, str | bytes] = {} if documents_text is None else documents_text
        self.max_rendered_bytes = int(max_rendered_bytes)
        self.span_tokens = max(1, int(span_tokens))
        self.n_spans = int(n_spans)
        self.max_table_rows = int(max_table_rows)
        self.surprisal = _Hist(0.0, 32.0, 128)
        self.entropy = _Hist(0.0, 24.0, 120)
        self.by_context = ContextBins()  # surprisal, entropy (bits)
        self.n_records = 0
        self.sum_s = 0.0
        self.sum_h = 0.0
        self.spans: list[_Span] = []
        self._seq = 0
        self.text = TextRenderer(self.max_rendered_bytes, summed="surprisal")
        self._doc: str | None = None
        self._window: deque[tuple[float, int, int, int, str, bool]] = deque()
        self._wsum = 0.0

    # -- streaming ------------------------------------------------------------------------
    @property
    def capped(self) -> bool:
        """Whether the coloured text stopped at the cap."""
        return self.text.capped

    def add(self, record: TokenRecord | Mapping[str, Any]) -> None:
        """Take one token record (records of a document must come together, in order).

        Parameters
        ----------
        record : TokenRecord or mapping
            The record (see :class:`infolens.tokens.TokenRecord`).

        Examples
        --------
        >>> rep = ScoreReport()
        >>> rep.add({"doc": "d", "position": 0, "token": "Hi", "bytes": [0, 2],
        ...          "surprisal_bits": 3.5, "entropy_bits": 2.0, "rank": 4})
        >>> rep.n_records, rep.sum_s
        (1, 3.5)
        """
        r = as_record(record)
        doc, pos, tok, span = r.doc, r.position, r.token, r.bytes
        s, h, ctx = r.surprisal_bits, r.entropy_bits, r.context
        if doc != self._doc:
            self._end_doc()
            self._start_doc(doc)
        self.n_records += 1
        self.surprisal.add(s)
        self.entropy.add(h)
        if s == s:
            self.sum_s += s
        if h == h:
            self.sum_h += h
        self.by_context.add(ctx, s, h)
        have_bytes = span is not None and self.text.data is not None
        lo, hi = span if span is not None and have_bytes else (pos, pos + 1)
        self._track_span(s, lo, hi, pos, tok, have_bytes)
        if self.text.rendering:
            alts = [r.top] if r.top else []
            self.text.add(tok, span, (s, h, r.rank, ctx), alts)

    def _start_doc(self, doc: str) -> None:
        self._doc = doc
        self.text.start_doc(doc, self.texts.get(doc))
        self._window.clear()
        self._wsum = 0.0

    def _end_doc(self) -> None:
        if self._doc is None:
            return
        if len(self._window) < self.span_tokens and self._window:
            self._push_span()  # a document shorter than a span: the whole document
        self.text.end_doc()
        self._doc = None

    # -- spans ----------------------------------------------------------------------------
    def _track_span(self, s: float, lo: int, hi: int, pos: int, tok: str, by: bool) -> None:
        w = self._window
        w.append((s, lo, hi, pos, tok, by))
        self._wsum += s if s == s else 0.0
        if len(w) > self.span_tokens:
            old = w.popleft()[0]
            self._wsum -= old if old == old else 0.0
            if math.isinf(old) or math.isinf(self._wsum):  # keep the sum exact after infs
                self._wsum = sum(x[0] for x in w if x[0] == x[0])
        if len(w) == self.span_tokens:
            self._push_span()

    def _push_span(self) -> None:
        w = self._window
        score = self._wsum
        heap = self.spans
        if self.n_spans <= 0 or (len(heap) >= self.n_spans and score <= heap[0].score):
            return
        lo, hi = w[0][1], w[-1][2]
        doc = self._doc or ""
        keep: list[_Span] = []
        overlapping = False
        for sp in heap:
            if sp.doc == doc and sp.lo < hi and lo < sp.hi:
                if sp.score >= score:
                    return
                overlapping = True
            else:
                keep.append(sp)
        if overlapping:
            heap[:] = keep
            heapq.heapify(heap)
        b = self.text.data
        if b is not None and w[0][5] and w[-1][5]:
            lo, hi = widen(b, lo, hi)
            before, text, after = snippet(b, lo, hi)
        else:
            before, text, after = "", "".join(x[4] for x in w), ""
        self._seq += 1
        sp = _Span(score, self._seq, doc, lo, hi, len(w), before, text, after, w[0][3])
        heapq.heappush(heap, sp)
        if len(heap) > self.n_spans:
            heapq.heappop(heap)

    # -- output ---------------------------------------------------------------------------
    def finish(
        self,
        *,
        result: Mapping[str, Any] | None = None,
        plots_dir: str | os.PathLike[str] | None = None,
        title: str = "",
        figures: bool = True,
    ) -> str:
        """End the stream; return the page's HTML (and write PNGs to ``plots_dir``).

        Parameters
        ----------
        result : mapping, optional
            The score result, if not given to the constructor.
        plots_dir : str or Path, optional
            Directory for the figures as PNG files.
        title : str
            Page title; defaults to one naming the model.
        figures : bool
            Draw the figures (needs matplotlib); False leaves them out.

        Returns
        -------
        str
            The HTML document.

        Examples
        --------
        >>> page = ScoreReport().finish(result={"model": "demo", "perplexity": 12.0},
        ...                             figures=False)
        >>> page.startswith("<!DOCTYPE html>"), "Where demo is surprised" in page
        (True, True)
        """
        self._end_doc()
        if result is not None:
            self.result = result
        r = self.result
        vmax = max(1.0, float(math.ceil(self.surprisal.quantile(0.99))))
        page = Page(
            title or f"Where {r.get('model', 'the model')} is surprised",
            ColorScale(vmax=vmax),
            SCORE_TIP_SCHEMA,
        )
        docs = r.get("documents") or []
        header = meta_header(
            r, ("model", "max_length", "stride", "bos"), len(docs) or self.text.n_docs
        )
        ci_label = "95% CI"
        if r.get("perplexity_ci95_batch_means") is not None:
            ci_label = "95% CI (batch means)"
        elif r.get("perplexity_ci95_iid") is not None:
            ci_label = "95% CI (iid)"
        page.add(
            section(
                "Summary", summary_table(summary_rows(r), ci_label=ci_label), section_id="summary"
            )
        )
        self._add_text(page)
        page.add(figures_section(self._figures, plots_dir, enabled=figures))
        if self.spans:
            self._add_spans(page)
        if len(docs) > 1:
            page.add(
                doc_table(
                    docs,
                    _DOC_COLUMNS,
                    max_rows=self.max_table_rows,
                    rank_by=("bits_per_token", "bits per token"),
                    anchors=self.text.anchors,
                )
            )
        return page.render(header=header)

    def _add_text(self, page: Page) -> None:
        parts = [
            page.scale.legend("surprisal"),
            '<p class="intro">Each token is coloured by its surprisal, −log₂ p, in bits: '
            "light = expected, dark = surprising. Hover, click or focus the text and use the "
            "arrow keys to see a token's surprisal, the entropy of the prediction, the rank "
            "of the token among the model's choices and its top alternatives.</p>",
            self.text.notice(self.n_records),
            self.text.html(page),
        ]
        page.add(section("Text coloured by surprisal", "".join(parts), section_id="text"))

    def _figures(self) -> list[tuple[str, str, Any]]:
        figs: list[tuple[str, str, Any]] = []
        if self.n_records == 0:
            return figs
        n = max(self.surprisal.used(), 8)
        edges = self.surprisal.edges()[: n + 1]
        over = (
            f" ({self.surprisal.over} tokens above 32 bits not shown)"
            if self.surprisal.over
            else ""
        )
        figs.append((
            "surprisal_histogram",
            f"Surprisal of every scored token, in bits{over}. Mean "
            f"{format_number(self.sum_s / max(self.surprisal.total, 1))} bits.",
            plots.histogram_figure(edges, [("surprisal", self.surprisal.counts[:n])],
                                   xlabel="surprisal (bits)", title="Surprisal"),
        ))  # fmt: skip
        n = max(self.entropy.used(), 8)
        figs.append((
            "entropy_histogram",
            "Entropy of the model's prediction at every scored token, in bits: how "
            "uncertain the model expected to be. Mean "
            f"{format_number(self.sum_h / max(self.entropy.total, 1))} bits.",
            plots.histogram_figure(self.entropy.edges()[: n + 1],
                                   [("entropy", self.entropy.counts[:n])],
                                   xlabel="entropy (bits)", title="Entropy", colors=("#2c728e",)),
        ))  # fmt: skip
        means = self.by_context.means()
        if means is not None:
            x, ys, yh = means
            figs.append((
                "surprisal_by_position",
                "Mean surprisal and mean entropy against the number of tokens of context the "
                "prediction had in its window (log scale above 1): how much context helps. "
                "The gap between the lines is the calibration gap.",
                plots.line_figure(x, [("mean surprisal", ys), ("mean entropy", yh)],
                                  xlabel="tokens of context", ylabel="bits",
                                  title="Surprisal by position in the window", symlogx=True),
            ))  # fmt: skip
        return figs

    def _add_spans(self, page: Page) -> None:
        rows = []
        for i, sp in enumerate(sorted(self.spans, reverse=True), 1):
            text = context_cell(sp.before, sp.text, sp.after)
            rows.append({
                "rank": i, "doc": sp.doc, "text": text, "text_sort": sp.text,
                "bits": sp.score, "mean": sp.score / max(sp.n_tokens, 1),
                "position": sp.first_pos,
            })  # fmt: skip
        cols = [
            Column("rank", "#", integer=True),
            Column("doc", "document", numeric=False),
            Column("position", "token", integer=True),
            Column("text", "span (with context)", numeric=False, html=True),
            Column("bits", "total bits"),
            Column("mean", "bits/token"),
        ]
        page.add(section(
            "Most surprising spans",
            sortable_table("spans", cols, rows),
            section_id="spans",
            intro=f"The {len(rows)} windows of {self.span_tokens} consecutive tokens with the "
            "highest total surprisal, without overlaps, over all documents.",
        ))  # fmt: skip

    def write(
        self,
        path: str | os.PathLike[str],
        *,
        result: Mapping[str, Any] | None = None,
        plots_dir: str | os.PathLike[str] | None = None,
        title: str = "",
        figures: bool = True,
    ) -> Path:
        """End the stream and write the page atomically (see :meth:`finish`).

        Parameters
        ----------
        path : str or Path
            The HTML file; it appears only when complete.
        result : mapping, optional
            The score result, if not given to the constructor.
        plots_dir : str or Path, optional
            Also write the figures as PNG files there.
        title : str
            Page title.
        figures : bool
            Draw the figures (needs matplotlib).

        Returns
        -------
        Path
            ``path``.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> out = ScoreReport().write(pathlib.Path(tempfile.mkdtemp()) / "r.html",
        ...                           result={"model": "demo"}, figures=False)
        >>> out.name, out.read_text(encoding="utf-8").count("<section")
        ('r.html', 2)
        """
        out = Path(path)
        page = self.finish(result=result, plots_dir=plots_dir, title=title, figures=figures)
        write_atomic(out, page)
        return out


def render_score_report(
    result: Mapping[str, Any],
    tokens: Iterable[TokenRecord | Mapping[str, Any]],
    documents_text: Mapping[str, str | bytes] | None,
    path: str | os.PathLike[str],
    *,
    max_rendered_bytes: int = RENDER_CAP,
    plots_dir: str | os.PathLike[str] | None = None,
    title: str = "",
    figures: bool = True,
) -> Path:
    """Write the ``infolens score --report`` page: one self-contained HTML file.

    Parameters
    ----------
    result : mapping
        The score result as ``infolens score --json`` prints it (top-level corpus numbers,
        ``documents``, ``model``, ``max_length``, ``stride``, ``bos``).
    tokens : iterable of TokenRecord or dict
        The per-token records, streamed once; each document's records together and in
        order (e.g. :func:`infolens.tokens.read_tokens` of a ``--tokens`` file).
    documents_text : mapping of str to str or bytes, or None
        Document texts by name (the records' ``doc``). Only looked up for documents being
        rendered or for span context; a lazy mapping works. Without a document's text its
        token texts are shown.
    path : str or Path
        The HTML file to write (atomically: it appears only when complete).
    max_rendered_bytes : int
        Cap on the text rendered as coloured tokens; the page says when it applies. The
        numbers, tables and plots always cover every token.
    plots_dir : str or Path, optional
        Also write the figures as PNG files there.
    title : str
        Page title.
    figures : bool
        Draw the figures (needs matplotlib).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> rec = {"doc": "d", "position": 0, "token": "Hi", "bytes": [0, 2],
    ...        "surprisal_bits": 3.5, "entropy_bits": 2.0, "rank": 4}
    >>> out = render_score_report({"model": "demo", "tokens": 1}, [rec], {"d": "Hi!"},
    ...                           pathlib.Path(tempfile.mkdtemp()) / "r.html", figures=False)
    >>> 'class="t c' in out.read_text(encoding="utf-8")
    True
    """
    rep = ScoreReport(result, documents_text, max_rendered_bytes=max_rendered_bytes)
    for rec in tokens:
        rep.add(rec)
    return rep.write(path, plots_dir=plots_dir, title=title, figures=figures)
