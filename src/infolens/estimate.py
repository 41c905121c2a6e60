r"""Entropy and mutual information estimated from samples: discrete estimators.

From counts :math:`n_1, \dots, n_m > 0` of the :math:`m` observed symbols,
:math:`N = \sum n_i`, :math:`\hat p_i = n_i / N`:

``plugin``
    :math:`\hat H = -\sum \hat p_i \log \hat p_i` (maximum likelihood). Biased downwards:
    :math:`E[\hat H] = H - (m - 1)/(2N) + O(N^{-2})`, much worse when the vocabulary is
    under-sampled (LLM token statistics).
``miller_madow``
    :math:`\hat H + (m - 1)/(2N)` (Miller 1955): the first-order bias removed.
``chao_shen``
    Coverage-adjusted Horvitz-Thompson (Chao & Shen 2003): coverage
    :math:`C = 1 - f_1/N` (:math:`f_1` singletons; :math:`f_1 = N` is taken as
    :math:`N - 1`), :math:`p_i = C \hat p_i`,
    :math:`\hat H = -\sum p_i \log p_i / (1 - (1 - p_i)^N)`.
``grassberger``
    Grassberger (2003), eq. (35): :math:`\hat H = \log N - \frac1N \sum n_i G(n_i)`,
    :math:`G(n) = \psi(n) + \tfrac12 (-1)^n [\psi(\tfrac{n+1}2) - \psi(\tfrac n2)]`.
``jackknife``
    :math:`N \hat H - \frac{N-1}{N} \sum_j \hat H_{-j}` (Zahl 1977), the leave-one-out
    values grouped by count (exact, :math:`O(m)`).
``nsb``
    Nemenman-Shafee-Bialek (2002): the posterior mean of :math:`H` under a mixture of
    symmetric Dirichlet priors over an alphabet of ``k`` symbols, mixed so that the prior
    on :math:`H` is flat; :func:`nsb_entropy` also gives the posterior standard deviation.
    Needs the alphabet size ``k`` (default: the number of observed symbols, which makes
    it close to the plug-in when nothing is known).

Mutual information and the conditional quantities are sums of joint entropies, each
estimated with the same estimator:
:math:`I(X;Y) = H(X) + H(Y) - H(X,Y) = H(X) - H(X|Y)`,
:math:`H(X|Y) = H(X,Y) - H(Y)`,
:math:`I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)`. With the plug-in estimator,
:math:`I = \sum_{x,y} \hat p(x,y) \log \frac{\hat p(x,y)}{\hat p(x)\hat p(y)}` exactly
as scikit-learn's ``mutual_info_score``. **Nothing is clipped**: a negative estimate of a
non-negative quantity is information about the estimator's bias, and it is returned as is
(scikit-learn clips KSG at 0). Results are deterministic. Nats by default, bits with
``base=2``.

Labels may be any hashable values; integer numpy arrays take a fast path (``bincount``
when their range is small, else one sort).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens._backend import describe
from infolens._estimate_entropy import (
    ENTROPY_ESTIMATORS,
    NSBEntropy,
    _check_base,
    _check_counts,
    _check_estimator,
    _counts_of,
    _h_from_counts,
    _h_plugin,
    _joint,
    _paired,
    _scipy_special,
    entropy,
    nsb_entropy,
)
from infolens._estimate_knn import (
    gaussian_mutual_information,
    kl_entropy,
    knn_kl_divergence,
    ksg_conditional_mutual_information,
    ksg_mutual_information,
    mixed_mutual_information,
)
from infolens.errors import InputError

__all__ = [
    "ENTROPY_ESTIMATORS",
    "MITest",
    "NSBEntropy",
    "adjusted_mutual_information",
    "conditional_entropy",
    "conditional_mutual_information",
    "contingency",
    "entropy",
    "expected_mutual_information",
    "gaussian_mutual_information",
    "kl_entropy",
    "knn_kl_divergence",
    "ksg_conditional_mutual_information",
    "ksg_mutual_information",
    "mixed_mutual_information",
    "mutual_information",
    "mutual_information_test",
    "normalized_mutual_information",
    "nsb_entropy",
]

_AVERAGES = ("arithmetic", "geometric", "min", "max")


# --------------------------------------------------------------------------- MI family


def contingency(x: Any, y: Any) -> np.ndarray:
    """The contingency table of two label sequences: ``[levels of x, levels of y]``
    int64 counts, levels in order of first appearance (integer arrays: sorted).

    Examples
    --------
    >>> contingency(["a", "a", "b"], [1, 2, 2]).tolist()
    [[1, 1], [0, 1]]
    """
    (cx, mx), (cy, my) = _paired((x, "x"), (y, "y"))
    return np.bincount(cx * my + cy, minlength=mx * my).reshape(mx, my)


def _mi_codes(cols: list[tuple[np.ndarray, int]], estimator: str) -> float:
    """H(X) + H(Y) - H(X,Y) for two code columns, with one estimator."""
    (cx, mx), (cy, my) = cols
    if estimator == "plugin":  # one table: as scikit-learn's mutual_info_score
        return _plugin_mi_cells(*_cells(cx, mx, cy, my), mx, my)
    jx, jm = _joint(cols)
    hx = _h_from_counts(_counts_of(cx, mx), estimator, mx)
    hy = _h_from_counts(_counts_of(cy, my), estimator, my)
    hxy = _h_from_counts(_counts_of(jx, jm), estimator, mx * my)
    return hx + hy - hxy


def _cells(
    cx: np.ndarray, mx: int, cy: np.ndarray, my: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Occupied cells of the contingency table: row, column and count of each (dense
    ``bincount`` when the table is small, else one sort of the pair keys)."""
    if mx * my <= max(1 << 16, 4 * len(cx)):
        flat = np.bincount(cx * my + cy, minlength=mx * my)
        nz = np.flatnonzero(flat)
        return nz // my, nz % my, flat[nz]
    keys, nij = np.unique(cx * my + cy, return_counts=True)
    return keys // my, keys % my, nij


