r"""Tokenise a long text a piece at a time, with the ids of tokenising it whole.

A tokenizer's peak memory grows with its input (a Hugging Face fast tokenizer keeps about a
hundred bytes of bookkeeping per token, then Python lists of them), so a document of tens of
megabytes cannot be tokenised in one call within a bounded memory. :func:`tokenize_in_pieces`
tokenises overlapping pieces of ``piece`` characters and splices consecutive pieces where
their tokenisations **agree**: a token of the next piece that starts at the same character,
with the same id, as a token of the current one, followed by ``agree`` more such tokens.
Tokens of the current piece up to that point are kept, and the next piece takes over from
there.

Why that equals the whole-text tokenisation: every tokenizer in use (BPE, WordPiece,
Unigram, with their regex or whitespace pre-tokenizers) decides a token from a bounded
neighbourhood of the text; far from a piece's ends, a piece's tokens are the whole text's.
A piece's first tokens can differ (a SentencePiece ``▁`` prefix, a cut inside a word) and
its last ones too (the text cut short): the splice point is searched only after the
``margin`` characters that follow the next piece's start, and before the current piece's
last ``margin`` characters, and agreement over ``agree`` tokens is required. When no
splice point is found (a tokenizer whose context is longer than the overlap), the overlap
is doubled, up to tokenising the rest whole: the result is never a guess. Tested against
whole-text tokenisation on texts that fit (``tests/test_chunked_tokenize.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["tokenize_in_pieces"]

#: ``encode(text) -> (ids int64 [n], char offsets int64 [n, 2])``.
Encoder = Callable[[str], tuple[np.ndarray, np.ndarray]]


def tokenize_in_pieces(
    encode: Encoder,
    text: str,
    *,
    piece: int = 1 << 20,
    overlap: int = 4096,
    agree: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and character spans of ``text``, tokenised ``piece`` characters at a time.

    Parameters
    ----------
    encode : callable
        ``encode(s)`` returns the ids (int64 ``[n]``) and the character spans (int64
        ``[n, 2]``, ``[start, end)`` within ``s``) of ``s`` tokenised on its own.
    text : str
        The text.
    piece : int
        Characters per piece (besides the overlap).
    overlap : int
        Characters by which consecutive pieces overlap at first (doubled where no splice
        point is found). The splice point is searched in the middle of the overlap, a
        quarter of it away from either end.
    agree : int
        Consecutive tokens on which two pieces must agree (same start, same id) at a
        splice point.

    Returns
    -------
    ids : numpy.ndarray
        int64 ``[n]``.
    spans : numpy.ndarray
        int64 ``[n, 2]``: character spans within ``text``.

    Examples
    --------
    >>> import re
    >>> def words(s):  # a toy tokenizer: runs of word characters, and single others
    ...     m = list(re.finditer(r"\\w+|\\W", s))
    ...     return (np.array([hash(x.group()) % 1000 for x in m], dtype=np.int64),
    ...             np.array([x.span() for x in m], dtype=np.int64).reshape(-1, 2))
    >>> text = "the cat sat on the mat. " * 50
    >>> ids, spans = tokenize_in_pieces(words, text, piece=64, overlap=32, agree=3)
    >>> whole_ids, whole_spans = words(text)
    >>> bool((ids == whole_ids).all() and (spans == whole_spans).all())
    True
    """
    if piece < 1 or overlap < 4 or agree < 1:
        raise ValueError(f"tokenize_in_pieces: bad piece={piece}, overlap={overlap}, agree={agree}")
    n = len(text)
    if n <= piece + overlap:
        return encode(text)
    ids_out: list[np.ndarray] = []
    spans_out: list[np.ndarray] = []
    first = 0  # where the current piece's text starts
    stop = min(n, piece + overlap)  # ... and ends
    ids, spans = encode(text[first:stop])
    while stop < n:
        ov = overlap
        while True:
            nxt = max(stop - ov, first)
            nstop = min(n, nxt + piece + ov)
            ids2, spans2 = encode(text[nxt:nstop])
            spans2 = spans2 + nxt
            cut = _splice(ids, spans, ids2, spans2, lo=nxt + ov // 4, hi=stop - ov // 4,
                          agree=agree)  # fmt: skip
            if cut is not None:
                break
            if nxt == first:  # no agreement anywhere: give up on pieces, never guess
                return encode(text)
            ov *= 2
        i, j = cut
        ids_out.append(ids[:i])
        spans_out.append(spans[:i])
        first, stop = nxt, nstop
        ids, spans = ids2[j:], spans2[j:]
    ids_out.append(ids)
    spans_out.append(spans)
    return np.concatenate(ids_out), np.concatenate(spans_out)


def _splice(
    ids: np.ndarray, spans: np.ndarray, ids2: np.ndarray, spans2: np.ndarray, *,
    lo: int, hi: int, agree: int,
) -> tuple[int, int] | None:  # fmt: skip
    """The first ``(i, j)``: token ``i`` of one piece and ``j`` of the next start at the same
    character in ``[lo, hi]`` with the same id, and so do the ``agree`` tokens after them."""
    starts, starts2 = spans[:, 0], spans2[:, 0]
    cand = np.flatnonzero((starts >= lo) & (starts <= hi))
    if not len(cand):
        return None
    js = np.searchsorted(starts2, starts[cand])
    for i, j in zip(cand.tolist(), js.tolist()):
        if i + agree >= len(ids) or j + agree >= len(ids2):
            return None  # too close to an end to show agreement
        if (
            starts2[j] == starts[i]
            and (ids[i : i + agree + 1] == ids2[j : j + agree + 1]).all()
            and (spans[i : i + agree + 1] == spans2[j : j + agree + 1]).all()
        ):
            return i, j
    return None
