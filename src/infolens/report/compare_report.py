"""The ``infolens compare --report`` page: where two models disagree, token by token.

:class:`CompareReport` takes the :class:`infolens.compare.CompareRows` of
:func:`infolens.compare.compare_documents` (its ``on_rows``) once. It keeps fixed-size
aggregates (a log-binned histogram of KL(base‖model), sums per context-length bin, a
bounded heap of the most divergent tokens) and the rendered text up to a byte cap, so
memory does not grow with the corpus. It uses the scoring report's building blocks
(:mod:`infolens.report.html`, :mod:`infolens.report.plots`).
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from infolens.report import plots
from infolens.report._common import (
    BYTE_LEVEL_RENDER_CAP,
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
    format_number,
    section,
    sortable_table,
    summary_table,
)

__all__ = ["COMPARE_TIP_SCHEMA", "CompareReport", "summary_rows"]

#: Token tooltips: both KL directions, both probabilities of the observed token, and
#: each model's top alternatives.
COMPARE_TIP_SCHEMA = TipSchema(
    fields=(
        TipField("kl_base_model", "KL(base‖model)", "nats", 4),
        TipField("kl_model_base", "KL(model‖base)", "nats", 4),
        TipField("p_base", "p base", "", 4),
        TipField("p_model", "p model", "", 4),
        TipField("context", "context", "tokens", None),
    ),
    alternatives=("base top", "model top"),
)

# (key, label, how to read it, batch-means key): llama.cpp's names where it has one
_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("kl_base_model", "Mean KLD(base‖Q)", "llama.cpp's KLD, nats: information lost using the model for the base", "kl_base_model_batch_means"),
    ("kl_model_base", "Mean KLD(Q‖base)", "the other direction (exllamav2 model_diff), nats", "kl_model_base_batch_means"),
    ("js", "Mean JS(base, Q)", "Jensen-Shannon divergence, nats (≤ ln 2)", "js_batch_means"),
    ("same_top1", "Same top p", "fraction of tokens where both models' most likely token agrees", "same_top1_batch_means"),
    ("top5_overlap", "Top-5 overlap", "mean shared fraction of the two top-5 sets", ""),
    ("top10_overlap", "Top-10 overlap", "mean shared fraction of the two top-10 sets", ""),
    ("ppl_model", "Mean PPL(Q)", "perplexity of the compared model", ""),
    ("ppl_base", "Mean PPL(base)", "perplexity of the base model", ""),
    ("ppl_ratio", "Mean PPL(Q)/PPL(base)", "exp(mean ln ratio): > 1 means the model is worse", ""),
    ("ln_ppl_ratio", "Mean ln(PPL(Q)/PPL(base))", "mean per-token NLL difference, nats", "ln_ppl_ratio_batch_means"),
    ("ppl_diff", "Mean PPL(Q)-PPL(base)", "perplexity difference", ""),
    ("cor_ln_ppl", "Cor(ln(PPL(Q)), ln(PPL(base)))", "correlation of the per-token NLLs", ""),
    ("tokens", "tokens", "tokens compared", ""),
)  # fmt: skip

_DOC_COLUMNS = (
    ("tokens", "tokens", True),
    ("kl_base_model", "KLD(base‖Q)", False),
    ("kl_model_base", "KLD(Q‖base)", False),
    ("js", "JS", False),
    ("ppl_model", "PPL(Q)", False),
    ("ppl_base", "PPL(base)", False),
    ("same_top1", "same top", False),
    ("delta_p", "mean Δp", False),
)

#: Log-spaced histogram edges for KL (nats); KL below the first edge counts as ~0.
_KL_LO, _KL_HI, _KL_BINS = 1e-6, 1e2, 80


def _ci(bm: Any) -> tuple[Any, Any] | None:
    """The ``(low, high)`` of a batch-means block of a compare result, if it has one."""
    if isinstance(bm, Mapping) and bm.get("low") is not None:
        return (bm["low"], bm["high"])
    return None


def summary_rows(result: Mapping[str, Any]) -> list[SummaryRow]:
    """The summary table's rows of a compare result (``infolens compare --json``).

    Parameters
    ----------
    result : mapping
        The compare result; ``<key>_batch_means`` blocks give the confidence intervals.

    Returns
    -------
    list of SummaryRow
        llama.cpp's names where it has one; KL percentiles and Δp after the means.

    Examples
    --------
    >>> rows = summary_rows({"kl_base_model": 0.2, "tokens": 9,
    ...                      "kl_base_model_batch_means": {"low": 0.1, "high": 0.3}})
    >>> [(r.label, r.value, r.ci) for r in rows]
    [('Mean KLD(base‖Q)', 0.2, (0.1, 0.3)), ('tokens', 9, None)]
    """
    lb = bool(result.get("kl_is_lower_bound"))
    rows = []
    for key, label, help_, bm_key in _ROWS:
        if key not in result:
            continue
        ci = _ci(result.get(bm_key)) if bm_key else None
        if lb and key in ("kl_base_model", "kl_model_base", "js"):
            help_ += " (LOWER BOUND: base saved as top-k + rest)"
        rows.append(SummaryRow(key, label, result[key], ci, help_))
    for key, v in (result.get("kl_percentiles") or {}).items():
        label = {"max": "Maximum", "min": "Minimum", "50": "Median"}.get(key, f"{key}%")
        rows.append(
            SummaryRow(f"kl_p{key}", f"{label} KLD", v, None, "percentile of per-token KLD(base‖Q)")
        )
    dp = result.get("delta_p")
    if isinstance(dp, Mapping):
        rows.append(
            SummaryRow(
                "delta_p",
                "Mean Δp",
                dp.get("mean"),
                _ci(dp.get("batch_means")),
                "p_Q(token) − p_base(token), mean",
            )
        )
        rows.append(
            SummaryRow("delta_p_rms", "RMS Δp", dp.get("rms"), None, "root mean square of Δp")
        )
    return rows


class CompareReport:
    """Accumulates :class:`~infolens.compare.CompareRows` into the comparison report.

    Parameters
    ----------
    documents_text : mapping of str to str or bytes, optional
        Document texts by name (looked up when a document's first rows arrive, then
        dropped from a mutable mapping); without one, token texts are shown.
    decode_model, decode_base : callable, optional
        Token id to text, for the tooltips' alternatives (ids are shown without).
    byte_level : bool
        Tokens are bytes (the n-gram model): the default cap on the rendered text is then
        :data:`~infolens.report._common.BYTE_LEVEL_RENDER_CAP` rather than
        :data:`~infolens.report._common.RENDER_CAP` (about as many tokens either way).
    max_rendered_bytes : int, optional
        Cap on the text rendered as coloured tokens; by default chosen by ``byte_level``.
    n_top : int
        How many most divergent tokens to list.
    n_alternatives : int
        Alternatives per model in a tooltip.
    max_table_rows : int
        Cap on the per-document table (the documents with the highest KL are kept).

    Examples
    --------
    One document of one token, rows as :func:`infolens.compare.compare_documents` passes
    them to ``on_rows``:

    >>> import pathlib, tempfile, types
    >>> from infolens.compare import token_stats
    >>> base, model = np.log([[0.7, 0.2, 0.1]]), np.log([[0.5, 0.3, 0.2]])
    >>> rows = types.SimpleNamespace(
    ...     name="d", stats=token_stats(base, model, np.array([0])), context=np.array([0]),
    ...     positions=np.array([0]), offsets=np.array([[0, 2]]), token_ids=np.array([0]),
    ...     model_logits=model, base_logits=base, base_records=None)
    >>> rep = CompareReport({"d": "Hi"}, decode_model=lambda i: "abc"[i])
    >>> rep.add(rows)
    >>> out = rep.write(pathlib.Path(tempfile.mkdtemp()) / "c.html",
    ...                 result={"model": "q", "base": "b", "kl_base_model": 0.085}, figures=False)
    >>> "Where q departs from b" in out.read_text(encoding="utf-8")
    True
    """

    def __init__(
        self,
        documents_text: Mapping[str, str | bytes] | None = None,
        *,
        decode_model: Callable[[int], str] | None = None,
        decode_base: Callable[[int], str] | None = None,
        byte_level: bool = False,
        max_rendered_bytes: int | None = None,
        n_top: int = 30,
        n_alternatives: int = 5,
        max_table_rows: int = 2000,
    ) -> None:
        self.texts = {} if documents_text is None else documents_text
        self.decode_model = decode_model
        self.decode_base = decode_base or decode_model
        self.byte_level = byte_level
        if max_rendered_bytes is None:
            max_rendered_bytes = BYTE_LEVEL_RENDER_CAP if byte_level else RENDER_CAP
        self.max_rendered_bytes = int(max_rendered_bytes)
        self.n_top = int(n_top)
        self.n_alt = int(n_alternatives)
        self.max_table_rows = int(max_table_rows)
        self.edges = np.geomspace(_KL_LO, _KL_HI, _KL_BINS + 1)
        self.counts = np.zeros(_KL_BINS, dtype=np.int64)
        self.n_zero = 0
        self.n_over = 0
        self.n = 0
        self.by_context = ContextBins()  # KL(base‖model), KL(model‖base)
        self.top: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = 0
        self.text = TextRenderer(self.max_rendered_bytes, summed="KL(base‖model)")
        self._doc: str | None = None

    # -- streaming ------------------------------------------------------------------------
    def _decode(self, fn: Callable[[int], str] | None, i: int) -> str:
        return fn(i) if fn is not None else f"#{i}"

    def _alts(self, rows: Any) -> tuple[list[Any], list[Any]]:
        from infolens.tokens import top_alternatives

        k = self.n_alt
        model = top_alternatives(rows.model_logits, k, lambda i: self._decode(self.decode_model, i))
        if rows.base_logits is not None:
            base = top_alternatives(
                rows.base_logits, k, lambda i: self._decode(self.decode_base, i)
            )
        else:
            rec = rows.base_records
            base = [
                [(self._decode(self.decode_base, int(i)), float(math.exp(lp)))
                 for i, lp in zip(ids[:k], lps[:k]) if i >= 0]
                for ids, lps in zip(rec["ids"].tolist(), rec["logp"].tolist())
            ]  # fmt: skip
        return base, model

    def add(self, rows: Any) -> None:
        """Take one :class:`~infolens.compare.CompareRows` (documents in order).

        Parameters
        ----------
        rows : CompareRows
            Consecutive compared tokens of one document: ``stats`` (per-token arrays of
            :func:`infolens.compare.token_stats`), ``positions``, ``offsets``,
            ``token_ids``, ``context``, the model's logits and the base's logits (or its
            saved records).

        Examples
        --------
        >>> import types
        >>> from infolens.compare import token_stats
        >>> base, model = np.log([[0.7, 0.2, 0.1]]), np.log([[0.5, 0.3, 0.2]])
        >>> rows = types.SimpleNamespace(
        ...     name="d", stats=token_stats(base, model, np.array([0])), context=np.array([0]),
        ...     positions=np.array([0]), offsets=np.array([[0, 2]]), token_ids=np.array([0]),
        ...     model_logits=model, base_logits=base, base_records=None)
        >>> rep = CompareReport()
        >>> rep.add(rows)
        >>> rep.n, round(float(rep.top[0][0]), 4)  # tokens seen, the largest KL (nats)
        (1, 0.0851)
        """
        if rows.name != self._doc:
            self._end_doc()
            self._start_doc(rows.name)
        st = rows.stats
        kl = np.asarray(st["kl_base_model"], dtype=np.float64)
        klr = np.asarray(st["kl_model_base"], dtype=np.float64)
        n = kl.shape[0]
        self.n += n
        small = kl < _KL_LO
        over = kl >= _KL_HI
        self.n_zero += int(small.sum())
        self.n_over += int(over.sum())
        mid = kl[~small & ~over]
        self.counts += np.histogram(mid, bins=self.edges)[0]
        ctx = np.asarray(rows.context, dtype=np.int64)
        self.by_context.add_many(ctx, kl, klr)
        p_base = np.exp(-np.asarray(st["nll_base"], dtype=np.float64))
        p_model = np.exp(-np.asarray(st["nll_model"], dtype=np.float64))
        # most divergent tokens: only candidates that beat the heap's minimum
        thresh = self.top[0][0] if len(self.top) >= self.n_top else -math.inf
        cand = np.flatnonzero(kl > thresh)
        if cand.size > self.n_top:
            cand = cand[np.argsort(-kl[cand])[: self.n_top]]
        for j in cand.tolist():
            self._seq += 1
            entry = {
                "doc": rows.name, "position": int(rows.positions[j]),
                "kl": float(kl[j]), "klr": float(klr[j]),
                "p_base": float(p_base[j]), "p_model": float(p_model[j]),
                "context": int(ctx[j]), **self._snippet(rows, j),
            }  # fmt: skip
            item = (float(kl[j]), self._seq, entry)
            if len(self.top) < self.n_top:
                heapq.heappush(self.top, item)
            elif item[0] > self.top[0][0]:
                heapq.heapreplace(self.top, item)
        if not self.text.rendering:
            return
        base_alts, model_alts = self._alts(rows)
        offs = np.asarray(rows.offsets).tolist()
        ids = np.asarray(rows.token_ids).tolist()
        for j in range(n):
            vals = (float(kl[j]), float(klr[j]), float(p_base[j]), float(p_model[j]), float(ctx[j]))
            lo, hi = offs[j]
            span = (lo, hi) if 0 <= lo <= hi else None
            tok = self._decode(self.decode_model, int(ids[j]))
            self.text.add(tok, span, vals, [base_alts[j], model_alts[j]])
            if not self.text.rendering:
                break

    def _snippet(self, rows: Any, j: int) -> dict[str, str]:
        b = self.text.data
        lo, hi = (int(x) for x in np.asarray(rows.offsets)[j])
        if b is None or lo < 0:
            return {
                "before": "",
                "text": self._decode(self.decode_model, int(rows.token_ids[j])),
                "after": "",
            }
        before, text, after = snippet(b, *widen(b, lo, hi))
        return {"before": before, "text": text, "after": after}

    def _start_doc(self, name: str) -> None:
        self._doc = name
        text = self.texts.get(name)
        if isinstance(self.texts, dict):
            self.texts.pop(name, None)
        self.text.start_doc(name, text)

    def _end_doc(self) -> None:
        if self._doc is not None:
            self.text.end_doc()
            self._doc = None

    # -- output ---------------------------------------------------------------------------
    def _vmax(self) -> float:
        """The colour scale's top: the 99th percentile of KL(base‖model), binned."""
        return bin_quantile(self.edges, self.counts, 0.99, below=self.n_zero, above=self.n_over)

    def finish(
        self,
        result: Mapping[str, Any],
        *,
        plots_dir: str | os.PathLike[str] | None = None,
        title: str = "",
        figures: bool = True,
    ) -> str:
        """End the stream and return the page's HTML (figures also as PNGs in ``plots_dir``).

        Parameters
        ----------
        result : mapping
            The compare result (``infolens compare --json``): summary numbers, documents.
        plots_dir : str or Path, optional
            Also write the figures as PNG files there.
        title : str
            Page title; defaults to one naming both models.
        figures : bool
            Draw the figures (needs matplotlib); False leaves them out.

        Returns
        -------
        str
            The HTML document.

        Examples
        --------
        >>> page = CompareReport().finish({"model": "q", "base": "b", "kl_base_model": 0.1},
        ...                               figures=False)
        >>> page.startswith("<!DOCTYPE html>"), 'data-key="kl_base_model"' in page
        (True, True)
        """
        self._end_doc()
        r = result
        vmax = max(self._vmax(), 1e-3)
        page = Page(
            title
            or f"Where {r.get('model', 'the model')} departs from {r.get('base', 'the base')}",
            ColorScale(vmax=vmax, unit="nats"),
            COMPARE_TIP_SCHEMA,
        )
        header = meta_header(
            r,
            ("model", "base", "max_length", "stride", "bos", "base_file"),
            r.get("documents_count", self.text.n_docs),
        )
        lb = ""
        if r.get("kl_is_lower_bound"):
            lb = (
                f"The base was read from a saved top-{r.get('base_top_k')} file: KL and JS are "
                "computed on {top-k tokens, rest} and are lower bounds of the exact values."
            )
        page.add(section("Summary", summary_table(summary_rows(r), ci_label="95% CI (batch means)"),
                         section_id="summary", intro=lb))  # fmt: skip
        self._add_text(page)
        page.add(figures_section(self._figures, plots_dir, enabled=figures))
        self._add_top(page)
        docs = r.get("documents") or []
        if len(docs) > 1:
            page.add(
                doc_table(
                    docs,
                    _DOC_COLUMNS,
                    max_rows=self.max_table_rows,
                    rank_by=("kl_base_model", "mean KL(base‖model)"),
                    anchors=self.text.anchors,
                )
            )
        return page.render(header=header)

    def _add_text(self, page: Page) -> None:
        parts = [
            page.scale.legend("KL(base‖model)"),
            '<p class="intro">Each token is coloured by KL(base‖model) of the prediction, in '
            "nats: light = the models agree, dark = they disagree. Hover, click or focus the "
            "text and use the arrow keys to see both KL directions, both models' probability "
            "of the observed token and each model's top alternatives.</p>",
            self.text.notice(self.n),
            self.text.html(page),
        ]
        page.add(section("Text coloured by KL(base‖model)", "".join(parts), section_id="text"))

    def _figures(self) -> list[tuple[str, str, Any]]:
        figs: list[tuple[str, str, Any]] = []
        if self.n == 0:
            return figs
        used = np.flatnonzero(self.counts)
        if used.size:
            a, z = int(used[0]), int(used[-1]) + 1
            figs.append((
                "kl_histogram",
                f"KL(base‖model) of every compared token, log scale, nats. "
                f"{format_number(self.n_zero)} tokens below {_KL_LO:g} nats (≈ 0) and "
                f"{format_number(self.n_over)} above {_KL_HI:g} are not shown.",
                plots.histogram_figure(self.edges[a : z + 1], [("KL(base‖model)", self.counts[a:z])],
                                       xlabel="KL(base‖model) (nats)", title="KL divergence",
                                       logx=True),
            ))  # fmt: skip
        means = self.by_context.means()
        if means is not None:
            x, kl, klr = means
            figs.append((
                "kl_by_position",
                "Mean KL in both directions against the number of tokens of context the "
                "prediction had in its window (log scale above 1).",
                plots.line_figure(x, [("KL(base‖model)", kl), ("KL(model‖base)", klr)],
                                  xlabel="tokens of context", ylabel="nats",
                                  title="KL by position in the window", symlogx=True),
            ))  # fmt: skip
        return figs

    def _add_top(self, page: Page) -> None:
        rows = []
        for i, (_, _, e) in enumerate(sorted(self.top, key=lambda t: (-t[0], t[1])), 1):
            text = context_cell(e["before"], e["text"], e["after"])
            rows.append({"rank": i, "doc": e["doc"], "position": e["position"], "text": text,
                         "text_sort": e["text"], "kl": e["kl"], "klr": e["klr"],
                         "p_base": e["p_base"], "p_model": e["p_model"]})  # fmt: skip
        cols = [
            Column("rank", "#", integer=True),
            Column("doc", "document", numeric=False),
            Column("position", "token", integer=True),
            Column("text", "token (with context)", numeric=False, html=True),
            Column("kl", "KL(base‖model)"),
            Column("klr", "KL(model‖base)"),
            Column("p_base", "p base"),
            Column("p_model", "p model"),
        ]
        page.add(section("Most divergent tokens", sortable_table("top-kl", cols, rows), section_id="top",
                         intro=f"The {len(rows)} tokens with the highest KL(base‖model), over all documents."))  # fmt: skip

    def write(
        self,
        path: str | os.PathLike[str],
        *,
        result: Mapping[str, Any],
        plots_dir: str | os.PathLike[str] | None = None,
        title: str = "",
        figures: bool = True,
    ) -> Path:
        """End the stream and write the page atomically (see :meth:`finish`).

        Parameters
        ----------
        path : str or Path
            The HTML file; it appears only when complete.
        result : mapping
            The compare result.
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
        >>> out = CompareReport().write(pathlib.Path(tempfile.mkdtemp()) / "c.html",
        ...                             result={"model": "q"}, figures=False)
        >>> out.name
        'c.html'
        """
        out = Path(path)
        write_atomic(out, self.finish(result, plots_dir=plots_dir, title=title, figures=figures))
        return out
