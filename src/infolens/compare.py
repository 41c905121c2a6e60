r"""Compare two models token by token: KL divergence both ways, agreement, perplexity ratio.

The per-token statistics come from the fused kernel (:func:`infolens._kernels.fused_rows`)
on the two models' logits for the same positions, which
:func:`infolens.pipeline.stream_documents` streams in lockstep (the engine shared with
``infolens score``); :class:`CompareAccumulator` gathers them and
:meth:`CompareAccumulator.compute` derives the summary. Everything is in nats unless a key
says otherwise.

Per scored token ``t`` with base distribution ``b`` and model distribution ``m``::

    kl_base_model = D(b || m) = sum_i b_i log(b_i / m_i)      (llama.cpp's KLD)
    kl_model_base = D(m || b)                                (exllamav2's direction)
    js            = JS(b, m)
    nll_base      = -log b(t),   nll_model = -log m(t)
    delta_p       = m(t) - b(t)                              (llama.cpp's Δp, as a probability)
    same_top1     = [argmax b == argmax m]
    topk_overlap  = |top-k(b) ∩ top-k(m)| / k                 (k = 5, 10)

Summary (llama.cpp ``--kl-divergence`` counterparts in brackets)::

    ppl_model = exp(mean nll_model)                           [Mean PPL(Q)]
    ppl_base  = exp(mean nll_base)                            [Mean PPL(base)]
    ln_ppl_ratio = mean(nll_model - nll_base)                 [Mean ln(PPL(Q)/PPL(base))]
        ± sqrt(var(nll_model - nll_base) / (n - 1))
          = sqrt(s_Q^2 + s_b^2 - 2 cov) per token, llama.cpp's formula
    ppl_ratio = exp(ln_ppl_ratio) ± ppl_ratio * se(ln_ppl_ratio)   [Mean PPL(Q)/PPL(base)]
    ppl_model_se = ppl_model * sd(nll_model) / sqrt(n - 1)   [the ± of Mean PPL(Q)]
    ppl_diff  = ppl_model - ppl_base                          [PPL difference]
    cor_ln_ppl = Pearson correlation of the per-token NLLs    [Cor(ln PPL(Q), ln PPL(base))]
    kl_base_model mean ± sd/sqrt(n - 1), percentiles          [KLD mean, max, 99.9 %, ... min]
    delta_p mean, RMS, percentiles                            [Δp mean, RMS Δp, ...]
    same_top1 = p ± sqrt(p (1 - p) / (n - 1))                 [Same top p]

Percentiles interpolate linearly at ``f * (n - 1)`` (numpy's default, as llama.cpp). The
per-token formulas assume independent tokens; neighbouring tokens are correlated, so every
mean also gets a batch-means interval (blocks of :data:`BLOCK` consecutive tokens within a
document): ``mean ± 1.96 * sd(block means) / sqrt(n_blocks)``.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from infolens import _backend as B
from infolens._kernels import fused_rows
from infolens.errors import InputError

if TYPE_CHECKING:  # imported where used: 'import infolens' (compare_logits) stays light
    from infolens.basefile import BaseFile
    from infolens.models.base import LanguageModel, Window
    from infolens.pipeline import Chunk, Piece, RowSource, StreamedDocument
    from infolens.score import Document, ScoreSettings

__all__ = [
    "BLOCK",
    "PERCENTILES",
    "PROBE_TEXT",
    "CompareAccumulator",
    "CompareResult",
    "CompareRows",
    "check_same_vocabulary",
    "compare_documents",
    "compare_logits",
    "resolve_compare_settings",
    "save_base_distributions",
    "token_stats",
]

#: Percentiles reported for KL(base‖model) and Δp, as llama.cpp prints them.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("max", 100.0),
    ("99.9", 99.9),
    ("99", 99.0),
    ("95", 95.0),
    ("90", 90.0),
    ("75", 75.0),
    ("50", 50.0),
    ("25", 25.0),
    ("10", 10.0),
    ("5", 5.0),
    ("1", 1.0),
    ("0.1", 0.1),
    ("min", 0.0),
)
_KL_KEYS = ("max", "99.9", "99", "95", "90", "50", "10", "5", "1", "0.1", "min")
#: Tokens per block for the batch-means intervals.
BLOCK = 64
_Z95 = 1.959963984540054


def _topk_ids(x: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of each row, largest first (so ``[:, :j]`` is
    the top ``j``; ties in any order).

    numpy input uses ``torch.topk`` on a zero-copy view when torch is already imported
    (``[n, k]`` extra memory; torch is never imported for numpy input); otherwise
    ``argpartition`` a few rows at a time, since it returns ``[rows, V]`` int64 indices.
    """
    k = min(k, x.shape[1])
    if B.is_torch(x):
        return x.topk(k, dim=1).indices.cpu().numpy()
    torch = sys.modules.get("torch")
    if (
        torch is not None
        and x.dtype in (np.float32, np.float64)
        and x.flags.c_contiguous
        and x.flags.writeable
    ):
        return torch.from_numpy(x).topk(k, dim=1).indices.numpy()
    n, v = x.shape
    step = max(1, (16 * 2**20) // (8 * max(1, v)))
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, step):
        rows = x[lo : lo + step]
        idx = np.argpartition(rows, -k, axis=1)[:, -k:]
        vals = np.take_along_axis(rows, idx, axis=1)
        out[lo : lo + step] = np.take_along_axis(idx, np.argsort(-vals, axis=1), axis=1)
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of shared ids between the rows of two ``[n, k]`` id arrays."""
    k = a.shape[1]
    if k == 0:
        return np.zeros(a.shape[0])
    eq = (a[:, :, None] == b[:, None, :]).any(axis=2)
    return eq.sum(axis=1) / k


def token_stats(base_logits: Any, model_logits: Any, targets: Any) -> dict[str, np.ndarray]:
    """Per-token comparison statistics for one chunk of positions.

    Parameters
    ----------
    base_logits, model_logits : array of shape ``[n, V]``
        Logits or log-probabilities of the base and the compared model (numpy or torch).
    targets : integer array of shape ``[n]``
        The observed tokens.

    Returns
    -------
    dict of numpy.ndarray
        float64 arrays of shape ``[n]`` (nats): ``kl_base_model``, ``kl_model_base``, ``js``,
        ``nll_base``, ``nll_model``, ``entropy_base``, ``entropy_model``, ``delta_p``;
        ``same_top1`` (bool), ``top5_overlap``, ``top10_overlap`` (fractions).

    Examples
    --------
    >>> base = np.log([[0.5, 0.25, 0.25]])
    >>> model = np.log([[0.25, 0.5, 0.25]])
    >>> st = token_stats(base, model, np.array([0]))
    >>> round(float(st["kl_base_model"][0]), 6), float(st["delta_p"][0]), bool(st["same_top1"][0])
    (0.173287, -0.25, False)
    """
    if B.is_torch(base_logits) or B.is_torch(model_logits):
        import torch

        dev = base_logits.device if B.is_torch(base_logits) else model_logits.device
        base_logits = B.as_array(base_logits, "base_logits", like_torch=torch.empty(0, device=dev))
        model_logits = B.as_array(model_logits, "model_logits", like_torch=base_logits)
        t = torch.as_tensor(
            np.asarray(targets) if not B.is_torch(targets) else targets, device=dev
        ).long()
        with torch.no_grad():
            st = fused_rows(
                base_logits, model_logits, t, js=True, names=("base_logits", "model_logits")
            )
        d = {k: v.detach().cpu().numpy() for k, v in st.as_dict().items()}
    else:
        base_logits = B.as_array(base_logits, "base_logits")
        model_logits = B.as_array(model_logits, "model_logits")
        t_np = np.asarray(targets).astype(np.int64)
        d = fused_rows(
            base_logits, model_logits, t_np, js=True, names=("base_logits", "model_logits")
        ).as_dict()
    out = {
        "kl_base_model": d["kl_pq"],
        "kl_model_base": d["kl_qp"],
        "js": d["js"],
        "nll_base": d["surprisal_p"],
        "nll_model": d["surprisal_q"],
        "entropy_base": d["entropy_p"],
        "entropy_model": d["entropy_q"],
        "delta_p": np.exp(-d["surprisal_q"]) - np.exp(-d["surprisal_p"]),
        "same_top1": np.asarray(d["argmax_p"] == d["argmax_q"]),
    }
    top_b, top_m = _topk_ids(base_logits, 10), _topk_ids(model_logits, 10)  # sorted
    for k in (5, 10):
        out[f"top{k}_overlap"] = _overlap(top_b[:, :k], top_m[:, :k])
    return out


# --------------------------------------------------------------------------- accumulation


@dataclass
class _Series:
    """Per-token values kept for exact percentiles (8 bytes per token)."""

    chunks: list[np.ndarray] = field(default_factory=list)

    def add(self, x: np.ndarray) -> None:
        self.chunks.append(np.asarray(x, dtype=np.float64))

    def values(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0)


_MEAN_KEYS = (
    "kl_base_model",
    "kl_model_base",
    "js",
    "nll_base",
    "nll_model",
    "delta_p",
    "same_top1",
    "top5_overlap",
    "top10_overlap",
)


@dataclass
class CompareAccumulator:
    """Gathers per-token comparison statistics; :meth:`compute` gives the summary.

    ``update`` takes the dict of :func:`token_stats` for consecutive tokens of one
    document (call :meth:`end_document` between documents so batch-means blocks never span
    two documents). ``merge`` combines accumulators of disjoint shards.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = CompareAccumulator(), CompareAccumulator()
    >>> for acc in (a, b):
    ...     x = rng.normal(size=(50, 8))
    ...     acc.update(token_stats(x, x + 0.1 * rng.normal(size=x.shape), np.zeros(50, int)))
    >>> s = a.merge(b).compute()
    >>> s["tokens"], 0 < s["kl_base_model"] < 0.05
    (100, True)
    """

    series: dict[str, _Series] = field(default_factory=lambda: {k: _Series() for k in _MEAN_KEYS})
    # batch means: block sums of completed blocks, and the open block of this document
    blocks: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in _MEAN_KEYS})
    _open: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _MEAN_KEYS})
    _open_n: int = 0

    def update(self, stats: dict[str, np.ndarray]) -> None:
        n = len(stats["kl_base_model"])
        if n == 0:
            return
        for k in _MEAN_KEYS:
            v = np.asarray(stats[k], dtype=np.float64)
            self.series[k].add(v)
            self._open[k].append(v)
        self._open_n += n
        if self._open_n >= BLOCK:
            self._close_blocks(final=False)

    def _close_blocks(self, final: bool) -> None:
        cat = {k: np.concatenate(self._open[k]) for k in _MEAN_KEYS}
        n_full = (self._open_n // BLOCK) * BLOCK
        for k in _MEAN_KEYS:
            full = cat[k][:n_full].reshape(-1, BLOCK).mean(axis=1)
            self.blocks[k].extend(full.tolist())
            rest = cat[k][n_full:]
            self._open[k] = [rest] if rest.size else []
        self._open_n -= n_full
        if final:  # a document's short tail is dropped from the block means only
            self._open = {k: [] for k in _MEAN_KEYS}
            self._open_n = 0

    def end_document(self) -> None:
        """Close the current document: the next tokens start a new block."""
        if self._open_n:
            self._close_blocks(final=True)

    def merge(self, other: CompareAccumulator) -> CompareAccumulator:
        """Combine with another accumulator over a disjoint set of documents."""
        self.end_document()
        other.end_document()
        for k in _MEAN_KEYS:
            self.series[k].chunks.extend(other.series[k].chunks)
            self.blocks[k].extend(other.blocks[k])
        return self

    def compute(self) -> dict[str, Any]:
        """The summary (see the module docstring for every formula)."""
        self.end_document()
        v = {k: self.series[k].values() for k in _MEAN_KEYS}
        return summarize(v, {k: np.asarray(self.blocks[k]) for k in _MEAN_KEYS})


def _percentiles(x: np.ndarray, keys: tuple[str, ...]) -> dict[str, float | None]:
    lookup = dict(PERCENTILES)
    if x.size == 0:
        return {k: None for k in keys}
    qs = np.percentile(x, [lookup[k] for k in keys])  # linear interpolation at f*(n-1)
    return {k: float(q) for k, q in zip(keys, qs)}


def _mean_se(x: np.ndarray) -> tuple[float | None, float | None]:
    n = x.size
    if n == 0:
        return None, None
    mean = float(np.mean(x))
    if n < 2:
        return mean, None
    return mean, float(np.std(x) / math.sqrt(n - 1))  # llama.cpp: sqrt(var / (n - 1))


def _batch_means(blocks: np.ndarray) -> dict[str, float | None]:
    m = blocks.size
    if m < 2:
        return {"blocks": int(m), "low": None, "high": None, "se": None}
    mean = float(blocks.mean())
    se = float(blocks.std(ddof=1) / math.sqrt(m))
    return {"blocks": int(m), "se": se, "low": mean - _Z95 * se, "high": mean + _Z95 * se}


def summarize(v: dict[str, np.ndarray], blocks: dict[str, np.ndarray]) -> dict[str, Any]:
    """Summary statistics from full per-token series ``v`` and block means ``blocks``.

    Parameters
    ----------
    v : dict of numpy.ndarray
        Per-token values of every key of :func:`token_stats` the summary uses.
    blocks : dict of numpy.ndarray
        Batch means of the same keys (one value per block).

    Returns
    -------
    dict
        The summary (see the module docstring); only ``tokens`` when there are none.

    Examples
    --------
    >>> x = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    >>> st = token_stats(x, x, np.array([0, 1]))
    >>> s = summarize(st, {k: np.zeros(0) for k in st})
    >>> s["tokens"], s["ppl_ratio"], round(s["ppl_base"], 4)
    (2, 1.0, 4.4721)
    """
    n = int(v["kl_base_model"].size)
    out: dict[str, Any] = {"tokens": n}
    if n == 0:
        return out
    nb, nm = v["nll_base"], v["nll_model"]
    d = nm - nb
    mean_b, mean_m = float(nb.mean()), float(nm.mean())
    out["ppl_base"] = math.exp(mean_b)
    out["ppl_model"] = math.exp(mean_m)
    ln_ratio, ln_ratio_se = _mean_se(d)
    out["ln_ppl_ratio"] = ln_ratio
    out["ln_ppl_ratio_se"] = ln_ratio_se
    out["ppl_ratio"] = math.exp(ln_ratio) if ln_ratio is not None else None
    # llama.cpp's "± " on PPL(Q), PPL(base) and the ratio: exp(mean) * se(mean) (delta method)
    for name, x in (("ppl_base", nb), ("ppl_model", nm)):
        se = _mean_se(x)[1]
        out[f"{name}_se"] = None if se is None else out[name] * se
    out["ppl_ratio_se"] = (
        None if ln_ratio_se is None or ln_ratio is None else math.exp(ln_ratio) * ln_ratio_se
    )
    out["ppl_diff"] = out["ppl_model"] - out["ppl_base"]
    if n > 1 and nb.std() > 0 and nm.std() > 0:
        out["cor_ln_ppl"] = float(np.corrcoef(nb, nm)[0, 1])
    else:
        out["cor_ln_ppl"] = None
    out["ln_ppl_ratio_batch_means"] = _batch_means(blocks["nll_model"] - blocks["nll_base"])

    for key in ("kl_base_model", "kl_model_base", "js"):
        mean, se = _mean_se(v[key])
        out[key] = mean
        out[f"{key}_se"] = se
        out[f"{key}_batch_means"] = _batch_means(blocks[key])
    out["kl_percentiles"] = _percentiles(v["kl_base_model"], _KL_KEYS)
    dp = v["delta_p"]
    out["delta_p"] = {
        "mean": float(dp.mean()),
        "se": _mean_se(dp)[1],
        "rms": float(np.sqrt(np.mean(dp**2))),
        "percentiles": _percentiles(dp, tuple(k for k, _ in PERCENTILES)),
        "batch_means": _batch_means(blocks["delta_p"]),
    }
    p = float(v["same_top1"].mean())
    out["same_top1"] = p
    out["same_top1_se"] = math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else None
    out["same_top1_batch_means"] = _batch_means(blocks["same_top1"])
    out["top5_overlap"] = float(v["top5_overlap"].mean())
    out["top10_overlap"] = float(v["top10_overlap"].mean())
    return out


def compare_logits(
    base_logits: Any, model_logits: Any, targets: Any, *, axis: int = -1
) -> dict[str, Any]:
    """Compare two models' logits for the same positions: the ``infolens compare`` summary.

    Parameters
    ----------
    base_logits, model_logits : array of shape ``[..., V]``
        Logits (or log-probabilities) of the reference model and the compared model, numpy
        or torch; every leading position is one token.
    targets : integer array of shape ``[...]``
        The observed next tokens.
    axis : int
        The vocabulary axis.

    Returns
    -------
    dict
        The summary of the module docstring (``tokens``, ``ppl_model``, ``ppl_base``,
        ``ln_ppl_ratio``, ``kl_base_model``, ``kl_model_base``, ``kl_percentiles``,
        ``delta_p``, ``same_top1``, ...), KL in nats. All positions form one block
        sequence for the batch-means intervals.

    Examples
    --------
    >>> import numpy as np
    >>> from infolens import compare_logits
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(100, 8))
    >>> targets = rng.integers(0, 8, size=100)
    >>> s = compare_logits(logits, logits, targets)
    >>> s["kl_base_model"], s["same_top1"], s["ppl_ratio"]
    (0.0, 1.0, 1.0)
    """
    base_logits = B.moveaxis(B.as_array(base_logits, "base_logits"), axis, -1)
    model_logits = B.moveaxis(B.as_array(model_logits, "model_logits"), axis, -1)
    v = base_logits.shape[-1]
    if model_logits.shape[-1] != v:
        raise ValueError(
            f"model_logits: expected the vocabulary size of base_logits ({v}), got {model_logits.shape[-1]}"
        )
    base_logits = base_logits.reshape(-1, v)
    model_logits = model_logits.reshape(-1, v)
    t = targets.reshape(-1) if B.is_torch(targets) else np.asarray(targets).reshape(-1)
    acc = CompareAccumulator()
    step = 4096
    for lo in range(0, base_logits.shape[0], step):
        acc.update(
            token_stats(
                base_logits[lo : lo + step], model_logits[lo : lo + step], t[lo : lo + step]
            )
        )
    return acc.compute()


# --------------------------------------------------------------------------- documents

#: Text both models tokenise up front: equal ids (and vocabulary sizes) or no comparison.
PROBE_TEXT = (
    "The quick brown fox jumps over the lazy dog. 0123456789 +-*/=<>()[]{} "
    "naïve café, Größe, 日本語, ✓ — “quotes”\n\tdef f(x):\n\t\treturn x ** 2  # comment\n"
)


def probe_ids(model: LanguageModel) -> list[int]:
    """Token ids of :data:`PROBE_TEXT` under ``model``'s tokenizer."""
    return [int(i) for i in np.asarray(model.tokenize(PROBE_TEXT).ids).tolist()]


