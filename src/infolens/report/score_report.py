"""The ``infolens score --report`` page: where a model is surprised, token by token.

:func:`render_score_report` streams the token records once. It keeps only the rendered
(capped) text and fixed-size aggregates: histogram counts of surprisal and entropy, sums per
context-length bin, and a bounded heap of the most surprising spans; memory does not grow
with the corpus. The summary numbers and the per-document table come from the score result.
"""

from __future__ import annotations

import functools
import heapq
import math
import os
from collections.abc import Callable, Iterable, Mapping
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
from infolens.tokens import TokenRecord, as_record, records_from_rows, row_texts

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
_LN2 = math.log(2.0)
#: Records :meth:`ScoreReport.add` holds back before taking them as arrays.
_CHUNK = 4096
#: Records made at a time for the rendered text (the last ones past the cap are wasted).
_RENDER_STEP = 256
#: What the coloured text needs of a token: text, byte span, surprisal, entropy, rank,
#: context, top alternatives.
_Rendered = tuple[str, Any, float, float, int, int, Any]
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
    """Fixed-bin histogram with an overflow count (values below ``lo`` go to the first bin)."""

    def __init__(self, lo: float, hi: float, n: int) -> None:
        self.lo, self.hi, self.n = lo, hi, n
        self.width = (hi - lo) / n
        self.counts = np.zeros(n, dtype=np.int64)
        self.over = 0
        self.total = 0

    def add_many(self, x: np.ndarray) -> None:
        """Count the values of ``x`` (NaN is not counted)."""
        x = x[~np.isnan(x)]
        self.total += int(x.size)
        big = x >= self.hi
        self.over += int(np.count_nonzero(big))
        rest = x[~big]
        if rest.size:
            i = np.clip(np.floor((rest - self.lo) / self.width), 0, self.n - 1).astype(np.int64)
            self.counts += np.bincount(i, minlength=self.n)

    def edges(self) -> np.ndarray:
        return np.linspace(self.lo, self.hi, self.n + 1)

    def quantile(self, q: float) -> float:
        """Upper edge of the bin holding the ``q`` quantile (``hi`` if in the overflow)."""
        return bin_quantile(self.edges(), self.counts, q, above=self.over)

    def used(self) -> int:
        """Number of bins up to the last non-empty one."""
        nz = np.flatnonzero(self.counts)
        return int(nz[-1]) + 1 if nz.size else 1


