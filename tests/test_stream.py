"""Streaming accumulators (infolens.stream): exact sums, exact merges, JSON, compute()."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens.stream import LN2, ExactSum, ScoreStats, exact_scaled_sum

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, max_size=50))
def test_exact_sum_is_fsum(xs):
    units = exact_scaled_sum(xs)
    # the exact sum rounded once: math.fsum is correctly rounded too
    try:
        expected = math.fsum(xs)
    except OverflowError:
        return
    if math.isfinite(expected):
        assert units / 2**1126 == expected


def test_exact_sum_extremes():
    tiny = 5e-324  # smallest subnormal
    assert exact_scaled_sum([tiny]) == 2**52  # 2**-1074 in units of 2**-1126
    xs = [1e308, 1e-308, -1e308, tiny, 3.0]
    assert exact_scaled_sum(xs) / 2**1126 == math.fsum(xs)
    big = np.full(5000, 0.1)  # more than one int64 group
    assert exact_scaled_sum(big) / 2**1126 == math.fsum(big.tolist())


def _docs(seed, n_docs=7):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_docs):
        k = int(rng.integers(0, 400))
        s = rng.exponential(2.0, size=k) * rng.uniform(0.5, 3)
        h = rng.exponential(2.0, size=k)
        out.append((s, h, int(rng.integers(k, 4 * k + 1)), int(rng.integers(0, k + 1))))
    return out


def _run(docs, block=16, splits=None):
    st_ = ScoreStats(block_tokens=block)
    rng = np.random.default_rng(1 if splits is None else splits)
    for s, h, nb, nw in docs:
        # feed each document in random pieces: the state must not depend on chunking
        cuts = np.sort(rng.integers(0, len(s) + 1, size=3))
        for lo, hi in zip([0, *cuts], [*cuts, len(s)]):
            st_.update(s[lo:hi], h[lo:hi])
        st_.add_text(nb, nb, nw)
        st_.end_document()
    return st_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_equals_one_pass_bit_for_bit(seed):
    docs = _docs(seed)
    one = _run(docs)
    for n_shards in (2, 3, 7):
        shards = [_run(docs[i::n_shards], splits=i + 10) for i in range(n_shards)]
        merged = ScoreStats(block_tokens=16)
        for sh in reversed(shards):  # any order
            merged.merge(sh)
        assert merged.same_state(one)
        assert merged.compute() == one.compute()  # bit-for-bit, not approximately


def test_json_round_trip():
    one = _run(_docs(3))
    text = json.dumps(one.to_json())
    back = ScoreStats.from_json(json.loads(text))
    assert back.same_state(one)
    assert back.compute() == one.compute()


def test_compute_matches_naive():
    docs = _docs(4)
    st_ = _run(docs)
    s = np.concatenate([d[0] for d in docs])
    h = np.concatenate([d[1] for d in docs])
    n = s.size
    nb = sum(d[2] for d in docs)
    nw = sum(d[3] for d in docs)
    r = st_.compute()
    nll = math.fsum(s.tolist())
    assert r["tokens"] == n
    assert r["nll_nats"] == nll
    assert r["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-12)
    assert r["bits_per_token"] == pytest.approx(nll / n / LN2, rel=1e-12)
    assert r["bits_per_byte"] == pytest.approx(nll / (LN2 * nb), rel=1e-12)
    assert r["word_perplexity"] == pytest.approx(math.exp(nll / nw), rel=1e-12)
    assert r["mean_entropy_bits"] == pytest.approx(h.mean() / LN2, rel=1e-12)
    assert r["calibration_gap_bits"] == pytest.approx((s.mean() - h.mean()) / LN2, rel=1e-9)
    # llama.cpp: PPL * sqrt(var / (N - 1)), var the population variance
    se = math.sqrt(s.var() / (n - 1))
    assert r["perplexity_stderr_iid"] == pytest.approx(r["perplexity"] * se, rel=1e-9)
    lo, hi = r["perplexity_ci95_iid"]
    assert lo < r["perplexity"] < hi


def test_batch_means_equal_blocks():
    # one document of K equal blocks: the usual batch-means variance of the mean
    rng = np.random.default_rng(5)
    b, k = 10, 30
    s = rng.exponential(1.0, size=b * k)
    st_ = ScoreStats(block_tokens=b)
    st_.update(s, s)
    st_.end_document()
    means = s.reshape(k, b).mean(axis=1)
    se = math.sqrt(means.var(ddof=1) / k)
    r = st_.compute()
    assert r["batch_means_blocks"] == k
    assert r["perplexity_stderr_batch_means"] == pytest.approx(r["perplexity"] * se, rel=1e-9)


def test_blocks_do_not_span_documents():
    st_ = ScoreStats(block_tokens=4)
    for k in (3, 6):
        st_.update(np.ones(k), np.ones(k))
        st_.end_document()
    assert st_.blocks == 3  # [3], [4, 2]
    assert st_.block_n2 == 9 + 16 + 4


def test_empty_and_nonfinite():
    st_ = ScoreStats()
    st_.add_text(0, 0, 0)
    st_.end_document()
    r = st_.compute()
    assert r["tokens"] == 0 and r["perplexity"] is None and r["nll_nats"] == 0.0
    assert st_.empty_documents == 1
    st_.update([1.0, math.inf], [0.5, 0.5])
    st_.end_document()
    r = st_.compute()
    assert r["perplexity"] == math.inf and r["nll_nats"] == math.inf
    assert r["perplexity_stderr_batch_means"] is None


def test_merge_needs_closed_documents():
    a, b = ScoreStats(), ScoreStats()
    a.update([1.0], [1.0])
    with pytest.raises(ValueError, match="still open"):
        a.merge(b)
    with pytest.raises(ValueError, match="block_tokens"):
        ScoreStats(block_tokens=3).merge(ScoreStats(block_tokens=4))


def test_exact_sum_nonfinite_counts():
    e = ExactSum()
    e.add([1.0, math.nan])
    assert math.isnan(e.value)
    e2 = ExactSum()
    e2.add([1.0, -math.inf])
    assert e2.value == -math.inf
