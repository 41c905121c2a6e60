"""The truncation steps of :mod:`infolens.sampling` on 2-D ``[rows, vocab]`` arrays.

Each step exists twice: ``t_*`` for torch tensors and ``n_*`` for numpy arrays. The torch
versions perform the same tensor operations, in the same dtypes, as the Hugging Face
transformers warper of the same meaning, so their outputs are bit-identical to it (ties and
``-inf`` included); the numpy versions follow the same definitions with the same dtype
rules (float16 arithmetic in float32 and rounded per operation, cumulative sums of float32
accumulated in float64 as torch does on the CPU). The callers validate parameters and
reshape; ``inplace=True`` lets a step overwrite an array the caller owns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NEG_INF = float("-inf")
#: top-p on the CPU takes the compact path when at most this fraction of a row is finite.
COMPACT_FRACTION = 8


# --------------------------------------------------------------------------- numpy helpers


def _ct(dt: np.dtype) -> Any:
    """The dtype torch computes ``dt`` arithmetic in (float16 in float32)."""
    return np.float32 if dt == np.float16 else dt.type


def _acc(dt: np.dtype) -> Any:
    """The dtype torch's CPU ``cumsum`` accumulates ``dt`` in."""
    return np.float32 if dt == np.float16 else np.float64


def n_softmax(x: np.ndarray) -> np.ndarray:
    """``torch.softmax(x, -1)`` in numpy (float16 computed in float32, rounded once)."""
    c = x.astype(_ct(x.dtype), copy=False)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        e = np.exp(c - c.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype(x.dtype, copy=False)


def n_log_softmax(x: np.ndarray) -> np.ndarray:
    """``torch.log_softmax(x, -1)`` in numpy."""
    c = x.astype(_ct(x.dtype), copy=False)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = c - c.max(-1, keepdims=True)
        return (y - np.log(np.exp(y).sum(-1, keepdims=True))).astype(x.dtype, copy=False)


def n_logsumexp(x: np.ndarray) -> np.ndarray:
    """``torch.logsumexp(x, -1, keepdim=True)`` op by op in ``x``'s dtype."""
    dt, ct = x.dtype, _ct(x.dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = x.max(-1, keepdims=True)
        m = np.where(np.isinf(m), np.zeros((), dt), m)
        e = np.exp((x.astype(ct) - m.astype(ct)).astype(dt).astype(ct)).astype(dt)
        s = e.astype(ct).sum(-1, keepdims=True).astype(dt)
        return (np.log(s.astype(ct)).astype(dt).astype(ct) + m.astype(ct)).astype(dt)


def _sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ct = _ct(a.dtype)
    return (a.astype(ct) - b.astype(ct)).astype(a.dtype)


def _mul(a: Any, b: np.ndarray) -> np.ndarray:
    """``a * b`` rounded to ``b``'s dtype once (``a`` a scalar or an array)."""
    ct = _ct(b.dtype)
    return (np.asarray(a).astype(ct) * b.astype(ct)).astype(b.dtype)


def _kth_largest(x: np.ndarray, k: int) -> np.ndarray:
    v = x.shape[-1]
    return np.partition(x, v - k, axis=-1)[..., v - k : v - k + 1]


def _fill(x: np.ndarray, remove: np.ndarray, inplace: bool) -> np.ndarray:
    out = x if inplace else x.copy()
    out[remove] = NEG_INF
    return out


def _unsort(remove_sorted: np.ndarray, order: np.ndarray) -> np.ndarray:
    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return remove


def _cumsum(p: np.ndarray) -> np.ndarray:
    return np.cumsum(p.astype(_acc(p.dtype)), axis=-1).astype(p.dtype)


# --------------------------------------------------------------------------- numpy steps


def n_temperature(x: np.ndarray, t: float, inplace: bool) -> np.ndarray:
    ct = _ct(x.dtype)
    if ct is x.dtype.type:
        return np.divide(x, ct(t), out=x if inplace else None)
    return (x.astype(ct) / ct(t)).astype(x.dtype)


def n_top_k(x: np.ndarray, k: int, keep: int, inplace: bool) -> np.ndarray:
    k = min(max(k, keep), x.shape[-1])
    return _fill(x, x < _kth_largest(x, k), inplace)


def n_top_p(x: np.ndarray, p: float, keep: int, inplace: bool) -> np.ndarray:
    order = np.argsort(x, axis=-1, kind="stable")
    cum = _cumsum(n_softmax(np.take_along_axis(x, order, axis=-1)))
    remove_sorted = cum <= np.asarray(1 - p).astype(x.dtype)
    remove_sorted[..., -keep:] = False
    return _fill(x, _unsort(remove_sorted, order), inplace)


def n_min_p(x: np.ndarray, p: float, keep: int, inplace: bool) -> np.ndarray:
    probs = n_softmax(x)
    remove = probs < _mul(np.float64(p), probs.max(-1, keepdims=True))
    if keep > 1:
        top = np.argsort(-probs.astype(np.float64), axis=-1, kind="stable")
        np.put_along_axis(remove, top[..., : min(keep, x.shape[-1])], False, axis=-1)
    return _fill(x, remove, inplace)


def n_typical_p(x: np.ndarray, mass: float, keep: int, inplace: bool) -> np.ndarray:
    dt, ct = x.dtype, _ct(x.dtype)
    normalized = n_log_softmax(x)
    p = np.exp(normalized.astype(ct)).astype(dt)
    prod = _mul(normalized, p)
    ent = (-np.nansum(prod.astype(ct), axis=-1, keepdims=True)).astype(dt)
    shifted = np.abs(_sub(-normalized, ent))
    order = np.argsort(shifted, axis=-1, kind="stable")
    sorted_scores = np.take_along_axis(shifted, order, axis=-1)
    cum = _cumsum(n_softmax(np.take_along_axis(x, order, axis=-1)))
    last = (cum < np.asarray(mass).astype(dt)).sum(-1, keepdims=True)
    last = np.minimum(last, x.shape[-1] - 1)
    remove_sorted = sorted_scores > np.take_along_axis(sorted_scores, last, axis=-1)
    remove_sorted[..., :keep] = False
    return _fill(x, _unsort(remove_sorted, order), inplace)


def n_epsilon(x: np.ndarray, eps: float, keep: int, inplace: bool) -> np.ndarray:
    remove = n_softmax(x) < np.asarray(eps).astype(x.dtype)
    remove &= x < _kth_largest(x, min(keep, x.shape[-1]))
    return _fill(x, remove, inplace)


def _n_categorical(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``torch.distributions.Categorical(logits=x)``: its logits, probs and entropy."""
    dt = x.dtype
    norm = _sub(x, n_logsumexp(x))
    probs = n_softmax(norm)
    clamped = np.maximum(norm, np.finfo(dt).min)
    ent = (-(_mul(clamped, probs).astype(_ct(dt)).sum(-1))).astype(dt)
    return norm, probs, ent


def n_eta(x: np.ndarray, eps: float, keep: int, inplace: bool) -> np.ndarray:
    dt, ct = x.dtype, _ct(x.dtype)
    probs = n_softmax(x)
    _, _, ent = _n_categorical(x)
    e32 = np.float32(eps)
    decay = np.exp((-ent).astype(ct)).astype(dt)
    eta = np.minimum(e32.astype(dt), _mul(np.sqrt(e32), decay))[..., None]
    remove = (probs < eta) & (x < _kth_largest(x, min(keep, x.shape[-1])))
    return _fill(x, remove, inplace)


def n_top_h(x: np.ndarray, alpha: float, keep: int, top_n: int, inplace: bool) -> np.ndarray:
    dt = x.dtype
    n = min(top_n, x.shape[-1])
    idx = np.argsort(-x.astype(np.float64), axis=-1, kind="stable")[..., :n]
    vals = np.take_along_axis(x, idx, axis=-1)
    _, probs, ent = _n_categorical(vals)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_probs = np.log(probs.astype(_ct(dt))).astype(dt)
        terms = _mul(-probs, log_probs)
        tau = _mul(np.float64(alpha), ent)[..., None]
        select = _cumsum(terms) <= tau
    select[..., :keep] = True
    keep_mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(keep_mask, idx, select, axis=-1)
    return _fill(x, ~keep_mask, inplace)


def n_top_n_sigma(x: np.ndarray, n: float, keep: int, inplace: bool) -> np.ndarray:
    thr = _sigma_threshold(np, x.astype(np.float64), n)
    remove = x.astype(np.float64) < thr
    remove &= x < _kth_largest(x, min(keep, x.shape[-1]))
    return _fill(x, remove, inplace)


def _sigma_threshold(xp: Any, x64: Any, n: float) -> Any:
    """``max - n * std`` over the entries above ``-inf`` (population std, float64);
    NaN (nothing removed) for a row without such entries."""
    finite = x64 > NEG_INF
    cnt = finite.sum(-1)[..., None]
    zero = xp.zeros_like(x64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xp.where(finite, x64, zero).sum(-1)[..., None] / cnt
        dev = xp.where(finite, x64 - mean, zero)
        std = xp.sqrt((dev * dev).sum(-1)[..., None] / cnt)
        top = xp.amax(x64, -1)[..., None]
        return xp.where(cnt > 0, top - n * std, xp.full_like(top, math.nan))


# --------------------------------------------------------------------------- torch steps


def _t_fill(x: Any, remove: Any, inplace: bool) -> Any:
    return x.masked_fill_(remove, NEG_INF) if inplace else x.masked_fill(remove, NEG_INF)


def t_temperature(x: Any, t: float, inplace: bool) -> Any:
    return x.div_(t) if inplace else x / t


def t_top_k(x: Any, k: int, keep: int, inplace: bool) -> Any:
    import torch

    k = min(max(k, keep), x.size(-1))
    return _t_fill(x, x < torch.topk(x, k)[0][..., -1, None], inplace)


def t_top_p(x: Any, p: float, keep: int, inplace: bool) -> Any:
    import torch

    if x.device.type == "cpu" and x.size(-1) >= 4 * COMPACT_FRACTION:
        v = x.size(-1)
        finite = torch.isfinite(x)
        counts = finite.sum(-1)
        if bool(((counts + (x == NEG_INF).sum(-1)) == v).all()):
            m = int(counts.max()) if counts.numel() else 0
            if 0 < m <= v // COMPACT_FRACTION:
                return _t_top_p_compact(x, p, keep, inplace, m)
    return _t_top_p_full(x, p, keep, inplace)


def _t_top_p_full(x: Any, p: float, keep: int, inplace: bool) -> Any:
    import torch

    sorted_logits, order = torch.sort(x, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cum <= (1 - p)
    remove_sorted[..., -keep:] = 0
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return _t_fill(x, remove, inplace)


def _t_top_p_compact(x: Any, p: float, keep: int, inplace: bool, m: int) -> Any:
    """Top-p on rows with at most ``m`` entries above ``-inf`` (CPU)."""
    import torch

    vals, idx = torch.topk(x, m, dim=-1, largest=True, sorted=True)
    out = x if inplace else x.clone()
    return compact_top_p(out, x, vals.flip(-1), idx.flip(-1), p, keep)[0]


def compact_top_p(out: Any, src: Any, asc: Any, idx: Any, p: float, keep: int) -> tuple[Any, Any]:
    """Top-p of ``src`` written into ``out`` (a copy of ``src`` the caller owns), given
    every entry of ``src`` above ``-inf`` as ``asc`` (ascending values) at ``idx``.

    The ascending sort of such a row is ``[-inf, ..., -inf, asc]``; softmax and
    cumulative sum are taken over exactly that array (the same length: torch's CPU
    softmax sums long rows in position-dependent pieces), so one ``topk`` replaces the
    sort of the whole row. The kept tokens are a suffix of the ascending order; only if
    its boundary falls inside a group of tied logits does the order of ties matter, and
    those rows are redone with the full sort, as transformers does. Returns ``out`` and
    ``asc`` with the removed entries set to ``-inf``.
    """
    import torch

    n, v = src.shape
    m = asc.size(-1)
    buf = torch.full((n, v), NEG_INF, dtype=src.dtype, device=src.device)
    buf[:, v - m :] = asc
    cum = buf.softmax(dim=-1)[:, v - m :].cumsum(dim=-1)  # the -inf prefix adds exact zeros
    del buf
    remove_sorted = cum <= (1 - p)
    remove_sorted[..., -keep:] = False
    j = remove_sorted.sum(-1)  # the first kept position (the removed ones are a prefix)
    jj = j.clamp(1, max(m - 1, 1))[:, None]
    hi = asc.gather(1, jj.clamp(max=m - 1)).squeeze(1)
    lo = asc.gather(1, jj - 1).squeeze(1)
    split = (j > 0) & (j < m) & (hi == lo) & torch.isfinite(hi)
    redo = None
    if bool(split.any()):
        rows = split.nonzero().squeeze(1)
        redo = rows, _t_top_p_full(src[rows], p, keep, False)
    asc = asc.masked_fill(remove_sorted, NEG_INF)
    out.scatter_(1, idx, asc)
    if redo is not None:
        out[redo[0]] = redo[1]
        asc[redo[0]] = out[redo[0]].gather(1, idx[redo[0]])
    return out, asc


def compact_top_k(x: Any, t: float | None, k: int, keep: int) -> tuple[Any, Any, Any] | None:
    """Temperature (if ``t``) and top-k of a CPU tensor as ``(out, asc, idx)``: the output
    and its finite entries ascending with their indices; ``None`` where the kept set is
    not exactly ``k`` entries per row (ties at the k-th value, or ``-inf`` or NaN among
    them), which the full path handles.

    Dividing is monotone, so the ``k + 1`` largest of ``x`` divided by ``t`` (each
    exactly as dividing the whole tensor would) are the ``k + 1`` largest of ``x / t``;
    if the (k+1)-th is below the k-th, exactly those ``k`` are kept, as
    ``TopKLogitsWarper`` on ``x / t`` keeps.
    """
    import torch

    n, v = x.shape
    k = max(k, keep)
    if k + 1 > v:
        return None
    vals, idx = torch.topk(x, k + 1, dim=-1, largest=True, sorted=True)
    if t is not None:
        vals = vals / t
    if not bool((vals[:, k] < vals[:, k - 1]).all()) or not bool(torch.isfinite(vals).all()):
        return None
    out = torch.full((n, v), NEG_INF, dtype=x.dtype, device=x.device)
    out.scatter_(1, idx[:, :k], vals[:, :k])
    return out, vals[:, :k].flip(-1), idx[:, :k].flip(-1)


def compact_min_p(out: Any, asc: Any, idx: Any, p: float) -> Any:
    """Min-p (``min_tokens_to_keep = 1``) of ``out``, whose finite entries are all at
    ``idx``: the softmax is over the whole row (as ``MinPLogitsWarper``'s), the
    comparisons only where it can be nonzero."""
    import torch

    probs = torch.softmax(out, dim=-1).gather(1, idx)
    remove = probs < p * probs.amax(dim=-1, keepdim=True)
    asc = asc.masked_fill(remove, NEG_INF)
    out.scatter_(1, idx, asc)
    return out, asc


def compact_chain(x: Any, steps: list[tuple[str, Any]], keep: int) -> tuple[Any, int] | None:
    """The longest prefix of ``steps`` (temperature?, top-k, then top-p / min-p) done
    on the few entries top-k keeps, for a 2-D CPU tensor: ``(output, steps done)``, or
    ``None`` if it does not apply. Bit-identical to the warpers (see the helpers)."""
    i, t = 0, None
    if i < len(steps) and steps[i][0] == "temperature":
        t, i = steps[i][1], i + 1
    if i >= len(steps) or steps[i][0] != "top_k" or x.device.type != "cpu":
        return None
    first = compact_top_k(x, t, steps[i][1], keep)
    if first is None:
        return None
    out, asc, idx = first
    i += 1
    while i < len(steps):
        name, value = steps[i]
        if name == "top_p":
            out, asc = compact_top_p(out, out, asc, idx, value, keep)
        elif name == "min_p" and keep == 1:
            out, asc = compact_min_p(out, asc, idx, value)
        else:
            break
        i += 1
    return out, i


def t_min_p(x: Any, p: float, keep: int, inplace: bool) -> Any:
    import torch

    probs = torch.softmax(x, dim=-1)
    remove = probs < p * probs.amax(dim=-1, keepdim=True)
    if keep > 1:  # with keep = 1 the most probable token is never below p * max
        top = torch.topk(probs, min(keep, probs.shape[-1]), dim=-1).indices
        remove.scatter_(-1, top, False)
    return _t_fill(x, remove, inplace)


def t_typical_p(x: Any, mass: float, keep: int, inplace: bool) -> Any:
    import torch

    normalized = torch.nn.functional.log_softmax(x, dim=-1)
    p = torch.exp(normalized)
    ent = -(normalized * p).nansum(-1, keepdim=True)
    shifted = torch.abs((-normalized) - ent)
    sorted_scores, order = torch.sort(shifted, descending=False)
    cum = x.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
    last = (cum < mass).sum(dim=1)
    last.clamp_(max=sorted_scores.shape[-1] - 1)
    remove_sorted = sorted_scores > sorted_scores.gather(1, last.view(-1, 1))
    remove_sorted[..., :keep] = 0
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return _t_fill(x, remove, inplace)


def _t_keep_top(x: Any, keep: int) -> Any:
    import torch

    return x < torch.topk(x, min(keep, x.size(-1)))[0][..., -1, None]


def t_epsilon(x: Any, eps: float, keep: int, inplace: bool) -> Any:
    remove = (x.softmax(dim=-1) < eps) & _t_keep_top(x, keep)
    return _t_fill(x, remove, inplace)


def _t_categorical(x: Any) -> tuple[Any, Any, Any]:
    """``torch.distributions.Categorical(logits=x)``: its logits, probs and entropy
    (the same operations, without its argument validation)."""
    import torch

    norm = x - x.logsumexp(dim=-1, keepdim=True)
    probs = torch.nn.functional.softmax(norm, dim=-1)
    clamped = torch.clamp(norm, min=torch.finfo(norm.dtype).min)
    return norm, probs, -(clamped * probs).sum(-1)


def t_eta(x: Any, eps: float, keep: int, inplace: bool) -> Any:
    import torch

    e = torch.tensor(float(eps), device=x.device)
    probs = x.softmax(dim=-1)
    _, _, ent = _t_categorical(x)
    eta = torch.min(e, torch.sqrt(e) * torch.exp(-ent))[..., None]
    remove = (probs < eta) & _t_keep_top(x, keep)
    return _t_fill(x, remove, inplace)


def t_top_h(x: Any, alpha: float, keep: int, top_n: int, inplace: bool) -> Any:
    import torch

    n = min(top_n, x.size(-1))
    top_logits, top_idx = torch.topk(x, n, dim=-1, largest=True, sorted=True)
    _, probs, ent = _t_categorical(top_logits)
    log_probs = torch.log(probs)
    tau = (ent * alpha).unsqueeze(-1)
    select = torch.cumsum(-probs * log_probs, dim=-1) <= tau
    select[:, :keep] = True
    keep_mask = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    keep_mask.scatter_(dim=1, index=top_idx, src=select)
    return _t_fill(x, ~keep_mask, inplace)


def t_top_n_sigma(x: Any, n: float, keep: int, inplace: bool) -> Any:
    import torch

    x64 = x.to(torch.float64)
    remove = (x64 < _sigma_threshold(torch, x64, n)) & _t_keep_top(x, keep)
    return _t_fill(x, remove, inplace)