class _Tail:
    """The last tokens of the current document (fewer than a span), carried from one chunk
    of records to the next: the start of a span that ends in the next chunk."""

    def __init__(self) -> None:
        self.s = np.zeros(0)
        self.lo = np.zeros(0, dtype=np.int64)
        self.hi = np.zeros(0, dtype=np.int64)
        self.pos = np.zeros(0, dtype=np.int64)
        self.by = np.zeros(0, dtype=bool)
        self.texts: list[str] = []


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
        self._n_records = 0
        self._sum_s = 0.0
        self._sum_h = 0.0
        self._spans: list[_Span] = []
        self._seq = 0
        self.text = TextRenderer(self.max_rendered_bytes, summed="surprisal")
        self._doc: str | None = None
        self._doc_tokens = 0
        self._tail = _Tail()
        self._pending: list[TokenRecord] = []

    # -- streaming ------------------------------------------------------------------------
    # Records are taken a chunk at a time: the numbers (histograms, sums, context bins,
    # the spans' window sums) are computed over arrays of every token; per-token Python
    # work happens only for the tokens rendered as coloured text (up to the cap) and for
    # the few spans that can enter the heap. Reading these attributes flushes the records
    # :meth:`add` holds back.

    @property
    def n_records(self) -> int:
        """Records taken so far."""
        self._flush()
        return self._n_records

    @property
    def sum_s(self) -> float:
        """Sum of the surprisals (bits) taken so far (NaN left out)."""
        self._flush()
        return self._sum_s

    @property
    def sum_h(self) -> float:
        """Sum of the entropies (bits) taken so far (NaN left out)."""
        self._flush()
        return self._sum_h

    @property
    def spans(self) -> list[_Span]:
        """The heap of the most surprising spans so far."""
        self._flush()
        return self._spans

    @property
    def capped(self) -> bool:
        """Whether the coloured text stopped at the cap."""
        self._flush()
        return self.text.capped

    def add(self, record: TokenRecord | Mapping[str, Any]) -> None:
        """Take one token record (records of a document must come together, in order).

        Records are held back and taken a few thousand at a time (a document's text is
        still looked up when its first record arrives).

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
        if r.doc != self._doc:
            self._flush()
            self._end_doc()
            self._start_doc(r.doc)
        self._pending.append(r)
        if len(self._pending) >= _CHUNK:
            self._flush()

    def add_rows(
        self, batch: Any, data: bytes | None = None, decode: Callable[[int], str] = str
    ) -> None:
        """Take the records of one :class:`infolens.score.RowBatch` without building them:
        the numbers come from its arrays; records (with their top-5 alternatives, see
        :func:`infolens.tokens.records_from_rows`) are made only for the tokens rendered.

        Parameters
        ----------
        batch : RowBatch
            Consecutive predictions of one document (batches of a document together).
        data : bytes, optional
            The document's bytes, for the token texts (as in ``records_from_rows``).
        decode : callable
            Token id to text (:func:`infolens.tokens.token_decoder`).
        """
        n = int(batch.positions.shape[0])
        if n == 0:
            return
        self._flush()
        if batch.name != self._doc:
            self._end_doc()
            self._start_doc(batch.name)
        offs = np.asarray(batch.offsets, dtype=np.int64).reshape(-1, 2)
        lo, hi = offs[:, 0], offs[:, 1]
        ok = (lo >= 0) & (hi >= lo)
        ctx = batch.context
        ctx_a = np.zeros(n, dtype=np.int64) if ctx is None else np.asarray(ctx, dtype=np.int64)

        def texts(i: int, j: int) -> list[str]:
            return row_texts(offs[i:j], batch.token_ids[i:j], data, decode)[0]

        def records(i: int, j: int) -> list[_Rendered]:
            return [(d["token"], d["bytes"], d["surprisal_bits"], d["entropy_bits"], d["rank"],
                     d["context"], d["top"])
                    for d in records_from_rows(batch, data, decode, start=i, stop=j)]  # fmt: skip

        self._take(
            np.asarray(batch.positions, dtype=np.int64),
            np.where(ok, lo, -1), np.where(ok, hi, -1),
            np.asarray(batch.surprisal_nats, dtype=np.float64) / _LN2,
            np.asarray(batch.entropy_nats, dtype=np.float64) / _LN2,
            ctx_a, texts, records,
        )  # fmt: skip

    def _flush(self) -> None:
        recs = self._pending
        if not recs:
            return
        self._pending = []
        spans = [r.bytes for r in recs]
        lo = np.array([-1 if sp is None else sp[0] for sp in spans], dtype=np.int64)
        hi = np.array([-1 if sp is None else sp[1] for sp in spans], dtype=np.int64)

        def texts(i: int, j: int) -> list[str]:
            return [r.token for r in recs[i:j]]

        def records(i: int, j: int) -> list[_Rendered]:
            return [(r.token, r.bytes, r.surprisal_bits, r.entropy_bits, r.rank, r.context,
                     r.top) for r in recs[i:j]]  # fmt: skip

        self._take(
            np.array([r.position for r in recs], dtype=np.int64),
            np.where(lo >= 0, lo, -1), np.where(lo >= 0, hi, -1),
            np.array([r.surprisal_bits for r in recs], dtype=np.float64),
            np.array([r.entropy_bits for r in recs], dtype=np.float64),
            np.array([r.context for r in recs], dtype=np.int64),
            texts, records,
        )  # fmt: skip

    def _take(
        self,
        pos: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        s: np.ndarray,
        h: np.ndarray,
        ctx: np.ndarray,
        texts: Callable[[int, int], list[str]],
        records: Callable[[int, int], list[_Rendered]],
    ) -> None:
        """Take ``n`` consecutive tokens of the current document, as arrays (``lo = -1``:
        byte span unknown); ``texts(i, j)`` and ``records(i, j)`` give the token texts and
        the rendered fields of tokens ``i:j``, and are called only where needed."""
        n = int(pos.shape[0])
        self._n_records += n
        self.surprisal.add_many(s)
        self.entropy.add_many(h)
        s_known = np.where(np.isnan(s), 0.0, s)
        self._sum_s += float(np.sum(s[~np.isnan(s)]))
        self._sum_h += float(np.sum(h[~np.isnan(h)]))
        self.by_context.add_many(ctx, s, h)
        by = lo >= 0 if self.text.data is not None else np.zeros(n, dtype=bool)
        self._track_spans(s_known, np.where(by, lo, pos), np.where(by, hi, pos + 1), pos, by,
                          texts)  # fmt: skip
        i = 0
        while self.text.rendering and i < n:
            j = min(n, i + _RENDER_STEP)
            for tok, span, sb, hb, rank, c, top in records(i, j):
                self.text.add(tok, span, (sb, hb, rank, c), [top] if top else [])
                if not self.text.rendering:
                    break
            i = j

    def _start_doc(self, doc: str) -> None:
        self._doc = doc
        self.text.start_doc(doc, self.texts.get(doc))
        self._doc_tokens = 0
        self._tail = _Tail()

    def _end_doc(self) -> None:
        self._flush()
        if self._doc is None:
            return
        t = self._tail
        if 0 < self._doc_tokens < self.span_tokens:  # shorter than a span: the whole document
            self._push_span(float(np.sum(t.s)), int(t.lo[0]), int(t.hi[-1]), self._doc_tokens,
                            int(t.pos[0]), bool(t.by[0] and t.by[-1]), lambda: "".join(t.texts))  # fmt: skip
        self.text.end_doc()
        self._doc = None

    # -- spans ----------------------------------------------------------------------------
    def _track_spans(
        self,
        s: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        pos: np.ndarray,
        by: np.ndarray,
        texts: Callable[[int, int], list[str]],
    ) -> None:
        """Every window of ``span_tokens`` consecutive tokens of the document that ends in
        this chunk is a candidate span, scored by its exact sum of surprisals (NaN as 0);
        only windows that beat the heap's minimum are looked at one by one."""
        k = self.span_tokens
        t = self._tail
        m = len(t.s)  # tokens carried from earlier chunks (fewer than k)
        n = len(s)
        self._doc_tokens += n
        S = np.concatenate([t.s, s])
        LO = np.concatenate([t.lo, lo])
        HI = np.concatenate([t.hi, hi])
        POS = np.concatenate([t.pos, pos])
        BY = np.concatenate([t.by, by])

        def window_text(a: int, z: int) -> str:  # tokens a..z of S (z inclusive)
            carried = t.texts[a : min(z + 1, m)]
            fresh = texts(max(a - m, 0), z + 1 - m) if z >= m else []
            return "".join(carried + fresh)

        total = len(S)
        if total >= k and self.n_spans > 0:
            scores = np.lib.stride_tricks.sliding_window_view(S, k).sum(axis=1)
            heap = self._spans
            i = 0
            while i < len(scores):
                if len(heap) >= self.n_spans:  # only windows that beat the minimum
                    beat = np.flatnonzero(~(scores[i:] <= heap[0].score))
                    if not beat.size:
                        break
                    i += int(beat[0])
                z = i + k - 1
                self._push_span(
                    float(scores[i]), int(LO[i]), int(HI[z]), k, int(POS[i]),
                    bool(BY[i] and BY[z]), functools.partial(window_text, i, z),
                )  # fmt: skip
                i += 1
        keep = min(k - 1, total)
        new = _Tail()
        if keep:
            new.s, new.lo, new.hi = S[-keep:], LO[-keep:], HI[-keep:]
            new.pos, new.by = POS[-keep:], BY[-keep:]
            start = total - keep  # index in S of the first kept token
            new.texts = t.texts[start:] + (texts(max(start - m, 0), n) if n else [])
        self._tail = new

    def _push_span(
        self,
        score: float,
        lo: int,
        hi: int,
        n_tokens: int,
        first_pos: int,
        by: bool,
        text: Callable[[], str],
    ) -> None:
        heap = self._spans
        if self.n_spans <= 0 or (len(heap) >= self.n_spans and score <= heap[0].score):
            return
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
        if b is not None and by:
            lo, hi = widen(b, lo, hi)
            before, body, after = snippet(b, lo, hi)
        else:
            before, body, after = "", text(), ""
        self._seq += 1
        heapq.heappush(heap, _Span(score, self._seq, doc, lo, hi, n_tokens, before, body, after,
                                   first_pos))  # fmt: skip
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
