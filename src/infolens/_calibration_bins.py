r"""Confidence bins: the reliability diagram, the calibration errors computed from it, and
a mergeable accumulator of its per-bin sums (see :mod:`infolens.calibration`).

**Binning convention** (torchmetrics'): with edges :math:`0 = e_0 < e_1 < \dots < e_B = 1`,
a confidence :math:`c` goes to bin ``searchsorted(edges, c, side="right") - 1``, which is
torchmetrics' ``bucketize(c, edges, right=True) - 1``: bin :math:`b < B` is
:math:`[e_b, e_{b+1})`, and a confidence of exactly 1.0 goes to an extra *point bin*
:math:`\{1\}` (index ``B``). Every per-bin array therefore has ``n_bins + 1`` entries, the
last one for :math:`c = 1` (usually empty; one-hot or saturated predictions land there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infolens import _calibration_inputs as inp
from infolens.errors import InputError
from infolens.stream import SCALE_BITS, ExactSum, _group_sums


def uniform_edges(n_bins: int) -> np.ndarray:
    """``[0, 1/B, ..., 1]``, each edge the correctly rounded ``b / B``."""
    return np.arange(n_bins + 1, dtype=np.float64) / n_bins


def quantile_edges(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-mass edges: ``e_0 = 0``, ``e_B = 1`` and ``e_b = s[floor(b N / B)]`` (``s`` the
    sorted confidences, 0-based) for ``0 < b < B``. Without ties bin ``b`` holds exactly
    ``floor((b+1) N / B) - floor(b N / B)`` predictions; tied confidences stay together."""
    s = np.sort(conf)
    n = s.size
    inner = s[(np.arange(1, n_bins, dtype=np.int64) * n) // n_bins]
    return np.concatenate(([0.0], inner, [1.0]))


def bin_index(conf: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each confidence: ``searchsorted(edges, c, side="right") - 1`` (0 .. B)."""
    return np.searchsorted(edges, conf, side="right").astype(np.int64) - 1


def bin_sums(
    conf: np.ndarray, hit: np.ndarray, idx: np.ndarray, n_slots: int
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Per-bin count, correct count, and exact sums (``2**-1126`` units) of ``c`` and of
    ``(c - y)**2``."""
    count = np.bincount(idx, minlength=n_slots)
    n_hit = np.bincount(idx[hit], minlength=n_slots)
    order = np.argsort(idx, kind="stable")
    g = idx[order]
    c = conf[order]
    sq = (c - hit[order]) ** 2
    return (
        [int(v) for v in count],
        [int(v) for v in n_hit],
        _group_sums(c, g, n_slots),
        _group_sums(sq, g, n_slots),
    )


def _units_to_float(units: list[int]) -> np.ndarray:
    return np.array([u / 2**SCALE_BITS for u in units], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class ReliabilityDiagram:
    r"""Per-bin sums of top-label predictions, and everything computed from them.

    Made by :func:`~infolens.calibration.reliability_diagram` (or by
    :meth:`CalibrationAccumulator.compute`). Arrays of length ``n_bins + 1``: bin ``b < B``
    is ``[edges[b], edges[b + 1])``, the last entry is the point bin of confidences exactly
    1.0 (torchmetrics' convention).

    Attributes
    ----------
    edges : ndarray, shape ``(n_bins + 1,)``
        Bin edges, from 0 to 1.
    count, n_correct : ndarray of int64
        Predictions, and correct ones, per bin.
    sum_confidence, sum_squared_error : ndarray of float64
        :math:`\sum c` and :math:`\sum (c - y)^2` per bin (correctly rounded exact sums).
    strategy : str
        ``"uniform"`` or ``"quantile"``.
    """

    edges: np.ndarray
    count: np.ndarray
    n_correct: np.ndarray
    sum_confidence: np.ndarray
    sum_squared_error: np.ndarray
    strategy: str = "uniform"

    @property
    def n_bins(self) -> int:
        return int(self.edges.size - 1)

    @property
    def n(self) -> int:
        """Number of predictions."""
        return int(self.count.sum())

    @property
    def mean_confidence(self) -> np.ndarray:
        """Mean confidence per bin (NaN where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum_confidence / self.count, np.nan)

    @property
    def accuracy(self) -> np.ndarray:
        """Fraction correct per bin (NaN where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.n_correct / self.count, np.nan)

    @property
    def weight(self) -> np.ndarray:
        """Fraction of the predictions in each bin."""
        return self.count / max(1, self.n)

    def calibration_error(self, norm: str = "l1", *, debias: bool = False) -> float:
        r"""The binned calibration error (see
        :func:`~infolens.calibration.expected_calibration_error`); NaN if there are no
        predictions."""
        inp.check_choice(norm, "norm", inp.NORMS)
        if not isinstance(debias, (bool, np.bool_)):
            raise InputError(f"debias: expected a bool, got {inp.describe(debias)}")
        if debias and norm != "l2":
            raise InputError(
                f"debias: the debiased estimate exists for norm='l2' only, got norm={norm!r}"
            )
        n = self.n
        if n == 0:
            return math.nan
        full = self.count > 0
        cnt = self.count[full].astype(np.float64)
        acc = self.n_correct[full] / cnt
        gap = acc - self.sum_confidence[full] / cnt
        w = cnt / n
        if norm == "l1":
            return float(np.sum(w * np.abs(gap)))
        if norm == "max":
            return float(np.max(np.abs(gap)))
        sq = gap**2
        if debias:  # Kumar et al. 2019: bins of one prediction contribute 0
            two = cnt >= 2
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = np.where(two, sq - acc * (1 - acc) / (cnt - 1), 0.0)
            return math.sqrt(max(float(np.sum(w * corr)), 0.0))
        return math.sqrt(float(np.sum(w * sq)))

    @property
    def brier_top_label(self) -> float:
        r""":math:`\frac1N \sum_i (c_i - y_i)^2` (NaN if empty)."""
        n = self.n
        return float(self.sum_squared_error.sum() / n) if n else math.nan

    def summary(self) -> CalibrationSummary:
        """The scalar results (ECE, RMSCE, debiased RMSCE, MCE, top-label Brier, ...)."""
        n = self.n
        return CalibrationSummary(
            n=n,
            accuracy=float(self.n_correct.sum() / n) if n else math.nan,
            mean_confidence=float(self.sum_confidence.sum() / n) if n else math.nan,
            ece=self.calibration_error("l1"),
            rmsce=self.calibration_error("l2"),
            rmsce_debiased=self.calibration_error("l2", debias=True),
            mce=self.calibration_error("max"),
            brier_top_label=self.brier_top_label,
            bins=self,
        )

    def plot(self, ax: Any = None, *, title: str | None = None) -> Any:
        """Draw the reliability diagram; returns the matplotlib ``Figure``.

        With ``ax=None`` a new figure has two panels: accuracy per bin against the
        diagonal (bars from the bin's mean confidence to its accuracy shaded as the gap)
        and, below, the number of predictions per bin. With ``ax`` given only the first
        panel is drawn, on ``ax``. matplotlib is imported here (Agg backend when no
        display is set).
        """
        from infolens._calibration_plot import plot_reliability

        return plot_reliability(self, ax=ax, title=title)


@dataclass(frozen=True)
class CalibrationSummary:
    """Scalar calibration results of a set of top-label predictions.

    ``ece`` (l1), ``rmsce`` (l2), ``rmsce_debiased`` (Kumar et al.'s debiased l2), ``mce``
    (max) and ``brier_top_label`` are computed from ``bins``; ``nll`` (mean negative
    log-likelihood, in nats or ``base`` units) and ``brier`` (multiclass Brier score) only
    by :meth:`CalibrationAccumulator.compute` from rows given as logits (NaN otherwise).
    """

    n: int
    accuracy: float
    mean_confidence: float
    ece: float
    rmsce: float
    rmsce_debiased: float
    mce: float
    brier_top_label: float
    bins: ReliabilityDiagram = field(repr=False, compare=False)
    nll: float = math.nan
    brier: float = math.nan
    n_logit_rows: int = 0


def diagram_from(
    conf: np.ndarray, hit: np.ndarray, n_bins: int, strategy: str
) -> ReliabilityDiagram:
    edges = uniform_edges(n_bins) if strategy == "uniform" else quantile_edges(conf, n_bins)
    count, n_hit, sc, sq = bin_sums(conf, hit, bin_index(conf, edges), n_bins + 1)
    return ReliabilityDiagram(
        edges=edges,
        count=np.array(count, dtype=np.int64),
        n_correct=np.array(n_hit, dtype=np.int64),
        sum_confidence=_units_to_float(sc),
        sum_squared_error=_units_to_float(sq),
        strategy=strategy,
    )


class CalibrationAccumulator:
    r"""Mergeable per-bin sums for calibration over a stream (uniform bins).

    :meth:`update` adds top-label predictions (confidence, correct); :meth:`update_logits`
    adds rows of logits with their labels (at a temperature), and also accumulates the
    mean NLL and the multiclass Brier score. :meth:`merge` adds another accumulator's state
    and :meth:`compute` returns a :class:`CalibrationSummary`. The state is a fixed set of
    integers (per bin: count, correct count, and the exact sums of :math:`c` and
    :math:`(c - y)^2` in ``2**-1126`` units, as :class:`~infolens.stream.ExactSum`), so it
    takes constant memory, serialises to JSON (:meth:`to_json` / :meth:`from_json`), and a
    merged state equals a single pass over the same predictions bit for bit, in any order.

    Parameters
    ----------
    n_bins : int
        Uniform bins ``[b/B, (b+1)/B)`` plus the point bin :math:`\{1\}` (quantile bins
        depend on all the data, so they cannot be accumulated).

    Examples
    --------
    >>> import numpy as np
    >>> a, b = CalibrationAccumulator(n_bins=10), CalibrationAccumulator(n_bins=10)
    >>> a.update([0.9, 0.8, 0.65], [True, True, False])
    >>> b.update([0.95, 0.3], [True, False])
    >>> a.merge(b)
    >>> s = a.compute()
    >>> s.n, s.accuracy, round(s.ece, 4)
    (5, 0.6, 0.26)
    >>> CalibrationAccumulator.from_json(a.to_json()).compute().ece == s.ece
    True
    """

    def __init__(self, n_bins: int = 15) -> None:
        self.n_bins = inp.check_int(n_bins, "n_bins", minimum=1)
        slots = self.n_bins + 1
        self.count = [0] * slots
        self.n_correct = [0] * slots
        self.sum_confidence = [0] * slots  # 2**-1126 units
        self.sum_squared_error = [0] * slots  # 2**-1126 units
        self.logit_rows = 0
        self.nll = ExactSum()  # nats
        self.brier = ExactSum()

    def update(self, confidences: Any, correct: Any) -> None:
        """Add top-label predictions: confidences in ``[0, 1]`` and 0/1 (bool) outcomes
        (empty arrays add nothing)."""
        if np.size(inp.to_numpy(confidences, "confidences")) == 0:
            inp.correct(correct, 0)
            return
        c = inp.confidences(confidences)
        y = inp.correct(correct, c.size)
        self._add(c, y)

    def _add(self, c: np.ndarray, y: np.ndarray) -> None:
        edges = uniform_edges(self.n_bins)
        sums = bin_sums(c, y, bin_index(c, edges), self.n_bins + 1)
        for state, add in zip(
            (self.count, self.n_correct, self.sum_confidence, self.sum_squared_error), sums
        ):
            for i, v in enumerate(add):
                state[i] += v

    def update_logits(self, logits: Any, labels: Any, *, temperature: float = 1.0) -> None:
        """Add rows of logits ``[rows, classes]`` (``-inf`` allowed) and their labels, the
        predictions being ``softmax(logits / temperature)``; computed in float64. A
        ``[0, classes]`` array adds nothing."""
        from infolens._calibration_rows import row_metrics

        t = inp.check_temperature(temperature)
        raw = inp.to_numpy(logits, "logits")
        if raw.ndim == 2 and raw.shape[0] == 0:
            inp.labels(labels, 0, max(1, raw.shape[1]))
            return
        z = inp.logits(raw)
        lab = inp.labels(labels, z.shape[0], z.shape[1])
        nll, conf, hit, brier = row_metrics(z, lab, 1.0 / t)
        self._add(conf, hit)
        self.nll.add(nll)
        self.brier.add(brier)
        self.logit_rows += int(z.shape[0])

    def merge(self, other: CalibrationAccumulator) -> None:
        """Add ``other``'s state (same ``n_bins``)."""
        if not isinstance(other, CalibrationAccumulator) or other.n_bins != self.n_bins:
            raise InputError(
                f"other: expected a CalibrationAccumulator with n_bins={self.n_bins}, "
                f"got {inp.describe(other) if not isinstance(other, CalibrationAccumulator) else f'n_bins={other.n_bins}'}"
            )
        for mine, theirs in (
            (self.count, other.count),
            (self.n_correct, other.n_correct),
            (self.sum_confidence, other.sum_confidence),
            (self.sum_squared_error, other.sum_squared_error),
        ):
            for i, v in enumerate(theirs):
                mine[i] += v
        self.logit_rows += other.logit_rows
        self.nll.merge(other.nll)
        self.brier.merge(other.brier)

    def diagram(self) -> ReliabilityDiagram:
        return ReliabilityDiagram(
            edges=uniform_edges(self.n_bins),
            count=np.array(self.count, dtype=np.int64),
            n_correct=np.array(self.n_correct, dtype=np.int64),
            sum_confidence=_units_to_float(self.sum_confidence),
            sum_squared_error=_units_to_float(self.sum_squared_error),
            strategy="uniform",
        )

    def compute(self, *, base: float | None = None) -> CalibrationSummary:
        """The results so far; ``nll`` in nats, or in ``base`` units (``base=2``: bits)."""
        ln_base = inp.check_base(base)
        s = self.diagram().summary()
        if self.logit_rows:
            s = _replace(
                s,
                nll=self.nll.value / self.logit_rows / ln_base,
                brier=self.brier.value / self.logit_rows,
                n_logit_rows=self.logit_rows,
            )
        return s

    def to_json(self) -> dict[str, Any]:
        return {
            "n_bins": self.n_bins,
            "count": list(self.count),
            "n_correct": list(self.n_correct),
            "sum_confidence_hex": [hex(v) for v in self.sum_confidence],
            "sum_squared_error_hex": [hex(v) for v in self.sum_squared_error],
            "logit_rows": self.logit_rows,
            "nll": self.nll.to_json(),
            "brier": self.brier.to_json(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CalibrationAccumulator:
        acc = cls(int(d["n_bins"]))
        acc.count = [int(v) for v in d["count"]]
        acc.n_correct = [int(v) for v in d["n_correct"]]
        acc.sum_confidence = [int(v, 16) for v in d["sum_confidence_hex"]]
        acc.sum_squared_error = [int(v, 16) for v in d["sum_squared_error_hex"]]
        if not all(
            len(x) == acc.n_bins + 1
            for x in (acc.count, acc.n_correct, acc.sum_confidence, acc.sum_squared_error)
        ):
            raise InputError(f"from_json: expected {acc.n_bins + 1} entries per bin array")
        acc.logit_rows = int(d["logit_rows"])
        acc.nll = ExactSum.from_json(d["nll"])
        acc.brier = ExactSum.from_json(d["brier"])
        return acc


def _replace(s: CalibrationSummary, **kw: Any) -> CalibrationSummary:
    import dataclasses

    return dataclasses.replace(s, **kw)
