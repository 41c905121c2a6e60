"""The fused, chunked log-space kernel every measure and command reuses.

:func:`fused_rows` takes one or two arrays of logits (or log-probabilities) of shape
``[N, V]`` and returns, per row, everything the rest of infolens needs: log-partition,
entropy, cross-entropies, both KL directions, optionally Jensen-Shannon, and, given integer
targets, surprisals, ranks and argmax agreement. Rows are processed in chunks so that the
temporaries never exceed :data:`CHUNK_BYTES` whatever ``N * V`` is.

Maths (per row; ``a`` the logits of p, ``b`` those of q, ``m_a = max a``)::

    x = a - m_a,  u = exp(x),  Z_a = sum u,            log-partition  lse_a = m_a + log Z_a
    H(p)     = log Z_a - sum(u * x) / Z_a                  (terms with u = 0 are 0)
    H(p, q)  = log Z_b - sum(u * y) / Z_a,   y = b - m_b   (+inf if p_i > 0 where q_i = 0)
    D(p||q)  = sum(u * (x - y)) / Z_a + log Z_b - log Z_a  (same +inf rule)
    -log p_t = log Z_a - (a_t - m_a)                       (not lse_a - a_t)

Every sum is accumulated in float64. ``-inf`` logits are zero-probability entries, and so
are finite logits whose shifted value ``x`` overflows to ``-inf`` (more than 1.8e308 below
the row's maximum): every rule is applied to ``x``, so results stay finite and exact for
every finite logit (``[1e308, -1e308]`` has entropy 0, not NaN). A row
that is entirely ``-inf``, or holds ``+inf`` or NaN, raises
:class:`~infolens.errors.InputError` (a :class:`ValueError`).

numpy inputs (and CPU tensors outside autograd) use the compiled extension
:mod:`infolens._native` when it is built (the same maths in one fused pass per row, plus
one more for Jensen-Shannon, parallel over rows); otherwise the chunked array code below
runs (torch results keep autograd).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from infolens._backend import Array, is_torch
from infolens.errors import InputError

#: Bound on the temporaries one chunk may allocate (bytes).
CHUNK_BYTES = 32 * 2**20
#: The same bound for tensors on an accelerator: larger chunks mean fewer kernel launches,
#: and the whole chunk's temporaries still stay within the 64 MB promised for extra memory.
DEVICE_CHUNK_BYTES = 64 * 2**20
#: How many float64 temporaries of a chunk's size the array path holds at once.
_TEMPS = 8
LN2 = math.log(2.0)
#: Stand-in for |log q - log p| where exactly one side is -inf (exp(-_JS_BIG) = 0).
_JS_BIG = 1000.0

try:  # the compiled kernel (optional: pure numpy fallback below)
    from infolens import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised when the extension is not built
    _native = None


@dataclass
class RowStats:
    """Per-row results of :func:`fused_rows`, in nats. Fields not requested are ``None``.

    ``lse`` is the log-partition :math:`\\log \\sum_i e^{z_i}`; ``entropy`` is
    :math:`H(p)`; ``cross_pq`` is :math:`H(p, q) = -\\sum_i p_i \\log q_i`; ``kl_pq`` is
    :math:`D(p \\| q)`; ``surprisal`` is :math:`-\\log p(t)`; ``rank`` is
    :math:`1 + |\\{i : p_i > p_t\\}|`; ``argmax`` is the first index of the maximum.

    Examples
    --------
    >>> import numpy as np
    >>> st = fused_rows(np.log([[0.5, 0.5]]), targets=np.array([0]))
    >>> sorted(st.as_dict())
    ['entropy_p', 'lse_p', 'surprisal_p']
    """

    lse_p: Array
    entropy_p: Array
    lse_q: Array | None = None
    entropy_q: Array | None = None
    cross_pq: Array | None = None  # H(p, q) = -sum p log q
    cross_qp: Array | None = None  # H(q, p)
    kl_pq: Array | None = None  # D(p || q)
    kl_qp: Array | None = None  # D(q || p)
    js: Array | None = None
    surprisal_p: Array | None = None  # -log p(target)
    surprisal_q: Array | None = None
    rank_p: Array | None = None  # 1 + #{i : p_i > p_target}
    rank_q: Array | None = None
    argmax_p: Array | None = None
    argmax_q: Array | None = None

    def as_dict(self) -> dict[str, Array]:
        """The fields that were computed, by name."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


