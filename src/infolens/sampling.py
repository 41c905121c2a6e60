r"""Temperature and truncation of next-token distributions, and what each step does.

Pure functions on logits — numpy arrays or torch tensors of shape ``[..., V]``
(vocabulary last, any leading batch axes). Each returns logits of the input's type,
device, dtype and shape with the removed entries set to ``-inf``:

======================  ==================================================================
``temperature(z, t)``   :math:`z / t`
``top_k(z, k)``         keep :math:`z_i \ge` the k-th largest logit (ties kept)
``top_p(z, p)``         keep the smallest set of most probable tokens with mass :math:`\ge p`
``min_p(z, p)``         keep :math:`p_i \ge p \cdot \max_j p_j`
``typical_p(z, p)``     keep tokens with :math:`|-\log p_i - H|` smallest, up to mass ``p``
``epsilon_cutoff``      keep :math:`p_i \ge \epsilon`
``eta_cutoff``          keep :math:`p_i \ge \min(\epsilon, \sqrt\epsilon\, e^{-H})`
``top_h(z, alpha)``     keep the most probable tokens while their entropy terms sum to
                        :math:`\le \alpha H` (Top-H decoding)
``top_n_sigma(z, n)``   keep :math:`z_i \ge \max z - n \sigma(z)` (llama.cpp)
======================  ==================================================================

On torch tensors every step that transformers also has gives **bit-identical** output to
its warper (``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper``,
``MinPLogitsWarper``, ``TypicalLogitsWarper``, ``EpsilonLogitsWarper``,
``EtaLogitsWarper``, ``TopHLogitsWarper``), ties, ``-inf``, ``min_tokens_to_keep`` and
float16/bfloat16 included: the same operations run in the same dtypes (it is faster on
the CPU where it can be, never different). numpy arrays follow the same definitions and
dtype rules; they agree with torch except where torch's unstable sort breaks a tie at a
cut (numpy keeps the later index) or a sum lands within one rounding of a threshold.

:func:`apply` chains the steps in transformers' order (what ``generate()`` builds from a
``GenerationConfig``) or llama.cpp's, and with ``return_steps=True`` reports per row what
each step kept and removed (:class:`StepReport`). :func:`entropy_curve`,
:func:`solve_temperature` and :func:`effective_vocabulary` describe temperature itself.
Entropies are in nats unless ``base=`` says otherwise (``base=2``: bits).

Examples
--------
>>> import numpy as np
>>> from infolens import sampling
>>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
>>> sampling.top_p(z, 0.75).round(3)
array([-0.693, -1.204,   -inf,   -inf])
>>> out, steps = sampling.apply(z, temperature=0.5, top_k=2, return_steps=True)
>>> [(s.name, int(s.kept), round(float(s.mass), 4)) for s in steps]
[('temperature', 4, 1.0), ('top_k', 2, 0.9315)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from infolens import _backend as B
from infolens import _sampling_warpers as W
from infolens._sampling_curve import (
    EntropyCurve,
    check_rows,
    entropy_curve_impl,
    solve_rows,
    to_numpy,
)
from infolens._sampling_reports import StepReport, _report
from infolens.errors import InputError

__all__ = [
    "LLAMA_CPP_ORDER",
    "STEPS",
    "TRANSFORMERS_ORDER",
    "EntropyCurve",
    "StepReport",
    "apply",
    "effective_vocabulary",
    "entropy_curve",
    "epsilon_cutoff",
    "eta_cutoff",
    "min_p",
    "solve_temperature",
    "step_report",
    "temperature",
    "top_h",
    "top_k",
    "top_n_sigma",
    "top_p",
    "typical_p",
]

#: The order transformers' ``generate()`` applies the warpers in
#: (``GenerationMixin._get_logits_processor``, transformers 5.24).
TRANSFORMERS_ORDER = (
    "temperature",
    "top_h",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon",
    "eta",
)
#: llama.cpp's default sampler chain (``common_params_sampling::samplers``) restricted to
#: the steps here: penalties, DRY and XTC, which need the generated text or randomness,
#: are not modelled; its full order is penalties, DRY, top-n-sigma, top-k, typical,
#: top-p, min-p, XTC, temperature.
LLAMA_CPP_ORDER = ("top_n_sigma", "top_k", "typical_p", "top_p", "min_p", "temperature")
#: Every step name :func:`apply` accepts in an explicit ``order``.
STEPS = (
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon",
    "eta",
    "top_h",
    "top_n_sigma",
)
NEG_INF = float("-inf")


# --------------------------------------------------------------------------- validation


def _number(name: str, value: Any, lo: float, hi: float, lo_open: bool, hi_open: bool) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    if ok and not math.isnan(v):
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok or math.isnan(v):
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise InputError(f"{name}: expected a number in {rng}, got {value!r}")
    return v


def _integer(name: str, value: Any, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise InputError(f"{name}: expected an integer >= {lo}, got {value!r}")
    return int(value)


def _logits(logits: Any) -> Any:
    x = B.as_array(logits, "logits")
    if x.ndim < 1 or x.shape[-1] == 0:
        raise InputError(
            f"logits: expected at least one entry on the last (vocabulary) axis, "
            f"got {B.describe(x)}"
        )
    return x


def _run(logits: Any, step: str, value: Any, keep: int, **kw: Any) -> Any:
    x = _logits(logits)
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    fn = getattr(W, ("t_" if B.is_torch(x) else "n_") + _IMPL[step])
    args = (value,) if step == "temperature" else (value, keep)
    out = fn(x2, *args, *kw.values(), False)
    return out.reshape(shape)


_IMPL = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "epsilon": "epsilon",
    "eta": "eta",
    "top_h": "top_h",
    "top_n_sigma": "top_n_sigma",
}


def _check(step: str, value: Any) -> Any:
    """Validate one step's parameter; return it as the step takes it."""
    if step == "temperature":
        return _number("temperature", value, 0.0, math.inf, True, True)
    if step == "top_k":
        return _integer("top_k", value)
    if step in ("top_p", "min_p"):
        return _number(step, value, 0.0, 1.0, False, False)
    if step == "typical_p":
        return _number("typical_p", value, 0.0, 1.0, True, True)
    if step in ("epsilon", "eta"):
        return _number(step, value, 0.0, 1.0, True, True)
    if step == "top_h":
        return _number("top_h", value, 0.0, 1.0, True, False)
    if step == "top_n_sigma":
        return _number("top_n_sigma", value, 0.0, math.inf, True, True)
    raise InputError(f"order: unknown step {step!r}; expected one of {', '.join(STEPS)}")


