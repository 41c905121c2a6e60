r"""Nearest-neighbour estimators of entropy, mutual information and KL divergence for
continuous samples (vectors, embeddings); re-exported by :mod:`infolens.estimate`.

``kl_entropy``
    Kozachenko-Leonenko: :math:`\hat H = \psi(N) - \psi(k) + \log V_d + \frac dN \sum_i
    \log r_i`, :math:`r_i` the distance from point :math:`i` to its k-th neighbour,
    :math:`V_d` the volume of the unit ball of the metric (:math:`2^d` for Chebyshev,
    :math:`\pi^{d/2}/\Gamma(d/2+1)` for Euclidean).
``ksg_mutual_information``
    Kraskov-Stögbauer-Grassberger, algorithm 1: :math:`\epsilon_i` the Chebyshev distance to
    the k-th neighbour in the joint space, :math:`n_x(i)`, :math:`n_y(i)` the points
    strictly closer than :math:`\epsilon_i` in each marginal,
    :math:`\hat I = \psi(k) + \psi(N) - \langle \psi(n_x + 1) + \psi(n_y + 1) \rangle`.
``ksg_conditional_mutual_information``
    Frenzel-Pompe: :math:`\hat I(X;Y|Z) = \psi(k) - \langle \psi(n_{xz}+1) + \psi(n_{yz}+1)
    - \psi(n_z+1) \rangle` with :math:`\epsilon_i` from the joint :math:`(x, y, z)`.
``mixed_mutual_information``
    Ross (2014), a discrete ``x`` and a continuous ``y`` (what scikit-learn's
    ``mutual_info_classif`` uses): :math:`\hat I = \psi(N) + \langle\psi(k_i)\rangle -
    \langle\psi(N_{x_i})\rangle - \langle\psi(m_i)\rangle`.
``knn_kl_divergence``
    Wang-Kulkarni-Verdú (2009): :math:`\hat D(p\|q) = \frac dn \sum_i \log\frac{\nu_k(i)}
    {\rho_k(i)} + \log\frac{m}{n-1}` (Euclidean), :math:`\rho` within the sample of
    :math:`p`, :math:`\nu` to the sample of :math:`q`.
``gaussian_mutual_information``
    The closed form for jointly Gaussian data, :math:`\tfrac12 \log\frac{\det\Sigma_x
    \det\Sigma_y}{\det\Sigma}` (:math:`-\tfrac12\log(1-\rho^2)` in one dimension each),
    from the sample covariance: a baseline to compare the kNN estimates with.

Determinism and ties: each column is scaled to unit variance (``standardize=True``, as
scikit-learn does), then, as Kraskov et al. advise, a seeded jitter of ``jitter`` times
``max(1, mean |column|)`` standard normal noise is added (``numpy.random.default_rng(seed)``;
scikit-learn's default scale, 1e-10), so duplicate points do not tie. With ``jitter=0``
duplicates are allowed: a point whose k-th neighbour is at distance 0 counts no strictly
closer neighbour, and in ``kl_entropy`` its zero radius is replaced by the distance to
its nearest distinct point, so no estimate is ever ``-inf``. Neighbour searches use
scipy's ``cKDTree`` on every core (``workers=-1``); the results do not depend on the
number of threads. Nothing is clipped at 0. Nats by default, bits with ``base=2``.

In high dimensions every kNN estimator is biased (towards 0 for large MI); see
``docs/estimate.md`` for the measured table.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from infolens._backend import describe
from infolens._estimate_entropy import _scipy_special
from infolens.errors import InputError
from infolens.measures import _base_divisor as _div

__all__ = [
    "gaussian_mutual_information",
    "kl_entropy",
    "knn_kl_divergence",
    "ksg_conditional_mutual_information",
    "ksg_mutual_information",
    "mixed_mutual_information",
]


def _ckdtree() -> Any:
    _scipy_special()  # the same clear error when scipy is missing
    from scipy.spatial import cKDTree

    return cKDTree


def _points(x: Any, name: str, n: int | None = None) -> np.ndarray:
    """``x`` as a float64 ``[N, d]`` array of finite values."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{name}: expected numbers, got {describe(x)}") from e
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise InputError(f"{name}: expected [samples] or [samples, dims], got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name}: expected finite values, got NaN or inf")
    if n is not None and a.shape[0] != n:
        raise InputError(f"{name}: expected {n} samples (as x), got {a.shape[0]}")
    return a


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k: expected an integer >= 1, got {describe(k)}")
    if n <= k:
        raise InputError(f"x: expected more than k = {k} samples, got {n}")
    return int(k)


