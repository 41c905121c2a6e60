r"""What decoding does to one next-token distribution (the data of ``infolens sample``).

:func:`describe_next_token` takes the model's distribution of the token after a prompt
(exactly the row scoring would compute for that position) and reports, as plain data:

* the distribution itself: its entropy, its effective vocabulary :math:`e^{H}` (the
  number of equally likely tokens with that entropy: exp of nats, not bits) and its most
  probable tokens;
* the same at several temperatures (:func:`infolens.sampling.entropy_curve`), with the
  seed's rules of thumb made visible: ``T -> 0`` is the argmax (entropy 0, one token),
  ``T = 1`` the model's distribution, ``T > 1`` flattens it;
* what each truncation step keeps and removes (:func:`infolens.sampling.apply` with
  ``return_steps=True``): tokens kept, probability mass kept, entropy before and after,
  and ``KL(after || before) = -ln(mass kept)`` for a truncation.

Entropies are in bits (``*_bits`` keys), KL in bits too.

Examples
--------
>>> from infolens.models import load_model
>>> d = describe_next_token(load_model("ngram"), "the cat sat on the mat; the cat sat on the m",
...                         temperatures=[0, 1, 2], top_k=3)
>>> [round(t["effective_vocabulary"], 2) for t in d["temperatures"]][0]  # T -> 0: the argmax
1.0
>>> d["steps"][0]["name"], d["steps"][0]["kept"], d["final"]["top"][0]["text"]
('top_k', 3, 'a')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from infolens import sampling as _sampling
from infolens.generation import _log_softmax64, _prefix
from infolens.models.base import LanguageModel, decode_ids, start_decoder

__all__ = ["DEFAULT_TEMPERATURES", "DEFAULT_TRUNCATIONS", "describe_next_token"]

#: Temperatures shown by default.
DEFAULT_TEMPERATURES = (0.0, 0.5, 0.7, 1.0, 1.5, 2.0)
#: Truncations shown one at a time (at ``T = 1``) when none is asked for.
DEFAULT_TRUNCATIONS: tuple[tuple[str, float], ...] = (
    ("top_k", 40), ("top_p", 0.9), ("min_p", 0.05), ("typical_p", 0.9),
    ("epsilon", 3e-4), ("eta", 3e-4), ("top_h", 0.4), ("top_n_sigma", 1.0),
)  # fmt: skip

_LN2 = math.log(2.0)


def _top(model: LanguageModel, lp: np.ndarray, k: int) -> list[dict[str, Any]]:
    order = np.argsort(-lp, kind="stable")[:k]
    return [
        {"id": int(i), "text": decode_ids(model, [int(i)]), "prob": float(math.exp(lp[i]))}
        for i in order
        if lp[i] > -math.inf
    ]


def _entropy_bits(lp: np.ndarray) -> float:
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        return float(-np.where(p > 0, p * lp, 0.0).sum() / _LN2) + 0.0  # never -0.0


def describe_next_token(
    model: LanguageModel,
    prompt: str,
    *,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    top: int = 10,
    bos: bool | None = None,
    order: str | Sequence[str] = "transformers",
    min_tokens_to_keep: int = 1,
    **sampling: Any,
) -> dict[str, Any]:
    """The next-token distribution after ``prompt``, at several temperatures and through
    the truncation steps (see the module docstring).

    Parameters
    ----------
    model : LanguageModel
    prompt : str
        Tokenised without special tokens (``bos``: the model's BOS before it, by default
        when it has one).
    temperatures : sequence of float
        Each ``>= 0`` (``0``: the argmax limit).
    top : int
        Most probable tokens listed per distribution.
    order, min_tokens_to_keep, **sampling
        A chain for :func:`infolens.sampling.apply`; without any step, each of
        :data:`DEFAULT_TRUNCATIONS` is shown alone at ``T = 1``.

    Returns
    -------
    dict
        ``model``, ``prompt``, ``prompt_tokens``, ``vocab_size``, ``distribution`` (entropy,
        effective vocabulary, top tokens), ``temperatures`` (one entry per T), ``curve``
        (entropy in bits on a grid of 61 temperatures from 0 to 5, for a figure), ``chain``
        (the parameters given, or ``None``), ``steps`` (one entry per step: name, value,
        kept, mass, mass_original, entropy before/after in bits, effective vocabulary
        after, KL in bits, top tokens after) and, for a chain, ``final`` (its distribution).
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top: expected an integer >= 1, got {top!r}")
    temps = [float(t) for t in temperatures]
    if any(not (t >= 0) for t in temps):
        raise ValueError(f"temperatures: expected values >= 0, got {list(temperatures)!r}")
    unknown = sorted(set(sampling) - set(_sampling.STEPS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a sampling parameter (expected one of "
                         f"{', '.join(_sampling.STEPS)})")  # fmt: skip
    if bos is None:
        bos = model.bos_id is not None
    prefix = _prefix(model, prompt, bool(bos))
    raw = start_decoder(model, prefix, 1).next_logits()
    z = _log_softmax64(raw)[0]  # float64 log-probabilities of the model's distribution
    h_nats = _entropy_bits(z) * _LN2
    curve = _sampling.entropy_curve(z, temps, base=2) if temps else None
    temp_rows = []
    for k, t in enumerate(temps):
        if t == 0:
            m = z.max()
            lt = np.where(z == m, -math.log(int((z == m).sum())), -math.inf)
        else:
            lt = _log_softmax64(z / t)
        assert curve is not None
        temp_rows.append({
            "temperature": t,
            "entropy_bits": float(curve.entropy[k]),
            "effective_vocabulary": float(curve.perplexity[k]),
            "top": _top(model, lt, top),
        })  # fmt: skip
    grid = np.concatenate([[0.0], np.geomspace(0.05, 5.0, 60)])
    fine = _sampling.entropy_curve(z, grid, base=2)
    chain = {k: v for k, v in sampling.items() if v is not None}
    runs: list[tuple[Any, dict[str, Any]]]
    if chain:
        runs = [(order, chain)]
    else:  # each alone, in a chain of its own
        runs = [([name], {name: value}) for name, value in DEFAULT_TRUNCATIONS]
    steps: list[dict[str, Any]] = []
    final = None
    for run_order, params in runs:
        out, reports = _sampling.apply(z, order=run_order, min_tokens_to_keep=min_tokens_to_keep,
                                       return_steps=True, base=2, **params)  # fmt: skip
        lo = _log_softmax64(out)
        for r in reports:
            steps.append({
                "name": r.name,
                "value": r.value,
                "kept": int(r.kept),
                "mass": float(r.mass),
                "mass_original": float(r.mass_original),
                "entropy_before_bits": max(0.0, float(r.entropy_before)),
                "entropy_after_bits": max(0.0, float(r.entropy_after)),
                "effective_vocabulary_after": float(2.0 ** float(r.entropy_after)),
                "kl_bits": max(0.0, float(r.kl)),
                "kl_original_bits": max(0.0, float(r.kl_original)),
            })  # fmt: skip
        if chain:
            final = {
                "entropy_bits": _entropy_bits(lo),
                "effective_vocabulary": math.exp(_entropy_bits(lo) * _LN2),
                "kept": int(np.isfinite(lo).sum()),
                "top": _top(model, lo, top),
            }
        else:
            steps[-1]["top"] = _top(model, lo, min(top, 5))
    return {
        "model": model.name,
        "prompt": prompt,
        "prompt_tokens": len(prefix),
        "vocab_size": int(model.vocab_size),
        "distribution": {
            "entropy_bits": h_nats / _LN2,
            "effective_vocabulary": math.exp(h_nats),
            "top": _top(model, z, top),
        },
        "temperatures": temp_rows,
        "curve": {"temperature": grid.tolist(), "entropy_bits": np.asarray(fine.entropy).tolist()},
        "order": order if isinstance(order, str) else list(order),
        "chain": chain or None,
        "steps": steps,
        "final": final,
    }
