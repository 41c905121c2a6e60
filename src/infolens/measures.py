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
are accumulated in float64. Integer arrays and tensors (counts, integer logits) are
converted to float64 (exactly up to 2^53 in magnitude, to the nearest float64 beyond) and
give float64 results; numpy input in non-native byte order (``'>f8'``) is converted
exactly to native order and keeps its precision. bool and complex inputs are refused, and
``where=`` must be a bool mask (a float or integer mask is refused, not coerced).

Numerical contract (``p``, ``q`` probabilities; logits of ``-inf`` are probability 0)::

    0 * log 0            = 0          (zero-probability entries contribute nothing)
    p_i > 0, q_i = 0     -> D(p||q) = H(p, q) = +inf   (never nan)
    p negative or NaN    -> InputError naming the argument and the value
    sum(p) != 1          -> InputError (tolerance sqrt(eps) of the dtype) unless normalize=True
    logits all -inf      -> InputError (no distribution); +inf or NaN logits -> InputError
    shapes that differ   -> InputError naming both shapes
    bad keyword values   -> InputError naming the keyword and the type that came

Every finite logit is allowed, up to +-1.8e308: log-probabilities are computed as
``(z_i - max z) - log sum exp(z - max z)``, never as ``z_i - logsumexp(z)`` (which rounds
away ``log Z`` next to a huge maximum). A log-probability below the float64 range (a logit
more than 1.8e308 below the maximum, e.g. ``[1e308, -1e308]``) is probability 0.

