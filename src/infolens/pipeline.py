r"""The streaming engine behind ``infolens score`` and ``infolens compare``.

Data flows one way::

    documents -> tokens -> planned windows -> window batches -> row sources (adapters)
              -> lockstep chunks of rows -> runs of one document -> caller's statistics

:func:`stream_documents` does the part the commands share: it reads the documents lazily,
tokenises each one with one model, places its windows with
:func:`infolens.windows.plan_windows` (the scoring definition of ``docs/scoring.md``),
gathers windows of several documents into batches of ``window_batch``, hands every batch
to each *row source* and walks the sources' row chunks together. The caller turns rows into
statistics (the fused kernel) and accumulates them, through four callbacks:

``open_document(document)``
    Before reading it: make the caller's per-document state.
``on_doc_start(doc)``
    As it is opened, before its text is read (its name and index are known).
``on_chunk(chunk)``
    One :class:`Chunk`: the same rows of every source, with their targets, token positions
    and contexts, cut into runs of one document (:attr:`Chunk.runs`, :meth:`Chunk.pieces`).
``on_doc_end(doc)``
    All of the document's rows have been handed over.

Guarantees:

* **Lockstep.** A row source is a callable ``source(windows) -> iterable of arrays`` whose
  arrays are consecutive rows (``[r, ...]``) covering exactly the windows' predictions, in
  order. Sources may cut their rows differently (an n-gram model yields one window at a
  time, a transformer a batch); :func:`align_chunks` re-splits two streams so that every
  :class:`Chunk` holds the same rows of every source. A source that yields more or fewer
  rows than the windows predict raises :class:`RuntimeError`.
* **Order.** Chunks come in row order, so the runs of one document come in position order
  and the documents' runs in input order. ``on_doc_end`` is called in input order too: a
  document that ends early (an empty one, with no window) waits for the earlier documents
  still in flight. ``on_doc_start`` is called as each document is read, in input order.
* **Memory.** At most ``window_batch`` windows are pending (plus the documents they come
  from); each source holds one chunk of rows at a time (``max_rows`` of the adapter), and
  the aligner one chunk of each of two sources. Nothing grows with ``context x
  vocabulary``, nor with a document's length: its text is read a piece at a time, its
  tokens come a run at a time and only those that windows still to come can need are kept
  (except for models of unbounded context, whose one window per document holds all its
  tokens). The one exception to "nothing grows with the number of documents": a run
  of documents without windows (empty ones) that follows a document still in flight waits
  for it, keeping its state, until the next batch is streamed.

CPU torch chunks are handed over as float numpy arrays (:func:`kernel_input`: the fused
kernel's compiled path); accelerator tensors, numpy arrays and saved records as they are.
"""

from __future__ import annotations

import bisect
import itertools
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from infolens._backend import is_torch
from infolens.models.base import LanguageModel, Tokenized, Window
from infolens.windows import PlannedWindow, WindowPlanner

if TYPE_CHECKING:
    from infolens.documents import Document
    from infolens.windows import ScoreSettings

__all__ = [
    "CHUNK_TARGET_BYTES",
    "Chunk",
    "Piece",
    "RowSource",
    "StreamedDocument",
    "align_chunks",
    "default_max_rows",
    "default_window_batch",
    "kernel_input",
    "stream_documents",
]

#: Target size of one logits chunk (bytes of float32) when the caller gives no ``max_rows``.
CHUNK_TARGET_BYTES = 64 * 2**20

#: ``source(windows)``: consecutive row chunks covering the windows' predictions, in order.
RowSource = Callable[[list[Window]], Iterable[Any]]


