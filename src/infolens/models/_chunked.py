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

from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["tokenize_in_pieces", "tokenize_stream", "utf8_byte_offsets"]

#: ``encode(text) -> (ids int64 [n], char offsets int64 [n, 2])``.
Encoder = Callable[[str], tuple[np.ndarray, np.ndarray]]


def tokenize_in_pieces(
    encode: Encoder,
    text: str,
    *,
    piece: int = 1 << 20,
    overlap: int = 4096,
    agree: int = 8,
    atomic: Sequence[str] = (),
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
    if len(text) <= piece + overlap:
        return encode(text)
    parts = list(tokenize_stream(encode, [text], piece=piece, overlap=overlap, agree=agree))
    del atomic  # see tokenize_stream
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def utf8_byte_offsets(text: str) -> np.ndarray:
    """``b[i]`` = UTF-8 byte offset of character ``i`` of ``text`` (length ``len(text)+1``).

    Parameters
    ----------
    text : str
        Any text (lone surrogates count 3 bytes, as ``surrogatepass`` encodes them).

    Returns
    -------
    numpy.ndarray
        ``int64``, ``len(text) + 1`` offsets; the last is the UTF-8 length.

    Examples
    --------
    >>> utf8_byte_offsets("aé€😀").tolist()
    [0, 1, 3, 6, 10]
    """
    cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    lens = 1 + (cps >= 0x80).astype(np.int64) + (cps >= 0x800) + (cps >= 0x10000)
    out = np.zeros(len(cps) + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out


class _Text:
    """The part of a text stream still needed: ``buf = text[base:]``, read on demand."""

    def __init__(self, pieces: Iterable[str]) -> None:
        self.it = iter(pieces)
        self.buf = ""
        self.base = 0  # character index of buf[0]
        self.byte_base = 0  # UTF-8 bytes before buf[0]
        self.eof = False

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def fill(self, upto: float) -> None:
        """Read until the text reaches character ``upto`` (or its end)."""
        if self.end >= upto or self.eof:
            return
        parts, have = [self.buf], self.end
        while have < upto:
            p = next(self.it, None)
            if p is None:
                self.eof = True
                break
            if not isinstance(p, str):
                raise TypeError(f"tokenize_stream: expected str pieces, got {type(p).__name__}")
            parts.append(p)
            have += len(p)
        self.buf = "".join(parts)

    def get(self, a: int, b: int) -> str:
        return self.buf[a - self.base : b - self.base]

    def drop_before(self, a: int) -> None:
        head = self.buf[: a - self.base]
        self.byte_base += len(head) if head.isascii() else len(head.encode("utf-8", "surrogatepass"))
        self.buf = self.buf[a - self.base :]
        self.base = a

    def byte_spans(self, spans: np.ndarray) -> np.ndarray:
        """Absolute character spans (all ``>= base``) as absolute UTF-8 byte spans."""
        if not len(spans):
            return spans.copy()
        hi = int(spans.max()) - self.base
        seg = self.buf[:hi]
        if seg.isascii():
            return spans - self.base + self.byte_base
        cum = utf8_byte_offsets(seg) + self.byte_base
        return cum[spans - self.base]


def tokenize_stream(
    encode: Encoder,
    pieces: Iterable[str],
    *,
    piece: int = 1 << 20,
    overlap: int = 4096,
    agree: int = 8,
    byte_spans: bool = False,
    atomic: Sequence[str] = (),
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """:func:`tokenize_in_pieces` over a text that arrives in pieces (any sizes).

    Yields consecutive runs of tokens, ``(ids, spans)``, as soon as they are certain; their
    concatenation equals ``encode`` of the whole text (the same splicing rule as
    :func:`tokenize_in_pieces`). At most about ``piece + 2 * overlap`` characters plus one
    input piece are held.

    Parameters
    ----------
    encode : callable
        As for :func:`tokenize_in_pieces`.
    pieces : iterable of str
        The text, in pieces.
    piece, overlap, agree : int
        As for :func:`tokenize_in_pieces`.
    byte_spans : bool
        Yield UTF-8 byte spans of the whole text instead of character spans.
    atomic : sequence of str
        Reserved (not used yet): strings no piece boundary may cut. The splicing assumes
        a tokenizer decides a token from less than ``overlap / 4`` characters around it,
        so a special token must be shorter than that (the default overlap gives 1,024).

    Yields
    ------
    ids : numpy.ndarray
        int64 ``[k]``.
    spans : numpy.ndarray
        int64 ``[k, 2]``: absolute character (or byte) spans.

    Examples
    --------
    >>> import re
    >>> def chars(s):  # a toy tokenizer: one token per character
    ...     return (np.array([ord(c) for c in s], dtype=np.int64),
    ...             np.array([(i, i + 1) for i in range(len(s))], dtype=np.int64).reshape(-1, 2))
    >>> runs = list(tokenize_stream(chars, ["é" * 30, "b" * 30], piece=16, overlap=8,
    ...                             agree=2, byte_spans=True))
    >>> spans = np.concatenate([s for _, s in runs])
    >>> spans[[0, 29, 30, -1]].tolist()  # 'é' is two UTF-8 bytes
    [[0, 2], [58, 60], [60, 61], [89, 90]]
    """
    if piece < 1 or overlap < 4 or agree < 1:
        raise ValueError(f"tokenize_stream: bad piece={piece}, overlap={overlap}, agree={agree}")
    t = _Text(pieces)

    def enc(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        ids, spans = encode(t.get(a, b))
        return ids, spans + a

    def out(ids: np.ndarray, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ids, (t.byte_spans(spans) if byte_spans else spans)

    t.fill(piece + overlap + 1)
    first = 0
    stop = min(t.end, piece + overlap)
    ids, spans = enc(first, stop)
    given = False  # whether tokens were given out yet
    while True:
        t.fill(stop + 1)
        if t.end <= stop:  # nothing after the current piece
            break
        ov = overlap
        while True:
            nxt = max(stop - ov, first)
            t.fill(nxt + piece + ov)
            nstop = min(t.end, nxt + piece + ov)
            ids2, spans2 = enc(nxt, nstop)
            cut = _splice(ids, spans, ids2, spans2, lo=nxt + ov // 4, hi=stop - ov // 4,
                          agree=agree)  # fmt: skip
            if cut is not None:
                break
            if nxt == first:
                # no agreement anywhere: the rest whole (never a guess), joined to what was
                # given out at the current run's first token, where the pieces agreed
                t.fill(float("inf"))
                ids2, spans2 = enc(first, t.end)
                k = _rejoin(ids, spans, ids2, spans2) if given else 0
                ids, spans = ids2[k:], spans2[k:]
                stop = t.end
                break
            ov *= 2
        if cut is None:
            break
        i, j = cut
        given = True
        yield out(ids[:i], spans[:i])
        first, stop = nxt, nstop
        ids, spans = ids2[j:], spans2[j:]
        t.drop_before(first)
    yield out(ids, spans)


def _rejoin(ids: np.ndarray, spans: np.ndarray, ids2: np.ndarray, spans2: np.ndarray) -> int:
    """Index in ``ids2`` (the rest of the text tokenised whole, from the current piece's
    start) of the current run's first token (where two pieces agreed): same start, same
    id."""
    c0 = int(spans[0, 0])
    k = int(np.searchsorted(spans2[:, 0], c0))
    if k < len(ids2) and int(spans2[k, 0]) == c0 and int(ids2[k]) == int(ids[0]):
        return k
    raise RuntimeError(
        "tokenize_stream: the tokenizer's output depends on text farther away than the "
        "pieces overlap; tokenise this text whole"
    )


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
        if i + agree >= len(ids) or j + agree >= len(ids2) or spans[i + agree, 1] > hi:
            return None  # too close to an end to show agreement
        if (
            starts2[j] == starts[i]
            and (ids[i : i + agree + 1] == ids2[j : j + agree + 1]).all()
            and (spans[i : i + agree + 1] == spans2[j : j + agree + 1]).all()
        ):
            return i, j
    return None
