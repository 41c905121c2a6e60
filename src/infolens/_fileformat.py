r"""The checksummed container under every file infolens writes and reads back.

Base files (``compare --save-base``) and fitted ``ngram`` models share one layout, so that
one reader validates everything before a single value is used::

    magic         8 bytes     per format, e.g. b"ILBASE02"; the last two are the version
    header_len    u64 LE      at most MAX_HEADER bytes
    header        JSON object (UTF-8)
    header_sum    16 bytes    BLAKE2b-128 of magic + header_len + header
    body          blocks, back to back; block i is footer["blocks"][i] = [size, hex digest]
    footer        JSON object (UTF-8), with "blocks"
    footer_len    u64 LE
    footer_sum    16 bytes    BLAKE2b-128 of footer + footer_len
    end           8 bytes     b"ILFILEND"

Opening a file reads only the header and the footer and checks both checksums and that the
sizes add up to the file's size (so any truncation is found at once); a body block is read
and checked by :meth:`Container.block` or :meth:`Container.verify` when it is used, so a
corrupt block is found without reading the whole file first. Every failure is one
:class:`~infolens.errors.InputError` line naming the file, the offset or field, and what
was expected.

BLAKE2b (``hashlib``, no dependency) detects every bit flip, truncation and splice; it is
not a signature: a file crafted with valid checksums is still range-checked field by field
by the format's own reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from pathlib import Path
from typing import IO, Any

from infolens._atomic import atomic_output
from infolens.errors import InputError

__all__ = [
    "DIGEST_SIZE",
    "END",
    "MAX_HEADER",
    "Container",
    "ContainerWriter",
    "digest",
    "is_count",
]

END = b"ILFILEND"
DIGEST_SIZE = 16
#: Largest header accepted (bytes): headers hold settings, never data.
MAX_HEADER = 1 << 20
#: Largest footer accepted (bytes): a document list of a few million entries.
MAX_FOOTER = 1 << 30
_U64 = struct.Struct("<Q")


def digest(*parts: bytes | memoryview) -> bytes:
    """BLAKE2b-128 of the concatenated ``parts``.

    Examples
    --------
    >>> digest(b"ab") == digest(b"a", b"b"), len(digest(b""))
    (True, 16)
    """
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for p in parts:
        h.update(p)
    return h.digest()


def is_count(x: Any, lo: int = 0, hi: int | None = None) -> bool:
    """``x`` is a JSON integer (not a bool) in ``[lo, hi]``.

    Examples
    --------
    >>> is_count(3), is_count(True), is_count(-1), is_count(5, hi=4)
    (True, False, False, False)
    """
    return (
        isinstance(x, int) and not isinstance(x, bool) and x >= lo and (hi is None or x <= hi)
    )


def _json(data: bytes) -> Any:
    """Parse JSON; ``ValueError`` for anything malformed (deep nesting included)."""
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from None


class ContainerWriter:
    """Write a container atomically (:func:`infolens._atomic.atomic_output`).

    Use as a context manager: the header goes out on entry, :meth:`write_block` appends a
    block, and :meth:`set_footer` sets the footer written on a clean exit (plus
    ``blocks``). On an exception nothing is left at ``path`` (an existing file there is
    kept as it was).

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> with ContainerWriter(path, b"ILTEST01", {"a": 1}) as w:
    ...     w.write_block(b"hello")
    ...     w.set_footer({"n": 1})
    >>> c = Container(path, b"ILTEST01", "test file")
    >>> c.header, c.footer["n"], c.block(0)
    ({'a': 1}, 1, b'hello')
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        magic: bytes,
        header: dict[str, Any],
        *,
        option: str = "output",
    ) -> None:
        assert len(magic) == 8
        self.path = path
        self.option = option
        self.magic = magic
        self.header = header
        self.blocks: list[list[Any]] = []
        self.footer: dict[str, Any] = {}
        self.size = 0
        self._out: Any = None
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> ContainerWriter:
        self._out = atomic_output(self.path, "wb", option=self.option)
        self._fh = self._out.__enter__()
        head = json.dumps(self.header, allow_nan=False).encode()
        if len(head) > MAX_HEADER:
            raise InputError(f"{self.path}: header of {len(head)} bytes exceeds {MAX_HEADER}")
        first = self.magic + _U64.pack(len(head)) + head
        self._write(first + digest(first))
        return self

    def _write(self, data: bytes | memoryview) -> None:
        assert self._fh is not None
        self._fh.write(data)
        self.size += len(data)

    def write_block(self, data: bytes | memoryview) -> None:
        """Append one body block (any size, ``0`` included) and record its checksum."""
        self.blocks.append([len(data), digest(data).hex()])
        self._write(data)

    def set_footer(self, footer: dict[str, Any]) -> None:
        """The footer's fields (``blocks`` is added on close)."""
        self.footer = dict(footer)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        out = self._out
        self._out = None
        if exc_type is None:
            try:
                foot = json.dumps({**self.footer, "blocks": self.blocks}, allow_nan=False).encode()
                tail = foot + _U64.pack(len(foot))
                self._write(tail + digest(tail) + END)
            except BaseException as err:
                out.__exit__(type(err), err, err.__traceback__)
                raise
        out.__exit__(exc_type, exc, tb)


