r"""Uncertainty of a model's answers from samples: semantic entropy and white-box measures.

**Semantic entropy** (Farquhar, Kossen, Kuhn and Gal, *Nature* 2024; reference code
github.com/jlko/semantic_uncertainty) asks how spread the *meanings* of sampled answers
are, not their strings. Answers :math:`s_1 \dots s_N` with log-likelihoods
:math:`\ell_i = \log p(s_i \mid x)` are clustered greedily by bidirectional equivalence
(an answer joins the first cluster whose representative, its first member, is equivalent
to it in both directions, else it starts a cluster). A cluster's log-probability is the
log-sum-exp of its samples' log-likelihoods, normalised over the sampled clusters:

.. math::

    \log \hat p_c = \operatorname{LSE}_{i \in c} \ell_i - \operatorname{LSE}_{i} \ell_i,
    \qquad \sum_c \hat p_c = 1 .

From them, side by side (nats; bits with ``base=2``):

* ``semantic_entropy`` :math:`= -\sum_c \hat p_c \log \hat p_c` — the "Rao" estimate, the
  one the Nature paper and its code report (``predictive_entropy_rao``);
* ``semantic_entropy_mc`` :math:`= -\frac1N \sum_i \log \hat p_{c(i)}` — the Monte-Carlo
  estimate over the samples (each sample scored by its cluster);
* ``discrete_semantic_entropy`` :math:`= -\sum_c \frac{n_c}{N} \log \frac{n_c}{N}` — from
  cluster frequencies only (no log-likelihoods; for black-box models);
* ``predictive_entropy`` :math:`= -\frac1N \sum_i \ell_i` — the naive, string-level one.

Duplicates are kept, as the reference keeps them: a string sampled twice counts twice in
its cluster's log-sum-exp. Summed that way a cluster's mass could exceed 1 (the same
sequence's probability added twice); the normalisation over sampled clusters makes the
:math:`\hat p_c` a distribution again (each in [0, 1], summing to 1).

**White-box measures** (:func:`sequence_uncertainties`) need only the per-token fields
of :class:`infolens.generation.Sample`; :func:`prompt_information` scores the answers
again without the prompt (pointwise mutual information of answer and prompt).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from infolens._backend import describe
from infolens.errors import InputError
from infolens.measures import _base_divisor as _log_base

if TYPE_CHECKING:
    from infolens.generation import Sample
    from infolens.models.base import LanguageModel

__all__ = [
    "EmbeddingEquivalence",
    "NLIEquivalence",
    "SemanticEntropy",
    "SequenceUncertainties",
    "cluster_answers",
    "embedding_equivalence",
    "nli_equivalence",
    "normalize_answer",
    "prompt_information",
    "semantic_entropy",
    "sequence_uncertainties",
]

Equivalence = Callable[[str, str], Any]
_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------- helpers
def _unit(base: Any) -> str:
    if base is None or base == math.e:
        return "nats"
    if base == 2:
        return "bits"
    if base == 10:
        return "hartleys"
    return f"log base {base:g}"


def _lse(x: np.ndarray) -> float:
    m = float(np.max(x))
    if m == -math.inf:
        return -math.inf
    return m + math.log(float(np.sum(np.exp(x - m))))


def _plogp(lp: np.ndarray) -> float:
    """``-sum(exp(lp) * lp)`` with ``0 log 0 = 0``."""
    p = np.exp(lp)
    t = np.where(p > 0, p * np.where(np.isfinite(lp), lp, 0.0), 0.0)
    return float(-t.sum())


# --------------------------------------------------------------------------- equivalence
def normalize_answer(text: str) -> str:
    """The form ``equivalent="exact"`` compares: lower case, outer whitespace stripped,
    inner whitespace runs collapsed to one space, trailing punctuation removed.

    Punctuation is any Unicode character of category ``P*`` (``.``, ``!``, ``?``, ``。``
    ...), removed with the whitespace between it and the text; leading punctuation and
    inner punctuation stay ("U.S." becomes "u.s").

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Examples
    --------
    >>> normalize_answer("  The   Eiffel Tower !! ")
    'the eiffel tower'
    >>> normalize_answer("Paris.") == normalize_answer("paris")
    True
    """
    if not isinstance(text, str):
        raise InputError(f"answer: expected a str, got {describe(text)}")
    s = _SPACE.sub(" ", text.lower()).strip()
    end = len(s)
    while end and (s[end - 1] == " " or unicodedata.category(s[end - 1]).startswith("P")):
        end -= 1
    return s[:end]


def _exact(a: str, b: str) -> bool:
    return normalize_answer(a) == normalize_answer(b)


class EmbeddingEquivalence:
    """Cosine similarity of embeddings at least ``threshold`` (symmetric); see
    :func:`embedding_equivalence`."""

    def __init__(self, embed: Callable[[list[str]], Any], threshold: float = 0.9) -> None:
        if not callable(embed):
            raise InputError(
                f"embed: expected a function of a list of strings, got {describe(embed)}"
            )
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not (-1.0 <= threshold <= 1.0)
        ):
            raise InputError(f"threshold: expected a number in [-1, 1], got {describe(threshold)}")
        self.embed = embed
        self.threshold = float(threshold)
        self._unit: dict[str, np.ndarray] = {}

    def prepare(self, answers: Sequence[str]) -> None:
        """Embed the answers not seen yet, in one call of ``embed``."""
        new = list(dict.fromkeys(a for a in answers if a not in self._unit))
        if not new:
            return
        try:
            v = np.asarray(self.embed(new), dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputError(
                f"embed: expected an array of shape (n, d) of numbers, got an error: {e}"
            ) from e
        if v.ndim != 2 or v.shape[0] != len(new):
            raise InputError(
                f"embed: expected an array of shape ({len(new)}, d), got shape {v.shape}"
            )
        norm = np.linalg.norm(v, axis=1)
        if not np.all(np.isfinite(v)) or np.any(norm == 0):
            raise InputError(
                "embed: expected finite, non-zero vectors, got a zero or non-finite one"
            )
        for a, row, n in zip(new, v, norm):
            self._unit[a] = row / n

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of the embeddings of ``a`` and ``b``."""
        self.prepare([a, b])
        return float(np.dot(self._unit[a], self._unit[b]))

    def __call__(self, a: str, b: str) -> bool:
        return self.similarity(a, b) >= self.threshold


