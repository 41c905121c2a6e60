r"""Documents and how they are read: files, directories, stdin, FIFOs, JSON Lines.

The bottom floor of scoring (``text -> tokens -> windows -> ...``): both ``infolens
score`` and ``infolens compare``, and the streaming engine under them, take documents from
here. Reading is bounded: every input is read in chunks of 1 MiB (so Ctrl-C and ``SIGTERM``
are seen at once, even on ``/dev/zero``), and a document larger than ``max_bytes``
(default :data:`DEFAULT_MAX_DOCUMENT_BYTES`, 1 GiB) is refused with one line instead of
reading until memory runs out.

What can be read: regular files, ``-`` (stdin), FIFOs and character devices (read as
streams, like stdin), and directories (their files matching ``glob``). Sockets, block
devices and other special files are refused by what they are.
"""

from __future__ import annotations

import codecs
import json
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from infolens.errors import InputError

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "STREAM_BYTES",
    "Document",
    "TextCounter",
    "TextDecoder",
    "check_max_bytes",
    "decode_text",
    "read_documents",
    "text_sizes",
]

#: Largest document read by default (bytes); ``read_documents(max_bytes=...)`` and the
#: CLI's ``--max-document-bytes`` change it.
DEFAULT_MAX_DOCUMENT_BYTES = 1 << 30
#: Files larger than this (bytes) are read lazily, a piece at a time, as they are scored
#: (:meth:`Document.from_file`); ``read_documents(stream_bytes=...)`` changes it.
STREAM_BYTES = 8 << 20
_CHUNK = 1 << 20