def _prepare(
    cols: list[np.ndarray], standardize: bool, jitter: float, seed: int
) -> list[np.ndarray]:
    """Scale each column to unit variance and add the seeded jitter (see module docs)."""
    if not (isinstance(jitter, (int, float)) and jitter >= 0 and math.isfinite(jitter)):
        raise InputError(f"jitter: expected a finite number >= 0, got {describe(jitter)}")
    rng = np.random.default_rng(seed)
    out = []
    for c in cols:
        c = c.copy()
        if standardize:
            sd = c.std(axis=0)
            c /= np.where(sd > 0, sd, 1.0)
        if jitter:
            c += jitter * np.maximum(1.0, np.mean(np.abs(c), axis=0)) * rng.standard_normal(c.shape)
        out.append(c)
    return out


def _kth(tree: Any, pts: np.ndarray, k: int, p: float) -> np.ndarray:
    """Distance from each point to its k-th neighbour (the point itself excluded)."""
    d, _ = tree.query(pts, k=[k + 1], p=p, workers=-1)
    return np.asarray(d[:, 0], dtype=np.float64)


def _boundary(s: np.ndarray, x: np.ndarray, r: np.ndarray, upper: bool) -> np.ndarray:
    """Per query, the first index of sorted ``s`` where ``|s_j - x| <= r`` stops (upper)
    or starts (lower) holding, with the distance rounded exactly as a tree computes it.

    ``fl(s_j - x)`` is monotone in ``s_j``, so the set is an interval of the sorted
    array: a ``searchsorted`` guess, corrected a step at a time (rounding moves it by at
    most a few places), and a bisection for the queries still unresolved (long runs of
    tied values)."""
    n = len(s)

    def inside(j: np.ndarray, q: np.ndarray) -> np.ndarray:
        # upper: is s_j still within (s_j - x <= r)?  lower: is s_j still below (x - s_j > r)?
        jj = np.minimum(j, n - 1)
        ok = (s[jj] - x[q] <= r[q]) if upper else (x[q] - s[jj] > r[q])
        return ok & (j < n)

    idx = np.searchsorted(s, x + r if upper else x - r, side="right" if upper else "left")
    idx = idx.astype(np.int64)
    q = np.arange(len(x))
    for _ in range(8):  # move right while the predicate holds at idx, left while not at idx-1
        fwd = inside(idx, q)
        back = ~inside(idx - 1, q) & (idx > 0)
        if not (fwd.any() or back.any()):
            return idx
        idx = idx + fwd - back
    lo, hi = np.zeros(len(x), dtype=np.int64), np.full(len(x), n, dtype=np.int64)
    for _ in range(max(1, int(n).bit_length())):  # exact bisection (monotone predicate)
        mid = (lo + hi) // 2
        ok = inside(mid, q)
        lo, hi = np.where(ok, mid + 1, lo), np.where(ok, hi, mid)
    return lo