def embedding_equivalence(
    embed: Callable[[list[str]], Any], threshold: float = 0.9
) -> EmbeddingEquivalence:
    r"""Equivalence by embeddings: :math:`\cos(e(a), e(b)) \ge` ``threshold``.

    Parameters
    ----------
    embed : callable
        A list of ``n`` strings to an array ``(n, d)`` of vectors (any embedding model).
        Each distinct string is embedded once (cached), all answers of a
        :func:`semantic_entropy` call in one call.
    threshold : float
        In [-1, 1].

    Returns
    -------
    EmbeddingEquivalence
        A callable ``f(a, b) -> bool``, symmetric.

    Raises
    ------
    InputError
        ``embed`` not callable, ``threshold`` out of range; when called, an ``embed``
        returning the wrong shape, a zero or a non-finite vector.

    Examples
    --------
    >>> toy = lambda xs: [[len(x), 1.0] for x in xs]
    >>> eq = embedding_equivalence(toy, threshold=0.99)
    >>> eq("abcd", "wxyz"), eq("a", "abcdefgh")
    (True, False)
    """
    return EmbeddingEquivalence(embed, threshold)


def _entailment_id(config: Any) -> int:
    id2label = getattr(config, "id2label", None) or {}
    for k, v in id2label.items():
        if str(v).lower() == "entailment":
            return int(k)
    label2id = getattr(config, "label2id", None) or {}
    for k, v in label2id.items():
        if str(k).lower() == "entailment":
            return int(v)
    raise InputError(
        "model: expected an NLI model whose config.id2label or label2id names an "
        f"'entailment' label, got labels {sorted(map(str, id2label.values()))}"
    )


