r"""General-purpose compressors as reference points for a model's bits per byte.

A lossless compressor's output length is a code length for the text, so its rate
``8 * len(compressed) / len(text)`` bits per byte is an **upper bound** on the entropy rate
of the source the text came from (up to the format's constant overhead: about 18 bytes for
gzip, 40 for bz2, 60 for xz per document). A language model whose ``bits_per_byte`` is below
a compressor's has found more structure in the text than the compressor did.

The settings are those of the command-line tools' strongest modes: ``gzip -9``,
``bzip2 -9`` and ``xz -9e`` (LZMA2 preset ``9 | PRESET_EXTREME``).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Compressor names, in the order they are reported.
COMPRESSORS: tuple[str, ...] = ("gzip_9", "bz2_9", "xz_9e")


#: Bytes handed to the compressors at a time.
CHUNK = 1 << 20


def compressed_sizes(data: bytes | memoryview) -> dict[str, int]:
    """Compressed size in bytes of ``data`` under each compressor of :data:`COMPRESSORS`.

    Each compressor is fed ``data`` in chunks of :data:`CHUNK` bytes and only the *length*
    of its output is kept, so no compressed copy of the document is held; the sizes equal
    the one-shot ``gzip.compress(data, 9, mtime=0)``, ``bz2.compress(data, 9)`` and
    ``lzma.compress(data, preset=9 | PRESET_EXTREME)`` (tested).

    Parameters
    ----------
    data : bytes
        The text to compress.

    Returns
    -------
    dict of str to int

    Examples
    --------
    >>> sorted(compressed_sizes(b"abc" * 100))
    ['bz2_9', 'gzip_9', 'xz_9e']
    """
    view = memoryview(data).cast("B")
    return compressed_sizes_of_pieces(view[lo : lo + CHUNK] for lo in range(0, len(view), CHUNK))


def compressed_sizes_of_pieces(pieces: Iterable[bytes | memoryview]) -> dict[str, int]:
    """:func:`compressed_sizes` of the concatenation of ``pieces`` (each compressor fed the
    pieces as they come: a document read a piece at a time is never held whole).

    Examples
    --------
    >>> compressed_sizes_of_pieces([b"abc" * 50, b"abc" * 50]) == compressed_sizes(b"abc" * 100)
    True
    """
    # gzip -9 with mtime 0 is a zlib stream with the 18-byte gzip header and trailer
    comps: dict[str, Any] = {
        "gzip_9": zlib.compressobj(9, zlib.DEFLATED, 31),
        "bz2_9": bz2.BZ2Compressor(9),
        "xz_9e": lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME),
    }
    sizes = dict.fromkeys(comps, 0)
    for part in pieces:
        for k, c in comps.items():
            sizes[k] += len(c.compress(part))
    for k, c in comps.items():
        sizes[k] += len(c.flush())
    return sizes


@dataclass
class CompressorStats:
    """Mergeable totals: input bytes and each compressor's output bytes, summed over
    documents compressed one at a time (each document independently, as a model scores it).

    Examples
    --------
    >>> a, b = CompressorStats(), CompressorStats()
    >>> a.add(b"abc" * 100)
    >>> b.add(b"xyz" * 50)
    >>> total = a.copy().merge(b)
    >>> total.input_bytes, a.input_bytes
    (450, 300)
    >>> total.compute()["gzip_9"]["bits_per_byte"] < 8
    True
    """

    input_bytes: int = 0
    output_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COMPRESSORS, 0))

    def add(self, data: bytes) -> None:
        """Compress one document and add its sizes (empty documents add nothing)."""
        if not data:
            return
        self.input_bytes += len(data)
        for k, v in compressed_sizes(data).items():
            self.output_bytes[k] += v

    def add_pieces(self, pieces: Iterable[bytes]) -> None:
        """:meth:`add` of one document given as consecutive pieces."""
        n = 0

        def counted() -> Iterator[bytes]:
            nonlocal n
            for p in pieces:
                n += len(p)
                yield p

        sizes = compressed_sizes_of_pieces(counted())
        if not n:
            return
        self.input_bytes += n
        for k, v in sizes.items():
            self.output_bytes[k] += v

    def copy(self) -> CompressorStats:
        """An independent copy (merging into it leaves this one as it is)."""
        return CompressorStats(self.input_bytes, dict(self.output_bytes))

    def merge(self, other: CompressorStats) -> CompressorStats:
        """Add ``other``'s totals to these (in place) and return ``self``."""
        self.input_bytes += other.input_bytes
        for k in COMPRESSORS:
            self.output_bytes[k] += other.output_bytes[k]
        return self

    def compute(self) -> dict[str, dict[str, float | int | None]]:
        """``{name: {"bytes": compressed bytes, "bits_per_byte": 8 * bytes / input bytes}}``."""
        return {
            k: {
                "bytes": self.output_bytes[k],
                "bits_per_byte": (8.0 * self.output_bytes[k] / self.input_bytes)
                if self.input_bytes
                else None,
            }
            for k in COMPRESSORS
        }