def _vocab_error(
    model: LanguageModel, what: str, vocab: int, ids: Sequence[int], bos_id: int | None, bos: str
) -> str | None:
    """Why ``model`` cannot be compared with ``what`` (vocabulary, probe ids, BOS), or None."""
    if model.vocab_size != vocab:
        return (
            f"the models must share a vocabulary: model {model.name} has {model.vocab_size:,} "
            f"tokens, {what} has {vocab:,}"
        )
    mine = probe_ids(model)
    if mine != list(ids):
        j = next((i for i, (a, b) in enumerate(zip(mine, ids)) if a != b), min(len(mine), len(ids)))
        return (
            f"the models must share a tokenizer: the probe text {PROBE_TEXT[:24]!r}... tokenises "
            f"differently (token {j}: {mine[j : j + 4]} with model {model.name}, {list(ids[j : j + 4])} "
            f"with {what}; {len(mine)} vs {len(ids)} tokens)"
        )
    if bos != "none" and model.bos_id != bos_id:
        return (
            f"--bos {bos}: the models use different BOS tokens (model {model.name}: "
            f"{model.bos_id}, {what}: {bos_id}); use --bos none"
        )
    return None


def check_same_vocabulary(model: LanguageModel, base: LanguageModel, bos: str = "none") -> None:
    """Refuse to compare models whose vocabularies or tokenizers differ.

    Checks the vocabulary sizes, the token ids of :data:`PROBE_TEXT` and (unless
    ``bos == "none"``) the BOS token id.

    Parameters
    ----------
    model, base : LanguageModel
        The two models.
    bos : {"first", "every", "none"}
        The BOS policy (the BOS ids must match unless it is ``none``).

    Raises
    ------
    InputError
        One line saying what differs.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> check_same_vocabulary(load_model("ngram:order=2"), load_model("ngram"))  # both bytes
    """
    msg = _vocab_error(
        model, f"base {base.name}", base.vocab_size, probe_ids(base), base.bos_id, bos
    )
    if msg is not None:
        raise InputError(msg)


