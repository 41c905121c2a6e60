"""Property-based tests of the measures (hypothesis): the identities and inequalities that
hold for every distribution. Contract and accuracy tests are in ``test_measures.py``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from _numeric import softmax as _softmax
from infolens import (
    cross_entropy,
    entropy,
    js_divergence,
    kl_divergence,
    renyi_divergence,
    renyi_entropy,
    surprisal,
    total_variation,
)

NINF = -math.inf
LN2 = math.log(2.0)
SETTINGS = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- strategies


@st.composite
def logit_pairs(
    draw: st.DrawFn, max_v: int = 12, scale: float = 30.0, grid: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Two ``[rows, V]`` float64 logit arrays with some ``-inf`` entries (never a full row).

    ``grid=True`` draws multiples of 2^-20, so that adding an integer is exact.
    """
    rows = draw(st.integers(1, 3))
    v = draw(st.integers(1, max_v))
    if grid:
        elems: Any = st.integers(-int(scale) * 2**20, int(scale) * 2**20).map(lambda k: k / 2**20)
    else:
        elems = st.floats(-scale, scale, allow_nan=False, allow_infinity=False)
    a = draw(arrays(np.float64, (rows, v), elements=elems))
    b = draw(arrays(np.float64, (rows, v), elements=elems))
    for x in (a, b):
        zero = draw(arrays(np.bool_, (rows, v)))
        zero[:, draw(st.integers(0, v - 1))] = False  # at least one finite entry
        x[zero] = NINF
    return a, b


