r"""How good are the sampled-token KL estimators on *your* two models?

RLHF trainers estimate :math:`D(\pi\|\pi_{ref})` from the tokens the policy sampled
(:func:`infolens.alignment.kl_estimate`: k1, k2, k3). With both models at hand the
per-token KL can also be computed exactly over the whole vocabulary. This module samples
completions from the policy, scores each under both models with full logits at every
generated position, and compares the estimators with the exact value, per token and per
sequence (``infolens kl``; ``docs/kl_estimators.md``).

Definitions, at generated position :math:`t` of a sample with prefix :math:`x_{<t}`:

* :math:`\pi_t` is the distribution the token was actually drawn from: the policy's
  logits after the sampling chain (:func:`infolens.sampling.apply` with the same
  temperature and truncation options; none: the policy's own softmax);
* :math:`\pi_{ref,t}` is the reference's softmax at the *same temperature* (as TRL and
  verl compute reference log-probs at the sampling temperature), never truncated;
* :math:`\mathrm{KL}_t = D(\pi_t\|\pi_{ref,t}) = \sum_v \pi_t(v)\,[\log\pi_t(v) -
  \log\pi_{ref,t}(v)]` over the full vocabulary (the fused kernel, float64);
* with :math:`\log r_t = \log\pi_{ref,t}(x_t) - \log\pi_t(x_t)`: :math:`k1_t = -\log r_t`,
  :math:`k2_t = \tfrac12(\log r_t)^2`, :math:`k3_t = (r_t - 1) - \log r_t`.

k1 is unbiased; k3 too unless the chain truncates (then :math:`E_\pi[r_t] =
\pi_{ref,t}(\text{kept tokens}) < 1`: ``ref_mass_outside``); k2 is biased.

Per sequence, :math:`\sum_t \mathrm{KL}_t` is the Rao-Blackwellised estimate of the
sequence KL (each term is :math:`E[k1_t \mid x_{<t}]`): unbiased, with less variance than
:math:`\sum_t k1_t`. The sequence rows compare :math:`\sum_t k_t` with it.

Statistics (:class:`Stats`), for an estimate :math:`k` against the exact value :math:`e`
(per token: :math:`\mathrm{KL}_t`; per sequence: :math:`\sum_t \mathrm{KL}_t`):

* ``bias`` = mean(:math:`k - e`), with its standard error ``bias_se``;
* ``std`` = the standard deviation of :math:`k` (``ddof=1``);
* ``rmse`` = :math:`\sqrt{\mathrm{mean}((k - e)^2)}`;
* ``relative_error`` = ``rmse / mean(e)``;
* ``std_over_true`` = ``std / mean(e)`` (the figure of Schulman's note);
* ``negative_fraction``: the fraction of values :math:`k < 0`.

Per-token means pool every token of every sample; their standard errors are
cluster-robust over sequences (tokens of one sample are not independent). Per-sequence
standard errors treat the sequences as independent draws. Undefined values (one
sequence, a zero mean exact KL) are ``None``. Nats unless ``base=2`` (bits).

Examples
--------
>>> from infolens.models import load_model
>>> pol, ref = load_model("ngram"), load_model("ngram:order=2")
>>> r = kl_estimator_report(pol, ref, ["the cat sat on the mat. the cat"], samples=4,
...                         max_new_tokens=8, seed=1)
>>> r.n_sequences, r.n_tokens, r.unit
(4, 32, 'nats')
>>> bool(r.exact.per_token.mean > 0), r.estimators["k3"].per_token.negative_fraction
(True, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infolens import sampling as _sampling
from infolens._kernels import fused_rows
from infolens.alignment import kl_estimate
from infolens.errors import InputError
from infolens.models.base import LanguageModel, Window

__all__ = [
    "ESTIMATORS",
    "EstimatorStats",
    "KLEstimatorReport",
    "Stats",
    "gaussian_estimator_table",
    "kl_estimator_report",
]

#: The sampled-token estimators compared.
ESTIMATORS = ("k1", "k2", "k3")

#: Floats of logits per block scored at once (about 64 MB in float64).
_BLOCK_FLOATS = 1 << 23


@dataclass
class Stats:
    """One estimator's statistics at one level (per token or per sequence); see the
    module docstring for the definitions. Values in the report's unit; ``None`` where
    undefined."""

    count: int
    mean: float
    mean_se: float | None
    bias: float
    bias_se: float | None
    std: float | None
    rmse: float
    relative_error: float | None
    std_over_true: float | None
    negative_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return dict(self.__dict__)


@dataclass
class EstimatorStats:
    """An estimator's :class:`Stats` per token and per sequence."""

    name: str
    per_token: Stats
    per_sequence: Stats

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {"name": self.name, "per_token": self.per_token.to_dict(),
                "per_sequence": self.per_sequence.to_dict()}  # fmt: skip


