r"""Token-by-token comparison statistics of two distributions: the numbers of ``compare``.

The per-token statistics (:func:`token_stats`) come from the fused kernel
(:func:`infolens._kernels.fused_rows`) on two models' logits for the same positions;
:class:`CompareAccumulator` gathers them and :meth:`CompareAccumulator.compute` derives the
summary; :func:`compare_logits` does both for arrays in memory. Running models over
documents is :mod:`infolens.compare`'s job. Everything is in nats unless a key says
otherwise.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infolens import _backend as B
from infolens._kernels import fused_rows
from infolens.topk import overlap as _overlap
from infolens.topk import topk_ids as _topk_ids

__all__ = [
    "BLOCK",
    "PERCENTILES",
    "CompareAccumulator",
    "compare_logits",
    "summarize",
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