def _plugin_mi_cells(i: np.ndarray, j: np.ndarray, nij: np.ndarray, mx: int, my: int) -> float:
    """sum_ij p_ij log(p_ij / (p_i p_j)) = sum_ij (n_ij / N)(log n_ij + log N - log a_i - log b_j)."""
    nf = nij.astype(np.float64)
    n = float(nf.sum())
    a = np.bincount(i, weights=nf, minlength=mx)
    b = np.bincount(j, weights=nf, minlength=my)
    return float(np.dot(nf, np.log(nf) + math.log(n) - np.log(a[i]) - np.log(b[j])) / n)


def _plugin_mi_table(flat: np.ndarray, mx: int, my: int, n: int) -> float:
    nz = np.flatnonzero(flat)
    return _plugin_mi_cells(nz // my, nz % my, flat[nz], mx, my)


def mutual_information(
    x: Any,
    y: Any,
    *,
    estimator: str = "plugin",
    base: float | None = None,
    table: Any = None,
) -> float:
    r"""Mutual information :math:`I(X;Y) = H(X) + H(Y) - H(X,Y)` from paired samples.

    Each entropy is estimated with ``estimator`` (the plug-in gives scikit-learn's
    ``mutual_info_score``). Not clipped at 0.

    Parameters
    ----------
    x, y : sequences of hashable labels, the same length
        Or pass ``table=`` (a contingency table of counts) and ``x = y = None``.
    estimator : str
        One of :data:`ENTROPY_ESTIMATORS`.
    base : float, optional
        Nats by default; ``base=2`` gives bits.
    table : 2-D array of counts, optional

    Examples
    --------
    >>> round(mutual_information([0, 0, 1, 1], [0, 0, 1, 1], base=2), 6)
    1.0
    >>> mutual_information([0, 1, 0, 1], [0, 0, 1, 1])
    0.0
    """
    div = _check_base(base)
    est = _check_estimator(estimator)
    if table is not None:
        if x is not None or y is not None:
            raise InputError("table: give x and y, or table=, not both")
        t = np.asarray(table)
        if t.ndim != 2:
            raise InputError(f"table: expected a 2-D contingency table, got shape {t.shape}")
        flat = _check_counts(t.reshape(-1)).reshape(t.shape)
        n = int(flat.sum())
        if n == 0:
            raise InputError("table: expected at least one observation, got a total of 0")
        if est == "plugin":
            return _plugin_mi_table(flat.reshape(-1), t.shape[0], t.shape[1], n) / div
        hx = _h_from_counts(flat.sum(1), est, t.shape[0])
        hy = _h_from_counts(flat.sum(0), est, t.shape[1])
        hxy = _h_from_counts(flat.reshape(-1), est, t.size)
        return (hx + hy - hxy) / div
    return _mi_codes(_paired((x, "x"), (y, "y")), est) / div


def conditional_entropy(
    x: Any, y: Any, *, estimator: str = "plugin", base: float | None = None
) -> float:
    r""":math:`H(X|Y) = H(X,Y) - H(Y)` from paired samples.

    Examples
    --------
    >>> round(conditional_entropy([0, 1, 0, 1], [0, 0, 1, 1], base=2), 6)
    1.0
    """
    div = _check_base(base)
    est = _check_estimator(estimator)
    cols = _paired((x, "x"), (y, "y"))
    (_, mx), (cy, my) = cols
    jx, jm = _joint(cols)
    hxy = _h_from_counts(_counts_of(jx, jm), est, mx * my)
    return (hxy - _h_from_counts(_counts_of(cy, my), est, my)) / div


def conditional_mutual_information(
    x: Any, y: Any, z: Any, *, estimator: str = "plugin", base: float | None = None
) -> float:
    r""":math:`I(X;Y|Z) = H(X,Z) + H(Y,Z) - H(X,Y,Z) - H(Z)` from samples.

    Examples
    --------
    >>> x = [0, 1, 0, 1]; z = [0, 0, 1, 1]
    >>> y = [a ^ b for a, b in zip(x, z)]  # y = x xor z: independent of x, not given z
    >>> mutual_information(x, y), round(conditional_mutual_information(x, y, z, base=2), 6)
    (0.0, 1.0)
    """
    div = _check_base(base)
    est = _check_estimator(estimator)
    cx, cy, cz = _paired((x, "x"), (y, "y"), (z, "z"))

    def h(cols: list[tuple[np.ndarray, int]]) -> float:
        codes, m = _joint(cols) if len(cols) > 1 else cols[0]
        size = int(np.prod([max(c[1], 1) for c in cols]))
        return _h_from_counts(_counts_of(codes, m), est, size)

    return (h([cx, cz]) + h([cy, cz]) - h([cx, cy, cz]) - h([cz])) / div


def _average(u: float, v: float, method: str) -> float:
    if method == "arithmetic":
        return (u + v) / 2
    if method == "geometric":
        return math.sqrt(u * v)
    if method == "min":
        return min(u, v)
    return max(u, v)


def _check_average(method: Any) -> str:
    if method not in _AVERAGES:
        raise InputError(
            f"average_method: expected one of {', '.join(_AVERAGES)}, got {describe(method)}"
        )
    return str(method)


def normalized_mutual_information(x: Any, y: Any, *, average_method: str = "arithmetic") -> float:
    r"""NMI :math:`= I(X;Y) / \mathrm{mean}(H(X), H(Y))` (plug-in), as scikit-learn's
    ``normalized_mutual_info_score``: ``average_method`` is ``"arithmetic"``,
    ``"geometric"``, ``"min"`` or ``"max"``; both labellings with one level (or none)
    give 1, an MI of 0 gives 0. Unitless.

    Examples
    --------
    >>> normalized_mutual_information([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    method = _check_average(average_method)
    cols = _paired((x, "x"), (y, "y"))
    (cx, mx), (cy, my) = cols
    if mx == my == 1:
        return 1.0
    mi = _mi_codes(cols, "plugin")
    if mi == 0:
        return 0.0
    hx, hy = _h_plugin(_counts_of(cx, mx)), _h_plugin(_counts_of(cy, my))
    return float(mi / _average(hx, hy, method))


def expected_mutual_information(a: Any, b: Any) -> float:
    r"""The expected plug-in MI of two labellings with row sums ``a`` and column sums
    ``b`` under random permutation (the hypergeometric model of Vinh, Epps & Bailey 2010):

    .. math::

        E[I] = \sum_{i,j} \sum_{n=\max(1, a_i+b_j-N)}^{\min(a_i,b_j)} \frac nN
        \log\frac{Nn}{a_i b_j}
        \frac{a_i!\,b_j!\,(N-a_i)!\,(N-b_j)!}{N!\,n!\,(a_i-n)!\,(b_j-n)!\,(N-a_i-b_j+n)!}

    The terms depend only on the pair of sizes, so they are summed once per distinct
    pair of sizes (times its multiplicity): 6,000 singleton labels on each side are one
    pair, not 36 million.

    Examples
    --------
    >>> round(expected_mutual_information([1] * 4, [2, 2]), 6)
    0.693147
    """
    sp = _scipy_special()
    a_arr, b_arr = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = int(a_arr.sum())
    if n != int(b_arr.sum()):
        raise InputError(f"b: expected sizes summing to {n} (as a), got {int(b_arr.sum())}")
    if len(a_arr) == 1 or len(b_arr) == 1:
        return 0.0
    ua, ma = np.unique(a_arr, return_counts=True)
    ub, mb = np.unique(b_arr, return_counts=True)
    gln_n = sp.gammaln(n + 1)
    emi = 0.0
    for ai, wa in zip(ua.tolist(), ma.tolist()):
        for bj, wb in zip(ub.tolist(), mb.tolist()):
            lo, hi = max(1, ai + bj - n), min(ai, bj)
            if hi < lo:
                continue
            nij = np.arange(lo, hi + 1, dtype=np.float64)
            gln = (
                sp.gammaln(ai + 1) + sp.gammaln(bj + 1) + sp.gammaln(n - ai + 1)
                + sp.gammaln(n - bj + 1) - gln_n - sp.gammaln(nij + 1)
                - sp.gammaln(ai - nij + 1) - sp.gammaln(bj - nij + 1)
                - sp.gammaln(n - ai - bj + nij + 1)
            )  # fmt: skip
            term = nij / n * (np.log(n * nij) - math.log(ai) - math.log(bj)) * np.exp(gln)
            emi += wa * wb * float(term.sum())
    return emi


def adjusted_mutual_information(x: Any, y: Any, *, average_method: str = "arithmetic") -> float:
    r"""AMI :math:`= (I - E[I]) / (\mathrm{mean}(H(X), H(Y)) - E[I])`, as scikit-learn's
    ``adjusted_mutual_info_score`` (same special cases and the same guard of numerator and
    denominator away from 0 by one machine epsilon), with :func:`expected_mutual_information`
    summed over distinct size pairs. Unitless.

    Examples
    --------
    >>> adjusted_mutual_information([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    method = _check_average(average_method)
    cols = _paired((x, "x"), (y, "y"))
    (cx, mx), (cy, my) = cols
    if mx == my == 1:
        return 1.0
    if mx == 1 or my == 1:
        return 0.0
    mi = _mi_codes(cols, "plugin")
    a, b = np.bincount(cx, minlength=mx), np.bincount(cy, minlength=my)
    emi = expected_mutual_information(a, b)
    hx, hy = _h_plugin(a), _h_plugin(b)
    eps = float(np.finfo(np.float64).eps)
    den = _average(hx, hy, method) - emi
    den = min(den, -eps) if den < 0 else max(den, eps)
    num = mi - emi
    num = min(num, -eps) if num < 0 else max(num, eps)
    return float(num / den)


# --------------------------------------------------------------------------- tests, intervals


def _resample_test(
    fn: Any,
    n: int,
    value: float,
    *,
    permutations: int,
    resamples: int,
    confidence: float,
    seed: int,
    scheme: str,
) -> tuple[float | None, tuple[float, float] | None]:
    r"""Permutation p-value and interval of an estimate ``value`` of ``n`` paired samples,
    seeded (``numpy.random.default_rng(seed)``: permutations first, then resamples).

    ``fn(rows, perm)`` re-estimates on the samples ``rows`` (all if ``None``) with the
    second variable permuted by ``perm`` (unpermuted if ``None``). p-value:
    :math:`(1 + \#\{I_\pi \ge I\}) / (1 + P)`. ``scheme="bootstrap"``: the basic
    interval :math:`[2\hat I - q_{1-\alpha/2}, 2\hat I - q_{\alpha/2}]` over resampled
    pairs; ``"subsample"`` (for kNN estimates, whose bootstrap resamples would repeat points
    at distance 0): half-size subsamples without replacement,
    :math:`[\hat I - q_{1-\alpha/2}/\sqrt n, \hat I - q_{\alpha/2}/\sqrt n]` with
    :math:`q` the quantiles of :math:`\sqrt m(\hat I_m - \hat I)` (Politis & Romano).
    """
    rng = np.random.default_rng(seed)
    p_value = None
    if permutations:
        hits = sum(
            fn(None, rng.permutation(n)) >= value - 1e-12 * abs(value) for _ in range(permutations)
        )
        p_value = (1 + hits) / (1 + permutations)
    if not resamples:
        return p_value, None
    alpha = (1 - confidence) / 2
    vals = np.empty(resamples)
    if scheme == "subsample":
        m = n // 2
        for i in range(resamples):
            vals[i] = math.sqrt(m) * (fn(rng.choice(n, m, replace=False), None) - value)
        q_lo, q_hi = np.quantile(vals, [alpha, 1 - alpha])
        return p_value, (value - float(q_hi) / math.sqrt(n), value - float(q_lo) / math.sqrt(n))
    for i in range(resamples):
        vals[i] = fn(rng.integers(0, n, n), None)
    q_lo, q_hi = np.quantile(vals, [alpha, 1 - alpha])
    # the basic (reverse-percentile) interval: resampling inflates a plug-in MI (repeated
    # pairs look dependent), and this shifts the interval back by that bias
    return p_value, (2 * value - float(q_hi), 2 * value - float(q_lo))


@dataclass(frozen=True)
class MITest:
    """A mutual-information estimate with a permutation p-value and a bootstrap interval."""

    value: float
    p_value: float | None
    interval: tuple[float, float] | None
    permutations: int
    bootstrap: int
    confidence: float
    seed: int


def mutual_information_test(
    x: Any,
    y: Any,
    *,
    estimator: str = "plugin",
    base: float | None = None,
    permutations: int = 1000,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MITest:
    r""":func:`mutual_information` with a permutation test of independence and a
    bootstrap interval, both seeded (``numpy.random.default_rng(seed)``).

    p-value: :math:`(1 + \#\{I_\pi \ge I\}) / (1 + P)` over ``P`` random permutations of
    ``y`` (never 0; Phipson & Smyth 2010). Interval: the basic bootstrap over resampled
    pairs at ``confidence``, :math:`[2\hat I - q_{1-\alpha/2}, 2\hat I - q_{\alpha/2}]`
    with :math:`q` the quantiles of the resampled estimates (the percentile interval would
    sit above the estimate: resampled pairs repeat, which a plug-in reads as dependence). ``permutations=0`` or ``bootstrap=0`` skips one.

    Examples
    --------
    >>> t = mutual_information_test([0, 1] * 50, [0, 1] * 50, permutations=99, bootstrap=0)
    >>> round(t.value, 6), t.p_value
    (0.693147, 0.01)
    """
    div = _check_base(base)
    est = _check_estimator(estimator)
    for v, name in ((permutations, "permutations"), (bootstrap, "bootstrap")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"{name}: expected an integer >= 0, got {describe(v)}")
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise InputError(f"confidence: expected a float in (0, 1), got {describe(confidence)}")
    cols = _paired((x, "x"), (y, "y"))
    value = _mi_codes(cols, est)
    (cx, mx), (cy, my) = cols

    def fn(rows: np.ndarray | None, perm: np.ndarray | None) -> float:
        a, b = (cx, cy) if rows is None else (cx[rows], cy[rows])
        return _mi_codes([(a, mx), (b if perm is None else b[perm], my)], est)

    p_value, interval = _resample_test(
        fn, len(cx), value, permutations=permutations, resamples=bootstrap,
        confidence=confidence, seed=seed, scheme="bootstrap",
    )  # fmt: skip
    if interval is not None:
        interval = (interval[0] / div, interval[1] / div)
    return MITest(value / div, p_value, interval, permutations, bootstrap, confidence, seed)