class NLIEquivalence:
    """``f(a, b)``: does ``a`` entail ``b`` under an NLI model; see :func:`nli_equivalence`."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 16) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size: expected an integer >= 1, got {describe(batch_size)}")
        if not hasattr(model, "config") or not callable(model):
            raise InputError(
                f"model: expected a transformers sequence-classification model, got {describe(model)}"
            )
        if not callable(tokenizer):
            raise InputError(
                f"tokenizer: expected a transformers tokenizer, got {describe(tokenizer)}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.entailment_id = _entailment_id(model.config)
        self.cache: dict[tuple[str, str], bool] = {}

    def entails_many(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ordered pair ``(premise, hypothesis)``: is the argmax label entailment.

        Pairs not in the cache are run in batches of ``batch_size``; each ordered pair is
        run at most once per object."""
        import torch

        todo = list(dict.fromkeys(p for p in pairs if p not in self.cache))
        try:
            device = next(self.model.parameters()).device
        except (AttributeError, StopIteration):
            device = torch.device("cpu")
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s : s + self.batch_size]
            enc = self.tokenizer(
                [a for a, _ in chunk], [b for _, b in chunk],
                padding=True, truncation=True, return_tensors="pt",
            )  # fmt: skip
            enc = {k: v.to(device) for k, v in enc.items()}
            with torch.no_grad():
                out = self.model(**enc)
            logits = out.logits if hasattr(out, "logits") else out[0]
            pred = logits.argmax(dim=-1).tolist()
            for p, y in zip(chunk, pred):
                self.cache[p] = int(y) == self.entailment_id
        return [self.cache[p] for p in pairs]

    def __call__(self, a: str, b: str) -> bool:
        return self.entails_many([(a, b)])[0]


def nli_equivalence(model: Any, tokenizer: Any, *, batch_size: int = 16) -> NLIEquivalence:
    """Equivalence by natural-language inference: ``f(a, b)`` is True when the model's
    most probable label for premise ``a`` and hypothesis ``b`` is entailment.

    :func:`semantic_entropy` asks both directions, so two answers are merged only if each
    entails the other (the reference's ``strict_entailment=True``). ``f`` itself is the
    one-way judgement.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An ``AutoModelForSequenceClassification`` NLI model, supplied by the caller (e.g.
        loaded from a local directory); its entailment label id is read from
        ``model.config.id2label`` (else ``label2id``), the label named "entailment" in
        any case. Put it in eval mode on the device wanted; inputs follow its parameters.
    tokenizer : transformers tokenizer
        Called as ``tokenizer(premises, hypotheses, padding=True, truncation=True,
        return_tensors="pt")``.
    batch_size : int
        Pairs per forward pass. :func:`semantic_entropy` sends, for each answer, all pairs
        it needs against the current representatives at once.

    Returns
    -------
    NLIEquivalence
        Callable; its ``cache`` maps each ordered pair run to its verdict (each pair runs
        once), ``entailment_id`` is the label id used.

    Raises
    ------
    InputError
        No "entailment" label in the config; a bad ``batch_size``.

    Examples
    --------
    A stand-in with the interface (a real model: ``AutoModelForSequenceClassification``):

    >>> import types, torch
    >>> class Toy(torch.nn.Module):
    ...     config = types.SimpleNamespace(id2label={0: "contradiction", 1: "entailment"})
    ...     def forward(self, x):
    ...         return types.SimpleNamespace(logits=torch.stack([x, 1 - x], dim=-1))
    >>> tok = lambda a, b, **kw: {"x": torch.tensor([0.0 if p == h else 1.0 for p, h in zip(a, b)])}
    >>> eq = nli_equivalence(Toy(), tok)
    >>> eq.entailment_id, eq("a", "a"), eq("a", "b")
    (1, True, False)
    """
    return NLIEquivalence(model, tokenizer, batch_size=batch_size)


# --------------------------------------------------------------------------- clustering
def _judge(equivalent: Any) -> Callable[[str, str], bool]:
    def f(a: str, b: str) -> bool:
        r = equivalent(a, b)
        if not isinstance(r, (bool, np.bool_)):
            raise InputError(f"equivalent: expected a function returning a bool, got {describe(r)}")
        return bool(r)

    return f


