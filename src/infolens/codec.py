r"""Cross-entropy is code length: lossless compression with a language model.

A range coder driven by a model's next-token distributions writes each token in about
``-log2 q(token)`` bits, so a file shrinks to its cross-entropy under the model, plus a
few bytes. :func:`compress` and :func:`decompress` (``infolens compress`` /
``infolens decompress``) do exactly that, with `constriction
<https://bamler-lab.github.io/constriction/>`_'s range coder (``stream.queue``) and its
categorical model (``Categorical(perfect=False)``, one probability row per symbol).

**The quantised distribution.** A coder needs integers: each row is quantised to
frequencies ``f_i >= 1`` with ``sum f_i = 2^24`` (:data:`PRECISION`), and the coder's code
length is within a few bytes of

.. math::

   \text{CE}_q = -\sum_t \log_2 \frac{f_{x_t}}{2^{24}} \ \text{bits},

the cross-entropy under the *quantised* model. It cannot beat it: a range coder's output
is at least this long up to its final flush, and ``CE_q >= CE`` up to the (tiny)
divergence the quantisation adds, where ``CE = -sum log2 p(x_t)`` is the float
cross-entropy that ``infolens score`` reports. Both are in the summary beside the coded
size (:class:`CompressionStats`).

**Decodable anywhere it should be.** Decoding must reproduce the very same integers. For
the built-in ``ngram`` model they come from its own C code using only IEEE-754 ``+ - * /``
in a fixed order, compiled without fused multiply-add contraction, so every machine
computes them alike; for a model with logits (``hf:``), from the fused kernel's
:func:`infolens._kernels.quantized_free_weights`, identical on every instruction set and
thread count. The logits themselves are only as reproducible as the model's computation:
on another device, dtype, library version or thread count they can differ by a rounding,
and the file would not decode. So the header records a **behaviour fingerprint**: a hash
of the integers the model gives on a fixed probe text, recomputed before decoding; any
difference is refused with one clear line, never decoded into wrong bytes.

**File format** (version 1; all integers little-endian)::

    magic   8 bytes  b"ILCOMP1\n"
    header  u32 length, that many bytes of JSON, u32 CRC-32 of the JSON
    frames  u32 symbols, u32 words, u32 CRC-32 (of the 8 bytes before it and the words),
            then the words (u32 each): one range-coder stream per frame
    end     a frame of 0 symbols and 0 words, then nothing

The header holds the format and version, the model spec, the model's identity and
behaviour fingerprints, every coding setting (and their hash), the original length and the
SHA-256 of the original. Decoding checks each CRC before it decodes a frame, the symbol
count, and finally the length and SHA-256; output is written to a temporary file and only
appears (renamed into place, or copied to standard output) once everything has checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from infolens import _codec_models as _cm
from infolens._codec_models import (
    PRECISION,
    _ByteCoderModel,
    _coder_for,
    _Corrupt,
    _identity,
    _machine,
    _settings,
    model_fingerprint,
)
from infolens.errors import InfolensError, InputError

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "PRECISION",
    "CompressionStats",
    "compress",
    "compress_bytes",
    "decompress",
    "decompress_bytes",
    "model_fingerprint",
    "read_header",
]

#: The first bytes of a compressed file.
MAGIC = b"ILCOMP1\n"
#: ``format`` and ``version`` of the header.
FORMAT_NAME = "infolens-compressed"
FORMAT_VERSION = 1
#: Largest header accepted (a corrupt length is refused before anything is read).
MAX_HEADER = 1 << 20
#: A frame holds at most this many words (refused before they are read).
MAX_FRAME_WORDS = 1 << 28

_FRAME = struct.Struct("<III")
_U32 = struct.Struct("<I")
_READ = 1 << 20


def _constriction() -> Any:
    try:
        import constriction
    except ImportError:
        raise InfolensError(
            "infolens compress needs constriction (its range coder): pip install "
            "'infolens[compress]'"
        ) from None
    return constriction


# ------------------------------------------------------------------------------ stats


@dataclass
class CompressionStats:
    """What a compression (or decompression) measured, in bits where it says so.

    Attributes
    ----------
    original_bytes, compressed_bytes, header_bytes : int
        Sizes; ``compressed_bytes`` is the whole file (header and frames included).
    symbols : int
        Symbols coded: bytes for the byte model, tokens for a token model.
    frames : int
        Range-coder streams (each ends with a flush of at most a few words).
    quantized_bits : float
        ``-sum log2(f_x / 2^24)``: the cross-entropy of the data under the exact quantised
        distribution the coder used. The frames' payload is this within a few bytes.
    model_bits : float
        ``-sum log2 p(x)``: the float cross-entropy under the model with the same
        conditioning; for the byte model this is ``infolens score``'s total surprisal
        (in bits) on files up to ``HISTORY_BYTES + FRAME_BYTES`` (9 MiB; :mod:`infolens._codec_models`).
    seconds : float
        Wall time of the coding loop.
    """

    original_bytes: int = 0
    compressed_bytes: int = 0
    header_bytes: int = 0
    symbols: int = 0
    frames: int = 0
    quantized_bits: float = 0.0
    model_bits: float = 0.0
    seconds: float = 0.0
    model: str = ""
    compressors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def payload_bytes(self) -> int:
        """Bytes of the frames' words (what the coder wrote)."""
        return self.compressed_bytes - self.header_bytes - _FRAME.size * (self.frames + 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain data with the derived rates (bits per byte; ``None`` for empty input)."""
        n = self.original_bytes
        d = asdict(self)
        d["payload_bytes"] = self.payload_bytes

        def rate(bits: float) -> float | None:
            return bits / n if n else None

        d["bits_per_byte"] = rate(8.0 * self.compressed_bytes)
        d["payload_bits_per_byte"] = rate(8.0 * self.payload_bytes)
        d["quantized_bits_per_byte"] = rate(self.quantized_bits)
        d["model_bits_per_byte"] = rate(self.model_bits)
        d["quantized_bytes"] = self.quantized_bits / 8.0
        d["model_bytes"] = self.model_bits / 8.0
        # the coder's overhead over the quantised cross-entropy (flushes), in bytes
        d["coder_overhead_bytes"] = self.payload_bytes - self.quantized_bits / 8.0
        d["quantization_overhead_bytes"] = (self.quantized_bits - self.model_bits) / 8.0
        d["megabytes_per_second"] = n / self.seconds / 1e6 if self.seconds > 0 else None
        return d


# ------------------------------------------------------------------------------ writing


def _header_bytes(header: dict[str, Any]) -> bytes:
    body = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return MAGIC + _U32.pack(len(body)) + body + _U32.pack(zlib.crc32(body))


def _frame(n_symbols: int, words: np.ndarray) -> bytes:
    w = np.ascontiguousarray(words, dtype="<u4").tobytes()
    head = struct.pack("<II", n_symbols, len(w) // 4)
    return head + _U32.pack(zlib.crc32(w, zlib.crc32(head))) + w


def _spool_input(src: BinaryIO) -> tuple[IO[bytes], int, str]:
    """A seekable copy of a stream (stdin) on disk, its length and SHA-256."""
    tmp = tempfile.TemporaryFile()
    h = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: src.read(_READ), b""):
        tmp.write(chunk)
        h.update(chunk)
        n += len(chunk)
    tmp.seek(0)
    return tmp, n, h.hexdigest()


def _open_input(path: str | os.PathLike[str], option: str) -> tuple[IO[bytes], int, str, bool]:
    """The input opened for reading from the start: (file, length, sha256, close_it)."""
    if str(path) == "-":
        f, n, digest = _spool_input(sys.stdin.buffer)
        return f, n, digest, True
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{option}: expected a file, got the directory {str(p)!r}")
    try:
        f = open(p, "rb")
    except OSError as exc:
        raise InputError(f"{option}: cannot read {str(p)!r} ({exc.strerror or exc})") from None
    if not f.seekable():  # a FIFO or device: spool it
        g, n, digest = _spool_input(f)  # type: ignore[arg-type]
        f.close()
        return g, n, digest, True
    h = hashlib.sha256()
    n = 0
    for chunk in iter(lambda: f.read(_READ), b""):
        h.update(chunk)
        n += len(chunk)
    f.seek(0)
    return f, n, h.hexdigest(), True


def compress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    model: Any = None,
    context: int | None = None,
    compare: bool = False,
    on_progress: Callable[[int, float], None] | None = None,
) -> CompressionStats:
    """Compress the file ``src`` (``"-"``: standard input) into ``dst`` (``"-"``: stdout).

    Parameters
    ----------
    src, dst : path or "-"
        Input and output. The output is written whole or not at all (a temporary file
        renamed into place).
    model : LanguageModel or str, optional
        An adapter or a model spec (default: the built-in adaptive ``ngram`` model).
    context : int, optional
        Token models: tokens per segment (each segment is coded from the BOS token;
        default ``min(max_context, 512)``).
    compare : bool
        Also compress the same bytes with the reference compressors of
        :data:`infolens.compressors.REFERENCE_COMPRESSORS`, fed the same pieces as they
        are read (``stats.compressors``: bytes and bits per byte of each).
    on_progress : callable, optional
        Called as ``on_progress(bytes_done, compressed_bits_so_far)`` after each batch.

    Returns
    -------
    CompressionStats
        Sizes, the quantised and float cross-entropies, the time.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_bytes(b"the cat sat on the mat. " * 40)
    >>> st = compress(d / "a.txt", d / "a.ilz")
    >>> st.quantized_bits <= 8 * st.payload_bytes + 8, st.original_bytes
    (True, 960)
    >>> _ = decompress(d / "a.ilz", d / "b.txt")
    >>> (d / "b.txt").read_bytes() == (d / "a.txt").read_bytes()
    True
    """
    import time

    from infolens._atomic import atomic_output
    from infolens.models import load_model

    cs = _constriction()
    m = load_model(model) if model is None or isinstance(model, str) else model
    settings = _settings(m, context)
    f, n, digest, close = _open_input(src, "FILE")
    try:
        header = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "model": m.name,
            "model_identity": _identity(m), "model_fingerprint": model_fingerprint(m, settings),
            "settings": settings, "settings_sha256": _settings_hash(settings),
            "original_bytes": n, "sha256": digest, "machine": _machine(m),
        }  # fmt: skip
        if settings["tokens"] != "bytes":
            header["decodable_on"] = (
                "machines that reproduce this model's logits bit for bit: the same weights, "
                "dtype, device type, torch and transformers versions and thread count are "
                "the safe case; decompress checks the behaviour fingerprint first"
            )
        stats = CompressionStats(original_bytes=n, model=m.name)
        refs = _References(compare)
        t0 = time.perf_counter()
        family = cs.stream.model.Categorical(perfect=False)
        with atomic_output(dst, "wb", option="--output") as out:
            hb = _header_bytes(header)
            out.write(hb)
            size = len(hb)
            stats.header_bytes = len(hb)
            coder = _coder_for(m, settings)
            done = 0
            coded_bits = 0.0
            again = hashlib.sha256()  # what is coded must be what the header describes

            def frame_out(n_sym: int, words: np.ndarray) -> None:
                nonlocal size
                fr = _frame(n_sym, words)
                out.write(fr)
                size += len(fr)
                stats.frames += 1

            if isinstance(coder, _ByteCoderModel):
                while True:
                    data = f.read(_cm.FRAME_BYTES)
                    if not data:
                        break
                    again.update(data)
                    refs.feed(data)
                    enc = cs.stream.queue.RangeEncoder()

                    def encode(sym: np.ndarray, w: np.ndarray, enc: Any = enc) -> None:
                        enc.encode(sym, family, w)

                    qb, fb = coder.encode_frame(data, encode)
                    stats.quantized_bits += qb
                    stats.model_bits += fb
                    frame_out(len(data), enc.get_compressed())
                    done += len(data)
                    coded_bits += qb
                    stats.symbols += len(data)
                    if on_progress:
                        on_progress(done, coded_bits)
            else:
                text = f.read()
                again.update(text)
                refs.feed(text)
                ids = _token_ids(m, text)
                ctx, per_frame = settings["context"], settings["frame_tokens"]
                for lo in range(0, len(ids), per_frame):
                    enc = cs.stream.queue.RangeEncoder()

                    def encode(sym: np.ndarray, w: np.ndarray, enc: Any = enc) -> None:
                        enc.encode(sym, family, w)

                    hi = min(len(ids), lo + per_frame)
                    for s0 in range(lo, hi, ctx):  # segments: the model restarts at each
                        seg = ids[s0 : min(hi, s0 + ctx)]
                        qb, fb = coder.encode_segment(seg, encode)
                        stats.quantized_bits += qb
                        stats.model_bits += fb
                        coded_bits += qb
                        if on_progress:
                            on_progress(int(len(text) * (s0 + len(seg)) / len(ids)), coded_bits)
                    frame_out(hi - lo, enc.get_compressed())
                    stats.symbols += hi - lo
            if again.hexdigest() != digest:
                raise InputError(f"FILE: {src} changed while it was being compressed; nothing written")
            end = _frame(0, np.zeros(0, dtype=np.uint32))
            out.write(end)
            size += len(end)
        stats.compressed_bytes = size
        stats.seconds = time.perf_counter() - t0 - refs.seconds
        stats.compressors = refs.result(n)
        return stats
    finally:
        if close:
            f.close()


class _References:
    """The reference compressors, fed the pieces the model codes (timed apart)."""

    def __init__(self, on: bool) -> None:
        from infolens.compressors import REFERENCE_COMPRESSORS, _reference_compressor

        self.comps: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}
        self.seconds = 0.0
        if on:
            for name in REFERENCE_COMPRESSORS:
                try:
                    self.comps[name] = _reference_compressor(name)
                except ImportError:
                    continue
            self.sizes = dict.fromkeys(self.comps, 0)

    def feed(self, data: bytes) -> None:
        import time

        t = time.perf_counter()
        for k in range(0, len(data), _READ) if self.comps else ():
            piece = data[k : k + _READ]
            for name, c in self.comps.items():
                self.sizes[name] += len(c.compress(piece))
        self.seconds += time.perf_counter() - t

    def result(self, n: int) -> dict[str, dict[str, Any]]:
        import time

        t = time.perf_counter()
        for name, c in self.comps.items():
            self.sizes[name] += len(c.flush())
        self.seconds += time.perf_counter() - t
        return {
            name: {"bytes": size, "bits_per_byte": 8.0 * size / n if n else None}
            for name, size in self.sizes.items()
        }


def _settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _token_ids(m: Any, data: bytes) -> np.ndarray:
    """The file's tokens, refusing what the tokenizer cannot give back exactly."""
    from infolens.models.base import decode_ids

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"FILE: expected UTF-8 text for the token model {m.name} (byte {exc.start} is "
            f"not UTF-8); the built-in byte model (--model ngram) compresses any bytes"
        ) from None
    ids = np.asarray(m.tokenize(text).ids, dtype=np.int64)
    if decode_ids(m, ids) != text:
        raise InputError(
            f"FILE: the tokenizer of {m.name} does not give this text back exactly "
            f"(decode(tokenize(text)) != text), so it cannot be coded losslessly with it; "
            f"the built-in byte model (--model ngram) compresses any bytes"
        )
    return ids


