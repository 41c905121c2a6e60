r"""Calibration: does a model's confidence match how often it is right?

A classifier (or a language model predicting the next token) is *calibrated* when, of the
predictions it makes with confidence 0.8, 80% are right. This module measures that and
fixes the commonest miscalibration, over- or under-confidence, by temperature scaling:

* :func:`expected_calibration_error` — the binned calibration error (ECE, RMS calibration
  error, MCE), with torchmetrics' binning, equal-width or equal-mass bins, and the
  debiased l2 estimate of Kumar, Liang & Ma (2019);
* :func:`reliability_diagram` — the per-bin data behind it, with a ``.plot()`` figure;
* :func:`brier_score` — multiclass, binary and top-label Brier scores;
* :func:`mean_nll` and :func:`fit_temperature` — the NLL-optimal temperature, with NLL,
  ECE and Brier before and after, in-sample *and* cross-validated (the honest number);
* :func:`top_label` — (confidence, correct) of the top-label predictions of rows of
  probabilities or logits;
* :class:`CalibrationAccumulator` — mergeable per-bin sums for data streamed in pieces.

Inputs are numpy arrays, torch tensors or sequences; computation is in float64 on the CPU;
results are Python floats, numpy arrays and dataclasses. Bad inputs raise
:class:`~infolens.errors.InputError` (a :class:`ValueError`) with one line naming the
argument, what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infolens import _calibration_inputs as inp
from infolens._calibration_bins import (
    CalibrationAccumulator,
    CalibrationSummary,
    ReliabilityDiagram,
    diagram_from,
)
from infolens._calibration_temperature import (
    T_BOUNDS,
    CalibrationScores,
    TemperatureFit,
    fit,
    row_metrics,
)
from infolens.errors import InputError

__all__ = [
    "CalibrationAccumulator",
    "CalibrationScores",
    "CalibrationSummary",
    "ReliabilityDiagram",
    "TemperatureFit",
    "brier_score",
    "expected_calibration_error",
    "fit_temperature",
    "mean_nll",
    "reliability_diagram",
    "top_label",
]


def _binned(confidences: Any, correct: Any, n_bins: Any, strategy: Any) -> ReliabilityDiagram:
    c = inp.confidences(confidences)
    y = inp.correct(correct, c.size)
    n_bins = inp.check_int(n_bins, "n_bins", minimum=1)
    strategy = inp.check_choice(strategy, "strategy", inp.STRATEGIES)
    return diagram_from(c, y, n_bins, strategy)


def expected_calibration_error(
    confidences: Any,
    correct: Any,
    n_bins: int = 15,
    norm: str = "l1",
    strategy: str = "uniform",
    *,
    debias: bool = False,
) -> float:
    r"""Binned calibration error of top-label (or binary) predictions.

    With the predictions split into bins :math:`B_b` by confidence, :math:`n_b = |B_b|`,
    :math:`\mathrm{acc}_b` the fraction correct and :math:`\mathrm{conf}_b` the mean
    confidence in bin :math:`b`, and :math:`N` predictions in all:

    * ``norm="l1"`` (ECE): :math:`\sum_b \frac{n_b}{N} |\mathrm{acc}_b - \mathrm{conf}_b|`;
    * ``norm="l2"`` (RMS calibration error):
      :math:`\sqrt{\sum_b \frac{n_b}{N} (\mathrm{acc}_b - \mathrm{conf}_b)^2}`;
    * ``norm="max"`` (MCE): :math:`\max_{b: n_b > 0} |\mathrm{acc}_b - \mathrm{conf}_b|`.

    These are torchmetrics' ``binary_calibration_error`` / ``multiclass_calibration_error``
    (computed here in float64; torchmetrics computes in float32).

    Parameters
    ----------
    confidences : array_like of float, any shape
        Probabilities in ``[0, 1]``: the top-label probability ``max_k p_k`` of each
        prediction (see :func:`top_label`), or for a binary task the probability of the
        positive class.
    correct : array_like of bool or 0/1, same size
        Whether each top-label prediction was right (for a binary task: the label).
    n_bins : int
        ``B``, the number of bins (default 15, as torchmetrics).
    norm : {"l1", "l2", "max"}
        See above.
    strategy : {"uniform", "quantile"}
        ``"uniform"``: edges :math:`e_b = b / B`. ``"quantile"`` (equal mass): :math:`e_0 =
        0`, :math:`e_B = 1` and :math:`e_b = s_{\lfloor bN/B \rfloor}` for :math:`0 < b <
        B`, with :math:`s` the confidences sorted ascending (0-based); without ties every
        bin holds :math:`\lfloor (b+1)N/B \rfloor - \lfloor bN/B \rfloor` predictions,
        tied confidences stay in one bin (so bins can be unequal, or empty).
    debias : bool
        With ``norm="l2"``, return the debiased estimate of Kumar, Liang & Ma (2019,
        "Verified Uncertainty Calibration"): the plug-in squared gap of each bin overstates
        the true one by the variance of its accuracy, so it is corrected to
        :math:`(\mathrm{acc}_b - \mathrm{conf}_b)^2 - \mathrm{acc}_b (1 - \mathrm{acc}_b) /
        (n_b - 1)` (bins with :math:`n_b < 2` contribute 0), and the result is
        :math:`\sqrt{\max(0, \sum_b \frac{n_b}{N} \cdot \text{that})}`. It is less biased
        upward for small bins, and can be 0 for a calibrated model where the plug-in
        estimate is not. Only for ``norm="l2"``.

    Returns
    -------
    float
        In ``[0, 1]`` (a probability gap, no unit). ``l1 <= l2 <= max``.

    Notes
    -----
    **Binning convention** (torchmetrics'): a confidence :math:`c` goes to bin
    ``searchsorted(edges, c, side="right") - 1``, i.e. torchmetrics'
    ``bucketize(c, edges, right=True) - 1``: bins are :math:`[e_b, e_{b+1})`, closed on
    the left, and a confidence of exactly 1.0 forms a bin of its own (index ``B``; one-hot
    and saturated predictions land there). Empty bins contribute nothing.

    Examples
    --------
    >>> from infolens.calibration import expected_calibration_error
    >>> conf = [0.25, 0.25, 0.55, 0.75, 0.75]   # confidence of the positive class
    >>> label = [0, 0, 1, 1, 1]
    >>> round(expected_calibration_error(conf, label, n_bins=2), 4)
    0.29
    >>> round(expected_calibration_error(conf, label, n_bins=2, norm="max"), 4)
    0.3167
    """
    return _binned(confidences, correct, n_bins, strategy).calibration_error(norm, debias=debias)


def reliability_diagram(
    confidences: Any,
    correct: Any,
    n_bins: int = 15,
    strategy: str = "uniform",
    ax: Any = None,
) -> ReliabilityDiagram:
    r"""Per-bin confidence and accuracy of top-label predictions, with a figure on demand.

    Parameters
    ----------
    confidences, correct, n_bins, strategy
        As for :func:`expected_calibration_error` (same bins, same convention).
    ax : matplotlib Axes, optional
        If given, the diagram is also drawn on it (see :meth:`ReliabilityDiagram.plot`).

    Returns
    -------
    ReliabilityDiagram
        ``edges`` (``n_bins + 1``), and per bin (``n_bins + 1`` entries, the last for
        confidence exactly 1.0): ``count``, ``n_correct``, ``sum_confidence``,
        ``sum_squared_error``; properties ``mean_confidence`` and ``accuracy`` (NaN where
        empty) and ``weight``; ``calibration_error(norm, debias=)``, ``brier_top_label``,
        ``summary()`` (all scalars) and ``plot(ax=None)`` (a matplotlib ``Figure``).

    Examples
    --------
    >>> from infolens.calibration import reliability_diagram
    >>> d = reliability_diagram([0.95, 0.9, 0.6, 0.55, 1.0], [1, 0, 1, 0, 1], n_bins=2)
    >>> d.edges.tolist(), d.count.tolist()          # [0, .5), [.5, 1), {1}
    ([0.0, 0.5, 1.0], [0, 4, 1])
    >>> float(d.accuracy[1]), round(float(d.mean_confidence[1]), 3)
    (0.5, 0.75)
    >>> fig = d.plot()                               # matplotlib, on demand
    """
    d = _binned(confidences, correct, n_bins, strategy)
    if ax is not None:
        d.plot(ax=ax)
    return d


def top_label(
    probs: Any = None, labels: Any = None, *, logits: Any = None, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Top-label confidence :math:`\max_k p_k` and correctness (argmax = label) per row.

    Parameters
    ----------
    probs : array_like, shape ``[rows, classes]``, optional
        Probabilities (rows summing to 1). Give either this or ``logits``.
    labels : array_like of int, shape ``[rows]``
        Class indices.
    logits : array_like, shape ``[rows, classes]``, optional
        Unnormalised logits (``-inf`` = probability 0); the probabilities are
        ``softmax(logits / temperature)``, computed in float64.
    temperature : float
        Only with ``logits``.

    Returns
    -------
    (ndarray of float64, ndarray of bool)
        Confidence and correctness, the inputs of :func:`expected_calibration_error`. The
        argmax is the first maximal entry.

    Examples
    --------
    >>> from infolens.calibration import top_label
    >>> conf, ok = top_label([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]], [0, 2])
    >>> conf.tolist(), ok.tolist()
    ([0.7, 0.6], [True, False])
    >>> conf, ok = top_label(logits=[[0.0, 0.0, float("-inf")]], labels=[1])
    >>> conf.tolist(), ok.tolist()
    ([0.5], [False])
    """
    if (probs is None) == (logits is None):
        raise InputError(
            "probs: expected either probs or logits=, got "
            + ("both" if probs is not None else "neither")
        )
    if logits is not None:
        z = inp.logits(logits)
        lab = inp.labels(labels, z.shape[0], z.shape[1])
        t = inp.check_temperature(temperature)
        _, conf, hit, _ = row_metrics(z, lab, 1.0 / t)
        return conf, hit
    p = _probs(probs)
    lab = inp.labels(labels, p.shape[0], p.shape[1])
    return p.max(axis=1), np.argmax(p, axis=1) == lab


def _probs(x: Any, name: str = "probs") -> np.ndarray:
    a = inp.to_numpy(x, name)
    if a.dtype.kind not in "iuf" or a.ndim != 2 or 0 in a.shape:
        raise InputError(
            f"{name}: expected probabilities of shape [rows, classes], got {inp.describe(a)}"
        )
    eps = float(np.finfo(a.dtype).eps) if a.dtype.kind == "f" else 0.0
    a = a.astype(np.float64)
    bad = ~((a >= 0) & (a <= 1))
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(
            f"{name}: expected probabilities in [0, 1], got {a[i, j].item()!r} at row {i}, column {j}"
        )
    tol = 1e-3 + a.shape[1] * eps
    off = np.abs(a.sum(axis=1) - 1.0) > tol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InputError(
            f"{name}: expected rows summing to 1 (within {tol:.2g}), got {a[i].sum().item()!r} at row {i}"
        )
    return a


def brier_score(probs: Any, labels: Any, *, top_label: bool = False) -> float:
    r"""Brier score: the mean squared error of predicted probabilities.

    Three forms, chosen by the shape of ``probs`` and ``top_label``:

    * **multiclass**, ``probs`` of shape ``[N, K]`` and integer ``labels``:
      :math:`\frac1N \sum_i \sum_k (p_{ik} - [k = y_i])^2`, in ``[0, 2]``. This is
      scikit-learn's ``brier_score_loss(labels, probs, labels=range(K),
      scale_by_half=False)`` (its default for ``K > 2``; for ``K = 2`` scikit-learn halves
      it by default, giving the binary form).
    * **binary**, ``probs`` of shape ``[N]`` (probability of class 1) and 0/1 ``labels``:
      :math:`\frac1N \sum_i (p_i - y_i)^2`, in ``[0, 1]`` — scikit-learn's
      ``brier_score_loss`` with ``pos_label=1``. Given top-label confidences and
      correctness it is the **top-label** Brier score.
    * ``top_label=True`` with ``[N, K]`` probabilities: the binary form of
      :math:`(\max_k p_{ik}, [\arg\max_k p_{ik} = y_i])`, in ``[0, 1]``.

    Parameters
    ----------
    probs : array_like
        ``[N, K]`` probabilities (rows summing to 1 within ``1e-3``), or ``[N]``.
    labels : array_like
        ``[N]`` class indices in ``[0, K)``; or, with 1-D ``probs``, 0/1 or bool outcomes.
    top_label : bool
        See above (only with 2-D ``probs``).

    Returns
    -------
    float
        Lower is better; 0 for certain, correct predictions. (No logarithm: no unit.)

    Examples
    --------
    >>> from infolens.calibration import brier_score
    >>> p = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1]]
    >>> round(brier_score(p, [0, 2]), 4)          # (.09+.04+.01 + .09+.36+.81) / 2
    0.7
    >>> round(brier_score(p, [0, 2], top_label=True), 4)   # ((.7-1)^2 + .6^2) / 2
    0.225
    >>> round(brier_score([0.9, 0.2], [1, 0]), 4)             # ((.9-1)^2 + .2^2) / 2
    0.025
    """
    if not isinstance(top_label, (bool, np.bool_)):
        raise InputError(f"top_label: expected a bool, got {inp.describe(top_label)}")
    a = inp.to_numpy(probs, "probs")
    if a.ndim == 1:
        if top_label:
            raise InputError(
                f"top_label: expected 2-D probs [rows, classes] with top_label=True, got {inp.describe(a)}"
            )
        c = inp.confidences(a, "probs")
        y = inp.correct(labels, c.size, "labels")
        return float(np.mean((c - y) ** 2))
    p = _probs(a)
    lab = inp.labels(labels, p.shape[0], p.shape[1])
    rows = np.arange(p.shape[0])
    if top_label:
        hit = np.argmax(p, axis=1) == lab
        return float(np.mean((p.max(axis=1) - hit) ** 2))
    py = p[rows, lab]
    return float(np.mean(np.einsum("ij,ij->i", p, p) - 2.0 * py + 1.0))


def mean_nll(
    logits: Any, labels: Any, *, temperature: float = 1.0, base: float | None = None
) -> float:
    r"""Mean negative log-likelihood of the labels under ``softmax(logits / temperature)``.

    :math:`\frac1N \sum_i -\log p_{i y_i}`, computed in float64 by log-sum-exp, in nats
    (``base=None``) or in ``log(base)`` units (``base=2``: bits). ``inf`` if some label
    has a ``-inf`` logit.

    Examples
    --------
    >>> from infolens.calibration import mean_nll
    >>> mean_nll([[0.0, 0.0]], [1], base=2)
    1.0
    >>> round(mean_nll([[2.0, 0.0]], [0], temperature=2.0), 6)   # -log(e/(e+1))
    0.313262
    """
    z = inp.logits(logits)
    lab = inp.labels(labels, z.shape[0], z.shape[1])
    t = inp.check_temperature(temperature)
    ln_base = inp.check_base(base)
    nll, _, _, _ = row_metrics(z, lab, 1.0 / t)
    return float(np.mean(nll)) / ln_base


def fit_temperature(
    logits: Any,
    labels: Any,
    *,
    cv: int | None = 5,
    seed: int = 0,
    n_bins: int = 15,
    base: float | None = None,
    bounds: tuple[float, float] = T_BOUNDS,
) -> TemperatureFit:
    r"""Temperature scaling: the ``T > 0`` minimising the mean NLL of ``softmax(z / T)``.

    .. math:: T^* = \arg\min_{T} \frac1N \sum_i \Big[\log \sum_k e^{z_{ik}/T} - z_{i y_i}/T\Big]

    The objective is convex in :math:`1/T`; it is minimised by a safeguarded Newton
    iteration in float64 (float16 / bfloat16 logits are converted, chunk by chunk). ``T``
    is kept within ``bounds``: when every prediction is right the NLL keeps falling as
    ``T -> 0``, and for a model no better than chance as ``T -> inf``; then ``T`` is the
    bound and ``bound`` says which. The argmax, hence the accuracy, does not depend on
    ``T``.

    Fit on a modest sample of rows (say 10k–100k; every Newton step is one pass over
    them, and there are ``cv + 1`` fits), then apply ``T`` to the rest, e.g. with
    :meth:`CalibrationAccumulator.update_logits`.

    Parameters
    ----------
    logits : array_like, shape ``[N, K]``
        Logits (any float dtype; ``-inf`` marks a zero-probability class; no NaN or
        ``+inf``).
    labels : array_like of int, shape ``[N]``
        Class indices in ``[0, K)``; a label whose logit is ``-inf`` is refused (its NLL is
        infinite at every ``T``).
    cv : int or None
        Folds for the held-out scores (default 5; ``None`` to skip them). The rows are
        shuffled with ``seed`` and split into ``cv`` folds; each fold is scored at the
        ``T`` fitted on the other folds, and the scores pooled over all rows.
    seed : int
        Seed of the fold shuffle.
    n_bins : int
        Uniform bins for the ECE / MCE in the scores.
    base : float, optional
        ``None``: NLL in nats; ``2``: in bits.
    bounds : (float, float)
        ``(t_min, t_max)``, default ``(0.01, 100)``.

    Returns
    -------
    TemperatureFit
        ``temperature`` (fitted on all rows), ``bound``, and :class:`CalibrationScores`
        (``nll``, ``ece``, ``mce``, multiclass ``brier``): ``before`` (``T = 1``),
        ``after`` (in-sample, at ``temperature``) and ``held_out`` (cross-validated).

    Notes
    -----
    **Why the held-out number.** ``after`` scores ``T`` on the very rows it was chosen
    for, so its NLL is never above ``before``'s — even when ``T`` only fits noise. The
    held-out score says what the fitted ``T`` does on rows it has not seen, the situation
    in which it will be used; with few rows or a model that is already calibrated it can
    be worse than ``before``.

    Examples
    --------
    >>> import numpy as np
    >>> from infolens.calibration import fit_temperature
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(20_000, 5)) * 3
    >>> p = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)   # truth: T = 2
    >>> y = np.array([rng.choice(5, p=row) for row in p])
    >>> r = fit_temperature(z, y)
    >>> round(r.temperature, 1), r.bound
    (2.0, None)
    >>> r.held_out.nll < r.before.nll and r.held_out.ece < r.before.ece
    True
    """
    return fit(logits, labels, cv=cv, seed=seed, n_bins=n_bins, base=base, bounds=bounds)