@dataclass
class KLEstimatorReport:
    """What :func:`kl_estimator_report` measured.

    Attributes
    ----------
    policy, ref : str
        The models' names.
    unit : str
        ``"nats"`` or ``"bits"``.
    exact : EstimatorStats
        The exact KL: per token :math:`\\mathrm{KL}_t`, per sequence the
        Rao-Blackwellised :math:`\\sum_t \\mathrm{KL}_t` (bias 0 by definition).
    estimators : dict of str to EstimatorStats
        ``"k1"``, ``"k2"``, ``"k3"``.
    per_position : dict of str to list
        By generated position ``t`` (0-based): ``position``, ``count`` (samples that
        reached it) and, for ``exact`` and each estimator, ``<name>_mean``; for each
        estimator ``<name>_bias`` and ``<name>_error_std`` (std of :math:`k_t - \\mathrm{KL}_t`;
        ``None`` with fewer than 2 samples).
    sequences : list of dict
        Each sample: ``prompt_index``, ``index``, ``tokens``, ``finish_reason``, ``text``,
        ``token_ids``, ``exact`` (:math:`\\sum_t \\mathrm{KL}_t`) and ``k1``, ``k2``, ``k3`` (sums).
    prompts : list of dict
        Each prompt: ``prompt``, ``sequences``, ``tokens``, ``exact_token_mean``,
        ``exact_sequence_mean`` and its ``exact_sequence_se``.
    max_logprob_gap : float
        Largest :math:`|\\log\\pi_t(x_t)|` difference (nats) between the teacher-forced
        scoring used here and the generation step that drew the token: 0 for models whose
        decoder is their scoring (``ngram``), float rounding for a KV cache.
    ref_mass_outside : float
        Mean over tokens of :math:`1 - \\pi_{ref,t}(S_t)`, the reference's probability of
        the tokens the sampling chain removed (:math:`S_t` = the support of
        :math:`\\pi_t`): 0 without truncation. Then :math:`E_\\pi[r_t] =
        \\pi_{ref,t}(S_t) < 1`, so k3's expected bias per token is minus this in
        nats (a probability); k1 stays unbiased.
    token_exact, token_k, token_ref_outside : numpy.ndarray
        Per-token values in the report's unit (``token_k[name]``), all samples
        concatenated; ``token_sequence`` and ``token_position`` index them (not in
        :meth:`to_dict` unless asked).
    """

    policy: str
    ref: str
    unit: str
    samples: int
    max_new_tokens: int
    seed: int
    sampling: dict[str, Any]
    ref_temperature: float
    n_prompts: int
    n_sequences: int
    n_tokens: int
    exact: EstimatorStats
    estimators: dict[str, EstimatorStats]
    per_position: dict[str, list[Any]]
    sequences: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    max_logprob_gap: float
    ref_mass_outside: float
    token_exact: np.ndarray = field(repr=False)
    token_ref_outside: np.ndarray = field(repr=False)
    token_k: dict[str, np.ndarray] = field(repr=False)
    token_sequence: np.ndarray = field(repr=False)
    token_position: np.ndarray = field(repr=False)

    def to_dict(self, *, per_token: bool = False) -> dict[str, Any]:
        """Plain data for JSON (``per_token``: also every token's exact KL and estimates)."""
        d: dict[str, Any] = {
            "policy": self.policy, "ref": self.ref, "unit": self.unit,
            "samples": self.samples, "max_new_tokens": self.max_new_tokens,
            "seed": self.seed, "sampling": dict(self.sampling),
            "ref_temperature": self.ref_temperature, "n_prompts": self.n_prompts,
            "n_sequences": self.n_sequences, "n_tokens": self.n_tokens,
            "exact": self.exact.to_dict(),
            "estimators": {k: v.to_dict() for k, v in self.estimators.items()},
            "per_position": {k: list(v) for k, v in self.per_position.items()},
            "sequences": [dict(s) for s in self.sequences],
            "prompts": [dict(p) for p in self.prompts],
            "max_logprob_gap": self.max_logprob_gap,
            "ref_mass_outside": self.ref_mass_outside,
        }  # fmt: skip
        if per_token:
            d["per_token"] = {
                "sequence": self.token_sequence.tolist(),
                "position": self.token_position.tolist(),
                "exact": self.token_exact.tolist(),
                "ref_mass_outside": self.token_ref_outside.tolist(),
                **{k: v.tolist() for k, v in self.token_k.items()},
            }
        return d