:class:`~infolens.errors.InputError` is a :class:`ValueError`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from infolens import _backend as B
from infolens._kernels import RowStats, _check_rows, _Ops, fused_rows, rows_per_chunk
from infolens.errors import InputError

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
        raise InputError(f"{label}: expected exactly one of {names}, got {got}")
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
        raise InputError(f"{name}: expected probabilities, got NaN")
    neg = xf < 0
    if bool(ops.any(neg)):
        bad = float(xf[neg].min())
        raise InputError(f"{name}: expected probabilities >= 0, got {bad!r}")
    if bool(ops.any(ops.isposinf(xf))):
        raise InputError(f"{name}: expected finite probabilities, got inf")
    sums = ops.sum(xf)
    if bool(ops.any(sums == 0)):
        raise InputError(f"{name}: expected a distribution, got a row that sums to 0")
    if not normalize:
        tol = math.sqrt(B.dtype_eps(x))
        dev = abs(sums - 1.0)
        worst = float(dev.max())
        if worst > tol:
            idx = int(ops.argmax_flat(dev == dev.max()))
            raise InputError(
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
    _check_axis(axis)
    _check_normalize(normalize)
    picked = [(label, *_pick(label, opts)) for label, opts in specs]
    like_torch = next((v for _, _, _, v in picked if B.is_torch(v)), None)
    arrays = []
    for _label, key, kind, value in picked:
        arr = B.as_array(value, key, like_torch=like_torch)
        if arr.ndim == 0:
            raise InputError(
                f"{key}: expected at least 1 dimension (the distribution), got a scalar"
            )
        arrays.append((key, kind, arr))
    shapes = {tuple(a.shape) for _, _, a in arrays}
    if len(shapes) > 1:
        desc = " vs ".join(f"{k} {tuple(a.shape)}" for k, _, a in arrays)
        raise InputError(f"shape mismatch: expected equal shapes, got {desc}")
    ref = arrays[0][2]
    nd = ref.ndim
    # the result is float64 if any given array is (Python lists do not count)
    given = [a for (*_, v), (_, _, a) in zip(picked, arrays) if not isinstance(v, (list, tuple))]
    ref = next((a for a in given if B.is_float64(a)), given[0] if given else ref)
    if not -nd <= axis < nd:
        raise InputError(f"axis: expected an axis of a {nd}-D input, got {axis}")
    moved = [(k, kind, B.moveaxis(a, axis, -1)) for k, kind, a in arrays]
    batch_shape = tuple(moved[0][2].shape[:-1])
    v = moved[0][2].shape[-1]
    if v == 0:
        raise InputError(f"{moved[0][0]}: expected a non-empty distribution axis, got size 0")

    mask = None
    if where is not None:
        w: Any = B.as_array(where, "where", like_torch=like_torch, dtype="bool")
        try:
            w = w.broadcast_to(batch_shape) if B.is_torch(w) else np.broadcast_to(w, batch_shape)
        except (RuntimeError, ValueError):
            raise InputError(
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
        raise InputError(
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


def _real(x: Any, name: str, expected: str) -> float:
    """``x`` as a float if it is a real number (Python, numpy, or a 0-d numpy array or
    torch tensor of a float or integer dtype); bool, str and anything else: InputError."""
    if isinstance(x, np.ndarray):
        ok = x.ndim == 0 and x.dtype.kind in "iuf"
    elif B.is_torch(x):
        ok = x.ndim == 0 and (x.is_floating_point() or str(x.dtype)[6:] in B._TORCH_INTS)
    else:
        ok = isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
    if not ok:
        raise InputError(f"{name}: expected {expected}, got {B.describe(x)}")
    return float(x)


def _check_base(base: Any) -> float | None:
    """``base`` as a float (``None`` = natural log); positive and not 1, else InputError."""
    if base is None:
        return None
    expected = "a positive number other than 1"
    b = _real(base, "base", expected)
    if not (b > 0 and b != 1 and math.isfinite(b)):
        raise InputError(f"base: expected {expected}, got {B.describe(base)}")
    return b


def _base_divisor(base: Any) -> float:
    """What a value in nats is divided by to be in ``base`` units: ``log(base)``, or 1.0
    for ``None`` (nats); ``base`` checked as :func:`_check_base` does."""
    b = _check_base(base)
    return 1.0 if b is None else math.log(b)


def _check_axis(axis: Any) -> None:
    """``axis`` must be an integer (Python or numpy, not bool); its range is checked later."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise InputError(f"axis: expected an integer axis, got {B.describe(axis)}")


def _check_normalize(normalize: Any) -> None:
    """``normalize`` must be a bool (Python or numpy): ``'no'`` or ``0`` is refused."""
    if not isinstance(normalize, (bool, np.bool_)):
        raise InputError(f"normalize: expected True or False, got {B.describe(normalize)}")


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
        Floating or integer (converted to float64: exact up to 2^53 in magnitude) numpy
        arrays, torch tensors or lists; numpy arrays in non-native byte order are converted
        exactly. bool and complex inputs are refused.
    logits, log_probs : array_like, optional
        Unnormalised logits or log-probabilities; ``-inf`` is probability 0. Any finite
        value is allowed (up to about 1.8e308); a logit more than 1.8e308 below the row's
        maximum is probability 0 too.
    axis : int
        The distribution axis (default: the last).
    base : float, optional
        Logarithm base; ``None`` = natural log (nats), ``2`` = bits. A real number (not a
        str or bool), positive, not 1.
    where : array_like of bool, optional
        Positions (the input shape without ``axis``) to include; others give 0. Must be a
        bool array or tensor, or a Python bool: a float or integer mask is refused.
    normalize : bool
        Renormalise ``p`` (counts or weights) instead of requiring it to sum to 1. Must be
        a bool (Python or numpy).

    Raises
    ------
    InputError
        (a :class:`ValueError`) for any input that is not as described, in one line naming
        the argument, what was expected and what came.

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
            raise InputError(f"targets: expected integer ids, got dtype {t.dtype}")
        t = t.to(torch.int64)
    else:
        t = np.asarray(targets)
        if not np.issubdtype(t.dtype, np.integer):
            raise InputError(f"targets: expected integer ids, got dtype {t.dtype}")
        t = t.astype(np.int64)
    if tuple(t.shape) != shape:
        raise InputError(
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


def _check_alpha(alpha: Any) -> float:
    expected = "an order >= 0 (a real number, inf allowed)"
    a = _real(alpha, "alpha", expected)
    if math.isnan(a) or a < 0:
        raise InputError(f"alpha: expected {expected}, got {B.describe(alpha)}")
    return a


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
        Order, ``>= 0`` (``float('inf')`` allowed): a real number, not a str or bool.
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
        m = ops.amax(lp)  # log max p, in [-log V, 0]
        if math.isinf(alpha):
            return -m
        # H = (alpha m + log sum exp(alpha (lp - m))) / (1 - alpha): alpha (lp - m) <= 0
        # can only overflow to -inf (an exp that is 0 anyway), also for a huge alpha
        zero = ops.isneginf(lp)
        t = ops.where(zero, -math.inf, alpha * ops.where(zero, 0.0, lp - m[:, None]))
        return (alpha / (1.0 - alpha)) * m + ops.log(ops.sum(ops.exp(t))) / (1.0 - alpha)

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
        Order, ``>= 0`` (``float('inf')`` allowed): a real number, not a str or bool.
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
        c = alpha - 1.0
        # log(p^alpha q^(1 - alpha)) = lp + c (lp - lq). lp - lq never overflows (both <= 0)
        # and neither does the sum for c <= 1 (a convex combination for c < 0; below
        # 1.8e308 for 0 < c <= 1), so log-probabilities near -1e308 give no inf - inf.
        if c <= 1.0:
            t = lps + c * (lps - lqs)
            t = ops.where(zp, -math.inf, t)
            t = ops.where(~zp & zq, math.inf if c > 0 else -math.inf, t)
            val = _logsumexp(ops, t) / c
        else:
            # alpha > 2: t could overflow where D = t / c does not, so work with
            # s = t / c = lp / c + (lp - lq) (at most 1.8e308):
            # D = log sum exp(c s) / c = s* + log sum exp(c (s - s*)) / c, s* = max s
            s = ops.where(zp, -math.inf, lps / c + (lps - lqs))
            s = ops.where(~zp & zq, math.inf, s)
            smax = ops.amax(s)
            ms = ops.where(ops.isneginf(smax) | ops.isposinf(smax), 0.0, smax)
            val = smax + ops.log(ops.sum(ops.exp(c * (s - ms[:, None])))) / c
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
