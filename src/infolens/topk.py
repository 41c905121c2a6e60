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

    The ``k``-th largest value ``t`` of a row is found with ``torch.topk`` (torch input,
    or numpy when torch is already imported; a zero-copy view) or ``argpartition``; then
    the entries above ``t`` and the first entries equal to ``t`` make the ``k``, ordered by
    value with ties by index. Memory: a boolean mask of the rows (done a few rows at a time
    for numpy).

    Examples
    --------
    >>> topk_ids(np.array([[0.1, 3.0, 2.0, -1.0]]), 2).tolist()
    [[1, 2]]
    >>> topk_ids(np.array([[1.0, 5.0, 1.0, 1.0, 1.0]]), 3).tolist()  # ties: lowest index
    [[1, 0, 2]]
    """
    k = min(k, x.shape[1])
    torch = sys.modules.get("torch")
    if B.is_torch(x):
        return _topk_torch(x, k)
    if (
        torch is not None
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and x.flags.writeable
    ):
        return _topk_torch(torch.from_numpy(x), k)
    n, v = x.shape
    step = max(1, (16 * 2**20) // (8 * max(1, v)))
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, step) if k else ():
        rows = x[lo : lo + step]
        t = np.partition(rows, v - k, axis=1)[:, v - k : v - k + 1]  # the k-th largest
        out[lo : lo + step] = _select(rows, t, k, np)
    return out


def _topk_torch(x: Any, k: int) -> np.ndarray:
    if k == 0:
        return np.zeros((x.shape[0], 0), dtype=np.int64)
    t = x.topk(k, dim=1).values[:, -1:]
    return _select(x, t, k, None)


def _select(rows: Any, t: Any, k: int, xp: Any) -> np.ndarray:
    """The ``k`` ids per row: those above ``t``, then the first ties at ``t``; ordered by
    value (descending), ties by id. ``xp``: numpy, or ``None`` for torch tensors."""
    if k == 0:
        return np.zeros((rows.shape[0], 0), dtype=np.int64)
    above = rows > t
    tie = rows == t
    need = k - above.sum(1, keepdims=True)
    keep = above | (tie & (tie.cumsum(1) <= need))
    if xp is None:
        import torch

        idx = keep.nonzero()[:, 1].reshape(rows.shape[0], k)  # row-major: ids ascending
        vals = torch.gather(rows, 1, idx)
        order = torch.sort(-vals, dim=1, stable=True).indices
        return torch.gather(idx, 1, order).cpu().numpy()
    ids: np.ndarray = np.nonzero(keep)[1].reshape(rows.shape[0], k)
    v: np.ndarray = np.take_along_axis(rows, ids, axis=1)
    o: np.ndarray = np.argsort(-v, axis=1, kind="stable")
    return np.take_along_axis(ids, o, axis=1)


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
