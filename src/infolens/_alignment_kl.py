"""The per-token KL estimators of :mod:`infolens.alignment` (k1, k2, k3, abs), the trainer
conventions, masks and the named reductions; re-exported there (see its docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from infolens._backend import Array, as_array, describe, is_torch
from infolens.errors import InputError

#: The estimators of :func:`kl_estimate` (infolens's own convention).
ESTIMATORS = ("k1", "k2", "k3", "abs")
#: Trainer conventions: name -> the estimator names that trainer accepts.
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "trl-ppo": ("k1", "k3"),
    "trl-grpo": ("k3",),
    "openrlhf": ("k1", "k2", "k3"),
    "verl": tuple(
        n + s for s in ("", "+") for n in ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")
    ),
}
#: Named reductions over the token (last) axis.
REDUCTIONS = (
    "none",
    "sum",
    "token_mean",
    "sequence_sum",
    "sequence_mean",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
)
_REDUCTION_ALIASES = {
    "token-mean": "token_mean",
    "seq-mean-token-mean": "seq_mean_token_mean",
    "seq-mean-token-sum": "seq_mean_token_sum",
}
#: |log r| below which k3 = expm1(log r) - log r is summed as its series (no cancellation).
_K3_SERIES = 1e-3


# --------------------------------------------------------------------------- inputs


def _xp(x: Array) -> Any:
    if is_torch(x):
        import torch

        return torch
    return np


def _check_reduction(reduction: Any) -> str:
    r = _REDUCTION_ALIASES.get(reduction, reduction) if isinstance(reduction, str) else reduction
    if r not in REDUCTIONS:
        raise InputError(
            f"reduction: expected one of {', '.join(REDUCTIONS)}, got {describe(reduction)}"
        )
    return str(r)


def _mask(mask: Any, shape: tuple[int, ...], like: Array) -> Array | None:
    """``mask`` as a bool array of ``shape`` (bool, or integers/floats that are 0 or 1)."""
    if mask is None:
        return None
    if is_torch(mask) or is_torch(like):
        import torch

        m = mask if is_torch(mask) else torch.as_tensor(np.asarray(mask))
        m = m.to(like.device) if is_torch(like) else m
        if m.dtype != torch.bool:
            if m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
                raise InputError(f"mask: expected bools or 0/1 values, got {describe(mask)}")
            m = m != 0
    else:
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            if m.dtype.kind not in "iuf" or not bool(np.all((m == 0) | (m == 1))):
                raise InputError(f"mask: expected bools or 0/1 values, got {describe(mask)}")
            m = m != 0
    if tuple(m.shape) != tuple(shape):
        raise InputError(f"mask: expected shape {tuple(shape)}, got {tuple(m.shape)}")
    return m


def _logps(logp: Any, ref_logp: Any, mask: Any) -> tuple[Array, Array, Array | None]:
    torchy = is_torch(logp) or is_torch(ref_logp)
    like = logp if is_torch(logp) else ref_logp if torchy else None
    a = as_array(logp, "logp", like_torch=like)
    b = as_array(ref_logp, "ref_logp", like_torch=like)
    if tuple(a.shape) != tuple(b.shape):
        raise InputError(
            f"ref_logp: expected the shape of logp {tuple(a.shape)}, got {tuple(b.shape)}"
        )
    if a.ndim == 0:
        raise InputError("logp: expected an array of per-token log-probabilities, got a scalar")
    m = _mask(mask, tuple(a.shape), a)
    xp = _xp(a)
    for x, name, allow_neg_inf in ((a, "logp", False), (b, "ref_logp", True)):
        bad = xp.isnan(x) | (x == math.inf)
        if not allow_neg_inf:
            bad = bad | (x == -math.inf)
        if m is not None:
            bad = bad & m
        if bool(bad.any()):
            what = "finite or -inf" if allow_neg_inf else "finite"
            first = tuple(int(i) for i in np.argwhere(_to_numpy(bad))[0])
            raise InputError(
                f"{name}: expected {what} log-probabilities on valid tokens, "
                f"got {float(x[first])} at index {first}"
            )
    return a, b, m


def _to_numpy(x: Array) -> np.ndarray:
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def _float(x: Array) -> Array:
    """numpy: float64; torch: at least float32 (half-precision log-probs are widened)."""
    if is_torch(x):
        import torch

        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return np.asarray(x, dtype=np.float64)


def _zero_masked(x: Array, m: Array | None) -> Array:
    if m is None:
        return x
    xp = _xp(x)
    return xp.where(m, x, xp.zeros_like(x))


def _clamp(x: Array, c: Any, name: str) -> Array:
    if c is None:
        return x
    if isinstance(c, (int, float)) and not isinstance(c, bool):
        lo, hi = -float(c), float(c)
    elif isinstance(c, Sequence) and len(c) == 2:
        lo, hi = float(c[0]), float(c[1])
    else:
        raise InputError(f"{name}: expected a number c (for [-c, c]) or a pair (lo, hi), got {c!r}")
    if not lo <= hi or math.isnan(lo) or math.isnan(hi):
        raise InputError(f"{name}: expected lo <= hi, got ({lo}, {hi})")
    if is_torch(x):
        return x.clamp(min=lo, max=hi)
    return np.clip(x, lo, hi)


# --------------------------------------------------------------------------- reductions


def reduce_tokens(values: Any, mask: Any = None, reduction: str = "none") -> Array:
    """Reduce per-token values over the last axis with a named reduction.

    ``values`` is ``[..., T]``; masked tokens count as absent (their values are never
    read). Sequences with no valid token give 0 for ``"sequence_sum"`` and NaN for
    ``"sequence_mean"``; ``"token_mean"`` over no valid token is NaN.

    Parameters
    ----------
    values : array ``[..., T]``
    mask : bool or 0/1 array of the same shape, optional
    reduction : str
        One of :data:`REDUCTIONS` (see the module docstring); verl's hyphenated names are
        accepted.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[1.0, 2.0, 9.0], [3.0, 9.0, 9.0]])
    >>> m = np.array([[1, 1, 0], [1, 0, 0]])
    >>> reduce_tokens(v, m, "sequence_sum").tolist(), float(reduce_tokens(v, m, "token_mean"))
    ([3.0, 3.0], 2.0)
    >>> float(reduce_tokens(v, m, "seq_mean_token_mean"))
    2.25
    """
    r = _check_reduction(reduction)
    torchy = is_torch(values)
    x = values if torchy else np.asarray(values)
    if not torchy and x.dtype.kind != "f":
        x = x.astype(np.float64)
    m = _mask(mask, tuple(x.shape), x)
    x = _zero_masked(x, m)
    if r == "none":
        return x
    t = x.shape[-1]
    n_tok: Any = m.sum(-1) if m is not None else t  # valid tokens per sequence
    seq_sum = x.sum(-1)
    if r == "sequence_sum":
        return seq_sum
    if r == "sum":
        return seq_sum.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        if r == "token_mean":
            total = n_tok.sum() if m is not None else t * int(np.prod(x.shape[:-1]))
            return seq_sum.sum() / total
        seq_mean = seq_sum / n_tok
        if r == "sequence_mean":
            return seq_mean
        if r == "seq_mean_token_mean":
            return seq_mean.mean()
    return seq_sum.mean()  # seq_mean_token_sum


# --------------------------------------------------------------------------- estimators


def _k3(lr: Array) -> Array:
    """expm1(lr) - lr, with the series lr^2/2 + lr^3/6 + ... where |lr| is small (the
    difference cancels there), and no NaN gradient from the branch not taken."""
    xp = _xp(lr)
    small = abs(lr) < _K3_SERIES
    s = xp.where(small, lr, xp.zeros_like(lr))
    big = xp.where(small, xp.ones_like(lr), lr)
    series = s * s * (0.5 + s * (1 / 6 + s * (1 / 24 + s * (1 / 120 + s / 720))))
    direct = xp.expm1(big) - big
    out = xp.where(small, series, direct)
    # log r <= r - 1: rounding can leave -1e-17 only where the true value is ~0
    return out.clamp(min=0.0) if is_torch(out) else np.maximum(out, 0.0)


def _estimate(lr: Array, estimator: str) -> Array:
    if estimator == "k1":
        return -lr
    if estimator == "k2":
        return 0.5 * lr * lr
    if estimator == "k3":
        return _k3(lr)
    return abs(lr)  # abs


def _convention(conv: str, est: str, logp: Array, ref: Array) -> tuple[Array, bool]:
    """(value, straight_through) of a trainer's own formula (see the module docstring)."""
    if conv == "trl-ppo":  # trl/experimental/ppo/ppo_trainer.py
        logr = ref - logp
        return (-logr if est == "k1" else (_exp(logr) - 1) - logr), False
    if conv == "trl-grpo":  # trl/trainer/grpo_trainer.py
        return _exp(ref - logp) - (ref - logp) - 1, False
    if conv == "openrlhf":  # openrlhf/models/utils.py compute_approx_kl
        lr = _to_float32(logp) - _to_float32(ref)
        if est == "k2":
            lr = lr**2 / 2.0
        elif est == "k3":
            lr = _exp(-lr) - 1 + lr
        return _clamp(lr, 10.0, "clamp"), False
    # verl: verl/trainer/ppo/core_algos.py kl_penalty / kl_penalty_forward
    st = est.endswith("+")
    name = est[:-1] if st else est
    if name in ("kl", "k1"):
        v = logp - ref
    elif name == "abs":
        v = abs(logp - ref)
    elif name in ("mse", "k2"):
        v = 0.5 * (logp - ref) ** 2
    else:  # low_var_kl / k3
        kl = _clamp(ref - logp, 20.0, "clamp")
        v = _clamp(_exp(kl) - kl - 1, 10.0, "clamp")
    return v, st and name not in ("mse", "k2")


