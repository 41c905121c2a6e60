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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens._backend import describe
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
    "mutual_information",
    "mutual_information_test",
    "normalized_mutual_information",
    "nsb_entropy",
]

ENTROPY_ESTIMATORS = ("plugin", "miller_madow", "chao_shen", "grassberger", "jackknife", "nsb")
_AVERAGES = ("arithmetic", "geometric", "min", "max")


def _scipy_special() -> Any:
    try:
        from scipy import special
    except ImportError as e:  # pragma: no cover - scipy is in the estimate extra
        raise ImportError("infolens.estimate needs scipy: pip install 'infolens[estimate]'") from e
    return special


def _check_base(base: Any) -> float:
    """The divisor that turns nats into ``base`` units (1.0 for nats)."""
    if base is None:
        return 1.0
    if (
        isinstance(base, bool)
        or not isinstance(base, (int, float))
        or not (base > 0 and base != 1 and math.isfinite(base))
    ):
        raise InputError(f"base: expected a number > 0 other than 1, or None, got {describe(base)}")
    return math.log(base)


def _check_estimator(estimator: Any) -> str:
    if estimator not in ENTROPY_ESTIMATORS:
        raise InputError(
            f"estimator: expected one of {', '.join(ENTROPY_ESTIMATORS)}, got {describe(estimator)}"
        )
    return str(estimator)


# --------------------------------------------------------------------------- labels


