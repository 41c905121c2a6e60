"""Entropy of ``softmax(z / T)`` for many temperatures at once, and its inverse.

For a row with maximum ``m``, ``y = z - m <= 0`` and ``beta = 1 / T``, one entry equal to
the maximum contributes exactly 1 to the partition sum, the others
``R = sum exp(beta y)``; with ``S = sum y exp(beta y)`` over the same others::

    H(T) = log1p(R) - beta S / (1 + R)        (nats; no cancellation as T -> 0)

Two exact-in-float64 kernels compute ``R`` and ``S``:

* **direct**: one float64 ``exp`` per entry and temperature, vectorised over rows and
  temperatures in bounded chunks (small vocabularies, few temperatures, accelerators);
* **moments** (many temperatures, large vocabularies, on the CPU): each row is sorted once
  and cut into buckets of width ``h`` with centres ``c``; with ``d = y - c``,
  ``sum_bucket exp(beta y) = exp(beta c) sum_k beta^k M_k / k!``, ``M_k = sum_bucket d^k``.
  The moments are computed once per row, so a temperature costs one small matrix product
  over the buckets instead of one exponential per entry. ``h`` is chosen so that
  ``|beta d| <= 1/8`` for every temperature the moments serve, where ten terms leave a
  relative truncation error below 3e-16 per entry; temperatures too low for the row's
  buckets use the direct kernel on the entries within 50 nats of the maximum (the rest
  weigh less than ``e^-50`` each). Rows are spread over threads (numpy releases the GIL).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from infolens import _backend as B
from infolens.errors import InputError

#: Moments kept per bucket (``M_0 .. M_K``, plus ``M_{K+1}`` for ``S``).
K = 9
_FACT = np.array([math.factorial(k) for k in range(K + 1)], dtype=np.float64)
#: ``beta * h`` at most this, so that ``|beta d| <= KAPPA / 2``.
KAPPA = 0.25
#: Entries more than this many nats (at the temperature) below the maximum are dropped by
#: the direct kernel on low temperatures: each weighs less than e^-50 = 2e-22.
CUT = 50.0
#: Bound on the temporaries of one chunk (bytes).
CHUNK_BYTES = 16 * 2**20


class EntropyCurve(NamedTuple):
    """Entropy and perplexity of ``softmax(logits / T)`` per row and temperature."""

    #: Entropy, in nats (``base=None``) or in units of ``log(base)`` (bits for 2).
    entropy: Any
    #: ``exp`` of the entropy in nats: the effective number of equally likely tokens.
    perplexity: Any


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view (or copy) of ``x``; torch bfloat16 becomes float32 (exactly)."""
    if B.is_torch(x):
        import torch

        t = x.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.cpu().numpy()
    return np.asarray(x)