def _close(x: Any, y: Any, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    np.testing.assert_array_equal(np.isposinf(x), np.isposinf(y))
    fin = np.isfinite(y)
    np.testing.assert_allclose(x[fin], y[fin], rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- non-negativity


@SETTINGS
@given(logit_pairs())
def test_non_negative(ab: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = ab
    for name, val in [
        ("entropy", entropy(logits=a)),
        ("kl", kl_divergence(p_logits=a, q_logits=b)),
        ("kl_reverse", kl_divergence(p_logits=b, q_logits=a)),
        ("js", js_divergence(p_logits=a, q_logits=b)),
        ("cross_entropy", cross_entropy(p_logits=a, q_logits=b)),
        ("renyi_entropy_0.5", renyi_entropy(logits=a, alpha=0.5)),
        ("renyi_entropy_2", renyi_entropy(logits=a, alpha=2.0)),
        ("renyi_entropy_inf", renyi_entropy(logits=a, alpha=math.inf)),
        ("renyi_div_0.5", renyi_divergence(p_logits=a, q_logits=b, alpha=0.5)),
        ("renyi_div_2", renyi_divergence(p_logits=a, q_logits=b, alpha=2.0)),
        ("tv", total_variation(p_logits=a, q_logits=b)),
    ]:
        assert not np.isnan(val).any(), name
        assert (val >= 0).all(), (name, val)


# --------------------------------------------------------------------------- identities


@SETTINGS
@given(logit_pairs())
def test_cross_entropy_is_entropy_plus_kl(ab: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = ab
    h = entropy(logits=a)
    ce = cross_entropy(p_logits=a, q_logits=b)
    kl = kl_divergence(p_logits=a, q_logits=b)
    # the three are each accurate to ~eps * (magnitude of the logits' terms)
    _close(ce, h + kl, rtol=1e-12, atol=1e-11)
    # and in bits
    _close(cross_entropy(p_logits=a, q_logits=b, base=2), ce / LN2, rtol=1e-14, atol=0)


@SETTINGS
@given(logit_pairs())
def test_js_symmetric_and_bounded(ab: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = ab
    js = js_divergence(p_logits=a, q_logits=b)
    _close(js, js_divergence(p_logits=b, q_logits=a), rtol=1e-14, atol=1e-16)
    assert np.isfinite(js).all()
    # <= ln 2, up to the rounding of ln 2 itself
    assert (js <= LN2 * (1 + 4e-16)).all(), js
    assert (js_divergence(p_logits=a, q_logits=b, base=2) <= 1 + 4e-16).all()


@SETTINGS
@given(logit_pairs())
def test_js_of_a_distribution_with_itself_is_exactly_zero(
    ab: tuple[np.ndarray, np.ndarray],
) -> None:
    a, _ = ab
    assert (js_divergence(p_logits=a, q_logits=a.copy()) == 0.0).all()
    assert (
        js_divergence(p_logits=a.astype(np.float32), q_logits=a.astype(np.float32)) == 0.0
    ).all()
    p = _softmax(a)
    assert (js_divergence(p, p.copy()) == 0.0).all()


@SETTINGS
@given(logit_pairs(), st.randoms(use_true_random=False))
def test_permutation_invariance(ab: tuple[np.ndarray, np.ndarray], rnd: Any) -> None:
    a, b = ab
    perm = list(range(a.shape[1]))
    rnd.shuffle(perm)
    ap, bp = a[:, perm], b[:, perm]
    for fn in (kl_divergence, js_divergence, cross_entropy, total_variation):
        _close(fn(p_logits=ap, q_logits=bp), fn(p_logits=a, q_logits=b), atol=1e-11)
    _close(entropy(logits=ap), entropy(logits=a), atol=1e-11)
    _close(renyi_entropy(logits=ap, alpha=2.0), renyi_entropy(logits=a, alpha=2.0), atol=1e-11)
    _close(
        renyi_divergence(p_logits=ap, q_logits=bp, alpha=3.0),
        renyi_divergence(p_logits=a, q_logits=b, alpha=3.0),
        atol=1e-11,
    )


@SETTINGS
@given(logit_pairs(grid=True), st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_logit_shift_invariance(ab: tuple[np.ndarray, np.ndarray], c: int, d: int) -> None:
    a, b = ab
    # grid logits plus an integer: exact, so only the computation's rounding differs
    a2, b2 = a + c, b + d
    for fn in (kl_divergence, js_divergence, cross_entropy, total_variation):
        _close(fn(p_logits=a2, q_logits=b2), fn(p_logits=a, q_logits=b), atol=1e-11)
    _close(entropy(logits=a2), entropy(logits=a), atol=1e-11)
    _close(
        renyi_divergence(p_logits=a2, q_logits=b2, alpha=0.5),
        renyi_divergence(p_logits=a, q_logits=b, alpha=0.5),
        atol=1e-11,
    )
    t = np.argmax(a, axis=-1)
    _close(surprisal(t, logits=a2), surprisal(t, logits=a), atol=1e-11)


@SETTINGS
@given(
    arrays(np.float64, (3, 4, 5), elements=st.floats(-20, 20)),
    arrays(np.float64, (3, 4, 5), elements=st.floats(-20, 20)),
    st.integers(-3, 2),
)
def test_moveaxis_invariance(a: np.ndarray, b: np.ndarray, axis: int) -> None:
    am, bm = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    for fn in (kl_divergence, js_divergence, cross_entropy, total_variation):
        _close(
            fn(p_logits=a, q_logits=b, axis=axis),
            fn(p_logits=am, q_logits=bm),
            rtol=1e-14,
            atol=1e-15,
        )
    _close(entropy(logits=a, axis=axis), entropy(logits=am), rtol=1e-14, atol=1e-15)
    p = _softmax(am)
    _close(entropy(np.moveaxis(p, -1, axis), axis=axis), entropy(p), rtol=1e-14, atol=1e-15)


@SETTINGS
@given(logit_pairs(), st.data())
def test_where_equals_subset(ab: tuple[np.ndarray, np.ndarray], data: st.DataObject) -> None:
    a, b = ab
    mask = data.draw(arrays(np.bool_, (a.shape[0],)))
    t = np.argmax(a, axis=-1)
    for name, full, sub in [
        ("entropy", lambda w: entropy(logits=a, where=w), lambda: entropy(logits=a[mask])),
        (
            "kl",
            lambda w: kl_divergence(p_logits=a, q_logits=b, where=w),
            lambda: kl_divergence(p_logits=a[mask], q_logits=b[mask]),
        ),
        (
            "js",
            lambda w: js_divergence(p_logits=a, q_logits=b, where=w),
            lambda: js_divergence(p_logits=a[mask], q_logits=b[mask]),
        ),
        (
            "surprisal",
            lambda w: surprisal(t, logits=a, where=w),
            lambda: surprisal(t[mask], logits=a[mask]),
        ),
        (
            "renyi_div",
            lambda w: renyi_divergence(p_logits=a, q_logits=b, alpha=2.0, where=w),
            lambda: renyi_divergence(p_logits=a[mask], q_logits=b[mask], alpha=2.0),
        ),
    ]:
        got = full(mask)
        assert (got[~mask] == 0).all(), name
        _close(got[mask], sub(), rtol=0, atol=0)


# --------------------------------------------------------------------------- Rényi


@SETTINGS
@given(logit_pairs(scale=20.0), st.floats(0, 8), st.floats(0, 8))
def test_renyi_monotone_in_alpha(ab: tuple[np.ndarray, np.ndarray], x: float, y: float) -> None:
    a, b = ab
    lo, hi = min(x, y), max(x, y)
    assume(hi - lo > 1e-3)
    for al, ah in ((lo, hi), (hi, math.inf)):
        # the 1/(1 - alpha) factor magnifies a log-sum-exp's rounding near alpha = 1
        k = 1.0 + sum(1.0 / abs(x - 1.0) for x in (al, ah) if x != 1.0 and math.isfinite(x))
        h_lo, h_hi = renyi_entropy(logits=a, alpha=al), renyi_entropy(logits=a, alpha=ah)
        assert (h_hi <= h_lo + 1e-12 * k * (1 + np.abs(h_lo))).all(), (al, ah, h_lo, h_hi)
        d_lo = renyi_divergence(p_logits=a, q_logits=b, alpha=al)
        d_hi = renyi_divergence(p_logits=a, q_logits=b, alpha=ah)
        assert (d_lo <= d_hi + 1e-12 * k * (1 + np.abs(d_hi))).all(), (al, ah, d_lo, d_hi)


@SETTINGS
@given(logit_pairs(scale=10.0), st.sampled_from([-1.0, 1.0]))
def test_renyi_tends_to_shannon_and_kl(ab: tuple[np.ndarray, np.ndarray], side: float) -> None:
    a, b = ab
    eps = 1e-7
    alpha = 1.0 + side * eps
    lp = a - np.logaddexp.reduce(a, axis=-1, keepdims=True)
    lq = b - np.logaddexp.reduce(b, axis=-1, keepdims=True)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        # |H_alpha - H| <= |alpha - 1| * E[(log p)^2] / 2 + O(eps^2); the same for D with
        # log(p / q); plus the rounding of a log-sum-exp divided by |alpha - 1|
        m2p = np.where(p > 0, p * lp**2, 0.0).sum(-1)
        m2d = np.where(p > 0, p * (lp - lq) ** 2, 0.0).sum(-1)
    h = entropy(logits=a)
    _close(renyi_entropy(logits=a, alpha=alpha), h, rtol=0, atol=eps * m2p.max() + 1e-7)
    kl = kl_divergence(p_logits=a, q_logits=b)
    d = renyi_divergence(p_logits=a, q_logits=b, alpha=alpha)
    if side < 0:  # below 1, p > 0 = q is not infinite: compare only finite rows of KL
        fin = np.isfinite(kl)
        d, kl, m2d = d[fin], kl[fin], m2d[fin]
    _close(d, kl, rtol=0, atol=eps * np.nan_to_num(m2d, posinf=0).max(initial=0) + 1e-7)


# --------------------------------------------------------------------------- Pinsker


@SETTINGS
@given(logit_pairs())
def test_pinsker(ab: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = ab
    tv = total_variation(p_logits=a, q_logits=b)
    kl = kl_divergence(p_logits=a, q_logits=b)
    assert ((tv >= 0) & (tv <= 1 + 1e-15)).all()
    # in the squared form: KL from logits carries an absolute rounding error of a few ulps
    # of the logits' size, which sqrt would magnify where KL is tiny (nearly equal rows)
    size = 1 + max(np.abs(x[np.isfinite(x)]).max(initial=0) for x in (a, b))
    assert (2 * tv**2 <= kl + 1e-15 * size).all(), (tv, kl)
    # and TV agrees with its definition on probabilities
    _close(tv, 0.5 * np.abs(_softmax(a) - _softmax(b)).sum(-1), rtol=1e-12, atol=1e-15)


@SETTINGS
@given(
    arrays(np.float64, st.integers(1, 10), elements=st.floats(0, 1e6)),
)
def test_normalize_matches_scipy(counts: np.ndarray) -> None:
    import scipy.stats

    assume(counts.sum() > 0)
    _close(entropy(counts, normalize=True), scipy.stats.entropy(counts), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("v", [1, 2, 8, 50_000])
def test_uniform_entropy_is_log_v(v: int) -> None:
    assert entropy(np.full(v, 1.0 / v), base=2) == pytest.approx(math.log2(v), rel=1e-13, abs=1e-15)
    assert entropy(logits=np.zeros(v)) == pytest.approx(math.log(v), rel=1e-13, abs=1e-15)
