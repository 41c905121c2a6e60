"""numpy / torch dispatch without a hard dependency on torch.

Like einops' ``_backends``: dispatch on the array's own type. torch is imported only when
the input already is a torch tensor (then it is in ``sys.modules``). Python sequences and
scalars become numpy ``float64`` arrays.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

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


def as_array(x: Any, name: str, *, like_torch: Any = None, dtype: str = "float") -> Array:
    """``x`` as a numpy array or torch tensor.

    Non-floating input becomes float64 (``dtype="float"``) or bool (``dtype="bool"``, for
    masks). If ``like_torch`` is a tensor, the result is a tensor on its device, so numpy
    and torch inputs (and tensors on different devices) can be mixed.

    Examples
    --------
    >>> as_array([1, 2], "p").dtype
    dtype('float64')
    >>> as_array([1, 0], "where", dtype="bool").tolist()
    [True, False]
    """
    if is_torch(x):
        arr_t = x.to(like_torch.device) if like_torch is not None else x
        if dtype == "bool":
            import torch

            return arr_t.to(torch.bool)
        return arr_t
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected an array of numbers, got {type(x).__name__}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name}: expected an array of numbers, got dtype {arr.dtype}")
    if dtype == "bool":
        arr = arr.astype(bool, copy=False)
    elif not np.issubdtype(arr.dtype, np.floating):
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