def resolve_compare_settings(
    model: LanguageModel,
    base: LanguageModel | None = None,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
) -> ScoreSettings:
    """Settings valid for both models: the defaults of :func:`infolens.score.resolve_settings`
    with ``L`` the smaller of the two models' defaults and ``bos="first"`` only if both
    models have a BOS token.

    Raises
    ------
    InputError
        A setting one of the models cannot use (naming it).
    """
    from infolens.score import resolve_settings

    models = [model] if base is None else [model, base]
    if bos is None:
        bos = "first" if all(m.bos_id is not None for m in models) else "none"
    if max_length is None:
        defaults = [resolve_settings(m, None, None, bos).max_length for m in models]
        known = [d for d in defaults if d is not None]
        max_length = min(known) if known else None
    settings = [resolve_settings(m, max_length, stride, bos) for m in models]
    return settings[0]


def _ids_crc(ids: np.ndarray) -> int:
    """CRC-32 of a document's token ids (as little-endian int64): detects changed documents.

    Converted a million ids at a time: byte-level ids come as ``uint8``.
    """
    crc = 0
    for lo in range(0, int(ids.shape[0]), 1 << 20):
        crc = zlib.crc32(np.ascontiguousarray(ids[lo : lo + (1 << 20)], dtype="<i8").data, crc)
    return crc


