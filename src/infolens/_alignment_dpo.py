r"""The DPO loss family on per-example sequence log-probabilities, each equal to TRL's.

Matched against **TRL 1.16.0** (``trl/trainer/dpo_trainer.py``, ``DPOTrainer._compute_loss``,
from the PyPI wheel ``trl-1.16.0-py3-none-any.whl``, sha256 ``c4726e13...0ba0396``), and
checked there numerically against the real trainer (see ``docs/dpo.md``). That release
differs from TRL <= 0.28 (before "Refactor DPO", commit ``e3b7897``) and from the git
snapshot ``f2cd577`` (1.10.0.dev0) in ways this module states where they matter:

* TRL >= 0.29 has no label smoothing in the ``sigmoid`` loss; TRL <= 0.28 had the
  conservative-DPO form, which this module keeps (``label_smoothing=0``, the default, gives
  TRL 1.16.0's loss exactly);
* TRL >= 0.29 dropped the running-mean reward shift of ``bco_pair``; it is ``bco_delta=``
  here (0, the default, gives TRL 1.16.0's loss);
* in 1.16.0 the f-divergence changes only the chosen-minus-rejected score that ``sigmoid``,
  ``hinge``, ``ipo``, ``robust`` and ``exo_pair`` use; ``nca_pair``, ``bco_pair``,
  ``sppo_hard``, ``apo_zero`` and ``apo_down`` always use the plain log-ratios
  (1.10.0.dev0 fed the f-scores to ``nca_pair``, ``bco_pair`` and ``sppo_hard``, and left out
  the f-score constants).

Log-probabilities are in nats. The public entry point is :func:`dpo_loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens._backend import Array, as_array, describe, is_torch
from infolens.errors import InputError

#: The TRL release whose definitions :func:`dpo_loss` reproduces.
TRL_VERSION = "1.16.0"
#: The loss types :func:`dpo_loss` computes (TRL's ``loss_type`` names).
LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "exo_pair",
    "nca_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "bco_pair",
)
#: TRL's ``f_divergence_type`` names; also accepted as ``loss_type`` (the sigmoid loss).
F_DIVERGENCES = ("reverse_kl", "forward_kl", "js_divergence", "alpha_divergence")
#: Loss types that read ``label_smoothing`` (every other one requires it to be 0).
_SMOOTHED = ("sigmoid", "robust", "exo_pair")
#: Loss types that read the f-divergence scores (the others use the plain log-ratios).
_F_SCORED = ("sigmoid", "hinge", "ipo", "robust", "exo_pair")
#: TRL clamps (alpha - 1) * log-ratio at this before exp() (float16 inputs: 11).
_ALPHA_CLAMP = 80.0
_ALPHA_CLAMP_FLOAT16 = 11.0
_LOG2 = math.log(2.0)


@dataclass(frozen=True)
class DPOOutput:
    """What :func:`dpo_loss` returns: per-example losses and implicit rewards.

    Attributes
    ----------
    losses : array, shape (n,)
        The loss of each preference pair (no reduction); differentiable in torch.
    chosen_rewards, rejected_rewards : array, shape (n,)
        Implicit rewards :math:`\\beta(\\log\\pi(y) - \\log\\pi_{ref}(y))` in nats, detached in
        torch (as TRL logs them); always the reverse-KL log-ratio, whatever the f-divergence.
    loss_type, f_divergence : str
        The loss and f-divergence computed (a ``loss_type`` shorthand resolved).

    Notes
    -----
    The reductions are properties, each the arithmetic mean over the n examples, returned
    as 0-d arrays (numpy ``float64`` or a detached tensor except :attr:`loss`, which keeps
    autograd): :attr:`loss`, :attr:`reward_accuracy`, :attr:`reward_margin`,
    :attr:`chosen_reward_mean`, :attr:`rejected_reward_mean`; :meth:`metrics` gives them
    as Python floats under TRL's log names.
    """

    losses: Array
    chosen_rewards: Array
    rejected_rewards: Array
    loss_type: str
    f_divergence: str

    @property
    def loss(self) -> Array:
        """Mean of :attr:`losses` over the examples (TRL's reduction), differentiable."""
        return self.losses.mean()

    @property
    def reward_accuracy(self) -> Array:
        """Fraction of pairs with chosen reward > rejected reward (ties count as wrong)."""
        right = self.chosen_rewards > self.rejected_rewards
        return right.to(self.chosen_rewards.dtype).mean() if is_torch(right) else right.mean()

    @property
    def reward_margin(self) -> Array:
        """Mean of chosen reward minus rejected reward, in nats."""
        return (self.chosen_rewards - self.rejected_rewards).mean()

    @property
    def chosen_reward_mean(self) -> Array:
        """Mean chosen reward, in nats."""
        return self.chosen_rewards.mean()

    @property
    def rejected_reward_mean(self) -> Array:
        """Mean rejected reward, in nats."""
        return self.rejected_rewards.mean()

    def metrics(self) -> dict[str, float]:
        """The means as Python floats under the names TRL's ``DPOTrainer`` logs.

        Keys: ``"loss"``, ``"rewards/chosen"``, ``"rewards/rejected"``,
        ``"rewards/accuracies"``, ``"rewards/margins"``.
        """
        return {
            "loss": float(_detach(self.loss)),
            "rewards/chosen": float(self.chosen_reward_mean),
            "rewards/rejected": float(self.rejected_reward_mean),
            "rewards/accuracies": float(self.reward_accuracy),
            "rewards/margins": float(self.reward_margin),
        }


# --------------------------------------------------------------------------- elementwise


def _log_sigmoid(x: Array) -> Array:
    """log sigma(x) = -softplus(-x), without overflow for any finite x."""
    if is_torch(x):
        import torch.nn.functional as F

        return F.logsigmoid(x)
    return -np.logaddexp(0.0, -x)


def _sigmoid(x: Array) -> Array:
    if is_torch(x):
        import torch

        return torch.sigmoid(x)
    return np.exp(-np.logaddexp(0.0, -x))


def _expm1(x: Array) -> Array:
    if is_torch(x):
        import torch

        return torch.expm1(x)
    return np.expm1(x)


def _relu(x: Array) -> Array:
    if is_torch(x):
        import torch

        return torch.relu(x)
    return np.maximum(x, 0.0)


def _clamp_max(x: Array, c: float) -> Array:
    return x.clamp(max=c) if is_torch(x) else np.minimum(x, c)


def _detach(x: Array) -> Array:
    return x.detach() if is_torch(x) else x


# --------------------------------------------------------------------------- inputs


def _number(x: Any, name: str, expected: str, ok: Any) -> float:
    number = isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool)
    if not number or not math.isfinite(float(x)) or not ok(float(x)):
        raise InputError(f"{name}: expected {expected}, got {describe(x)}")
    return float(x)


