"""Per-row calibration metrics of ``softmax(z / T)`` (float64, chunked): shared by the
accumulator (:mod:`infolens._calibration_bins`) and the temperature fit
(:mod:`infolens._calibration_temperature`), below both."""

from __future__ import annotations

from typing import Any

import numpy as np

from infolens import _calibration_inputs as inp

__all__ = ["row_metrics"]


def _chunk(z: np.ndarray, lab: np.ndarray, beta: float, start: int, stop: int) -> dict[str, Any]:
    z64 = np.asarray(z[start:stop], dtype=np.float64)
    y = lab[start:stop]
    rows = np.arange(z64.shape[0])
    m = z64.max(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        a = beta * (z64 - m[:, None])  # <= 0; -inf stays -inf
    e = np.exp(a)
    s = e.sum(axis=1)  # >= 1: the maximum contributes exp(0)
    lse = np.log(s)
    return {"z": z64, "a": a, "e": e, "s": s, "lse": lse, "y": y, "rows": rows, "m": m}


def row_metrics(
    z: np.ndarray, lab: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``softmax(beta * z)``: NLL of the label (nats; ``inf`` if its logit is
    ``-inf``), top-label confidence, whether the argmax is the label, multiclass Brier
    score :math:`\\sum_k (p_k - [k = y])^2`."""
    n = z.shape[0]
    nll, conf, brier = np.empty(n), np.empty(n), np.empty(n)
    hit = np.empty(n, dtype=bool)
    for start, stop in inp.row_chunks(n, z.shape[1]):
        c = _chunk(z, lab, beta, start, stop)
        ay = c["a"][c["rows"], c["y"]]
        nll[start:stop] = c["lse"] - ay
        conf[start:stop] = 1.0 / c["s"]
        hit[start:stop] = np.argmax(c["z"], axis=1) == c["y"]
        p = c["e"] / c["s"][:, None]
        py = p[c["rows"], c["y"]]
        brier[start:stop] = np.einsum("ij,ij->i", p, p) - 2.0 * py + 1.0
    return nll, conf, hit, brier
