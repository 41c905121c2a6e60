r"""Compare two models token by token over documents (``infolens compare``).

:func:`compare_documents` runs both models in lockstep through
:func:`infolens.pipeline.stream_documents` (the engine shared with ``infolens score``), or
one model against a saved base file (:mod:`infolens.basefile`), and gathers the per-token
statistics of :mod:`infolens.compare_stats` (the definitions, llama.cpp's counterparts and
the intervals are stated there); :func:`save_base_distributions` writes such a file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from infolens.compare_stats import (  # re-exported: the statistics live there
    _MEAN_KEYS,
    BLOCK,
    PERCENTILES,
    CompareAccumulator,
    compare_logits,
    token_stats,
)
from infolens.errors import InputError

if TYPE_CHECKING:  # imported where used: 'import infolens' (compare_logits) stays light
    from infolens.basefile import BaseFile
    from infolens.documents import Document
    from infolens.models.base import LanguageModel, Window
    from infolens.pipeline import Chunk, Piece, RowSource, StreamedDocument
    from infolens.windows import ScoreSettings

__all__ = [
    "BLOCK",
    "PERCENTILES",
    "PROBE_TEXT",
    "CompareAccumulator",
    "CompareResult",
    "CompareRows",
    "check_same_vocabulary",
    "compare_documents",
    "compare_logits",
    "resolve_compare_settings",
    "save_base_distributions",
    "token_stats",
]

PROBE_TEXT = (
    "The quick brown fox jumps over the lazy dog. 0123456789 +-*/=<>()[]{} "
    "naïve café, Größe, 日本語, ✓ — “quotes”\n\tdef f(x):\n\t\treturn x ** 2  # comment\n"
)


def probe_ids(model: LanguageModel) -> list[int]:
    """Token ids of :data:`PROBE_TEXT` under ``model``'s tokenizer."""
    return [int(i) for i in np.asarray(model.tokenize(PROBE_TEXT).ids).tolist()]


def _vocab_error(
    model: LanguageModel, what: str, vocab: int, ids: Sequence[int], bos_id: int | None, bos: str
) -> str | None:
    """Why ``model`` cannot be compared with ``what`` (vocabulary, probe ids, BOS), or None."""
    if model.vocab_size != vocab:
        return (
            f"the models must share a vocabulary: model {model.name} has {model.vocab_size:,} "
            f"tokens, {what} has {vocab:,}"
        )
    mine = probe_ids(model)
    if mine != list(ids):
        j = next((i for i, (a, b) in enumerate(zip(mine, ids)) if a != b), min(len(mine), len(ids)))
        return (
            f"the models must share a tokenizer: the probe text {PROBE_TEXT[:24]!r}... tokenises "
            f"differently (token {j}: {mine[j : j + 4]} with model {model.name}, {list(ids[j : j + 4])} "
            f"with {what}; {len(mine)} vs {len(ids)} tokens)"
        )
    if bos != "none" and model.bos_id != bos_id:
        return (
            f"--bos {bos}: the models use different BOS tokens (model {model.name}: "
            f"{model.bos_id}, {what}: {bos_id}); use --bos none"
        )
    return None


def check_same_vocabulary(model: LanguageModel, base: LanguageModel, bos: str = "none") -> None:
    """Refuse to compare models whose vocabularies or tokenizers differ.

    Checks the vocabulary sizes, the token ids of :data:`PROBE_TEXT` and (unless
    ``bos == "none"``) the BOS token id.

    Parameters
    ----------
    model, base : LanguageModel
        The two models.
    bos : {"first", "every", "none"}
        The BOS policy (the BOS ids must match unless it is ``none``).

    Raises
    ------
    InputError
        One line saying what differs.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> check_same_vocabulary(load_model("ngram:order=2"), load_model("ngram"))  # both bytes
    """
    msg = _vocab_error(
        model, f"base {base.name}", base.vocab_size, probe_ids(base), base.bos_id, bos
    )
    if msg is not None:
        raise InputError(msg)


