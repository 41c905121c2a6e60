"""The coder's side of a model (:mod:`infolens.codec`): the quantised rows of the built-in
byte model and of any adapter with a tokenizer, the behaviour fingerprint, the model's
identity and the coding settings."""

from __future__ import annotations

import hashlib
import math
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infolens.errors import InputError

#: Bits of precision of the quantised frequencies (constriction's categorical model).
PRECISION = 24
#: Bytes per frame for the byte model.
FRAME_BYTES = 1 << 20
#: Bytes of history the byte model keeps (its match model looks no further back), so
#: memory stays bounded whatever the file size.
HISTORY_BYTES = 8 << 20
#: Tokens per frame for token models (rounded down to whole segments).
FRAME_TOKENS = 1 << 16
#: Positions per batch handed to the coder while compressing (byte model).
BATCH = 8192
_READ = 1 << 20


class _ByteCoderModel:
    """The built-in byte model as a coder: quantised rows from its C core, a bounded
    history buffer (:data:`HISTORY_BYTES`)."""

    kind = "bytes"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.core = model._core_for_window()
        if model.adapt:
            self.core.begin()
        self.update = bool(model.adapt)
        self.hist = b""

    # encode ------------------------------------------------------------------------
    def encode_frame(
        self, data: bytes, encode: Callable[[np.ndarray, np.ndarray], None]
    ) -> tuple[float, float]:
        buf = self.hist + data
        lo0 = len(self.hist)
        qbits = fbits = 0.0
        out = np.empty((min(BATCH, max(len(data), 1)), 256), dtype=np.float32)
        for lo in range(lo0, len(buf), BATCH):
            hi = min(len(buf), lo + BATCH)
            n = hi - lo
            nats = self.core.run(buf, lo, hi, out, self.update)
            sym = np.frombuffer(buf, dtype=np.uint8, count=n, offset=lo).astype(np.int32)
            encode(sym, out[:n])
            qbits += _quantized_bits(out[:n], sym)
            fbits += nats / math.log(2)
        self._advance(buf)
        return qbits, fbits

    # decode ------------------------------------------------------------------------
    def decode_frame(
        self, n: int, decode: Callable[[np.ndarray], int]
    ) -> tuple[bytes, float, float]:
        lo0 = len(self.hist)
        buf = bytearray(self.hist)
        buf.extend(bytes(n))
        row = np.empty((1, 256), dtype=np.float32)
        predict, learn = self.core.predict, self.core.learn
        nats = 0.0
        upd = self.update
        self.core.take_bits()
        for i in range(lo0, lo0 + n):
            predict(buf, i, row, upd)
            buf[i] = decode(row)
            nats += learn(buf, i)
        qbits = self.core.take_bits()
        out = bytes(buf[lo0:])
        self._advance(bytes(buf))
        return out, qbits, nats / math.log(2)

    def _advance(self, buf: bytes) -> None:
        keep = buf[-HISTORY_BYTES:] if len(buf) > HISTORY_BYTES else buf
        shift = len(buf) - len(keep)
        if shift:
            self.core.rebase(shift)
        self.hist = bytes(keep)


def _quantized_bits(w: np.ndarray, sym: np.ndarray) -> float:
    """``-sum log2(f_x / 2^P)`` with ``f = w + 1`` (exact integers; float64 sum)."""
    f = w[np.arange(len(sym)), sym].astype(np.float64) + 1.0
    return float(np.sum(PRECISION - np.log2(f)))