def _check_answers(answers: Any) -> list[str]:
    if isinstance(answers, str) or not isinstance(answers, Sequence):
        raise InputError(f"answers: expected a list of strings, got {describe(answers)}")
    if len(answers) == 0:
        raise InputError("answers: expected at least one answer, got none")
    for i, a in enumerate(answers):
        if not isinstance(a, str):
            raise InputError(f"answers[{i}]: expected a str, got {describe(a)}")
    return list(answers)


def cluster_answers(answers: Sequence[str], equivalent: Any = "exact") -> list[list[int]]:
    """Greedy clustering by bidirectional equivalence.

    Answer ``i`` (in order) joins the first cluster whose representative ``r`` (its first
    member) satisfies ``equivalent(r, answer) and equivalent(answer, r)``; otherwise it
    starts a new cluster and is its representative. Clusters are in order of their first
    member, members in sample order.

    The reference implementation (``get_semantic_ids``) compares each new representative
    with all later answers and lets a later representative take over an answer already
    assigned; for a transitive relation (exact match) both give the same clusters, for a
    non-transitive one (NLI, embeddings) this one keeps the first match.

    Parameters
    ----------
    answers : sequence of str
    equivalent : "exact" or callable
        ``"exact"``: :func:`normalize_answer` equal; a callable ``f(a, b) -> bool``
        (:func:`embedding_equivalence`, :func:`nli_equivalence` or any), asked in both
        directions (a one-way True does not merge). An object with ``prepare(answers)``
        is given all answers first; one with ``entails_many(pairs)`` is asked for all the
        pairs of an answer at once.

    Returns
    -------
    list of list of int
        Answer indices per cluster.

    Examples
    --------
    >>> cluster_answers(["Paris", "London", "paris.", "PARIS"])
    [[0, 2, 3], [1]]
    """
    ans = _check_answers(answers)
    if isinstance(equivalent, str):
        if equivalent != "exact":
            raise InputError(
                f"equivalent: expected 'exact' or a function f(a, b) -> bool, got {equivalent!r}"
            )
        keys: dict[str, int] = {}
        clusters: list[list[int]] = []
        for i, a in enumerate(ans):
            k = normalize_answer(a)
            if k not in keys:
                keys[k] = len(clusters)
                clusters.append([])
            clusters[keys[k]].append(i)
        return clusters
    if not callable(equivalent):
        raise InputError(
            f"equivalent: expected 'exact' or a function f(a, b) -> bool, got {describe(equivalent)}"
        )
    prepare = getattr(equivalent, "prepare", None)
    if callable(prepare):
        prepare(ans)
    many = getattr(equivalent, "entails_many", None)
    judge = _judge(equivalent)
    clusters = []
    for i, a in enumerate(ans):
        reps = [ans[c[0]] for c in clusters]
        home = None
        if callable(many) and reps:
            fwd = many([(r, a) for r in reps] + [(a, r) for r in reps])
            both = [bool(x) and bool(y) for x, y in zip(fwd[: len(reps)], fwd[len(reps) :])]
            home = next((j for j, ok in enumerate(both) if ok), None)
        else:
            for j, r in enumerate(reps):
                if judge(r, a) and judge(a, r):
                    home = j
                    break
        if home is None:
            clusters.append([i])
        else:
            clusters[home].append(i)
    return clusters


