r"""Information measures of categorical distributions: entropy, cross-entropy, KL, JS,
surprisal, Rényi entropy and divergence, total variation.

Every function takes its distributions in one of three forms, freely mixed:

* probabilities, positionally: ``entropy(p)``, ``kl_divergence(p, q)``;
* unnormalised logits by keyword: ``logits=`` (one distribution), ``p_logits=``, ``q_logits=``;
* log-probabilities by keyword: ``log_probs=``, ``p_log_probs=``, ``q_log_probs=``.

Common keywords: ``axis=-1`` (the vocabulary axis), ``base=None`` (natural log: **nats**;
``base=2`` gives **bits**), ``where=`` (a boolean mask over positions, i.e. the input shape
without ``axis``: excluded positions are neither validated nor computed and give 0), and
``normalize=False`` (``True`` renormalises counts or weights, as :func:`scipy.stats.entropy`
does silently).

Inputs may be numpy arrays, torch tensors (any device; results keep autograd), or nested
Python sequences. The result has the input's array type and device; float64 inputs give
float64, every other floating dtype (float32, float16, bfloat16) gives float32. All sums
are accumulated in float64.

Numerical contract (``p``, ``q`` probabilities; logits of ``-inf`` are probability 0)::

    0 * log 0            = 0          (zero-probability entries contribute nothing)
    p_i > 0, q_i = 0     -> D(p||q) = H(p, q) = +inf   (never nan)
    p negative or NaN    -> ValueError naming the argument and the value
    sum(p) != 1          -> ValueError (tolerance sqrt(eps) of the dtype) unless normalize=True
    logits all -inf      -> ValueError (no distribution); +inf or NaN logits -> ValueError
    shapes that differ   -> ValueError naming both shapes
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from infolens import _backend as B
from infolens._kernels import RowStats, _check_rows, _Ops, fused_rows, rows_per_chunk

__all__ = [
    "cross_entropy",
    "entropy",
    "js_divergence",
    "kl_divergence",
    "renyi_divergence",
    "renyi_entropy",
    "surprisal",
    "total_variation",
]

Array = Any


# --------------------------------------------------------------------------- inputs


class _Dist:
    """One distribution argument brought to log space as a 2-D ``[rows, V]`` array."""

    def __init__(
        self,
        rows: Array,
        name: str,
        kind: str,
        source: Array,
        normalize: bool,
    ) -> None:
        self.rows = rows
        self.name = name
        self.kind = kind
        self.normalize = normalize
        self.source = source  # the array as given (for dtype and type of the result)


def _pick(label: str, options: dict[str, Any]) -> tuple[str, str, Any]:
    """Exactly one of ``options`` (kind -> value) must be given."""
    given = [(k, v) for k, v in options.items() if v is not None]
    if len(given) != 1:
        names = ", ".join(f"{n}" for n in options)
        got = "none" if not given else " and ".join(k for k, _ in given)
        raise ValueError(f"{label}: expected exactly one of {names}, got {got}")
    key, value = given[0]
    kind = (
        "probs"
        if not key.endswith(("logits", "log_probs"))
        else ("logits" if key.endswith("logits") else "log_probs")
    )
    return key, kind, value


def _validate_probs(x: Array, name: str, normalize: bool) -> Array:
    """Check that every row of the 2-D array ``x`` is a distribution; return log-probs."""
    ops = _Ops(B.is_torch(x))
    if x.shape[0] == 0:
        return ops.f64(x)
    xf = ops.f64(x)
    out = xf
    if ops.torch:
        xf = xf.detach()  # checks only: float() of a grad tensor warns
    if bool(ops.any(ops.isnan(xf))):
        raise ValueError(f"{name}: expected probabilities, got NaN")
    neg = xf < 0
    if bool(ops.any(neg)):
        bad = float(xf[neg].min())
        raise ValueError(f"{name}: expected probabilities >= 0, got {bad!r}")
    if bool(ops.any(ops.isposinf(xf))):
        raise ValueError(f"{name}: expected finite probabilities, got inf")
    sums = ops.sum(xf)
    if bool(ops.any(sums == 0)):
        raise ValueError(f"{name}: expected a distribution, got a row that sums to 0")
    if not normalize:
        tol = math.sqrt(B.dtype_eps(x))
        dev = abs(sums - 1.0)
        worst = float(dev.max())
        if worst > tol:
            idx = int(ops.argmax_flat(dev == dev.max()))
            raise ValueError(
                f"{name}: expected probabilities that sum to 1 (tolerance {tol:.1e}), got a "
                f"row summing to {float(sums[idx])!r}; pass normalize=True to renormalise"
            )
    # log(0) = -inf marks a zero-probability entry; the kernels normalise by the sum
    if ops.torch:
        return ops.t.log(out)
    with np.errstate(divide="ignore"):
        return np.log(out)


def _dists(
    specs: list[tuple[str, dict[str, Any]]],
    axis: int,
    where: Any,
    normalize: bool,
) -> tuple[list[_Dist], tuple[int, ...], Any, Array | None]:
    """Turn the user's arguments into 2-D log-space row arrays, sharing shape checks.

    Returns the distributions, the batch shape, the position mask (flattened, or None) and
    a reference array for the result's type.
    """
    picked = [(label, *_pick(label, opts)) for label, opts in specs]
    like_torch = next((v for _, _, _, v in picked if B.is_torch(v)), None)
    arrays = []
    for _label, key, kind, value in picked:
        arr = B.as_array(value, key, like_torch=like_torch)
        if arr.ndim == 0:
            raise ValueError(
                f"{key}: expected at least 1 dimension (the distribution), got a scalar"
            )
        arrays.append((key, kind, arr))
    shapes = {tuple(a.shape) for _, _, a in arrays}
    if len(shapes) > 1:
        desc = " vs ".join(f"{k} {tuple(a.shape)}" for k, _, a in arrays)
        raise ValueError(f"shape mismatch: expected equal shapes, got {desc}")
    ref = arrays[0][2]
    nd = ref.ndim
    # the result is float64 if any given array is (Python lists do not count)
    given = [a for (*_, v), (_, _, a) in zip(picked, arrays) if not isinstance(v, (list, tuple))]
    ref = next((a for a in given if B.is_float64(a)), given[0] if given else ref)
    if not -nd <= axis < nd:
        raise ValueError(f"axis: expected an axis of a {nd}-D input, got {axis}")
    moved = [(k, kind, B.moveaxis(a, axis, -1)) for k, kind, a in arrays]
    batch_shape = tuple(moved[0][2].shape[:-1])
    v = moved[0][2].shape[-1]
    if v == 0:
        raise ValueError(f"{moved[0][0]}: expected a non-empty distribution axis, got size 0")

    mask = None
    if where is not None:
        w: Any = B.as_array(where, "where", like_torch=like_torch, dtype="bool")
        try:
            w = w.broadcast_to(batch_shape) if B.is_torch(w) else np.broadcast_to(w, batch_shape)
        except (RuntimeError, ValueError):
            raise ValueError(
                f"where: expected a mask broadcastable to the positions {batch_shape} "
                f"(the input shape without axis), got shape {tuple(w.shape)}"
            ) from None
        mask = w.reshape(-1)

    dists = []
    for key, kind, a in moved:
        rows = a.reshape(-1, v)
        if mask is not None:
            rows = rows[mask]
        if kind == "probs":
            rows = _validate_probs(rows, key, normalize)
        dists.append(_Dist(rows, key, kind, a, normalize))
    return dists, batch_shape, mask, ref


def _check_lse(d: _Dist, lse: Array) -> None:
    """``log_probs`` inputs must be normalised: log-sum-exp 0 within sqrt(eps)."""
    if d.kind != "log_probs" or d.normalize or lse.shape[0] == 0:
        return
    tol = math.sqrt(B.dtype_eps(d.source))
    worst = abs(lse.detach() if B.is_torch(lse) else lse).max()
    if float(worst) > tol:
        raise ValueError(
            f"{d.name}: expected log-probabilities whose exps sum to 1 (log-sum-exp 0, "
            f"tolerance {tol:.1e}), got log-sum-exp {float(worst)!r}; pass logits= instead "
            f"or normalize=True"
        )


def _finish(
    vals: Array, batch_shape: tuple[int, ...], mask: Any, ref: Array, base: float | None
) -> Array:
    """Scale to ``base``, scatter masked positions, reshape, cast to the result dtype."""
    if base is not None:  # already checked by _check_base
        vals = vals / math.log(base)
    dtype = B.result_dtype(ref)
    if mask is not None:
        if B.is_torch(vals):
            import torch

            full: Any = torch.zeros(mask.shape, dtype=vals.dtype, device=vals.device)
            full = full.masked_scatter(mask, vals)
        else:
            full = np.zeros(mask.shape, dtype=np.float64)
            full[mask] = vals
        vals = full
    vals = B.cast(vals.reshape(batch_shape), dtype)
    if not B.is_torch(vals) and vals.ndim == 0:
        return vals[()]
    return vals


def _check_base(base: Any) -> float | None:
    """``base`` as a float (``None`` = natural log); positive and not 1, else ValueError."""
    if base is None:
        return None
    try:
        if isinstance(base, (str, bytes, bool, np.bool_)):
            raise TypeError
        b = float(base)  # Python, numpy and 0-d torch numbers
    except (TypeError, ValueError):
        raise ValueError(f"base: expected a positive number other than 1, got {base!r}") from None
    if not (b > 0 and b != 1 and math.isfinite(b)):
        raise ValueError(f"base: expected a positive number other than 1, got {base!r}")
    return b


# --------------------------------------------------------------------------- measures


def _one_dist(
    p: Any, logits: Any, log_probs: Any, axis: int, where: Any, normalize: bool
) -> tuple[_Dist, tuple[int, ...], Any, Array]:
    dists, shape, mask, ref = _dists(
        [("distribution", {"p": p, "logits": logits, "log_probs": log_probs})],
        axis,
        where,
        normalize,
    )
    return dists[0], shape, mask, ref


def _two_dists(
    p: Any,
    q: Any,
    p_logits: Any,
    q_logits: Any,
    p_log_probs: Any,
    q_log_probs: Any,
    axis: int,
    where: Any,
    normalize: bool,
) -> tuple[_Dist, _Dist, tuple[int, ...], Any, Array]:
    dists, shape, mask, ref = _dists(
        [
            ("p", {"p": p, "p_logits": p_logits, "p_log_probs": p_log_probs}),
            ("q", {"q": q, "q_logits": q_logits, "q_log_probs": q_log_probs}),
        ],
        axis,
        where,
        normalize,
    )
    return dists[0], dists[1], shape, mask, ref


def entropy(
    p: Any = None,
    *,
    logits: Any = None,
    log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i`.

    Parameters
    ----------
    p : array_like, optional
        Probabilities along ``axis``. Give exactly one of ``p``, ``logits``, ``log_probs``.
    logits, log_probs : array_like, optional
        Unnormalised logits or log-probabilities; ``-inf`` is probability 0.
    axis : int
        The distribution axis (default: the last).
    base : float, optional
        Logarithm base; ``None`` = natural log (nats), ``2`` = bits.
    where : array_like of bool, optional
        Positions (the input shape without ``axis``) to include; others give 0.
    normalize : bool
        Renormalise ``p`` (counts or weights) instead of requiring it to sum to 1.

    Returns
    -------
    array or scalar
        Entropy per position, in nats (or in units of ``log(base)``), ``>= 0``.

    Notes
    -----
    Piecewise: :math:`0 \log 0 = 0`; a one-hot distribution has entropy 0; the uniform
    distribution over ``V`` outcomes has the maximum, :math:`\log V`. From logits ``z``:
    :math:`H = \log Z - \sum_i e^{z_i - m} (z_i - m) / Z` with :math:`m = \max z`,
    :math:`Z = \sum_i e^{z_i - m}`, accumulated in float64, never materialising
    probabilities.

    Examples
    --------
    >>> from infolens import entropy
    >>> float(entropy([0.5, 0.5], base=2))
    1.0
    >>> round(float(entropy([0.9, 0.1], base=2)), 3)
    0.469
    >>> float(entropy(logits=[0.0, float("-inf")]))
    0.0
    """
    base = _check_base(base)
    d, shape, mask, ref = _one_dist(p, logits, log_probs, axis, where, normalize)
    stats = fused_rows(d.rows, names=(d.name, d.name))
    _check_lse(d, stats.lse_p)
    return _finish(stats.entropy_p, shape, mask, ref, base)


