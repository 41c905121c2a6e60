"""The model adapter interface.

Every language model infolens can score is wrapped in an adapter that implements
:class:`LanguageModel`. The interface is deliberately small:

* ``tokenize(text)`` turns a document into token ids with the byte span of each token;
* ``bos_id``, ``vocab_size``, ``max_context`` and ``predicts_first`` describe the model;
* ``logits(windows, max_rows=...)`` streams next-token log-probabilities (or unnormalised
  logits) for the requested positions, in chunks of at most ``max_rows`` rows, so that no
  caller ever holds ``[positions, vocabulary]`` floats for a whole window at once.

Optional, for what needs more than scoring:

* ``tokenize_stream(pieces)`` tokenises a text given in pieces, a run of tokens at a time,
  with the ids and absolute byte spans of tokenising it whole (streaming a long document;
  without it the pieces are joined and given to ``tokenize``);
* ``decode(ids)`` is the text of a sequence of token ids (generation);
* ``start_decoder(prefix, n)`` returns a :class:`Decoder`: ``n`` copies of the sequence
  ``prefix`` extended a token at a time, with the next-token logits of each (generation,
  e.g. with a KV cache). Without it, :func:`start_decoder` falls back on
  :class:`WindowDecoder`, which asks ``logits`` for the last position of the sequence so
  far: any adapter can generate, at the cost of recomputing the context each step.
  An adapter for a server that returns only top log-probabilities can implement a
  :class:`Decoder` whose rows are ``-inf`` outside the returned tokens.

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


def check_windows(model: LanguageModel, windows: Sequence[Window], hint: str = "") -> None:
    """Refuse windows a model without its own first-token prediction cannot score: a
    window starting at 0 (nothing to condition on), or one with more inputs (``len(ids) - 1``)
    than ``model.max_context``. ``hint`` is added to the second message (e.g. an option).

    Raises
    ------
    ValueError
        Naming the model and the window's size.

    Examples
    --------
    >>> class M: name, max_context = "m", 4
    >>> check_windows(M(), [Window(np.arange(5), 1)])
    >>> check_windows(M(), [Window(np.arange(6), 1)])
    Traceback (most recent call last):
    ...
    ValueError: m: window of 5 inputs exceeds the context 4
    """
    for w in windows:
        if w.start < 1:
            raise ValueError(
                f"{model.name}: cannot predict a token from an empty context (window start 0)"
            )
        if model.max_context is not None and w.ids.shape[0] - 1 > model.max_context:
            raise ValueError(
                f"{model.name}: window of {w.ids.shape[0] - 1} inputs exceeds the context "
                f"{model.max_context}{hint}"
            )


class ModelSpecError(ValueError):
    """A model specification string could not be resolved to a model."""


@runtime_checkable
class Decoder(Protocol):
    """Next-token logits of ``n`` sequences extended one token at a time (generation).

    Row ``k`` of :meth:`next_logits` is the distribution of the next token of sequence
    ``k`` given the whole sequence so far, exactly as :meth:`LanguageModel.logits` would
    predict that position (the scoring definition); :meth:`append` extends every sequence
    by one token.
    """

    @property
    def length(self) -> int:
        """Tokens in each sequence so far (the prefix included)."""
        ...

    def next_logits(self) -> Any:
        """``[n, vocab_size]`` logits or log-probabilities (numpy or torch)."""
        ...

    def append(self, ids: np.ndarray) -> None:
        """Extend sequence ``k`` by ``ids[k]`` (int64 ``[n]``)."""
        ...


class ContextFull(Exception):
    """A decoder cannot take another token: the model's context is full."""


class WindowDecoder:
    """The generic :class:`Decoder`: each step predicts the last position of every
    sequence with :meth:`LanguageModel.logits` (one window per sequence, the whole
    sequence as context), so it works with any adapter and equals scoring by construction.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> m = load_model("ngram")
    >>> d = WindowDecoder(m, np.frombuffer(b"abab", np.uint8).astype(np.int64), 2)
    >>> d.next_logits().shape, d.length
    ((2, 256), 4)
    >>> d.append(np.array([97, 98])); d.length
    5
    """

    def __init__(self, model: LanguageModel, prefix: np.ndarray, n: int) -> None:
        self.model = model
        self.seqs = np.tile(np.asarray(prefix, dtype=np.int64), (n, 1))
        if not model.predicts_first and self.seqs.shape[1] == 0:
            raise ValueError(f"{model.name}: cannot predict a token from an empty context")

    @property
    def length(self) -> int:
        return int(self.seqs.shape[1])

    def next_logits(self) -> Any:
        n, t = self.seqs.shape
        if self.model.max_context is not None and t > self.model.max_context:
            raise ContextFull(f"{self.model.name}: context of {self.model.max_context} is full")
        dummy = np.zeros((n, 1), dtype=np.int64)  # the predicted position's own id is unused
        ids = np.concatenate([self.seqs, dummy], axis=1)
        windows = [Window(ids[k], t) for k in range(n)]
        rows = list(self.model.logits(windows, max_rows=max(1, n)))
        if len(rows) == 1:
            return rows[0]
        if hasattr(rows[0], "detach"):
            import torch

            return torch.cat(rows)
        return np.concatenate(rows)

    def append(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, 1)
        self.seqs = np.concatenate([self.seqs, ids], axis=1)


def start_decoder(model: LanguageModel, prefix: np.ndarray, n: int) -> Decoder:
    """The model's own decoder (``model.start_decoder``, e.g. with a KV cache), else a
    :class:`WindowDecoder`.

    Parameters
    ----------
    model : LanguageModel
    prefix : numpy.ndarray
        Token ids every sequence starts with (the BOS token included, if any).
    n : int
        Number of sequences (samples of the same prefix, decoded as a batch).
    """
    own = getattr(model, "start_decoder", None)
    if own is not None:
        return own(np.asarray(prefix, dtype=np.int64), n)  # type: ignore[no-any-return]
    return WindowDecoder(model, prefix, n)


def decode_ids(model: LanguageModel, ids: Sequence[int] | np.ndarray) -> str:
    """Text of token ids: the model's ``decode`` if it has one, else its tokens' texts."""
    own = getattr(model, "decode", None)
    if own is not None:
        return str(own(ids))
    dt = getattr(model, "decode_token", None)
    if dt is None:
        return " ".join(str(int(i)) for i in ids)
    return "".join(str(dt(int(i))) for i in ids)
