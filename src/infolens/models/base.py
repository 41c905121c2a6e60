"""The model adapter interface.

Every language model infolens can score is wrapped in an adapter that implements
:class:`LanguageModel`. The interface is deliberately small:

* ``tokenize(text)`` turns a document into token ids with the byte span of each token;
* ``bos_id``, ``vocab_size``, ``max_context`` and ``predicts_first`` describe the model;
* ``logits(windows, max_rows=...)`` streams next-token log-probabilities (or unnormalised
  logits) for the requested positions, in chunks of at most ``max_rows`` rows, so that no
  caller ever holds ``[positions, vocabulary]`` floats for a whole window at once.

The caller (:mod:`infolens.score`, :mod:`infolens.compare`) decides which positions are
predicted; the adapter only answers "what is the distribution of token ``j`` of this window
given tokens ``0..j-1`` of the same window".

Data flows one way: text -> tokens -> windows -> adapter -> per-row statistics (the fused
kernel in :mod:`infolens._kernels`) -> accumulators (:mod:`infolens.stream`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Tokenized:
    """A tokenised document.

    Parameters
    ----------
    ids : numpy.ndarray
        Integer token ids, shape ``[n]`` (``int64``; a byte-level model may give its byte
        values as ``uint8``, 8 times less memory). No special tokens are added.
    offsets : numpy.ndarray, optional
        ``int64`` byte spans, shape ``[n, 2]``: token ``k`` covers bytes
        ``offsets[k, 0]:offsets[k, 1]`` of the UTF-8 encoded document. ``None``: one token
        per byte, token ``k`` covering ``[k, k + 1]`` (byte-level models), computed only
        when asked for, so that a long document does not hold ``16 n`` bytes of spans.

    Examples
    --------
    >>> import numpy as np
    >>> t = Tokenized(np.frombuffer(b"hi!", dtype=np.uint8))
    >>> len(t), t.offsets.tolist(), t.spans(np.array([2])).tolist()
    (3, [[0, 1], [1, 2], [2, 3]], [[2, 3]])
    """

    __slots__ = ("_offsets", "ids")

    def __init__(self, ids: np.ndarray, offsets: np.ndarray | None = None) -> None:
        self.ids = ids
        self._offsets = offsets

    @property
    def offsets(self) -> np.ndarray:
        """``int64`` byte spans ``[n, 2]`` (built on each call when there is one token per byte)."""
        if self._offsets is None:
            return self.spans(np.arange(len(self), dtype=np.int64))
        return self._offsets

    def spans(self, positions: np.ndarray) -> np.ndarray:
        """``offsets[positions]``, without building every span of a byte-level document."""
        if self._offsets is None:
            p = np.asarray(positions, dtype=np.int64)
            return np.stack([p, p + 1], axis=-1)
        return self._offsets[positions]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"Tokenized(<{len(self)} tokens>)"


@dataclass(frozen=True)
class Window:
    """One window of a scoring pass.

    The adapter must predict every position ``j`` in ``range(start, len(ids))`` from
    ``ids[:j]`` alone (nothing outside the window is context). Row ``r`` of the output of
    :meth:`LanguageModel.logits` for this window is the distribution of ``ids[start + r]``.

    For a transformer this means feeding ``ids[:-1]`` as input and reading the outputs at
    input positions ``start - 1 .. len(ids) - 2``; so ``start >= 1`` unless the model
    ``predicts_first`` (can predict a token from an empty context, like the byte-level
    n-gram model).

    Examples
    --------
    >>> w = Window(np.array([50256, 464, 3797, 3332]), start=1)
    >>> w.n_predictions, w.targets.tolist()
    (3, [464, 3797, 3332])
    """

    ids: np.ndarray
    start: int

    @property
    def n_predictions(self) -> int:
        return int(self.ids.shape[0]) - self.start

    @property
    def targets(self) -> np.ndarray:
        return self.ids[self.start :]


@runtime_checkable
class LanguageModel(Protocol):
    """What infolens needs from a language model."""

    #: A short description, e.g. ``"hf:gpt2"`` or ``"ngram:order=6"``.
    name: str
    #: The beginning-of-sequence token id, or ``None`` if the model has none.
    bos_id: int | None
    #: Size of the output distribution (the last axis of ``logits``).
    vocab_size: int
    #: The most input positions the model accepts at once; ``None`` if unbounded.
    max_context: int | None
    #: True if the model can predict the first token of a document from an empty context.
    predicts_first: bool
    #: True if tokens are bytes (any byte string is a valid document, UTF-8 or not).
    byte_level: bool

    def tokenize(self, text: str | bytes) -> Tokenized:
        """Token ids and byte offsets, without special tokens."""
        ...

    def logits(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[Any]:
        """Stream next-token logits or log-probabilities for ``windows``.

        Yields 2-D arrays (numpy arrays or torch tensors, on any device) of shape
        ``[rows, vocab_size]`` with ``rows <= max_rows``. Concatenated in order, the rows
        are the predictions for ``windows[0]`` (positions ``start..len-1``), then
        ``windows[1]``, and so on. Rows may be unnormalised logits: consumers normalise
        in log space. ``-inf`` marks a zero-probability entry.
        """
        ...


class ModelSpecError(ValueError):
    """A model specification string could not be resolved to a model."""