# --------------------------------------------------------------------------- semantic entropy
@dataclass(frozen=True)
class SemanticEntropy:
    """Semantic entropy of a set of sampled answers (see the module docstring).

    Attributes
    ----------
    semantic_entropy : float
        Rao estimate, :math:`-\\sum_c \\hat p_c \\log \\hat p_c` (what the paper reports).
    semantic_entropy_mc : float
        Monte-Carlo estimate, :math:`-\\frac1N \\sum_i \\log \\hat p_{c(i)}`.
    discrete_semantic_entropy : float
        Entropy of the cluster frequencies ``n_c / N``.
    predictive_entropy : float
        :math:`-\\frac1N \\sum_i \\ell_i` (naive, no clustering).
    clusters : list of list of int
        Answer indices per cluster, in order of first appearance.
    cluster_probabilities : list of float
        :math:`\\hat p_c`, summing to 1.
    cluster_logprobs : list of float
        :math:`\\log \\hat p_c` in nats (whatever ``base``).
    answers : list of str
    unit : str
        Unit of the four entropies: ``"nats"``, ``"bits"``, ...
    """

    semantic_entropy: float
    semantic_entropy_mc: float
    discrete_semantic_entropy: float
    predictive_entropy: float
    clusters: list[list[int]]
    cluster_probabilities: list[float]
    cluster_logprobs: list[float]
    answers: list[str]
    unit: str

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return len(self.clusters)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {
            "semantic_entropy": self.semantic_entropy,
            "semantic_entropy_mc": self.semantic_entropy_mc,
            "discrete_semantic_entropy": self.discrete_semantic_entropy,
            "predictive_entropy": self.predictive_entropy,
            "unit": self.unit,
            "n_clusters": self.n_clusters,
            "clusters": [
                {
                    "answers": [self.answers[i] for i in c],
                    "indices": list(c),
                    "count": len(c),
                    "probability": p,
                }
                for c, p in zip(self.clusters, self.cluster_probabilities)
            ],
        }


def semantic_entropy(
    answers: Sequence[str],
    logprobs: Any,
    equivalent: Any = "exact",
    *,
    base: float | None = None,
) -> SemanticEntropy:
    r"""Semantic entropy of sampled answers, by four estimators side by side.

    Formulas in the module docstring: answers clustered by :func:`cluster_answers`;
    cluster probabilities :math:`\hat p_c = \sum_{i \in c} e^{\ell_i} / \sum_i e^{\ell_i}`
    (every sample counted, duplicates too, as in the reference code; normalised so that
    they sum to 1 and none exceeds 1).

    Parameters
    ----------
    answers : sequence of str
        The ``N`` sampled answers (duplicates allowed, each a sample).
    logprobs : array-like of float, length ``N``
        Each answer's log-likelihood in nats (summed over its tokens, or length-normalised
        — the mean per token, as the paper's code uses — the caller's choice). ``-inf``
        (an answer of probability 0) is allowed: it adds no mass to its cluster, and makes
        ``predictive_entropy`` infinite (and ``semantic_entropy_mc`` if its whole cluster
        has probability 0). NaN and ``+inf`` are refused, and so is every value ``-inf``.
    equivalent : "exact" or callable
        See :func:`cluster_answers`.
    base : float, optional
        Logarithm base of the entropies (2: bits); None: nats.

    Returns
    -------
    SemanticEntropy

    Raises
    ------
    InputError
        No answers, a non-string answer, lengths that differ, a non-finite log-likelihood
        other than ``-inf``, all ``-inf``, a bad ``equivalent`` or ``base``.

    Examples
    --------
    Three "Paris" (one written differently) and one "Lyon", equally likely:

    >>> se = semantic_entropy(["Paris", "paris.", "Lyon", "Paris"], [-1.0, -1.0, -1.0, -1.0], base=2)
    >>> se.clusters, [round(p, 2) for p in se.cluster_probabilities]
    ([[0, 1, 3], [2]], [0.75, 0.25])
    >>> round(se.semantic_entropy, 4), se.unit
    (0.8113, 'bits')
    """
    ans = _check_answers(answers)
    try:
        lp = np.asarray(logprobs, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"logprobs: expected one number per answer, got {describe(logprobs)}"
        ) from None
    if lp.ndim != 1 or lp.shape[0] != len(ans):
        raise InputError(
            f"logprobs: expected {len(ans)} numbers (one per answer), got shape {lp.shape}"
        )
    bad = np.flatnonzero(np.isnan(lp) | (lp == np.inf))
    if bad.size:
        raise InputError(
            f"logprobs[{bad[0]}]: expected a finite log-likelihood or -inf, got {lp[bad[0]]}"
        )
    if np.all(lp == -np.inf):
        raise InputError("logprobs: expected at least one answer of probability > 0, got all -inf")
    div = _log_base(base)
    clusters = cluster_answers(ans, equivalent)
    total = _lse(lp)
    clp = np.array([_lse(lp[c]) - total for c in clusters])
    clp = np.minimum(clp, 0.0)  # rounding: no cluster above probability 1
    probs = np.exp(clp)
    probs = probs / probs.sum()
    n = len(ans)
    counts = np.array([len(c) for c in clusters], dtype=np.float64)
    freq = counts / n
    rao = _plogp(clp)
    mc = float(-(counts * clp).sum() / n)
    discrete = float(-(freq * np.log(freq)).sum())
    naive = float(-lp.mean())
    return SemanticEntropy(
        semantic_entropy=rao / div + 0.0,
        semantic_entropy_mc=mc / div + 0.0,
        discrete_semantic_entropy=discrete / div + 0.0,
        predictive_entropy=naive / div + 0.0,
        clusters=clusters,
        cluster_probabilities=[float(p) for p in probs],
        cluster_logprobs=[float(x) for x in clp],
        answers=ans,
        unit=_unit(base),
    )