# ------------------------------------------------------------------------------ reading


class _Reader:
    """Exact reads from the compressed input, naming the offset of what is missing."""

    def __init__(self, f: BinaryIO, name: str) -> None:
        self.f, self.name, self.pos = f, name, 0

    def error(self, what: str) -> InputError:
        return InputError(f"{self.name}: {what} (at byte {self.pos}); the file is corrupt")

    def read(self, n: int, what: str) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise InputError(
                f"{self.name}: truncated: expected {n} bytes of {what} at byte {self.pos}, "
                f"got {len(b)}"
            )
        self.pos += n
        return b


def _read_header(r: _Reader) -> dict[str, Any]:
    magic = r.f.read(len(MAGIC))
    r.pos += len(magic)
    if magic != MAGIC:
        if len(magic) < len(MAGIC) and MAGIC.startswith(magic):
            raise InputError(f"{r.name}: truncated: expected the {len(MAGIC)}-byte magic, "
                             f"got {len(magic)} bytes")  # fmt: skip
        raise InputError(
            f"{r.name}: expected an infolens compressed file (magic {MAGIC!r}), got {magic[:8]!r}"
        )
    (hlen,) = _U32.unpack(r.read(4, "header length"))
    if hlen > MAX_HEADER:
        raise r.error(f"header length {hlen} is past the limit {MAX_HEADER}")
    body = r.read(hlen, "header")
    (crc,) = _U32.unpack(r.read(4, "header checksum"))
    if zlib.crc32(body) != crc:
        raise r.error("header checksum mismatch")
    try:
        h = json.loads(body)
    except ValueError:
        raise r.error("header is not JSON") from None
    if not isinstance(h, dict) or h.get("format") != FORMAT_NAME:
        raise r.error(f"header field 'format': expected {FORMAT_NAME!r}")
    if h.get("version") != FORMAT_VERSION:
        raise InputError(
            f"{r.name}: format version {h.get('version')!r}; this infolens reads version "
            f"{FORMAT_VERSION}"
        )
    for key, typ in (("model", str), ("model_fingerprint", str), ("settings", dict),
                     ("original_bytes", int), ("sha256", str), ("settings_sha256", str)):  # fmt: skip
        if not isinstance(h.get(key), typ):
            raise r.error(f"header field {key!r}: expected a {typ.__name__}")
    return h


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header of a compressed file (checked: magic, length, CRC, required fields)."""
    with open(path, "rb") as f:
        return _read_header(_Reader(f, str(path)))  # type: ignore[arg-type]


def _check_model(h: dict[str, Any], model: Any, name: str) -> tuple[Any, dict[str, Any]]:
    from infolens.models import load_model

    spec = h["model"]
    if model is None:
        if spec.startswith("ngram:<fitted"):
            raise InputError(
                f"{name}: compressed with a fitted ngram model ({spec}); give it with --model"
            )
        m = load_model(spec)
    else:
        m = load_model(model) if isinstance(model, str) else model
    settings = h["settings"]
    if _settings_hash(settings) != h["settings_sha256"]:
        raise InputError(f"{name}: header settings do not match their hash; the file is corrupt")
    want = {k: v for k, v in settings.items()}
    try:
        mine = _settings(m, settings.get("context"))
    except InputError as exc:
        raise InputError(f"{name}: cannot decode with {m.name}: {exc}") from None
    for key in sorted(set(want) | set(mine)):
        if want.get(key) != mine.get(key):
            raise InputError(
                f"{name}: setting {key!r} was {want.get(key)!r} when compressing; this "
                f"infolens with {m.name} uses {mine.get(key)!r}: cannot decode"
            )
    ident = _identity(m)
    if h.get("model_identity") is not None and ident != h["model_identity"]:
        diff = sorted(k for k in set(ident) | set(h["model_identity"])
                      if ident.get(k) != h["model_identity"].get(k))  # fmt: skip
        raise InputError(
            f"{name}: compressed with model {spec!r}; the model given here differs in "
            f"{', '.join(diff)}: cannot decode"
        )
    fp = model_fingerprint(m, mine)
    if fp != h["model_fingerprint"]:
        raise InputError(
            f"{name}: this machine's {m.name} gives different probabilities than the "
            f"compressing machine's (behaviour fingerprint {fp[:16]} here, "
            f"{h['model_fingerprint'][:16]} in the file): it cannot decode this file"
            + (f" (compressed on {h.get('machine')})" if h.get("machine") else "")
        )
    return m, mine


def decompress(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    model: Any = None,
    on_progress: Callable[[int, float], None] | None = None,
) -> CompressionStats:
    """Decompress ``src`` (``"-"``: stdin) into ``dst`` (``"-"``: stdout), checking
    everything first.

    The model comes from the header (or ``model``, which must be the same); its settings,
    identity and behaviour fingerprint must match the file's. Each frame's CRC is checked
    before it is decoded, then the symbol counts, the length and the SHA-256 of the
    result. Output goes to a temporary file and appears only once all of it checked.

    Raises
    ------
    infolens.errors.InputError
        One line: not a compressed file, an unsupported version, truncated or corrupt
        input (with the byte offset), or a model this machine cannot reproduce.
    """
    import time

    from infolens._atomic import atomic_output

    cs = _constriction()
    name = "-" if str(src) == "-" else str(src)
    close = False
    if str(src) == "-":
        f: BinaryIO = sys.stdin.buffer
    else:
        p = Path(src)
        if p.is_dir():
            raise InputError(f"FILE: expected a file, got the directory {str(p)!r}")
        try:
            f = open(p, "rb")
            close = True
        except OSError as exc:
            raise InputError(f"FILE: cannot read {str(p)!r} ({exc.strerror or exc})") from None
    try:
        r = _Reader(f, name)
        h = _read_header(r)
        m, settings = _check_model(h, model, name)
        stats = CompressionStats(original_bytes=h["original_bytes"], model=m.name)
        stats.header_bytes = r.pos
        coder = _coder_for(m, settings)
        family = cs.stream.model.Categorical(perfect=False)
        t0 = time.perf_counter()
        digest = hashlib.sha256()
        total = 0
        ids: list[np.ndarray] = []
        with tempfile.TemporaryFile() as spool:
            while True:
                head = r.read(_FRAME.size, "frame header")
                n_sym, n_words, crc = _FRAME.unpack(head)
                if n_words > MAX_FRAME_WORDS or (coder.kind == "bytes" and n_sym > _cm.FRAME_BYTES):
                    raise r.error(f"frame of {n_sym} symbols in {n_words} words is past the limits")
                raw = r.read(4 * n_words, "frame words")
                if zlib.crc32(raw, zlib.crc32(head[:8])) != crc:
                    raise InputError(
                        f"{name}: frame checksum mismatch in the frame at byte "
                        f"{r.pos - len(raw) - _FRAME.size}; the file is corrupt"
                    )
                stats.frames += 1
                if n_sym == 0:
                    if n_words:
                        raise r.error("an empty frame with words")
                    break
                words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
                dec = cs.stream.queue.RangeDecoder(words)

                def decode(w: np.ndarray, dec: Any = dec.decode) -> int:
                    return int(dec(family, w)[0])

                try:
                    if isinstance(coder, _ByteCoderModel):
                        if total + n_sym > h["original_bytes"]:
                            raise _Corrupt("more bytes than the header's length")
                        data, qb, fb = coder.decode_frame(n_sym, decode)
                        spool.write(data)
                        digest.update(data)
                        total += len(data)
                    else:
                        if n_sym > settings["frame_tokens"]:
                            raise _Corrupt(f"a frame of {n_sym} tokens, past the frame size")
                        qb = fb = 0.0
                        for s0 in range(0, n_sym, settings["context"]):
                            k = min(settings["context"], n_sym - s0)
                            seg, q1, f1 = coder.decode_segment(k, decode)
                            ids.append(seg)
                            qb, fb = qb + q1, fb + f1
                except _Corrupt as exc:
                    raise r.error(str(exc)) from None
                except BaseException as exc:
                    if isinstance(exc, (KeyboardInterrupt, SystemExit, InfolensError)):
                        raise
                    raise r.error(f"the range decoder failed ({type(exc).__name__})") from None
                stats.quantized_bits += qb
                stats.model_bits += fb
                stats.symbols += n_sym
                if on_progress:
                    on_progress(total, stats.quantized_bits)
            tail = f.read(1)
            if tail:
                raise r.error("data after the end frame")
            stats.frames -= 1  # the end frame
            if coder.kind != "bytes":
                from infolens.models.base import decode_ids

                all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
                data = decode_ids(m, all_ids).encode("utf-8")
                spool.write(data)
                digest.update(data)
                total = len(data)
            if total != h["original_bytes"]:
                raise InputError(
                    f"{name}: decoded {total} bytes, the header says {h['original_bytes']}; "
                    f"the file is corrupt"
                )
            if digest.hexdigest() != h["sha256"]:
                raise InputError(
                    f"{name}: the decoded data's SHA-256 differs from the header's; the file "
                    f"is corrupt (nothing was written)"
                )
            stats.compressed_bytes = r.pos
            stats.seconds = time.perf_counter() - t0
            spool.seek(0)
            with atomic_output(dst, "wb", option="--output") as out:
                shutil.copyfileobj(spool, out, _READ)
        return stats
    finally:
        if close:
            f.close()


# ------------------------------------------------------------------------------ in memory


def compress_bytes(data: bytes, *, model: Any = None, context: int | None = None) -> bytes:
    """:func:`compress` of in-memory bytes (tests, small inputs).

    Examples
    --------
    >>> blob = compress_bytes(b"abracadabra " * 20)
    >>> decompress_bytes(blob) == b"abracadabra " * 20
    True
    """
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d, "in"), Path(d, "out")
        src.write_bytes(data)
        compress(src, dst, model=model, context=context)
        return dst.read_bytes()


def decompress_bytes(blob: bytes, *, model: Any = None) -> bytes:
    """:func:`decompress` of in-memory bytes."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d, "in"), Path(d, "out")
        src.write_bytes(blob)
        decompress(src, dst, model=model)
        return dst.read_bytes()
