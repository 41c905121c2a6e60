"""Per-step reports of :func:`infolens.sampling.apply`: retained tokens and mass,
entropies and KL divergences, per row, in float64, in bounded row chunks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens import _backend as B

NEG_INF = float("-inf")


@dataclass(frozen=True)
class StepReport:
    """What one step did, per row (arrays of the logits' leading shape; torch tensors
    for torch input).

    Attributes
    ----------
    name, value
        The step (``"top_p"``, ...) and its parameter.
    kept
        Tokens with finite logit after the step (int64).
    mass
        Probability the kept tokens had under the distribution entering the step:
        1 for temperature, in ``(0, 1]`` for a truncation.
    mass_original
        Probability the kept tokens had under the chain's input distribution.
    entropy_before, entropy_after
        Entropy of the distribution entering and leaving the step (nats, or ``base``).
    kl
        :math:`D(\\text{after} \\| \\text{before})`; ``-log mass`` for a truncation.
    kl_original
        :math:`D(\\text{after} \\| \\text{chain input})`.
    """

    name: str
    value: Any
    kept: Any
    mass: Any
    mass_original: Any
    entropy_before: Any
    entropy_after: Any
    kl: Any
    kl_original: Any


def _log_softmax64(xp: Any, x: Any) -> Any:
    x64 = x.astype(np.float64) if xp is np else x.to(xp.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = x64 - xp.amax(x64, -1)[..., None]
        return y - xp.log(xp.exp(y).sum(-1))[..., None]


def _plogp(xp: Any, lp: Any) -> Any:
    """``-sum p log p`` over the finite entries of log-probabilities ``lp``."""
    fin = lp > NEG_INF
    zero = xp.zeros_like(lp)
    return 0.0 - xp.where(fin, xp.exp(lp) * lp, zero).sum(-1)  # 0.0, not -0.0, if one-hot


def _report_rows(
    xp: Any, before: Any, after: Any, original: Any, truncation: bool, from_original: bool
) -> dict[str, Any]:
    lb, la = _log_softmax64(xp, before), _log_softmax64(xp, after)
    lo = lb if original is None else _log_softmax64(xp, original)
    fin = after > NEG_INF
    zero = xp.zeros_like(lb)
    with np.errstate(invalid="ignore", divide="ignore"):
        pb, po = xp.exp(lb), xp.exp(lo)
        mass, removed = xp.where(fin, pb, zero).sum(-1), xp.where(fin, zero, pb).sum(-1)
        mass_o = xp.where(fin, po, zero).sum(-1)
        removed_o = xp.where(fin, zero, po).sum(-1)

        def neg_log_mass(m: Any, r: Any) -> Any:
            return xp.where(r < 0.5, -xp.log1p(-r), -xp.log(m))

        def kl(lq: Any) -> Any:
            pa = xp.exp(la)
            return xp.where(fin, pa * (la - lq), zero).sum(-1)

        return {
            "kept": fin.sum(-1),
            "mass": mass,
            "mass_original": mass_o,
            "entropy_before": _plogp(xp, lb),
            "entropy_after": _plogp(xp, la),
            "kl": neg_log_mass(mass, removed) if truncation else kl(lb),
            "kl_original": neg_log_mass(mass_o, removed_o) if from_original else kl(lo),
        }


def _is_truncation(xp: Any, b: Any, a: Any) -> bool:
    fin = a > NEG_INF
    if xp is np:
        return bool(np.array_equal(a[fin], b[fin]))
    return bool(xp.equal(a[fin], b[fin]))


def _report(
    b: Any,
    a: Any,
    o: Any,
    name: str,
    value: Any,
    base: float | None,
    truncation: bool | None,
    from_original: bool | None,
) -> StepReport:
    xp: Any = np
    if B.is_torch(b):
        import torch

        xp = torch
    if truncation is None:
        truncation = _is_truncation(xp, b, a)
    if from_original is None:
        from_original = truncation if o is None else _is_truncation(xp, o, a)
    lead, v = tuple(b.shape[:-1]), int(b.shape[-1])
    rows = [t.reshape(-1, v) for t in (b, a, o if o is not None else b)]
    step = max(1, (32 * 2**20) // (8 * 8 * max(v, 1)))
    parts = [
        _report_rows(
            xp,
            rows[0][i : i + step],
            rows[1][i : i + step],
            None if o is None else rows[2][i : i + step],
            truncation,
            from_original,
        )
        for i in range(0, max(rows[0].shape[0], 1), step)
    ]
    cat = np.concatenate if xp is np else xp.cat
    out = {k: cat([p[k] for p in parts]).reshape(lead) for k in parts[0]}
    if base is not None:
        for k in ("entropy_before", "entropy_after", "kl", "kl_original"):
            out[k] = out[k] / math.log(base)
    return StepReport(name=name, value=value, **out)