# --------------------------------------------------------------------------- results


#: Per-document means: those of the summary but the top-k overlaps.
_DOC_KEYS = tuple(k for k in _MEAN_KEYS if not k.startswith("top"))


@dataclass
class _DocSums:
    """Per-document sums (a few floats per document, whatever its length)."""

    tokens: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_DOC_KEYS, 0.0))

    def add(self, st: dict[str, np.ndarray]) -> None:
        self.tokens += len(st["kl_base_model"])
        for k in _DOC_KEYS:
            self.sums[k] += float(np.sum(np.asarray(st[k], dtype=np.float64)))

    def compute(self) -> dict[str, Any]:
        n = self.tokens
        if n == 0:
            return {"tokens": 0}
        m = {k: v / n for k, v in self.sums.items()}
        return {
            "tokens": n,
            "kl_base_model": m["kl_base_model"],
            "kl_model_base": m["kl_model_base"],
            "js": m["js"],
            "ppl_model": math.exp(m["nll_model"]),
            "ppl_base": math.exp(m["nll_base"]),
            "ln_ppl_ratio": m["nll_model"] - m["nll_base"],
            "same_top1": m["same_top1"],
            "delta_p": m["delta_p"],
        }


@dataclass
class CompareRows:
    """Consecutive predictions of one document, for per-token consumers (``on_rows``).

    Attributes
    ----------
    document : int
        Index of the document in input order; ``name`` its name.
    positions : numpy.ndarray
        Token indices ``j`` (0-based) of the predicted tokens.
    token_ids : numpy.ndarray
        The predicted (observed) tokens' ids.
    offsets : numpy.ndarray
        ``[k, 2]`` byte spans of those tokens in the UTF-8 document.
    context : numpy.ndarray
        Document tokens before each prediction in its window (``j - window.lo``).
    stats : dict of numpy.ndarray
        :func:`token_stats` of these rows (nats).
    model_logits : array
        The compared model's rows (numpy or torch).
    base_logits : array or None
        The base model's rows; ``None`` against a saved base file.
    base_records : numpy.ndarray or None
        The saved base records of these rows (top-k ids and log-probabilities), or ``None``.
    """

    document: int
    name: str
    positions: np.ndarray
    token_ids: np.ndarray
    offsets: np.ndarray
    context: np.ndarray
    stats: dict[str, np.ndarray]
    model_logits: Any
    base_logits: Any = None
    base_records: np.ndarray | None = None


