"""From rows of logits to token records: top-k alternatives, ranks, token texts.

What :mod:`infolens.tokens` builds its records and columns from (it re-exports the public
names): the ``k`` most likely alternatives of each row and their probabilities, the rank of
the token that came, the text of each token, and the records of a
:class:`infolens.score.RowBatch` as dicts or (for Parquet) as columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from infolens._backend import is_torch

__all__ = [
    "records_from_rows",
    "row_texts",
    "token_decoder",
    "token_ranks",
    "top_alternatives",
    "top_ids_probs",
]

_LN2 = math.log(2.0)


def top_ids_probs(logits: Any, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The ids and probabilities behind :func:`top_alternatives`, as arrays.

    Parameters
    ----------
    logits : array or tensor, shape [rows, V]
        As for :func:`top_alternatives`.
    k : int
        Alternatives per row (at most ``V``).

    Returns
    -------
    ids : numpy.ndarray, shape [rows, min(k, V)]
        ``int64`` ids, most likely first, ties by increasing id.
    probs : numpy.ndarray, shape [rows, min(k, V)]
        ``float64`` probabilities.

    Examples
    --------
    >>> ids, p = top_ids_probs(np.log([[0.1, 0.6, 0.3]]), k=2)
    >>> ids.tolist(), p.round(3).tolist()
    ([[1, 2]], [[0.6, 0.3]])
    """
    rows = int(logits.shape[0]) if getattr(logits, "ndim", 0) == 2 else 0
    if is_torch(logits):
        import torch

        xt = logits.detach()
        if xt.ndim != 2:
            raise ValueError(f"logits: expected shape [rows, V], got {tuple(xt.shape)}")
        k = min(k, xt.shape[1])
        if k == 0 or rows == 0:
            return _no_alternatives(rows)
        xt = xt if xt.dtype == torch.float64 else xt.float()
        lse = torch.logsumexp(xt, dim=1, keepdim=True).cpu().numpy()
        vals_t, idx_t = torch.topk(xt, k, dim=1)
        cand = idx_t.cpu().numpy()
        vals = vals_t.cpu().numpy()
        # topk picks arbitrarily among values tied with the k-th: redo those rows by id
        tied = ((xt >= vals_t[:, -1:]).sum(dim=1) > k).nonzero().flatten()
        if tied.numel():
            sub = xt[tied].cpu().numpy()
            r = tied.cpu().numpy()
            c = _top_candidates(sub, k)
            cand[r] = c
            vals[r] = np.take_along_axis(sub, c, axis=1)
    else:
        a = np.asarray(logits)
        if a.ndim != 2:
            raise ValueError(f"logits: expected shape [rows, V], got {a.shape}")
        a = a.astype(np.float64, copy=False) if a.dtype != np.float32 else a
        k = min(k, a.shape[1])
        if k == 0 or rows == 0:
            return _no_alternatives(rows)
        m = np.max(a, axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lse = m + np.log(np.sum(np.exp(a - m), axis=1, keepdims=True))
        cand = _top_candidates(a, k)
        vals = np.take_along_axis(a, cand, axis=1)
    order = np.lexsort((cand, -vals), axis=1)
    ids = np.take_along_axis(cand, order, axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        probs = np.exp(np.take_along_axis(vals, order, axis=1) - lse).astype(np.float64)
    return ids, probs


def top_alternatives(
    logits: Any,
    k: int = 5,
    decode: Callable[[int], str] | None = None,
) -> list[list[tuple[Any, float]]]:
    """The ``k`` most likely tokens of each row of a chunk of logits, with probabilities.

    Uses ``topk`` (torch, on the tensor's device) or ``argpartition`` (numpy), so the cost
    is linear in the vocabulary; probabilities are ``exp(logit - logsumexp(row))``, so rows
    may be unnormalised logits or log-probabilities, and ``-inf`` entries have probability 0.
    Precision: float64 input is computed in float64 and float32 in float32; 16-bit floats
    in float32 (torch) or float64 (numpy).

    Parameters
    ----------
    logits : array or tensor, shape [rows, V]
        Next-token logits (or log-probabilities), numpy or torch, any float dtype.
    k : int
        How many alternatives per row (at most ``V``).
    decode : callable, optional
        Maps a token id to its text; without it, entries carry the integer id.

    Returns
    -------
    list of list of (id or str, float)
        Per row, ``k`` pairs sorted by decreasing probability, equal probabilities by
        increasing id (also at the ``k``-th place: the smallest tied ids are kept).

    Examples
    --------
    >>> import numpy as np
    >>> top_alternatives(np.log([[0.1, 0.6, 0.3]]), k=2)
    [[(1, 0.6...), (2, 0.3...)]]
    >>> top_alternatives(np.zeros((1, 4)), k=2)  # ties: smallest ids first
    [[(0, 0.25), (1, 0.25)]]
    """
    ids, probs = top_ids_probs(logits, k)
    out: list[list[tuple[Any, float]]] = []
    for row_ids, row_p in zip(ids.tolist(), probs.tolist()):
        if decode is None:
            out.append([(int(i), float(p)) for i, p in zip(row_ids, row_p)])
        else:
            out.append([(decode(int(i)), float(p)) for i, p in zip(row_ids, row_p)])
    return out


def _no_alternatives(rows: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((rows, 0), dtype=np.int64), np.zeros((rows, 0), dtype=np.float64)


def _top_candidates(a: np.ndarray, k: int) -> np.ndarray:
    """Ids of the ``k`` largest entries of each row, ties broken by the smaller id (unordered)."""
    rows, v = a.shape
    if k >= v:
        return np.broadcast_to(np.arange(v), a.shape)
    part = np.argpartition(-a, k - 1, axis=1)[:, :k]
    thr = np.min(np.take_along_axis(a, part, axis=1), axis=1, keepdims=True)
    above = a > thr
    tied = a == thr
    need = k - above.sum(axis=1, keepdims=True)
    sel = above | (tied & (np.cumsum(tied, axis=1) <= need))
    counts = sel.sum(axis=1)
    if not np.all(counts == k):  # NaN rows: keep argpartition's choice
        return part
    return np.nonzero(sel)[1].reshape(rows, k)


def token_ranks(logits: Any, targets: Any) -> np.ndarray:
    """Rank of each row's target: 1 + the number of entries with a strictly higher logit.

    Parameters
    ----------
    logits : array or tensor, shape [rows, V]
        Logits or log-probabilities (numpy or torch).
    targets : array or tensor, shape [rows]
        The token ids that came.

    Returns
    -------
    numpy.ndarray
        ``int64`` ranks, shape ``[rows]``; 1 means the model's top choice.

    Examples
    --------
    >>> import numpy as np
    >>> token_ranks(np.log([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]), np.array([2, 0])).tolist()
    [2, 1]
    """
    if is_torch(logits):
        import torch

        xt = logits.detach()
        tt = torch.as_tensor(targets, device=xt.device).long().view(-1, 1)
        chosen_t = torch.gather(xt, 1, tt)
        return (xt > chosen_t).sum(dim=1).cpu().numpy().astype(np.int64) + 1
    a = np.asarray(logits)
    t = np.asarray(targets).astype(np.int64).reshape(-1, 1)
    chosen = np.take_along_axis(a, t, axis=1)
    return np.asarray((a > chosen).sum(axis=1), dtype=np.int64) + 1


def token_decoder(model: Any) -> Callable[[int], str]:
    """The function that turns a model's token ids into text, cached per id.

    Uses the adapter's optional ``decode_token(id)`` method (``ngram``: the byte, escaped
    when not printable; ``hf``: ``tokenizer.decode([id])``); adapters without it give
    ``str(id)``.

    Parameters
    ----------
    model : LanguageModel
        Any adapter.

    Returns
    -------
    callable
        ``int -> str``.

    Examples
    --------
    >>> token_decoder(object())(42)
    '42'
    """
    fn = getattr(model, "decode_token", None)
    if not callable(fn):
        return str

    @lru_cache(maxsize=65536)
    def decode(token_id: int) -> str:
        try:
            return str(fn(int(token_id)))
        except Exception:  # a tokeniser that cannot decode an id alone
            return str(token_id)

    return decode


def row_texts(
    offsets: Any, token_ids: Any, data: bytes | None, decode: Callable[[int], str] = str
) -> tuple[list[str], list[bool]]:
    """Each row's token text and whether its byte span is known (as in the records).

    Parameters
    ----------
    offsets : array, shape [n, 2]
        Byte spans ``[lo, hi)``; ``lo < 0`` or ``hi < lo`` means unknown.
    token_ids : array, shape [n]
        The tokens' ids.
    data : bytes or None
        The document's bytes: a known span's text is ``data[lo:hi]`` decoded with
        ``errors="replace"``; otherwise (or without ``data``) the text is ``decode(id)``.
    decode : callable
        Token id to text.

    Returns
    -------
    texts : list of str
    known : list of bool

    Examples
    --------
    >>> row_texts(np.array([[0, 1], [-1, -1]]), np.array([7, 8]), b"ab", lambda i: f"<{i}>")
    (['a', '<8>'], [True, False])
    """
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2).tolist()
    ids = np.asarray(token_ids).tolist()
    texts: list[str] = []
    known: list[bool] = []
    for (lo, hi), i in zip(offs, ids):
        ok = 0 <= lo <= hi
        known.append(ok)
        if ok and data is not None:
            texts.append(data[lo:hi].decode("utf-8", errors="replace"))
        else:
            texts.append(decode(int(i)))
    return texts, known


def records_from_rows(
    batch: Any,
    data: bytes | None,
    decode: Callable[[int], str] = str,
    *,
    k: int = 5,
    start: int = 0,
    stop: int | None = None,
) -> list[dict[str, Any]]:
    """The token records of one :class:`infolens.score.RowBatch`, as dicts.

    Parameters
    ----------
    batch : RowBatch
        Consecutive predictions of one document, scored with ``ranks=True`` (ranks are
        computed from its logits otherwise).
    data : bytes or None
        The document's bytes (UTF-8, or raw bytes for byte-level models): a token's text is
        ``data[lo:hi]`` decoded with ``errors="replace"``. Without it, or where a span is
        unknown (``-1``), the token's text is ``decode(id)``.
    decode : callable
        Token id to text, for the top alternatives (see :func:`token_decoder`).
    k : int
        Number of alternatives per token.
    start, stop : int
        Only the records of rows ``start:stop`` of the batch (all by default); the cost is
        that of those rows only.

    Returns
    -------
    list of dict
        Keys in :data:`TOKEN_FIELDS` order; bits are nats / ln 2; ``top`` is a list of
        ``(text, probability)`` pairs.

    Examples
    --------
    >>> import types
    >>> logits = np.log([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    >>> batch = types.SimpleNamespace(
    ...     name="d", positions=np.array([0, 1]), token_ids=np.array([0, 2]),
    ...     offsets=np.array([[0, 1], [1, 2]]), surprisal_nats=-np.log([0.5, 0.3]),
    ...     entropy_nats=np.array([1.0, 0.9]), rank=None, context=np.array([0, 1]),
    ...     logits=logits)
    >>> recs = records_from_rows(batch, b"ab", decode=lambda i: "abc"[i], k=2)
    >>> [(r["token"], r["bytes"], r["rank"], [t for t, _ in r["top"]]) for r in recs]
    [('a', [0, 1], 1, ['a', 'b']), ('b', [1, 2], 2, ['b', 'c'])]
    >>> [r["position"] for r in records_from_rows(batch, b"ab", start=1)]
    [1]
    """
    total = int(batch.positions.shape[0])
    stop = total if stop is None else min(int(stop), total)
    start = max(0, int(start))
    n = stop - start
    if n <= 0:
        return []
    sl = slice(start, stop)
    s_bits = (np.asarray(batch.surprisal_nats[sl], dtype=np.float64) / _LN2).tolist()
    h_bits = (np.asarray(batch.entropy_nats[sl], dtype=np.float64) / _LN2).tolist()
    logits = batch.logits[sl]
    ranks = batch.rank
    ranks = token_ranks(logits, batch.token_ids[sl]) if ranks is None else ranks[sl]
    rank_l = np.asarray(ranks).astype(np.int64).tolist()
    ctx = batch.context
    ctx_l = [0] * n if ctx is None else np.asarray(ctx[sl]).astype(np.int64).tolist()
    tops = top_alternatives(logits, k=k, decode=decode) if k > 0 else [[] for _ in range(n)]
    offs = np.asarray(batch.offsets[sl], dtype=np.int64).reshape(-1, 2)
    texts, known = row_texts(offs, batch.token_ids[sl], data, decode)
    offs_l = offs.tolist()
    pos_l = np.asarray(batch.positions[sl]).tolist()
    out: list[dict[str, Any]] = []
    for r in range(n):
        out.append({
            "doc": batch.name,
            "position": int(pos_l[r]),
            "token": texts[r],
            "bytes": offs_l[r] if known[r] else None,
            "surprisal_bits": s_bits[r],
            "entropy_bits": h_bits[r],
            "rank": int(rank_l[r]),
            "context": int(ctx_l[r]),
            "top": tops[r],
        })  # fmt: skip
    return out


def _row_columns(
    batch: Any, data: bytes | None, decode: Callable[[int], str], k: int
) -> dict[str, Any]:
    """The columns of :class:`infolens._tokens_parquet.ParquetSink` for one row batch: the
    same values as :func:`records_from_rows`, computed per column."""
    import pyarrow as pa

    n = int(batch.positions.shape[0])
    offs = np.asarray(batch.offsets, dtype=np.int64).reshape(-1, 2)
    texts, known = row_texts(offs, batch.token_ids, data, decode)
    ok = np.asarray(known, dtype=bool)
    ranks = batch.rank if batch.rank is not None else token_ranks(batch.logits, batch.token_ids)
    ctx = np.zeros(n, dtype=np.int64) if batch.context is None else np.asarray(batch.context)
    ids, probs = top_ids_probs(batch.logits, k) if k > 0 else _no_alternatives(n)
    uniq, inverse = np.unique(ids, return_inverse=True)
    names = pa.array([decode(int(u)) for u in uniq.tolist()], type=pa.string())
    top_tokens = pa.DictionaryArray.from_arrays(
        pa.array(inverse.ravel().astype(np.int32)), names
    ).dictionary_decode()
    return {
        "doc": [batch.name] * n,
        "position": np.asarray(batch.positions),
        "token": texts,
        "lo": np.where(ok, offs[:, 0], -1),
        "hi": np.where(ok, offs[:, 1], -1),
        "surprisal_bits": np.asarray(batch.surprisal_nats, dtype=np.float64) / _LN2,
        "entropy_bits": np.asarray(batch.entropy_nats, dtype=np.float64) / _LN2,
        "rank": np.asarray(ranks),
        "context": ctx,
        "top_tokens": top_tokens,
        "top_p": probs.ravel(),
        "top_k": np.full(n, ids.shape[1], dtype=np.int64),
    }