def _exp(x: Array) -> Array:
    return x.exp() if is_torch(x) else np.exp(x)


def _to_float32(x: Array) -> Array:
    return x.float() if is_torch(x) else np.asarray(x, dtype=np.float32)


def _straight_through(value: Array, logp: Array, ref: Array) -> Array:
    """value in the forward pass, the gradient of k2 = (logp - ref)^2 / 2 (verl's ``+``)."""
    if not is_torch(value):
        return value
    k2 = 0.5 * (logp - ref) ** 2
    return k2 - k2.detach() + value.detach()


def kl_estimate(
    logp: Any,
    ref_logp: Any,
    estimator: str = "k3",
    *,
    mask: Any = None,
    reduction: str = "none",
    clamp: Any = None,
    clamp_log_ratio: Any = None,
    straight_through: bool = False,
    convention: str | None = None,
    old_logp: Any = None,
    importance_correction: bool = False,
) -> Array:
    r"""Per-token estimate of :math:`D_{KL}(\pi \| \pi_{ref})` from the sampled tokens' log-probs.

    With :math:`\log r = \log\pi_{ref}(x_t) - \log\pi(x_t)` on tokens :math:`x_t \sim \pi`:

    - ``"k1"``: :math:`-\log r` (unbiased);
    - ``"k2"``: :math:`\tfrac12 (\log r)^2` (biased, low variance; its gradient is the
      gradient of the KL, which is why verl's ``+`` variants borrow it);
    - ``"k3"``: :math:`(r - 1) - \log r` = ``expm1(log r) - log r`` (unbiased, >= 0; summed as
      its Taylor series for :math:`|\log r| < 10^{-3}` so small values keep full relative
      precision);
    - ``"abs"``: :math:`|\log r|` (biased).

    Parameters
    ----------
    logp, ref_logp : array ``[..., T]``
        Log-probabilities (nats) of the sampled tokens under the policy and the reference.
        ``logp`` must be finite on valid tokens; ``ref_logp`` may be ``-inf`` there (the KL
        is then infinite).
    estimator : str
        ``"k1"``, ``"k2"``, ``"k3"`` or ``"abs"``; with ``convention=``, that trainer's names.
    mask : bool or 0/1 array of the same shape, optional
        Valid tokens; masked tokens give 0 and are never read.
    reduction : str
        See the module docstring (``"none"`` gives per-token values).
    clamp : float or (lo, hi), optional
        Clamp each per-token value (OpenRLHF uses ±10).
    clamp_log_ratio : float or (lo, hi), optional
        Clamp :math:`\log r` before the estimator (verl's k3 uses ±20).
    straight_through : bool
        torch: the forward value of ``estimator``, the gradient of k2 (verl's ``k3+``).
    convention : {"trl-ppo", "trl-grpo", "openrlhf", "verl"}, optional
        That trainer's formula, clamps and estimator names, exactly (``clamp`` and
        ``clamp_log_ratio`` must then be left unset):

        - ``trl-ppo``: ``logr = ref - logp``; k1 ``-logr``, k3 ``(exp(logr) - 1) - logr``.
        - ``trl-grpo``: k3 as ``exp(ref - logp) - (ref - logp) - 1``, unclamped; with
          ``importance_correction=True`` (TRL's ``use_bias_correction_kl``) multiplied by
          ``exp(logp - old_logp)`` (``old_logp`` defaults to ``logp`` detached, as TRL).
        - ``openrlhf``: ``lr = logp.float() - ref.float()``; k1 ``lr``, k2 ``lr**2/2``,
          k3 ``exp(-lr) - 1 + lr``; every one clamped to [-10, 10]; computed in float32.
        - ``verl``: ``kl``/``k1`` ``logp - ref``, ``abs``, ``mse``/``k2``
          ``0.5 (logp - ref)^2``, ``low_var_kl``/``k3`` with ``ref - logp`` clamped to
          ±20 and the result to ±10; a trailing ``+`` keeps the value and takes the
          gradient of k2.
    old_logp : array, optional
        Log-probs of the sampling (old) policy, for ``importance_correction``.
    importance_correction : bool
        Multiply each value by the importance ratio :math:`\pi/\pi_{old}` =
        ``exp(logp - old_logp)`` (TRL GRPO's bias correction for off-policy samples).

    Returns
    -------
    array
        Nats; reduced as ``reduction`` says. numpy input gives float64 (float32 for
        ``convention="openrlhf"``, as OpenRLHF computes); torch keeps autograd.

    Examples
    --------
    >>> import numpy as np
    >>> logp, ref = np.log([0.5, 0.25]), np.log([0.25, 0.5])
    >>> kl_estimate(logp, ref, "k1").round(4).tolist()
    [0.6931, -0.6931]
    >>> kl_estimate(logp, ref, "k3").round(4).tolist()
    [0.1931, 0.3069]
    >>> float(kl_estimate(logp, ref, "k3", reduction="token_mean").round(4))
    0.25
    """
    if not isinstance(estimator, str):
        raise InputError(f"estimator: expected a name, got {describe(estimator)}")
    if convention is not None:
        if convention not in CONVENTIONS:
            raise InputError(
                f"convention: expected one of {', '.join(CONVENTIONS)}, got {describe(convention)}"
            )
        if estimator not in CONVENTIONS[convention]:
            raise InputError(
                f"estimator: {convention} accepts {', '.join(CONVENTIONS[convention])}, "
                f"got {estimator!r}"
            )
        if clamp is not None or clamp_log_ratio is not None:
            raise InputError(
                f"clamp: convention {convention!r} fixes its own clamps; leave it unset"
            )
    elif estimator not in ESTIMATORS:
        raise InputError(f"estimator: expected one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    if importance_correction and convention not in (None, "trl-grpo"):
        raise InputError("importance_correction: only TRL GRPO defines it (convention='trl-grpo')")
    red = _check_reduction(reduction)
    a, b, m = _logps(logp, ref_logp, mask)
    a, b = _float(a), _float(b)
    if m is not None:  # padding is never read: make it a log ratio of 0
        a, b = _zero_masked(a, m), _zero_masked(b, m)
    if convention is None:
        lr = _clamp(b - a, clamp_log_ratio, "clamp_log_ratio")
        value = _clamp(_estimate(lr, estimator), clamp, "clamp")
        st = straight_through
    else:
        value, st = _convention(convention, estimator, a, b)
        st = st or straight_through
    if st:
        value = _straight_through(value, a, b)
    if importance_correction:
        if old_logp is None:
            old = a.detach() if is_torch(a) else a
        else:
            old = _float(as_array(old_logp, "old_logp", like_torch=a if is_torch(a) else None))
            if tuple(old.shape) != tuple(a.shape):
                raise InputError(
                    f"old_logp: expected the shape of logp {tuple(a.shape)}, got {tuple(old.shape)}"
                )
            old = _zero_masked(old, m)
        value = value * _exp(a - old)
    return reduce_tokens(value, m, red)