def _threads() -> int:
    env = os.environ.get("INFOLENS_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def check_temperatures(temperatures: Any) -> np.ndarray:
    """Temperatures as a 1-D float64 array, each in ``[0, inf]``, or a ValueError."""
    t = np.asarray(to_numpy(temperatures) if B.is_torch(temperatures) else temperatures)
    if t.dtype.kind not in "iuf" or t.ndim > 1:
        raise InputError(
            f"temperatures: expected a number or a 1-D sequence of numbers, got {B.describe(t)}"
        )
    t = t.astype(np.float64).reshape(-1)
    bad = np.isnan(t) | (t < 0)
    if bad.any():
        raise InputError(
            f"temperatures: expected values >= 0 (0 = argmax, inf = uniform), "
            f"got {float(t[bad][0])!r}"
        )
    return t


def check_rows(x: np.ndarray, name: str = "logits") -> np.ndarray:
    """Each row's maximum; a row that is all ``-inf`` or holds NaN or ``+inf`` is an error."""
    with np.errstate(invalid="ignore"):
        m = x.max(-1) if x.size else np.zeros(x.shape[:-1], x.dtype)
    bad = ~np.isfinite(m)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        what = (
            "NaN"
            if np.isnan(m.reshape(-1)[i])
            else ("+inf" if m.reshape(-1)[i] > 0 else "only -inf")
        )
        raise InputError(f"{name}: row {i} holds {what}: its distribution is undefined")
    return m


# --------------------------------------------------------------------------- kernels


def _finish(r: np.ndarray, s: np.ndarray, betas: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log1p(r) - betas * s / (1.0 + r)


def _direct(y: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """Entropies of rows ``y`` (float64, ``<= 0``, one maximum already set to ``-inf``)
    for positive finite ``betas``: ``[rows, len(betas)]``."""
    n, v = y.shape
    out = np.empty((n, betas.size))
    if n == 0 or betas.size == 0:
        return out
    per = max(1, CHUNK_BYTES // (8 * 3 * max(v, 1)))
    tb = max(1, min(betas.size, per))
    rb = max(1, per // tb)
    finite = y > -np.inf
    y0 = np.where(finite, y, 0.0)
    for lo in range(0, n, rb):
        yy, y0c = y[lo : lo + rb], y0[lo : lo + rb]
        for j in range(0, betas.size, tb):
            b = betas[j : j + tb]
            with np.errstate(invalid="ignore", over="ignore"):
                e = np.exp(yy[:, None, :] * b[None, :, None])
            r = e.sum(-1)
            e *= y0c[:, None, :]
            out[lo : lo + rb, j : j + tb] = _finish(r, e.sum(-1), b)
    return out


def _shifted(x: np.ndarray) -> np.ndarray:
    """``x - max`` in float64 with one maximum per row set to ``-inf``."""
    y = x.astype(np.float64)
    y -= y.max(-1, keepdims=True)
    y[np.arange(y.shape[0]), y.argmax(-1)] = -np.inf
    return y


class _Moments:
    """Per-thread workspace of the moments kernel."""

    def __init__(self, v: int) -> None:
        self.y = np.empty(v)
        self.b = np.empty(v)
        self.p = np.empty(v)

    def row(self, row: np.ndarray, betas: np.ndarray, bp: np.ndarray, t_lo: float) -> np.ndarray:
        s = np.sort(row)
        first = int(np.searchsorted(s, -np.inf, side="right"))
        n = s.size - 1 - first  # the entries other than one maximum
        if n <= 0:
            return np.zeros(betas.size)
        y = self.y[:n]
        np.subtract(s[first:-1], s[-1], out=y, dtype=np.float64)
        spread = -float(y[0])
        h = max(KAPPA * t_lo, spread / max(64, n // 16), 1e-300)
        b = self.b[:n]
        np.multiply(y, -1.0 / h, out=b)
        np.floor(b, out=b)
        starts = np.flatnonzero(b[1:] != b[:-1])
        starts += 1
        starts = np.concatenate(([0], starts))
        centre = -(b[starts] + 0.5) * h
        np.add(b, 0.5, out=b)
        b *= h
        b += y  # d = y - c, |d| <= h / 2
        p = self.p[:n]
        p.fill(1.0)
        m = np.empty((K + 2, starts.size))
        for k in range(K + 2):
            np.add.reduceat(p, starts, out=m[k])
            if k <= K:
                p *= b
        a = bp @ m[: K + 1]  # [t, buckets]: sum_k beta^k M_k / k!
        c = bp @ m[1:]
        with np.errstate(under="ignore"):
            e = np.exp(np.multiply.outer(betas, centre))
        r = (e * a).sum(1)
        a *= centre
        a += c
        sm = (e * a).sum(1)
        out = _finish(r, sm, betas)
        low = betas * h > KAPPA * (1 + 1e-12)
        if low.any():  # too cold for these buckets: the entries near the maximum, directly
            for j in np.flatnonzero(low):
                near = y[int(np.searchsorted(y, -CUT / betas[j])) :]
                out[j] = _direct(near[None, :], betas[j : j + 1])[0, 0] if near.size else 0.0
        return out


def _moments(x: np.ndarray, betas: np.ndarray) -> np.ndarray:
    n, v = x.shape
    out = np.empty((n, betas.size))
    bp = np.ascontiguousarray(
        (betas[None, :] ** np.arange(K + 1)[:, None] / _FACT[:, None]).T
    )  # [t, K + 1]
    t_lo = float(1.0 / betas.max())
    step = 8

    def work(lo: int) -> None:
        ws = _Moments(v)
        for i in range(lo, min(n, lo + step)):
            out[i] = ws.row(x[i], betas, bp, t_lo)

    threads = min(_threads(), max(1, n // step))
    if threads == 1:
        for lo in range(0, n, step):
            work(lo)
    else:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, range(0, n, step)))
    return out


def _ties(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (x == m[:, None]).sum(-1)


def curve_rows(x: np.ndarray, temps: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Entropies in nats, ``[rows, len(temps)]``, of the valid 2-D rows ``x``."""
    n, v = x.shape
    out = np.empty((n, temps.size))
    zero, inf = temps == 0, np.isinf(temps)
    mid = ~(zero | inf)
    if zero.any():
        out[:, zero] = np.log(_ties(x, m).astype(np.float64))[:, None]
    if inf.any():
        out[:, inf] = np.log((x > -np.inf).sum(-1).astype(np.float64))[:, None]
    if mid.any() and n:
        tm = temps[mid]
        with np.errstate(over="ignore", divide="ignore"):
            betas = 1.0 / tm
        if not np.isfinite(betas).all():
            # 1/T overflows (T below ~5.6e-309, e.g. for logits a subnormal apart): the
            # entropy depends on z / T only, so scale both by a power of two (exactly)
            big = float(np.abs(x[np.isfinite(x)]).max(initial=0.0))
            k = int(np.floor(996.0 - np.log2(max(big, 5e-324))))  # 2^996 < 1e300
            c = 2.0 ** min(k, 1000)
            x, tm = x * c, tm * c
            betas = 1.0 / tm
        if v >= 4096 and betas.size >= 8:
            out[:, mid] = _moments(x, betas)
        else:
            per = max(1, CHUNK_BYTES // (8 * max(v, 1) * 4))
            parts = [_direct(_shifted(x[lo : lo + per]), betas) for lo in range(0, n, per)]
            out[:, mid] = np.concatenate(parts)
    return out


def _torch_curve(x: Any, temps: np.ndarray) -> Any:
    """The direct kernel in torch float64 on the tensor's device (accelerators)."""
    import torch

    n, v = x.shape
    out = torch.empty((n, temps.size), dtype=torch.float64, device=x.device)
    per = max(1, (64 * 2**20) // (8 * 3 * max(v, 1)))
    for lo in range(0, n, per):
        y = x[lo : lo + per].to(torch.float64)
        m = y.amax(-1, keepdim=True)
        ties = (y == m).sum(-1).to(torch.float64)
        count = (y > -math.inf).sum(-1).to(torch.float64)
        y = y - m
        y.scatter_(1, y.argmax(-1, keepdim=True), -math.inf)
        y0 = torch.where(y > -math.inf, y, torch.zeros_like(y))
        for j, t in enumerate(temps.tolist()):
            if t == 0:
                out[lo : lo + per, j] = ties.log()
            elif math.isinf(t):
                out[lo : lo + per, j] = count.log()
            else:
                e = torch.exp(y / t)
                r, s = e.sum(-1), (e * y0).sum(-1)
                out[lo : lo + per, j] = torch.log1p(r) - s / (t * (1.0 + r))
    return out


def entropy_curve_impl(logits: Any, temperatures: Any, base: float | None) -> EntropyCurve:
    x = B.as_array(logits, "logits")
    if x.ndim < 1 or x.shape[-1] == 0:
        raise InputError(
            f"logits: expected at least one entry on the last axis, got {B.describe(x)}"
        )
    scalar = np.ndim(to_numpy(temperatures) if B.is_torch(temperatures) else temperatures) == 0
    temps = check_temperatures(temperatures)
    lead, v = tuple(x.shape[:-1]), int(x.shape[-1])
    x2 = x.reshape(-1, v)
    if B.is_torch(x2) and x2.device.type != "cpu":
        check_rows(x2.amax(-1, keepdim=True).detach().cpu().numpy())
        h = _torch_curve(x2.detach(), temps)
    else:
        xn = to_numpy(x2) if B.is_torch(x2) else x2
        h = curve_rows(xn, temps, check_rows(xn))
    h = h.reshape((*lead, temps.size))
    if scalar:
        h = h[..., 0]
    ppl = np.exp(h) if not B.is_torch(h) else h.exp()
    if base is not None:
        h = h / math.log(base)
    if B.is_torch(x) and not B.is_torch(h):
        import torch

        h, ppl = (
            torch.from_numpy(np.ascontiguousarray(h)),
            torch.from_numpy(np.ascontiguousarray(ppl)),
        )
        h, ppl = h.to(x.device), ppl.to(x.device)
    return EntropyCurve(h, ppl)


# --------------------------------------------------------------------------- inverse


def _eval(y: np.ndarray, y0: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entropy (nats) and dH/d(log beta) of rows ``y`` at per-row ``beta``."""
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        e = np.exp(y0 * beta[:, None])
        e[y == -np.inf] = 0.0
        r = e.sum(-1)
        e *= y0
        s1 = e.sum(-1)
        e *= y0
        s2 = e.sum(-1)
        z = 1.0 + r
        h = np.log1p(r) - beta * s1 / z
        var = s2 / z - (s1 / z) ** 2
        return h, -(beta**2) * var


def solve_rows(x: np.ndarray, target: np.ndarray, rtol: float) -> np.ndarray:
    """Temperatures with ``H(softmax(x / T)) = target`` (nats), per valid 2-D row."""
    n, v = x.shape
    out = np.empty(n)
    per = max(1, CHUNK_BYTES // (8 * max(v, 1) * 4))
    for lo in range(0, n, per):
        xs = x[lo : lo + per]
        out[lo : lo + per] = _solve_chunk(xs, target[lo : lo + per], rtol)
    return out


def _solve_chunk(x: np.ndarray, target: np.ndarray, rtol: float) -> np.ndarray:
    y = _shifted(x)
    y0 = np.where(y > -np.inf, y, 0.0)
    n = y.shape[0]
    res = np.full(n, np.nan)
    # bracket in log(beta): H decreases from log(count) at beta = 0 to log(ties) at inf
    lo = np.full(n, -np.inf)  # log beta with H > target
    hi = np.full(n, np.inf)  # log beta with H < target
    lb = np.zeros(n)
    active = np.ones(n, dtype=bool)
    for _ in range(400):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        h, dh = _eval(y[idx], y0[idx], np.exp(lb[idx]))
        err = h - target[idx]
        done = np.abs(err) <= rtol * np.maximum(np.abs(target[idx]), 1e-300)
        res[idx[done]] = np.exp(-lb[idx[done]])
        up = err > 0  # too hot: raise beta
        lo[idx[up]] = np.maximum(lo[idx[up]], lb[idx[up]])
        hi[idx[~up]] = np.minimum(hi[idx[~up]], lb[idx[~up]])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = lb[idx] - np.clip(err / dh, -4.0, 4.0)  # at most a factor e^4 a step
        l_, h_ = lo[idx], hi[idx]
        ok = np.isfinite(newton) & (newton > l_) & (newton < h_)
        mid = np.where(
            np.isfinite(l_) & np.isfinite(h_),
            0.5 * (l_ + h_),
            np.where(np.isfinite(l_), l_ + 2.0, h_ - 2.0),
        )
        nxt = np.where(ok, newton, mid)
        stuck = np.isfinite(l_) & np.isfinite(h_) & (h_ - l_ <= 1e-15 * np.maximum(1, np.abs(l_)))
        res[idx[stuck & ~done]] = np.exp(-0.5 * (l_ + h_))[stuck & ~done]
        lb[idx] = nxt
        active[idx[done | stuck]] = False
    left = np.isnan(res)
    res[left] = np.exp(-lb[left])
    return res
