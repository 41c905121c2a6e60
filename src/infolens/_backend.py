"""numpy / torch dispatch without a hard dependency on torch.

Like einops' ``_backends``: dispatch on the array's own type. torch is imported only when
the input already is a torch tensor (then it is in ``sys.modules``). Python sequences and
scalars become numpy ``float64`` arrays.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from infolens.errors import InputError

Array = Any  # numpy.ndarray or torch.Tensor


def is_torch(x: Any) -> bool:
    """True if ``x`` is a torch tensor (checked without importing torch).

    Examples
    --------
    >>> is_torch([1.0]), is_torch(np.zeros(2))
    (False, False)
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


_TORCH_INTS = ("uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64")
#: What a probability or logit argument must be (for error messages).
REAL_ARRAY = "an array of real numbers (float or integer)"


def describe(x: Any) -> str:
    """What ``x`` is, in a few words, for an error message: its type, and its dtype and
    shape if it is an array, else its (shortened) value.

    Examples
    --------
    >>> describe("2"), describe(True), describe(np.zeros((2, 3), np.float32))
    ("str '2'", 'bool True', 'ndarray of shape (2, 3) and dtype float32')
    """
    if is_torch(x) or isinstance(x, np.ndarray):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    r = repr(x)
    return f"{type(x).__name__} {r if len(r) <= 40 else r[:37] + '...'}"


def as_array(x: Any, name: str, *, like_torch: Any = None, dtype: str = "float") -> Array:
    """``x`` as a numpy array or torch tensor, or :class:`~infolens.errors.InputError`.

    ``dtype="float"`` (probabilities, logits): floating input is kept (numpy input in
    non-native byte order is converted exactly to native order); integer input becomes
    float64 (exact up to 2^53 in magnitude, the nearest float64 beyond); bool, complex and
    anything that is not numbers are refused with one line naming ``name``.
    ``dtype="bool"`` (masks): only bool input (or a Python bool) is accepted. If
    ``like_torch`` is a tensor, the result is a tensor on its device, so numpy and torch
    inputs (and tensors on different devices) can be mixed.

    Examples
    --------
    >>> as_array([1, 2], "p").dtype
    dtype('float64')
    >>> as_array(np.array([0.5], dtype=">f8"), "p").dtype.isnative
    True
    >>> as_array([True, False], "where", dtype="bool").tolist()
    [True, False]
    >>> as_array([1, 0], "where", dtype="bool")
    Traceback (most recent call last):
        ...
    infolens.errors.InputError: where: expected a bool mask, got ndarray of shape (2,) and dtype int64
    """
    if is_torch(x):
        import torch

        if dtype == "bool":
            if x.dtype != torch.bool:
                raise InputError(f"{name}: expected a bool mask, got {describe(x)}")
        elif not x.is_floating_point():
            if x.dtype not in {getattr(torch, n) for n in _TORCH_INTS if hasattr(torch, n)}:
                raise InputError(f"{name}: expected {REAL_ARRAY}, got {describe(x)}")
            x = x.to(torch.float64)
        return x.to(like_torch.device) if like_torch is not None else x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        why = " ".join(str(exc).split())
        raise InputError(f"{name}: expected {REAL_ARRAY}, got {describe(x)} ({why})") from None
    kind = arr.dtype.kind
    if dtype == "bool":
        if kind != "b":
            raise InputError(f"{name}: expected a bool mask, got {describe(arr)}")
    elif kind not in "iuf":
        raise InputError(f"{name}: expected {REAL_ARRAY}, got {describe(arr)}")
    if not arr.dtype.isnative:  # e.g. big-endian '>f8': the same values, native order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if kind in "iu":
        arr = arr.astype(np.float64)
    if like_torch is not None:
        import torch

        return torch.as_tensor(arr, device=like_torch.device)
    return arr


def is_float64(x: Array) -> bool:
    """True if ``x`` (numpy array or tensor) holds float64.

    Examples
    --------
    >>> is_float64(np.zeros(1)), is_float64(np.zeros(1, np.float32))
    (True, False)
    """
    return str(x.dtype) in ("float64", "torch.float64")


def result_dtype(x: Array) -> Any:
    """The floating dtype results are returned in: float64 stays, everything else float32.

    Examples
    --------
    >>> result_dtype(np.zeros(1, np.float16)).__name__
    'float32'
    """
    if is_torch(x):
        import torch

        return torch.float64 if x.dtype == torch.float64 else torch.float32
    return np.float64 if x.dtype == np.float64 else np.float32


def dtype_eps(x: Array) -> float:
    """Machine epsilon of ``x``'s dtype (used for dtype-aware tolerances).

    Examples
    --------
    >>> dtype_eps(np.zeros(1, np.float32))
    1.1920928955078125e-07
    """
    if is_torch(x):
        import torch

        return float(torch.finfo(x.dtype).eps)
    return float(np.finfo(x.dtype).eps)


def moveaxis(x: Array, axis: int, dest: int) -> Array:
    """``numpy.moveaxis`` for numpy arrays and torch tensors alike.

    Examples
    --------
    >>> moveaxis(np.zeros((2, 3)), 0, -1).shape
    (3, 2)
    """
    if is_torch(x):
        return x.movedim(axis, dest)
    return np.moveaxis(x, axis, dest)


def cast(x: Array, dtype: Any) -> Array:
    """``x`` converted to ``dtype`` (a numpy dtype, or a torch dtype for tensors).

    Examples
    --------
    >>> cast(np.ones(2), np.float32).dtype
    dtype('float32')
    """
    if is_torch(x):
        return x.to(dtype)
    return np.asarray(x, dtype=dtype)