class _TokenCoderModel:
    """Any adapter with a tokenizer: segments of ``context`` tokens, each decoded step by
    step from the BOS token (or, for a model that predicts the first token, from nothing)
    through the adapter's :class:`~infolens.models.base.Decoder`; encoding runs the very
    same steps, so encoder and decoder compute the same logits on the same machine."""

    kind = "tokens"

    def __init__(self, model: Any, context: int) -> None:
        self.model = model
        self.context = int(context)
        self.vocab = int(model.vocab_size)
        if self.vocab > (1 << PRECISION) - 2:
            raise InputError(
                f"--model: expected a vocabulary below 2^{PRECISION} - 1 tokens for "
                f"{PRECISION}-bit coding, got {self.vocab}"
            )

    def _rows(self, tokens: np.ndarray, on_row: Callable[[np.ndarray, int], int]) -> float:
        """Drive one segment: for each position the quantised row goes to ``on_row(w, t)``
        (``t`` the known token or -1), which returns the token; returns the float bits."""
        from infolens._kernels import fused_rows
        from infolens.models.base import start_decoder

        m = self.model
        n = len(tokens)
        fbits = 0.0
        start = 0
        prefix = np.zeros(0, dtype=np.int64)
        if m.bos_id is not None:
            prefix = np.array([m.bos_id], dtype=np.int64)
        elif not m.predicts_first:
            # nothing to condition the first token on: a uniform row codes it
            w = _uniform_free_weights(self.vocab)
            t = on_row(w, int(tokens[0]) if len(tokens) else -1)
            fbits += math.log2(self.vocab)
            prefix = np.array([t], dtype=np.int64)
            start = 1
        if start >= n:
            return fbits
        dec = start_decoder(m, prefix, 1)
        for k in range(start, n):
            logits = dec.next_logits()
            w = _quantized_rows(logits)
            t = on_row(w, int(tokens[k]) if tokens[k] >= 0 else -1)
            st = fused_rows(
                logits if not hasattr(logits, "detach") else logits.detach(),
                targets=np.array([t], dtype=np.int64),
            )
            assert st.surprisal_p is not None
            fbits += float(st.surprisal_p[0]) / math.log(2)
            if k + 1 < n:
                dec.append(np.array([t], dtype=np.int64))
        return fbits

    def encode_segment(
        self, tokens: np.ndarray, encode: Callable[[np.ndarray, np.ndarray], None]
    ) -> tuple[float, float]:
        qbits = 0.0

        def on_row(w: np.ndarray, t: int) -> int:
            nonlocal qbits
            sym = np.array([t], dtype=np.int32)
            encode(sym, w)
            qbits += _quantized_bits(w, sym)
            return t

        fbits = self._rows(tokens, on_row)
        return qbits, fbits

    def decode_segment(
        self, n: int, decode: Callable[[np.ndarray], int]
    ) -> tuple[np.ndarray, float, float]:
        out = np.full(n, -1, dtype=np.int64)
        qbits = 0.0
        k = 0

        def on_row(w: np.ndarray, _t: int) -> int:
            nonlocal qbits, k
            x = decode(w)
            if not 0 <= x < self.vocab:
                raise _Corrupt(f"decoded token {x} outside the vocabulary")
            qbits += _quantized_bits(w, np.array([x]))
            out[k] = x
            k += 1
            return x

        fbits = self._rows(out, on_row)
        return out, qbits, fbits


def _quantized_rows(logits: Any) -> np.ndarray:
    from infolens._kernels import quantized_free_weights

    return quantized_free_weights(logits, precision=PRECISION)


def _uniform_free_weights(v: int) -> np.ndarray:
    free = (1 << PRECISION) - v
    w = np.full((1, v), free // v, dtype=np.float32)
    w[0, 0] += free - (free // v) * v
    return w


class _Corrupt(Exception):
    """Decoding went wrong in a way only a corrupt file explains."""


# ------------------------------------------------------------------------------ identity


#: A fixed probe the behaviour fingerprint is computed on: text in several scripts and
#: every byte value.
_PROBE_TEXT = (
    "Cross-entropy is code length. Η εντροπία μετρά την αβεβαιότητα. 情報量とは驚きの大きさ。 "
    'Энтропия — мера неопределённости. 0123456789 {"key": [1, 2.5e-3, null]}\n'
) * 3


def _probe_bytes() -> bytes:
    return _PROBE_TEXT.encode("utf-8") + bytes(range(256)) + bytes(range(255, -1, -1))


def _sha256_file(path: Path, h: Any | None = None) -> str:
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_READ), b""):
            h.update(chunk)
    return str(h.hexdigest())