# --------------------------------------------------------------------------- statistics


def _opt(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 or not math.isfinite(den) else _opt(num / den)


def _cluster_mean_se(values: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> float | None:
    """Standard error of the pooled mean ``sum(values) / len(values)`` of tokens grouped
    in independent sequences (per-sequence ``sums`` and ``counts``): the cluster-robust
    (ratio, delta-method) estimate ``sqrt(m/(m-1) * sum((S_i - mean n_i)^2)) / sum(n_i)``."""
    m = len(counts)
    if m < 2:
        return None
    mean = values.sum() / counts.sum()
    resid = sums - mean * counts
    return _opt(math.sqrt(m / (m - 1) * float((resid**2).sum())) / float(counts.sum()))


def _stats(k: np.ndarray, e: np.ndarray, seq: np.ndarray | None, m: int) -> Stats:
    """Stats of estimate ``k`` against exact ``e`` (per token: ``seq`` = the sequence of
    each token, ``m`` sequences; per sequence: ``seq`` None)."""
    n = len(k)
    d = k - e
    mean_e = float(e.mean())
    if seq is not None:
        counts = np.bincount(seq, minlength=m).astype(np.float64)
        keep = counts > 0
        se_k = _cluster_mean_se(k, np.bincount(seq, k, m)[keep], counts[keep])
        se_d = _cluster_mean_se(d, np.bincount(seq, d, m)[keep], counts[keep])
    else:
        se_k = _opt(float(k.std(ddof=1)) / math.sqrt(n)) if n > 1 else None
        se_d = _opt(float(d.std(ddof=1)) / math.sqrt(n)) if n > 1 else None
    std = _opt(float(k.std(ddof=1))) if n > 1 else None
    rmse = float(np.sqrt(np.mean(d**2)))
    return Stats(
        count=n, mean=float(k.mean()), mean_se=se_k, bias=float(d.mean()), bias_se=se_d,
        std=std, rmse=rmse, relative_error=_ratio(rmse, mean_e),
        std_over_true=None if std is None else _ratio(std, mean_e),
        negative_fraction=float(np.mean(k < 0)),
    )  # fmt: skip


# --------------------------------------------------------------------------- scoring


def _check_same_vocabulary(
    policy: LanguageModel, ref: LanguageModel, prompts: Sequence[str]
) -> None:
    """Refuse two models that do not share the tokenizer and vocabulary (one line)."""
    what = f"--ref {ref.name} and --policy {policy.name}"
    if policy.vocab_size != ref.vocab_size:
        raise InputError(f"{what}: expected the same vocabulary, got {ref.vocab_size:,} and "
                         f"{policy.vocab_size:,} tokens")  # fmt: skip
    if bool(policy.byte_level) != bool(ref.byte_level):
        raise InputError(f"{what}: expected the same tokenizer, got a byte-level and a "
                         f"non-byte-level model")  # fmt: skip
    for name in ("bos_id", "eos_id"):
        a, b = getattr(policy, name, None), getattr(ref, name, None)
        if a != b:
            raise InputError(f"{what}: expected the same tokenizer, got {name} {b} and {a}")
    probe = "The quick brown fox jumps over the lazy dog. 0123456789 ∑ é\n\tdef f(x):"
    for text in [probe, *prompts]:
        if not np.array_equal(np.asarray(policy.tokenize(text).ids, dtype=np.int64),
                              np.asarray(ref.tokenize(text).ids, dtype=np.int64)):  # fmt: skip
            raise InputError(f"{what}: expected the same tokenizer, got different token ids "
                             f"for {text[:40]!r}")  # fmt: skip


def _numpy_rows(rows: Iterator[Any]) -> Iterator[np.ndarray]:
    for r in rows:
        if hasattr(r, "detach"):
            r = r.detach().to("cpu")
            if r.dtype.is_floating_point and r.element_size() < 4:
                r = r.float()
            r = r.numpy()
        yield np.asarray(r)


def _zip_rows(
    a_rows: Iterator[np.ndarray], b_rows: Iterator[np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Two row streams re-cut into blocks of equal length."""
    a = b = None
    while True:
        if a is None or len(a) == 0:
            a = next(a_rows, None)
        if b is None or len(b) == 0:
            b = next(b_rows, None)
        if a is None or b is None:
            if a is not None or b is not None:
                raise RuntimeError("the two models returned different numbers of rows")
            return
        k = min(len(a), len(b))
        yield a[:k], b[:k]
        a, b = a[k:], b[k:]


def _lse64(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)))[:, 0]


def _score(policy: LanguageModel, ref: LanguageModel, prefix: np.ndarray,
           completions: list[np.ndarray], warp: dict[str, Any],
           t_ref: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Teacher-force ``prefix + completion`` for every completion under both models:
    per generated token, exact KL, log pi(x_t), log pi_ref(x_t) (float64 nats) and the
    reference's mass outside pi's support."""
    windows, targets = [], []
    for c in completions:
        if len(c) == 0:
            continue
        ids = np.concatenate([prefix, c]).astype(np.int64)
        windows.append(Window(ids, len(prefix)))
        targets.append(c)
    if not windows:
        return np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0)
    for model in (policy, ref):
        ctx = model.max_context
        if ctx is not None and any(len(w.ids) - 1 > ctx for w in windows):
            raise InputError(f"{model.name}: a prompt and its completion exceed the context of "
                             f"{ctx:,} tokens; lower --max-new-tokens")  # fmt: skip
    tgt = np.concatenate(targets)
    max_rows = max(1, _BLOCK_FLOATS // max(1, policy.vocab_size))
    a_rows = _numpy_rows(iter(policy.logits(windows, max_rows=max_rows)))
    b_rows = _numpy_rows(iter(ref.logits(windows, max_rows=max_rows)))
    kl, lp, lq, out = [], [], [], []
    at = 0
    for z, y in _zip_rows(a_rows, b_rows):
        if z.shape[-1] != policy.vocab_size or y.shape[-1] != policy.vocab_size:
            raise InputError(f"--ref {ref.name} and --policy {policy.name}: expected logits over "
                             f"the same vocabulary, got {y.shape[-1]:,} and {z.shape[-1]:,}")  # fmt: skip
        x = tgt[at : at + len(z)]
        at += len(z)
        w = np.asarray(_sampling.apply(np.asarray(z, dtype=np.float64), **warp), dtype=np.float64)
        r = np.asarray(y, dtype=np.float64) / t_ref
        kl.append(np.asarray(fused_rows(w, r).kl_pq, dtype=np.float64))
        rows = np.arange(len(z))
        lp.append(w[rows, x] - _lse64(w))
        lse_r = _lse64(r)
        lq.append(r[rows, x] - lse_r)
        with np.errstate(under="ignore"):
            removed = np.where(w == -np.inf, np.exp(r - lse_r[:, None]), 0.0).sum(axis=-1)
        out.append(np.minimum(removed, 1.0))
    return np.concatenate(kl), np.concatenate(lp), np.concatenate(lq), np.concatenate(out)


# --------------------------------------------------------------------------- the report


def kl_estimator_report(
    policy: LanguageModel,
    ref: LanguageModel,
    prompts: str | Sequence[str],
    samples: int = 64,
    *,
    max_new_tokens: int = 32,
    seed: int = 0,
    base: float | None = None,
    order: str | Sequence[str] = "transformers",
    min_tokens_to_keep: int = 1,
    **sampling: Any,
) -> KLEstimatorReport:
    r"""Sample from ``policy``, score under both models, and compare k1/k2/k3 with the
    exact KL :math:`D(\pi\|\pi_{ref})`, per token and per sequence.

    Parameters
    ----------
    policy, ref : LanguageModel
        Adapters (:func:`infolens.load_model`) sharing the tokenizer and vocabulary
        (checked: vocabulary size, byte level, BOS/EOS ids, the token ids of the prompts
        and of a probe text).
    prompts : str or sequence of str
        Tokenised by the policy, without special tokens (a BOS token first if the policy
        has one, as :func:`infolens.generation.generate` does).
    samples : int
        Completions per prompt, ``>= 1`` (use ``>= 2`` for standard errors and stds).
    max_new_tokens : int
        Tokens per completion at most, ``>= 1``. A completion ends earlier at the
        model's EOS token (kept and scored) or when the context is full.
    seed : int
        Seeds the samples (:func:`infolens.generation.generate`).
    base : float, optional
        ``2`` for bits; default nats.
    order, min_tokens_to_keep, **sampling
        The sampling chain (``temperature``, ``top_k``, ``top_p``, ...: see
        :func:`infolens.sampling.apply`), used both to draw the tokens and to define
        :math:`\pi_t`; the reference is taken at the same ``temperature`` and is never
        truncated.

    Returns
    -------
    KLEstimatorReport

    Raises
    ------
    InputError
        A bad parameter (naming it), models that do not share a vocabulary, or a prompt
        plus completion longer than a model's context.

    Notes
    -----
    Per token: pooled over all tokens of all samples; per sequence: over samples (see the
    module docstring for each statistic). :math:`E_\pi[k1_t \mid x_{<t}] =
    E_\pi[k3_t \mid x_{<t}] = \mathrm{KL}_t` without truncation, so k1 and k3 have bias 0
    up to sampling noise, while k2's bias is :math:`E[k2_t] - \mathrm{KL}_t` (second
    order in :math:`\log r`). Truncation (``top_k``, ``top_p``...) puts zeros in
    :math:`\pi_t` only, so the KL stays finite, but then :math:`E_\pi[r_t] =
    \pi_{ref,t}(S_t) < 1` and k3 is biased low by the reference's mass on the removed
    tokens (``ref_mass_outside``); k1 stays unbiased. A reference that gives 0 to a token
    the policy can sample makes the KL infinite.

    Costs: generation as :func:`~infolens.generation.generate`, then one teacher-forced
    pass of each model over every sample, in blocks of about 64 MB of logits.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> m = load_model("ngram")
    >>> r = kl_estimator_report(m, m, "abcabc", samples=2, max_new_tokens=4)
    >>> r.exact.per_token.mean, r.estimators["k1"].per_token.rmse
    (0.0, 0.0)
    """
    from infolens.generation import generate

    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise InputError("prompts: expected at least one prompt, got none")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InputError(f"samples: expected an integer >= 1, got {samples!r}")
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise InputError(f"max_new_tokens: expected an integer >= 1, got {max_new_tokens!r}")
    if base is None or base == math.e:
        scale, unit = 1.0, "nats"
    elif base == 2:
        scale, unit = 1.0 / math.log(2), "bits"
    else:
        raise InputError(f"base: expected 2 (bits) or None (nats), got {base!r}")
    sampling = {k: v for k, v in sampling.items() if v is not None}
    if "greedy" in sampling or "stop" in sampling:
        raise InputError("greedy, stop: not supported (the tokens must be sampled from pi)")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise InputError(f"prompts[{i}]: expected a str, got {type(p).__name__}")
    _check_same_vocabulary(policy, ref, prompts)
    t_ref = float(sampling.get("temperature") or 1.0)
    try:
        drawn = generate(policy, prompts, n=samples, max_new_tokens=max_new_tokens, seed=seed,
                         order=order, min_tokens_to_keep=min_tokens_to_keep, **sampling)  # fmt: skip
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc).splitlines()[0]) from None
    warp = {"order": order, "min_tokens_to_keep": min_tokens_to_keep, **sampling}
    bos = policy.bos_id is not None
    kl_parts, lp_parts, lq_parts, out_parts = [], [], [], []
    gap = 0.0
    for i, prompt in enumerate(prompts):
        mine = [s for s in drawn if s.prompt_index == i]
        ids = np.asarray(policy.tokenize(prompt).ids, dtype=np.int64)
        prefix = np.concatenate([[policy.bos_id], ids]).astype(np.int64) if bos else ids
        kl, lp, lq, outside = _score(policy, ref, prefix, [s.token_ids for s in mine], warp, t_ref)
        drawn_lp = np.concatenate([s.logprob_sampling for s in mine]) if mine else np.zeros(0)
        if len(lp):
            if not np.all(np.isfinite(lp)):
                raise InputError(f"{policy.name}: a sampled token has probability 0 when the "
                                 f"completion is scored again (the decoder and the scoring "
                                 f"disagree beyond rounding)")  # fmt: skip
            gap = max(gap, float(np.max(np.abs(lp - drawn_lp))))
        kl_parts.append(kl)
        lp_parts.append(lp)
        lq_parts.append(lq)
        out_parts.append(outside)
    kl = np.concatenate(kl_parts)
    ref_outside = np.concatenate(out_parts)
    lp, lq = np.concatenate(lp_parts), np.concatenate(lq_parts)
    token_k = {
        name: np.asarray(kl_estimate(lp, lq, name), dtype=np.float64) * scale for name in ESTIMATORS
    }
    exact = kl * scale
    lengths = np.array([len(s.token_ids) for s in drawn], dtype=np.int64)
    m = len(drawn)
    seq = np.repeat(np.arange(m), lengths)
    pos = np.concatenate([np.arange(n) for n in lengths]) if m else np.zeros(0, np.int64)
    seq_exact = np.bincount(seq, exact, minlength=m)
    seq_k = {k: np.bincount(seq, v, minlength=m) for k, v in token_k.items()}
    exact_stats = EstimatorStats("exact", _stats(exact, exact, seq, m),
                                 _stats(seq_exact, seq_exact, None, m))  # fmt: skip
    est = {k: EstimatorStats(k, _stats(token_k[k], exact, seq, m), _stats(seq_k[k], seq_exact, None, m))
           for k in ESTIMATORS}  # fmt: skip
    per_position: dict[str, list[Any]] = {"position": [], "count": [], "exact_mean": []}
    for k in ESTIMATORS:
        per_position.update({f"{k}_mean": [], f"{k}_bias": [], f"{k}_error_std": []})
    for t in range(int(lengths.max()) if m else 0):
        sel = pos == t
        per_position["position"].append(t)
        per_position["count"].append(int(sel.sum()))
        per_position["exact_mean"].append(float(exact[sel].mean()))
        for k in ESTIMATORS:
            d = token_k[k][sel] - exact[sel]
            per_position[f"{k}_mean"].append(float(token_k[k][sel].mean()))
            per_position[f"{k}_bias"].append(float(d.mean()))
            per_position[f"{k}_error_std"].append(float(d.std(ddof=1)) if len(d) > 1 else None)
    sequences = [{"prompt_index": s.prompt_index, "index": s.index, "tokens": int(lengths[j]),
                  "finish_reason": s.finish_reason, "text": s.text,
                  "token_ids": [int(x) for x in s.token_ids], "exact": float(seq_exact[j]),
                  **{k: float(seq_k[k][j]) for k in ESTIMATORS}}
                 for j, s in enumerate(drawn)]  # fmt: skip
    per_prompt = []
    for i, prompt in enumerate(prompts):
        js = np.array([j for j, s in enumerate(drawn) if s.prompt_index == i], dtype=np.int64)
        se = seq_exact[js]
        n_tok = int(lengths[js].sum())
        per_prompt.append({
            "prompt": prompt, "sequences": len(js), "tokens": n_tok,
            "exact_token_mean": float(se.sum() / n_tok) if n_tok else None,
            "exact_sequence_mean": float(se.mean()),
            "exact_sequence_se": _opt(float(se.std(ddof=1)) / math.sqrt(len(js))) if len(js) > 1 else None,
        })  # fmt: skip
    return KLEstimatorReport(
        policy=policy.name, ref=ref.name, unit=unit, samples=samples,
        max_new_tokens=max_new_tokens, seed=seed,
        sampling={"order": order if isinstance(order, str) else list(order),
                  "min_tokens_to_keep": min_tokens_to_keep, **sampling},
        ref_temperature=t_ref, n_prompts=len(prompts), n_sequences=m, n_tokens=int(lengths.sum()),
        exact=exact_stats, estimators=est, per_position=per_position, sequences=sequences,
        prompts=per_prompt, max_logprob_gap=gap,
        ref_mass_outside=float(ref_outside.mean()) if len(ref_outside) else 0.0,
        token_exact=exact, token_ref_outside=ref_outside, token_k=token_k,
        token_sequence=seq, token_position=pos,
    )  # fmt: skip


# --------------------------------------------------------------------------- Schulman's table


def gaussian_estimator_table(
    mu: float, *, samples: int | None = None, seed: int = 0
) -> dict[str, tuple[float, float]]:
    r"""Schulman's Gaussian check of k1/k2/k3: ``{name: (bias/true, std/true)}``.

    Schulman's setup ("Approximating KL divergence", 2020): samples :math:`x \sim q =
    N(0, 1)`, :math:`r = p(x)/q(x)` with :math:`p = N(\mu, 1)`, true
    :math:`\mathrm{KL}[q, p] = \mu^2/2`; here :math:`\log r = \mu x - \mu^2/2`.

    Parameters
    ----------
    mu : float
        Mean of ``p``, non-zero.
    samples : int, optional
        Monte Carlo with this many samples (``numpy.random.default_rng(seed)``); default:
        exact, the moments :math:`E_q[k]` and :math:`E_q[k^2]` by numerical integration
        (``scipy.integrate.quad``).
    seed : int
        The Monte Carlo seed.

    Returns
    -------
    dict of str to (float, float)
        ``bias / true`` and ``std / true`` for ``"k1"``, ``"k2"``, ``"k3"``.

    Examples
    --------
    >>> t = gaussian_estimator_table(1.0)
    >>> [round(v, 2) for v in t["k2"]], [round(v, 2) for v in t["k3"]]
    ([0.25, 1.73], [0.0, 1.7])
    """
    mu = float(mu)
    if not math.isfinite(mu) or mu == 0:
        raise InputError(f"mu: expected a finite non-zero number, got {mu!r}")
    true = mu * mu / 2
    funcs = {
        "k1": lambda lr: -lr,
        "k2": lambda lr: lr * lr / 2,
        "k3": lambda lr: np.expm1(lr) - lr,
    }
    out: dict[str, tuple[float, float]] = {}
    if samples is not None:
        x = np.random.default_rng(seed).standard_normal(int(samples))
        lr = mu * x - true
        for k, f in funcs.items():
            v = f(lr)
            out[k] = (float((v.mean() - true) / true), float(v.std() / true))
        return out
    from scipy import integrate

    # the integrands k(x)^j exp(-x^2/2) peak near x = 0, mu and 2 mu and are below 1e-300
    # of their peak outside [-40, 40] around them: a finite range with those break points
    lo, hi = min(0.0, 2 * mu) - 40.0, max(0.0, 2 * mu) + 40.0

    def moment(f: Any, power: int) -> float:
        def g(x: float) -> float:
            return float(f(mu * x - true) ** power * math.exp(-x * x / 2) / math.sqrt(2 * math.pi))

        pts = sorted({0.0, mu, 2 * mu})
        val, _err = integrate.quad(g, lo, hi, points=pts, epsabs=1e-15, epsrel=1e-13, limit=400)
        return float(val)

    for k, f in funcs.items():
        m1, m2 = moment(f, 1), moment(f, 2)
        out[k] = ((m1 - true) / true, math.sqrt(max(m2 - m1 * m1, 0.0)) / true)
    return out
