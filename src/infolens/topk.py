"""Top-k helpers shared by ``compare`` (exact comparisons) and ``basefile`` (saved ones)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from infolens import _backend as B

__all__ = ["overlap", "topk_ids"]


def topk_ids(x: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row, largest first (so ``[:, :j]`` is
    the top ``j``), **ties broken toward the lower index**: the result is a function of
    the row's values alone, whatever library, device or thread count computes it (a
    byte model's rows tie often: every unseen byte has the same probability).

    The ``k + 1`` largest of each row come from ``torch.topk`` (torch input, or numpy when
    torch is already imported; a zero-copy view) or ``argpartition``. Where the ``k``-th
    and ``(k + 1)``-th values differ, those ``k`` are the set, ordered by value and then by
    index; only a row with a tie across that boundary takes the slow path: the entries
    above the ``k``-th value and the first entries equal to it (a boolean mask of that row).

    Examples
    --------
    >>> topk_ids(np.array([[0.1, 3.0, 2.0, -1.0]]), 2).tolist()
    [[1, 2]]
    >>> topk_ids(np.array([[1.0, 5.0, 1.0, 1.0, 1.0]]), 3).tolist()  # ties: lowest index
    [[1, 0, 2]]
    """
    k = min(k, x.shape[1])
    n, v = x.shape
    if k == 0:
        return np.zeros((n, 0), dtype=np.int64)
    kk = min(k + 1, v)
    torch = sys.modules.get("torch")
    if B.is_torch(x) or (
        torch is not None
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and x.flags.writeable
    ):
        t = x if B.is_torch(x) else sys.modules["torch"].from_numpy(x)
        vals, idx = t.topk(kk, dim=1)
        return _finish(vals.cpu().numpy(), idx.cpu().numpy(), k, lambda r: t[r].cpu().numpy())
    step = max(1, (16 * 2**20) // (8 * max(1, v)))
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, step):
        rows = x[lo : lo + step]
        idx = np.argpartition(rows, v - kk, axis=1)[:, v - kk :]
        out[lo : lo + step] = _finish(np.take_along_axis(rows, idx, axis=1), idx, k,
                                      lambda r, rows=rows: rows[r])  # fmt: skip
    return out


def _finish(vals: np.ndarray, idx: np.ndarray, k: int, row: Any) -> np.ndarray:
    """The top ``k`` from the ``k + 1`` largest candidates (any order) of each row, by
    value then index; rows with a tie across the boundary are redone from ``row(r)``."""
    # order the candidates by (-value, index)
    order = np.lexsort((idx, -vals), axis=1) if vals.ndim == 2 and vals.shape[0] else None
    if order is None:
        return idx[:, :k]
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    out = idx[:, :k].copy()
    if vals.shape[1] > k:
        for r in np.flatnonzero(vals[:, k - 1] == vals[:, k]):
            full = np.asarray(row(int(r)))
            t = vals[r, k - 1]
            above = np.flatnonzero(full > t)
            ties = np.flatnonzero(full == t)[: k - above.size]
            ids = np.concatenate([above, ties])
            out[r] = ids[np.lexsort((ids, -full[ids]))]
    return out


def overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of shared ids between the rows of two ``[n, k]`` id arrays.

    Examples
    --------
    >>> overlap(np.array([[1, 2, 3, 4]]), np.array([[4, 3, 9, 8]])).tolist()
    [0.5]
    """
    k = a.shape[1]
    if k == 0:
        return np.zeros(a.shape[0])
    eq = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return eq.sum(axis=1) / k