def rows_per_chunk(vocab: int, temps: int = _TEMPS, budget: int = CHUNK_BYTES) -> int:
    """How many rows of ``vocab`` float64 values fit ``temps`` times in ``budget`` bytes.

    Examples
    --------
    >>> rows_per_chunk(50_257, temps=8)  # 32 MiB of temporaries
    10
    """
    return max(1, budget // (8 * temps * max(1, vocab)))


# --------------------------------------------------------------------------- validation


def _check_rows(ops: _Ops, m: Array, name: str) -> None:
    """Raise if a row maximum shows NaN, +inf, or an all -inf row."""
    if bool(ops.any(ops.isnan(m))):
        raise InputError(f"{name}: expected finite values or -inf, got NaN")
    if bool(ops.any(ops.isposinf(m))):
        raise InputError(f"{name}: expected finite values or -inf, got +inf")
    if bool(ops.any(ops.isneginf(m))):
        bad = int(ops.argmax_flat(ops.isneginf(m)))
        raise InputError(
            f"{name}: expected at least one finite entry per distribution, "
            f"got a row of all -inf (row {bad})"
        )


# --------------------------------------------------------------------------- array ops


class _Ops:
    """The handful of array operations the kernel needs, for numpy or torch."""

    def __init__(self, torch_mode: bool) -> None:
        self.torch = torch_mode
        if torch_mode:
            import torch

            self.t = torch

    def amax(self, x: Array) -> Array:
        return x.amax(dim=1) if self.torch else np.max(x, axis=1)

    def sum(self, x: Array) -> Array:
        return x.sum(dim=1) if self.torch else np.sum(x, axis=1)

    def exp(self, x: Array) -> Array:
        return self.t.exp(x) if self.torch else np.exp(x)

    def log(self, x: Array) -> Array:
        return self.t.log(x) if self.torch else np.log(x)

    def expm1(self, x: Array) -> Array:
        return self.t.expm1(x) if self.torch else np.expm1(x)

    def log1p(self, x: Array) -> Array:
        return self.t.log1p(x) if self.torch else np.log1p(x)

    def abs(self, x: Array) -> Array:
        return self.t.abs(x) if self.torch else np.abs(x)

    def where(self, c: Array, x: Any, y: Any) -> Array:
        if self.torch:
            t = self.t
            ref = x if isinstance(x, t.Tensor) else y
            if not isinstance(x, t.Tensor):
                x = t.tensor(x, dtype=ref.dtype, device=ref.device)
            if not isinstance(y, t.Tensor):
                y = t.tensor(y, dtype=ref.dtype, device=ref.device)
            return t.where(c, x, y)
        return np.where(c, x, y)

    def where_neg_zero(self, x: Array) -> Array:
        """``x`` with negative values replaced by 0 (NaN and inf kept)."""
        return self.where(x < 0, 0.0, x)

    def isneginf(self, x: Array) -> Array:
        return self.t.isneginf(x) if self.torch else np.isneginf(x)

    def isposinf(self, x: Array) -> Array:
        return self.t.isposinf(x) if self.torch else np.isposinf(x)

    def isnan(self, x: Array) -> Array:
        return self.t.isnan(x) if self.torch else np.isnan(x)

    def isfinite(self, x: Array) -> Array:
        return self.t.isfinite(x) if self.torch else np.isfinite(x)

    def any(self, x: Array) -> Any:
        return x.any()

    def any_rows(self, x: Array) -> Array:
        return x.any(dim=1) if self.torch else np.any(x, axis=1)

    def argmax_flat(self, x: Array) -> Any:
        return self.t.argmax(x.to(self.t.int8)) if self.torch else np.argmax(x)

    def argmax(self, x: Array) -> Array:
        return x.argmax(dim=1) if self.torch else np.argmax(x, axis=1)

    def take_rows(self, x: Array, idx: Array) -> Array:
        if self.torch:
            return x.gather(1, idx[:, None])[:, 0]
        return np.take_along_axis(x, idx[:, None], axis=1)[:, 0]

    def count_rows(self, mask: Array) -> Array:
        return mask.sum(dim=1) if self.torch else np.count_nonzero(mask, axis=1)

    def f64(self, x: Array) -> Array:
        return x.to(self.t.float64) if self.torch else x.astype(np.float64, copy=False)

    def concat(self, xs: list[Array]) -> Array:
        return self.t.cat(xs) if self.torch else np.concatenate(xs)

    def inf(self, like: Array) -> Array:
        return self.t.full_like(like, math.inf) if self.torch else np.full_like(like, math.inf)


# --------------------------------------------------------------------------- the kernel


def _one(ops: _Ops, a: Array) -> dict[str, Array]:
    """Shift, exps, partition function and entropy of one chunk of logits.

    Every rule is on the shifted ``x = a - max a``: a finite logit whose shifted value
    overflows to -inf (a spread over 1.8e308) is a log-probability below the float64 range,
    i.e. probability 0, like a -inf logit.
    """
    m = ops.amax(a)
    x = a - m[:, None]
    zero = ops.isneginf(x)
    u = ops.exp(x)
    z = ops.sum(u)
    logz = ops.log(z)
    # -inf entries (probability 0) are replaced by 0 *before* multiplying, so that neither
    # the value nor an autograd gradient ever sees 0 * -inf
    xs = ops.where(zero, 0.0, x)
    s = ops.sum(u * xs)
    return {"m": m, "zero": zero, "xs": xs, "u": u, "z": z, "logz": logz, "s": s}


def _mean(ops: _Ops, u: Array, d: Array, z: Array) -> Array:
    """``sum(u * d) / z`` per row, where ``0 <= u <= 1``, ``z = sum(u)`` and ``|d| < 2^1024``.

    The mean is in range, but a sum of several terms near 1e308 can overflow: such rows are
    summed again with ``d`` scaled by ``2^-k < 1/V`` (exact), whose sums cannot overflow.
    """
    mean = ops.sum(u * d) / z
    over = ~ops.isfinite(mean)
    if bool(ops.any(over)):
        _, k = math.frexp(d.shape[1])  # V < 2^k
        # divide first, then scale by the exact power of two (one rounding less); a mean
        # of finite values is finite, so one rounded past the maximum is clamped to it
        scaled = (ops.sum(u * (d * math.ldexp(1.0, -k))) / z) * math.ldexp(1.0, k)
        big = sys.float_info.max
        scaled = ops.where(scaled > big, big, ops.where(scaled < -big, -big, scaled))
        mean = ops.where(over, scaled, mean)
    return mean


def _chunk(
    ops: _Ops,
    a: Array,
    b: Array | None,
    targets: Array | None,
    want_js: bool,
    want_rank: bool,
) -> dict[str, Array]:
    a = ops.f64(a)
    pa = _one(ops, a)
    xs, u, z_a, logz_a = pa["xs"], pa["u"], pa["z"], pa["logz"]
    lse_a = pa["m"] + logz_a
    out: dict[str, Array] = {"lse_p": lse_a, "entropy_p": logz_a - pa["s"] / z_a}
    if b is not None:
        b = ops.f64(b)
        pb = _one(ops, b)
        ys, v, z_b, logz_b = pb["xs"], pb["u"], pb["z"], pb["logz"]
        ninf_a, ninf_b = pa["zero"], pb["zero"]
        # p_i > 0 where q_i = 0 (and the converse) make the divergences infinite; every
        # other term with a -inf on either side is 0 (u or v is 0 there, xs/ys are 0)
        miss_pq = ops.any_rows(ninf_b & ~ninf_a)
        miss_qp = ops.any_rows(ninf_a & ~ninf_b)
        d = xs - ys  # both <= 0: never overflows
        mud = _mean(ops, u, d, z_a)  # E_p[x - y] (terms with p_i = 0 are 0)
        mvd = _mean(ops, v, d, z_b)
        # rounding can leave -1e-17 for (near-)identical rows: KL is >= 0
        kl_pq = ops.where_neg_zero(mud + logz_b - logz_a)
        kl_qp = ops.where_neg_zero(-mvd + logz_a - logz_b)
        # without a support mismatch, sum u y = sum u x - sum u d
        ce_pq = logz_b - pa["s"] / z_a + mud
        ce_qp = logz_a - pb["s"] / z_b - mvd
        inf = ops.inf(kl_pq)
        out.update(
            lse_q=pb["m"] + logz_b,
            entropy_q=logz_b - pb["s"] / z_b,
            kl_pq=ops.where(miss_pq, inf, kl_pq),
            kl_qp=ops.where(miss_qp, inf, kl_qp),
            cross_pq=ops.where(miss_pq, inf, ce_pq),
            cross_qp=ops.where(miss_qp, inf, ce_qp),
        )
        if targets is not None:  # argmax agreement is a per-token statistic
            out.update(argmax_p=ops.argmax(a), argmax_q=ops.argmax(b))
        if want_js:
            # JS = 1/2 sum p log(p/m) + 1/2 sum q log(q/m), m = (p + q) / 2. With
            # d = log q - log p, p log(p/m) = -p g(d) and q log(q/m) = -q g(-d), where
            # g(d) = log((1 + e^d) / 2) = max(d, 0) + L, L = log1p(expm1(-|d|) / 2). So
            # JS = -1/2 sum [(p + q) L + p max(d, 0) + q max(-d, 0)]: L never overflows
            # (its argument is in [-1/2, 0]) and is exactly 0 at d = 0, so JS(p, p) = 0.
            # A -inf on one side only stands in as d = -/+ JS_BIG (L = -ln 2, the 0-prob
            # side's terms vanish); both -inf: d = 0 (p = q = 0).
            p = u / z_a[:, None]
            q = v / z_b[:, None]
            dl = (ys - xs) + (logz_a - logz_b)[:, None]
            dl = ops.where(ninf_a, _JS_BIG, ops.where(ninf_b, -_JS_BIG, dl))
            dl = ops.where(ninf_a & ninf_b, 0.0, dl)
            lm = ops.log1p(0.5 * ops.expm1(-ops.abs(dl)))
            terms = (p + q) * lm + p * ops.where_neg_zero(dl) + q * ops.where_neg_zero(-dl)
            js_v = -0.5 * ops.sum(terms)
            # in [0, ln 2] by definition; <= 0 also maps -0.0 (identical rows) to +0.0
            js_v = ops.where(js_v <= 0, 0.0, js_v)
            out["js"] = ops.where(js_v > LN2, LN2, js_v)
    # log p_t = (a_t - m) - log Z, never a_t - lse: lse = m + log Z rounds to m when |m| is
    # near 1e308 (1e308 + ln 2 == 1e308)
    if targets is not None:
        at = ops.take_rows(a, targets)
        out["surprisal_p"] = logz_a - (at - pa["m"])
        if want_rank:
            out["rank_p"] = 1 + ops.count_rows(a > at[:, None])
        if b is not None:
            bt = ops.take_rows(b, targets)
            out["surprisal_q"] = logz_b - (bt - pb["m"])
            if want_rank:
                out["rank_q"] = 1 + ops.count_rows(b > bt[:, None])
    return out


def fused_rows(
    p_logits: Array,
    q_logits: Array | None = None,
    targets: Array | None = None,
    *,
    js: bool = False,
    rank: bool = False,
    names: tuple[str, str] = ("p_logits", "q_logits"),
) -> RowStats:
    r"""Per-row statistics of one or two ``[N, V]`` logit arrays, in bounded memory.

    With :math:`x = a - \max a`, :math:`u = e^x`, :math:`Z_a = \sum u` (and likewise
    :math:`y, v, Z_b` for ``q_logits``), every row gets
    :math:`H(p) = \log Z_a - \sum u x / Z_a`,
    :math:`D(p \| q) = \sum u (x - y) / Z_a + \log Z_b - \log Z_a` and
    :math:`H(p, q) = H(p) + D(p \| q)`, summed in float64; ``+inf`` where ``p`` has mass
    that ``q`` lacks. See the module docstring for the rest.

    Parameters
    ----------
    p_logits, q_logits : array of shape ``[N, V]``
        Logits or log-probabilities (``-inf`` = probability zero). numpy or torch; torch
        inputs keep their device and autograd graph.
    targets : integer array of shape ``[N]``, optional
        Observed token per row, for surprisals, ranks and argmax agreement.
    js : bool
        Also compute the Jensen-Shannon divergence (one ``log`` per element more).
    rank : bool
        Also compute the rank of each target (1 = the most likely token).
    names : tuple of str
        Argument names used in error messages.

    Returns
    -------
    RowStats
        float64 arrays (torch tensors for torch input) of shape ``[N]``, in nats.

    Examples
    --------
    >>> import numpy as np
    >>> st = fused_rows(np.log([[0.5, 0.5]]), np.log([[0.9, 0.1]]))
    >>> round(float(st.entropy_p[0]), 6), round(float(st.kl_pq[0]), 6)
    (0.693147, 0.510826)
    """
    torch_mode = is_torch(p_logits) or is_torch(q_logits)
    ops = _Ops(torch_mode)
    if p_logits.ndim != 2:
        raise InputError(
            f"{names[0]}: expected a 2-D [rows, vocab] array, got shape {tuple(p_logits.shape)}"
        )
    if q_logits is not None and tuple(q_logits.shape) != tuple(p_logits.shape):
        raise InputError(
            f"{names[1]}: expected the shape of {names[0]} {tuple(p_logits.shape)}, "
            f"got {tuple(q_logits.shape)}"
        )
    n, v = p_logits.shape
    if v == 0:
        raise InputError(f"{names[0]}: expected a non-empty vocabulary axis, got size 0")
    if targets is not None:
        if tuple(targets.shape) != (n,):
            raise InputError(f"targets: expected shape ({n},), got {tuple(targets.shape)}")
        if n:
            t_min, t_max = int(targets.min()), int(targets.max())
            if t_min < 0 or t_max >= v:
                bad = t_min if t_min < 0 else t_max
                raise InputError(f"targets: expected token ids in [0, {v}), got {bad}")

    native = _native_inputs(p_logits, q_logits, targets) if _native is not None and n else None
    if native is not None:
        res = _native_rows(*native, rank, js)
        # the compiled kernel reports each row's maximum; validate from those
        _check_rows(_Ops(False), res.pop("max_p"), names[0])
        if q_logits is not None:
            _check_rows(_Ops(False), res.pop("max_q"), names[1])
        if torch_mode:
            import torch

            return RowStats(**{k: torch.from_numpy(np.asarray(x)) for k, x in res.items()})
        return RowStats(**res)

    if n:
        _check_rows(ops, ops.amax(p_logits), names[0])
        if q_logits is not None:
            _check_rows(ops, ops.amax(q_logits), names[1])

    temps = _TEMPS * (2 if q_logits is not None else 1) + (4 if js else 0)
    on_device = torch_mode and p_logits.device.type != "cpu"
    step = rows_per_chunk(v, temps, DEVICE_CHUNK_BYTES if on_device else CHUNK_BYTES)
    parts: list[dict[str, Array]] = []
    for lo in range(0, max(n, 1), step):  # n = 0: one empty chunk gives empty results
        hi = min(n, lo + step)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            part = _chunk(
                ops,
                p_logits[lo:hi],
                None if q_logits is None else q_logits[lo:hi],
                None if targets is None else targets[lo:hi],
                js,
                rank,
            )
        parts.append(part)
    merged = {k: ops.concat([p[k] for p in parts]) for k in parts[0]}
    return RowStats(**merged)


# --------------------------------------------------------------------------- native path

_NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16))


