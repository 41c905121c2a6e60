"""Top-k helpers shared by ``compare`` (exact comparisons) and ``basefile`` (saved ones)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from infolens import _backend as B

__all__ = ["overlap", "topk_ids"]


def topk_ids(x: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row, largest first (so ``[:, :j]`` is
    the top ``j``; ties in any order).

    numpy input uses ``torch.topk`` on a zero-copy view when torch is already imported
    (``[n, k]`` extra memory; torch is never imported for numpy input); otherwise
    ``argpartition`` a few rows at a time, since it returns ``[rows, V]`` int64 indices.

    Examples
    --------
    >>> topk_ids(np.array([[0.1, 3.0, 2.0, -1.0]]), 2).tolist()
    [[1, 2]]
    """
    k = min(k, x.shape[1])
    if B.is_torch(x):
        return x.topk(k, dim=1).indices.cpu().numpy()
    torch = sys.modules.get("torch")
    if (
        torch is not None
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and x.flags.writeable
    ):
        return torch.from_numpy(x).topk(k, dim=1).indices.numpy()
    n, v = x.shape
    step = max(1, (16 * 2**20) // (8 * max(1, v)))
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, step):
        rows = x[lo : lo + step]
        idx = np.argpartition(rows, -k, axis=1)[:, -k:]
        vals = np.take_along_axis(rows, idx, axis=1)
        out[lo : lo + step] = np.take_along_axis(idx, np.argsort(-vals, axis=1), axis=1)
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