def _identity(model: Any) -> dict[str, Any]:
    """What the model *is*: its spec and, where it comes from files, their hashes."""
    # not the name: a model file or directory may move; what it holds is hashed
    ident: dict[str, Any] = {"adapter": type(model).__name__}
    name = str(getattr(model, "name", ""))
    from infolens.models.ngram import NgramModel

    if isinstance(model, NgramModel):
        from infolens.models import ngram

        ident.update(order=model.order, adapt=model.adapt, match=model.match,
                     algorithm=f"kn+match v{ngram.FORMAT_VERSION}")  # fmt: skip
        if model._core is not None:
            arrays = model._core.export()
            h = hashlib.sha256()
            for a in arrays:
                h.update(np.ascontiguousarray(a).tobytes())
            ident["statistics_sha256"] = h.hexdigest()
        return ident
    path = name[3:] if name.startswith("hf:") else None
    if path and Path(path).is_dir():
        files = {}
        for p in sorted(Path(str(path)).iterdir()):
            if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".model", ".txt"):
                files[p.name] = _sha256_file(p)
        ident["files_sha256"] = files
    for key in ("dtype", "device"):
        v = getattr(model, key, None)
        if v is not None:
            ident[key] = str(v)
    return ident


def _machine(model: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine()}
    if getattr(model, "byte_level", False) and _is_ngram(model):
        return d
    try:
        import torch

        d["torch"] = torch.__version__
        d["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    return d


def _is_ngram(model: Any) -> bool:
    from infolens.models.ngram import NgramModel

    return isinstance(model, NgramModel)


def _coder_for(model: Any, settings: dict[str, Any]) -> _ByteCoderModel | _TokenCoderModel:
    if settings["tokens"] == "bytes":
        return _ByteCoderModel(model)
    return _TokenCoderModel(model, settings["context"])


def _settings(model: Any, context: int | None) -> dict[str, Any]:
    s: dict[str, Any] = {
        "precision": PRECISION,
        "coder": "constriction.stream.queue.RangeEncoder, Categorical(perfect=False), "
        "free weights f-1 in float32",
    }
    if _is_ngram(model):
        s.update(tokens="bytes", frame_bytes=FRAME_BYTES, history_bytes=HISTORY_BYTES,
                 batch=BATCH)  # fmt: skip
    else:
        mc = model.max_context
        ctx = int(context) if context is not None else min(mc or 512, 512)
        if ctx < 1 or (mc is not None and ctx > mc):
            raise InputError(
                f"--context: expected 1..{mc if mc is not None else 'any'} tokens, got {context}"
            )
        s.update(tokens="tokenizer", context=ctx, bos=model.bos_id,
                 frame_tokens=ctx * max(1, FRAME_TOKENS // ctx))  # fmt: skip
    return s


def model_fingerprint(model: Any, settings: dict[str, Any] | None = None) -> str:
    """Hash of the quantised rows the model gives on a fixed probe (behaviour fingerprint).

    Two machines that give the same fingerprint computed the same integers on the probe;
    :func:`decompress` refuses a file whose fingerprint this machine does not reproduce.

    Examples
    --------
    >>> from infolens.models import load_model
    >>> fp = model_fingerprint(load_model("ngram"))
    >>> len(fp), fp == model_fingerprint(load_model("ngram"))
    (64, True)
    """
    settings = settings or _settings(model, None)
    coder = _coder_for(model, settings)
    h = hashlib.sha256()

    def encode(sym: np.ndarray, w: np.ndarray) -> None:
        h.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
        h.update(sym.astype("<i4").tobytes())

    probe = _probe_bytes()
    if isinstance(coder, _ByteCoderModel):
        coder.encode_frame(probe, encode)
    else:
        ids = np.asarray(model.tokenize(_PROBE_TEXT).ids, dtype=np.int64)[:32]
        coder.encode_segment(ids, encode)
    return h.hexdigest()
