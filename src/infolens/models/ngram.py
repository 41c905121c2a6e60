r"""The built-in byte-level language model: ``ngram``, ``ngram:order=N``, ``ngram:FILE``.

A byte-level model (vocabulary: the 256 byte values) that needs no download and no
training data. It combines

* **interpolated modified Kneser–Ney** over the contexts of order ``K, K-1, ..., 0``
  (the previous ``k`` bytes, ``K <= 8``, default 6), down to a uniform order ``-1``:

  .. math::

     P_k(x) = \frac{\max(c_k(x) - D_k(c_k(x)), 0)}{n_k}
              + \frac{D_{k,1} N_1 + D_{k,2} N_2 + D_{k,3} N_{3+}}{n_k}\, P_{k-1}(x),
     \qquad P_{-1}(x) = 1/256,

  where ``c_k(x)`` is the count of ``x`` after the current order-``k`` context, ``n_k`` the
  sum of those counts, ``N_r`` the number of bytes seen exactly ``r`` (``3+``: at least 3)
  times there. An order whose context was never seen is skipped (``P_k = P_{k-1}``).
  Counts below the top order are Kneser–Ney *continuation* counts (update exclusion: a
  byte is counted at order ``k - 1`` only when it was new after the order-``k`` context).
  Discounts follow Chen & Goodman, recomputed at every byte from the count-of-counts
  ``n_1..n_4`` of each order: ``Y = n1/(n1+2 n2)``, ``D1 = 1-2Y n2/n1``,
  ``D2 = 2-3Y n3/n2``, ``D3+ = 3-4Y n4/n3`` (clipped to ``[0.05, r-0.05]``; ``0.5, 1, 1.5``
  while some ``n_r`` is still 0);
* a **match model**: the byte that followed the most recent earlier occurrence of the last
  ``L = 4`` bytes (verified, then extended while it keeps predicting right). Its
  prediction ``b`` is merged by an adaptive secondary estimate (SSE): with ``p = P_K(b)``,
  ``P(b) = q = (h + 2p)/(t + 2)`` from hit/trial counts ``h, t`` of the cell (match length
  bucket, probability bucket of ``p``), and every other byte is scaled by
  ``(1-q)/(1-p)``.

The **first byte** of a document has the empty context: only order 0 (if the model has
seen data, e.g. a fitted model) and the uniform order ``-1`` apply; an adaptive model with
no data predicts it as exactly ``1/256`` (8 bits).

Every row is a full normalised distribution over all 256 bytes with no zero entry.

Modes: *adaptive* (default) learns from each document as it goes (the total surprisal is
the prequential code length); *fitted*: ``infolens ngram fit FILE... -o MODEL`` saves the
statistics (a checksummed file, no pickle) and ``ngram:MODEL`` scores with them frozen (a classical
static n-gram model; no match model), while ``ngram:MODEL,adapt=1`` starts from them and
keeps adapting, match model included. See ``docs/ngram.md``.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infolens.errors import InfolensError, InputError
from infolens.models.base import ModelSpecError, Tokenized, Window

__all__ = [
    "DEFAULT_ORDER",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "NgramModel",
    "fit_ngram",
    "load_ngram",
    "load_ngram_file",
    "write_model_arrays",
]

#: Default context order (bytes of context) of the adaptive model.
DEFAULT_ORDER = 6
#: Largest supported order: a context is packed exactly into 64 bits.
MAX_ORDER = 8
#: Minimum length of a context the match model looks up.
MATCH_MIN = 4
#: ``format`` field of a saved model.
FORMAT_NAME = "infolens-ngram"
#: ``version`` field of a saved model.
FORMAT_VERSION = 2
#: The first bytes of a model file (the last two: the version).
FILE_MAGIC = b"ILNGRM02"

_FIT_CHUNK = 1 << 24


def _native() -> Any:
    try:
        from infolens import _ngram_native  # type: ignore[attr-defined]
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise InfolensError(  # one line on the CLI, not a traceback
            "the ngram model needs the compiled extension infolens._ngram_native, which is "
            "missing: install a C compiler and the Python headers (e.g. apt-get install gcc "
            "python3-dev), then reinstall (pip install .) or run "
            "'python setup.py build_ext --inplace'"
        ) from exc
    return _ngram_native


def _new_core(order: int, match: bool) -> Any:
    return _native().Model(order=order, match_min=MATCH_MIN, use_match=int(match))


class NgramModel:
    """Byte-level interpolated Kneser–Ney model with a match model.

    Implements :class:`infolens.models.base.LanguageModel`. Build it with
    :func:`load_ngram` (``load_model("ngram")``), :func:`fit_ngram` or
    :func:`load_ngram_file`.

    Parameters
    ----------
    order : int
        Longest context in bytes, ``0..8``.
    adapt : bool
        Learn from each scored document as it goes (prequential). ``False`` scores with
        frozen fitted statistics.
    match : bool
        Use the match model (only while adapting).
    core : object, optional
        Fitted statistics (an ``infolens._ngram_native.Model``); ``None`` starts empty.
    name : str, optional
        Display name.

    Examples
    --------
    >>> import numpy as np
    >>> from infolens.models import Window
    >>> m = NgramModel(order=2)
    >>> (rows,) = m.logits([Window(m.tokenize("abab").ids, 0)], max_rows=8)
    >>> rows.shape, bool(np.allclose(np.exp(rows).sum(axis=1), 1.0))
    ((4, 256), True)
    >>> float(np.exp(rows[0, ord("a")]))  # the first byte: uniform
    0.00390625
    """

    bos_id: int | None = None
    vocab_size: int = 256
    max_context: int | None = None
    predicts_first: bool = True
    byte_level: bool = True

    def __init__(
        self,
        order: int = DEFAULT_ORDER,
        *,
        adapt: bool = True,
        match: bool = True,
        core: Any = None,
        name: str | None = None,
    ) -> None:
        if not 0 <= order <= MAX_ORDER:
            raise ModelSpecError(f"ngram order: expected 0..{MAX_ORDER}, got {order}")
        if core is None and not adapt:
            raise ModelSpecError("ngram: adapt=0 needs a fitted model file (ngram:FILE)")
        self.order = int(order)
        self.adapt = bool(adapt)
        self.match = bool(match)
        self._core = core
        self.name = name or f"ngram:order={order}"

    def __repr__(self) -> str:
        return f"NgramModel({self.name!r})"

    # -- LanguageModel interface -------------------------------------------------------
    def tokenize(self, text: str | bytes) -> Tokenized:
        """Bytes as tokens: ids are the UTF-8 bytes (``bytes`` pass through as they are),
        token ``k`` covers byte span ``[k, k+1]``.

        The ids are a ``uint8`` view of the bytes (no copy) and the spans are computed
        only when asked for, so a document costs its own size, not ``24x`` it.
        """
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return Tokenized(np.frombuffer(data, dtype=np.uint8))

    def tokenize_stream(self, pieces: Iterable[str | bytes]) -> Iterator[Tokenized]:
        """:meth:`tokenize` a piece at a time (bytes are tokens: nothing crosses a piece)."""
        for p in pieces:
            yield self.tokenize(p)

    def logits(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[np.ndarray]:
        r"""Stream log-probabilities (natural log, nats) for every predicted position.

        Row ``r`` of window ``w`` is :math:`\log P(x_{s+r} \mid x_{0..s+r-1})` for all 256
        byte values ``x``, where ``s = w.start`` and the context is that window's ids only
        (an adaptive model starts each window empty, or from the fitted statistics; the
        bytes before ``start`` are learned from but not yielded).

        Parameters
        ----------
        windows : sequence of Window
            Byte ids (``0..255``) and the first position to predict.
        max_rows : int
            Largest number of rows per yielded array.

        Yields
        ------
        numpy.ndarray
            ``float64`` arrays ``[rows <= max_rows, 256]`` of log-probabilities; each row
            satisfies ``sum(exp(row)) = 1`` (within 1e-12) and has no ``-inf``.
        """
        if max_rows < 1:
            raise ValueError(f"max_rows: expected a positive integer, got {max_rows}")
        for w in windows:
            buf = _window_bytes(w.ids)
            n = len(buf)
            start = int(w.start)
            if not 0 <= start <= n:
                raise ValueError(f"window start: expected 0..{n}, got {start}")
            core = self._core_for_window()
            if self.adapt:
                core.begin()
                if start > 0:
                    core.run(buf, 0, start, None, True)
            for lo in range(start, n, max_rows):
                hi = min(n, lo + max_rows)
                out = np.empty((hi - lo, 256), dtype=np.float64)
                core.run(buf, lo, hi, out, self.adapt)
                yield out

    # -- extras -----------------------------------------------------------------------
    def decode(self, ids: Any) -> str:
        """Text of byte tokens: the bytes decoded as UTF-8 (invalid sequences as U+FFFD)."""
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def decode_token(self, token_id: int) -> str:
        """Readable text of one byte token (for top alternatives).

        Printable ASCII, space, newline and tab are themselves; other bytes (control bytes
        and the bytes of multi-byte UTF-8 characters, which mean nothing alone) are written
        as escapes such as ``\\x0d`` or ``\\xc3``.

        Parameters
        ----------
        token_id : int
            A byte value, ``0..255``.

        Returns
        -------
        str

        Examples
        --------
        >>> m = NgramModel()
        >>> [m.decode_token(i) for i in (97, 10, 0, 195)]
        ['a', '\\n', '\\\\x00', '\\\\xc3']
        """
        i = int(token_id)
        if 0x20 <= i < 0x7F or i in (0x09, 0x0A):
            return chr(i)
        return f"\\x{i:02x}"

    def _core_for_window(self) -> Any:
        if self._core is None:
            return _new_core(self.order, self.match)
        if self.adapt:
            return self._core.copy()
        return self._core

    def info(self) -> dict[str, Any]:
        """Order, mode and table sizes of the fitted statistics (if any)."""
        d: dict[str, Any] = {"name": self.name, "order": self.order, "adapt": self.adapt}
        if self._core is not None:
            d.update(self._core.info())
        return d

    def save(self, path: str | os.PathLike[str]) -> int:
        """Save the fitted statistics as a versioned, checksummed model file (no pickle).

        The container of :mod:`infolens._fileformat` (magic ``b"ILNGRM02"``): the header
        holds ``format`` (``"infolens-ngram"``), ``version`` (2), ``order``, ``match_min``
        and the list of arrays (name, dtype, shape); the body one zlib-compressed block
        per array: ``orders`` (uint8, per context), ``contexts`` (uint64, the context bytes
        packed little-endian, most recent byte lowest), ``nsym`` (uint16, distinct
        successors per context), ``symbols`` (uint8) and ``counts`` (uint32) concatenated
        per context, ``sse`` (float64 ``[2, 16, 12]``: match hits and trials). Written
        atomically: an existing file at ``path`` is replaced only by a complete one.
        Returns the number of bytes written.
        """
        if self._core is None:
            raise ValueError("save: this ngram model has no fitted statistics")
        orders, ctx, nsym, sym, cnt, sse = self._core.export()
        # order the contexts canonically so that files are reproducible
        perm = np.lexsort((ctx, orders))
        starts = np.concatenate(([0], np.cumsum(nsym, dtype=np.int64)))
        sym_idx = (
            np.concatenate([np.arange(starts[i], starts[i + 1]) for i in perm])
            if len(perm)
            else np.zeros(0, dtype=np.int64)
        )
        arrays = {
            "orders": orders[perm], "contexts": ctx[perm], "nsym": nsym[perm],
            "symbols": sym[sym_idx], "counts": cnt[sym_idx], "sse": sse,
        }  # fmt: skip
        return write_model_arrays(path, self.order, arrays)


def write_model_arrays(
    path: str | os.PathLike[str],
    order: int,
    arrays: dict[str, np.ndarray],
    header: dict[str, Any] | None = None,
) -> int:
    """Write a model file from its arrays (:meth:`NgramModel.save`'s layout), atomically.

    ``header`` overrides header fields; with it (and arbitrary arrays) the fault suite
    crafts files whose checksums are valid but whose values are not. Returns the number
    of bytes written.
    """
    from infolens._fileformat import ContainerWriter

    head = {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "order": order,
        "match_min": MATCH_MIN, "compression": "zlib",
        "arrays": [[k, _ARRAYS[k], list(np.shape(arrays[k]))] for k in _ARRAYS],
        **(header or {}),
    }  # fmt: skip
    with ContainerWriter(path, FILE_MAGIC, head, option="--output") as w:
        for k in _ARRAYS:
            a = np.ascontiguousarray(arrays[k], dtype=_ARRAYS[k])
            w.write_block(zlib.compress(a.data, 6))
    return w.size


def _window_bytes(ids: Any) -> np.ndarray:
    """The window's bytes as a contiguous ``uint8`` array (no copy when they are one)."""
    a = np.asarray(ids)
    if a.ndim != 1:
        raise ValueError(f"window ids: expected a 1-D array of byte ids, got shape {a.shape}")
    if a.dtype != np.uint8 and a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(
            f"window ids: expected byte ids 0..255, got values in [{a.min()}, {a.max()}]"
        )
    return np.ascontiguousarray(a, dtype=np.uint8)


def fit_ngram(
    sources: Iterable[str | bytes | os.PathLike[str]],
    *,
    order: int = DEFAULT_ORDER,
    adapt: bool = False,
) -> NgramModel:
    """Learn byte statistics from documents and return a fitted model.

    Each source is one document (contexts do not cross documents): a path to a file
    (``str`` or path-like; read in 16 MiB chunks, so memory stays bounded) or ``bytes``
    content.

    Parameters
    ----------
    sources : iterable of path-like or bytes
        Training documents.
    order : int
        Longest context in bytes, ``0..8``.
    adapt : bool
        Mode of the returned model: ``False`` (frozen) or ``True`` (keeps adapting).

    Returns
    -------
    NgramModel
        The fitted model; ``.save(path)`` writes it.

    Examples
    --------
    >>> m = fit_ngram([b"the cat sat on the mat. " * 20], order=3)
    >>> m.name, m.adapt, m.info()["order"]
    ('ngram:<fitted order=3>', False, 3)
    """
    if not 0 <= order <= MAX_ORDER:  # before reading anything (NgramModel checks it too late)
        raise ModelSpecError(f"ngram order: expected 0..{MAX_ORDER}, got {order}")
    core = _new_core(order, True)
    for src in sources:
        if isinstance(src, (bytes, bytearray, memoryview)):
            _fit_bytes(core, [bytes(src)], order)
        else:
            _fit_bytes(core, _read_chunks(Path(src)), order)
    name = f"ngram:<fitted order={order}>" + (",adapt=1" if adapt else "")
    return NgramModel(order, adapt=adapt, core=core, name=name)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            b = f.read(_FIT_CHUNK)
            if not b:
                return
            yield b


def _fit_bytes(core: Any, chunks: Iterable[bytes], order: int) -> None:
    prefix = b""
    for chunk in chunks:
        buf = prefix + chunk
        core.begin()
        core.run(buf, len(prefix), len(buf), None, True)
        prefix = buf[-order:] if order else b""


#: The arrays of a model file, in order, with their little-endian dtypes.
_ARRAYS = {
    "orders": "<u1", "contexts": "<u8", "nsym": "<u2", "symbols": "<u1", "counts": "<u4",
    "sse": "<f8",
}  # fmt: skip
#: Deflate never expands data more than about 1032 times: a declared size beyond that is
#: refused before anything is allocated.
_DEFLATE_RATIO = 1032


def load_ngram_file(path: str | os.PathLike[str], *, adapt: bool = False) -> NgramModel:
    """Load a model saved by :meth:`NgramModel.save` (``infolens ngram fit``).

    Everything is checked before it is used: the container's checksums and sizes
    (:mod:`infolens._fileformat`), every header field, each array's declared size against
    what its compressed block can hold (before it is decompressed), and then the values:
    orders ``<= order``, at most ``256**k`` contexts of order ``k``, at most 256 symbols
    per context, symbol counts that add up, counts ``>= 1`` whose sum per context stays
    within the model's count limit (so adapting can never wrap them), SSE cells with
    ``0 <= hits <= trials <= 255``.

    Raises
    ------
    infolens.errors.InputError
        One line naming the file and the field or offset when it is missing, truncated,
        corrupt, out of range or not an infolens ngram model of a supported version.
    """
    from infolens._fileformat import Container

    p = Path(path)
    if not p.is_file():
        what = "a directory" if p.is_dir() else "no such file"
        raise InputError(f"ngram model file {str(p)!r}: expected an existing file, got {what}")
    c = Container(
        p, FILE_MAGIC, "ngram model file", "an infolens ngram model",
        older={b"PK\x03\x04": "an .npz model of format version 1 (no checksums), no longer "
                               "read; fit it again with 'infolens ngram fit'"},
    )  # fmt: skip
    try:
        return _load_checked(c, adapt)
    finally:
        c.close()


def _load_checked(c: Any, adapt: bool) -> NgramModel:
    """The model in the opened container ``c``, every field and value checked first."""
    from infolens._fileformat import is_count

    h = c.header
    nat = _native()

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise c.error(f"header field {key!r}: expected {expected}, got {h.get(key)!r:.60}")

    need("format", h.get("format") == FORMAT_NAME, repr(FORMAT_NAME))
    need("version", h.get("version") == FORMAT_VERSION, str(FORMAT_VERSION))
    need("order", is_count(h.get("order"), 0, MAX_ORDER), f"an integer 0..{MAX_ORDER}")
    need("match_min", h.get("match_min") == MATCH_MIN, str(MATCH_MIN))
    need("compression", h.get("compression") == "zlib", "'zlib'")
    sse_shape = [2, nat.FORMAT_SSE_SHAPE_L, nat.FORMAT_SSE_SHAPE_P]
    specs = h.get("arrays")
    want = [[k, dt] for k, dt in _ARRAYS.items()]
    need(
        "arrays",
        isinstance(specs, list)
        and len(specs) == len(want)
        and all(
            isinstance(a, list) and len(a) == 3 and a[:2] == w and isinstance(a[2], list)
            and all(is_count(d) for d in a[2])
            for a, w in zip(specs, want)
        )
        and specs[-1][2] == sse_shape
        and all(len(a[2]) == 1 for a in specs[:-1]),
        f"[name, dtype, shape] for {', '.join(_ARRAYS)} (1-D; sse {sse_shape})",
    )  # fmt: skip
    if len(c.block_spans) != len(_ARRAYS):
        raise c.error(f"footer: expected {len(_ARRAYS)} blocks, got {len(c.block_spans)}")
    order = int(h["order"])
    n = specs[0][2][0]
    t = specs[3][2][0]
    if any(a[2][0] != n for a in specs[:3]) or specs[4][2][0] != t:
        raise c.error(
            "header field 'arrays': orders, contexts and nsym must have one length, "
            "symbols and counts another"
        )
    if t > 256 * n:
        raise c.error(f"header field 'arrays': {t} symbols for {n} contexts (at most 256 each)")
    for i, (name, dt, shape) in enumerate(specs):
        raw = math.prod(shape) * np.dtype(dt).itemsize
        if raw > _DEFLATE_RATIO * c.block_spans[i][1] + 64:
            raise c.error(
                f"array {name!r}: {raw} bytes declared, more than its compressed block of "
                f"{c.block_spans[i][1]} bytes can hold"
            )

    def array(i: int) -> np.ndarray:
        name, dt, shape = specs[i]
        raw = math.prod(shape) * np.dtype(dt).itemsize
        d = zlib.decompressobj()
        try:
            data = d.decompress(c.block(i), raw + 1)
        except zlib.error as exc:
            raise c.error(f"array {name!r}: cannot decompress ({exc})") from None
        if len(data) != raw or not d.eof or d.unused_data:
            raise c.error(f"array {name!r}: expected {raw} bytes, got a different size")
        return np.frombuffer(data, dtype=dt).reshape(shape).astype(dt[1:], copy=False)

    # cheapest checks first, so that a bad file is refused before the large arrays load
    orders = array(0)
    if n and int(orders.max()) > order:
        raise c.error(f"array 'orders': expected values 0..{order}, got {int(orders.max())}")
    per_order = np.bincount(orders, minlength=order + 1)
    for k, cnt in enumerate(per_order.tolist()):
        if cnt > 256**k:
            raise c.error(f"array 'orders': {cnt} contexts of order {k} (at most {256**k})")
    nsym = array(2)
    if n and int(nsym.max()) > 256:
        raise c.error(f"array 'nsym': expected 0..256 symbols per context, got {nsym.max()}")
    if int(nsym.sum(dtype=np.int64)) != t:
        raise c.error(f"array 'nsym': sums to {int(nsym.sum(dtype=np.int64))}, expected {t}")
    contexts = array(1)
    high = orders < 8
    shift = (8 * orders[high].astype(np.uint64)).astype(np.uint64)
    if high.any() and (contexts[high] >> shift).any():
        raise c.error("array 'contexts': a context has more bytes than its order")
    counts = array(4)
    if t and int(counts.min()) == 0:
        raise c.error("array 'counts': expected counts >= 1, got 0")
    starts = np.concatenate(([0], np.cumsum(nsym, dtype=np.int64)))[:-1]
    nonempty = nsym > 0
    totals = np.add.reduceat(counts.astype(np.uint64), starts[nonempty]) if t else np.zeros(0)
    if len(totals) and int(totals.max()) > nat.COUNT_LIMIT:
        raise c.error(
            f"array 'counts': a context's counts sum to {int(totals.max())}, past the "
            f"limit {nat.COUNT_LIMIT}"
        )
    symbols = array(3)
    sse = array(5)
    hits, trials = sse[0], sse[1]
    if not ((hits >= 0) & (hits <= trials) & (trials <= nat.SSE_LIMIT)).all():
        raise c.error(
            f"array 'sse': expected finite 0 <= hits <= trials <= {nat.SSE_LIMIT:g} in every cell"
        )
    core = _new_core(order, True)
    try:
        core.load(*(np.ascontiguousarray(a) for a in (orders, contexts, nsym, symbols, counts, sse)))
    except ValueError as exc:  # duplicate contexts or symbols: checked in C
        raise c.error(f"inconsistent data ({exc})") from None
    name = f"ngram:{c.path}" + (",adapt=1" if adapt else "")
    return NgramModel(order, adapt=adapt, core=core, name=name)


def _parse_bool(key: str, value: Any) -> bool:
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ModelSpecError(f"ngram {key}: expected 0 or 1, got {value!r}")


def load_ngram(rest: str, **options: Any) -> NgramModel:
    """Resolve the part of an ``ngram`` model spec after ``ngram:``.

    Accepted: ``""`` (adaptive, order 6), ``"order=N"`` (adaptive, order ``N`` in 0..8),
    ``"FILE"`` (fitted, frozen), ``"FILE,adapt=1"`` (fitted, keeps adapting). The keys
    ``order``, ``adapt`` and ``match`` (0/1: the match model) may also come as keyword
    ``options``; options whose value is ``None`` are ignored. Parsing is strict: an unknown,
    repeated or empty key, ``adapt`` without a file, or ``order``/``match`` with a file
    raises :class:`~infolens.models.base.ModelSpecError` naming the key.

    Parameters
    ----------
    rest : str
        The spec after ``ngram:``.
    **options
        ``order``, ``adapt``, ``match``.

    Returns
    -------
    NgramModel

    Examples
    --------
    >>> load_ngram("order=4").name, load_ngram("", match=0).name
    ('ngram:order=4', 'ngram:order=6,match=0')
    """
    allowed = ("order", "adapt", "match")
    settings: dict[str, Any] = {}
    path: str | None = None
    parts = rest.split(",") if rest else []
    for i, part in enumerate(parts):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not part.strip():
            raise ModelSpecError(
                f"ngram spec: expected a file or key=value items ({', '.join(allowed)}), got "
                f"an empty item in {'ngram:' + rest!r}"
            )
        if not eq:
            if i == 0 and part:
                path = part
                continue
            raise ModelSpecError(
                f"ngram spec: expected key=value items ({', '.join(allowed)}) after the "
                f"file, got {part!r} in {'ngram:' + rest!r}"
            )
        if key not in allowed:
            raise ModelSpecError(
                f"ngram spec: unknown key {key!r}; expected one of {', '.join(allowed)}"
            )
        if key in settings:
            raise ModelSpecError(
                f"ngram spec: expected each key once, got {key!r} twice in {'ngram:' + rest!r}"
            )
        if not value.strip():
            raise ModelSpecError(f"ngram spec: expected a value for {key!r}, got {part!r}")
        settings[key] = value.strip()
    for key, value in options.items():
        if value is None:
            continue
        if key not in allowed:
            raise ModelSpecError(
                f"ngram option: unknown option {key!r}; expected one of {', '.join(allowed)}"
            )
        settings[key] = value
    if path is not None:
        if "order" in settings:
            raise ModelSpecError(
                f"ngram spec: expected no order with a model file (it is stored in "
                f"{path!r}), got order={settings['order']}"
            )
        if "match" in settings:
            raise ModelSpecError(
                f"ngram spec: expected no match key with a model file, got "
                f"match={settings['match']}"
            )
        adapt = _parse_bool("adapt", settings["adapt"]) if "adapt" in settings else False
        return load_ngram_file(path, adapt=adapt)
    if "adapt" in settings:
        raise ModelSpecError(
            f"ngram spec: adapt applies only to a model file (ngram:FILE,adapt=1); without "
            f"one the model always adapts, got adapt={settings['adapt']}"
        )
    match = _parse_bool("match", settings["match"]) if "match" in settings else True
    try:
        order = int(settings.get("order", DEFAULT_ORDER))
    except ValueError:
        raise ModelSpecError(
            f"ngram order: expected an integer 0..{MAX_ORDER}, got {settings['order']!r}"
        ) from None
    name = f"ngram:order={order}" + ("" if match else ",match=0")
    return NgramModel(order, adapt=True, match=match, name=name)
