r"""Window planning for scoring long documents: a pure function of lengths and settings.

This module decides *which* predictions each window of a scoring pass makes; it never
touches a model. The definition (also in ``docs/scoring.md``):

A document is the token sequence ``t = t_1 .. t_n``. The model sees at most ``L`` input
positions per window and its output at input position ``i`` predicts position ``i + 1``.

* ``bos="first"``: ``s = [BOS] + t``; all ``n`` tokens are predicted.
* ``bos="none"``: ``s = t``; ``t_1`` is not predicted, unless the model ``predicts_first``
  (then it is predicted from the empty context).
* ``bos="every"``: windows are placed over ``s = t`` with ``L - 1`` input positions each,
  and ``BOS`` is put in front of every window's inputs, so ``t_1`` is predicted from
  ``BOS`` alone.

Window ``w`` has inputs ``s[a_w : a_w + L']`` (``L' = L``, or ``L - 1`` for ``every``) with
``a_w = w * S``, except the last window, whose inputs end at ``s[-2]`` (the input that
predicts the last token) so that it is full whenever the document is longer than the window.
Every prediction is made in the first window that contains it, which is the one giving it
the most context: none is skipped and none is made twice.

With ``S = L`` and ``bos="first"`` the windows are exactly lm-evaluation-harness's
``get_rolling_token_windows(t, BOS, L, context_len=1)`` followed by ``make_disjoint_window``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from infolens.errors import InputError

if TYPE_CHECKING:
    from infolens.models.base import LanguageModel

__all__ = [
    "BOS_POLICIES",
    "DEFAULT_MAX_LENGTH",
    "BosPolicy",
    "PlannedWindow",
    "ScoreSettings",
    "WindowPlanner",
    "check_settings",
    "context_lengths",
    "plan_windows",
    "resolve_settings",
]

BosPolicy = Literal["first", "every", "none"]
BOS_POLICIES: tuple[str, ...] = ("first", "every", "none")


def check_settings(max_length: int | None, stride: int | None, bos: str) -> int | None:
    """Check window settings that hold for any model and return the stride to use.

    Parameters
    ----------
    max_length : int or None
        ``L``; ``None`` means unbounded (one window per document, no stride).
    stride : int or None
        ``S``; ``None`` means ``max(1, L // 2)``.
    bos : {"first", "every", "none"}
        The BOS policy.

    Returns
    -------
    int or None
        ``S`` (``None`` when ``L`` is).

    Raises
    ------
    InputError
        An unknown ``bos``, ``L < 1`` (``L < 2`` for ``every``) or ``S`` outside
        ``[1, L]``, naming the option.

    Examples
    --------
    >>> check_settings(1024, None, "first")
    512
    >>> check_settings(8, 9, "first")
    Traceback (most recent call last):
    ...
    infolens.errors.InputError: --stride: expected 1 <= S <= L = 8, got 9
    """
    if bos not in BOS_POLICIES:
        raise InputError(f"--bos: expected one of {', '.join(BOS_POLICIES)}, got {bos!r}")
    if max_length is None:
        return stride
    min_len = 2 if bos == "every" else 1
    if max_length < min_len:
        raise InputError(f"--max-length: expected >= {min_len} for --bos {bos}, got {max_length}")
    if stride is None:
        stride = max(1, max_length // 2)
    if not 1 <= stride <= max_length:
        raise InputError(f"--stride: expected 1 <= S <= L = {max_length}, got {stride}")
    return stride


@dataclass(frozen=True)
class PlannedWindow:
    """One window of a document, in document token indices (0-based: ``t[0]`` is ``t_1``).

    The window's token ids are ``([BOS] if bos else []) + t[lo:hi]``; it predicts the tokens
    ``t[target_lo:hi]``. As a :class:`infolens.models.Window` its ``start`` is
    ``target_lo - lo + bos``, and its input positions number ``hi - lo + bos - 1``.

    Attributes
    ----------
    lo, hi : int
        The slice of the document's tokens in the window (inputs and the last target).
    target_lo : int
        First token predicted here; ``t[target_lo:hi]`` are this window's predictions.
    bos : bool
        True if ``BOS`` is prepended to the window's ids.

    Examples
    --------
    >>> w = PlannedWindow(lo=2, hi=7, target_lo=4, bos=False)
    >>> w.start, w.n_inputs, w.n_predictions
    (2, 4, 3)
    """

    lo: int
    hi: int
    target_lo: int
    bos: bool

    @property
    def start(self) -> int:
        """Index in the window's ids of the first predicted token."""
        return self.target_lo - self.lo + int(self.bos)

    @property
    def n_inputs(self) -> int:
        """Input positions the model sees: ``len(ids) - 1``."""
        return self.hi - self.lo + int(self.bos) - 1

    @property
    def n_predictions(self) -> int:
        return self.hi - self.target_lo


def _starts(m: int, inputs: int, stride: int) -> list[int]:
    """Window starts ``a_w`` over a sequence of ``m`` items, ``inputs`` input positions each.

    Window ``a`` has inputs ``x[a : a + inputs]``. Regular windows step by ``stride`` while
    they do not reach the end; the last one is aligned so its inputs end at ``x[m - 2]``.
    """
    if m - 1 <= inputs:
        return [0]
    starts: list[int] = []
    a = 0
    while a + inputs < m - 1:
        starts.append(a)
        a += stride
    starts.append(m - 1 - inputs)
    return starts


def plan_windows(
    n_tokens: int,
    max_length: int | None,
    stride: int | None,
    bos: str,
    *,
    predicts_first: bool = False,
) -> list[PlannedWindow]:
    """Plan the windows that score a document of ``n_tokens`` tokens.

    Parameters
    ----------
    n_tokens : int
        Number of tokens ``n`` of the document (without any special token).
    max_length : int or None
        ``L``, the most input positions per window; ``None`` means unbounded (one window).
    stride : int or None
        ``S``, the step between window starts, ``1 <= S <= L``; ``None`` means ``L // 2``
        (at least 1).
    bos : {"first", "every", "none"}
        Where the beginning-of-sequence token goes (see the module docstring).
    predicts_first : bool
        The model can predict a token from an empty context; with ``bos="none"`` the first
        token is then predicted too.

    Returns
    -------
    list of PlannedWindow
        In order; their ``t[target_lo:hi]`` slices partition the predicted tokens, which
        are ``t[0:n]`` for ``first``/``every`` and for ``none`` with ``predicts_first``,
        else ``t[1:n]``.

    Raises
    ------
    ValueError
        ``n_tokens < 0``; or (:class:`~infolens.errors.InputError`, from
        :func:`check_settings`) ``bos`` is unknown, ``L < 1`` (``L < 2`` for ``every``)
        or ``S`` is outside ``[1, L]``.

    Examples
    --------
    >>> [(w.lo, w.hi, w.target_lo) for w in plan_windows(7, 4, 4, "first")]
    [(0, 4, 0), (2, 7, 4)]
    """
    if n_tokens < 0:
        raise ValueError(f"n_tokens: expected >= 0, got {n_tokens}")
    stride = check_settings(max_length, stride, bos)
    return _plan(n_tokens, max_length, stride, bos, predicts_first)


def _plan(
    n_tokens: int, max_length: int | None, stride: int | None, bos: str, predicts_first: bool
) -> list[PlannedWindow]:
    """:func:`plan_windows` for settings already checked (:func:`check_settings`)."""
    if n_tokens == 0:
        return []

    # x is the sequence windows are placed over; x index i <-> t index i - offset
    if bos == "first":
        m, offset, prefix = n_tokens + 1, 1, False
        lowest = 1  # s[0] is BOS, never predicted
    else:
        m, offset, prefix = n_tokens, 0, bos == "every"
        lowest = 0 if (prefix or predicts_first) else 1
    if m - 1 < lowest:
        return []  # bos none with one token (and no predicts_first): nothing to predict

    if max_length is None:
        inputs = m  # unbounded: one window over everything
        starts = [0]
    else:
        assert stride is not None
        inputs = max_length - 1 if prefix else max_length
        starts = _starts(m, inputs, stride)

    windows: list[PlannedWindow] = []
    done = lowest - 1  # highest x index predicted so far
    for a in starts:
        hi_x = min(a + inputs, m - 1)  # last x index this window can predict
        first_x = done + 1
        done = hi_x
        # ids cover x[a : hi_x + 1]; in t coordinates subtract the offset
        if bos == "first" and a == 0:
            lo_t, has_bos = 0, True  # x[0] is the BOS itself
        else:
            lo_t, has_bos = a - offset, prefix
        windows.append(
            PlannedWindow(lo=lo_t, hi=hi_x + 1 - offset, target_lo=first_x - offset, bos=has_bos)
        )
    return windows


class WindowPlanner:
    """:func:`plan_windows` for a document whose tokens arrive a piece at a time.

    Feed the running token count with :meth:`add`; it returns the windows that are certain
    whatever follows (a regular window is certain once a token beyond its end has come);
    :meth:`finish` returns the rest (the window aligned to the end). Concatenated, they are
    exactly ``plan_windows(n, ...)`` for the final count ``n`` (tested for every ``n``,
    ``L``, ``S`` and BOS policy), so a streamed document is scored with the same windows as
    one tokenised whole. :attr:`keep_from` is the lowest token index a window still to come
    can need: tokens below it can be dropped.

    Settings must be checked already (:func:`check_settings`).

    Examples
    --------
    >>> planner = WindowPlanner(4, 2, "first", predicts_first=False)
    >>> got = planner.add(5) + planner.add(7) + planner.finish()
    >>> got == plan_windows(7, 4, 2, "first")
    True
    """

    def __init__(
        self, max_length: int | None, stride: int | None, bos: str, *, predicts_first: bool
    ) -> None:
        self.max_length, self.stride, self.bos = max_length, stride, bos
        self.predicts_first = predicts_first
        self.offset = 1 if bos == "first" else 0  # x index = t index + offset
        prefix = bos == "every"
        self.lowest = 1 if bos == "first" else (0 if (prefix or predicts_first) else 1)
        if max_length is None:
            self.inputs: int | None = None
        else:
            self.inputs = max_length - 1 if prefix else max_length
        self.n = 0
        self.next_start = 0  # the next regular start a (x coordinates)
        self.done = self.lowest - 1  # highest x index predicted so far
        self.regular = 0  # regular windows given out

    @property
    def keep_from(self) -> int:
        """Lowest token index a window not yet given out can include."""
        if self.inputs is None:
            return 0
        # the next regular window starts at next_start; the final one after the last
        # regular start (a_last + 1), or at 0 when there was none
        lowest_x = self.next_start - self.stride + 1 if self.regular else 0  # type: ignore[operator]
        return max(0, lowest_x - self.offset)

    def _window(self, a: int, hi_x: int) -> PlannedWindow:
        first_x = self.done + 1
        self.done = hi_x
        if self.bos == "first" and a == 0:
            lo_t, has_bos = 0, True
        else:
            lo_t, has_bos = a - self.offset, self.bos == "every"
        return PlannedWindow(
            lo=lo_t, hi=hi_x + 1 - self.offset, target_lo=first_x - self.offset, bos=has_bos
        )

    def add(self, n_tokens: int) -> list[PlannedWindow]:
        """The windows made certain by a running count of ``n_tokens`` tokens."""
        if n_tokens < self.n:
            raise ValueError(f"n_tokens: expected >= {self.n} (a running count), got {n_tokens}")
        self.n = n_tokens
        out: list[PlannedWindow] = []
        if self.inputs is None or n_tokens == 0:
            return out
        m = n_tokens + self.offset
        assert self.stride is not None
        while self.next_start + self.inputs < m - 1:  # stays true as m grows
            a = self.next_start
            out.append(self._window(a, a + self.inputs))
            self.next_start += self.stride
            self.regular += 1
        return out

    def finish(self) -> list[PlannedWindow]:
        """The remaining windows, once every token has come."""
        n = self.n
        if n == 0:
            return []
        m = n + self.offset
        if m - 1 < self.lowest:
            return []
        if self.inputs is None:
            return [self._window(0, m - 1)]
        if not self.regular:  # m - 1 <= inputs: one window over everything
            return [self._window(0, min(self.inputs, m - 1))]
        a = m - 1 - self.inputs
        return [self._window(a, m - 1)]


def context_lengths(windows: list[PlannedWindow]) -> list[int]:
    """Context (input positions, counting BOS) each prediction sees, in token order.

    The prediction of ``t[j]`` in a window sees ``j - lo + bos`` input positions. Useful for
    tests and for documenting the effective context of a ``(L, S)`` setting.
    """
    out: list[int] = []
    for w in windows:
        out.extend(j - w.lo + int(w.bos) for j in range(w.target_lo, w.hi))
    return out


#: Default window length: the model's context, capped here.
DEFAULT_MAX_LENGTH = 2048




@dataclass(frozen=True)
class ScoreSettings:
    """Resolved scoring settings: ``L`` (``None``: one window per document), ``S``, BOS.

    Made by :func:`resolve_settings`, which checks them against the model.

    Examples
    --------
    >>> ScoreSettings(max_length=1024, stride=512, bos="first").stride
    512
    """

    max_length: int | None
    stride: int | None
    bos: str


def resolve_settings(
    model: LanguageModel,
    max_length: int | None = None,
    stride: int | None = None,
    bos: str | None = None,
) -> ScoreSettings:
    """Apply the defaults and check the settings against the model.

    Defaults: ``bos = "first"`` if the model has a BOS token, else ``"none"``;
    ``L = min(model.max_context, 2048)`` (``None``, one window per document, for models of
    unbounded context); ``S = max(1, L // 2)``.

    Parameters
    ----------
    model : LanguageModel
        The model the settings are for (its ``bos_id`` and ``max_context``).
    max_length, stride : int, optional
        ``L`` and ``S``; ``None`` for the defaults.
    bos : {"first", "every", "none"}, optional
        The BOS policy; ``None`` for the default.

    Returns
    -------
    ScoreSettings

    Raises
    ------
    InputError
        ``L`` beyond the model's context (naming both), ``S`` outside ``[1, L]``, a stride
        without ``L`` for a model of unbounded context, or a BOS policy that needs a BOS
        token the model lacks.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> resolve_settings(load_model("ngram"))
    ScoreSettings(max_length=None, stride=None, bos='none')
    >>> resolve_settings(load_model("ngram"), max_length=64)
    ScoreSettings(max_length=64, stride=32, bos='none')
    """
    if bos is None:
        bos = "first" if model.bos_id is not None else "none"
    ctx = model.max_context
    if max_length is None:
        max_length = None if ctx is None else min(ctx, DEFAULT_MAX_LENGTH)
    elif ctx is not None and max_length > ctx:
        raise InputError(
            f"--max-length: {max_length} exceeds the context of model {model.name} ({ctx} positions)"
        )
    if max_length is None and stride is not None:
        raise InputError(
            f"--stride: model {model.name} has unbounded context (one window per document); "
            f"pass --max-length too"
        )
    stride = check_settings(max_length, stride, bos)
    if bos in ("first", "every") and model.bos_id is None:
        raise InputError(f"--bos {bos}: model {model.name} has no BOS token; use --bos none")
    return ScoreSettings(max_length=max_length, stride=stride, bos=bos)