def bits_per_byte(data: bytes) -> dict[str, float | None]:
    """Each compressor's rate on ``data`` in bits per byte (``None`` for empty data).

    Parameters
    ----------
    data : bytes
        The text to compress.

    Returns
    -------
    dict of str to float or None

    Examples
    --------
    >>> rates = bits_per_byte(b"to be or not to be, " * 50)
    >>> all(r < 8 for r in rates.values())
    True
    """
    st = CompressorStats()
    st.add(data)
    return {k: v["bits_per_byte"] for k, v in st.compute().items()}  # type: ignore[misc]


#: The compressors ``infolens compress`` reports beside the model's code (the strongest
#: settings of each tool); those past :data:`COMPRESSORS` need the ``compress`` extra.
REFERENCE_COMPRESSORS: tuple[str, ...] = (
    "gzip_9", "bz2_9", "xz_9e", "zstd_19", "brotli_11", "ppmd_o6", "ppmd_o16",
)  # fmt: skip
#: PPMd model memory (7-Zip's PPMd H variant, ``pyppmd.Ppmd7Encoder``).
PPMD_MEMORY = 192 << 20


def _reference_compressor(name: str) -> Any:
    """A streaming compressor object with ``compress(bytes)`` / ``flush()`` methods."""
    if name == "gzip_9":
        return zlib.compressobj(9, zlib.DEFLATED, 31)
    if name == "bz2_9":
        return bz2.BZ2Compressor(9)
    if name == "xz_9e":
        return lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)
    if name == "zstd_19":
        import zstandard

        return zstandard.ZstdCompressor(level=19).compressobj()
    if name == "brotli_11":
        import brotli

        c = brotli.Compressor(quality=11)

        class _Brotli:
            def compress(self, b: bytes) -> bytes:
                return bytes(c.process(b))

            def flush(self) -> bytes:
                return bytes(c.finish())

        return _Brotli()
    if name.startswith("ppmd_o"):
        import pyppmd

        e = pyppmd.Ppmd7Encoder(int(name[6:]), PPMD_MEMORY)

        class _Ppmd:
            def compress(self, b: bytes) -> bytes:
                return bytes(e.encode(b))

            def flush(self) -> bytes:
                return bytes(e.flush(endmark=True))

        return _Ppmd()
    raise ValueError(f"compressor: expected one of {', '.join(REFERENCE_COMPRESSORS)}, got {name!r}")


def reference_sizes(
    pieces: Iterable[bytes | memoryview], names: Iterable[str] = REFERENCE_COMPRESSORS
) -> dict[str, int]:
    """Compressed size in bytes of the concatenated ``pieces`` under each named compressor,
    fed piece by piece (only the lengths are kept): ``gzip -9``, ``bzip2 -9``, ``xz -9e``,
    ``zstd -19`` (zstandard), ``brotli -q 11`` and PPMd (7-Zip's variant H, pyppmd) of
    order 6 and 16 with :data:`PPMD_MEMORY` bytes of model memory. A compressor whose
    package is missing is left out.

    Examples
    --------
    >>> s = reference_sizes([b"abc" * 100], names=("gzip_9", "xz_9e"))
    >>> s == {k: v for k, v in compressed_sizes(b"abc" * 100).items() if k in s}
    True
    """
    comps: dict[str, Any] = {}
    for n in names:
        try:
            comps[n] = _reference_compressor(n)
        except ImportError:
            continue
    sizes = dict.fromkeys(comps, 0)
    for part in pieces:
        b = bytes(part)
        for k, c in comps.items():
            sizes[k] += len(c.compress(b))
    for k, c in comps.items():
        sizes[k] += len(c.flush())
    return sizes
