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
    """True if ``x`` is a torch tensor (checked without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def any_torch(*xs: Any) -> bool:
    return any(is_torch(x) for x in xs if x is not None)


def as_array(x: Any, name: str, *, like_torch: Any = None) -> Array:
    """``x`` as a numpy array or torch tensor; lists become float64 numpy arrays.

    If ``like_torch`` is a tensor and ``x`` is not, ``x`` is converted to a tensor on the
    same device, so numpy and torch inputs can be mixed.
    """
    if is_torch(x):
        return x
    if like_torch is not None:
        import torch

        arr = np.asarray(x)
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        return torch.as_tensor(arr, device=like_torch.device)
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name}: expected an array of numbers, got {type(x).__name__}"
            ) from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name}: expected an array of numbers, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def result_dtype(x: Array) -> Any:
    """The floating dtype results are returned in: float64 stays, everything else float32."""
    if is_torch(x):
        import torch

        return torch.float64 if x.dtype == torch.float64 else torch.float32
    return np.float64 if x.dtype == np.float64 else np.float32


def dtype_eps(x: Array) -> float:
    """Machine epsilon of ``x``'s dtype (used for dtype-aware tolerances)."""
    if is_torch(x):
        import torch

        return float(torch.finfo(x.dtype).eps)
    return float(np.finfo(x.dtype).eps)


def dtype_name(x: Array) -> str:
    return str(x.dtype).replace("torch.", "")


def moveaxis(x: Array, axis: int, dest: int) -> Array:
    if is_torch(x):
        return x.movedim(axis, dest)
    return np.moveaxis(x, axis, dest)


def to_compute(x: Array) -> Array:
    """Upcast to float64, the precision every kernel accumulates in."""
    if is_torch(x):
        import torch

        return x.to(torch.float64)
    return x.astype(np.float64, copy=False)


def cast(x: Array, dtype: Any) -> Array:
    if is_torch(x):
        return x.to(dtype)
    return np.asarray(x, dtype=dtype)


def item(x: Any) -> float:
    return float(x.item()) if hasattr(x, "item") else float(x)
