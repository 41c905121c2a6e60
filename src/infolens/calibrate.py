r"""Next-token calibration of a language model over a corpus (``infolens calibrate``).

Every scored position is a prediction: confidence = the top-1 probability of the model's
next-token distribution, correct = the top-1 token is the true one. The positions are those
of ``infolens score`` (the same windows, :func:`infolens.pipeline.stream_documents`), so a
corpus of any size streams in bounded memory:

1. **Pass 1**, over every position: :class:`~infolens.calibration.CalibrationAccumulator`
   at ``T = 1`` (ECE, RMSCE, MCE, top-label and multiclass Brier, NLL, accuracy; exact
   sums, uniform bins), and a uniform random sample of positions (priority sampling with a
   seeded generator) whose full logits rows are kept, at most ``fit_rows`` rows and
   ``fit_bytes`` bytes.
2. **The fit**: :func:`~infolens.calibration.fit_temperature` on the sample — ``T`` by
   minimum NLL, with NLL, ECE, MCE and Brier before and after, in-sample and
   cross-validated over ``cv`` folds of the sample.
3. **Pass 2** (when the documents can be read again: ``documents`` is a callable that
   returns them afresh): every position scored again at the fitted ``T``. The positions
   that were *not* in the fit sample are data the fit never saw, so their numbers are the
   honest held-out result over the whole corpus (``held_out``); the sample's own positions
   are reported apart.

Without pass 2 (standard input, or ``second_pass=False``), the held-out numbers are the
cross-validated ones of the sample.

NLL is in nats (``nll_nats``) and bits (``nll_bits``); ECE, MCE and Brier have no unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from infolens._backend import is_torch
from infolens.calibration import (
    CalibrationAccumulator,
    fit_temperature,
    reliability_diagram,
    top_label,
)
from infolens.documents import Document
from infolens.models.base import LanguageModel
from infolens.pipeline import Chunk, default_max_rows, default_window_batch, stream_documents
from infolens.windows import resolve_settings

__all__ = ["DEFAULT_FIT_BYTES", "DEFAULT_FIT_ROWS", "calibrate_documents"]

#: Most positions kept for the temperature fit.
DEFAULT_FIT_ROWS = 50_000
#: Most bytes of float32 logits kept for the fit.
DEFAULT_FIT_BYTES = 256 << 20
_LN2 = math.log(2.0)


class _Sample:
    """A uniform sample without replacement of up to ``k`` rows of a stream: each row gets
    a uniform key, the ``k`` smallest keys are kept (priority sampling), rows replaced in
    place so that memory is ``k x V`` float32 however long the stream."""

    def __init__(self, k: int, vocab: int, seed: int) -> None:
        self.k = k
        self.rng = np.random.default_rng(seed)
        self.rows = np.zeros((k, vocab), dtype=np.float32)
        self.labels = np.zeros(k, dtype=np.int64)
        self.index = np.full(k, -1, dtype=np.int64)  # global position of each kept row
        self.keys = np.full(k, np.inf)
        self.seen = 0

    def offer(self, logits: Any, labels: np.ndarray) -> None:
        r = int(labels.shape[0])
        keys = self.rng.random(r)
        base = self.seen
        self.seen += r
        if self.k == 0:
            return
        both = np.concatenate([self.keys, keys])
        if len(both) > self.k:
            kth = np.partition(both, self.k - 1)[self.k - 1]
        else:
            kth = np.inf
        take = np.flatnonzero(keys <= kth)
        if not len(take):
            return
        out = np.flatnonzero(self.keys > kth) if np.isfinite(kth) else np.flatnonzero(~np.isfinite(self.keys))
        take = take[: len(out)]
        out = out[: len(take)]
        rows = logits[take]
        if is_torch(rows):
            rows = rows.detach().float().cpu().numpy()
        self.rows[out] = np.asarray(rows, dtype=np.float32)
        self.labels[out] = labels[take]
        self.index[out] = base + take
        self.keys[out] = keys[take]

    def kept(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ok = np.flatnonzero(self.index >= 0)
        order = ok[np.argsort(self.index[ok])]
        return self.rows[order], self.labels[order], self.index[order]


def _summary(acc: CalibrationAccumulator) -> dict[str, Any]:
    s = acc.compute()
    d = s.bins
    return {
        "tokens": int(s.n),
        "accuracy": float(s.accuracy),
        "mean_confidence": float(s.mean_confidence),
        "ece": float(s.ece),
        "rmsce": float(s.rmsce),
        "rmsce_debiased": float(s.rmsce_debiased),
        "mce": float(s.mce),
        "brier_top_label": float(s.brier_top_label),
        "brier": float(s.brier),
        "nll_nats": float(s.nll),
        "nll_bits": float(s.nll) / _LN2,
        "reliability": _diagram(d),
    }


def _diagram(d: Any) -> dict[str, Any]:
    def clean(a: Any) -> list[Any]:
        return [None if (isinstance(x, float) and math.isnan(x)) else x for x in np.asarray(a).tolist()]

    return {
        "edges": np.asarray(d.edges).tolist(),
        "count": np.asarray(d.count).tolist(),
        "accuracy": clean(d.accuracy),
        "mean_confidence": clean(d.mean_confidence),
    }


def _scores(s: Any) -> dict[str, float] | None:
    if s is None:
        return None
    return {"nll_nats": s.nll, "nll_bits": s.nll / _LN2, "ece": s.ece, "mce": s.mce, "brier": s.brier}


def calibrate_documents(
    model: LanguageModel,
    documents: Iterable[Document] | Callable[[], Iterable[Document]],
    *,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
    n_bins: int = 15,
    cv: int = 5,
    fit_rows: int = DEFAULT_FIT_ROWS,
    fit_bytes: int = DEFAULT_FIT_BYTES,
    seed: int = 0,
    second_pass: bool = True,
    max_rows: int | None = None,
    window_batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Next-token calibration of ``model`` on ``documents``, with a fitted temperature.

    Parameters
    ----------
    model : LanguageModel
    documents : iterable of Document, or a callable returning one
        A callable can be called twice, which allows pass 2 (see the module docstring).
    max_length, stride, bos
        The windows, as for :func:`infolens.score.score_documents`.
    n_bins : int
        Uniform confidence bins (plus the point bin at 1, as torchmetrics).
    cv : int
        Folds of the sample's cross-validation (``>= 2``).
    fit_rows, fit_bytes : int
        Most positions, and most bytes of float32 logits, kept for the fit.
    seed : int
        Seeds the sample and the folds.
    second_pass : bool
        Score the documents again at the fitted ``T`` when they can be read again.

    Returns
    -------
    dict
        ``model``, the settings, ``before`` (every position at ``T = 1``, with its
        ``reliability`` bins), ``temperature`` and ``temperature_bound``, ``fit`` (the
        sample: ``rows``, ``before``, ``after`` in-sample, ``held_out`` cross-validated,
        ``fold_temperatures``), and with pass 2 ``after`` (every position at the fitted
        ``T``), ``held_out`` (the positions outside the sample) and ``in_sample``.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> text = "the quick brown fox jumps over the lazy dog. " * 40
    >>> r = calibrate_documents(load_model("ngram"), lambda: [Document("d", text)], fit_rows=600)
    >>> r["before"]["tokens"], r["fit"]["rows"], r["held_out"]["tokens"]
    (1800, 600, 1200)
    >>> r["after"]["nll_nats"] <= r["before"]["nll_nats"] + 0.05
    True
    """
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise ValueError(f"--cv: expected an integer >= 2, got {cv!r}")
    if fit_rows < 1 or fit_bytes < 1:
        raise ValueError(f"--fit-rows: expected >= 1, got {min(fit_rows, fit_bytes)}")
    settings = resolve_settings(model, max_length, stride, bos)
    rows_per_chunk = default_max_rows(model.vocab_size) if max_rows is None else max_rows
    batch = default_window_batch([model]) if window_batch is None else window_batch
    k = max(1, min(fit_rows, fit_bytes // (4 * max(1, model.vocab_size))))
    sample = _Sample(k, model.vocab_size, seed)
    before = CalibrationAccumulator(n_bins)
    docs = [0, 0]  # documents, empty documents

    def run(on_chunk: Callable[[Chunk], None]) -> None:
        source = documents() if callable(documents) else documents

        def end(doc: Any) -> None:
            docs[0] += 1
            docs[1] += int(doc.n_tokens == 0)

        docs[:] = [0, 0]
        stream_documents(
            model, [lambda ws: model.logits(ws, max_rows=rows_per_chunk)], [model.name],
            source, settings, predicts_first=bool(model.predicts_first), window_batch=batch,
            on_chunk=on_chunk, on_doc_end=end, progress=progress,
        )  # fmt: skip

    def first(chunk: Chunk) -> None:
        logits, targets = chunk.rows[0], chunk.targets
        before.update_logits(logits, targets)
        sample.offer(logits, targets)

    run(first)
    out: dict[str, Any] = {
        "model": model.name,
        "max_length": settings.max_length,
        "stride": settings.stride,
        "bos": settings.bos,
        "n_bins": n_bins,
        "documents_count": docs[0],
        "empty_documents": docs[1],
        "before": _summary(before),
    }
    rows, labels, index = sample.kept()
    if not len(rows):
        out.update(temperature=None, temperature_bound=None, fit=None, after=None,
                   held_out=None, in_sample=None)  # fmt: skip
        return out
    folds = cv if len(rows) >= 2 * cv else None
    fit = fit_temperature(rows, labels, cv=folds, seed=seed, n_bins=n_bins)
    t = float(fit.temperature)
    conf, ok = top_label(logits=rows, labels=labels, temperature=t)
    out.update(
        temperature=t,
        temperature_bound=fit.bound,
        fit={
            "rows": len(rows),
            "cv": folds,
            "before": _scores(fit.before),
            "after": _scores(fit.after),
            "held_out": _scores(fit.held_out),
            "fold_temperatures": list(fit.fold_temperatures),
            "reliability_after": _diagram(reliability_diagram(conf, ok, n_bins)),
        },
    )
    if not (second_pass and callable(documents)):
        out.update(after=None, held_out=None, in_sample=None)
        return out
    after, held, inside = (CalibrationAccumulator(n_bins) for _ in range(3))
    pos = [0]
    fit_set = index  # sorted global positions of the sample

    def second(chunk: Chunk) -> None:
        logits, targets = chunk.rows[0], chunk.targets
        r = int(targets.shape[0])
        after.update_logits(logits, targets, temperature=t)
        g = np.arange(pos[0], pos[0] + r)
        pos[0] += r
        mask = np.isin(g, fit_set, assume_unique=True)
        if mask.any():
            inside.update_logits(logits[np.flatnonzero(mask)], targets[mask], temperature=t)
        if (~mask).any():
            keep = np.flatnonzero(~mask)
            held.update_logits(logits[keep], targets[keep], temperature=t)

    run(second)
    if pos[0] != out["before"]["tokens"]:
        raise RuntimeError(
            f"calibrate: the documents gave {pos[0]} positions on the second pass, "
            f"{out['before']['tokens']} on the first (did they change?)"
        )
    out.update(after=_summary(after), held_out=_summary(held) if pos[0] > len(rows) else None,
               in_sample=_summary(inside))  # fmt: skip
    return out