def _codes(x: Any, name: str) -> tuple[np.ndarray, int]:
    """Integer codes 0..m-1 of the labels in ``x`` (1-D) and m, the number of levels."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "iub":
        a = x.reshape(-1) if x.ndim == 1 else None
        if a is None:
            raise InputError(f"{name}: expected a 1-D array of labels, got shape {x.shape}")
        if a.size == 0:
            return a.astype(np.int64), 0
        lo, hi = int(a.min()), int(a.max())
        if hi - lo < max(1 << 16, 4 * a.size):  # dense range: bincount, no sort
            shifted = a.astype(np.int64) - lo
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            remap = np.cumsum(present) - 1
            return remap[shifted], int(present.sum())
        uniq, inv = np.unique(a, return_inverse=True)
        return inv.astype(np.int64), len(uniq)
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        if x.ndim != 1:
            raise InputError(f"{name}: expected a 1-D array of labels, got shape {x.shape}")
        if np.isnan(x).any():
            raise InputError(f"{name}: expected labels, got NaN (a missing value) in the data")
        uniq, inv = np.unique(x, return_inverse=True)
        return inv.astype(np.int64), len(uniq)
    if isinstance(x, (str, bytes)) or not isinstance(x, (Sequence, np.ndarray)):
        if hasattr(x, "__iter__") and not isinstance(x, (str, bytes)):
            x = list(x)
        else:
            raise InputError(f"{name}: expected a sequence of labels, got {describe(x)}")
    table: dict[Any, int] = {}
    out = np.empty(len(x), dtype=np.int64)
    try:
        for i, v in enumerate(x):
            if v != v:  # NaN: a missing value, and never equal to itself as a key
                raise InputError(f"{name}: expected labels, got NaN (a missing value) at {i}")
            out[i] = table.setdefault(v, len(table))
    except TypeError as e:
        raise InputError(f"{name}: expected hashable labels, got {describe(x[i])}") from e
    return out, len(table)


def _joint(codes: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
    """Codes of the tuples of several label columns (same length)."""
    key = np.zeros(len(codes[0][0]), dtype=np.int64)
    size = 1
    for c, m in codes:
        m = max(m, 1)
        if size * m < 2**62:
            key = key * m + c
            size *= m
        else:  # too many combinations for one int64: renumber what occurs first
            uniq, key = np.unique(key, return_inverse=True)
            key = key.astype(np.int64) * m + c
            size = len(uniq) * m
    if size <= max(1 << 16, 4 * len(key)):
        present = np.bincount(key, minlength=size) > 0
        return (np.cumsum(present) - 1)[key], int(present.sum())
    uniq, inv = np.unique(key, return_inverse=True)
    return inv.astype(np.int64), len(uniq)


def _counts_of(codes: np.ndarray, m: int) -> np.ndarray:
    c = np.bincount(codes, minlength=m)
    return c[c > 0]


def _check_counts(counts: Any) -> np.ndarray:
    c = np.asarray(counts)
    if c.dtype.kind == "f":
        if not np.all(np.isfinite(c)) or not np.all(c == np.round(c)):
            raise InputError("counts: expected non-negative integers, got non-integer values")
        c = c.astype(np.int64)
    if c.dtype.kind not in "iu" or c.ndim != 1:
        raise InputError(
            f"counts: expected a 1-D array of non-negative integers, got {describe(counts)}"
        )
    if (c < 0).any():
        raise InputError(f"counts: expected non-negative integers, got {int(c.min())}")
    return c.astype(np.int64)


def _paired(*cols: tuple[Any, str]) -> list[tuple[np.ndarray, int]]:
    out = [_codes(np.asarray(v) if isinstance(v, np.ndarray) else v, n) for v, n in cols]
    n0 = len(out[0][0])
    for (c, _), (_, name) in zip(out[1:], cols[1:]):
        if len(c) != n0:
            raise InputError(
                f"{name}: expected {n0} labels (as many as {cols[0][1]}), got {len(c)}"
            )
    if n0 == 0:
        raise InputError(f"{cols[0][1]}: expected at least one sample, got none")
    return out


# --------------------------------------------------------------------------- entropy


def _h_plugin(c: np.ndarray) -> float:
    n = float(c.sum())
    c = c[c > 0].astype(np.float64)
    # >= 0 by definition; log N - mean log n can round to -4e-16 for one symbol
    return max(0.0, float(math.log(n) - np.dot(c, np.log(c)) / n))


def _h_from_counts(c: np.ndarray, estimator: str, k: int | None) -> float:
    c = c[c > 0]
    n = int(c.sum())
    if n == 0:
        raise InputError("counts: expected at least one observation, got a total of 0")
    m = len(c)
    if estimator == "plugin":
        return _h_plugin(c)
    if estimator == "miller_madow":
        return _h_plugin(c) + (m - 1) / (2.0 * n)
    if estimator == "chao_shen":
        f1 = int((c == 1).sum())
        if f1 == n:
            f1 = n - 1
        cov = 1.0 - f1 / n
        pa = cov * c / n
        with np.errstate(divide="ignore"):  # pa = 1 (one symbol seen N times): 1 - 0^N = 1
            la = -np.expm1(n * np.log1p(-pa))  # 1 - (1 - pa)^N, accurately
        return float(-np.sum(pa * np.log(pa) / la))
    if estimator == "grassberger":
        sp = _scipy_special()
        vals, mult = np.unique(c, return_counts=True)
        v = vals.astype(np.float64)
        sign = np.where(vals % 2 == 0, 1.0, -1.0)
        g = sp.digamma(v) + 0.5 * sign * (sp.digamma((v + 1) / 2) - sp.digamma(v / 2))
        return float(math.log(n) - np.dot(mult * v, g) / n)
    if estimator == "jackknife":
        if n == 1:
            return 0.0
        vals, mult = np.unique(c, return_counts=True)
        # leaving out one sample of a symbol seen v times: counts v-1 there, N-1 in all
        s = float(np.dot(mult * vals.astype(np.float64), np.log(vals.astype(np.float64))))
        total = 0.0
        for v, w in zip(vals.astype(np.float64), mult):
            s_j = s - v * math.log(v) + ((v - 1) * math.log(v - 1) if v > 1 else 0.0)
            h_j = math.log(n - 1) - s_j / (n - 1)
            total += w * v * h_j
        return float(n * _h_plugin(c) - (n - 1) / n * total)
    return nsb_entropy(counts=c, k=k).mean


def entropy(
    samples: Any = None,
    *,
    counts: Any = None,
    estimator: str = "plugin",
    base: float | None = None,
    k: int | None = None,
) -> float:
    """Entropy of a discrete distribution estimated from samples or counts.

    Parameters
    ----------
    samples : sequence of hashable labels, optional
        Observations; or give ``counts``.
    counts : 1-D array of non-negative integers, optional
        Occurrences of each symbol (zeros are ignored, except that ``nsb`` counts them
        towards ``k`` when ``k`` is not given).
    estimator : str
        One of :data:`ENTROPY_ESTIMATORS` (see the module docstring for formulas and bias).
    base : float, optional
        Logarithm base of the result (nats by default; ``base=2`` gives bits).
    k : int, optional
        Alphabet size for ``nsb`` (default: the number of symbols given).

    Returns
    -------
    float

    Examples
    --------
    >>> round(entropy(["a", "b", "a", "c"]), 6)  # plug-in, nats
    1.039721
    >>> round(entropy(counts=[2, 1, 1], estimator="miller_madow", base=2), 6)
    1.860674
    """
    div = _check_base(base)
    est = _check_estimator(estimator)
    if (samples is None) == (counts is None):
        raise InputError("samples: give samples or counts=, not both or neither")
    if counts is not None:
        c = _check_counts(counts)
        if est == "nsb" and k is None:
            k = len(c)
    else:
        codes, m = _codes(samples, "samples")
        if m == 0:
            raise InputError("samples: expected at least one sample, got none")
        c = _counts_of(codes, m)
    return _h_from_counts(c, est, k) / div


# --------------------------------------------------------------------------- NSB


@dataclass(frozen=True)
class NSBEntropy:
    """Posterior mean and standard deviation of the entropy under the NSB prior (nats,
    or the units of ``base``)."""

    mean: float
    std: float


def _nsb_moments(
    n_vals: np.ndarray, n_mult: np.ndarray, k: int, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """E[H | n, beta] and E[H^2 | n, beta] (Wolpert & Wolf 1995) for each beta; counts
    given as distinct values with multiplicities (zeros included: k - observed)."""
    sp = _scipy_special()
    b = beta[:, None]
    a = n_vals[None, :] + b  # [B, U]
    big_a = (n_mult[None, :] * a).sum(1)  # N + k beta
    w = n_mult[None, :]
    d1 = sp.digamma(a + 1) - sp.digamma(big_a + 1)[:, None]
    mean = -(w * a * d1).sum(1) / big_a
    # second moment: sum over i != j and i == j with psi at A + 2
    aa = big_a[:, None]
    q = sp.digamma(a + 1) - sp.digamma(aa + 2)
    t1 = sp.polygamma(1, aa + 2)
    s_q = (w * a * q).sum(1)
    s_q2 = (w * a * a * q * q).sum(1)
    s_a2 = (w * a * a).sum(1)
    cross = (s_q**2 - s_q2) - t1[:, 0] * (big_a**2 - s_a2)
    q2 = sp.digamma(a + 2) - sp.digamma(aa + 2)
    diag = (w * a * (a + 1) * (q2 * q2 + sp.polygamma(1, a + 2) - t1)).sum(1)
    second = (cross + diag) / (big_a * (big_a + 1))
    return mean, second


def nsb_entropy(
    samples: Any = None, *, counts: Any = None, k: int | None = None, base: float | None = None
) -> NSBEntropy:
    r"""The NSB entropy estimate: posterior mean and standard deviation.

    Prior: symmetric Dirichlet(:math:`\beta`) over ``k`` symbols, with :math:`\beta`
    weighted by :math:`d\xi/d\beta`, :math:`\xi(\beta) = \psi(k\beta + 1) - \psi(\beta + 1)`
    the prior mean entropy, so that the induced prior on :math:`H` is nearly flat on
    :math:`[0, \log k]` (Nemenman, Shafee & Bialek 2002). The evidence
    :math:`p(n|\beta) \propto \frac{\Gamma(k\beta)}{\Gamma(N + k\beta)}
    \prod_i \frac{\Gamma(n_i + \beta)}{\Gamma(\beta)}` is integrated over
    :math:`\log\beta` numerically (2,001 points over the region holding the posterior
    mass: deterministic), with the per-:math:`\beta` posterior moments of Wolpert & Wolf.

    Parameters
    ----------
    samples, counts
        As for :func:`entropy`.
    k : int, optional
        Alphabet size (>= the number of observed symbols). Default: the number of symbols
        in ``counts`` (zeros included), or of distinct samples.
    base : float, optional

    Examples
    --------
    >>> r = nsb_entropy(counts=[3, 1, 1, 0, 0], k=5)
    >>> 0.9 < r.mean < 1.6 and r.std > 0
    True
    """
    div = _check_base(base)
    if (samples is None) == (counts is None):
        raise InputError("samples: give samples or counts=, not both or neither")
    if counts is not None:
        c = _check_counts(counts)
        kk = len(c) if k is None else k
        c = c[c > 0]
    else:
        codes, m = _codes(samples, "samples")
        c = _counts_of(codes, m)
        kk = len(c) if k is None else k
    if isinstance(kk, bool) or not isinstance(kk, (int, np.integer)) or kk < len(c) or kk < 1:
        raise InputError(
            f"k: expected an alphabet size >= the {len(c)} observed symbols, got {describe(kk)}"
        )
    n = int(c.sum())
    if n == 0:
        raise InputError("counts: expected at least one observation, got a total of 0")
    kk = int(kk)
    if kk == 1:
        return NSBEntropy(0.0, 0.0)
    sp = _scipy_special()
    vals, mult = np.unique(c, return_counts=True)
    n_vals = (
        np.concatenate([vals.astype(np.float64), [0.0]]) if kk > len(c) else vals.astype(np.float64)
    )
    n_mult = (
        np.concatenate([mult.astype(np.float64), [kk - len(c)]])
        if kk > len(c)
        else mult.astype(np.float64)
    )

    def log_post(lb: np.ndarray) -> np.ndarray:
        b = np.exp(lb)
        kb = kk * b
        ev = (
            sp.gammaln(kb) - sp.gammaln(n + kb)
            + (n_mult[None, :] * (sp.gammaln(n_vals[None, :] + b[:, None]) - sp.gammaln(b[:, None]))).sum(1)
        )  # fmt: skip
        dxi = kk * sp.polygamma(1, kb + 1) - sp.polygamma(1, b + 1)  # d xi / d beta
        return ev + np.log(np.maximum(dxi, 1e-300)) + lb  # d beta = beta d log beta

    coarse = np.linspace(math.log(1e-8), math.log(1e6), 801)
    lp = log_post(coarse)
    keep = lp > lp.max() - 40.0  # the region holding all but e^-40 of the mass
    lo, hi = coarse[keep].min() - 0.05, coarse[keep].max() + 0.05
    grid = np.linspace(lo, hi, 2001)
    lp = log_post(grid)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    mean_b, second_b = _nsb_moments(n_vals, n_mult, kk, np.exp(grid))
    mean = float(np.dot(w, mean_b))
    var = float(np.dot(w, second_b)) - mean**2
    return NSBEntropy(mean / div, math.sqrt(max(var, 0.0)) / div)


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
    rng = np.random.default_rng(seed)
    (cx, mx), (cy, my) = cols
    p_value = None
    if permutations:
        hits = 0
        for _ in range(permutations):
            perm = cy[rng.permutation(len(cy))]
            hits += _mi_codes([(cx, mx), (perm, my)], est) >= value - 1e-12 * abs(value)
        p_value = (1 + hits) / (1 + permutations)
    interval = None
    if bootstrap:
        vals = np.empty(bootstrap)
        for i in range(bootstrap):
            idx = rng.integers(0, len(cx), len(cx))
            vals[i] = _mi_codes([(cx[idx], mx), (cy[idx], my)], est)
        alpha = (1 - confidence) / 2
        q_lo, q_hi = np.quantile(vals, [alpha, 1 - alpha])
        # the basic (reverse-percentile) interval: resampling inflates a plug-in MI
        # (repeated pairs look dependent), and this shifts the interval back by that bias
        interval = ((2 * value - float(q_hi)) / div, (2 * value - float(q_lo)) / div)
    return MITest(value / div, p_value, interval, permutations, bootstrap, confidence, seed)


# the continuous (nearest-neighbour) estimators live in their own module
from infolens._estimate_knn import (  # noqa: E402
    gaussian_mutual_information,
    kl_entropy,
    knn_kl_divergence,
    ksg_conditional_mutual_information,
    ksg_mutual_information,
    mixed_mutual_information,
)

__all__ += [
    "gaussian_mutual_information",
    "kl_entropy",
    "knn_kl_divergence",
    "ksg_conditional_mutual_information",
    "ksg_mutual_information",
    "mixed_mutual_information",
]
