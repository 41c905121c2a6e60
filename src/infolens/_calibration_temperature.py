r"""Temperature scaling: per-row metrics of ``softmax(z / T)`` and the NLL-optimal ``T``.

All arithmetic is float64 (float16 / bfloat16 / float32 logits are converted chunk by
chunk, so memory stays bounded), in log space with each row shifted by its maximum.
With :math:`\beta = 1/T` the mean NLL
:math:`f(\beta) = \frac1N \sum_i [\log \sum_k e^{\beta z_{ik}} - \beta z_{i y_i}]` is convex
in :math:`\beta` (a log-sum-exp of linear functions), with
:math:`f'(\beta) = \frac1N \sum_i (\mathbb E_{p_i}[z_i] - z_{i y_i})` and
:math:`f''(\beta) = \frac1N \sum_i \mathrm{Var}_{p_i}[z_i] \ge 0`, so :math:`f'` is
increasing and its root is found by Newton's method safeguarded by bisection on a
bracket — no scipy needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens import _calibration_inputs as inp
from infolens._calibration_bins import diagram_from
from infolens._calibration_rows import _chunk, row_metrics
from infolens.errors import InputError

#: Default bounds on the fitted temperature.
T_BOUNDS = (1e-2, 1e2)


def _derivatives(z: np.ndarray, lab: np.ndarray, beta: float) -> tuple[float, float, float]:
    """Mean NLL :math:`f(\\beta)`, :math:`f'(\\beta)` and :math:`f''(\\beta)`."""
    n = z.shape[0]
    f = g = h = 0.0
    for start, stop in inp.row_chunks(n, z.shape[1]):
        c = _chunk(z, lab, beta, start, stop)
        # shifted logits where the probability is > 0 (then |z - m| < 745 / beta: no overflow)
        zs = np.where(c["e"] > 0, c["z"] - c["m"][:, None], 0.0)
        p = c["e"] / c["s"][:, None]
        ez = np.einsum("ij,ij->i", p, zs)
        var = np.einsum("ij,ij->i", p, (zs - ez[:, None]) ** 2)
        zy = c["z"][c["rows"], c["y"]] - c["m"]
        f += float(np.sum(c["lse"] - beta * zy))
        g += float(np.sum(ez - zy))
        h += float(np.sum(var))
    return f / n, g / n, h / n


def solve_beta(
    z: np.ndarray, lab: np.ndarray, t_min: float, t_max: float
) -> tuple[float, str | None]:
    """The NLL-minimising ``1/T`` within ``[1/t_max, 1/t_min]``, and which bound of ``T``
    it sits at (``"lower"``, ``"upper"`` or ``None``)."""
    lo, hi = 1.0 / t_max, 1.0 / t_min
    if _derivatives(z, lab, lo)[1] >= 0:  # NLL still falls as T grows past t_max
        return lo, "upper"
    if _derivatives(z, lab, hi)[1] <= 0:  # NLL still falls as T shrinks below t_min
        return hi, "lower"
    beta = min(max(1.0, lo), hi)
    for _ in range(200):
        _, g, h = _derivatives(z, lab, beta)
        if g == 0.0:
            break
        if g > 0:
            hi = beta
        else:
            lo = beta
        new = beta - g / h if h > 0 else math.nan
        if not lo < new < hi:
            new = math.sqrt(lo * hi)
        if abs(new - beta) <= 1e-13 * beta or hi - lo <= 1e-13 * hi:
            beta = new
            break
        beta = new
    return beta, None


@dataclass(frozen=True)
class CalibrationScores:
    """Calibration of a set of predictions: mean NLL (nats, or ``base`` units), ECE and MCE
    (top-label, uniform bins, l1 and max norm) and the multiclass Brier score."""

    nll: float
    ece: float
    mce: float
    brier: float


@dataclass(frozen=True)
class TemperatureFit:
    """Result of :func:`~infolens.calibration.fit_temperature`.

    Attributes
    ----------
    temperature : float
        ``T`` fitted on all rows; calibrated probabilities are ``softmax(logits / T)``.
    bound : str or None
        ``"lower"`` / ``"upper"`` if ``T`` sits at that end of ``bounds`` (the NLL keeps
        falling beyond it, e.g. ``"lower"`` when every prediction is right), else ``None``.
    before : CalibrationScores
        At ``T = 1`` (nothing is fitted, so this is also the honest held-out number).
    after : CalibrationScores
        In-sample: at ``temperature``, on the rows it was fitted on (optimistic).
    held_out : CalibrationScores or None
        Cross-validated: each fold scored at the ``T`` fitted on the other folds, the
        folds' predictions pooled. ``None`` when ``cv`` is ``None``.
    fold_temperatures : tuple of float
        The ``T`` of each fold's fit.
    n, accuracy : int, float
        Rows, and the fraction whose argmax is the label (unchanged by ``T``).
    """

    temperature: float
    bound: str | None
    before: CalibrationScores
    after: CalibrationScores
    held_out: CalibrationScores | None
    fold_temperatures: tuple[float, ...]
    n: int
    accuracy: float
    bounds: tuple[float, float]
    cv: int | None
    base: float | None


def _scores(
    nll: np.ndarray,
    conf: np.ndarray,
    hit: np.ndarray,
    brier: np.ndarray,
    n_bins: int,
    ln_base: float,
) -> CalibrationScores:
    d = diagram_from(conf, hit, n_bins, "uniform")
    return CalibrationScores(
        nll=float(np.mean(nll)) / ln_base,
        ece=d.calibration_error("l1"),
        mce=d.calibration_error("max"),
        brier=float(np.mean(brier)),
    )


def check_bounds(bounds: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(
            f"bounds: expected (t_min, t_max) with 0 < t_min < t_max, got {inp.describe(bounds)}"
        ) from None
    if not (0 < lo < hi < math.inf):
        raise InputError(
            f"bounds: expected (t_min, t_max) with 0 < t_min < t_max, got ({lo!r}, {hi!r})"
        )
    return lo, hi


def fit(
    logits: Any,
    labels: Any,
    *,
    cv: int | None,
    seed: int,
    n_bins: int,
    base: float | None,
    bounds: Any,
) -> TemperatureFit:
    z = inp.logits(logits)
    n, k = z.shape
    lab = inp.labels(labels, n, k)
    n_bins = inp.check_int(n_bins, "n_bins", minimum=1)
    ln_base = inp.check_base(base)
    t_min, t_max = check_bounds(bounds)
    if cv is not None:
        cv = inp.check_int(cv, "cv", minimum=2)
        if cv > n:
            raise InputError(f"cv: expected at most one fold per row ({n} rows), got {cv}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed: expected an integer, got {inp.describe(seed)}")
    nll0, conf0, hit, brier0 = row_metrics(z, lab, 1.0)
    if not np.all(np.isfinite(nll0)):
        i = int(np.flatnonzero(~np.isfinite(nll0))[0])
        raise InputError(
            f"labels: expected labels with a finite logit, got label {int(lab[i])} at row {i} "
            f"whose logit is -inf (probability 0 at every temperature)"
        )
    beta, bound = solve_beta(z, lab, t_min, t_max)
    nll1, conf1, _, brier1 = row_metrics(z, lab, beta)
    held: CalibrationScores | None = None
    fold_t: list[float] = []
    if cv is not None:
        perm = np.random.default_rng(int(seed)).permutation(n)
        folds = np.array_split(perm, cv)
        nll2, conf2, brier2 = np.empty(n), np.empty(n), np.empty(n)
        for i, test in enumerate(folds):
            train = np.sort(np.concatenate([f for j, f in enumerate(folds) if j != i]))
            b_i, side = solve_beta(z[train], lab[train], t_min, t_max)
            fold_t.append({"lower": t_min, "upper": t_max}.get(side or "", 1.0 / b_i))
            a, c, _, br = row_metrics(z[test], lab[test], b_i)
            nll2[test], conf2[test], brier2[test] = a, c, br
        held = _scores(nll2, conf2, hit, brier2, n_bins, ln_base)
    temperature = {"lower": t_min, "upper": t_max}.get(bound or "", 1.0 / beta)
    return TemperatureFit(
        temperature=temperature,
        bound=bound,
        before=_scores(nll0, conf0, hit, brier0, n_bins, ln_base),
        after=_scores(nll1, conf1, hit, brier1, n_bins, ln_base),
        held_out=held,
        fold_temperatures=tuple(fold_t),
        n=n,
        accuracy=float(np.mean(hit)),
        bounds=(t_min, t_max),
        cv=cv,
        base=base,
    )
