"""Small numeric references shared by the measure tests."""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax along the last axis (max subtracted first; -inf entries give 0)."""
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)  # type: ignore[no-any-return]