def _first_bad(bad: Array) -> int:
    flat = bad.detach().cpu().numpy() if is_torch(bad) else np.asarray(bad)
    return int(np.flatnonzero(flat)[0])


def _vector(x: Any, name: str, like: Any, what: str) -> Array:
    """``x`` as a finite 1-D float array (numpy float64; torch at least float32)."""
    a = as_array(x, name, like_torch=like)
    if a.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array of {what}, got {describe(a)}")
    if is_torch(a):
        import torch

        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()
        bad = ~torch.isfinite(a)
    else:
        a = np.asarray(a, dtype=np.float64)
        bad = ~np.isfinite(a)
    if bool(bad.any()):
        i = _first_bad(bad)
        raise InputError(
            f"{name}: expected finite {what}, got {float(a[i])} at index {i} of {describe(a)}"
        )
    return a


def _lengths(x: Any, name: str, like: Array) -> Array:
    """Token counts as ``like``'s kind of array and dtype, each at least 1 (TRL's clamp)."""
    if is_torch(x) and not is_torch(like):
        x = x.detach().cpu().numpy()
    n = _vector(x, name, like if is_torch(like) else None, "completion token counts")
    if tuple(n.shape) != tuple(like.shape):
        raise InputError(
            f"{name}: expected the shape of policy_chosen_logps {tuple(like.shape)}, "
            f"got {tuple(n.shape)}"
        )
    if bool((n < 0).any()):
        i = _first_bad(n < 0)
        raise InputError(f"{name}: expected token counts >= 0, got {float(n[i])} at index {i}")
    if is_torch(n):
        return n.to(like.dtype).clamp(min=1.0)
    return np.maximum(n, 1.0)


