"""The Parquet form of the token records (``infolens score --tokens FILE.parquet``).

The columns are the fields of the JSONL records (:data:`infolens.tokens.TOKEN_FIELDS`), in
compact types::

    doc             dictionary<int32, string>    the document's name
    position        uint32                       DELTA_BINARY_PACKED
    token           dictionary<int32, string>
    bytes           fixed_size_list<uint32>[2]   DELTA_BINARY_PACKED; null where unknown
    surprisal_bits  float32                      BYTE_STREAM_SPLIT
    entropy_bits    float32                      BYTE_STREAM_SPLIT
    rank            uint32
    context         uint32
    top             list<struct<token: string, p: float32>>   most likely first

compressed with zstd, one row group per :data:`ROW_GROUP_ROWS` records (written as the
records arrive: memory does not grow with the run). ``surprisal_bits``, ``entropy_bits``
and the probabilities are rounded to float32 (24-bit significand: a relative error of at
most ``2**-24``, about 6e-8, e.g. 0.0000006 bits on 10 bits); infinities and NaN are kept
as such (the JSONL writes them as strings). Integers are unsigned 32-bit: a document of
4 GiB or more cannot be written (the reader's default limit is 1 GiB).

Integrity: every data page carries its CRC-32 (Parquet page checksums, verified by
:func:`read_batches` and by any reader that asks for it), and the file-level key-value
metadata holds

* ``infolens.format`` = ``infolens.tokens`` and ``infolens.format_version`` = ``1``;
* ``infolens.blake2b``: the BLAKE2b-256 digest of the whole file, footer included, computed
  with the 64 characters of the digest itself set to ``0``. The footer is written last, so
  the writer keeps it back, computes the digest over everything written before it plus
  the footer with the placeholder, and puts the digest in the placeholder's place (same
  length: no offset moves). The reader hashes the file the same way before it decodes
  anything, so a changed byte anywhere (page headers and the footer, which the page
  checksums do not cover, included) is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np

from infolens._atomic import atomic_output
from infolens.errors import InputError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "INSTALL_HINT",
    "ROW_GROUP_ROWS",
    "ParquetSink",
    "have_pyarrow",
    "read_batches",
    "require_pyarrow",
]

FORMAT = "infolens.tokens"
FORMAT_VERSION = "1"
#: Records per row group.
ROW_GROUP_ROWS = 65_536
INSTALL_HINT = "pip install 'infolens[parquet]'"
_KEY_FORMAT = b"infolens.format"
_KEY_VERSION = b"infolens.format_version"
_KEY_DIGEST = b"infolens.blake2b"
_PLACEHOLDER = b"0" * 64
_MAGIC = b"PAR1"
_U32 = 2**32
_CHUNK = 1 << 20


def have_pyarrow() -> bool:
    """Whether pyarrow can be imported (without importing it)."""
    return importlib.util.find_spec("pyarrow") is not None


def require_pyarrow(option: str = "--tokens") -> Any:
    """``pyarrow.parquet``, or one :class:`InputError` line saying how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{option}: Parquet output needs pyarrow, which is not installed ({INSTALL_HINT})"
        ) from None
    return pq


def schema() -> Any:
    """The Arrow schema of a tokens file (with the format name and version)."""
    import pyarrow as pa

    name = pa.dictionary(pa.int32(), pa.string())
    top = pa.struct([pa.field("token", pa.string(), nullable=False),
                     pa.field("p", pa.float32(), nullable=False)])  # fmt: skip
    return pa.schema(
        [
            pa.field("doc", name, nullable=False),
            pa.field("position", pa.uint32(), nullable=False),
            pa.field("token", name, nullable=False),
            pa.field("bytes", pa.list_(pa.uint32(), 2)),
            pa.field("surprisal_bits", pa.float32(), nullable=False),
            pa.field("entropy_bits", pa.float32(), nullable=False),
            pa.field("rank", pa.uint32(), nullable=False),
            pa.field("context", pa.uint32(), nullable=False),
            pa.field("top", pa.list_(top), nullable=False),
        ],
        metadata={_KEY_FORMAT: FORMAT.encode(), _KEY_VERSION: FORMAT_VERSION.encode()},
    )


