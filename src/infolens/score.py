r"""Scoring documents with a language model: perplexity, bits per byte and friends.

One definition of scoring (``docs/scoring.md`` states it in full; the window placement is
the pure function :func:`infolens.windows.plan_windows`):

* each document is tokenised without special tokens; the BOS policy (``first``, ``every``
  or ``none``) decides where the model's beginning-of-sequence token goes;
* windows of at most ``L`` input positions, starts ``S`` apart, the last one aligned to the
  end; every token is predicted once, in the first window that contains it;
* :func:`infolens.pipeline.stream_documents` (shared with ``infolens compare``) batches the
  windows and streams the adapter's logits in chunks of rows;
  :func:`infolens._kernels.fused_rows` turns each chunk into surprisals and entropies
  (nats) without materialising more;
* :class:`infolens.stream.ScoreStats` accumulates exact, mergeable sums per document and
  for the corpus; corpus numbers are ratios of corpus totals (never means of per-document
  perplexities).

:func:`score_documents` returns a :class:`ScoreResult` of plain data; the CLI only formats
it. Per-token output goes through the optional ``on_rows`` callback (:class:`RowBatch`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infolens._backend import is_torch
from infolens._kernels import fused_rows
from infolens.compressors import CompressorStats
from infolens.documents import Document, read_documents, text_sizes
from infolens.errors import InputError
from infolens.models.base import LanguageModel
from infolens.pipeline import (
    Chunk,
    StreamedDocument,
    default_max_rows,
    default_window_batch,
    stream_documents,
)
from infolens.stream import DEFAULT_BLOCK_TOKENS, ScoreStats
from infolens.windows import DEFAULT_MAX_LENGTH, ScoreSettings, resolve_settings

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "Document",
    "DocumentScore",
    "RowBatch",
    "ScoreResult",
    "ScoreSettings",
    "is_binary",
    "read_documents",
    "resolve_settings",
    "score_documents",
    "text_sizes",
]



# --------------------------------------------------------------------------- results


@dataclass
class DocumentScore:
    """Per-document numbers (the keys of :meth:`ScoreStats.compute`) and its name.

    ``binary``: the document was not valid UTF-8 and was scored as raw bytes (only
    byte-level models accept such input); its ``words`` and ``word_perplexity`` are then
    ``None`` (words of a PNG mean nothing).
    """

    name: str
    metrics: dict[str, Any]
    compressors: dict[str, Any] | None = None
    binary: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, **self.metrics, "binary": self.binary}
        if self.compressors is not None:
            d["compressors"] = self.compressors
        return d


def is_binary(text: str | bytes) -> bool:
    r"""Whether a document's text is binary: ``bytes`` that are not valid UTF-8.

    The rule is only that (a NUL byte or control characters in valid UTF-8 still count as
    text): it is what :func:`infolens.documents.decode_text` already decides, and it is the
    one test for which "words" certainly mean nothing.

    Examples
    --------
    >>> is_binary("caf\u00e9"), is_binary(b"caf\xc3\xa9"), is_binary(b"\x89PNG\r\n\x1a\n\xff")
    (False, False, True)
    """
    if not isinstance(text, bytes):
        return False
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _omit_words(metrics: dict[str, Any]) -> dict[str, Any]:
    return {**metrics, "words": None, "word_perplexity": None}


@dataclass
class ScoreResult:
    """The outcome of :func:`score_documents`: plain data, ready to format.

    Attributes
    ----------
    model : str
        The model's name.
    settings : ScoreSettings
        ``max_length``, ``stride`` and ``bos`` as used.
    stats : ScoreStats
        The corpus state (mergeable with another shard's).
    documents : list of DocumentScore
        Per-document numbers, in input order.
    compressors : CompressorStats or None
        Compressor totals (byte-level models, or when asked).
    entropy_is : str
        ``"exact"``, or what the entropies are when the model's rows are not its full
        distributions (the adapter's ``entropy_kind``, e.g. an upper bound for
        ``openai:`` servers that return only top-K log-probs).

    Examples
    --------
    >>> from infolens.models import load_model
    >>> m = load_model("ngram")
    >>> a = score_documents(m, [Document("a", "abc abc abc")], compressors=False)
    >>> b = score_documents(m, [Document("b", "xyz xyz")], compressors=False)
    >>> both = a.merge(b)
    >>> both.metrics["tokens"], [d.name for d in both.documents]
    (18, ['a', 'b'])
    """

    model: str
    settings: ScoreSettings
    stats: ScoreStats
    documents: list[DocumentScore] = field(default_factory=list)
    compressors: CompressorStats | None = None
    entropy_is: str = "exact"

    @property
    def binary_documents(self) -> int:
        """How many documents were binary (not valid UTF-8, scored as raw bytes)."""
        return sum(1 for d in self.documents if d.binary)

    @property
    def metrics(self) -> dict[str, Any]:
        """Corpus-level numbers (ratios of corpus totals).

        ``words`` and ``word_perplexity`` are ``None`` when any document was binary
        (:attr:`DocumentScore.binary`): a word count of the text documents alone would
        not match the NLL of all of them.
        """
        out = self.stats.compute()
        return _omit_words(out) if self.binary_documents else out

    def merge(self, other: ScoreResult) -> ScoreResult:
        """Combine with another shard's result (same model and settings): exact.

        Raises
        ------
        ValueError
            The model or settings differ, or only one of the two has compressor totals.
        """
        if (other.model, other.settings) != (self.model, self.settings):
            raise ValueError(
                f"merge: expected results of {self.model} with {self.settings}, "
                f"got {other.model} with {other.settings}"
            )
        stats = self.stats.copy().merge(other.stats)
        if (self.compressors is None) != (other.compressors is None):
            raise ValueError(
                "merge: expected both results with compressor totals or neither, got one "
                "with and one without (score both shards with the same compressors setting)"
            )
        comp = None
        if self.compressors is not None and other.compressors is not None:
            comp = self.compressors.copy().merge(other.compressors)
        return ScoreResult(
            self.model, self.settings, stats, self.documents + other.documents, comp,
            self.entropy_is,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: corpus numbers at top level, the document counts
        (``documents_count``, ``empty_documents``, ``binary_documents``), the settings,
        ``model``, ``compressors`` (``None`` unless computed) and ``documents``."""
        return {
            **self.metrics,
            "documents_count": self.stats.documents,
            "empty_documents": self.stats.empty_documents,
            "binary_documents": self.binary_documents,
            "model": self.model,
            "max_length": self.settings.max_length,
            "stride": self.settings.stride,
            "bos": self.settings.bos,
            "compressors": None if self.compressors is None else self.compressors.compute(),
            **({} if self.entropy_is == "exact" else {"entropy_is": self.entropy_is}),
            "documents": [d.to_dict() for d in self.documents],
        }


@dataclass
class RowBatch:
    """Consecutive predictions of one document, for per-token consumers (``on_rows``).

    Attributes
    ----------
    document : int
        Index of the document in input order; ``name`` its name.
    positions : numpy.ndarray
        Token indices ``j`` (0-based) of the predicted tokens ``t[j]``.
    token_ids : numpy.ndarray
        The predicted tokens' ids.
    offsets : numpy.ndarray
        ``[k, 2]`` byte spans of those tokens in the UTF-8 document.
    surprisal_nats, entropy_nats : numpy.ndarray
        float64, nats.
    rank : numpy.ndarray or None
        1 + number of tokens more probable than the observed one (if ``ranks=True``).
    logits : array
        The rows of logits these came from (numpy or torch), e.g. for top-k alternatives.
    context : numpy.ndarray or None
        Number of the window's document tokens before each prediction (``j - window.lo``;
        BOS is not counted): the context the prediction had.
    """

    document: int
    name: str
    positions: np.ndarray
    token_ids: np.ndarray
    offsets: np.ndarray
    surprisal_nats: np.ndarray
    entropy_nats: np.ndarray
    rank: np.ndarray | None
    logits: Any
    context: np.ndarray | None = None


# --------------------------------------------------------------------------- scoring


@dataclass
class _DocState:
    """Per-document accumulators (:attr:`infolens.pipeline.StreamedDocument.state`)."""

    stats: ScoreStats
    compressors: CompressorStats | None
    binary: bool = False


def _document_bytes(doc: StreamedDocument) -> Iterator[bytes]:
    """The document's bytes again, a piece at a time (UTF-8 for text); a lazy document's
    file must not have changed since it was scored (its CRC is compared)."""
    crc = 0
    for piece in doc.document.pieces():
        data = piece if isinstance(piece, bytes) else piece.encode("utf-8")
        if doc.bytes_crc is not None:
            crc = zlib.crc32(data, crc)
        yield data
    if doc.bytes_crc is not None and crc != doc.bytes_crc:
        raise InputError(f"{doc.name}: the file changed while it was being scored")


def _to_numpy(x: Any) -> np.ndarray:
    if is_torch(x):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def score_documents(
    model: LanguageModel,
    documents: Iterable[Document],
    *,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    max_rows: int | None = None,
    window_batch: int | None = None,
    compressors: bool | None = None,
    ranks: bool = False,
    on_rows: Callable[[RowBatch], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    r"""Score documents with ``model`` (see ``docs/scoring.md`` for the definition).

    The windows are planned and streamed by :func:`infolens.pipeline.stream_documents`;
    this function turns each chunk of logits into surprisals and entropies
    (:func:`infolens._kernels.fused_rows`) and accumulates them per document.

    Parameters
    ----------
    model : LanguageModel
        Any adapter (``infolens.models.load_model``).
    documents : iterable of Document
        Read lazily; memory does not grow with their number beyond one small result each.
    max_length, stride, bos
        ``L``, ``S`` and the BOS policy; ``None`` for the defaults of
        :func:`resolve_settings`.
    block_tokens : int
        Batch-means block size ``B`` (predictions per block, within a document).
    max_rows : int, optional
        Rows per logits chunk requested from the adapter (default: about 64 MiB of
        float32, :func:`infolens.pipeline.default_max_rows`). Peak memory is bounded by
        this, not by ``L * vocab``.
    window_batch : int, optional
        Windows handed to the adapter per call (default: 4 x its ``batch_size``, or 16);
        windows of several documents share a call.
    compressors : bool, optional
        Also compress each document with gzip/bz2/xz (default: for byte-level models).
    ranks : bool
        Compute each target's rank (for ``on_rows``; costs one pass over each row).
    on_rows : callable, optional
        Called with a :class:`RowBatch` for every run of consecutive predictions of one
        document, in order.
    progress : callable, optional
        Called with the number of predictions just scored.

    Returns
    -------
    ScoreResult
        Corpus and per-document numbers: ``nll_nats`` (sum of ``-ln p``), ``tokens``,
        ``perplexity = exp(nll_nats / tokens)``, ``bits_per_byte`` and the rest.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> docs = [Document("a", "to be or not to be, " * 20), Document("empty", "")]
    >>> r = score_documents(load_model("ngram"), docs)
    >>> r.metrics["tokens"], r.stats.empty_documents, r.metrics["bits_per_byte"] < 8
    (400, 1, True)
    >>> sorted(r.compressors.compute())  # byte-level model: compressors by default
    ['bz2_9', 'gzip_9', 'xz_9e']
    """
    settings = resolve_settings(model, max_length, stride, bos)
    if max_rows is None:
        max_rows = default_max_rows(model.vocab_size)
    if window_batch is None:
        window_batch = default_window_batch([model])
    if compressors is None:
        compressors = bool(model.byte_level)
    corpus = ScoreStats(block_tokens=block_tokens)
    corpus_comp = CompressorStats() if compressors else None
    results: list[DocumentScore] = []

    def open_document(document: Document) -> _DocState:
        return _DocState(ScoreStats(block_tokens=block_tokens), None)

    def on_chunk(chunk: Chunk) -> None:
        logits = chunk.rows[0]
        tg: Any = chunk.targets
        if is_torch(logits):
            import torch

            tg = torch.as_tensor(chunk.targets, device=logits.device)
        st = fused_rows(logits, targets=tg, rank=ranks)
        surpr = _to_numpy(st.surprisal_p).astype(np.float64, copy=False)
        ent = _to_numpy(st.entropy_p).astype(np.float64, copy=False)
        rk = None if st.rank_p is None else _to_numpy(st.rank_p)
        for doc, lo, hi in chunk.runs:
            doc.state.stats.update(surpr[lo:hi], ent[lo:hi])
            if on_rows is not None:
                p = chunk.positions[lo:hi]
                on_rows(
                    RowBatch(
                        document=doc.index,
                        name=doc.name,
                        positions=p,
                        token_ids=chunk.targets[lo:hi],
                        offsets=chunk.offsets[lo:hi],
                        surprisal_nats=surpr[lo:hi],
                        entropy_nats=ent[lo:hi],
                        rank=None if rk is None else rk[lo:hi],
                        logits=logits[lo:hi],
                        context=chunk.context[lo:hi],
                    )
                )

    def on_doc_end(doc: StreamedDocument) -> None:
        state: _DocState = doc.state
        state.binary = doc.binary
        n_bytes, characters, words = doc.text_sizes
        state.stats.add_text(n_bytes, characters, 0 if doc.binary else words)  # no binary words
        if corpus_comp is not None:
            # compressed after the model is done with the document (its text read again:
            # the model's and the compressors' memory are not needed at once)
            state.compressors = CompressorStats()
            state.compressors.add_pieces(_document_bytes(doc))
        state.stats.end_document()
        corpus.merge(state.stats)
        comp = None
        if state.compressors is not None:
            comp = state.compressors.compute()
            assert corpus_comp is not None
            corpus_comp.merge(state.compressors)
        metrics = state.stats.compute()
        if state.binary:
            metrics = _omit_words(metrics)
        results.append(DocumentScore(doc.name, metrics, comp, state.binary))

    stream_documents(
        model, [lambda ws: model.logits(ws, max_rows=max_rows)], [model.name], documents,
        settings, predicts_first=bool(model.predicts_first),
        window_batch=window_batch, open_document=open_document, on_chunk=on_chunk,
        on_doc_end=on_doc_end, progress=progress,
    )  # fmt: skip
    return ScoreResult(
        model=model.name,
        settings=settings,
        stats=corpus,
        documents=results,
        compressors=corpus_comp,
        entropy_is=str(getattr(model, "entropy_kind", "exact")),
    )