@dataclass
class CompareResult:
    """The outcome of :func:`compare_documents`: plain data, ready to format.

    Attributes
    ----------
    model, base : str
        The compared model's name and the base model's (or the base file's model name).
    settings : ScoreSettings
        ``max_length``, ``stride``, ``bos`` as used.
    accumulator : CompareAccumulator
        The corpus state (per-token series; mergeable).
    documents : list of dict
        Per document: ``name`` and the :class:`_DocSums` numbers (means over its tokens).
    base_file : str or None
        The saved base file, if the base came from one.
    base_top_k : int or None
        Its ``k``.
    """

    model: str
    base: str
    settings: ScoreSettings
    accumulator: CompareAccumulator
    documents: list[dict[str, Any]] = field(default_factory=list)
    base_file: str | None = None
    base_top_k: int | None = None

    @property
    def kl_is_lower_bound(self) -> bool:
        """True against a saved base: KL and JS on {top-k, rest} bound the true values below."""
        return self.base_file is not None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: the summary of :meth:`CompareAccumulator.compute` at top
        level, then the settings, ``kl_is_lower_bound`` and ``documents``."""
        return {
            **self.accumulator.compute(),
            "documents_count": len(self.documents),
            "model": self.model,
            "base": self.base,
            "max_length": self.settings.max_length,
            "stride": self.settings.stride,
            "bos": self.settings.bos,
            "base_file": self.base_file,
            "base_top_k": self.base_top_k,
            "kl_is_lower_bound": self.kl_is_lower_bound,
            "documents": self.documents,
        }


def _rows_per_chunk(vocab_size: int, max_rows: int | None) -> int:
    from infolens.pipeline import default_max_rows

    # two models' chunks live together: half the scoring chunk each (~32 MiB of float32)
    return max_rows if max_rows is not None else max(1, default_max_rows(vocab_size) // 2)


def compare_documents(
    model: LanguageModel,
    base: LanguageModel | BaseFile,
    documents: Iterable[Document],
    *,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    max_rows: int | None = None,
    window_batch: int | None = None,
    on_rows: Callable[[CompareRows], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> CompareResult:
    r"""Compare ``model`` with ``base`` token by token on ``documents``.

    Both models score the same windows (the scoring definition of ``docs/scoring.md``,
    :func:`infolens.windows.plan_windows`) in lockstep
    (:func:`infolens.pipeline.stream_documents`); :func:`token_stats` turns each pair
    of row chunks into per-token ``KL(base‖model)``, ``KL(model‖base)``, JS, both
    surprisals and entropies, ``Δp = p_model(t) − p_base(t)``, top-1 agreement and top-5/10
    overlap (nats). Peak memory is a chunk of ``max_rows`` positions per model, never
    context × vocabulary.

    Parameters
    ----------
    model : LanguageModel
        The compared model ("Q" in llama.cpp).
    base : LanguageModel or BaseFile
        The reference model, or its saved distributions
        (:func:`save_base_distributions`; then KL and JS are lower bounds, computed on
        {base top-k, rest}, and the documents and settings must be those of the file).
    documents : iterable of Document
        Read lazily.
    max_length, stride, bos
        ``L``, ``S`` and the BOS policy (``None``: :func:`resolve_compare_settings`, or the
        base file's).
    max_rows : int, optional
        Rows per chunk of each model (default: about 32 MiB of float32).
    window_batch : int, optional
        Windows per adapter call (default 4 x the smaller ``batch_size``).
    on_rows : callable, optional
        Called with :class:`CompareRows` for every run of consecutive predictions.
    progress : callable, optional
        Called with the number of predictions just compared.

    Returns
    -------
    CompareResult
        ``to_dict()`` gives the summary (llama.cpp ``--kl-divergence`` counterparts, see
        the module docstring), the settings and per-document numbers.

    Raises
    ------
    InputError
        Vocabularies or tokenizers differ, or (base file) the documents or settings differ
        from those the file was written with.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> from infolens.score import Document
    >>> docs = [Document("a", "the cat sat on the mat. " * 8)]
    >>> r = compare_documents(load_model("ngram:order=1"), load_model("ngram"), docs)
    >>> d = r.to_dict()
    >>> d["tokens"], d["ppl_model"] > d["ppl_base"], d["kl_base_model"] > 0
    (192, True, True)
    """
    from infolens.basefile import BaseFile, coarse_token_stats
    from infolens.pipeline import default_window_batch, stream_documents
    from infolens.score import resolve_settings

    is_file = isinstance(base, BaseFile)
    rows = _rows_per_chunk(model.vocab_size, max_rows)
    if is_file:
        assert isinstance(base, BaseFile)
        h = base.header
        where = f"--base-file {base.path}"
        given = {"max_length": max_length, "stride": stride, "bos": bos}
        for key, v in given.items():
            if v is not None and v != h.get(key):
                raise InputError(
                    f"--{key.replace('_', '-')} {v}: {where} was written with "
                    f"{key.replace('_', '-')} {h.get(key)}; use the same settings"
                )
        settings = resolve_settings(model, h.get("max_length"), h.get("stride"), h.get("bos"))
        msg = _vocab_error(
            model, f"the base file ({h.get('model')})", int(h["vocab_size"]),
            h.get("probe_ids", []), h.get("bos_id"), settings.bos,
        )  # fmt: skip
        if msg is not None:
            raise InputError(f"{where}: {msg}")
        predicts_first = bool(model.predicts_first) and bool(h.get("predicts_first"))
        base_name = str(h.get("model"))
        file_docs = base.documents
        starts = np.concatenate([[0], np.cumsum([int(d["tokens"]) for d in file_docs])])
        cursor = [0]

        def base_source(windows: list[Window]) -> Iterator[Any]:
            total = sum(w.n_predictions for w in windows)
            lo = cursor[0]
            cursor[0] += total
            for r0 in range(lo, lo + total, rows):
                yield base.read(r0, min(r0 + rows, lo + total))

        sources: list[RowSource] = [base_source]
    else:
        assert not isinstance(base, BaseFile)
        settings = resolve_compare_settings(model, base, max_length, stride, bos)
        check_same_vocabulary(model, base, settings.bos)
        predicts_first = bool(model.predicts_first) and bool(base.predicts_first)
        base_name = base.name
        bm: LanguageModel = base
        sources = [lambda ws: bm.logits(ws, max_rows=rows)]

    def model_source(windows: list[Window]) -> Iterator[Any]:
        return iter(model.logits(windows, max_rows=rows))

    acc = CompareAccumulator()
    per_doc: dict[int, _DocSums] = {}
    results: list[dict[str, Any]] = []

    def on_doc_start(doc: StreamedDocument) -> None:
        per_doc[doc.index] = _DocSums()
        results.append({"name": doc.name})
        if is_file:
            if doc.index >= len(file_docs):
                raise InputError(
                    f"{where}: more documents than the file's {len(file_docs)}; pass the "
                    f"documents given to --save-base"
                )
            fd = file_docs[doc.index]
            crc = _ids_crc(np.asarray(doc.tokens.ids))
            if fd["name"] != doc.name or fd.get("crc32", crc) != crc:
                what = "is" if fd["name"] != doc.name else "has other tokens than"
                raise InputError(
                    f"{where}: document {doc.index + 1} {doc.name!r} {what} the file's "
                    f"{fd['name']!r}; pass the documents given to --save-base, in the same order"
                )

    last_doc = [-1]

    def on_piece(piece: Piece) -> None:
        if piece.doc.index != last_doc[0]:  # batch-means blocks never span two documents
            acc.end_document()
            last_doc[0] = piece.doc.index
        model_rows, base_rows = piece.rows
        rec = None
        if is_file:
            rec = base_rows
            if not np.array_equal(rec["target"], piece.targets):
                raise InputError(
                    f"{where}: the tokens of {piece.doc.name!r} differ from the file's "
                    f"(position {int(piece.positions[0])}); pass the documents given to --save-base"
                )
            st = coarse_token_stats(rec, model_rows)
            base_rows = None
        else:
            st = token_stats(base_rows, model_rows, piece.targets)
        acc.update(st)
        per_doc[piece.doc.index].add(st)
        if on_rows is not None:
            p = piece.positions
            on_rows(
                CompareRows(
                    document=piece.doc.index,
                    name=piece.doc.name,
                    positions=p,
                    token_ids=piece.targets,
                    offsets=piece.doc.tokens.spans(p),
                    context=piece.context,
                    stats=st,
                    model_logits=model_rows,
                    base_logits=base_rows,
                    base_records=rec,
                )
            )

    def on_chunk(chunk: Chunk) -> None:
        for piece in chunk.pieces():
            on_piece(piece)

    def on_doc_end(doc: StreamedDocument) -> None:
        sums = per_doc.pop(doc.index)
        if is_file:
            want = int(starts[doc.index + 1] - starts[doc.index])
            if sums.tokens != want:
                raise InputError(
                    f"{where}: document {doc.name!r} has {sums.tokens} scored tokens, the file "
                    f"{want}; pass the documents and settings given to --save-base"
                )
        results[doc.index].update(sums.compute())

    if window_batch is None:
        window_batch = default_window_batch([model] if is_file else [model, base])
    stream_documents(
        model, [model_source, *sources], (model.name, base_name), documents, settings,
        predicts_first=predicts_first, window_batch=window_batch,
        on_doc_start=on_doc_start, on_chunk=on_chunk,
        on_doc_end=on_doc_end, progress=progress,
    )  # fmt: skip
    if is_file and len(results) != len(file_docs):
        raise InputError(
            f"{where}: {len(results)} documents given, the file has {len(file_docs)}; pass the "
            f"documents given to --save-base"
        )
    return CompareResult(
        model=model.name,
        base=base_name,
        settings=settings,
        accumulator=acc,
        documents=results,
        base_file=str(base.path) if is_file else None,  # type: ignore[union-attr]
        base_top_k=base.k if is_file else None,  # type: ignore[union-attr]
    )


def save_base_distributions(
    base: LanguageModel,
    documents: Iterable[Document],
    path: str | os.PathLike[str],
    *,
    k: int = 32,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    max_rows: int | None = None,
    window_batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run only the base model and save its top-``k`` distributions (``--save-base``).

    The file (:mod:`infolens.basefile`, ``8k + 16`` bytes per scored token) records the
    model name, vocabulary size, BOS id, settings and the probe-text token ids in its
    header, and per document its name, scored-token count and a CRC-32 of its token ids,
    so that :func:`compare_documents` can check it is given the same documents, settings
    and tokenizer.

    Parameters
    ----------
    base : LanguageModel
        The reference model.
    documents : iterable of Document
        The documents (the later comparison must get the same ones, in the same order).
    path : str or Path
        The file to write (atomically).
    k : int
        Top tokens kept per position (default 32).
    max_length, stride, bos, max_rows, window_batch, progress
        As for :func:`compare_documents`; the settings are resolved for ``base`` alone.

    Returns
    -------
    dict
        ``path``, ``records`` (tokens), ``bytes`` (file size), ``bytes_per_token``, ``k``,
        the header and the documents.
    """
    from infolens.basefile import BaseFileWriter
    from infolens.pipeline import default_window_batch, stream_documents

    settings = resolve_compare_settings(base, None, max_length, stride, bos)
    header = {
        "model": base.name,
        "vocab_size": int(base.vocab_size),
        "bos_id": base.bos_id,
        "predicts_first": bool(base.predicts_first),
        "max_length": settings.max_length,
        "stride": settings.stride,
        "bos": settings.bos,
        "probe_ids": probe_ids(base),
    }
    rows = _rows_per_chunk(base.vocab_size, max_rows)
    with BaseFileWriter(path, header, k=k) as w:
        crcs: dict[int, int] = {}
        counts: dict[int, int] = {}

        def on_doc_start(doc: StreamedDocument) -> None:
            crcs[doc.index] = _ids_crc(np.asarray(doc.tokens.ids))
            counts[doc.index] = 0

        def on_chunk(chunk: Chunk) -> None:
            for piece in chunk.pieces():
                w.write(piece.rows[0], piece.targets)
                counts[piece.doc.index] += int(piece.targets.shape[0])

        def on_doc_end(doc: StreamedDocument) -> None:
            w.end_document(doc.name, tokens=counts.pop(doc.index), crc32=crcs.pop(doc.index))

        stream_documents(
            base, [lambda ws: base.logits(ws, max_rows=rows)], (base.name,), documents, settings,
            predicts_first=bool(base.predicts_first),
            window_batch=default_window_batch([base]) if window_batch is None else window_batch,
            on_doc_start=on_doc_start, on_chunk=on_chunk,
            on_doc_end=on_doc_end, progress=progress,
        )  # fmt: skip
        n, docs = w.n, list(w.documents)
    size = w.size
    return {
        "path": str(path),
        "records": n,
        "bytes": size,
        "bytes_per_token": (8 * k + 16),
        "k": k,
        **{key: header[key] for key in ("model", "vocab_size", "max_length", "stride", "bos")},
        "documents": docs,
    }