def _strictly_within(pts: np.ndarray, eps: np.ndarray, tree_cls: Any) -> np.ndarray:
    """Per point, the number of *other* points at Chebyshev distance < eps (one-dimensional
    marginals by sorting, others with a tree; both count exactly the same points)."""
    r = np.maximum(np.nextafter(eps, 0.0), 0.0)
    if pts.shape[1] == 1:
        x = pts[:, 0]
        if bool(np.all(x[1:] >= x[:-1])):  # already sorted (ksg sorts by the first column)
            counts = _boundary(x, x, r, True) - _boundary(x, x, r, False)
        else:
            order = np.argsort(x)
            s, rs = x[order], r[order]  # queries in sorted order: cache-friendly searches
            counts = np.empty(len(s), dtype=np.int64)
            counts[order] = _boundary(s, s, rs, True) - _boundary(s, s, rs, False)
    else:
        counts = np.asarray(
            tree_cls(pts, balanced_tree=False, compact_nodes=False).query_ball_point(
                pts, r=r, p=np.inf, return_length=True, workers=-1
            )
        )
    # eps = 0 (duplicates, jitter off): no point is strictly closer; r = 0 would count them
    return np.where(eps > 0, counts - 1, 0).astype(np.float64)


def _both_within(cols: list[np.ndarray], eps: np.ndarray, tree_cls: Any) -> list[np.ndarray]:
    """:func:`_strictly_within` for each marginal, the marginals on threads of their own
    (the searches release the GIL); the counts are the same as one after another."""
    if len(eps) < 20_000 or (os.cpu_count() or 1) < 2:
        return [_strictly_within(c, eps, tree_cls) for c in cols]
    with ThreadPoolExecutor(max_workers=len(cols)) as pool:
        return list(pool.map(lambda c: _strictly_within(c, eps, tree_cls), cols))


def ksg_mutual_information(
    x: Any,
    y: Any,
    *,
    k: int = 3,
    base: float | None = None,
    standardize: bool = True,
    jitter: float = 1e-10,
    seed: int = 0,
) -> float:
    """KSG mutual information (algorithm 1) of two continuous samples (see the module
    docstring). Not clipped at 0.

    Parameters
    ----------
    x, y : arrays ``[N]`` or ``[N, d]``
    k : int
        Neighbours (3, as Kraskov et al. and scikit-learn).
    base : float, optional
        Nats by default.
    standardize, jitter, seed
        Preprocessing (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(2000); y = 0.8 * x + 0.6 * rng.standard_normal(2000)
    >>> round(-0.5 * float(np.log(1 - 0.8**2)), 3), round(ksg_mutual_information(x, y), 2)
    (0.511, 0.51)
    """
    sp, tree_cls = _scipy_special(), _ckdtree()
    div = _div(base)
    a = _points(x, "x")
    b = _points(y, "y", a.shape[0])
    n = a.shape[0]
    k = _check_k(k, n)
    a, b = _prepare([a, b], standardize, jitter, seed)
    order = np.argsort(a[:, 0])  # the estimate is a mean over points: any order will do, and
    a, b = a[order], b[order]  # sorted queries search the trees with better locality
    joint = np.hstack([a, b])
    tree = tree_cls(joint, leafsize=16, balanced_tree=False, compact_nodes=False)
    eps = _kth(tree, joint, k, np.inf)
    nx, ny = _both_within([a, b], eps, tree_cls)
    mi = sp.digamma(k) + sp.digamma(n) - np.mean(sp.digamma(nx + 1) + sp.digamma(ny + 1))
    return float(mi) / div


def ksg_conditional_mutual_information(
    x: Any,
    y: Any,
    z: Any,
    *,
    k: int = 3,
    base: float | None = None,
    standardize: bool = True,
    jitter: float = 1e-10,
    seed: int = 0,
) -> float:
    """Frenzel-Pompe conditional mutual information I(X;Y|Z) (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> z = rng.standard_normal(3000)
    >>> x = z + 0.5 * rng.standard_normal(3000); y = z + 0.5 * rng.standard_normal(3000)
    >>> abs(ksg_conditional_mutual_information(x, y, z)) < 0.03  # independent given z
    True
    """
    sp, tree_cls = _scipy_special(), _ckdtree()
    div = _div(base)
    a = _points(x, "x")
    b = _points(y, "y", a.shape[0])
    c = _points(z, "z", a.shape[0])
    n = a.shape[0]
    k = _check_k(k, n)
    a, b, c = _prepare([a, b, c], standardize, jitter, seed)
    joint = np.hstack([a, b, c])
    eps = _kth(tree_cls(joint), joint, k, np.inf)
    nxz = _strictly_within(np.hstack([a, c]), eps, tree_cls)
    nyz = _strictly_within(np.hstack([b, c]), eps, tree_cls)
    nz = _strictly_within(c, eps, tree_cls)
    cmi = sp.digamma(k) - np.mean(sp.digamma(nxz + 1) + sp.digamma(nyz + 1) - sp.digamma(nz + 1))
    return float(cmi) / div