class Document:
    """A document to score: a name (file, ``file:line``, ``<stdin>``) and its text.

    ``text`` is ``bytes`` only for input that is not valid UTF-8, which only byte-level
    models accept (:func:`infolens.pipeline.stream_documents` decodes ``bytes`` for other
    models, or refuses them naming the byte offset).

    A large file is not read when its document is made: :func:`read_documents` gives it
    as a *lazy* document (:meth:`from_file`), whose :meth:`pieces` read the file a MiB at
    a time, so the streaming engine never holds the whole text; ``text`` reads it whole
    when something asks for it (and decodes it as :func:`read_documents` decodes a file).

    Examples
    --------
    >>> Document("notes.txt", "hello")
    Document(name='notes.txt', text='hello')
    >>> [p for p in Document("d", "abcde").pieces(2)]
    ['ab', 'cd', 'e']
    """

    __slots__ = ("_allow_bytes", "_max_bytes", "_path", "_size", "_text", "name")

    def __init__(self, name: str, text: str | bytes) -> None:
        self.name = name
        self._text: str | bytes | None = text
        self._path: str | None = None
        self._size: int | None = None
        self._allow_bytes = True
        self._max_bytes = DEFAULT_MAX_DOCUMENT_BYTES

    @classmethod
    def from_file(
        cls,
        path: str,
        *,
        size: int | None = None,
        allow_bytes: bool = False,
        max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> Document:
        """A document read lazily from the regular file ``path`` (named ``path``).

        ``size``: its size when made (the progress bar's hint); ``allow_bytes`` as for
        :func:`read_documents`; reading more than ``max_bytes`` (a file that grows) is an
        :class:`InputError`.
        """
        doc = cls(path, "")
        doc._text = None
        doc._path = path
        doc._size = size
        doc._allow_bytes = allow_bytes
        doc._max_bytes = max_bytes
        return doc

    @property
    def lazy(self) -> bool:
        """True if the text is read from its file when asked for (:meth:`from_file`)."""
        return self._text is None

    @property
    def allow_bytes(self) -> bool:
        """Whether text that is not valid UTF-8 is kept as ``bytes`` (byte-level models)."""
        return self._allow_bytes

    @property
    def text(self) -> str | bytes:
        """The whole text (a lazy document's file is read, and decoded, on each access)."""
        if self._text is not None:
            return self._text
        assert self._path is not None
        data = b"".join(self._read())
        return decode_text(data, self.name, self._allow_bytes)

    @property
    def size_hint(self) -> int | None:
        """Its size in bytes where known without reading it (``None`` otherwise)."""
        if self._text is None:
            return self._size
        if isinstance(self._text, bytes) or self._text.isascii():
            return len(self._text)
        return None

    def _read(self) -> Iterator[bytes]:
        assert self._path is not None
        try:
            with open(self._path, "rb") as f:
                total = 0
                while True:
                    b = f.read(_CHUNK)
                    if not b:
                        return
                    total += len(b)
                    if total > self._max_bytes:
                        raise InputError(
                            f"{self.name}: document larger than the maximum of "
                            f"{self._max_bytes:,} bytes (--max-document-bytes)"
                        )
                    yield b
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read: {exc.strerror or exc}") from None

    def pieces(self, size: int = _CHUNK) -> Iterator[str | bytes]:
        """The text in consecutive pieces of about ``size`` characters (``str``) or bytes.

        A lazy document gives its file's raw bytes, undecoded (the reader decodes them,
        :class:`TextDecoder`); an in-memory one slices its ``text``. Each call starts
        from the beginning.
        """
        if self._text is None:
            yield from self._read()
            return
        t = self._text
        for lo in range(0, len(t), size):
            yield t[lo : lo + size]

    def _key(self) -> tuple[str, str | bytes | None, str | None]:
        return (self.name, self._text, self._path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Document):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self._text is None:
            return f"Document(name={self.name!r}, path={self._path!r})"
        return f"Document(name={self.name!r}, text={self._text!r})"


class TextDecoder:
    """Decode a document's pieces incrementally, as :func:`decode_text` decodes it whole.

    ``str`` pieces pass through. ``bytes`` pieces are decoded as UTF-8 (a character cut by
    a piece boundary is joined); at the first invalid byte the document is *binary*: with
    ``allow_bytes`` the raw bytes are what a byte-level model reads anyway, and the rest is
    decoded with replacement characters (for the character and word counts only); without
    it, an :class:`InputError` names the document and the byte offset.

    Examples
    --------
    >>> d = TextDecoder("doc", allow_bytes=True)
    >>> d.decode(b"caf\\xc3"), d.decode(b"\\xa9 ok", final=True), d.binary
    ('caf', 'é ok', False)
    >>> d = TextDecoder("doc", allow_bytes=True)
    >>> d.decode(b"a\\xffb", final=True), d.binary
    ('a�b', True)
    """

    def __init__(self, name: str, allow_bytes: bool) -> None:
        self.name = name
        self.allow_bytes = allow_bytes
        self.binary = False
        self.offset = 0  # bytes decoded so far
        self._strict = codecs.getincrementaldecoder("utf-8")()
        self._lenient: codecs.IncrementalDecoder | None = None

    def decode(self, piece: str | bytes, final: bool = False) -> str:
        """The text of ``piece`` (pending bytes of a cut character are kept for the next)."""
        if isinstance(piece, str):
            return piece
        if self._lenient is not None:
            return self._lenient.decode(piece, final)
        try:
            out = self._strict.decode(piece, final)
        except UnicodeDecodeError as exc:
            pending = self._strict.getstate()[0]
            where = self.offset - len(pending) + exc.start
            if not self.allow_bytes:
                raise InputError(
                    f"{self.name}: invalid UTF-8 at byte offset {where} "
                    f"(only byte-level models such as 'ngram' accept arbitrary bytes)"
                ) from None
            self.binary = True
            self._lenient = codecs.getincrementaldecoder("utf-8")(errors="replace")
            out = self._lenient.decode(pending + piece, final)
        self.offset += len(piece)
        return out


class TextCounter:
    """Bytes, characters and words of a document fed a piece at a time (:func:`text_sizes`
    of the whole text, without holding it).

    Examples
    --------
    >>> c = TextCounter("doc", allow_bytes=True)
    >>> for p in (b"na\\xc3", b"\\xafve ca", b"f\\xc3\\xa9\\n"):
    ...     _ = c.add(p)
    >>> c.finish(), c.sizes == text_sizes("naïve café\\n")
    ('', True)
    """

    def __init__(self, name: str, allow_bytes: bool) -> None:
        self.decoder = TextDecoder(name, allow_bytes)
        self.n_bytes = self.characters = self.words = 0
        self._space_before = True
        self.name = name

    def add(self, piece: str | bytes, final: bool = False) -> str:
        """Count ``piece``; return its decoded text (for a tokenizer that reads text)."""
        if isinstance(piece, str):
            self.n_bytes += len(piece) if piece.isascii() else len(utf8(piece, self.name))
        else:
            self.n_bytes += len(piece)
        text = self.decoder.decode(piece, final)
        self.characters += len(text)
        self.words, self._space_before = _count_words(text, self.words, self._space_before)
        return text

    @property
    def binary(self) -> bool:
        """The bytes so far were not valid UTF-8 (see :class:`TextDecoder`)."""
        return self.decoder.binary

    def finish(self) -> str:
        """End the text: return the decoded rest (a character cut at the very end is
        invalid UTF-8); :attr:`sizes` is then complete."""
        return self.add(b"", final=True)

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(bytes, characters, words)``, as :func:`text_sizes` (after :meth:`finish`)."""
        return self.n_bytes, self.characters, self.words


def text_sizes(text: str | bytes, name: str = "document") -> tuple[int, int, int]:
    """``(bytes, characters, words)`` of a document.

    ``bytes`` is the UTF-8 length (or the raw length of ``bytes`` input), ``characters`` the
    number of Unicode code points, ``words`` ``len(text.split())`` (whitespace-separated).
    Raw bytes that are not valid UTF-8 are decoded with replacement characters for the
    character and word counts.

    Parameters
    ----------
    text : str or bytes
        The document's text (``bytes``: raw input, for byte-level models).
    name : str
        The document's name, for the error.

    Returns
    -------
    tuple of int
        ``(bytes, characters, words)``.

    Raises
    ------
    InputError
        ``text`` holds a lone surrogate (it has no UTF-8 form), naming ``name``.

    Examples
    --------
    >>> text_sizes("naïve café\\n")
    (13, 11, 2)
    >>> text_sizes(b"caf\\xe9")  # not UTF-8: one replacement character
    (4, 4, 1)
    """
    if isinstance(text, bytes):
        return _sizes(text, text)
    return _sizes(text, utf8(text, name))


def _sizes(text: str | bytes, data: bytes) -> tuple[int, int, int]:
    """:func:`text_sizes` of ``text`` whose UTF-8 form (or raw bytes) is ``data``."""
    if isinstance(text, bytes):
        chars = words = 0
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        prev_tail = True  # "the text so far ends in whitespace"
        for lo in range(0, len(text), _CHUNK):
            piece = dec.decode(text[lo : lo + _CHUNK], final=lo + _CHUNK >= len(text))
            chars += len(piece)
            words, prev_tail = _count_words(piece, words, prev_tail)
        return len(data), chars, words
    words, tail = 0, True
    for lo in range(0, len(text), _CHUNK):
        words, tail = _count_words(text[lo : lo + _CHUNK], words, tail)
    return len(data), len(text), words


def _count_words(piece: str, words: int, space_before: bool) -> tuple[int, bool]:
    """Add the words of ``piece`` (``str.split()``'s) to ``words``, a piece at a time so
    that no list of every word of a large document is built; a word cut by the piece
    boundary (no whitespace on either side of it) is counted once."""
    if not piece:
        return words, space_before
    n = len(piece.split())
    if n and not space_before and not piece[0].isspace():
        n -= 1  # continues the previous piece's last word
    return words + n, piece[-1].isspace()


def utf8(text: str, name: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate is an :class:`InputError` naming ``name``."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{name}: expected valid Unicode text, got a lone surrogate at character {exc.start}"
        ) from None


def decode_text(data: bytes, name: str, allow_bytes: bool, base_offset: int = 0) -> str | bytes:
    """``data`` decoded as UTF-8, or kept as ``bytes`` if it is not and ``allow_bytes``.

    Raises
    ------
    InputError
        Invalid UTF-8 and not ``allow_bytes``: naming ``name`` and the byte offset
        (``base_offset`` added).

    Examples
    --------
    >>> decode_text(b"caf\\xc3\\xa9", "d", False), decode_text(b"\\xff", "d", True)
    ('café', b'\\xff')
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if allow_bytes:
            return data
        raise InputError(
            f"{name}: invalid UTF-8 at byte offset {base_offset + exc.start} "
            f"(only byte-level models such as 'ngram' accept arbitrary bytes)"
        ) from None


def _read_stream(f: IO[bytes], name: str, max_bytes: int) -> bytes:
    """Read ``f`` to its end in chunks, refusing more than ``max_bytes``."""
    parts: list[bytes] = []
    total = 0
    while True:
        b = f.read(min(_CHUNK, max_bytes + 1 - total))
        if not b:
            return b"".join(parts)
        parts.append(b)
        total += len(b)
        if total > max_bytes:
            raise InputError(
                f"{name}: document larger than the maximum of {max_bytes:,} bytes "
                f"(--max-document-bytes); an endless input such as /dev/zero?"
            )


def _special(mode: int) -> str | None:
    """What an unreadable special file is, or ``None`` for one that reads as a stream."""
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return None
    return "a special file"


def _read_path(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
                raise InputError(
                    f"{path}: {st.st_size:,} bytes, larger than the maximum of {max_bytes:,} "
                    f"(--max-document-bytes)"
                )
            return _read_stream(f, path, max_bytes)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _regular_size(path: str) -> int | None:
    """Size of ``path`` if it is a readable regular file, else ``None`` (read it whole)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or not os.access(path, os.R_OK):
        return None
    return int(st.st_size)


def _glob(p: str, pattern: str) -> list[str]:
    """Files under directory ``p`` matching ``pattern``; an unreadable directory is an
    error (``pathlib`` would skip it and report no match)."""
    try:
        os.scandir(p).close()
    except OSError as exc:
        raise InputError(f"{p}: cannot read the directory: {exc.strerror or exc}") from None
    try:
        matches = sorted(str(q) for q in Path(p).glob(pattern) if q.is_file())
    except (ValueError, NotImplementedError) as exc:  # '', absolute patterns
        raise InputError(
            f"--glob {pattern!r}: expected a relative pattern such as '*.txt', got "
            f"an invalid one ({exc})"
        ) from None
    if "**" in pattern or "/" in pattern:  # subdirectories the pattern walks must be readable
        for root, dirs, _ in os.walk(p):
            for d in dirs:
                sub = os.path.join(root, d)
                if not os.access(sub, os.R_OK | os.X_OK):
                    raise InputError(f"{sub}: cannot read the directory: Permission denied")
    return matches


def _expand(paths: Sequence[str], glob: str | None) -> Iterator[str]:
    for p in paths:
        if p == "-":
            yield p
            continue
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise InputError(f"{p}: no such file or directory") from None
        except OSError as exc:
            raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            if glob is None:
                raise InputError(
                    f"{p}: is a directory; pass --glob PATTERN (e.g. '*.txt') to read files in it"
                )
            matches = _glob(p, glob)
            if not matches:
                raise InputError(f"{p}: no files match --glob {glob!r}")
            yield from matches
            continue
        what = _special(st.st_mode)
        if what is not None:
            raise InputError(f"{p}: is {what}; expected a file, a FIFO, a directory or '-'")
        yield p  # explicit files are read whatever --glob says


def check_max_bytes(n: int) -> None:
    """Refuse a maximum document size below 1 (``--max-document-bytes``).

    :func:`read_documents` checks it too, but lazily; the CLI calls this before any model
    loads.

    >>> check_max_bytes(0)
    Traceback (most recent call last):
    ...
    infolens.errors.InputError: --max-document-bytes: expected >= 1, got 0
    """
    if n < 1:
        raise InputError(f"--max-document-bytes: expected >= 1, got {n}")


def read_documents(
    paths: Sequence[str],
    *,
    jsonl_field: str | None = None,
    glob: str | None = None,
    allow_bytes: bool = False,
    stdin: IO[bytes] | None = None,
    max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    stream_bytes: int = STREAM_BYTES,
) -> Iterator[Document]:
    """Read documents lazily from files, directories, FIFOs and stdin.

    Parameters
    ----------
    paths : sequence of str
        Files (each one document), ``-`` for stdin, FIFOs and character devices (read
        like stdin), or directories (with ``glob``).
    jsonl_field : str, optional
        Read every input as records: JSON Lines, one document per non-blank line, the
        text being the string field ``jsonl_field`` of each object, names ``FILE:LINE``;
        or, for a file named ``*.parquet``, one document per row of the string column
        ``jsonl_field``, names ``FILE:ROW`` (needs pyarrow).
    glob : str, optional
        Pattern for files inside directories (``pathlib`` glob, e.g. ``'**/*.txt'``).
    allow_bytes : bool
        Accept text that is not valid UTF-8 (as ``bytes``); for byte-level models.
    stdin : binary file, optional
        What ``-`` reads (default ``sys.stdin.buffer``).
    max_bytes : int
        Largest input read (bytes; a JSON Lines file counts whole).
    stream_bytes : int
        Regular files larger than this are not read here: their documents are lazy
        (:meth:`Document.from_file`), read a piece at a time while they are scored, and
        their text is checked as it is read (invalid UTF-8 for a model that is not
        byte-level is then refused by the scoring, naming the byte offset).

    Raises
    ------
    InputError
        One line naming the file (and line, or byte offset for invalid UTF-8): missing,
        unreadable (a directory without permission included), a socket or block device,
        larger than ``max_bytes``, malformed JSON (too deeply nested included).

    Examples
    --------
    >>> import io
    >>> [d.text for d in read_documents(["-"], stdin=io.BytesIO(b"from stdin"))]
    ['from stdin']
    >>> lines = io.BytesIO(b'{"text": "a"}\\n\\n{"text": "b"}\\n')
    >>> [(d.name, d.text) for d in read_documents(["-"], jsonl_field="text", stdin=lines)]
    [('<stdin>:1', 'a'), ('<stdin>:3', 'b')]
    """
    check_max_bytes(max_bytes)
    for path in _expand(paths, glob):
        name = "<stdin>" if path == "-" else path
        if path == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            try:
                data = _read_stream(stream, name, max_bytes)
            except OSError as exc:
                raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
        else:
            if jsonl_field is None:
                size = _regular_size(path)
                if size is not None and size > stream_bytes:
                    if size > max_bytes:
                        raise InputError(
                            f"{path}: {size:,} bytes, larger than the maximum of "
                            f"{max_bytes:,} (--max-document-bytes)"
                        )
                    yield Document.from_file(
                        path, size=size, allow_bytes=allow_bytes, max_bytes=max_bytes
                    )
                    continue
            if jsonl_field is not None and path.lower().endswith(".parquet"):
                yield from _parquet_documents(path, jsonl_field, max_bytes)
                continue
            data = _read_path(path, max_bytes)
        if jsonl_field is None:
            yield Document(name, decode_text(data, name, allow_bytes))
            continue
        yield from _jsonl_documents(data, name, jsonl_field)


def _parquet_documents(path: str, field: str, max_bytes: int) -> Iterator[Document]:
    """One document per row of the string column ``field`` of a Parquet file, named
    ``FILE:ROW`` (rows counted from 1, as lines are), read a batch of rows at a time."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow (pip install 'infolens[parquet]')"
        ) from None
    size = _regular_size(path)
    if size is None:
        raise InputError(f"{path}: expected a regular Parquet file")
    if size > max_bytes:
        raise InputError(f"{path}: {size:,} bytes, larger than the maximum of {max_bytes:,} "
                         "(--max-document-bytes)")  # fmt: skip
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({_one_line(exc)})") from None
    if field not in schema.names:
        raise InputError(f"{path}: expected a column {field!r}, got {', '.join(schema.names)}")
    typ = schema.field(field).type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise InputError(f"{path}: column {field!r}: expected strings, got {typ}")
    row = 0
    try:
        for batch in pf.iter_batches(columns=[field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                row += 1
                where = f"{path}:{row}"
                if text is None:
                    raise InputError(f"{where}: column {field!r} is null")
                utf8(text, where)
                yield Document(where, text)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: row {row + 1}: cannot read ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _jsonl_documents(data: bytes, name: str, field: str) -> Iterator[Document]:
    offset = 0
    for lineno, line in enumerate(data.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(line)
        where = f"{name}:{lineno}"
        if not line.strip():
            continue
        decoded = decode_text(line, where, False, base_offset=start)
        try:
            obj = json.loads(decoded)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise InputError(f"{where}: invalid JSON: nested too deeply") from None
        if not isinstance(obj, dict) or field not in obj:
            raise InputError(f"{where}: expected a JSON object with field {field!r}")
        text = obj[field]
        if not isinstance(text, str):
            raise InputError(f"{where}: field {field!r}: expected a string, got {type(text).__name__}")
        utf8(text, where)
        yield Document(where, text)
