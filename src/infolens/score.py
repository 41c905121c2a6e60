r"""Scoring documents with a language model: perplexity, bits per byte and friends.

One definition of scoring (``docs/scoring.md`` states it in full; the window placement is
the pure function :func:`infolens.windows.plan_windows`):

* each document is tokenised without special tokens; the BOS policy (``first``, ``every``
  or ``none``) decides where the model's beginning-of-sequence token goes;
* windows of at most ``L`` input positions, starts ``S`` apart, the last one aligned to the
  end; every token is predicted once, in the first window that contains it;
* the adapter streams logits in chunks of rows; :func:`infolens._kernels.fused_rows` turns
  each chunk into surprisals and entropies (nats) without materialising more;
* :class:`infolens.stream.ScoreStats` accumulates exact, mergeable sums per document and
  for the corpus; corpus numbers are ratios of corpus totals (never means of per-document
  perplexities).

:func:`score_documents` returns a :class:`ScoreResult` of plain data; the CLI only formats
it. Per-token output goes through the optional ``on_rows`` callback (:class:`RowBatch`).
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from infolens._backend import is_torch
from infolens._kernels import fused_rows
from infolens.compressors import CompressorStats
from infolens.errors import InputError
from infolens.models.base import LanguageModel, Tokenized, Window
from infolens.stream import DEFAULT_BLOCK_TOKENS, ScoreStats
from infolens.windows import BOS_POLICIES, PlannedWindow, plan_windows

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "Document",
    "DocumentScore",
    "RowBatch",
    "ScoreResult",
    "ScoreSettings",
    "read_documents",
    "resolve_settings",
    "score_documents",
    "text_sizes",
]

#: Default window length: the model's context, capped here.
DEFAULT_MAX_LENGTH = 2048
#: Target size of one logits chunk (bytes of float32) when the caller gives no ``max_rows``.
CHUNK_TARGET_BYTES = 64 * 2**20


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Document:
    """A document to score: a name (file, ``file:line``, ``<stdin>``) and its text.

    ``text`` is ``bytes`` only for input that is not valid UTF-8, which only byte-level
    models accept.
    """

    name: str
    text: str | bytes


def text_sizes(text: str | bytes) -> tuple[int, int, int]:
    """``(bytes, characters, words)`` of a document.

    ``bytes`` is the UTF-8 length (or the raw length of ``bytes`` input), ``characters`` the
    number of Unicode code points, ``words`` ``len(text.split())`` (whitespace-separated).
    Raw bytes that are not valid UTF-8 are decoded with replacement characters for the
    character and word counts.

    Examples
    --------
    >>> text_sizes("naïve café\\n")
    (13, 11, 2)
    """
    if isinstance(text, bytes):
        data = text
        text = text.decode("utf-8", errors="replace")
    else:
        data = _utf8(text, "document")
    return len(data), len(text), len(text.split())


def _utf8(text: str, name: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{name}: expected valid Unicode text, got a lone surrogate at character {exc.start}"
        ) from None


def _decode(data: bytes, name: str, allow_bytes: bool, base_offset: int = 0) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if allow_bytes:
            return data
        raise InputError(
            f"{name}: invalid UTF-8 at byte offset {base_offset + exc.start} "
            f"(only byte-level models such as 'ngram' accept arbitrary bytes)"
        ) from None


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _expand(paths: Sequence[str], glob: str | None) -> Iterator[str]:
    for p in paths:
        if p != "-" and os.path.isdir(p):
            if glob is None:
                raise InputError(
                    f"{p}: is a directory; pass --glob PATTERN (e.g. '*.txt') to read files in it"
                )
            matches = sorted(str(q) for q in Path(p).glob(glob) if q.is_file())
            if not matches:
                raise InputError(f"{p}: no files match --glob {glob!r}")
            yield from matches
        elif p != "-" and not os.path.exists(p):
            raise InputError(f"{p}: no such file or directory")
        else:
            yield p  # explicit files are read whatever --glob says


def read_documents(
    paths: Sequence[str],
    *,
    jsonl_field: str | None = None,
    glob: str | None = None,
    allow_bytes: bool = False,
    stdin: IO[bytes] | None = None,
) -> Iterator[Document]:
    """Read documents lazily from files, directories and stdin.

    Parameters
    ----------
    paths : sequence of str
        Files (each one document), ``-`` for stdin, or directories (with ``glob``).
    jsonl_field : str, optional
        Read every input as JSON Lines, one document per non-blank line, the text being
        the string field ``jsonl_field`` of each object; names are ``FILE:LINE``.
    glob : str, optional
        Pattern for files inside directories (``pathlib`` glob, e.g. ``'**/*.txt'``).
    allow_bytes : bool
        Accept text that is not valid UTF-8 (as ``bytes``); for byte-level models.
    stdin : binary file, optional
        What ``-`` reads (default ``sys.stdin.buffer``).

    Raises
    ------
    InputError
        One line naming the file (and line, or byte offset for invalid UTF-8).
    """
    for path in _expand(paths, glob):
        name = "<stdin>" if path == "-" else path
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read()
        else:
            data = _read_bytes(path)
        if jsonl_field is None:
            yield Document(name, _decode(data, name, allow_bytes))
            continue
        offset = 0
        for lineno, line in enumerate(data.splitlines(keepends=True), start=1):
            start, offset = offset, offset + len(line)
            where = f"{name}:{lineno}"
            if not line.strip():
                continue
            decoded = _decode(line, where, False, base_offset=start)
            try:
                obj = json.loads(decoded)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(obj, dict) or jsonl_field not in obj:
                raise InputError(f"{where}: expected a JSON object with field {jsonl_field!r}")
            text = obj[jsonl_field]
            if not isinstance(text, str):
                raise InputError(
                    f"{where}: field {jsonl_field!r}: expected a string, got {type(text).__name__}"
                )
            _utf8(text, where)
            yield Document(where, text)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ScoreSettings:
    """Resolved scoring settings: ``L`` (``None``: one window per document), ``S``, BOS."""

    max_length: int | None
    stride: int | None
    bos: str


def resolve_settings(
    model: LanguageModel,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
) -> ScoreSettings:
    """Apply the defaults and check the settings against the model.

    Defaults: ``bos = "first"`` if the model has a BOS token, else ``"none"``;
    ``L = min(model.max_context, 2048)`` (``None``, one window per document, for models of
    unbounded context); ``S = max(1, L // 2)``.

    Raises
    ------
    ValueError
        ``L`` beyond the model's context (naming both), ``S`` outside ``[1, L]``, or a BOS
        policy that needs a BOS token the model lacks.
    """
    if bos is None:
        bos = "first" if model.bos_id is not None else "none"
    if bos not in BOS_POLICIES:
        raise InputError(f"--bos: expected one of first, every, none, got {bos!r}")
    if bos in ("first", "every") and model.bos_id is None:
        raise InputError(f"--bos {bos}: model {model.name} has no BOS token; use --bos none")
    ctx = model.max_context
    if max_length is None:
        max_length = None if ctx is None else min(ctx, DEFAULT_MAX_LENGTH)
    elif ctx is not None and max_length > ctx:
        raise InputError(
            f"--max-length: {max_length} exceeds the context of model {model.name} ({ctx} positions)"
        )
    if max_length is not None:
        min_len = 2 if bos == "every" else 1
        if max_length < min_len:
            raise InputError(
                f"--max-length: expected >= {min_len} for --bos {bos}, got {max_length}"
            )
        if stride is None:
            stride = max(1, max_length // 2)
        if not 1 <= stride <= max_length:
            raise InputError(f"--stride: expected 1 <= S <= L = {max_length}, got {stride}")
    elif stride is not None:
        raise InputError(
            f"--stride: model {model.name} has unbounded context (one window per document); "
            f"pass --max-length too"
        )
    return ScoreSettings(max_length=max_length, stride=stride, bos=bos)


# --------------------------------------------------------------------------- results


@dataclass
class DocumentScore:
    """Per-document numbers (the keys of :meth:`ScoreStats.compute`) and its name."""

    name: str
    metrics: dict[str, Any]
    compressors: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, **self.metrics}
        if self.compressors is not None:
            d["compressors"] = self.compressors
        return d


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
    """

    model: str
    settings: ScoreSettings
    stats: ScoreStats
    documents: list[DocumentScore] = field(default_factory=list)
    compressors: CompressorStats | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """Corpus-level numbers (ratios of corpus totals)."""
        return self.stats.compute()

    def merge(self, other: ScoreResult) -> ScoreResult:
        """Combine with another shard's result (same model and settings): exact."""
        if (other.model, other.settings) != (self.model, self.settings):
            raise ValueError(
                f"merge: expected results of {self.model} with {self.settings}, "
                f"got {other.model} with {other.settings}"
            )
        stats = self.stats.copy().merge(other.stats)
        comp = None
        if self.compressors is not None and other.compressors is not None:
            comp = CompressorStats(
                self.compressors.input_bytes, dict(self.compressors.output_bytes)
            )
            comp.merge(other.compressors)
        return ScoreResult(self.model, self.settings, stats, self.documents + other.documents, comp)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: corpus numbers at top level, then ``documents``, the
        settings, ``model`` and ``compressors`` (``None`` unless computed)."""
        return {
            **self.metrics,
            "documents_count": self.stats.documents,
            "empty_documents": self.stats.empty_documents,
            "model": self.model,
            "max_length": self.settings.max_length,
            "stride": self.settings.stride,
            "bos": self.settings.bos,
            "compressors": None if self.compressors is None else self.compressors.compute(),
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
class _Doc:
    index: int
    name: str
    tokens: Tokenized
    stats: ScoreStats
    pending_windows: int
    compressors: CompressorStats | None


def _to_numpy(x: Any) -> np.ndarray:
    if is_torch(x):
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


def _kernel_input(chunk: Any) -> Any:
    """CPU tensors go to the kernel as numpy (its compiled path, much faster on CPU than
    the chunked torch path); accelerator tensors stay where they are."""
    if is_torch(chunk) and chunk.device.type == "cpu":
        import torch

        if chunk.dtype not in (torch.float32, torch.float64):
            chunk = chunk.float()
        return chunk.detach().numpy()
    return chunk


def default_max_rows(vocab_size: int) -> int:
    """Rows per logits chunk: about 64 MiB of float32, between 1 and 1024 rows."""
    return max(1, min(1024, CHUNK_TARGET_BYTES // (4 * max(1, vocab_size))))


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
        float32, :func:`default_max_rows`). Peak memory is bounded by this, not by
        ``L * vocab``.
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
    """
    settings = resolve_settings(model, max_length, stride, bos)
    if max_rows is None:
        max_rows = default_max_rows(model.vocab_size)
    if window_batch is None:
        window_batch = 4 * int(getattr(model, "batch_size", 4) or 4)
    if compressors is None:
        compressors = bool(model.byte_level)
    bos_id = model.bos_id
    corpus = ScoreStats(block_tokens=block_tokens)
    corpus_comp = CompressorStats() if compressors else None
    results: list[DocumentScore | None] = []
    pending: list[tuple[_Doc, PlannedWindow, Window]] = []

    def finish(doc: _Doc) -> None:
        doc.stats.end_document()
        corpus.merge(doc.stats)
        comp = None
        if doc.compressors is not None:
            comp = doc.compressors.compute()
            assert corpus_comp is not None
            corpus_comp.merge(doc.compressors)
        results[doc.index] = DocumentScore(doc.name, doc.stats.compute(), comp)

    def flush() -> None:
        if not pending:
            return
        windows = [w for _, _, w in pending]
        targets = np.concatenate([w.targets for w in windows]).astype(np.int64, copy=False)
        owners = np.concatenate(
            [np.full(w.n_predictions, k, dtype=np.int64) for k, w in enumerate(windows)]
        )
        positions = np.concatenate([np.arange(p.target_lo, p.hi) for _, p, _ in pending])
        contexts = None
        if on_rows is not None:
            lows = np.concatenate(
                [np.full(p.hi - p.target_lo, p.lo, dtype=np.int64) for _, p, _ in pending]
            )
            contexts = positions - lows
        total = int(targets.shape[0])
        pos = 0
        targets_t: Any = None
        for chunk in model.logits(windows, max_rows=max_rows):
            r = int(chunk.shape[0])
            if r == 0:
                continue
            if pos + r > total:
                raise RuntimeError(
                    f"{model.name}: adapter yielded more than the {total} rows requested"
                )
            tg: Any = targets[pos : pos + r]
            chunk = _kernel_input(chunk)
            if is_torch(chunk):
                import torch

                if targets_t is None or targets_t.device != chunk.device:
                    targets_t = torch.as_tensor(targets, device=chunk.device)
                tg = targets_t[pos : pos + r]
            st = fused_rows(chunk, targets=tg, rank=ranks)
            surpr = _to_numpy(st.surprisal_p).astype(np.float64, copy=False)
            ent = _to_numpy(st.entropy_p).astype(np.float64, copy=False)
            rk = None if st.rank_p is None else _to_numpy(st.rank_p)
            own = owners[pos : pos + r]
            # split the chunk into runs of one window's document
            cuts = np.flatnonzero(np.diff(own)) + 1
            bounds = [0, *cuts.tolist(), r]
            for lo, hi in itertools.pairwise(bounds):
                doc, _, _ = pending[int(own[lo])]
                doc.stats.update(surpr[lo:hi], ent[lo:hi])
                if on_rows is not None:
                    p = positions[pos + lo : pos + hi]
                    on_rows(
                        RowBatch(
                            document=doc.index,
                            name=doc.name,
                            positions=p,
                            token_ids=targets[pos + lo : pos + hi],
                            offsets=doc.tokens.offsets[p],
                            surprisal_nats=surpr[lo:hi],
                            entropy_nats=ent[lo:hi],
                            rank=None if rk is None else rk[lo:hi],
                            logits=chunk[lo:hi],
                            context=None if contexts is None else contexts[pos + lo : pos + hi],
                        )
                    )
            pos += r
            if progress is not None:
                progress(r)
        if pos != total:
            raise RuntimeError(f"{model.name}: adapter yielded {pos} rows, expected {total}")
        done: list[_Doc] = []
        for doc, _, _ in pending:
            doc.pending_windows -= 1
            if doc.pending_windows == 0:
                done.append(doc)
        pending.clear()
        for doc in done:
            finish(doc)

    for index, document in enumerate(documents):
        text = document.text
        if isinstance(text, bytes) and not model.byte_level:
            text = _decode(text, document.name, False)
        n_bytes, n_chars, n_words = text_sizes(text)
        toks = model.tokenize(text)
        stats = ScoreStats(block_tokens=block_tokens)
        stats.add_text(n_bytes, n_chars, n_words)
        comp = None
        if corpus_comp is not None:
            comp = CompressorStats()
            comp.add(text if isinstance(text, bytes) else text.encode("utf-8"))
        plan = plan_windows(
            len(toks),
            settings.max_length,
            settings.stride,
            settings.bos,
            predicts_first=bool(model.predicts_first),
        )
        doc = _Doc(index, document.name, toks, stats, len(plan), comp)
        results.append(None)
        if not plan:
            finish(doc)
            continue
        ids = np.asarray(toks.ids, dtype=np.int64)
        for p in plan:
            body = ids[p.lo : p.hi]
            if p.bos:
                assert bos_id is not None
                body = np.concatenate([np.array([bos_id], dtype=np.int64), body])
            pending.append((doc, p, Window(body, p.start)))
            if len(pending) >= window_batch:
                flush()
    flush()
    return ScoreResult(
        model=model.name,
        settings=settings,
        stats=corpus,
        documents=[d for d in results if d is not None],
        compressors=corpus_comp,
    )