def resolve_compare_settings(
    model: LanguageModel,
    base: LanguageModel | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
) -> ScoreSettings:
    """Settings valid for both models: the defaults of :func:`infolens.score.resolve_settings`
    with ``L`` the smaller of the two models' defaults and ``bos="first"`` only if both
    models have a BOS token.

    Raises
    ------
    InputError
        A setting one of the models cannot use (naming it).
    """
    from infolens.windows import resolve_settings

    models = [model] if base is None else [model, base]
    if bos is None:
        bos = "first" if all(m.bos_id is not None for m in models) else "none"
    if max_length is None:
        defaults = [resolve_settings(m, None, None, bos).max_length for m in models]
        known = [d for d in defaults if d is not None]
        max_length = min(known) if known else None
    settings = [resolve_settings(m, max_length, stride, bos) for m in models]
    return settings[0]


def _check_file_document(
    where: str, fd: dict[str, Any], doc: StreamedDocument, crc: int | None
) -> None:
    """A document matches the base file's entry: same name (at its start), and the same
    tokens (CRC-32 of its ids, at its end: ``crc`` given)."""
    if fd["name"] != doc.name or (crc is not None and fd.get("crc32", crc) != crc):
        what = "is" if fd["name"] != doc.name else "has other tokens than"
        raise InputError(
            f"{where}: document {doc.index + 1} {doc.name!r} {what} the file's "
            f"{fd['name']!r}; pass the documents given to --save-base, in the same order"
        )


# --------------------------------------------------------------------------- results


#: Per-document means: those of the summary but the top-k overlaps.
_DOC_KEYS = tuple(k for k in _MEAN_KEYS if not k.startswith("top"))


@dataclass
class _DocSums:
    """Per-document sums (a few floats per document, whatever its length)."""

    tokens: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_DOC_KEYS, 0.0))

    def add(self, st: dict[str, np.ndarray]) -> None:
        self.tokens += len(st["kl_base_model"])
        for k in _DOC_KEYS:
            self.sums[k] += float(np.sum(np.asarray(st[k], dtype=np.float64)))

    def compute(self) -> dict[str, Any]:
        n = self.tokens
        if n == 0:
            return {"tokens": 0}
        m = {k: v / n for k, v in self.sums.items()}
        return {
            "tokens": n,
            "kl_base_model": m["kl_base_model"],
            "kl_model_base": m["kl_model_base"],
            "js": m["js"],
            "ppl_model": math.exp(m["nll_model"]),
            "ppl_base": math.exp(m["nll_base"]),
            "ln_ppl_ratio": m["nll_model"] - m["nll_base"],
            "same_top1": m["same_top1"],
            "delta_p": m["delta_p"],
        }


@dataclass
class CompareRows:
    """Consecutive predictions of one document, for per-token consumers (``on_rows``).

    Attributes
    ----------
    document : int
        Index of the document in input order; ``name`` its name.
    positions : numpy.ndarray
        Token indices ``j`` (0-based) of the predicted tokens.
    token_ids : numpy.ndarray
        The predicted (observed) tokens' ids.
    offsets : numpy.ndarray
        ``[k, 2]`` byte spans of those tokens in the UTF-8 document.
    context : numpy.ndarray
        Document tokens before each prediction in its window (``j - window.lo``).
    stats : dict of numpy.ndarray
        :func:`token_stats` of these rows (nats).
    model_logits : array
        The compared model's rows (numpy or torch).
    base_logits : array or None
        The base model's rows; ``None`` against a saved base file.
    base_records : numpy.ndarray or None
        The saved base records of these rows (top-k ids and log-probabilities), or ``None``.
    """

    document: int
    name: str
    positions: np.ndarray
    token_ids: np.ndarray
    offsets: np.ndarray
    context: np.ndarray
    stats: dict[str, np.ndarray]
    model_logits: Any
    base_logits: Any = None
    base_records: np.ndarray | None = None


