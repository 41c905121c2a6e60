"""Entropy from counts or samples: the discrete estimators of :mod:`infolens.estimate`
(plug-in, Miller-Madow, Chao-Shen, Grassberger, jackknife, NSB) and the label handling
they share with its mutual-information functions; re-exported there (see its docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens._backend import describe
from infolens.errors import InputError
from infolens.measures import _base_divisor as _check_base

ENTROPY_ESTIMATORS = ("plugin", "miller_madow", "chao_shen", "grassberger", "jackknife", "nsb")


def _scipy_special() -> Any:
    try:
        from scipy import special
    except ImportError as e:  # pragma: no cover - scipy is in the estimate extra
        raise ImportError("infolens.estimate needs scipy: pip install 'infolens[estimate]'") from e
    return special


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