@dataclass(frozen=True)
class _Bf16Bits:
    """The uint16 bit patterns of a bfloat16 tensor (numpy has no bfloat16 dtype)."""

    bits: np.ndarray
    ndim = 2

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.bits.shape)


def _native_inputs(a: Any, b: Any, t: Any) -> tuple[Any, Any, Any] | None:
    """numpy views of the inputs if the compiled kernel can take them, else ``None``.

    It takes float64, float32, float16 or bfloat16 (both inputs alike; half precision is
    widened to float64 element by element as it is read, so no widened copy is made):
    numpy arrays, or CPU torch tensors outside autograd (zero-copy views; gradients need
    the array path). bfloat16 tensors travel as their uint16 bit patterns.
    """
    xs = [x for x in (a, b) if x is not None]
    if any(is_torch(x) for x in xs):
        import torch

        ok = all(
            is_torch(x)
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
            and not (x.requires_grad and torch.is_grad_enabled())
            for x in xs
        )
        if not ok or len({x.dtype for x in xs}) != 1:
            return None
        if xs[0].dtype == torch.bfloat16:
            xs = [
                _Bf16Bits(x.detach().contiguous().view(torch.int16).numpy().view(np.uint16))
                for x in xs
            ]
        else:
            xs = [x.detach().contiguous().numpy() for x in xs]
        if is_torch(t):
            t = t.detach().cpu().numpy()
    if not all(
        isinstance(x, _Bf16Bits) or (isinstance(x, np.ndarray) and x.dtype in _NATIVE_DTYPES)
        for x in xs
    ):
        return None
    if len(xs) == 2 and type(xs[0]) is type(xs[1]) and isinstance(xs[0], np.ndarray):
        if xs[0].dtype != xs[1].dtype:
            return None
    return xs[0], (xs[1] if b is not None else None), t