# --------------------------------------------------------------------------- white box
@dataclass(frozen=True)
class SequenceUncertainties:
    """White-box uncertainties of the samples of one prompt (see
    :func:`sequence_uncertainties`).

    Attributes
    ----------
    n_tokens : list of int
        Per sample.
    sequence_logprob : list of float
        :math:`\\sum_t \\log p(x_t \\mid x_{<t})` under the model (``unit``).
    mean_token_entropy : list of float
        Mean over the sample's tokens of the model's next-token entropy (``unit``).
    perplexity : list of float
        :math:`\\exp(-\\frac1T \\sum_t \\ln p(x_t \\mid x_{<t}))` (no unit; any base).
    maximum_sequence_probability : float
        :math:`1 - \\max_i p(s_i)`: the uncertainty of the most likely sample.
    mean_token_entropy_overall : float
        Mean of ``mean_token_entropy`` over the samples (``unit``).
    unit : str
    """

    n_tokens: list[int]
    sequence_logprob: list[float]
    mean_token_entropy: list[float]
    perplexity: list[float]
    maximum_sequence_probability: float
    mean_token_entropy_overall: float
    unit: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {
            "unit": self.unit,
            "maximum_sequence_probability": self.maximum_sequence_probability,
            "mean_token_entropy": self.mean_token_entropy_overall,
            "samples": [
                {"n_tokens": n, "sequence_logprob": lp, "mean_token_entropy": h, "perplexity": ppl}
                for n, lp, h, ppl in zip(
                    self.n_tokens, self.sequence_logprob, self.mean_token_entropy, self.perplexity
                )
            ],
        }


def _check_samples(samples: Any) -> list[Sample]:
    if not isinstance(samples, Sequence) or isinstance(samples, str) or len(samples) == 0:
        raise InputError(f"samples: expected a non-empty list of Sample, got {describe(samples)}")
    for i, s in enumerate(samples):
        for name in ("token_ids", "logprob_model", "entropy_model"):
            if not hasattr(s, name):
                raise InputError(f"samples[{i}]: expected an infolens Sample, got {describe(s)}")
        if len(s.token_ids) == 0:
            raise InputError(f"samples[{i}]: expected a sample with at least one token, got none")
    return list(samples)