def _pairwise(
    field: str,
    p: Any,
    q: Any,
    p_logits: Any,
    q_logits: Any,
    p_log_probs: Any,
    q_log_probs: Any,
    axis: int,
    base: float | None,
    where: Any,
    normalize: bool,
    js: bool = False,
) -> Array:
    base = _check_base(base)
    dp, dq, shape, mask, ref = _two_dists(
        p, q, p_logits, q_logits, p_log_probs, q_log_probs, axis, where, normalize
    )
    stats: RowStats = fused_rows(dp.rows, dq.rows, js=js, names=(dp.name, dq.name))
    _check_lse(dp, stats.lse_p)
    _check_lse(dq, stats.lse_q)
    return _finish(getattr(stats, field), shape, mask, ref, base)


def cross_entropy(
    p: Any = None,
    q: Any = None,
    *,
    p_logits: Any = None,
    q_logits: Any = None,
    p_log_probs: Any = None,
    q_log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Cross-entropy :math:`H(p, q) = -\sum_i p_i \log q_i` (expectation under ``p``).

    ``H(p, q) = H(p) + D(p \| q)``. In LLM training ``p`` is the data (often one-hot) and
    ``q`` the model; with a one-hot ``p`` this is the model's surprisal of the label.

    Parameters
    ----------
    p, q : array_like, optional
        Probabilities; or give ``p_logits``/``p_log_probs`` and ``q_logits``/``q_log_probs``.
    axis, base, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Cross-entropy in nats (or ``log(base)`` units), ``>= H(p)``.

    Notes
    -----
    Piecewise: terms with :math:`p_i = 0` are 0 (also where :math:`q_i = 0`); any
    :math:`p_i > 0` with :math:`q_i = 0` gives :math:`+\infty`.

    Examples
    --------
    >>> from infolens import cross_entropy
    >>> float(cross_entropy([0.5, 0.5], [0.25, 0.75], base=2))  # doctest: +ELLIPSIS
    1.207...
    >>> float(cross_entropy([1.0, 0.0], [0.5, 0.5], base=2))
    1.0
    >>> float(cross_entropy([0.5, 0.5], [1.0, 0.0]))
    inf
    """
    return _pairwise(
        "cross_pq", p, q, p_logits, q_logits, p_log_probs, q_log_probs, axis, base, where, normalize
    )


def kl_divergence(
    p: Any = None,
    q: Any = None,
    *,
    p_logits: Any = None,
    q_logits: Any = None,
    p_log_probs: Any = None,
    q_log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Kullback–Leibler divergence :math:`D(p \| q) = \sum_i p_i \log (p_i / q_i)`.

    The first argument is the distribution the expectation is taken under (the maths'
    order, unlike :func:`torch.nn.functional.kl_div`, whose first argument is ``log q``).
    Minimising :math:`D(p \| q)` over ``q`` ("forward KL") is mass-covering; minimising
    :math:`D(q \| p)` over ``q`` ("reverse KL") is mode-seeking.

    Parameters
    ----------
    p, q : array_like, optional
        Probabilities; or give ``p_logits``/``p_log_probs`` and ``q_logits``/``q_log_probs``.
    axis, base, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Divergence in nats (or ``log(base)`` units), ``>= 0``, 0 iff ``p == q``.

    Notes
    -----
    Piecewise, as :func:`scipy.special.rel_entr`: :math:`p_i \log(p_i/q_i)` for
    :math:`p_i, q_i > 0`; 0 for :math:`p_i = 0`; :math:`+\infty` for :math:`p_i > 0 = q_i`.
    From logits it is computed as
    :math:`\sum_i p_i (x_i - y_i) + \log Z_q - \log Z_p` (shifted logits ``x``, ``y``) in
    float64: the absolute error is about 1e-16 (float64 input), so a KL below about 1e-4 is
    accurate in absolute rather than relative terms. Rounding below 0 is clamped to 0.

    Examples
    --------
    >>> from infolens import kl_divergence
    >>> float(kl_divergence([0.5, 0.5], [0.5, 0.5]))
    0.0
    >>> round(float(kl_divergence([0.5, 0.5], [0.9, 0.1], base=2)), 4)
    0.737
    >>> float(kl_divergence([0.5, 0.5], q_logits=[0.0, float("-inf")]))
    inf
    """
    return _pairwise(
        "kl_pq", p, q, p_logits, q_logits, p_log_probs, q_log_probs, axis, base, where, normalize
    )


def js_divergence(
    p: Any = None,
    q: Any = None,
    *,
    p_logits: Any = None,
    q_logits: Any = None,
    p_log_probs: Any = None,
    q_log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Jensen–Shannon divergence
    :math:`JS(p, q) = \tfrac12 D(p \| m) + \tfrac12 D(q \| m)`, :math:`m = (p + q)/2`.

    Symmetric, always finite, :math:`0 \le JS \le \log 2` (1 bit). Its square root is a
    metric (:func:`scipy.spatial.distance.jensenshannon` returns that root).

    Parameters
    ----------
    p, q : array_like, optional
        Probabilities; or give ``p_logits``/``p_log_probs`` and ``q_logits``/``q_log_probs``.
    axis, base, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Divergence in nats (or ``log(base)`` units).

    Examples
    --------
    >>> from infolens import js_divergence
    >>> float(js_divergence([1.0, 0.0], [0.0, 1.0], base=2))
    1.0
    >>> float(js_divergence([0.3, 0.7], [0.3, 0.7]))
    0.0
    """
    return _pairwise(
        "js",
        p,
        q,
        p_logits,
        q_logits,
        p_log_probs,
        q_log_probs,
        axis,
        base,
        where,
        normalize,
        js=True,
    )


def surprisal(
    targets: Any,
    p: Any = None,
    *,
    logits: Any = None,
    log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Surprisal (self-information) of observed outcomes, :math:`-\log p(t)`, per position.

    With a language model's logits of shape ``[..., V]`` and the observed next tokens of
    shape ``[...]``, this is the per-token negative log-likelihood (the training loss before
    averaging); ``exp`` of its mean is the perplexity.

    Parameters
    ----------
    targets : array_like of int
        Observed outcome index per position, shape = input shape without ``axis``.
    p, logits, log_probs : array_like
        The distribution, as in :func:`entropy`.
    axis, base, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Surprisal in nats (or ``log(base)`` units), ``>= 0``; ``+inf`` for an outcome of
        probability 0.

    Examples
    --------
    >>> from infolens import surprisal
    >>> float(surprisal(0, [0.25, 0.75], base=2))
    2.0
    >>> surprisal([1, 0], logits=[[0.0, 0.0], [0.0, float("-inf")]]).tolist()
    [0.6931471805599453, 0.0]
    """
    base = _check_base(base)
    d, shape, mask, ref = _one_dist(p, logits, log_probs, axis, where, normalize)
    if B.is_torch(d.rows):
        import torch

        t = (
            targets.to(d.rows.device)
            if B.is_torch(targets)
            else torch.as_tensor(np.asarray(targets), device=d.rows.device)
        )
        if t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(f"targets: expected integer ids, got dtype {t.dtype}")
        t = t.to(torch.int64)
    else:
        t = np.asarray(targets)
        if not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"targets: expected integer ids, got dtype {t.dtype}")
        t = t.astype(np.int64)
    if tuple(t.shape) != shape:
        raise ValueError(
            f"targets: expected shape {shape} (the input without axis), got {tuple(t.shape)}"
        )
    t = t.reshape(-1)
    if mask is not None:
        t = t[mask]
    stats = fused_rows(d.rows, targets=t, names=(d.name, d.name))
    _check_lse(d, stats.lse_p)
    return _finish(stats.surprisal_p, shape, mask, ref, base)


# --------------------------------------------------------------------------- Rényi, TV


def _log_normalized(ops: _Ops, d: _Dist, rows: Array) -> Array:
    """Row-wise log-softmax of one chunk in float64, keeping -inf entries.

    Logits and log-probabilities are validated here, chunk by chunk, as :func:`fused_rows`
    validates them for the other measures: NaN, +inf, all -inf rows and unnormalised
    log-probabilities raise.
    """
    r = ops.f64(rows)
    m = ops.amax(r)
    if d.kind != "probs":
        _check_rows(ops, m, d.name)
    x = r - m[:, None]
    logz = ops.log(ops.sum(ops.exp(x)))
    if d.kind == "log_probs":
        _check_lse(d, m + logz)
    return x - logz[:, None]


def _chunked(dists: list[_Dist], fn: Callable[..., Array]) -> Array:
    """Apply ``fn(ops, *log_probs_chunks)`` to row chunks of ``dists`` (bounded memory)."""
    rows = [d.rows for d in dists]
    ops = _Ops(B.is_torch(rows[0]))
    n, v = rows[0].shape
    step = rows_per_chunk(v, 6 * len(rows))
    parts = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for lo in range(0, max(n, 1), step):
            parts.append(
                fn(ops, *[_log_normalized(ops, d, r[lo : lo + step]) for d, r in zip(dists, rows)])
            )
    return ops.concat(parts)


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if math.isnan(alpha) or alpha < 0:
        raise ValueError(f"alpha: expected an order >= 0 (inf allowed), got {alpha!r}")
    return alpha


def _logsumexp(ops: _Ops, t: Array) -> Array:
    m = ops.amax(t)
    ms = ops.where(ops.isneginf(m) | ops.isposinf(m), 0.0, m)
    return ops.log(ops.sum(ops.exp(t - ms[:, None]))) + ms


def renyi_entropy(
    p: Any = None,
    alpha: float = 2.0,
    *,
    logits: Any = None,
    log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Rényi entropy of order :math:`\alpha`,
    :math:`H_\alpha(p) = \frac{1}{1-\alpha} \log \sum_i p_i^\alpha`.

    Limits: :math:`\alpha = 0` gives :math:`\log |\{i : p_i > 0\}|` (Hartley),
    :math:`\alpha = 1` the Shannon entropy, :math:`\alpha = \infty` the min-entropy
    :math:`-\log \max_i p_i`; :math:`\alpha = 2` is the collision entropy. Non-increasing in
    :math:`\alpha`.

    Parameters
    ----------
    p, logits, log_probs : array_like
        The distribution, as in :func:`entropy`.
    alpha : float
        Order, ``>= 0`` (``float('inf')`` allowed).
    axis, base, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Entropy in nats (or ``log(base)`` units).

    Examples
    --------
    >>> from infolens import renyi_entropy
    >>> float(renyi_entropy([0.25] * 4, 2, base=2))
    2.0
    >>> round(float(renyi_entropy([0.5, 0.25, 0.25], float("inf"), base=2)), 12)
    1.0
    """
    base = _check_base(base)
    alpha = _check_alpha(alpha)
    if alpha == 1:
        return entropy(
            p,
            logits=logits,
            log_probs=log_probs,
            axis=axis,
            base=base,
            where=where,
            normalize=normalize,
        )
    d, shape, mask, ref = _one_dist(p, logits, log_probs, axis, where, normalize)

    def fn(ops: _Ops, lp: Array) -> Array:
        if alpha == 0:
            return ops.log(ops.f64(ops.count_rows(~ops.isneginf(lp))))
        if math.isinf(alpha):
            return -ops.amax(lp)
        t = ops.where(ops.isneginf(lp), -math.inf, alpha * ops.where(ops.isneginf(lp), 0.0, lp))
        return _logsumexp(ops, t) / (1.0 - alpha)

    return _finish(_chunked([d], fn), shape, mask, ref, base)


def renyi_divergence(
    p: Any = None,
    q: Any = None,
    alpha: float = 2.0,
    *,
    p_logits: Any = None,
    q_logits: Any = None,
    p_log_probs: Any = None,
    q_log_probs: Any = None,
    axis: int = -1,
    base: float | None = None,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Rényi divergence of order :math:`\alpha`,
    :math:`D_\alpha(p \| q) = \frac{1}{\alpha-1} \log \sum_i p_i^\alpha q_i^{1-\alpha}`.

    Limits: :math:`\alpha = 1` is :math:`D(p \| q)` (KL); :math:`\alpha = 0` is
    :math:`-\log \sum_{i: p_i > 0} q_i`; :math:`\alpha = \infty` is
    :math:`\log \max_{i: p_i > 0} p_i / q_i`. :math:`\alpha = 1/2` gives
    :math:`-2 \log` of the Bhattacharyya coefficient. Non-decreasing in :math:`\alpha`.

    Parameters
    ----------
    p, q : array_like, optional
        Probabilities; or the ``*_logits`` / ``*_log_probs`` keywords.
    alpha : float
        Order, ``>= 0`` (``float('inf')`` allowed).
    axis, base, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Divergence in nats (or ``log(base)`` units), ``>= 0``.

    Notes
    -----
    Piecewise: terms with :math:`p_i = 0` are 0 (for :math:`\alpha > 0`); a
    :math:`p_i > 0` with :math:`q_i = 0` gives :math:`+\infty` for :math:`\alpha \ge 1` and
    contributes 0 for :math:`\alpha < 1`.

    Examples
    --------
    >>> from infolens import renyi_divergence
    >>> float(renyi_divergence([0.5, 0.5], [0.5, 0.5], 2))
    0.0
    >>> round(float(renyi_divergence([1.0, 0.0], [0.5, 0.5], 2, base=2)), 12)
    1.0
    """
    base = _check_base(base)
    alpha = _check_alpha(alpha)
    if alpha == 1:
        return kl_divergence(
            p,
            q,
            p_logits=p_logits,
            q_logits=q_logits,
            p_log_probs=p_log_probs,
            q_log_probs=q_log_probs,
            axis=axis,
            base=base,
            where=where,
            normalize=normalize,
        )
    dp, dq, shape, mask, ref = _two_dists(
        p, q, p_logits, q_logits, p_log_probs, q_log_probs, axis, where, normalize
    )

    def fn(ops: _Ops, lp: Array, lq: Array) -> Array:
        zp = ops.isneginf(lp)
        zq = ops.isneginf(lq)
        lps = ops.where(zp, 0.0, lp)
        lqs = ops.where(zq, 0.0, lq)
        if alpha == 0:
            t = ops.where(zp | zq, -math.inf, lqs)
            return -_logsumexp(ops, t)
        if math.isinf(alpha):
            r = ops.where(zp, -math.inf, ops.where(zq, math.inf, lps - lqs))
            return ops.amax(r)
        t = alpha * lps + (1.0 - alpha) * lqs
        t = ops.where(zp, -math.inf, t)
        t = ops.where(~zp & zq, math.inf if alpha > 1 else -math.inf, t)
        val = _logsumexp(ops, t) / (alpha - 1.0)
        # floating rounding can leave a -1e-17 for identical distributions
        return ops.where(val < 0, 0.0, val)

    return _finish(_chunked([dp, dq], fn), shape, mask, ref, base)


def total_variation(
    p: Any = None,
    q: Any = None,
    *,
    p_logits: Any = None,
    q_logits: Any = None,
    p_log_probs: Any = None,
    q_log_probs: Any = None,
    axis: int = -1,
    where: Any = None,
    normalize: bool = False,
) -> Array:
    r"""Total variation distance :math:`TV(p, q) = \tfrac12 \sum_i |p_i - q_i|`.

    A probability, not an information quantity (no ``base``): :math:`0 \le TV \le 1`, and by
    Pinsker's inequality :math:`TV \le \sqrt{D(p \| q) / 2}` (KL in nats).

    Parameters
    ----------
    p, q : array_like, optional
        Probabilities; or the ``*_logits`` / ``*_log_probs`` keywords.
    axis, where, normalize
        As in :func:`entropy`.

    Returns
    -------
    array or scalar
        Distance in ``[0, 1]``.

    Examples
    --------
    >>> from infolens import total_variation
    >>> float(total_variation([0.5, 0.5], [0.9, 0.1]))
    0.4
    """
    dp, dq, shape, mask, ref = _two_dists(
        p, q, p_logits, q_logits, p_log_probs, q_log_probs, axis, where, normalize
    )

    def fn(ops: _Ops, lp: Array, lq: Array) -> Array:
        return 0.5 * ops.sum(abs(ops.exp(lp) - ops.exp(lq)))

    return _finish(_chunked([dp, dq], fn), shape, mask, ref, None)
