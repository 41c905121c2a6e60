r"""What a retrieved context tells a model about the answer: information gain, reranking,
and the information a retriever's scores carry about relevance.

For a question :math:`q`, an answer :math:`a = a_1 \dots a_n` and a context :math:`c`, the
**context gain** is the pointwise conditional mutual information of context and answer
given the question, measured with the model itself:

.. math::

    g(c) = \log_2 p(a \mid c, q) - \log_2 p(a \mid q)
         = \sum_t \left[\log_2 p(a_t \mid c, q, a_{<t}) - \log_2 p(a_t \mid q, a_{<t})\right]

in bits (FILCO's CXMI; the quantity behind context-aware decoding). Its expectation over
answers is :math:`I(A; C \mid Q = q)`: the ideal retrieval maximises it. Positive: the
context makes the answer more likely; 0: it tells the model nothing; negative: it misleads.

**The prompts** are explicit: ``template`` (default :data:`TEMPLATE`) with ``{context}``
and ``{question}``, and ``template_without`` (default :data:`TEMPLATE_WITHOUT`) with
``{question}``; the answer follows the prompt after ``separator`` (default one space).
Prompt and answer are tokenised separately and their ids concatenated (the model's BOS
first, if it has one, as scoring does), so the answer tokens are the same with and without
every context and only they are scored — never the prompt. Each scoring is one window:
the whole prompt is context; a prompt plus answer longer than the model's context is
refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens._kernels import fused_rows
from infolens.errors import InputError
from infolens.models.base import LanguageModel, Window

__all__ = [
    "TEMPLATE",
    "TEMPLATE_WITHOUT",
    "ContextGain",
    "context_gain",
    "rerank",
    "retrieval_information",
]

#: The prompt with a context.
TEMPLATE = "Context: {context}\nQuestion: {question}\nAnswer:"
#: The prompt without one.
TEMPLATE_WITHOUT = "Question: {question}\nAnswer:"
LN2 = math.log(2.0)
#: Logit rows per call of the adapter.
_MAX_ROWS = 256


@dataclass(frozen=True)
class ContextGain:
    """The gain of one context (bits). ``token_gains[t]`` is the gain on answer token
    ``t``; ``tokens`` the answer's tokens as text pieces."""

    index: int
    context: str
    gain_bits: float
    gain_bits_per_token: float
    logprob_with_bits: float
    logprob_without_bits: float
    token_gains: list[float]
    tokens: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "context": self.context,
            "gain_bits": self.gain_bits,
            "gain_bits_per_token": self.gain_bits_per_token,
            "logprob_with_bits": self.logprob_with_bits,
            "logprob_without_bits": self.logprob_without_bits,
            "token_gains_bits": self.token_gains,
            "tokens": self.tokens,
        }