# --------------------------------------------------------------------------- the steps


def temperature(logits: Any, t: float) -> Any:
    r"""Divide logits by a temperature: :math:`z / t`.

    ``softmax(z / t)`` is sharper than the model's distribution for ``t < 1`` (the limit
    ``t -> 0`` is the argmax) and flatter for ``t > 1`` (``t -> inf``: uniform over the
    finite entries). Same as transformers' ``TemperatureLogitsWarper`` (a division, in
    the input's dtype; float16 is divided in float32 and rounded once, as torch does).

    Parameters
    ----------
    logits : array of shape ``[..., V]``
        numpy array or torch tensor; ``-inf`` entries stay ``-inf``.
    t : float
        Temperature, finite and ``> 0`` (else :class:`ValueError`).

    Returns
    -------
    array
        ``logits / t``, of the input's type, device, dtype and shape.

    Examples
    --------
    >>> import numpy as np
    >>> temperature(np.array([2.0, 1.0, -np.inf]), 0.5)
    array([  4.,   2., -inf])
    """
    return _run(logits, "temperature", _check("temperature", t), 1)


def top_k(logits: Any, k: int, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Keep the ``k`` largest logits (and every logit tied with the k-th).

    Removes :math:`z_i < z_{(k)}`, the k-th largest value; ``k`` is raised to
    ``min_tokens_to_keep`` and capped at ``V``. Identical to ``TopKLogitsWarper``.
    llama.cpp's top-k instead keeps exactly ``k`` entries (ties broken by its sort).

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    k : int
        ``>= 1``.
    min_tokens_to_keep : int
        Keep at least this many tokens (``>= 1``).

    Returns
    -------
    array
        Logits with the removed entries set to ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> top_k(np.array([1.0, 3.0, 3.0, 2.0]), 2)
    array([-inf,   3.,   3., -inf])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "top_k", _check("top_k", k), keep)


