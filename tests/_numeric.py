"""Small numeric references shared by the measure tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax along the last axis (max subtracted first; -inf entries give 0)."""
    m = x.max(-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(-1, keepdims=True)  # type: ignore[no-any-return]


@contextlib.contextmanager
def kernel_path(which: str) -> Iterator[list[int]]:
    """Run the measures on one kernel and check that it is the one that ran.

    ``"native"``: the compiled kernel must be built (else the test is skipped) and every
    :func:`infolens._kernels.fused_rows` call inside must reach it; ``"array"``: numpy
    inputs are forced onto the chunked array code. Yields the list of native calls (one
    entry per call), so a test can also assert that an input (a tensor that requires
    grad) took the array path on its own: ``kernel_path("any")`` counts without forcing.
    """
    import pytest

    from infolens import _kernels

    real = _kernels._native
    if which == "native" and real is None:
        pytest.skip("the compiled kernel is not built")
    calls: list[int] = []

    class Counting:
        @staticmethod
        def fused_rows(*args: object) -> object:
            calls.append(1)
            assert real is not None
            return real.fused_rows(*args)

    _kernels._native = None if which == "array" or real is None else Counting  # type: ignore[assignment]
    try:
        yield calls
    finally:
        _kernels._native = real
    if which == "native":
        assert calls, "the compiled kernel did not run"