def _fill(template: str, name: str, **fields: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        need = " and ".join("{" + k + "}" for k in fields)
        raise InputError(
            f"{name}: expected a template with {need} only, got {template!r} ({e})"
        ) from e


def _prefix(model: LanguageModel) -> list[int]:
    return [] if model.bos_id is None else [int(model.bos_id)]


def _text(x: Any, name: str) -> str:
    if not isinstance(x, str):
        raise InputError(f"{name}: expected a string, got {type(x).__name__}")
    return x


def _scored_logprobs(model: LanguageModel, prompts: list[str], target: np.ndarray) -> np.ndarray:
    """log p (nats) of each ``target`` token after each prompt: ``[len(prompts), len(target)]``.

    All prompts go to the adapter as one list of windows (it batches them)."""
    pre = _prefix(model)
    windows = []
    for p in prompts:
        ids = np.concatenate(
            [np.asarray(pre, dtype=np.int64), model.tokenize(p).ids.astype(np.int64)]
        )
        if len(ids) == 0 and not model.predicts_first:
            raise InputError("template: the prompt is empty and the model needs context")
        full = np.concatenate([ids, target])
        if model.max_context is not None and len(full) > model.max_context:
            raise InputError(
                f"context: prompt and answer take {len(full)} tokens, more than the model's "
                f"{model.max_context}"
            )
        windows.append(Window(full, start=len(ids)))
    targets = np.tile(target, len(prompts))
    sur = np.empty(len(targets))
    at = 0
    for block in model.logits(windows, max_rows=_MAX_ROWS):  # rows in bounded blocks
        n = int(block.shape[0])
        sur[at : at + n] = np.asarray(
            fused_rows(block, None, _like(block, targets[at : at + n])).surprisal_p
        )
        at += n
    if at != len(targets):  # pragma: no cover - an adapter breaking its contract
        raise RuntimeError(f"{model.name}: returned {at} rows for {len(targets)} targets")
    return -sur.reshape(len(prompts), len(target))


def _like(block: Any, ids: np.ndarray) -> Any:
    """Target ids in the block's array kind (torch tensors on its device)."""
    if hasattr(block, "device") and not isinstance(block, np.ndarray):
        import torch

        return torch.as_tensor(ids, device=block.device)
    return ids


def _answer_ids(model: LanguageModel, answer: str, separator: str) -> np.ndarray:
    return _answer_tokens(model, answer, separator)[0]


def _answer_tokens(
    model: LanguageModel, answer: str, separator: str
) -> tuple[np.ndarray, list[str]]:
    """The answer's token ids, and each token's text (its bytes, decoded with
    replacement: a byte of a multi-byte character shows as U+FFFD)."""
    tok = model.tokenize(separator + answer)
    ids = tok.ids.astype(np.int64)
    if len(ids) == 0:
        raise InputError("answer: expected a non-empty answer, got ''")
    raw = (separator + answer).encode("utf-8")
    pieces = [raw[lo:hi].decode("utf-8", "replace") for lo, hi in tok.offsets.tolist()]
    return ids, pieces


def context_gain(
    model: LanguageModel,
    question: str,
    answer: str,
    contexts: Sequence[str],
    *,
    template: str = TEMPLATE,
    template_without: str = TEMPLATE_WITHOUT,
    separator: str = " ",
) -> list[ContextGain]:
    r"""The information each context gives the model about the answer (bits; see the
    module docstring for the definition and the prompts).

    Parameters
    ----------
    model : LanguageModel
        Any adapter (:func:`infolens.load_model`).
    question, answer : str
    contexts : sequence of str
    template, template_without, separator : str
        The prompts (see the module docstring).

    Returns
    -------
    list of ContextGain
        In the order of ``contexts``; ``gain_bits`` total, ``gain_bits_per_token`` its
        mean over the answer's tokens, ``token_gains`` per answer token.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> m = load_model("ngram")
    >>> g = context_gain(m, "What is the capital of France?", "Paris",
    ...                  ["Paris is the capital of France.", "Bananas are yellow."])
    >>> g[0].gain_bits > g[1].gain_bits
    True
    """
    q, a = _text(question, "question"), _text(answer, "answer")
    ctx = [_text(c, f"contexts[{i}]") for i, c in enumerate(contexts)]
    if not ctx:
        raise InputError("contexts: expected at least one context, got none")
    target, pieces = _answer_tokens(model, a, separator)
    prompts = [_fill(template_without, "template_without", question=q)]
    prompts += [_fill(template, "template", context=c, question=q) for c in ctx]
    lp = _scored_logprobs(model, prompts, target) / LN2
    base = lp[0]
    out = []
    for i, c in enumerate(ctx):
        g = lp[i + 1] - base
        out.append(
            ContextGain(
                index=i,
                context=c,
                gain_bits=float(lp[i + 1].sum() - base.sum()),
                gain_bits_per_token=float(g.mean()),
                logprob_with_bits=float(lp[i + 1].sum()),
                logprob_without_bits=float(base.sum()),
                token_gains=[float(x) for x in g],
                tokens=pieces,
            )
        )
    return out


def rerank(
    model: LanguageModel,
    question: str,
    contexts: Sequence[str],
    answer: str | None = None,
    *,
    template: str = TEMPLATE,
    template_without: str = TEMPLATE_WITHOUT,
    separator: str = " ",
) -> list[dict[str, Any]]:
    r"""Contexts sorted by how much they tell the model, most first.

    With ``answer``: by :func:`context_gain` (bits). Without: by the answer-free proxy of
    UPR (Sachan et al. 2022), the gain in the log-likelihood of the *question* —
    :math:`\log_2 p(q \mid c) - \log_2 p(q)`, the question scored after
    ``"Context: {context}\nQuestion:"`` against after ``"Question:"`` — which ranks
    contexts by how well they predict what is asked. Ties keep the input order.

    Returns
    -------
    list of dict
        ``index``, ``context``, ``score_bits`` and ``criterion`` (``"answer gain"`` or
        ``"question likelihood gain"``), sorted by ``score_bits`` descending.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> r = rerank(load_model("ngram"), "Who wrote Hamlet?",
    ...            ["Rain is wet.", "Hamlet was written by Shakespeare."], answer="Shakespeare")
    >>> r[0]["index"]
    1
    """
    ctx = [_text(c, f"contexts[{i}]") for i, c in enumerate(contexts)]
    if answer is not None:
        gains = context_gain(model, question, answer, ctx, template=template,
                             template_without=template_without, separator=separator)  # fmt: skip
        rows = [{"index": g.index, "context": g.context, "score_bits": g.gain_bits,
                 "criterion": "answer gain"} for g in gains]  # fmt: skip
    else:
        q = _text(question, "question")
        if not ctx:
            raise InputError("contexts: expected at least one context, got none")
        target = _answer_ids(model, q, separator)
        prompts = ["Question:"] + [f"Context: {c}\nQuestion:" for c in ctx]
        lp = _scored_logprobs(model, prompts, target).sum(axis=1) / LN2
        rows = [{"index": i, "context": c, "score_bits": float(lp[i + 1] - lp[0]),
                 "criterion": "question likelihood gain"} for i, c in enumerate(ctx)]  # fmt: skip
    return sorted(rows, key=lambda r: -r["score_bits"])


def retrieval_information(
    scores: Any,
    relevant: Any,
    *,
    bins: int = 10,
    estimator: str = "miller_madow",
    bootstrap: int = 500,
    permutations: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    r"""How many bits a retriever's scores carry about relevance: :math:`I(B; R)` between
    the scores binned into ``bins`` equal-frequency bins and the relevance labels, with
    :func:`infolens.estimate.mutual_information_test` (its basic-bootstrap interval and
    permutation p-value). At most :math:`H(R)` bits; compare retrievers on the same
    labelled set (same ``bins``: binning loses information, never adds it).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> rel = rng.integers(0, 2, 2000)
    >>> good, noise = rel + rng.standard_normal(2000), rng.standard_normal(2000)
    >>> a = retrieval_information(good, rel, bootstrap=0, permutations=0)
    >>> b = retrieval_information(noise, rel, bootstrap=0, permutations=0)
    >>> a["bits"] > 0.1 > 0.02 > b["bits"]
    True
    """
    from infolens import estimate

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(s)):
        raise InputError("scores: expected finite numbers")
    rel = list(relevant) if not isinstance(relevant, np.ndarray) else relevant
    if len(rel) != len(s):
        raise InputError(f"relevant: expected {len(s)} labels (as scores), got {len(rel)}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise InputError(f"bins: expected an integer >= 2, got {bins!r}")
    edges = np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1])
    binned = np.searchsorted(edges, s, side="right")
    t = estimate.mutual_information_test(
        binned, rel, estimator=estimator, base=2, permutations=permutations,
        bootstrap=bootstrap, seed=seed,
    )  # fmt: skip
    return {
        "bits": t.value,
        "interval_bits": None if t.interval is None else list(t.interval),
        "p_value": t.p_value,
        "relevance_entropy_bits": estimate.entropy(rel, base=2),
        "bins": bins,
        "estimator": estimator,
        "samples": len(s),
    }