def top_p(logits: Any, p: float, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Nucleus sampling: keep the most probable tokens holding probability mass ``p``.

    Sorts ascending, takes the cumulative softmax :math:`c_j`, removes positions with
    :math:`c_j \le 1 - p` and always keeps the last ``min_tokens_to_keep``: exactly
    ``TopPLogitsWarper`` (so ``p = 1`` still removes tokens whose probability is 0 in the
    input's dtype, and ``p = 0`` keeps ``min_tokens_to_keep``). llama.cpp keeps the
    shortest prefix of the descending order with cumulative probability ``>= p``, which
    can differ by one token at the boundary.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    p : float
        In ``[0, 1]``.
    min_tokens_to_keep : int

    Returns
    -------
    array
        Logits with the removed entries set to ``-inf``.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    >>> np.isfinite(top_p(z, 0.9))
    array([ True,  True,  True, False])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "top_p", _check("top_p", p), keep)


def min_p(logits: Any, p: float, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Keep the tokens with probability at least ``p`` times the largest probability.

    Removes :math:`p_i < p \max_j p_j` (``MinPLogitsWarper``); the ``min_tokens_to_keep``
    most probable tokens are always kept.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    p : float
        In ``[0, 1]``; 0 keeps everything with nonzero probability.
    min_tokens_to_keep : int

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    >>> np.isfinite(min_p(z, 0.2))
    array([ True,  True,  True, False])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "min_p", _check("min_p", p), keep)


def typical_p(logits: Any, p: float, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Locally typical sampling (Meister et al. 2022): keep the tokens whose surprisal
    is closest to the entropy, until they hold mass ``p``.

    Ranks tokens by :math:`|-\log p_i - H(p)|` (nats) ascending and keeps them until the
    cumulative probability reaches ``p`` (every token tied with the last one kept), and
    at least ``min_tokens_to_keep``: ``TypicalLogitsWarper``. The most probable token
    can be removed.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    p : float
        In ``(0, 1)``.
    min_tokens_to_keep : int

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    >>> np.isfinite(typical_p(z, 0.5))  # |-log p - H|: 0.45, 0.06, 0.75, 1.85 nats
    array([ True,  True, False, False])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "typical_p", _check("typical_p", p), keep)


def epsilon_cutoff(logits: Any, epsilon: float, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Epsilon sampling (Hewitt et al. 2022): remove tokens with :math:`p_i < \epsilon`.

    The ``min_tokens_to_keep`` largest logits (and ties) are always kept:
    ``EpsilonLogitsWarper``.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    epsilon : float
        In ``(0, 1)``.
    min_tokens_to_keep : int

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    >>> np.isfinite(epsilon_cutoff(z, 0.1))
    array([ True,  True,  True, False])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "epsilon", _check("epsilon", epsilon), keep)


def eta_cutoff(logits: Any, epsilon: float, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Eta sampling (Hewitt et al. 2022): remove :math:`p_i < \eta`,
    :math:`\eta = \min(\epsilon, \sqrt{\epsilon}\, e^{-H(p)})` with H in nats.

    ``EtaLogitsWarper`` (``epsilon`` held as a float32 tensor, as there); the
    ``min_tokens_to_keep`` largest logits are always kept.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    epsilon : float
        In ``(0, 1)``; the paper suggests 3e-4 to 4e-3.
    min_tokens_to_keep : int

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    >>> np.isfinite(eta_cutoff(z, 0.1))
    array([ True,  True,  True, False])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "eta", _check("eta", epsilon), keep)


def top_h(logits: Any, alpha: float, *, min_tokens_to_keep: int = 1, top_n: int = 100) -> Any:
    r"""Top-H decoding (Potraghloo et al., NeurIPS 2025): bounded-entropy truncation.

    Among the ``top_n`` most probable tokens, renormalised to :math:`q`, keeps tokens in
    order of probability while :math:`\sum_{j \le i} -q_j \log q_j \le \alpha H(q)`
    (nats), and at least the first ``min_tokens_to_keep``: ``TopHLogitsWarper``, which
    always considers ``top_n = 100`` tokens and keeps at least one (so ``top_h`` never
    keeps more than ``top_n`` tokens).

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    alpha : float
        In ``(0, 1]``.
    min_tokens_to_keep : int
    top_n : int
        How many of the most probable tokens are considered (transformers: 100).

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    >>> np.isfinite(top_h(z, 0.4))
    array([ True, False, False, False])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    n = _integer("top_n", top_n)
    return _run(logits, "top_h", _check("top_h", alpha), keep, top_n=n)


def top_n_sigma(logits: Any, n: float, *, min_tokens_to_keep: int = 1) -> Any:
    r"""Top-nσ (Tang et al. 2024), llama.cpp's definition: keep
    :math:`z_i \ge \max z - n\sigma`, σ the population standard deviation of the logits
    above ``-inf``.

    Works on logits, not probabilities, so it is unchanged by temperature (both sides
    scale). Computed in float64 (llama.cpp sums in float32, which can move a token
    within a rounding of the threshold). The ``min_tokens_to_keep`` largest logits are
    always kept. transformers has no such warper.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    n : float
        ``> 0`` (llama.cpp's ``--top-n-sigma``; there ``<= 0`` means off).
    min_tokens_to_keep : int

    Returns
    -------
    array

    Examples
    --------
    >>> import numpy as np
    >>> top_n_sigma(np.array([3.0, 2.5, 0.0, -1.0]), 1.0)
    array([ 3. ,  2.5, -inf, -inf])
    """
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    return _run(logits, "top_n_sigma", _check("top_n_sigma", n), keep)


# --------------------------------------------------------------------------- reports


def step_report(
    before: Any,
    after: Any,
    *,
    original: Any = None,
    name: str = "step",
    value: Any = None,
    base: float | None = None,
) -> StepReport:
    r"""Describe the change from logits ``before`` to ``after`` (same shape), per row.

    ``after`` is treated as a truncation of ``before`` (``kl = -log mass``, computed
    without cancellation) when its finite entries equal those of ``before``; otherwise
    (a temperature) KL is summed: :math:`\sum_i q_i \log(q_i / p_i)`, float64.

    Parameters
    ----------
    before, after : array of shape ``[..., V]``
        Logits entering and leaving the step.
    original : array of shape ``[..., V]``, optional
        The chain's input, for ``mass_original`` and ``kl_original`` (default ``before``).
    name, value
        Labels stored in the report.
    base : float, optional
        Logarithm base of entropies and KLs (default e: nats; 2: bits).

    Returns
    -------
    StepReport

    Examples
    --------
    >>> import numpy as np
    >>> z = np.log(np.array([0.5, 0.3, 0.2]))
    >>> r = step_report(z, np.array([z[0], z[1], -np.inf]), base=2)
    >>> int(r.kept), round(float(r.mass), 6), round(float(r.kl), 6)
    (2, 0.8, 0.321928)
    """
    b, a = _logits(before), _logits(after)
    o = None if original is None else _logits(original)
    for nm, arr in (("after", a), ("original", o)):
        if arr is not None and tuple(arr.shape) != tuple(b.shape):
            raise InputError(f"{nm}: expected shape {tuple(b.shape)}, got {tuple(arr.shape)}")
    return _report(b, a, o, name, value, base, None, None)


# --------------------------------------------------------------------------- chains


def _resolve(order: str | Sequence[str], params: dict[str, Any]) -> list[str]:
    given = {k for k, v in params.items() if v is not None}
    names: Sequence[str]
    if isinstance(order, str):
        if order == "transformers":
            names = TRANSFORMERS_ORDER
        elif order == "llama.cpp":
            names = LLAMA_CPP_ORDER
        else:
            raise InputError(
                f"order: expected 'transformers', 'llama.cpp' or a list of step names, "
                f"got {order!r}"
            )
        extra = sorted(given - set(names))
        if extra:
            raise InputError(
                f"order={order!r}: {', '.join(extra)} is not in that chain; pass an explicit "
                f"order list to use it"
            )
        return [n for n in names if n in given]
    names = [str(n) for n in order]
    for n in names:
        if n not in STEPS:
            raise InputError(f"order: unknown step {n!r}; expected one of {', '.join(STEPS)}")
    if len(set(names)) != len(names):
        raise InputError(f"order: each step may appear once, got {names!r}")
    missing = [n for n in names if n not in given]
    if missing:
        raise InputError(f"order: {', '.join(missing)} is listed but its parameter is not set")
    unused = sorted(given - set(names))
    if unused:
        raise InputError(f"order: {', '.join(unused)} is set but not listed in {names!r}")
    return list(names)


def apply(
    logits: Any,
    *,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    epsilon: float | None = None,
    eta: float | None = None,
    top_h: float | None = None,
    top_n_sigma: float | None = None,
    order: str | Sequence[str] = "transformers",
    min_tokens_to_keep: int = 1,
    return_steps: bool = False,
    base: float | None = None,
) -> Any:
    r"""Apply temperature and truncation steps in an engine's order.

    ``order="transformers"`` applies, of the parameters given, temperature, top-H, top-k,
    top-p, min-p, typical, epsilon, eta — the list ``generate()`` builds from a
    ``GenerationConfig`` with ``do_sample=True`` — so the output equals running
    transformers' warpers on the same logits (for torch, bit for bit). As there,
    ``temperature=1.0``, ``top_p=1.0`` and ``typical_p=1.0`` are no-ops that are skipped.
    ``order="llama.cpp"`` applies top-n-sigma, top-k, typical, top-p, min-p and
    temperature last (llama.cpp's default chain; penalties, DRY and XTC are not
    modelled), each step with the definitions above. A list of step names (see
    :data:`STEPS`) gives any order. ``None`` leaves a step out.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    temperature, top_k, top_p, min_p, typical_p, epsilon, eta, top_h, top_n_sigma
        Step parameters (see the functions of the same names; ``epsilon`` and ``eta``
        are ``epsilon_cutoff`` and ``eta_cutoff``).
    order : ``"transformers"``, ``"llama.cpp"`` or sequence of str
    min_tokens_to_keep : int
        Passed to every truncation step (transformers' TopH has no such parameter and
        always keeps 1).
    return_steps : bool
        Also return a list of :class:`StepReport`, one per step applied.
    base : float, optional
        Logarithm base of the reports' entropies and KLs (default nats).

    Returns
    -------
    array, or (array, list of StepReport)

    Raises
    ------
    ValueError
        A parameter out of range or NaN, an unknown order, or a step the chosen engine
        does not have (top-n-sigma in transformers; epsilon, eta, top-H in llama.cpp).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([3.0, 2.0, 1.0, 0.0])
    >>> apply(z, temperature=0.5, top_k=3, top_p=0.9)
    array([  6.,   4., -inf, -inf])
    >>> apply(z, top_k=2, temperature=2.0, order="llama.cpp")
    array([ 1.5,  1. , -inf, -inf])
    """
    params = {
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "min_p": min_p,
        "typical_p": typical_p,
        "epsilon": epsilon,
        "eta": eta,
        "top_h": top_h,
        "top_n_sigma": top_n_sigma,
    }
    keep = _integer("min_tokens_to_keep", min_tokens_to_keep)
    names = _resolve(order, params)
    engine = order == "transformers"
    checked: list[tuple[str, Any]] = []
    for n in names:
        v = params[n]
        skippable = n in ("temperature", "top_p", "typical_p") and not isinstance(v, bool)
        if engine and skippable and v == 1.0:
            continue  # generate() leaves these out: no-ops
        checked.append((n, _check(n, v)))
    x = _logits(logits)
    shape = x.shape
    cur = x.reshape(-1, shape[-1])
    prefix = "t_" if B.is_torch(x) else "n_"
    reports: list[StepReport] = []
    owned = False
    truncations_only = True
    if B.is_torch(x) and not return_steps:
        fast = W.compact_chain(cur, checked, keep)
        if fast is not None:
            cur, done = fast
            checked, owned = checked[done:], True
    for n, v in checked:
        fn: Callable[..., Any] = getattr(W, prefix + _IMPL[n])
        inplace = owned and not return_steps
        if n == "temperature":
            nxt = fn(cur, v, inplace)
        elif n == "top_h":
            nxt = fn(cur, v, keep, 100, inplace)
        else:
            nxt = fn(cur, v, keep, inplace)
        if return_steps:
            is_trunc = n != "temperature"
            truncations_only = truncations_only and is_trunc
            reports.append(
                _report(
                    cur.reshape(shape),
                    nxt.reshape(shape),
                    x,
                    n,
                    v,
                    base,
                    is_trunc,
                    truncations_only,
                )
            )
        cur, owned = nxt, True
    out = cur.reshape(shape) if owned else (x.clone() if B.is_torch(x) else x.copy())
    return (out, reports) if return_steps else out


# --------------------------------------------------------------------------- temperature


def entropy_curve(logits: Any, temperatures: Any, *, base: float | None = None) -> EntropyCurve:
    r"""Entropy and perplexity of ``softmax(logits / T)`` for many temperatures at once.

    :math:`H(T) = -\sum_i p_i \log p_i`, :math:`p = \mathrm{softmax}(z / T)`, in nats
    (``base=2``: bits); perplexity :math:`e^{H}` (in nats, whatever ``base``: the number
    of equally likely tokens with that entropy). ``T = 0`` gives the argmax limit
    :math:`\log(\#\text{ties at the max})`, ``T = inf`` the uniform limit
    :math:`\log(\#\text{finite entries})`; H increases with T for non-constant rows.

    Computed in float64 without a ``[T, N, V]`` array: large vocabularies use per-row
    bucket moments (one sort per row, then a small matrix product per temperature; error
    ~1e-15 relative), threads over rows, and less than 64 MB of temporaries (see
    :mod:`infolens._sampling_curve`). Tensors on an accelerator are computed there.
    Not differentiable.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
        Rows may hold ``-inf``; a row of only ``-inf``, or NaN or ``+inf``, is an error.
    temperatures : float or 1-D sequence of float
        Each in ``[0, inf]``.
    base : float, optional
        Logarithm base of the entropy (default e).

    Returns
    -------
    EntropyCurve
        ``(entropy, perplexity)``, float64 of shape ``[..., len(temperatures)]`` (``[...]``
        for a scalar temperature); torch tensors for torch input.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([2.0, 1.0, 0.0, -np.inf])
    >>> c = entropy_curve(z, [0, 1, np.inf], base=2)
    >>> c.entropy.round(4)
    array([0.    , 1.2009, 1.585 ])
    >>> c.perplexity.round(3)
    array([1.   , 2.298, 3.   ])
    """
    return entropy_curve_impl(logits, temperatures, base)


def effective_vocabulary(logits: Any) -> Any:
    r"""The effective number of tokens :math:`e^{H(\mathrm{softmax}(z))}` per row.

    The perplexity of the next-token distribution itself: 1 for a one-hot distribution,
    ``V`` for a uniform one. Not bits: exp of an entropy in nats.

    Parameters
    ----------
    logits : array of shape ``[..., V]``

    Returns
    -------
    float64 array of shape ``[...]`` (torch for torch input)

    Examples
    --------
    >>> import numpy as np
    >>> effective_vocabulary(np.array([[0.0, 0.0, 0.0, 0.0], [0.0, -np.inf, -np.inf, 5.0]])).round(4)
    array([4.   , 1.041])
    """
    return entropy_curve_impl(logits, 1.0, None).perplexity


def solve_temperature(
    logits: Any, target_entropy: Any, *, base: float | None = None, rtol: float = 1e-10
) -> Any:
    r"""The temperature giving each row a target entropy: :math:`H(\mathrm{softmax}(z/T))
    = H^*`.

    H is increasing in T, from :math:`\log(\#\text{ties at the max})` at ``T -> 0`` to
    :math:`\log(\#\text{finite entries})` at ``T -> inf``; a target at an end returns 0 or
    ``inf``, one outside is a :class:`ValueError` naming the row and the limits, and so is
    one whose temperature is below the smallest float64 (largest logits a subnormal apart;
    a temperature below ``1/DBL_MAX`` is still found, on rescaled logits). Solved
    per row by safeguarded Newton steps in :math:`\log(1/T)` until the entropy is within
    ``rtol`` (relative) of the target. Computed in float64 on the CPU.

    Parameters
    ----------
    logits : array of shape ``[..., V]``
    target_entropy : float or array broadcastable to ``[...]``
        In nats, or in units of ``log(base)`` (``base=2``: bits).
    base : float, optional
    rtol : float
        Relative tolerance on the entropy (``> 0``).

    Returns
    -------
    float64 array of shape ``[...]`` (torch for torch input)

    Examples
    --------
    >>> import numpy as np
    >>> z = np.array([2.0, 1.0, 0.0, -1.0])
    >>> t = solve_temperature(z, 1.5, base=2)
    >>> round(float(t), 6), round(float(entropy_curve(z, float(t), base=2).entropy), 9)
    (1.174164, 1.5)
    """
    rtol = _number("rtol", rtol, 0.0, 1.0, True, True)
    x = _logits(logits)
    lead, v = tuple(x.shape[:-1]), int(x.shape[-1])
    xn = to_numpy(x).reshape(-1, v)
    m = check_rows(xn)
    tgt = to_numpy(target_entropy) if B.is_torch(target_entropy) else np.asarray(target_entropy)
    if tgt.dtype.kind not in "iuf":
        raise InputError(f"target_entropy: expected numbers, got {B.describe(tgt)}")
    try:
        tgt = np.broadcast_to(tgt.astype(np.float64), lead).reshape(-1)
    except ValueError:
        raise InputError(
            f"target_entropy: shape {tgt.shape} does not broadcast to the rows {lead}"
        ) from None
    if base is not None:
        tgt = tgt * math.log(base)
    ties, count = (xn == m[:, None]).sum(-1), (xn > NEG_INF).sum(-1)
    h_min, h_max = np.log(ties.astype(np.float64)), np.log(count.astype(np.float64))
    unit_name = unit = "nats" if base is None else f"log({base:g}) units"
    scale = 1.0 if base is None else math.log(base)
    tol = 1e-12 * np.maximum(1.0, h_max)
    for i in range(tgt.size):
        if not (tgt[i] >= h_min[i] - tol[i]) or not (tgt[i] <= h_max[i] + tol[i]):
            raise InputError(
                f"target_entropy: {tgt[i] / scale:g} {unit} for row {i} is outside "
                f"[{h_min[i] / scale:g}, {h_max[i] / scale:g}], the entropies from T -> 0 "
                f"(log of the {ties[i]} tied maxima) to T = inf (log "
                f"of the {count[i]} finite entries)"
            )
    out = np.empty(tgt.size)
    at_min = tgt <= h_min + tol
    at_max = tgt >= h_max - tol
    out[at_min] = 0.0
    out[at_max & ~at_min] = np.inf
    mid = ~(at_min | at_max)
    if mid.any():
        # solve on logits rescaled to a unit spread, then scale T back: H(softmax(z / T))
        # depends on z / T only, and a spread far from 1 (a subnormal gap of 1e-311, or
        # 1e300) would put 1/T beyond float64 in the solver
        rows = xn[mid]
        top = m[mid][:, None]
        finite = rows > NEG_INF
        low = np.where(finite, rows, top).min(-1, keepdims=True)
        with np.errstate(over="ignore", invalid="ignore"):
            spread = top - low
            half = ~np.isfinite(spread)  # a spread past the float64 range: halve first
            spread = np.where(half, top / 2 - low / 2, spread)
            shifted = np.where(half, rows / 2 - top / 2, rows - top)
        unit = shifted / spread
        t_unit = solve_rows(unit, tgt[mid], rtol)
        # a target reached only where two logits are nearly tied relative to the spread
        # (a subnormal gap) needs 1/T past float64 even at unit spread: solve those rows
        # again on logits scaled up by 2^498 (exact; squares stay below 1e300)
        tiny = t_unit < 1e-290
        if tiny.any():
            c = 2.0**498
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                t_unit[tiny] = solve_rows(unit[tiny] * c, tgt[mid][tiny], rtol) / c
        t_mid = t_unit * spread[:, 0] * np.where(half[:, 0], 2.0, 1.0)
        lost = np.flatnonzero(~(t_mid > 0))
        if lost.size:  # the temperature itself is below the smallest float64
            i = int(np.flatnonzero(mid)[lost[0]])
            raise InputError(
                f"target_entropy: {tgt[i] / scale:g} {unit_name} for row {i} needs a "
                f"temperature below the float64 range (its largest logits differ by a "
                f"subnormal amount)"
            )
        out[mid] = t_mid
    res = out.reshape(lead)
    if B.is_torch(x):
        import torch

        return torch.from_numpy(np.ascontiguousarray(res)).to(x.device)
    return res