class Container:
    """Open a container: magic, header, footer and sizes checked; blocks checked on use.

    Parameters
    ----------
    path : str or Path
        The file.
    magic : bytes
        The format's 8-byte magic (the current version).
    what : str
        How errors name the file, e.g. ``"--base-file"``.
    kind : str
        What the file should be, for the error on a wrong magic.
    older : dict of bytes to str, optional
        Leading bytes of older versions of the format, each with the advice given.

    Attributes
    ----------
    header, footer : dict
        The parsed JSON objects (``footer`` without ``blocks``).
    body_offset : int
        Where the first block starts.
    block_spans : list of (int, int)
        ``(offset, size)`` of every block.

    Raises
    ------
    InputError
        The file cannot be read, is not of this format, is of an older version, is
        truncated, or has a checksum, size or JSON error; one line naming the file and
        the offset.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        magic: bytes,
        what: str,
        kind: str = "an infolens file",
        older: dict[bytes, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.what = what
        self.kind = kind
        self._verified: set[int] = set()
        try:
            self._fh = open(self.path, "rb")  # kept open: blocks are read later
        except OSError as exc:
            raise self.error(f"cannot read: {exc.strerror or exc}") from None
        try:
            self._open(magic, older or {})
        except BaseException:
            self._fh.close()
            raise

    def error(self, msg: str) -> InputError:
        """An :class:`InputError` ``WHAT PATH: MSG``."""
        return InputError(f"{self.what} {self.path}: {msg}")

    def _read(self, offset: int, size: int) -> bytes:
        try:
            self._fh.seek(offset)
            data = self._fh.read(size)
        except OSError as exc:
            raise self.error(f"cannot read at byte {offset}: {exc.strerror or exc}") from None
        if len(data) != size:
            raise self.error(f"truncated: expected {size} bytes at byte {offset}, got {len(data)}")
        return data

    def _open(self, magic: bytes, older: dict[bytes, str]) -> None:
        try:
            st = os.fstat(self._fh.fileno())
        except OSError as exc:
            raise self.error(f"cannot read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise self.error("expected a regular file")
        size = st.st_size
        head = self._fh.read(16)
        for old_magic, advice in older.items():
            if head.startswith(old_magic):
                raise self.error(advice)
        if len(head) < 8 or head[:8] != magic:
            if head[:6] == magic[:6] and len(head) >= 8:
                raise self.error(
                    f"expected format version {magic[6:8].decode(errors='replace')}, got "
                    f"{head[6:8].decode(errors='replace')!r} (bytes 6-7); written by another "
                    f"infolens version?"
                )
            raise self.error(f"expected {self.kind} (magic {magic!r} at byte 0), got {head[:8]!r}")
        minimum = 16 + DIGEST_SIZE + 8 + DIGEST_SIZE + len(END)
        if size < minimum:
            raise self.error(f"truncated: {size} bytes, expected at least {minimum}")
        (hlen,) = _U64.unpack(head[8:16])
        if hlen > MAX_HEADER or 16 + hlen + DIGEST_SIZE + 8 + DIGEST_SIZE + len(END) > size:
            raise self.error(
                f"header length {hlen} (bytes 8-15) does not fit the file's {size} bytes; "
                f"truncated or corrupt"
            )
        header = self._read(16, hlen)
        hsum = self._read(16 + hlen, DIGEST_SIZE)
        if digest(head, header) != hsum:
            raise self.error(f"header checksum mismatch (bytes 0-{16 + hlen + DIGEST_SIZE - 1})")
        self.body_offset = 16 + hlen + DIGEST_SIZE
        tail_len = 8 + DIGEST_SIZE + len(END)
        tail = self._read(size - tail_len, tail_len)
        if tail[-len(END) :] != END:
            raise self.error(
                f"truncated or corrupt: no end marker {END!r} at byte {size - len(END)}"
            )
        (flen,) = _U64.unpack(tail[:8])
        foot_start = size - tail_len - flen
        if flen > MAX_FOOTER or foot_start < self.body_offset:
            raise self.error(
                f"footer length {flen} (byte {size - tail_len}) does not fit the file; "
                f"truncated or corrupt"
            )
        footer = self._read(foot_start, flen)
        if digest(footer, tail[:8]) != tail[8 : 8 + DIGEST_SIZE]:
            raise self.error(f"footer checksum mismatch (bytes {foot_start}-{size - 1})")
        try:
            self.header = _json(header)
            foot = _json(footer)
        except ValueError as exc:
            raise self.error(f"malformed JSON in header or footer ({exc})") from None
        if not isinstance(self.header, dict) or not isinstance(foot, dict):
            raise self.error("expected JSON objects as header and footer")
        blocks = foot.pop("blocks", None)
        self.footer = foot
        if not isinstance(blocks, list):
            raise self.error("footer field 'blocks': expected a list")
        spans: list[tuple[int, int]] = []
        self._digests: list[bytes] = []
        offset = self.body_offset
        for i, b in enumerate(blocks):
            ok = isinstance(b, list) and len(b) == 2 and is_count(b[0]) and isinstance(b[1], str)
            dig = bytes.fromhex(b[1]) if ok and _is_hex(b[1]) else b""
            if len(dig) != DIGEST_SIZE:
                raise self.error(f"footer block {i}: expected [size, hex digest], got {b!r:.60}")
            spans.append((offset, b[0]))
            self._digests.append(dig)
            offset += b[0]
        if offset != foot_start:
            raise self.error(
                f"body of {foot_start - self.body_offset} bytes (bytes {self.body_offset}-"
                f"{foot_start - 1}), but the footer's blocks add up to "
                f"{offset - self.body_offset}"
            )
        self.block_spans = spans

    def block(self, i: int) -> bytes:
        """Block ``i``'s bytes, checksum verified."""
        off, size = self.block_spans[i]
        data = self._read(off, size)
        self._check(i, data)
        return data

    def _check(self, i: int, data: bytes | memoryview) -> None:
        if digest(data) != self._digests[i]:
            off, size = self.block_spans[i]
            raise self.error(f"block {i} checksum mismatch (bytes {off}-{off + size - 1})")
        self._verified.add(i)

    def verify(self, i: int, data: bytes | memoryview | None = None) -> None:
        """Check block ``i`` once (later calls are free); ``data`` may supply its bytes
        (from a memory map) instead of a read."""
        if i in self._verified:
            return
        off, size = self.block_spans[i]
        self._check(i, data if data is not None else self._read(off, size))

    def close(self) -> None:
        """Close the file."""
        self._fh.close()

    def __del__(self) -> None:
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()


def _is_hex(s: str) -> bool:
    return len(s) == 2 * DIGEST_SIZE and all(c in "0123456789abcdef" for c in s)