@dataclass
class CompareResult:
    """The outcome of :func:`compare_documents`: plain data, ready to format.

    Attributes
    ----------
    model, base : str
        The compared model's name and the base model's (or the base file's model name).
    settings : ScoreSettings
        ``max_length``, ``stride``, ``bos`` as used.
    accumulator : CompareAccumulator
        The corpus state (per-token series; mergeable).
    documents : list of dict
        Per document: ``name`` and the :class:`_DocSums` numbers (means over its tokens).
    base_file : str or None
        The saved base file, if the base came from one.
    base_top_k : int or None
        Its ``k``, or the entries per position a top-K server base gave (``openai:``:
        ``K`` and the observed token).
    """

    model: str
    base: str
    settings: ScoreSettings
    accumulator: CompareAccumulator
    documents: list[dict[str, Any]] = field(default_factory=list)
    base_file: str | None = None
    base_top_k: int | None = None

    @property
    def kl_is_lower_bound(self) -> bool:
        """True against a saved base or a top-K server base: KL and JS on {top-k, rest}
        bound the true values below."""
        return self.base_file is not None or self.base_top_k is not None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: the summary of :meth:`CompareAccumulator.compute` at top
        level, then the settings, ``kl_is_lower_bound`` and ``documents``."""
        return {
            **self.accumulator.compute(),
            "documents_count": len(self.documents),
            "model": self.model,
            "base": self.base,
            "max_length": self.settings.max_length,
            "stride": self.settings.stride,
            "bos": self.settings.bos,
            "base_file": self.base_file,
            "base_top_k": self.base_top_k,
            "kl_is_lower_bound": self.kl_is_lower_bound,
            "documents": self.documents,
        }


def _rows_per_chunk(vocab_size: int, max_rows: int | None) -> int:
    from infolens.pipeline import default_max_rows

    # two models' chunks live together: half the scoring chunk each (~32 MiB of float32)
    return max_rows if max_rows is not None else max(1, default_max_rows(vocab_size) // 2)


def compare_documents(
    model: LanguageModel,
    base: LanguageModel | BaseFile,
    documents: Iterable[Document],
    *,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    max_rows: int | None = None,
    window_batch: int | None = None,
    on_rows: Callable[[CompareRows], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> CompareResult:
    r"""Compare ``model`` with ``base`` token by token on ``documents``.

    Both models score the same windows (the scoring definition of ``docs/scoring.md``,
    :func:`infolens.windows.plan_windows`) in lockstep
    (:func:`infolens.pipeline.stream_documents`); :func:`token_stats` turns each pair
    of row chunks into per-token ``KL(base‖model)``, ``KL(model‖base)``, JS, both
    surprisals and entropies, ``Δp = p_model(t) − p_base(t)``, top-1 agreement and top-5/10
    overlap (nats). Peak memory is a chunk of ``max_rows`` positions per model, never
    context × vocabulary.

    Parameters
    ----------
    model : LanguageModel
        The compared model ("Q" in llama.cpp).
    base : LanguageModel or BaseFile
        The reference model, or its saved distributions
        (:func:`save_base_distributions`; then KL and JS are lower bounds, computed on
        {base top-k, rest}, and the documents and settings must be those of the file).
    documents : iterable of Document
        Read lazily.
    max_length, stride, bos
        ``L``, ``S`` and the BOS policy (``None``: :func:`resolve_compare_settings`, or the
        base file's).
    max_rows : int, optional
        Rows per chunk of each model (default: about 32 MiB of float32).
    window_batch : int, optional
        Windows per adapter call (default 4 x the smaller ``batch_size``).
    on_rows : callable, optional
        Called with :class:`CompareRows` for every run of consecutive predictions.
    progress : callable, optional
        Called with the number of predictions just compared.

    Returns
    -------
    CompareResult
        ``to_dict()`` gives the summary (llama.cpp ``--kl-divergence`` counterparts, see
        the module docstring), the settings and per-document numbers.

    Raises
    ------
    InputError
        Vocabularies or tokenizers differ, (base file) the documents or settings differ
        from those the file was written with, or ``model``'s rows are not its full
        distributions (``exact_distribution`` false: an ``openai:`` server's top-K, which
        may only be the ``base``: its answers are then records like a base file's, and KL
        and JS lower bounds).

    Examples
    --------
    >>> from infolens.models import load_model
    >>> from infolens.documents import Document
    >>> docs = [Document("a", "the cat sat on the mat. " * 8)]
    >>> r = compare_documents(load_model("ngram:order=1"), load_model("ngram"), docs)
    >>> d = r.to_dict()
    >>> d["tokens"], d["ppl_model"] > d["ppl_base"], d["kl_base_model"] > 0
    (192, True, True)
    """
    from infolens.basefile import BaseFile, coarse_token_stats
    from infolens.pipeline import default_window_batch, stream_documents
    from infolens.windows import resolve_settings

    is_file = isinstance(base, BaseFile)
    if getattr(model, "exact_distribution", True) is False:
        raise InputError(
            f"--model {model.name}: its rows are a server's top-K log-probs and a tail, not "
            f"full distributions, so a KL against it is neither exact nor a bound; compare "
            f"it as --base (KL then a lower bound) against a full model (hf:, gguf:, ngram)"
        )
    # a server's top-K (openai:) as the base: records like a saved base file's
    is_topk = not is_file and getattr(base, "exact_distribution", True) is False
    rows = _rows_per_chunk(model.vocab_size, max_rows)
    if is_file:
        assert isinstance(base, BaseFile)
        h = base.header
        where = f"--base-file {base.path}"
        given = {"max_length": max_length, "stride": stride, "bos": bos}
        for key, v in given.items():
            if v is not None and v != h.get(key):
                raise InputError(
                    f"--{key.replace('_', '-')} {v}: {where} was written with "
                    f"{key.replace('_', '-')} {h.get(key)}; use the same settings"
                )
        settings = resolve_settings(model, h.get("max_length"), h.get("stride"), h.get("bos"))
        msg = _vocab_error(
            model, f"the base file ({h.get('model')})", int(h["vocab_size"]),
            h.get("probe_ids", []), h.get("bos_id"), settings.bos,
        )  # fmt: skip
        if msg is not None:
            raise InputError(f"{where}: {msg}")
        predicts_first = bool(model.predicts_first) and bool(h.get("predicts_first"))
        base_name = str(h.get("model"))
        file_docs = base.documents
        starts = np.concatenate([[0], np.cumsum([int(d["tokens"]) for d in file_docs])])
        cursor = [0]

        def base_source(windows: list[Window]) -> Iterator[Any]:
            total = sum(w.n_predictions for w in windows)
            lo = cursor[0]
            cursor[0] += total
            for r0 in range(lo, lo + total, rows):
                yield base.read(r0, min(r0 + rows, lo + total))

        sources: list[RowSource] = [base_source]
    else:
        assert not isinstance(base, BaseFile)
        settings = resolve_compare_settings(model, base, max_length, stride, bos)
        check_same_vocabulary(model, base, settings.bos)
        predicts_first = bool(model.predicts_first) and bool(base.predicts_first)
        base_name = base.name
        bm: LanguageModel = base
        if is_topk:
            sources = [lambda ws: bm.records(ws, max_rows=rows)]  # type: ignore[attr-defined]
        else:
            sources = [lambda ws: bm.logits(ws, max_rows=rows)]

    def model_source(windows: list[Window]) -> Iterator[Any]:
        return iter(model.logits(windows, max_rows=rows))

    acc = CompareAccumulator()
    per_doc: dict[int, _DocSums] = {}
    results: list[dict[str, Any]] = []

    def on_doc_start(doc: StreamedDocument) -> None:
        per_doc[doc.index] = _DocSums()
        results.append({"name": doc.name})
        if is_file:
            if doc.index >= len(file_docs):
                raise InputError(
                    f"{where}: more documents than the file's {len(file_docs)}; pass the "
                    f"documents given to --save-base"
                )
            _check_file_document(where, file_docs[doc.index], doc, None)

    last_doc = [-1]

    def on_piece(piece: Piece) -> None:
        if piece.doc.index != last_doc[0]:  # batch-means blocks never span two documents
            acc.end_document()
            last_doc[0] = piece.doc.index
        model_rows, base_rows = piece.rows
        rec = None
        if is_file or is_topk:
            rec = base_rows
            if not np.array_equal(rec["target"], piece.targets):
                raise InputError(
                    f"{where}: the tokens of {piece.doc.name!r} differ from the file's "
                    f"(position {int(piece.positions[0])}); pass the documents given to --save-base"
                )
            st = coarse_token_stats(rec, model_rows)
            base_rows = None
        else:
            st = token_stats(base_rows, model_rows, piece.targets)
        acc.update(st)
        per_doc[piece.doc.index].add(st)
        if on_rows is not None:
            p = piece.positions
            on_rows(
                CompareRows(
                    document=piece.doc.index,
                    name=piece.doc.name,
                    positions=p,
                    token_ids=piece.targets,
                    offsets=piece.offsets,
                    context=piece.context,
                    stats=st,
                    model_logits=model_rows,
                    base_logits=base_rows,
                    base_records=rec,
                )
            )

    def on_chunk(chunk: Chunk) -> None:
        for piece in chunk.pieces():
            on_piece(piece)

    def on_doc_end(doc: StreamedDocument) -> None:
        sums = per_doc.pop(doc.index)
        if is_file:
            _check_file_document(where, file_docs[doc.index], doc, doc.ids_crc)
            want = int(starts[doc.index + 1] - starts[doc.index])
            if sums.tokens != want:
                raise InputError(
                    f"{where}: document {doc.name!r} has {sums.tokens} scored tokens, the file "
                    f"{want}; pass the documents and settings given to --save-base"
                )
        results[doc.index].update(sums.compute())

    if window_batch is None:
        window_batch = default_window_batch([model] if is_file else [model, base])
    stream_documents(
        model, [model_source, *sources], (model.name, base_name), documents, settings,
        predicts_first=predicts_first, window_batch=window_batch,
        on_doc_start=on_doc_start, on_chunk=on_chunk,
        on_doc_end=on_doc_end, progress=progress, ids_crc=is_file,
    )  # fmt: skip
    if is_file and len(results) != len(file_docs):
        raise InputError(
            f"{where}: {len(results)} documents given, the file has {len(file_docs)}; pass the "
            f"documents given to --save-base"
        )
    return CompareResult(
        model=model.name,
        base=base_name,
        settings=settings,
        accumulator=acc,
        documents=results,
        base_file=str(base.path) if is_file else None,  # type: ignore[union-attr]
        base_top_k=base.k if is_file else (base.record_k if is_topk else None),  # type: ignore[union-attr]
    )


def save_base_distributions(
    base: LanguageModel,
    documents: Iterable[Document],
    path: str | os.PathLike[str],
    *,
    k: int = 32,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    max_rows: int | None = None,
    window_batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run only the base model and save its top-``k`` distributions (``--save-base``).

    The file (:mod:`infolens.basefile`, ``8k + 16`` bytes per scored token) records the
    model name, vocabulary size, BOS id, settings and the probe-text token ids in its
    header, and per document its name, scored-token count and a CRC-32 of its token ids,
    so that :func:`compare_documents` can check it is given the same documents, settings
    and tokenizer.

    Parameters
    ----------
    base : LanguageModel
        The reference model.
    documents : iterable of Document
        The documents (the later comparison must get the same ones, in the same order).
    path : str or Path
        The file to write (atomically).
    k : int
        Top tokens kept per position (default 32).
    max_length, stride, bos, max_rows, window_batch, progress
        As for :func:`compare_documents`; the settings are resolved for ``base`` alone.

    Returns
    -------
    dict
        ``path``, ``records`` (tokens), ``bytes`` (file size), ``bytes_per_token``, ``k``,
        the header and the documents.
    """
    from infolens.basefile import BaseFileWriter
    from infolens.pipeline import default_window_batch, stream_documents

    settings = resolve_compare_settings(base, None, max_length, stride, bos)
    header = {
        "model": base.name,
        "vocab_size": int(base.vocab_size),
        "bos_id": base.bos_id,
        "predicts_first": bool(base.predicts_first),
        "max_length": settings.max_length,
        "stride": settings.stride,
        "bos": settings.bos,
        "probe_ids": probe_ids(base),
    }
    rows = _rows_per_chunk(base.vocab_size, max_rows)
    with BaseFileWriter(path, header, k=k) as w:
        counts: dict[int, int] = {}

        def on_doc_start(doc: StreamedDocument) -> None:
            counts[doc.index] = 0

        def on_chunk(chunk: Chunk) -> None:
            for piece in chunk.pieces():
                w.write(piece.rows[0], piece.targets)
                counts[piece.doc.index] += int(piece.targets.shape[0])

        def on_doc_end(doc: StreamedDocument) -> None:
            assert doc.ids_crc is not None
            w.end_document(doc.name, tokens=counts.pop(doc.index), crc32=doc.ids_crc)

        stream_documents(
            base, [lambda ws: base.logits(ws, max_rows=rows)], (base.name,), documents, settings,
            predicts_first=bool(base.predicts_first),
            window_batch=default_window_batch([base]) if window_batch is None else window_batch,
            on_doc_start=on_doc_start, on_chunk=on_chunk,
            on_doc_end=on_doc_end, progress=progress, ids_crc=True,
        )  # fmt: skip
        n, docs = w.n, list(w.documents)
    size = w.size
    return {
        "path": str(path),
        "records": n,
        "bytes": size,
        "bytes_per_token": (8 * k + 16),
        "k": k,
        **{key: header[key] for key in ("model", "vocab_size", "max_length", "stride", "bos")},
        "documents": docs,
    }