def default_max_rows(vocab_size: int) -> int:
    """Rows per logits chunk: about 64 MiB of float32, between 1 and 1024 rows.

    Parameters
    ----------
    vocab_size : int
        Length of a row.

    Examples
    --------
    >>> default_max_rows(256), default_max_rows(50257), default_max_rows(10**9)
    (1024, 333, 1)
    """
    return max(1, min(1024, CHUNK_TARGET_BYTES // (4 * max(1, vocab_size))))


def default_window_batch(models: Sequence[Any]) -> int:
    """Windows per adapter call: 4 x the smallest ``batch_size`` of ``models`` (4 if unset).

    Parameters
    ----------
    models : sequence
        The models that share the calls.

    Examples
    --------
    >>> from types import SimpleNamespace as M
    >>> default_window_batch([M(batch_size=8), M(batch_size=2)]), default_window_batch([M()])
    (8, 16)
    """
    return 4 * min(int(getattr(m, "batch_size", 4) or 4) for m in models)


def kernel_input(chunk: Any) -> Any:
    """CPU torch tensors as float numpy arrays (the kernel's compiled path, much faster on
    CPU than the chunked torch path); accelerator tensors and other arrays as they are.

    Parameters
    ----------
    chunk : array
        A chunk of rows (numpy, torch, or structured records).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((2, 3))
    >>> kernel_input(a) is a
    True
    """
    if is_torch(chunk) and chunk.device.type == "cpu":
        import torch

        if chunk.dtype not in (torch.float32, torch.float64):
            chunk = chunk.float()
        return chunk.detach().numpy()
    return chunk


def align_chunks(
    a: Iterable[Any], b: Iterable[Any], names: tuple[str, str] = ("model", "base")
) -> Iterator[tuple[Any, Any]]:
    """Re-split two streams of row chunks into pairs of chunks with equal row counts.

    The two adapters cover the same rows but may cut them differently (an n-gram model
    yields one window at a time, a transformer a batch of windows). Holds at most one
    chunk of each stream; every yielded pair covers the same rows.

    Parameters
    ----------
    a, b : iterable of arrays
        The two streams of ``[rows, ...]`` chunks.
    names : tuple of str
        Their names, for the error.

    Yields
    ------
    tuple
        Chunks of ``a`` and ``b`` with the same rows.

    Raises
    ------
    RuntimeError
        One stream has more rows than the other.

    Examples
    --------
    >>> import numpy as np
    >>> a = [np.arange(5), np.arange(5, 7)]
    >>> b = [np.arange(2), np.arange(2, 7)]
    >>> [(x.tolist(), y.tolist()) for x, y in align_chunks(a, b)]
    [([0, 1], [0, 1]), ([2, 3, 4], [2, 3, 4]), ([5, 6], [5, 6])]
    """
    ia, ib = iter(a), iter(b)
    ca: Any = None
    cb: Any = None
    oa = ob = 0
    while True:
        while ca is None or oa >= int(ca.shape[0]):
            ca, oa = next(ia, None), 0
            if ca is None:
                break
        while cb is None or ob >= int(cb.shape[0]):
            cb, ob = next(ib, None), 0
            if cb is None:
                break
        if ca is None or cb is None:
            if ca is not None or cb is not None:
                more = names[0] if ca is not None else names[1]
                raise RuntimeError(
                    f"{more}: yielded more rows than {names[1] if ca is not None else names[0]}"
                )
            return
        n = min(int(ca.shape[0]) - oa, int(cb.shape[0]) - ob)
        yield ca[oa : oa + n], cb[ob : ob + n]
        oa += n
        ob += n


@dataclass
class StreamedDocument:
    """A document in flight.

    Attributes
    ----------
    index : int
        Its position in the input (0-based); ``name`` its name.
    document : Document
        The document itself (a lazy one can be read again, e.g. for the compressors).
    state : Any
        The caller's, from ``open_document``.
    n_tokens : int
        Tokens so far (all of them once ``on_doc_end`` is called).
    text_sizes : tuple of int
        ``(bytes, characters, words)`` of its text (:func:`infolens.documents.text_sizes`),
        complete at ``on_doc_end``.
    binary : bool
        Its bytes are not valid UTF-8 (byte-level models only; complete at the end).
    ids_crc : int or None
        CRC-32 of its token ids as little-endian int64 (``stream_documents(ids_crc=True)``),
        complete at the end.
    bytes_crc : int or None
        CRC-32 of the bytes read from a lazy document's file (else ``None``).
    """

    index: int
    name: str
    document: Any = None
    state: Any = None
    n_tokens: int = 0
    text_sizes: tuple[int, int, int] = (0, 0, 0)
    binary: bool = False
    ids_crc: int | None = None
    bytes_crc: int | None = None
    windows_pending: int = 0
    tokens_done: bool = False


@dataclass
class Piece:
    """Consecutive predictions of one document with the matching rows of every source."""

    doc: StreamedDocument
    rows: list[Any]
    targets: np.ndarray
    positions: np.ndarray
    context: np.ndarray
    offsets: np.ndarray


@dataclass
class Chunk:
    """The same consecutive rows of every source, with what they predict.

    Attributes
    ----------
    rows : tuple
        One array of ``n`` rows per source (CPU torch as numpy, see :func:`kernel_input`).
    targets : numpy.ndarray
        int64 ``[n]``: the predicted tokens.
    positions : numpy.ndarray
        ``[n]``: their indices ``j`` in their documents.
    context : numpy.ndarray
        ``[n]``: document tokens before each prediction in its window (``j - window.lo``;
        BOS is not counted).
    offsets : numpy.ndarray
        int64 ``[n, 2]``: the UTF-8 byte spans of the predicted tokens in their documents
        (``-1`` where the tokenizer gives none).
    runs : list of (StreamedDocument, int, int)
        The rows ``lo:hi`` of each document, in order.
    """

    rows: tuple[Any, ...]
    targets: np.ndarray
    positions: np.ndarray
    context: np.ndarray
    offsets: np.ndarray
    runs: list[tuple[StreamedDocument, int, int]]

    def pieces(self) -> Iterator[Piece]:
        """The runs as :class:`Piece` objects (rows, targets, positions sliced)."""
        for doc, lo, hi in self.runs:
            yield Piece(
                doc,
                [c[lo:hi] for c in self.rows],
                self.targets[lo:hi],
                self.positions[lo:hi],
                self.context[lo:hi],
                self.offsets[lo:hi],
            )


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _update_crc(crc: int, ids: np.ndarray) -> int:
    for lo in range(0, int(ids.shape[0]), 1 << 20):
        crc = zlib.crc32(np.ascontiguousarray(ids[lo : lo + (1 << 20)], dtype="<i8").data, crc)
    return crc


def _token_runs(tokenizer: LanguageModel, pieces: Iterable[str | bytes]) -> Iterator[Tokenized]:
    """The tokenizer's ``tokenize_stream`` if it has one, else ``tokenize`` of the whole."""
    stream = getattr(tokenizer, "tokenize_stream", None)
    if stream is not None:
        yield from stream(pieces)
        return
    parts = list(pieces)
    if not parts:
        yield tokenizer.tokenize(b"" if tokenizer.byte_level else "")
    elif isinstance(parts[0], bytes):
        yield tokenizer.tokenize(b"".join(parts))  # type: ignore[arg-type]
    else:
        yield tokenizer.tokenize("".join(parts))  # type: ignore[arg-type]


class _TokenBuffer:
    """The tokens of one document that windows still to come can need: ``ids[k]`` is token
    ``base + k``. With ``keep_all`` (one window over the document) every token is kept."""

    def __init__(self, keep_all: bool) -> None:
        self.keep_all = keep_all
        self.parts: list[Tokenized] = []
        self.ids: np.ndarray = np.zeros(0, np.int64)
        self.offsets: np.ndarray | None = None
        self.base = 0
        self.spans_known = True  # False for byte-level runs (no offsets: token k = byte k)

    def add(self, toks: Tokenized) -> None:
        if toks._offsets is None:
            self.spans_known = False
        if self.keep_all:
            self.parts.append(toks)
            return
        self.ids = np.concatenate([self.ids, np.asarray(toks.ids)]) if len(self.ids) else np.asarray(toks.ids)
        if self.spans_known:
            assert toks._offsets is not None
            off = toks._offsets
            self.offsets = off if self.offsets is None or not len(self.offsets) else np.concatenate([self.offsets, off])

    def join(self) -> None:
        """Make the kept parts one array (``keep_all``, at the end of the document)."""
        if not self.keep_all or not self.parts:
            return
        ids = [np.asarray(t.ids) for t in self.parts]
        self.ids = ids[0] if len(ids) == 1 else np.concatenate(ids)
        if self.spans_known:
            offs = [t._offsets for t in self.parts]
            self.offsets = offs[0] if len(offs) == 1 else np.concatenate(offs)  # type: ignore[arg-type]
        self.parts = []

    def drop_before(self, k: int) -> None:
        if self.keep_all or k <= self.base:
            return
        cut = k - self.base
        self.ids = self.ids[cut:].copy()
        if self.offsets is not None:
            self.offsets = self.offsets[cut:].copy()
        self.base = k

    def window(self, lo: int, hi: int) -> np.ndarray:
        a, b = lo - self.base, hi - self.base
        view = self.ids[a:b]
        return view if self.keep_all else view.copy()

    def spans(self, lo: int, hi: int) -> np.ndarray | None:
        if not self.spans_known or self.offsets is None:
            return None
        return self.offsets[lo - self.base : hi - self.base].copy()


def stream_documents(
    tokenizer: LanguageModel,
    sources: Sequence[RowSource],
    source_names: Sequence[str],
    documents: Iterable[Document],
    settings: ScoreSettings,
    *,
    predicts_first: bool,
    window_batch: int,
    on_chunk: Callable[[Chunk], None],
    on_doc_end: Callable[[StreamedDocument], None],
    open_document: Callable[[Document], Any] | None = None,
    on_doc_start: Callable[[StreamedDocument], None] | None = None,
    progress: Callable[[int], None] | None = None,
    ids_crc: bool = False,
) -> None:
    """Plan windows, stream every source in lockstep and hand the rows over by document.

    A document is streamed too: its text is read a piece at a time
    (:meth:`infolens.documents.Document.pieces`), tokenised a run at a time (the
    adapter's ``tokenize_stream``, when it has one), and its windows are planned as its
    tokens come (:class:`infolens.windows.WindowPlanner`: the same windows as planning the
    whole), so only the tokens that windows still to come can need are held. The one
    exception: a model of unbounded context has one window per document, whose tokens are
    all held (1 byte each for a byte-level model).

    Parameters
    ----------
    tokenizer : LanguageModel
        Tokenises the documents (every source must share its tokenizer); its ``bos_id``
        is put before the windows that take a BOS token.
    sources : sequence of RowSource
        One or two row sources (see the module docstring).
    source_names : sequence of str
        Their names (the first one a model's), for the errors of a source that yields the
        wrong number of rows.
    documents : iterable of Document
        Read lazily, one at a time.
    settings : ScoreSettings
        ``L``, ``S`` and the BOS policy for :func:`infolens.windows.plan_windows`.
    predicts_first : bool
        Whether the sources predict a document's first token from an empty context.
    window_batch : int
        Windows handed to the sources per call.
    on_chunk : callable
        Called with every :class:`Chunk`, in row order.
    on_doc_end : callable
        Called when all of a document's rows are handed over, in input order.
    open_document : callable, optional
        ``document -> state``, before reading it: the caller's state for
        :attr:`StreamedDocument.state`. Default: no state.
    on_doc_start : callable, optional
        Called as each document is opened (before it is read), in input order.
    progress : callable, optional
        Called with the number of rows of each chunk once it is handed over.
    ids_crc : bool
        Compute :attr:`StreamedDocument.ids_crc`.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> from infolens.documents import Document
    >>> from infolens.windows import resolve_settings
    >>> m = load_model("ngram")
    >>> settings = resolve_settings(m, max_length=8, stride=8)
    >>> runs = []
    >>> stream_documents(
    ...     m, [lambda ws: m.logits(ws, max_rows=4)], [m.name],
    ...     [Document("a", "abcdefghij"), Document("b", "")], settings,
    ...     predicts_first=True, window_batch=4,
    ...     on_chunk=lambda c: runs.extend((d.name, len(c.targets[lo:hi])) for d, lo, hi in c.runs),
    ...     on_doc_end=lambda d: runs.append((d.name, "end")))
    >>> runs  # 10 bytes: windows t[0:8] and t[2:10] (t[8:10] predicted), chunks of 4 rows
    [('a', 4), ('a', 4), ('a', 1), ('a', 1), ('a', 'end'), ('b', 'end')]

    Raises
    ------
    InputError
        A document given as raw ``bytes`` (input that is not valid UTF-8, or any
        ``bytes``) for a tokenizer that is not byte-level: decoded as UTF-8 if it can be,
        else refused, naming the document and the byte offset.
    RuntimeError
        A source yields more or fewer rows than its windows predict.
    """
    from infolens.documents import TextCounter

    bos_id = tokenizer.bos_id
    byte_level = bool(tokenizer.byte_level)
    pending: list[tuple[StreamedDocument, PlannedWindow, Window, np.ndarray | None]] = []
    # documents end in input order (an empty one waits for the earlier ones still pending)
    started: deque[StreamedDocument] = deque()
    finished: set[int] = set()

    def end(doc: StreamedDocument) -> None:
        finished.add(doc.index)
        while started and started[0].index in finished:
            first = started.popleft()
            finished.discard(first.index)
            on_doc_end(first)

    def flush() -> None:
        if not pending:
            return
        windows = [w for _, _, w, _ in pending]
        # row r of the batch belongs to the window k with ends[k - 1] <= r < ends[k]; the
        # targets, positions and contexts of a chunk are built for its rows only (an
        # n-gram document is one window as long as the document)
        ends = list(itertools.accumulate(w.n_predictions for w in windows))
        total = ends[-1]
        streams = [iter(src(windows)) for src in sources]
        if len(streams) == 1:
            joined: Iterator[tuple[Any, ...]] = ((c,) for c in streams[0])
        else:
            assert len(streams) == 2
            joined = align_chunks(streams[0], streams[1], (source_names[0], source_names[1]))
        pos = 0
        for chunks in joined:
            r = int(chunks[0].shape[0])
            if r == 0:
                continue
            if pos + r > total:
                raise RuntimeError(
                    f"{source_names[0]}: adapter yielded more than the {total} rows requested"
                )
            targets: list[np.ndarray] = []
            positions: list[np.ndarray] = []
            contexts: list[np.ndarray] = []
            offsets: list[np.ndarray] = []
            runs: list[tuple[StreamedDocument, int, int]] = []
            row = pos
            k = bisect.bisect_right(ends, row)
            while row < pos + r:
                doc, p, w, spans = pending[k]
                first = ends[k] - w.n_predictions  # the window's first row in the batch
                hi = min(pos + r, ends[k])
                a, b = row - first, hi - first  # its predictions a:b
                targets.append(w.targets[a:b])
                j = np.arange(p.target_lo + a, p.target_lo + b, dtype=np.int64)
                positions.append(j)
                contexts.append(j - p.lo)
                offsets.append(np.stack([j, j + 1], axis=-1) if spans is None else spans[a:b])
                runs.append((doc, row - pos, hi - pos))
                row = hi
                k += 1
            on_chunk(
                Chunk(
                    tuple(kernel_input(c) for c in chunks),
                    _join(targets).astype(np.int64, copy=False),
                    _join(positions),
                    _join(contexts),
                    _join(offsets),
                    runs,
                )
            )
            pos += r
            if progress is not None:
                progress(r)
        if pos != total:
            raise RuntimeError(f"{source_names[0]}: adapter yielded {pos} rows, expected {total}")
        done: list[StreamedDocument] = []
        for doc, _, _, _ in pending:
            doc.windows_pending -= 1
            if doc.windows_pending == 0 and doc.tokens_done:
                done.append(doc)
        pending.clear()
        for doc in done:
            end(doc)

    def add_window(doc: StreamedDocument, p: PlannedWindow, buf: _TokenBuffer) -> None:
        body = buf.window(p.lo, p.hi)  # uint8 for byte-level models: no int64 copy
        if p.bos:
            assert bos_id is not None
            body = np.concatenate([np.array([bos_id], dtype=np.int64), body])
        pending.append((doc, p, Window(body, p.start), buf.spans(p.target_lo, p.hi)))
        doc.windows_pending += 1
        if len(pending) >= window_batch:
            flush()

    for index, document in enumerate(documents):
        state = None if open_document is None else open_document(document)
        doc = StreamedDocument(index, document.name, document, state)
        started.append(doc)
        if on_doc_start is not None:
            on_doc_start(doc)
        # settings were checked once (resolve_settings -> windows.check_settings)
        planner = WindowPlanner(
            settings.max_length, settings.stride, settings.bos, predicts_first=predicts_first
        )
        buf = _TokenBuffer(keep_all=settings.max_length is None)
        counter = TextCounter(document.name, allow_bytes=byte_level)
        lazy = bool(getattr(document, "lazy", False))

        def text_pieces(document: Document = document, counter: TextCounter = counter,
                        doc: StreamedDocument = doc, lazy: bool = lazy) -> Iterator[str | bytes]:
            for raw in document.pieces():
                if lazy:
                    assert isinstance(raw, bytes)
                    doc.bytes_crc = zlib.crc32(raw, doc.bytes_crc or 0)
                text = counter.add(raw)
                if byte_level:
                    yield raw if isinstance(raw, bytes) else raw.encode("utf-8")
                elif text:
                    yield text
            tail = counter.finish()
            if tail and not byte_level:
                yield tail

        crc = 0
        for toks in _token_runs(tokenizer, text_pieces()):
            ids = np.asarray(toks.ids)
            if ids_crc:
                crc = _update_crc(crc, ids)
            buf.add(toks)
            doc.n_tokens += int(ids.shape[0])
            for p in planner.add(doc.n_tokens):
                add_window(doc, p, buf)
            buf.drop_before(planner.keep_from)
        if lazy and doc.bytes_crc is None:
            doc.bytes_crc = 0
        doc.text_sizes = counter.sizes
        doc.binary = counter.binary
        doc.ids_crc = crc if ids_crc else None
        buf.join()
        for p in planner.finish():
            add_window(doc, p, buf)
        doc.tokens_done = True
        if doc.windows_pending == 0:
            end(doc)
    flush()
