r"""Sampling text from a model, with what each step's distribution was.

:func:`generate` draws ``n`` samples per prompt through any model adapter
(:func:`infolens.models.base.start_decoder`: a KV cache for ``hf:`` models, the scoring
windows for the others), warping each next-token distribution with
:func:`infolens.sampling.apply` — exactly the functions a user can call on logits — and
sampling from the result with a seeded generator. Each sample reports, per generated token
``x_t``:

* ``logprob_sampling``: :math:`\ln q_t(x_t)`, under the distribution actually sampled
  from (temperature and truncation applied);
* ``logprob_model``: :math:`\ln p_t(x_t)`, under the model's own distribution (``T = 1``,
  nothing removed): the sum over a sample is its log-likelihood under the model;
* ``entropy_sampling`` and ``entropy_model``: :math:`H(q_t)` and :math:`H(p_t)`.

All in nats. ``logprob_sampling - logprob_model`` per token is the single-sample estimate
of :math:`\mathrm{KL}(q_t \| p_t)` (the "k1" estimator of RLHF trainers; its mean over the
tokens of many samples estimates the KL of the decoding policy from the model).

Reproducibility: sample ``j`` of prompt ``i`` draws its uniform numbers from
``numpy.random.default_rng([seed, i, j])`` (inverse-CDF sampling in float64), so a sample
does not depend on how many others are drawn with it.

Examples
--------
>>> from infolens.models import load_model
>>> m = load_model("ngram")
>>> (s,) = generate(m, "the cat sat on the mat. the cat", max_new_tokens=8, seed=1, top_k=4)
>>> len(s.token_ids), s.finish_reason, bool((s.logprob_sampling >= s.logprob_model).all())
(8, 'length', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infolens import sampling as _sampling
from infolens.models.base import ContextFull, LanguageModel, decode_ids, start_decoder

__all__ = ["Sample", "generate"]


@dataclass
class Sample:
    """One generated continuation of a prompt (see the module docstring for the fields).

    Attributes
    ----------
    prompt_index, index : int
        Which prompt, and which of its ``n`` samples.
    prompt : str
        The prompt.
    token_ids : numpy.ndarray
        int64, the generated tokens (an EOS token that ended the sample included).
    text : str
        Their text, cut before the first stop string (if one ended it); an EOS token's
        text is left out.
    finish_reason : str
        ``"length"`` (``max_new_tokens``), ``"stop"`` (a stop string), ``"eos"`` (the
        model's end-of-sequence token) or ``"context"`` (the model's context is full).
    """

    prompt_index: int
    index: int
    prompt: str
    token_ids: np.ndarray
    text: str
    logprob_sampling: np.ndarray
    logprob_model: np.ndarray
    entropy_sampling: np.ndarray
    entropy_model: np.ndarray
    finish_reason: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def nll_model_nats(self) -> float:
        """``-sum(logprob_model)``: the sample's negative log-likelihood under the model."""
        return float(-self.logprob_model.sum())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists), for JSON."""
        return {
            "prompt_index": self.prompt_index,
            "index": self.index,
            "prompt": self.prompt,
            "text": self.text,
            "finish_reason": self.finish_reason,
            "token_ids": [int(i) for i in self.token_ids],
            "logprob_sampling_nats": self.logprob_sampling.tolist(),
            "logprob_model_nats": self.logprob_model.tolist(),
            "entropy_sampling_nats": self.entropy_sampling.tolist(),
            "entropy_model_nats": self.entropy_model.tolist(),
            "nll_model_nats": self.nll_model_nats,
        }


def _log_softmax64(z: Any) -> np.ndarray:
    """Rows of logits (numpy or torch, any float dtype) as float64 log-probabilities."""
    if hasattr(z, "detach"):
        z = z.detach().to("cpu").double().numpy()
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = z - m
        lse = np.log(np.sum(np.exp(x), axis=-1, keepdims=True))
    return x - lse


def _entropy(lp: np.ndarray) -> np.ndarray:
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        t = np.where(p > 0, p * lp, 0.0)
    return np.asarray(-t.sum(axis=-1))


def _prefix(model: LanguageModel, prompt: str, bos: bool) -> np.ndarray:
    ids = np.asarray(model.tokenize(prompt).ids, dtype=np.int64)
    if bos:
        if model.bos_id is None:
            raise ValueError(f"bos: model {model.name} has no BOS token; pass bos=False")
        ids = np.concatenate([np.array([model.bos_id], dtype=np.int64), ids])
    return ids


def generate(
    model: LanguageModel,
    prompts: str | Sequence[str],
    *,
    n: int = 1,
    max_new_tokens: int = 32,
    seed: int = 0,
    stop: str | Sequence[str] | None = None,
    bos: bool | None = None,
    greedy: bool = False,
    order: str | Sequence[str] = "transformers",
    min_tokens_to_keep: int = 1,
    **sampling: Any,
) -> list[Sample]:
    """Draw ``n`` samples per prompt, warping each step with :func:`infolens.sampling.apply`.

    Parameters
    ----------
    model : LanguageModel
        Any adapter (:func:`infolens.load_model`).
    prompts : str or sequence of str
        Each prompt is tokenised without special tokens (as documents are scored).
    n : int
        Samples per prompt (decoded together, as a batch).
    max_new_tokens : int
        Tokens generated per sample at most.
    seed : int
        Seeds every sample's generator (see the module docstring).
    stop : str or sequence of str, optional
        A sample ends as soon as its text contains one of these (its text is cut before
        it).
    bos : bool, optional
        Put the model's BOS token before the prompt (default: if the model has one, as
        scoring does with ``bos="first"``).
    greedy : bool
        Take the most probable token of the warped distribution instead of sampling
        (the ``T -> 0`` limit; ties go to the lowest id).
    order : str or sequence of str
        The order of the sampling steps (:func:`infolens.sampling.apply`).
    min_tokens_to_keep : int
        Passed to every truncation step.
    **sampling
        ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``typical_p``, ``epsilon``,
        ``eta``, ``top_h``, ``top_n_sigma`` (see :func:`infolens.sampling.apply`); none:
        the model's own distribution.

    Returns
    -------
    list of Sample
        Prompt by prompt, ``n`` samples each.

    Raises
    ------
    ValueError
        A bad parameter (naming it), an empty prompt for a model that cannot predict from
        an empty context, or a prompt longer than the model's context.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected an integer >= 0, got {max_new_tokens!r}")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise ValueError(f"stop: expected non-empty strings, got {stop!r}")
    unknown = sorted(set(sampling) - set(_sampling.STEPS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a sampling parameter (expected one of "
                         f"{', '.join(_sampling.STEPS)})")  # fmt: skip
    # check the parameters once, on a dummy row (one-line ValueError naming the parameter)
    _sampling.apply(np.zeros((1, 2)), order=order, min_tokens_to_keep=min_tokens_to_keep,
                    **sampling)  # fmt: skip
    if bos is None:
        bos = model.bos_id is not None
    eos = getattr(model, "eos_id", None)
    settings = {"n": n, "max_new_tokens": max_new_tokens, "seed": seed, "order": order,
                "greedy": greedy, **sampling}  # fmt: skip
    out: list[Sample] = []
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise ValueError(f"prompts[{i}]: expected a str, got {type(prompt).__name__}")
        out.extend(_generate_one(model, prompt, i, _prefix(model, prompt, bool(bos)), n,
                                 max_new_tokens, seed, stops, eos, greedy, order,
                                 min_tokens_to_keep, sampling, settings))  # fmt: skip
    return out


def _generate_one(
    model: LanguageModel, prompt: str, i: int, prefix: np.ndarray, n: int, max_new: int,
    seed: int, stops: list[str], eos: int | None, greedy: bool, order: Any, keep: int,
    sampling: dict[str, Any], settings: dict[str, Any],
) -> list[Sample]:  # fmt: skip
    rngs = [np.random.default_rng([seed, i, j]) for j in range(n)]
    toks: list[list[int]] = [[] for _ in range(n)]
    cols: dict[str, list[list[float]]] = {k: [[] for _ in range(n)] for k in ("lq", "lp", "hq", "hp")}
    reason = ["length"] * n
    texts = [""] * n
    live = list(range(n))
    decoder = start_decoder(model, prefix, n) if max_new else None
    for _step in range(max_new):
        assert decoder is not None
        raw = decoder.next_logits()
        warped = _sampling.apply(raw, order=order, min_tokens_to_keep=keep, **sampling)
        lp, lq = _log_softmax64(raw), _log_softmax64(warped)
        hp, hq = _entropy(lp), _entropy(lq)
        chosen = np.zeros(n, dtype=np.int64)
        for k in range(n):
            if k not in live:
                continue
            if greedy:
                c = int(np.argmax(lq[k]))
            else:
                cdf = np.cumsum(np.exp(lq[k]))
                c = int(np.searchsorted(cdf, rngs[k].random() * cdf[-1], side="right"))
                c = min(c, len(cdf) - 1)
                while lq[k, c] == -np.inf:  # rounding at the very top of the cdf
                    c -= 1
            chosen[k] = c
            toks[k].append(c)
            for key, arr in (("lq", lq[k, c]), ("lp", lp[k, c]), ("hq", hq[k]), ("hp", hp[k])):
                cols[key][k].append(float(arr))
        for k in list(live):
            if eos is not None and toks[k][-1] == eos:
                reason[k] = "eos"
                live.remove(k)
            elif stops:
                text = decode_ids(model, toks[k])
                hit = min((text.find(s) for s in stops if s in text), default=-1)
                if hit >= 0:
                    reason[k], texts[k] = "stop", text[:hit]
                    live.remove(k)
        if not live:
            break
        try:
            decoder.append(chosen)
        except ContextFull:
            for k in live:
                reason[k] = "context"
            break
    samples = []
    for k in range(n):
        ids = np.asarray(toks[k], dtype=np.int64)
        if reason[k] != "stop":
            body = ids[:-1] if reason[k] == "eos" else ids
            texts[k] = decode_ids(model, body)
        samples.append(
            Sample(
                prompt_index=i, index=k, prompt=prompt, token_ids=ids, text=texts[k],
                logprob_sampling=np.asarray(cols["lq"][k]), logprob_model=np.asarray(cols["lp"][k]),
                entropy_sampling=np.asarray(cols["hq"][k]), entropy_model=np.asarray(cols["hp"][k]),
                finish_reason=reason[k], settings=dict(settings),
            )
        )  # fmt: skip
    return samples