def mixed_mutual_information(
    x: Any,
    y: Any,
    *,
    k: int = 3,
    base: float | None = None,
    standardize: bool = True,
    jitter: float = 1e-10,
    seed: int = 0,
) -> float:
    """Ross (2014) mutual information of a discrete ``x`` (labels) and a continuous ``y``.

    Follows scikit-learn's ``_compute_mi_cd``: points whose label occurs once are left
    out; ``k_i = min(k, N_{x_i} - 1)``; ``m_i`` counts the points (itself included) closer
    than the k-th same-label neighbour. Chebyshev distance for multi-dimensional ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(0, 2, 4000); y = x + 0.5 * rng.standard_normal(4000)
    >>> 0.3 < mixed_mutual_information(x, y) < 0.45
    True
    """
    sp, tree_cls = _scipy_special(), _ckdtree()
    div = _div(base)
    labels = np.asarray(x)
    if labels.ndim != 1:
        raise InputError(f"x: expected a 1-D array of labels, got shape {labels.shape}")
    b = _points(y, "y", labels.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k: expected an integer >= 1, got {describe(k)}")
    (b,) = _prepare([b], standardize, jitter, seed)
    _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    codes = codes.reshape(-1)
    n_lab = counts[codes]
    keep = n_lab > 1
    if keep.sum() < 2:
        raise InputError("x: expected at least one label that occurs twice, got none")
    radius = np.zeros(len(codes))
    k_all = np.zeros(len(codes))
    for lab in np.flatnonzero(counts > 1):
        sel = np.flatnonzero(codes == lab)
        kk = min(int(k), len(sel) - 1)
        pts = b[sel]
        r = _kth(tree_cls(pts), pts, kk, np.inf)
        radius[sel] = np.nextafter(r, 0.0)
        k_all[sel] = kk
    bk = b[keep]
    m = np.asarray(
        tree_cls(bk).query_ball_point(
            bk, r=np.maximum(radius[keep], 0.0), p=np.inf, return_length=True, workers=-1
        ),
        dtype=np.float64,
    )
    nk = int(keep.sum())
    mi = (
        sp.digamma(nk)
        + np.mean(sp.digamma(k_all[keep]))
        - np.mean(sp.digamma(n_lab[keep].astype(np.float64)))
        - np.mean(sp.digamma(m))
    )
    return float(mi) / div


def kl_entropy(
    x: Any,
    *,
    k: int = 3,
    base: float | None = None,
    metric: str = "euclidean",
    jitter: float = 1e-10,
    seed: int = 0,
) -> float:
    r"""Kozachenko-Leonenko differential entropy (see the module docstring).

    Not standardised (entropy depends on the scale). ``metric`` is ``"euclidean"`` or
    ``"chebyshev"``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((5000, 2))
    >>> abs(kl_entropy(x) - float(np.log(2 * np.pi * np.e))) < 0.05  # N(0, I_2): 2.838
    True
    """
    sp, tree_cls = _scipy_special(), _ckdtree()
    div = _div(base)
    a = _points(x, "x")
    n, d = a.shape
    k = _check_k(k, n)
    if metric not in ("euclidean", "chebyshev"):
        raise InputError(f"metric: expected 'euclidean' or 'chebyshev', got {describe(metric)}")
    (a,) = _prepare([a], False, jitter, seed)
    p = 2.0 if metric == "euclidean" else np.inf
    tree = tree_cls(a)
    r = _kth(tree, a, k, p)
    if (r == 0).any():  # duplicates (jitter off): the distance to the nearest distinct point
        _, mult = np.unique(a, axis=0, return_counts=True)
        if len(mult) == 1:
            raise InputError("x: expected distinct points, got only copies of one point")
        zero = np.flatnonzero(r == 0)
        kk = min(n - 1, k + int(mult.max()))
        far, _ = tree.query(a[zero], k=list(range(k + 1, kk + 2)), p=p, workers=-1)
        r[zero] = np.where(far > 0, far, np.inf).min(axis=1)
    log_v = (
        d * math.log(2.0) if p == np.inf else (d / 2) * math.log(math.pi) - math.lgamma(d / 2 + 1)
    )
    h = sp.digamma(n) - sp.digamma(k) + log_v + d * np.mean(np.log(r))
    return float(h) / div


def knn_kl_divergence(
    x: Any, y: Any, *, k: int = 1, base: float | None = None, jitter: float = 1e-10, seed: int = 0
) -> float:
    r"""Wang-Kulkarni-Verdú kNN estimate of :math:`D(p\|q)` from samples ``x ~ p`` and
    ``y ~ q`` of the same dimension (Euclidean; see the module docstring). Not clipped.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((4000, 1)); y = 1.0 + rng.standard_normal((4000, 1))
    >>> 0.4 < knn_kl_divergence(x, y) < 0.6  # exact: 0.5
    True
    """
    tree_cls = _ckdtree()
    div = _div(base)
    a = _points(x, "x")
    b = _points(y, "y")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"y: expected dimension {a.shape[1]} (as x), got {b.shape[1]}")
    n, d = a.shape
    m = b.shape[0]
    k = _check_k(k, n)
    if m < k:
        raise InputError(f"y: expected at least k = {k} samples, got {m}")
    a, b = _prepare([a, b], False, jitter, seed)
    rho = _kth(tree_cls(a), a, k, 2.0)
    nu_d, _ = tree_cls(b).query(a, k=[k], p=2.0, workers=-1)
    nu = np.asarray(nu_d[:, 0], dtype=np.float64)
    ok = (rho > 0) & (nu > 0)
    if not ok.any():
        raise InputError("x: expected distinct points, got only copies")
    val = d * np.mean(np.log(nu[ok] / rho[ok])) + math.log(m / (n - 1))
    return float(val) / div