def sequence_uncertainties(
    samples: Sequence[Sample], *, base: float | None = None
) -> SequenceUncertainties:
    r"""White-box uncertainties from the per-token fields of generated samples.

    Per sample ``s`` of ``T`` tokens, from ``logprob_model`` (:math:`\ln p(x_t \mid
    \text{prompt}, x_{<t})`, the model at ``T = 1``, nothing truncated) and
    ``entropy_model`` (:math:`H(p_t)`):

    * ``sequence_logprob`` :math:`= \sum_t \ln p(x_t \mid \cdot)`;
    * ``mean_token_entropy`` :math:`= \frac1T \sum_t H(p_t)`;
    * ``perplexity`` :math:`= \exp(-\frac1T \sum_t \ln p(x_t \mid \cdot))`.

    Over the set: ``maximum_sequence_probability`` :math:`= 1 - \max_s p(s)` (high: even
    the most likely sample is improbable), and ``mean_token_entropy_overall``, the mean of the per-sample means (each sample
    weighs the same whatever its length).

    Parameters
    ----------
    samples : sequence of infolens.generation.Sample
        From :func:`infolens.generate`, normally the samples of one prompt. Each must
        have at least one token.
    base : float, optional
        Base of the log-probabilities and entropies (2: bits); None: nats.

    Returns
    -------
    SequenceUncertainties

    Examples
    --------
    >>> from infolens import generate, load_model
    >>> ss = generate(load_model("ngram"), "the cat sat on the", n=3, max_new_tokens=5, seed=0)
    >>> u = sequence_uncertainties(ss)
    >>> len(u.perplexity), 0 <= u.maximum_sequence_probability <= 1
    (3, True)
    """
    ss = _check_samples(samples)
    div = _log_base(base)
    lps = [np.asarray(s.logprob_model, dtype=np.float64) for s in ss]
    hs = [np.asarray(s.entropy_model, dtype=np.float64) for s in ss]
    seq = [float(x.sum()) for x in lps]
    mh = [float(h.mean()) for h in hs]
    return SequenceUncertainties(
        n_tokens=[len(x) for x in lps],
        sequence_logprob=[x / div for x in seq],
        mean_token_entropy=[h / div for h in mh],
        perplexity=[float(np.exp(-x.mean())) for x in lps],
        maximum_sequence_probability=float(1.0 - math.exp(max(seq))),
        mean_token_entropy_overall=float(np.mean(mh)) / div,
        unit=_unit(base),
    )


def prompt_information(
    model: LanguageModel, samples: Sequence[Sample], *, base: float | None = None
) -> list[float]:
    r"""Mean pointwise mutual information between each sample's tokens and its prompt.

    .. math::

        \frac1T \sum_t \left[\log p(x_t \mid \text{prompt}, x_{<t})
                            - \log p(x_t \mid x_{<t})\right]

    The first term is the sample's ``logprob_model``; the second scores the same tokens
    again after only the model's BOS token (or nothing, for a model that predicts the
    first token, like ``ngram``). Near 0: the answer owes nothing to the prompt (the model
    would have said it anyway); positive: the prompt made it more likely.

    Parameters
    ----------
    model : LanguageModel
        The model the samples were drawn from (with the same BOS setting: the default of
        :func:`infolens.generate`).
    samples : sequence of Sample
    base : float, optional
        2: bits; None: nats.

    Returns
    -------
    list of float
        One per sample (``base`` units per token).

    Raises
    ------
    InputError
        A model with neither a BOS token nor a first-token prediction; a sample longer
        than the model's context.

    Examples
    --------
    >>> from infolens import generate, load_model
    >>> m = load_model("ngram")
    >>> ss = generate(m, "the cat sat on the", n=2, max_new_tokens=6, seed=0)
    >>> len(prompt_information(m, ss))
    2
    """
    from infolens._kernels import fused_rows
    from infolens.models.base import Window

    ss = _check_samples(samples)
    div = _log_base(base)
    pre = [] if model.bos_id is None else [int(model.bos_id)]
    if not pre and not model.predicts_first:
        raise InputError(f"model: {model.name} has no BOS token and cannot predict a first token")
    windows, targets = [], []
    for i, s in enumerate(ss):
        ids = np.concatenate([np.asarray(pre, np.int64), np.asarray(s.token_ids, np.int64)])
        if model.max_context is not None and len(ids) > model.max_context:
            raise InputError(
                f"samples[{i}]: {len(ids)} tokens, more than the model's context {model.max_context}"
            )
        windows.append(Window(ids, start=len(pre)))
        targets.append(np.asarray(s.token_ids, np.int64))
    flat = np.concatenate(targets)
    sur = np.empty(len(flat))
    at = 0
    for block in model.logits(windows, max_rows=256):
        k = int(block.shape[0])
        tgt: Any = flat[at : at + k]
        if hasattr(block, "device") and not isinstance(block, np.ndarray):
            import torch

            tgt = torch.as_tensor(tgt, device=block.device)
        sur[at : at + k] = np.asarray(fused_rows(block, None, tgt).surprisal_p)
        at += k
    out, at = [], 0
    for s in ss:
        k = len(s.token_ids)
        without = -sur[at : at + k]
        at += k
        out.append(float(np.mean(np.asarray(s.logprob_model, np.float64) - without)) / div)
    return out
