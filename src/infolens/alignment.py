r"""KL in alignment: the RLHF per-token KL estimators, exact full-vocabulary KL, KL-shaped
rewards, KL controllers and the DPO loss family.

RLHF maximises :math:`E_{x\sim\pi}[R(x)] - \beta\,D_{KL}(\pi \| \pi_{ref})`. The divergence
is an expectation under the *policy* :math:`\pi`, so on tokens sampled from the policy it is
estimated from the sampled token alone (Schulman, "Approximating KL divergence", 2020). With
:math:`\log r = \log\pi_{ref}(x) - \log\pi(x)`, :math:`x \sim \pi`:

==========  ===============================  ============================================
estimator   value                            for :math:`D(\pi\|\pi_{ref})`
==========  ===============================  ============================================
``k1``      :math:`-\log r`                  unbiased; negative on some tokens; variance
                                             :math:`\mathrm{Var}_\pi[\log r]`, large
                                             relative to a small KL
``k2``      :math:`\tfrac12(\log r)^2`       biased (second-order agreement with KL:
                                             bias/KL 0.25 at KL 0.5 for Gaussians); >= 0;
                                             low variance
``k3``      :math:`(r - 1) - \log r`         unbiased (:math:`E_\pi[r] = 1`); >= 0
                                             (:math:`\log r \le r - 1`); low variance
``abs``     :math:`|\log r|`                 biased (verl's ``abs``)
==========  ===============================  ============================================

When both full distributions are at hand, :func:`exact_kl` gives the per-token KL over the
whole vocabulary (no estimator at all), and summed along a sampled sequence it is the
Rao-Blackwellised estimator of the sequence KL: each term is
:math:`E[k1_t \mid x_{<t}]`, so by the law of total variance its variance is that of
:math:`\sum_t k1_t` less the (non-negative) within-prefix variance of the sampled tokens.

Minimising :math:`D(\pi\|\pi_{ref})` over :math:`\pi` is *mode-seeking* (zero-forcing:
:math:`\pi` is pushed to put no mass where :math:`\pi_{ref}` has little); minimising
:math:`D(p\|q)` over :math:`q` with :math:`p` the data, i.e. maximum-likelihood training, is
*mass-covering* (mean-seeking).

Every function takes numpy arrays or torch tensors (torch keeps device and autograd; numpy
results are float64), a ``mask=`` (True, or 1, on valid tokens; padding gives 0 and is
never read), and a named ``reduction=`` over the last (token) axis:

``"none"``
    per token, the input's shape (0 at masked tokens);
``"sequence_sum"`` / ``"sequence_mean"``
    per sequence, summed / averaged over its valid tokens;
``"sum"``
    one number, summed over every valid token;
``"token_mean"`` (verl ``token-mean``)
    the sum over valid tokens divided by their count;
``"seq_mean_token_mean"`` / ``"seq_mean_token_sum"`` (verl's names with ``_``)
    the per-sequence mean / sum, then the mean over sequences.

:func:`dpo_loss` (from :mod:`infolens._alignment_dpo`) is the DPO loss family, each loss
type equal to TRL's; :func:`infolens.kl_diagnostics.kl_estimator_report` measures the
estimators' bias and spread on real models.

``convention=`` reproduces a trainer's own formula, clamps and names exactly (see
``docs/alignment.md`` for the table and the commits read): TRL PPO, TRL GRPO, OpenRLHF and
verl. Nats throughout.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from infolens._alignment_dpo import F_DIVERGENCES, LOSS_TYPES, DPOOutput, dpo_loss
from infolens._alignment_kl import (
    CONVENTIONS,
    ESTIMATORS,
    REDUCTIONS,
    _check_reduction,
    _mask,
    _to_numpy,
    _xp,
    kl_estimate,
    reduce_tokens,
)
from infolens._backend import Array, as_array, describe, is_torch
from infolens._kernels import CHUNK_BYTES, fused_rows
from infolens.errors import InputError

__all__ = [
    "CONVENTIONS",
    "ESTIMATORS",
    "F_DIVERGENCES",
    "LOSS_TYPES",
    "REDUCTIONS",
    "AdaptiveKLController",
    "DPOOutput",
    "FixedKLController",
    "KLRewards",
    "dpo_loss",
    "exact_kl",
    "kl_estimate",
    "kl_penalized_rewards",
    "reduce_tokens",
    "sequence_kl",
]


# --------------------------------------------------------------------------- exact KL


def exact_kl(
    policy_logits: Any,
    ref_logits: Any,
    *,
    mask: Any = None,
    direction: str = "policy||ref",
    reduction: str = "none",
) -> Array:
    r"""Exact per-token KL over the full vocabulary, through the fused kernel.

    .. math::

        D(\pi_t \| \pi_{ref,t}) = \sum_v \pi_t(v) \,
        [\log\pi_t(v) - \log\pi_{ref,t}(v)]

    at every position ``t``, from the two models' logits (any shift: they are
    normalised here); ``direction="ref||policy"`` gives :math:`D(\pi_{ref}\|\pi)`. The
    rows are processed in blocks of about 32 MB, so the extra memory is bounded whatever
    the batch, sequence and vocabulary sizes; numpy and CPU torch tensors outside autograd
    (float64, float32, float16 and bfloat16) go through the compiled kernel, which widens
    each element to float64 as it reads it; tensors that need gradients (or live on an
    accelerator) take the array path, which keeps autograd.

    ``-inf`` logits are zero probabilities; the KL is ``+inf`` where the first argument has
    mass the second lacks. With ``reduction="sequence_sum"`` it is the Rao-Blackwellised
    sequence KL of sampled sequences (:func:`sequence_kl`).

    Parameters
    ----------
    policy_logits, ref_logits : array ``[..., V]``
        Logits or log-probabilities, the same shape.
    mask : bool or 0/1 array ``[...]``, optional
        Valid positions; masked rows are never read (padding may hold anything) and give 0.
    direction : {"policy||ref", "ref||policy"}
    reduction : str
        Over the last axis of ``[...]`` (see the module docstring).

    Returns
    -------
    array
        float64 nats, shape ``[...]`` for ``reduction="none"``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.log([[[0.5, 0.5], [0.9, 0.1]]])
    >>> q = np.log([[[0.9, 0.1], [0.9, 0.1]]])
    >>> exact_kl(p, q).round(6).tolist()
    [[0.510826, 0.0]]
    >>> exact_kl(p, q, direction="ref||policy").round(6).tolist()
    [[0.368064, 0.0]]
    """
    if direction not in ("policy||ref", "ref||policy"):
        raise InputError(
            f"direction: expected 'policy||ref' or 'ref||policy', got {describe(direction)}"
        )
    red = _check_reduction(reduction)
    torchy = is_torch(policy_logits) or is_torch(ref_logits)
    like = policy_logits if is_torch(policy_logits) else ref_logits if torchy else None
    p = as_array(policy_logits, "policy_logits", like_torch=like)
    q = as_array(ref_logits, "ref_logits", like_torch=like)
    if p.ndim < 1 or p.shape[-1] == 0:
        raise InputError(
            f"policy_logits: expected an array [..., vocab] with a non-empty vocab, "
            f"got shape {tuple(p.shape)}"
        )
    if tuple(q.shape) != tuple(p.shape):
        raise InputError(
            f"ref_logits: expected the shape of policy_logits {tuple(p.shape)}, "
            f"got {tuple(q.shape)}"
        )
    lead, v = tuple(p.shape[:-1]), int(p.shape[-1])
    m = _mask(mask, lead, p)
    n = int(np.prod(lead)) if lead else 1
    p2, q2 = p.reshape(n, v), q.reshape(n, v)
    key = "kl_pq" if direction == "policy||ref" else "kl_qp"
    if m is None:
        idx = None
    else:
        flat = _to_numpy(m).reshape(n)
        idx = np.flatnonzero(flat)
    step = max(1, CHUNK_BYTES // max(1, v * p2.element_size() if torchy else v * p2.itemsize))
    parts: list[Array] = []
    rows = range(n) if idx is None else idx
    for lo in range(0, len(rows), step):
        if idx is None:
            a, b = p2[lo : lo + step], q2[lo : lo + step]
        else:
            sel = idx[lo : lo + step]
            contiguous = len(sel) and sel[-1] - sel[0] == len(sel) - 1
            if contiguous:
                a, b = p2[sel[0] : sel[-1] + 1], q2[sel[0] : sel[-1] + 1]
            else:
                sel_t: Any = sel
                if torchy:
                    import torch

                    sel_t = torch.as_tensor(sel, device=p2.device)
                a, b = p2[sel_t], q2[sel_t]
        parts.append(getattr(fused_rows(a, b, names=("policy_logits", "ref_logits")), key))
    out: Array
    if torchy:
        import torch

        vals = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=p.device)
        vals = vals.to(p.device)
        if idx is None:
            out = vals
        else:
            out = torch.zeros(n, dtype=vals.dtype, device=vals.device).index_put(
                (torch.as_tensor(idx, device=vals.device),), vals
            )
        out = out.reshape(lead)
    else:
        vals_np = np.concatenate(parts) if parts else np.zeros(0)
        if idx is None:
            out = vals_np
        else:
            out = np.zeros(n)
            out[idx] = vals_np
        out = out.reshape(lead)
    if not lead:
        return out if red == "none" else reduce_tokens(out.reshape(1), None, red)
    return reduce_tokens(out, m, red)


def sequence_kl(policy_logits: Any, ref_logits: Any, *, mask: Any = None) -> Array:
    r"""The Rao-Blackwellised KL of sampled sequences: the exact per-token KLs summed along
    each sample, :math:`\sum_t D(\pi(\cdot|x_{<t}) \| \pi_{ref}(\cdot|x_{<t}))`.

    Its expectation over sequences :math:`x \sim \pi` is the sequence-level
    :math:`D(\pi\|\pi_{ref})`, as for :math:`\sum_t k1_t`, but each term is the conditional
    expectation of :math:`k1_t` given the prefix, so (law of total variance) its variance
    is lower by the expected within-prefix variance of :math:`k1_t`. It needs both full
    distributions at every position (logits, not only the sampled tokens' log-probs).

    Parameters
    ----------
    policy_logits, ref_logits : array ``[B, T, V]`` (or ``[T, V]``)
    mask : bool or 0/1 array ``[B, T]``, optional

    Returns
    -------
    array ``[B]`` (a scalar for ``[T, V]``), float64 nats.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.log([[[0.5, 0.5], [0.9, 0.1]]]); q = np.log([[[0.9, 0.1], [0.5, 0.5]]])
    >>> sequence_kl(p, q).round(6).tolist()
    [0.878889]
    """
    return exact_kl(policy_logits, ref_logits, mask=mask, reduction="sequence_sum")


# --------------------------------------------------------------------------- rewards


class KLRewards(NamedTuple):
    """Per-token rewards and the per-token KL estimates they were shaped with."""

    rewards: Array
    kl: Array


def kl_penalized_rewards(
    scores: Any,
    logp: Any,
    ref_logp: Any,
    beta: float,
    *,
    estimator: str = "k1",
    mask: Any = None,
    convention: str | None = None,
    clamp: Any = None,
) -> KLRewards:
    r"""Per-token RLHF rewards: :math:`-\beta\,kl_t`, plus the sequence score at the last
    valid token (the TRL and OpenRLHF convention).

    .. math::

        r_t = -\beta\,\hat k_t + [t = t_{last}]\,R

    Parameters
    ----------
    scores : array ``[B]``
        The reward model's score of each sequence.
    logp, ref_logp : array ``[B, T]``
        Sampled tokens' log-probs under the policy and the reference (nats).
    beta : float
        The KL coefficient (>= 0).
    estimator, convention, clamp
        As for :func:`kl_estimate` (TRL PPO's default is ``"k1"`` with ``beta=0.05``).
    mask : bool or 0/1 array ``[B, T]``, optional
        Valid tokens; each sequence needs at least one (it carries the score).

    Returns
    -------
    KLRewards
        ``rewards`` ``[B, T]`` (0 at masked tokens) and ``kl`` ``[B, T]``, the estimates used.

    Notes
    -----
    TRL's PPO trainer adds the score at index ``sequence_length + 1``, where
    ``sequence_length`` is the last token before padding, when that index is inside the
    response (the first padding position, whose KL TRL sets to 0), else at the last token;
    OpenRLHF adds it at the last valid token, as here. Both give the same returns when
    the discount is 1.

    Examples
    --------
    >>> import numpy as np
    >>> r = kl_penalized_rewards([1.0], np.log([[0.5, 0.5, 0.5]]), np.log([[0.25, 0.5, 0.9]]),
    ...                          0.1, mask=[[1, 1, 0]])
    >>> r.rewards.round(4).tolist()
    [[-0.0693, 1.0, 0.0]]
    """
    b = _beta(beta)
    kl = kl_estimate(logp, ref_logp, estimator, mask=mask, convention=convention, clamp=clamp)
    if kl.ndim != 2:
        raise InputError(f"logp: expected a [batch, tokens] array, got shape {tuple(kl.shape)}")
    bsz, t = kl.shape
    like = kl if is_torch(kl) else None
    s = as_array(scores, "scores", like_torch=like)
    if tuple(s.shape) != (bsz,):
        raise InputError(f"scores: expected shape ({bsz},), got {tuple(s.shape)}")
    if not bool(_xp(s).isfinite(s).all()):
        raise InputError("scores: expected finite scores")
    m = _mask(mask, (bsz, t), kl)
    if m is None:
        last = np.full(bsz, t - 1)
    else:
        mn = _to_numpy(m)
        empty = ~mn.any(axis=1)
        if empty.any():
            raise InputError(
                f"mask: expected at least one valid token per sequence (it carries the score), "
                f"row {int(np.flatnonzero(empty)[0])} has none"
            )
        last = t - 1 - np.argmax(mn[:, ::-1], axis=1)
    rewards = 0.0 - b * kl  # (0.0 - 0 is +0.0: no -0.0 at masked tokens)
    if is_torch(rewards):
        import torch

        onehot = torch.zeros_like(rewards)
        onehot[torch.arange(bsz), torch.as_tensor(last)] = 1.0
        rewards = rewards + onehot * s.to(rewards.dtype)[:, None]
    else:
        rewards = np.array(rewards, dtype=np.float64)
        rewards[np.arange(bsz), last] += np.asarray(s, dtype=np.float64)
    return KLRewards(rewards, kl)


# --------------------------------------------------------------------------- controllers


def _finite(x: Any, name: str) -> float:
    number = isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool)
    if not number and not (is_torch(x) and x.numel() == 1):
        raise InputError(f"{name}: expected a finite number, got {describe(x)}")
    v = float(x)
    if not math.isfinite(v):
        raise InputError(f"{name}: expected a finite number, got {v}")
    return v


def _beta(beta: Any) -> float:
    if (
        isinstance(beta, bool)
        or not isinstance(beta, (int, float))
        or not (beta >= 0 and math.isfinite(beta))
    ):
        raise InputError(f"beta: expected a finite number >= 0, got {describe(beta)}")
    return float(beta)


def _positive(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (x > 0 and math.isfinite(x)):
        raise InputError(f"{name}: expected a finite number > 0, got {describe(x)}")
    return float(x)


class AdaptiveKLController:
    r"""The adaptive KL coefficient of Ziegler et al. (2019), "Fine-Tuning Language Models
    from Human Preferences":

    .. math::

        e = \mathrm{clip}(\mathrm{KL}/\mathrm{target} - 1, -0.2, 0.2), \qquad
        \beta \leftarrow \beta\,(1 + e \cdot n_{steps} / \mathrm{horizon})

    ``KL`` is the measured KL of the last batch (whatever estimator; nats), ``n_steps``
    the samples (or steps) it covered. It works the same way in a PPO, RLOO or GRPO loop:
    call :meth:`update` once per batch and use :attr:`value` as β (verl ships this
    controller; TRL removed its own, and GRPO trainers have none).

    Examples
    --------
    >>> c = AdaptiveKLController(init_beta=0.1, target=6.0, horizon=10000)
    >>> round(c.update(current_kl=12.0, n_steps=256), 6)  # KL too high: beta grows
    0.100512
    """

    def __init__(self, init_beta: float, target: float, horizon: float) -> None:
        self.value = _positive(init_beta, "init_beta")
        self.target = _positive(target, "target")
        self.horizon = _positive(horizon, "horizon")

    def __repr__(self) -> str:
        return (
            f"AdaptiveKLController(value={self.value!r}, target={self.target!r}, "
            f"horizon={self.horizon!r})"
        )

    @property
    def beta(self) -> float:
        """The current coefficient (same as :attr:`value`)."""
        return self.value

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move β towards the target KL; returns the new β."""
        kl = _finite(current_kl, "current_kl")
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
            raise InputError(f"n_steps: expected an integer >= 0, got {describe(n_steps)}")
        e = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + e * int(n_steps) / self.horizon
        return self.value


class FixedKLController:
    """A constant KL coefficient with the interface of :class:`AdaptiveKLController`.

    Examples
    --------
    >>> FixedKLController(0.05).update(current_kl=3.0, n_steps=64)
    0.05
    """

    def __init__(self, beta: float) -> None:
        self.value = _beta(beta)

    def __repr__(self) -> str:
        return f"FixedKLController(value={self.value!r})"

    @property
    def beta(self) -> float:
        """The coefficient (same as :attr:`value`)."""
        return self.value

    def update(self, current_kl: float, n_steps: int) -> float:
        """No change; returns β."""
        return self.value
