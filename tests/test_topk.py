"""Top-k ids with ties broken toward the lower index, the same whichever path computes them
(compare's top-5/10 overlap depends on it: a byte model's rows tie often)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from infolens.topk import topk_ids


def reference(x: np.ndarray, k: int) -> np.ndarray:
    return np.array([sorted(range(x.shape[1]), key=lambda i: (-r[i], i))[:k] for r in x]).reshape(len(x), -1)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 40)),
              elements=st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0])),
       st.integers(0, 12))  # fmt: skip
def test_same_ids_on_every_path(x: np.ndarray, k: int) -> None:
    torch = pytest.importorskip("torch")
    want = reference(x, min(k, x.shape[1]))
    assert np.array_equal(topk_ids(x, k), want)  # numpy through torch.topk (torch imported)
    assert np.array_equal(topk_ids(torch.from_numpy(x.astype(np.float32)), k), want)
    saved = sys.modules.pop("torch")
    try:
        assert np.array_equal(topk_ids(x, k), want)  # numpy's argpartition
    finally:
        sys.modules["torch"] = saved