def _resolve(loss_type: Any, f_divergence: Any) -> tuple[str, str]:
    if not isinstance(f_divergence, str) or f_divergence not in F_DIVERGENCES:
        raise InputError(
            f"f_divergence: expected one of {', '.join(F_DIVERGENCES)}, got {describe(f_divergence)}"
        )
    if isinstance(loss_type, str) and loss_type in F_DIVERGENCES:
        if f_divergence not in ("reverse_kl", loss_type):
            raise InputError(
                f"f_divergence: expected {loss_type!r} (or the default) with "
                f"loss_type={loss_type!r}, got {f_divergence!r}"
            )
        return "sigmoid", loss_type
    if not isinstance(loss_type, str) or loss_type not in LOSS_TYPES:
        valid = ", ".join((*LOSS_TYPES, *F_DIVERGENCES))
        raise InputError(f"loss_type: expected one of {valid}, got {describe(loss_type)}")
    return loss_type, f_divergence


def _scores(r: Array, f_divergence: str, alpha: float, clamp: float) -> Array:
    r"""TRL's f-divergence score of a log-ratio ``r`` = log(pi/pi_ref) (f'(e^r))."""
    if f_divergence == "forward_kl":  # f'(t) = 1 - 1/t
        return -_expm1(-r)
    if f_divergence == "js_divergence":  # f'(t) = log(2t / (1 + t))
        return _LOG2 + _log_sigmoid(r)
    if f_divergence == "alpha_divergence" and abs(alpha - 1.0) >= 1e-6:
        # f'(t) = (t^(alpha-1) - 1) / (alpha - 1), the exponent clamped as TRL does
        return _expm1(_clamp_max((alpha - 1.0) * r, clamp)) / (alpha - 1.0)
    return r  # reverse_kl, and alpha_divergence at alpha = 1 (TRL's |alpha - 1| < 1e-6)


# --------------------------------------------------------------------------- the loss


