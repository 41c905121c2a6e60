r"""llama.cpp's ``llama-perplexity`` windows, to reproduce its number with any adapter.

``llama-perplexity`` does not score under infolens's definition (every token once, in the
window giving it the most context, :mod:`infolens.windows`). From its source
(``tools/perplexity/perplexity.cpp``), with ``N = n_ctx`` and ``s = [BOS] + t`` the text
tokenised with BOS when the model's ``add_bos_token`` says so:

* **default** (``-c N``): disjoint chunks ``s[cN : cN + N]`` for ``c < len(s) // N`` (the
  tail is dropped); each chunk's first token is *replaced* by BOS; only chunk positions
  ``N/2 + 1 .. N - 1`` are scored (``N/2 - 1`` tokens a chunk, with ``N/2 + 1 .. N - 1``
  tokens of context). Half the text is never scored.
* **strided** (``-c N --ppl-stride S``): windows ``s[iS : iS + N]`` for
  ``i < ceil((len(s) - N) / S)``, decoded as they are (the code puts BOS in the token
  array only after the window is decoded, so only the first window starts with BOS); the
  last ``S`` positions of each window are scored. The first window's first ``N - 1 - S``
  tokens and the tail after the last window are never scored.

:func:`perplexity_windows` builds exactly those windows as
:class:`~infolens.models.base.Window` objects and :func:`llama_perplexity` scores them with
any adapter, so ``llama_perplexity(load_model("gguf:m.gguf"), text, 512)`` is
``llama-perplexity -m m.gguf -c 512``'s final estimate (up to llama.cpp's float32 sums),
and the same call on ``hf:ORIGINAL`` gives the transformers model's number under
llama.cpp's recipe. ``docs/gguf.md`` has the table mapping both modes to infolens's
``(L, S, BOS)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from infolens._backend import is_torch
from infolens._kernels import fused_rows
from infolens.errors import InputError
from infolens.models.base import LanguageModel, Window

__all__ = ["LlamaPerplexity", "llama_perplexity", "perplexity_windows"]


def perplexity_windows(
    tokens: np.ndarray, n_ctx: int, *, bos_id: int | None, stride: int | None = None
) -> list[Window]:
    """The windows ``llama-perplexity`` scores (see the module docstring).

    Parameters
    ----------
    tokens : numpy.ndarray
        The text's token ids, BOS first when the model adds one (``s``).
    n_ctx : int
        ``-c N``.
    bos_id : int or None
        The BOS id that replaces each chunk's first token (default mode), or ``None`` for
        a model without ``add_bos_token``.
    stride : int, optional
        ``--ppl-stride S``; ``None`` (or 0) for the default mode.

    Returns
    -------
    list of Window
        Window ``ids`` are the ``N`` tokens llama.cpp decodes; ``start`` is the first
        scored position.

    Raises
    ------
    infolens.errors.InputError
        Fewer than ``2 N`` tokens (llama.cpp refuses those too), ``N < 2`` or a stride
        outside ``1 .. N - 1``.

    Examples
    --------
    >>> ws = perplexity_windows(np.arange(20), 8, bos_id=-1)
    >>> [(w.ids.tolist(), w.start) for w in ws]  # doctest: +NORMALIZE_WHITESPACE
    [([-1, 1, 2, 3, 4, 5, 6, 7], 5), ([-1, 9, 10, 11, 12, 13, 14, 15], 5)]
    >>> [(int(w.ids[0]), w.start) for w in perplexity_windows(np.arange(20), 8, bos_id=-1, stride=4)]
    [(0, 4), (4, 4), (8, 4)]
    """
    s = np.asarray(tokens, dtype=np.int64)
    n = int(n_ctx)
    if n < 2:
        raise InputError(f"n_ctx: expected >= 2, got {n_ctx}")
    if s.shape[0] < 2 * n:
        raise InputError(
            f"n_ctx {n}: llama-perplexity needs at least {2 * n} tokens, the text has {s.shape[0]}"
        )
    out: list[Window] = []
    if not stride:
        first = n // 2
        for c in range(s.shape[0] // n):
            chunk = s[c * n : (c + 1) * n].copy()
            if bos_id is not None:
                chunk[0] = bos_id
            out.append(Window(chunk, first + 1))
        return out
    st = int(stride)
    if not 1 <= st <= n - 1:
        raise InputError(f"--ppl-stride: expected 1 .. {n - 1} (n_ctx - 1), got {stride}")
    for i in range((s.shape[0] - n + st - 1) // st):
        out.append(Window(s[i * st : i * st + n], n - st))
    return out


@dataclass(frozen=True)
class LlamaPerplexity:
    """``llama-perplexity``'s estimate: ``perplexity = exp(nll_nats / tokens)``."""

    perplexity: float
    nll_nats: float
    tokens: int
    windows: int


def llama_perplexity(
    model: LanguageModel,
    text: str,
    n_ctx: int,
    *,
    stride: int | None = None,
    add_bos: bool | None = None,
    max_rows: int = 1024,
) -> LlamaPerplexity:
    """Score ``text`` with ``model`` the way ``llama-perplexity -c n_ctx`` does.

    Parameters
    ----------
    model : LanguageModel
        Any adapter (``gguf:``, ``hf:``, ...).
    text : str
        The evaluation text (``-f FILE``'s contents).
    n_ctx : int
        ``-c N``.
    stride : int, optional
        ``--ppl-stride S``.
    add_bos : bool, optional
        Whether the model adds BOS (llama.cpp reads ``add_bos_token`` from the GGUF);
        default: the model's ``add_bos`` attribute when it has one, else whether it has a
        BOS token.
    max_rows : int
        Rows per logits chunk.

    Returns
    -------
    LlamaPerplexity

    Examples
    --------
    >>> from infolens.models import load_model
    >>> r = llama_perplexity(load_model("ngram:order=2"), "abcabcabd" * 8, 16)
    >>> r.tokens, r.windows, r.perplexity < 4
    (28, 4, True)
    """
    if add_bos is None:
        add_bos = bool(getattr(model, "add_bos", model.bos_id is not None))
    bos = model.bos_id if add_bos else None
    ids = np.asarray(model.tokenize(text).ids, dtype=np.int64)
    s = np.concatenate([[bos], ids]).astype(np.int64) if bos is not None else ids
    windows = perplexity_windows(s, n_ctx, bos_id=bos, stride=stride)
    targets = np.concatenate([w.targets for w in windows])
    parts: list[float] = []
    done = 0
    for rows in model.logits(windows, max_rows=max_rows):
        k = int(rows.shape[0])
        tg: Any = targets[done : done + k]
        if is_torch(rows):
            import torch

            tg = torch.as_tensor(tg, device=rows.device)
        surprisal: Any = fused_rows(rows, targets=tg).surprisal_p
        if is_torch(surprisal):
            surprisal = surprisal.detach().to("cpu").numpy()
        parts.append(float(np.asarray(surprisal, dtype=np.float64).sum()))
        done += k
    nll = math.fsum(parts)
    n = int(targets.shape[0])
    return LlamaPerplexity(math.exp(nll / n), nll, n, len(windows))