def gaussian_mutual_information(x: Any, y: Any, *, base: float | None = None) -> float:
    r"""Mutual information of jointly Gaussian data from the sample covariance:
    :math:`\tfrac12\log(\det\Sigma_x \det\Sigma_y / \det\Sigma)`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal(100000); y = 0.6 * x + 0.8 * rng.standard_normal(100000)
    >>> round(gaussian_mutual_information(x, y), 3), round(-0.5 * float(np.log(1 - 0.36)), 3)
    (0.223, 0.223)
    """
    div = _div(base)
    a = _points(x, "x")
    b = _points(y, "y", a.shape[0])
    if a.shape[0] < a.shape[1] + b.shape[1] + 1:
        raise InputError("x: expected more samples than dimensions for a covariance")
    cov = np.cov(np.hstack([a, b]), rowvar=False).reshape(a.shape[1] + b.shape[1], -1)
    dx = a.shape[1]
    s_xy = np.linalg.slogdet(cov)
    s_x = np.linalg.slogdet(cov[:dx, :dx])
    s_y = np.linalg.slogdet(cov[dx:, dx:])
    if s_xy[0] <= 0 or s_x[0] <= 0 or s_y[0] <= 0:
        raise InputError(
            "x: expected a non-degenerate covariance (a constant or collinear column?)"
        )
    return float(0.5 * (s_x[1] + s_y[1] - s_xy[1])) / div