class _HashingFile:
    """The file object pyarrow writes to: hashes everything and, once :attr:`holding` is
    set, keeps the bytes back (the footer) instead of writing them."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.hash = hashlib.blake2b(digest_size=32)
        self.pos = 0
        self.holding = False
        self.held = bytearray()
        self.closed = False

    def write(self, b: Any) -> int:
        b = bytes(b)
        if self.holding:
            self.held += b
        else:
            self.hash.update(b)
            self.f.write(b)
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False


def _u32(a: np.ndarray, what: str) -> np.ndarray:
    if a.size and (int(a.min()) < 0 or int(a.max()) >= _U32):
        raise InputError(f"--tokens: {what} {int(a.max()):,} does not fit the Parquet "
                         "file's uint32 column (documents under 4 GiB)")  # fmt: skip
    return a.astype(np.uint32)


class ParquetSink:
    """Writes columns of token records to a Parquet file, atomically and streaming.

    Parameters
    ----------
    path : str or Path
        The output (``-``, FIFOs and devices are written through: nothing seeks).
    row_group_rows : int
        Records per row group; at most about this many are held in memory.
    """

    def __init__(self, path: str | os.PathLike[str], row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.pq = require_pyarrow()
        self.path = path
        self.row_group_rows = max(1, int(row_group_rows))
        self.count = 0
        self._parts: list[dict[str, Any]] = []
        self._held = 0
        self._stack: ExitStack | None = None
        self._file: _HashingFile | None = None
        self._writer: Any = None

    def __enter__(self) -> ParquetSink:
        stack = ExitStack()
        out = stack.enter_context(atomic_output(self.path, "wb", option="--tokens"))
        self._file = _HashingFile(out)
        self._writer = self.pq.ParquetWriter(
            self._file, schema(), compression="zstd", write_page_checksum=True,
            write_statistics=False, use_dictionary=["doc", "token", "rank", "top.list.element.token"],
            column_encoding={
                "position": "DELTA_BINARY_PACKED", "bytes.list.element": "DELTA_BINARY_PACKED",
                "context": "DELTA_BINARY_PACKED", "surprisal_bits": "BYTE_STREAM_SPLIT",
                "entropy_bits": "BYTE_STREAM_SPLIT", "top.list.element.p": "BYTE_STREAM_SPLIT",
            },
        )  # fmt: skip
        self._stack = stack
        return self

    def append(
        self,
        *,
        doc: Any,
        position: np.ndarray,
        token: Any,
        lo: np.ndarray,
        hi: np.ndarray,
        surprisal_bits: np.ndarray,
        entropy_bits: np.ndarray,
        rank: np.ndarray,
        context: np.ndarray,
        top_tokens: Any,
        top_p: np.ndarray,
        top_k: np.ndarray,
    ) -> None:
        """Add records as columns (strings as lists or pyarrow arrays); ``lo < 0`` marks an
        unknown byte span; ``top_tokens`` and ``top_p`` are all rows' alternatives one after
        the other, ``top_k[i]`` of them for row ``i``."""
        if self._writer is None:
            raise RuntimeError("ParquetSink.append outside its 'with' block")
        n = len(doc)
        if n == 0:
            return
        known = np.asarray(lo) >= 0
        part = {
            "doc": doc, "token": token, "top_tokens": top_tokens,
            "position": _u32(np.asarray(position, dtype=np.int64), "position"),
            "known": known,
            "lo": _u32(np.where(known, lo, 0).astype(np.int64), "byte offset"),
            "hi": _u32(np.where(known, hi, 0).astype(np.int64), "byte offset"),
            "s": np.asarray(surprisal_bits, dtype=np.float32),
            "h": np.asarray(entropy_bits, dtype=np.float32),
            "rank": _u32(np.asarray(rank, dtype=np.int64), "rank"),
            "context": _u32(np.asarray(context, dtype=np.int64), "context"),
            "top_p": np.asarray(top_p, dtype=np.float32).ravel(),
            "top_k": np.asarray(top_k, dtype=np.int64),
        }  # fmt: skip
        self._parts.append(part)
        self._held += n
        self.count += n
        if self._held >= self.row_group_rows:
            self._write_row_group()

    def _write_row_group(self) -> None:
        import pyarrow as pa

        parts, self._parts, self._held = self._parts, [], 0
        if not parts:
            return

        def cat(key: str) -> np.ndarray:
            return np.concatenate([p[key] for p in parts])

        def strings(key: str) -> Any:
            arrays = [
                p[key] if isinstance(p[key], pa.Array) else pa.array(p[key], type=pa.string())
                for p in parts
            ]
            return pa.concat_arrays(arrays)

        known = cat("known")
        flat = np.stack([cat("lo"), cat("hi")], axis=1).ravel()
        spans = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.uint32()), 2,
                                                  mask=pa.array(~known))  # fmt: skip
        offsets = np.concatenate([[0], np.cumsum(cat("top_k"))]).astype(np.int32)
        alts = pa.StructArray.from_arrays(
            [strings("top_tokens"), pa.array(cat("top_p"))],
            fields=list(schema().field("top").type.value_type),
        )
        table = pa.Table.from_arrays(
            [
                strings("doc").dictionary_encode(),
                pa.array(cat("position")),
                strings("token").dictionary_encode(),
                spans,
                pa.array(cat("s")),
                pa.array(cat("h")),
                pa.array(cat("rank")),
                pa.array(cat("context")),
                pa.ListArray.from_arrays(pa.array(offsets), alts),
            ],
            schema=schema(),
        )
        self._writer.write_table(table, row_group_size=len(table))

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        stack, f, writer = self._stack, self._file, self._writer
        if stack is None:
            return
        assert f is not None and writer is not None
        try:
            if exc_type is None:
                try:
                    self._write_row_group()
                    writer.add_key_value_metadata({_KEY_DIGEST: _PLACEHOLDER.decode()})
                    f.holding = True  # the footer is kept back, then sealed
                    writer.close()
                    f.f.write(_sealed(bytes(f.held), f.hash))
                except BaseException as err:
                    # the atomic output removes its temporary file, then this propagates
                    stack.__exit__(type(err), err, err.__traceback__)
                    raise
            else:
                f.holding = True  # nothing more reaches the output
                with contextlib.suppress(Exception):
                    writer.close()
            stack.__exit__(exc_type, exc, tb)
        finally:
            self._stack = self._file = self._writer = None
            self._parts, self._held = [], 0


def _sealed(tail: bytes, h: Any) -> bytes:
    """``tail`` (ending with the footer) with the placeholder replaced by the digest of
    everything (``h``: the bytes before ``tail``)."""
    flen = int.from_bytes(tail[-8:-4], "little")
    footer = tail[len(tail) - 8 - flen : -8]
    if tail[-4:] != _MAGIC or flen > len(tail) - 8 or footer.count(_PLACEHOLDER) != 1:
        raise RuntimeError("pyarrow wrote an unexpected footer; cannot seal the tokens file")
    h.update(tail)
    i = len(tail) - 8 - flen + footer.index(_PLACEHOLDER)
    return tail[:i] + h.hexdigest().encode() + tail[i + len(_PLACEHOLDER) :]


def _bad(path: Any, why: str) -> InputError:
    return InputError(f"{os.fspath(path)}: not a valid infolens tokens Parquet file ({why})")


def _verify_digest(path: Any, size: int, footer: bytes, digest: bytes) -> None:
    """The file's BLAKE2b, with ``digest`` in the footer set back to the placeholder."""
    if len(digest) != len(_PLACEHOLDER) or footer.count(digest) != 1:
        raise _bad(path, "checksum entry damaged")
    h = hashlib.blake2b(digest_size=32)
    start = size - 8 - len(footer)
    with open(path, "rb") as f:
        left = start
        while left > 0:
            b = f.read(min(_CHUNK, left))
            if not b:
                raise _bad(path, "truncated")
            h.update(b)
            left -= len(b)
        h.update(footer.replace(digest, _PLACEHOLDER))
        f.seek(size - 8)
        h.update(f.read(8))
    if h.hexdigest().encode() != digest:
        raise _bad(path, "checksum mismatch: the file was changed or damaged")


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 200 else msg[:197] + "..."