def dpo_loss(
    policy_chosen_logps: Any,
    policy_rejected_logps: Any,
    ref_chosen_logps: Any,
    ref_rejected_logps: Any,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    f_divergence: str = "reverse_kl",
    alpha: float = 0.5,
    chosen_lengths: Any = None,
    rejected_lengths: Any = None,
    bco_delta: float = 0.0,
) -> DPOOutput:
    r"""DPO-family preference losses, each equal to TRL 1.16.0's ``DPOTrainer``.

    With the log-ratios (nats) :math:`r_c = \log\pi(y_c) - \log\pi_{ref}(y_c)` and
    :math:`r_r = \log\pi(y_r) - \log\pi_{ref}(y_r)` of the chosen and rejected completions,
    the f-divergence scores :math:`s = f'(e^{r})` (see ``f_divergence``),
    :math:`\Delta = s_c - s_r`, :math:`z = \beta\Delta`, :math:`\varepsilon` =
    ``label_smoothing`` and :math:`\log\sigma(x) = -\mathrm{softplus}(-x)`, the loss of each
    pair is:

    ``"sigmoid"`` (DPO, Rafailov et al. 2023; cDPO when :math:`\varepsilon > 0`)
        :math:`-(1-\varepsilon)\log\sigma(z) - \varepsilon\log\sigma(-z)`
    ``"hinge"`` (SLiC, Zhao et al. 2023)
        :math:`\max(0,\ 1 - z)`
    ``"ipo"`` (IPO, Azar et al. 2023, eq. 17)
        :math:`(\bar\Delta - \tfrac{1}{2\beta})^2` with
        :math:`\bar\Delta = s_c/\max(L_c, 1) - s_r/\max(L_r, 1)` when the completion
        lengths :math:`L` are given, else :math:`\bar\Delta = \Delta`
    ``"robust"`` (rDPO, Chowdhury et al. 2024)
        :math:`\dfrac{-(1-\varepsilon)\log\sigma(z) + \varepsilon\log\sigma(-z)}{1-2\varepsilon}`
    ``"exo_pair"`` (EXO, Ji et al. 2024, eq. 16)
        :math:`\sigma(z)\,[\log\sigma(z) - \log(1-\varepsilon)]
        + \sigma(-z)\,[\log\sigma(-z) - \log\varepsilon]`
    ``"nca_pair"`` (NCA, Chen et al. 2024)
        :math:`-\log\sigma(\beta r_c) - \tfrac12\log\sigma(-\beta r_c)
        - \tfrac12\log\sigma(-\beta r_r)`
    ``"sppo_hard"`` (SPPO with hard labels, Wu et al. 2024)
        :math:`(r_c - \tfrac{1}{2\beta})^2 + (r_r + \tfrac{1}{2\beta})^2`
    ``"apo_zero"`` (APO, D'Oosterlinck et al. 2024, eq. 7)
        :math:`1 - \sigma(\beta r_c) + \sigma(\beta r_r)`
    ``"apo_down"`` (APO, eq. 8)
        :math:`\sigma(\beta r_c) + 1 - \sigma(\beta (r_c - r_r))`
    ``"bco_pair"`` (BCO, Jung et al. 2024)
        :math:`-\log\sigma(\beta r_c - \delta) - \log\sigma(-(\beta r_r - \delta))`,
        :math:`\delta` = ``bco_delta``

    ``1 - σ(x)`` is computed as ``σ(-x)`` (the same number without cancellation).

    Parameters
    ----------
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps : array_like, shape (n,)
        Per-example log-probabilities (nats) of the chosen / rejected completion under the
        policy and the reference model, each summed over the completion's tokens, as TRL
        computes them (for ``"ipo"`` see ``chosen_lengths``). numpy arrays or torch tensors;
        if any is a tensor the result is a tensor on its device, differentiable; numpy
        results are float64, torch float32 or float64 (half precision is widened).
    beta : float, default 0.1
        :math:`\beta > 0`, the strength of the pull towards the reference (for ``"ipo"``
        the regulariser :math:`\tau`).
    loss_type : str, default "sigmoid"
        One of the names above. An f-divergence name (``"reverse_kl"``, ``"forward_kl"``,
        ``"js_divergence"``, ``"alpha_divergence"``) is shorthand for ``"sigmoid"`` with that
        ``f_divergence``.
    label_smoothing : float, default 0.0
        :math:`\varepsilon`, read by ``"sigmoid"`` and ``"robust"`` (:math:`0 \le
        \varepsilon < 0.5`; for robust the probability a label is flipped) and
        ``"exo_pair"`` (:math:`0 < \varepsilon < 0.5`, the paper uses 1e-3). Every other
        loss type requires 0 (TRL ignores it there with a warning). TRL 1.16.0's sigmoid
        loss has no smoothing: with :math:`\varepsilon > 0` this is TRL <= 0.28's (cDPO).
    f_divergence : str, default "reverse_kl"
        TRL's ``f_divergence_type`` (f-DPO, Wang et al. 2023): the score :math:`s = f'(e^r)`
        is :math:`r` (``"reverse_kl"``), :math:`1 - e^{-r}` (``"forward_kl"``),
        :math:`\log 2 + \log\sigma(r)` (``"js_divergence"``), or
        :math:`(e^{\min((\alpha-1)r,\ 80)} - 1)/(\alpha-1)` (``"alpha_divergence"``; the
        exponent is clamped at 80 as TRL does, at 11 for torch float16 inputs, and
        :math:`|\alpha - 1| < 10^{-6}` means reverse KL). Only the losses that use
        :math:`\Delta` read it (sigmoid, hinge, ipo, robust, exo_pair), as in TRL 1.16.0.
    alpha : float, default 0.5
        :math:`\alpha` of ``"alpha_divergence"`` (TRL's ``f_alpha_divergence_coef``, whose
        default is 0.5); any finite number.
    chosen_lengths, rejected_lengths : array_like, shape (n,), optional
        ``"ipo"`` only: the number of completion tokens of each chosen / rejected
        completion. TRL's IPO divides the scores by them (lengths below 1 count as 1), so
        that the loss uses per-token averages. Give both, or neither and pass length-averaged
        log-probabilities instead (the same loss for ``"reverse_kl"``; for other
        f-divergences only the lengths give TRL's value, since :math:`f'(e^{r/L}) \ne
        f'(e^r)/L`).
    bco_delta : float, default 0.0
        ``"bco_pair"`` only: the reward shift :math:`\delta`. TRL 1.16.0 uses 0; the BCO
        paper and TRL <= 0.28 use the running mean of the batch-mean rewards
        ``mean(concat(chosen_rewards, rejected_rewards))`` over the batches so far,
        including the current one: keep it outside and pass it in.

    Returns
    -------
    DPOOutput
        ``losses`` (per example), ``chosen_rewards`` = :math:`\beta r_c` and
        ``rejected_rewards`` = :math:`\beta r_r` (detached), and the mean reductions
        ``loss``, ``reward_accuracy``, ``reward_margin``, ``chosen_reward_mean``,
        ``rejected_reward_mean``.

    Raises
    ------
    InputError
        Inputs that are not 1-D real arrays of one shape with at least one example, a NaN
        or infinite value, :math:`\beta \le 0`, ``label_smoothing`` out of range for the
        loss, an unknown ``loss_type`` or ``f_divergence`` (the message lists the valid
        ones), or lengths / ``bco_delta`` given to a loss that does not read them.

    Notes
    -----
    Every log-sigmoid is :math:`-\mathrm{softplus}(-x)` and every sigmoid
    :math:`e^{\log\sigma(x)}`, so :math:`|z|` up to 1e4 and beyond neither overflows nor
    loses the tail: the sigmoid loss at :math:`z = -10^4` is :math:`10^4`, at
    :math:`z = 10^4` it is :math:`e^{-10^4}` (0 in float64). The ``"forward_kl"`` score
    overflows to :math:`-\infty` for :math:`r < -709` nats in float64 (:math:`-88` in
    float32), as TRL's does. The squared losses (``"ipo"``, ``"sppo_hard"``) grow
    quadratically and are finite for any realistic input.

    Examples
    --------
    >>> import numpy as np
    >>> out = dpo_loss(
    ...     np.array([-10.0, -12.0]), np.array([-14.0, -11.0]),   # policy: chosen, rejected
    ...     np.array([-11.0, -12.5]), np.array([-13.0, -12.0]),   # reference
    ...     beta=0.1)
    >>> out.losses.round(6)            # softplus(-0.1 * Δ), Δ = (1 - (-1), 0.5 - 1)
    array([0.598139, 0.71846 ])
    >>> round(float(out.loss), 6), float(out.reward_accuracy), round(float(out.reward_margin), 6)
    (0.658299, 0.5, 0.075)
    >>> out.chosen_rewards, out.rejected_rewards
    (array([0.1 , 0.05]), array([-0.1,  0.1]))
    >>> dpo_loss([-10.0], [-14.0], [-11.0], [-13.0], loss_type="ipo").losses  # (2 - 5)^2
    array([9.])
    >>> dpo_loss([-10.0], [-14.0], [-11.0], [-13.0], loss_type="dpo")
    Traceback (most recent call last):
        ...
    infolens.errors.InputError: loss_type: expected one of sigmoid, hinge, ipo, robust, exo_pair, nca_pair, sppo_hard, apo_zero, apo_down, bco_pair, reverse_kl, forward_kl, js_divergence, alpha_divergence, got str 'dpo'
    """
    kind, fdiv = _resolve(loss_type, f_divergence)
    b = _number(beta, "beta", "a finite number > 0", lambda v: v > 0)
    eps = _number(label_smoothing, "label_smoothing", "a finite number", lambda v: True)
    if kind in ("sigmoid", "robust") and not 0.0 <= eps < 0.5:
        raise InputError(f"label_smoothing: expected 0 <= value < 0.5 for {kind}, got {eps}")
    if kind == "exo_pair" and not 0.0 < eps < 0.5:
        raise InputError(f"label_smoothing: expected 0 < value < 0.5 for exo_pair, got {eps}")
    if kind not in _SMOOTHED and eps != 0.0:
        raise InputError(
            f"label_smoothing: expected 0 for {kind} (only sigmoid, robust and exo_pair "
            f"use it), got {eps}"
        )
    a = _number(alpha, "alpha", "a finite number", lambda v: True)
    delta = _number(bco_delta, "bco_delta", "a finite number", lambda v: True)
    if kind != "bco_pair" and delta != 0.0:
        raise InputError(f"bco_delta: expected 0 for {kind} (only bco_pair uses it), got {delta}")

    named = {
        "policy_chosen_logps": policy_chosen_logps,
        "policy_rejected_logps": policy_rejected_logps,
        "ref_chosen_logps": ref_chosen_logps,
        "ref_rejected_logps": ref_rejected_logps,
    }
    like = next((x for x in named.values() if is_torch(x)), None)
    what = "per-example log-probabilities (nats)"
    pc, pr, rc, rr = (_vector(x, n, like, what) for n, x in named.items())
    shape = tuple(pc.shape)
    for name, x in zip(list(named)[1:], (pr, rc, rr)):
        if tuple(x.shape) != shape:
            raise InputError(
                f"{name}: expected the shape of policy_chosen_logps {shape}, got {tuple(x.shape)}"
            )
    if shape[0] == 0:
        raise InputError("policy_chosen_logps: expected at least one example, got shape (0,)")

    clamp = _ALPHA_CLAMP
    if like is not None:
        import torch

        if any(is_torch(x) and x.dtype == torch.float16 for x in named.values()):
            clamp = _ALPHA_CLAMP_FLOAT16

    r_c = pc - rc
    r_r = pr - rr
    chosen_rewards = _detach(b * r_c)
    rejected_rewards = _detach(b * r_r)

    if kind in _F_SCORED:
        s_c = _scores(r_c, fdiv, a, clamp)
        s_r = _scores(r_r, fdiv, a, clamp)
        z = b * (s_c - s_r)

    lengths = (chosen_lengths, rejected_lengths)
    if kind != "ipo" and any(x is not None for x in lengths):
        raise InputError(f"chosen_lengths: expected None for {kind} (only ipo uses lengths)")
    if kind == "ipo" and (chosen_lengths is None) != (rejected_lengths is None):
        missing = "rejected_lengths" if rejected_lengths is None else "chosen_lengths"
        raise InputError(f"{missing}: expected token counts when the other lengths are given")

    if kind == "sigmoid":
        losses = -(1.0 - eps) * _log_sigmoid(z)
        if eps > 0.0:
            losses = losses - eps * _log_sigmoid(-z)
    elif kind == "hinge":
        losses = _relu(1.0 - z)
    elif kind == "ipo":
        if chosen_lengths is not None:
            lc = _lengths(chosen_lengths, "chosen_lengths", s_c)
            lr = _lengths(rejected_lengths, "rejected_lengths", s_c)
            ipo_delta = s_c / lc - s_r / lr
        else:
            ipo_delta = s_c - s_r
        losses = (ipo_delta - 1.0 / (2.0 * b)) ** 2
    elif kind == "robust":
        losses = (-(1.0 - eps) * _log_sigmoid(z) + eps * _log_sigmoid(-z)) / (1.0 - 2.0 * eps)
    elif kind == "exo_pair":
        log_qw, log_ql = _log_sigmoid(z), _log_sigmoid(-z)
        losses = _sigmoid(z) * (log_qw - math.log1p(-eps)) + _sigmoid(-z) * (log_ql - math.log(eps))
    elif kind == "nca_pair":
        losses = (
            -_log_sigmoid(b * r_c) - 0.5 * _log_sigmoid(-b * r_c) - 0.5 * _log_sigmoid(-b * r_r)
        )
    elif kind == "sppo_hard":
        losses = (r_c - 0.5 / b) ** 2 + (r_r + 0.5 / b) ** 2
    elif kind == "apo_zero":
        losses = _sigmoid(-b * r_c) + _sigmoid(b * r_r)
    elif kind == "apo_down":
        losses = _sigmoid(b * r_c) + _sigmoid(-b * (r_c - r_r))
    else:  # bco_pair
        losses = -_log_sigmoid(b * r_c - delta) - _log_sigmoid(-(b * r_r - delta))
    return DPOOutput(losses, chosen_rewards, rejected_rewards, kind, fdiv)
