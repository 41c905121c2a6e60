"""Perplexity intervals (ScoreStats.compute): exp(mean NLL -/+ z se), never below 1.

The references here are computed independently from the per-token NLLs with the standard
library (``statistics``, ``math.fsum``) and plain numpy, not through ScoreStats' exact sums.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infolens.stream import ScoreStats

Z95 = statistics.NormalDist().inv_cdf(0.975)
KEYS = ("iid", "batch_means")


def _stats(docs: list[list[float]], block: int) -> ScoreStats:
    s = ScoreStats(block_tokens=block)
    for d in docs:
        s.update(np.asarray(d, dtype=np.float64), np.zeros(len(d)))
        s.end_document()
    return s


def _reference(docs: list[list[float]], block: int) -> dict[str, list[float] | None]:
    """The two intervals from scratch: statistics for the iid se, numpy blocks for batch means."""
    flat = [x for d in docs for x in d]
    n = len(flat)
    mu = math.fsum(flat) / n
    ref: dict[str, list[float] | None] = {"iid": None, "batch_means": None}

    def interval(se: float) -> list[float]:
        return [math.exp(max(0.0, mu - Z95 * se)), math.exp(mu + Z95 * se)]

    if n >= 2:
        # llama.cpp: sqrt(population variance / (N - 1))
        ref["iid"] = interval(math.sqrt(statistics.pvariance(flat) / (n - 1)))
    sums, sizes = [], []
    for d in docs:
        a = np.asarray(d, dtype=np.float64)
        for lo in range(0, a.size, block):  # blocks never span documents
            sums.append(math.fsum(a[lo : lo + block].tolist()))
            sizes.append(a[lo : lo + block].size)
    k = len(sums)
    if k >= 2:
        y, m = np.asarray(sums), np.asarray(sizes, dtype=np.float64)
        var = k / (k - 1) * float(np.sum((y - mu * m) ** 2)) / n**2  # ratio estimator
        ref["batch_means"] = interval(math.sqrt(var))
    return ref


surprisal = st.floats(min_value=0.0, max_value=40.0, allow_nan=False, allow_subnormal=False)
documents = st.lists(st.lists(surprisal, min_size=0, max_size=60), min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(documents, st.integers(1, 40))
def test_interval_properties(docs, block):
    r = _stats(docs, block).compute()
    if r["tokens"] == 0:
        assert r["perplexity_ci95_iid"] is None and r["perplexity_ci95_batch_means"] is None
        return
    ppl = r["perplexity"]
    mu = r["nll_nats"] / r["tokens"]
    for key in KEYS:
        ci = r[f"perplexity_ci95_{key}"]
        if ci is None:
            continue
        lo, hi = ci
        # a perplexity is at least 1; the interval holds the point estimate
        assert 1.0 <= lo <= ppl <= hi < math.inf
        # exp of an NLL interval symmetric around mu, except where its lower end is clamped at 0
        se = r[f"perplexity_stderr_{key}"] / ppl  # the delta-method stderr is PPL * se
        assert math.log(hi) - mu == pytest.approx(Z95 * se, rel=1e-9, abs=1e-12)
        if mu - Z95 * se > 0:
            assert mu - math.log(lo) == pytest.approx(Z95 * se, rel=1e-9, abs=1e-9)
        else:
            assert lo == 1.0


@settings(max_examples=200, deadline=None)
@given(documents, st.integers(1, 40))
def test_interval_matches_independent_reference(docs, block):
    r = _stats(docs, block).compute()
    if r["tokens"] == 0:
        return
    ref = _reference(docs, block)
    flat = [x for d in docs for x in d]
    n, mu = len(flat), r["nll_nats"] / r["tokens"]
    # ScoreStats sums s^2 rounded to float64 (relative error <= 2**-53 each), so its iid
    # variance may be off by 2**-53 * mean(s^2): that bounds its se error by sqrt of it / (N-1).
    # The batch-means sums are exact, so only the final roundings remain there.
    mean_sq = math.fsum(x * x for x in flat) / n
    se_err = {
        "iid": math.sqrt(2.0**-53 * mean_sq / max(n - 1, 1)),
        "batch_means": 0.0,
    }
    for key in KEYS:
        got, want = r[f"perplexity_ci95_{key}"], ref[key]
        assert (got is None) == (want is None), key
        if want is not None:
            tol = 1e-12 * (1 + mu) + 1.01 * Z95 * se_err[key]
            for g, w in zip(got, want):  # compared as NLL ends, in nats
                assert abs(math.log(g) - math.log(w)) <= tol, (key, got, want)


def test_reference_on_real_sized_inputs():
    rng = np.random.default_rng(7)
    docs = [rng.gamma(1.5, 1.6, size=int(k)).tolist() for k in rng.integers(1, 900, size=12)]
    r = _stats(docs, 64).compute()
    ref = _reference(docs, 64)
    for key in KEYS:
        assert r[f"perplexity_ci95_{key}"] == pytest.approx(ref[key], rel=1e-10)


@pytest.mark.parametrize("block", [1, 128])
def test_large_n_matches_delta_method(block):
    # n = 200k tokens, se ~ 0.004 nats: exp(mu -/+ z se) = PPL (1 -/+ z se) + O((z se)^2)
    rng = np.random.default_rng(11)
    s = rng.exponential(2.5, size=200_000)
    r = _stats([s.tolist()], block).compute()
    ppl = r["perplexity"]
    for key in KEYS:
        se = r[f"perplexity_stderr_{key}"] / ppl
        assert 0 < Z95 * se < 0.02
        delta = [ppl * (1 - Z95 * se), ppl * (1 + Z95 * se)]
        lo, hi = r[f"perplexity_ci95_{key}"]
        assert lo == pytest.approx(delta[0], rel=1e-3)
        assert hi == pytest.approx(delta[1], rel=1e-3)
        # ... and it is the log-scale interval, not the delta one: longer above than below
        assert hi - ppl > ppl - lo


def test_short_document_stays_positive():
    # nine tokens, mostly near-certain with two surprises: the delta-method interval
    # PPL (1 -/+ z se) goes below 0 here; the log-scale one is clamped at 1
    s = [0.02, 0.01, 0.03, 4.0, 0.02, 0.01, 3.5, 0.02, 0.01]
    r = _stats([s], 128).compute()
    ppl, se = r["perplexity"], r["perplexity_stderr_iid"] / r["perplexity"]
    assert ppl * (1 - Z95 * se) < 0  # what the old interval would have said
    mu = statistics.fmean(s)
    se_ref = statistics.pstdev(s) / math.sqrt(len(s) - 1)
    assert r["perplexity_ci95_iid"] == pytest.approx([1.0, math.exp(mu + Z95 * se_ref)], rel=1e-12)
    assert r["perplexity_stderr_iid"] == pytest.approx(math.exp(mu) * se_ref, rel=1e-12)
    assert r["perplexity_ci95_batch_means"] is None  # one block: undefined


def test_constant_surprisal_gives_a_point():
    r = _stats([[1.25] * 50, [1.25] * 30], 16).compute()
    for key in KEYS:
        lo, hi = r[f"perplexity_ci95_{key}"]
        assert lo == hi == r["perplexity"] == pytest.approx(math.exp(1.25), rel=1e-15)
