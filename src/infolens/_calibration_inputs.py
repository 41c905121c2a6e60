"""Input checks for :mod:`infolens.calibration`: numpy / torch in, numpy float64 out.

Every check raises :class:`~infolens.errors.InputError` (a :class:`ValueError`) with one
line naming the argument, what was expected and what came.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from infolens._backend import as_array, describe, is_torch
from infolens.errors import InputError

NORMS = ("l1", "l2", "max")
STRATEGIES = ("uniform", "quantile")


def to_numpy(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy, torch or a sequence) as a numpy array; torch is detached and moved
    to the CPU, keeping its dtype where numpy has it (bfloat16 becomes float32, exactly)."""
    if is_torch(x):
        import torch

        t = x.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        return np.asarray(t.numpy())
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        why = " ".join(str(exc).split())
        raise InputError(f"{name}: expected an array, got {describe(x)} ({why})") from None


def check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {describe(value)}")
    return int(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        want = ", ".join(repr(c) for c in choices)
        raise InputError(f"{name}: expected one of {want}, got {describe(value)}")
    return value


def check_base(base: Any) -> float:
    """``log(base)`` (1.0 for ``None``, i.e. nats)."""
    if base is None:
        return 1.0
    if isinstance(base, bool) or not isinstance(base, (int, float, np.integer, np.floating)):
        raise InputError(
            f"base: expected None or a positive real number other than 1, got {describe(base)}"
        )
    b = float(base)
    if not (math.isfinite(b) and b > 0 and b != 1):
        raise InputError(f"base: expected None or a positive real number other than 1, got {b!r}")
    return math.log(b)


def check_temperature(value: Any, name: str = "temperature") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name}: expected a positive finite number, got {describe(value)}")
    t = float(value)
    if not (math.isfinite(t) and t > 0):
        raise InputError(f"{name}: expected a positive finite number, got {t!r}")
    return t


def confidences(x: Any, name: str = "confidences") -> np.ndarray:
    """Probabilities in ``[0, 1]``, any shape, flattened to float64 (at least one)."""
    a = to_numpy(as_array(x, name), name)
    if a.dtype.kind not in "iuf":
        raise InputError(f"{name}: expected probabilities in [0, 1], got {describe(a)}")
    a = a.astype(np.float64).ravel()
    if a.size == 0:
        raise InputError(f"{name}: expected at least one prediction, got an empty array")
    bad = ~((a >= 0.0) & (a <= 1.0))  # NaN is bad too
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name}: expected probabilities in [0, 1], got {a[i].item()!r} at position {i}"
        )
    return a


def correct(x: Any, n: int, name: str = "correct") -> np.ndarray:
    """0/1 outcomes (bool, or integers / floats equal to 0 or 1) of ``n`` predictions, as bool."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected booleans or 0/1 values, got {describe(a)}")
    if a.size != n:
        raise InputError(f"{name}: expected {n} values (one per confidence), got {describe(a)}")
    a = a.ravel()
    if a.dtype.kind == "b":
        return a.astype(bool)
    bad = ~((a == 0) | (a == 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name}: expected booleans or 0/1 values, got {a[i].item()!r} at position {i}"
        )
    return a == 1


def labels(x: Any, n: int, k: int, name: str = "labels") -> np.ndarray:
    """Class indices ``0 <= y < k`` of ``n`` rows, as int64."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "iu":
        raise InputError(f"{name}: expected integer class indices, got {describe(a)}")
    if a.ndim != 1 or a.shape[0] != n:
        raise InputError(f"{name}: expected shape ({n},) (one label per row), got {describe(a)}")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name}: expected class indices in [0, {k - 1}], got {int(a[i])} at row {i}"
        )
    return a


def logits(x: Any, name: str = "logits") -> np.ndarray:
    """A ``[rows, classes]`` float array (dtype kept: converted to float64 chunk by chunk)
    with no NaN or ``+inf`` and at least one finite entry per row; ``-inf`` is allowed."""
    a = to_numpy(x, name)
    if a.dtype.kind not in "iuf":
        raise InputError(
            f"{name}: expected a float array of shape [rows, classes], got {describe(a)}"
        )
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(
            f"{name}: expected shape [rows, classes] with rows, classes >= 1, got {describe(a)}"
        )
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    for start, stop in row_chunks(a.shape[0], a.shape[1]):
        c = a[start:stop]
        bad = np.isnan(c) | np.isposinf(c)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise InputError(
                f"{name}: expected finite values or -inf, got {c[i, j].item()!r} at row {start + i}, column {j}"
            )
        empty = ~np.isfinite(c).any(axis=1)
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise InputError(
                f"{name}: expected at least one finite logit per row, got a row of -inf at row {start + i}"
            )
    return a


def row_chunks(rows: int, cols: int, elements: int = 1 << 20) -> list[tuple[int, int]]:
    """Row ranges of about ``elements`` values each (bounded float64 temporaries)."""
    step = max(1, elements // max(1, cols))
    return [(s, min(rows, s + step)) for s in range(0, rows, step)]