def native_threads() -> int:
    """Threads the compiled kernel uses (``INFOLENS_NUM_THREADS``, default: all cores).

    Examples
    --------
    >>> native_threads() >= 1
    True
    """
    env = os.environ.get("INFOLENS_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(
        1,
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    )


def _native_rows(
    a: Any, b: Any, targets: np.ndarray | None, rank: bool, js: bool = False
) -> dict[str, Any]:
    """Call the compiled kernel. It returns a dict with the :class:`RowStats` fields it
    computed plus ``max_p`` (and ``max_q``), the row maxima used for validation."""
    assert _native is not None
    bf16 = isinstance(a, _Bf16Bits)
    a = np.ascontiguousarray(a.bits if bf16 else a)
    b = None if b is None else np.ascontiguousarray(b.bits if bf16 else b)
    t = None if targets is None else np.ascontiguousarray(targets, dtype=np.int64)
    res: dict[str, Any] = _native.fused_rows(
        a, b, t, bool(rank), bool(js), native_threads(), bf16
    )
    return res


# --------------------------------------------------------------------------- coding

#: Bits of precision of the entropy coder's integer frequencies (constriction's default).
CODER_PRECISION = 24


def quantized_free_weights(logits: Any, *, precision: int = CODER_PRECISION) -> np.ndarray:
    r"""The entropy coder's distribution of each row: ``softmax(logits)`` as integer
    frequencies, returned as the *free weights* ``f - 1`` (``float32 [N, V]``).

    .. math::

       m = \max_i a_i,\quad u_i = \exp(a_i - m),\quad s = (2^P - V) / \textstyle\sum_i u_i,
       \quad f_i = 1 + \lfloor u_i s \rfloor

    and the remainder ``2^P - V - sum floor(u_i s)`` (between 0 and ``V``) is added to the
    first most probable token, so that ``sum f_i = 2^P`` exactly and every ``f_i >= 1``
    (a ``-inf`` logit gets ``f = 1``: anything can still be coded). The weights are integers
    below ``2^24``, exact in ``float32``; handed to constriction's
    ``Categorical(perfect=False)`` they make its quantised model exactly ``f / 2^P``.

    **Deterministic**: the compiled kernel computes this with its own exp and IEEE-754
    ``+ - * /`` only, no fused multiply-add and every sum in a fixed order, so the integers
    are the same whichever instruction set (AVX-512, AVX2, baseline) or thread count runs
    it (tested by forcing each). Needs the compiled kernel; raises without it.

    Parameters
    ----------
    logits : array_like
        ``[N, V]`` logits or log-probabilities: numpy float64/float32/float16 or CPU torch
        float64/float32/float16/bfloat16. No NaN or ``+inf``; at least one finite entry.
    precision : int
        ``P``, 1..24, with ``2 <= V <= 2^P - 2``.

    Returns
    -------
    numpy.ndarray
        ``float32 [N, V]``: ``f - 1``.

    Examples
    --------
    >>> w = quantized_free_weights(np.log(np.array([[0.5, 0.25, 0.25]])), precision=4)
    >>> (w + 1).astype(int).tolist()
    [[8, 4, 4]]
    """
    if _native is None:  # pragma: no cover - depends on the build
        from infolens.errors import InfolensError

        raise InfolensError(
            "coding with a model's logits needs the compiled kernel infolens._native (a C "
            "compiler at install time); the built-in ngram model codes without it"
        )
    a = logits
    if is_torch(a):
        got = _native_inputs(a, None, None)
        if got is None:
            a = a.detach().to("cpu").double().numpy()
        else:
            a = got[0]
    bf16 = isinstance(a, _Bf16Bits)
    arr = a.bits if bf16 else np.asarray(a)
    if not bf16 and arr.dtype not in _NATIVE_DTYPES:
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"logits: expected a 2-D [rows, vocab] array, got shape {arr.shape}")
    out: np.ndarray = _native.quantize_rows(
        np.ascontiguousarray(arr), int(precision), native_threads(), bf16
    )
    return out