def read_batches(path: str | os.PathLike[str], batch_rows: int = ROW_GROUP_ROWS) -> Iterator[Any]:
    """Check a tokens Parquet file whole (format, checksum, schema) and stream its record
    batches (pyarrow ``RecordBatch`` objects), page checksums verified.

    Raises
    ------
    InputError
        One line: not Parquet, not an infolens tokens file, another format version, a
        checksum mismatch (any changed byte), a truncated file or a schema that differs.
    """
    pq = require_pyarrow("read_tokens")
    import pyarrow as pa

    with open(path, "rb") as f:  # a missing file is the usual OSError
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size < 12:
            raise _bad(path, "too short")
        f.seek(0)
        head = f.read(4)
        f.seek(size - 8)
        end = f.read(8)
        flen = int.from_bytes(end[:4], "little")
        if head != _MAGIC or end[4:] != _MAGIC or flen > size - 12:
            raise _bad(path, "no Parquet magic or footer")
        f.seek(size - 8 - flen)
        footer = f.read(flen)
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        meta = pf.metadata.metadata or {}
    except (pa.ArrowException, OSError, ValueError, MemoryError, UnicodeDecodeError) as exc:
        raise _bad(path, _one_line(exc)) from None
    if meta.get(_KEY_FORMAT) != FORMAT.encode():
        raise _bad(path, "no infolens.format entry")
    if meta.get(_KEY_VERSION) != FORMAT_VERSION.encode():
        got = meta.get(_KEY_VERSION, b"none").decode("utf-8", "replace")
        raise _bad(path, f"format version {got}, expected {FORMAT_VERSION}")
    digest = meta.get(_KEY_DIGEST)
    if digest is None:
        raise _bad(path, "no infolens.blake2b checksum")
    _verify_digest(path, size, footer, digest)
    want = schema()
    try:
        got = pf.schema_arrow
        if not got.equals(want, check_metadata=False):
            raise _bad(path, "unexpected columns or types")
        yield from pf.iter_batches(batch_size=batch_rows)
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError, MemoryError, UnicodeDecodeError) as exc:
        raise _bad(path, _one_line(exc)) from None
