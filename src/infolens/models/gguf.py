r"""GGUF models (``gguf:PATH``) through llama.cpp, via llama-cpp-python.

The model file gives everything: the weights (any quantisation llama.cpp reads), the
tokeniser (``llama_tokenize``, no special tokens added) and the BOS/EOS ids. The adapter
scores under infolens's one definition (:mod:`infolens.windows`): each window is a fresh
llama.cpp sequence (the KV cache is cleared), its inputs ``ids[:-1]`` are decoded in
batches of ``n_batch`` tokens, and only the positions that predict a scored token ask
llama.cpp for logits (``llama_batch.logits[i] = 1``). So the full next-token distribution
of every scored position comes back, and entropy and KL are exact; host memory holds at
most ``n_batch x V`` floats of llama.cpp's output buffer plus ``max_rows x V`` of the chunk
being yielded, never ``n_ctx x V`` (what ``Llama(logits_all=True)`` allocates).

Options, as keyword arguments of :func:`infolens.models.load_model` or in the spec after
the path (``gguf:model.gguf,n_ctx=4096,n_gpu_layers=99``):

* ``n_ctx``: the most input positions of a window, ``L`` (default: the model's training
  context, at most 4096; llama.cpp allocates the KV cache for it);
* ``n_gpu_layers``: layers offloaded to a GPU (default 0; ``-1`` for all), when
  llama-cpp-python was built with GPU support;
* ``n_threads``: CPU threads (default: llama.cpp's choice);
* ``n_batch``: tokens per ``llama_decode`` call (default 512, at most ``n_ctx``);
* ``kv_type``: ``f32`` (the default here: the KV cache in float32, as transformers keeps
  it in a float32 run, so an F32 GGUF gives transformers' log-probs to float tolerance)
  or ``f16`` (llama.cpp's default: half the cache memory, about 4e-3 nats per token off on
  the test model);
* ``flash_attn``: ``off`` (the default here), ``on`` or ``auto`` (llama.cpp's default);
  llama.cpp's CPU flash-attention kernel rounds through float16 (about 2e-3 nats per
  token on the test model), so it is off unless asked for;
* ``special_tokens``: ``parse`` (a literal ``<|endoftext|>`` in a document is the special
  token, the default, as for ``hf:``) or ``text``.

Rows are llama.cpp's float32 logits (unnormalised); consumers normalise in log space.
Generation (:meth:`GGUFModel.start_decoder`) decodes ``n`` sequences in one batch with a
KV cache, the prefix decoded once and copied to every sequence.
"""

from __future__ import annotations

import ctypes
import os
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from infolens.errors import InputError
from infolens.models.base import ContextFull, ModelSpecError, Tokenized, Window, check_windows

#: Largest default context (KV cache) when the model's training context is longer.
DEFAULT_MAX_CONTEXT = 4096
#: KV-cache cells a generation decoder gives each sequence beyond the first.
DECODER_ROOM = 512
#: Default tokens per ``llama_decode`` call.
DEFAULT_BATCH = 512
#: Keys accepted after the path in a ``gguf:`` spec, with their types.
SPEC_KEYS: dict[str, type] = {
    "n_ctx": int,
    "n_gpu_layers": int,
    "n_threads": int,
    "n_batch": int,
    "special_tokens": str,
    "kv_type": str,
    "flash_attn": str,
}
SPECIAL_TOKENS = ("parse", "text")
#: KV-cache element types: ``f32`` (the default here, exact) or ``f16`` (llama.cpp's
#: default, half the cache memory).
KV_TYPES = ("f16", "f32")
#: Flash attention: ``off`` (the default here: llama.cpp's CPU kernel rounds through
#: float16, about 2e-3 nats per token on the test model), ``on`` or ``auto`` (llama.cpp's
#: default).
FLASH_ATTN = {"off": 0, "on": 1, "auto": -1}


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise InputError(
            f"gguf: needs llama-cpp-python (pip install 'infolens[gguf]'): {exc}"
        ) from None
    try:  # llama.cpp's log lines (model loading, context setup) only on error
        from llama_cpp import _logger

        _logger.set_verbose(False)
    except Exception:  # pragma: no cover - another llama-cpp-python layout
        pass
    return llama_cpp


def parse_spec(rest: str) -> tuple[str, dict[str, Any]]:
    """Split the part of a ``gguf:`` spec after ``gguf:`` into the path and its options.

    Trailing ``,key=value`` parts whose key is one of :data:`SPEC_KEYS` are options; the
    rest is the path (which may itself contain commas).

    Examples
    --------
    >>> parse_spec("m.gguf,n_ctx=256,n_gpu_layers=-1")
    ('m.gguf', {'n_ctx': 256, 'n_gpu_layers': -1})
    >>> parse_spec("a,b.gguf")
    ('a,b.gguf', {})
    """
    parts = rest.split(",")
    options: dict[str, Any] = {}
    while len(parts) > 1:
        key, eq, value = parts[-1].partition("=")
        if not eq or key not in SPEC_KEYS:
            break
        if key in options:
            raise ModelSpecError(f"--model gguf:{rest}: the key {key!r} is given twice")
        kind = SPEC_KEYS[key]
        try:
            options[key] = kind(value)
        except ValueError:
            raise ModelSpecError(
                f"--model gguf:{rest}: {key}: expected an integer, got {value!r}"
            ) from None
        parts.pop()
    return ",".join(parts), dict(reversed(list(options.items())))


class _Native:
    """The llama.cpp model and context, freed (context first) on :meth:`close` or when
    the adapter is garbage collected."""

    def __init__(self, lib: Any, path: str, n_gpu_layers: int, vocab_only: bool = False) -> None:
        self.lib = lib
        self.model: Any = None
        self.contexts: list[Any] = []
        lib.llama_backend_init()
        params = lib.llama_model_default_params()
        params.n_gpu_layers = int(n_gpu_layers)
        params.vocab_only = bool(vocab_only)
        self.model = lib.llama_model_load_from_file(path.encode("utf-8"), params)
        if not self.model:
            raise InputError(f"gguf:{path}: llama.cpp cannot load this file as a model")
        self.vocab = lib.llama_model_get_vocab(self.model)

    def context(
        self,
        n_ctx: int,
        n_batch: int,
        n_seq: int,
        n_threads: int | None,
        kv_type: str = "f32",
        flash_attn: str = "off",
    ) -> Any:
        lib = self.lib
        p = lib.llama_context_default_params()
        p.flash_attn_type = FLASH_ATTN[flash_attn]
        p.type_k = p.type_v = lib.GGML_TYPE_F32 if kv_type == "f32" else lib.GGML_TYPE_F16
        p.n_ctx = int(n_ctx)
        p.n_batch = p.n_ubatch = int(n_batch)
        p.n_seq_max = int(n_seq)
        p.no_perf = True
        if hasattr(p, "kv_unified"):
            p.kv_unified = True
        if n_threads is not None:
            p.n_threads = p.n_threads_batch = int(n_threads)
        ctx = lib.llama_init_from_model(self.model, p)
        if not ctx:
            raise InputError(
                f"gguf: llama.cpp cannot create a context of {n_ctx} positions (out of memory?)"
            )
        self.contexts.append(ctx)
        return ctx

    def free_context(self, ctx: Any) -> None:
        if ctx in self.contexts:
            self.contexts.remove(ctx)
            self.lib.llama_free(ctx)

    def close(self) -> None:
        for ctx in self.contexts:
            self.lib.llama_free(ctx)
        self.contexts = []
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None


class _Batch:
    """A ``llama_batch`` of ``size`` tokens with numpy views of its arrays."""

    def __init__(self, lib: Any, size: int, n_seq: int = 1) -> None:
        self.lib = lib
        self.size = int(size)
        self.batch = lib.llama_batch_init(self.size, 0, int(n_seq))
        b = self.batch
        self.token = np.ctypeslib.as_array(b.token, shape=(self.size,))
        self.pos = np.ctypeslib.as_array(b.pos, shape=(self.size,))
        self.n_seq_id = np.ctypeslib.as_array(b.n_seq_id, shape=(self.size,))
        self.logits = np.ctypeslib.as_array(
            ctypes.cast(b.logits, ctypes.POINTER(ctypes.c_int8)), shape=(self.size,)
        )
        self.n_seq_id[:] = 1
        self.set_seq(np.zeros(self.size, dtype=np.int64))

    def set_seq(self, seq: np.ndarray) -> None:
        """Sequence id of each token slot (one per token)."""
        for i, s in enumerate(seq.tolist()):
            self.batch.seq_id[i][0] = s

    def fill(self, ids: np.ndarray, pos0: int, out: np.ndarray) -> None:
        n = int(ids.shape[0])
        self.batch.n_tokens = n
        self.token[:n] = ids
        self.pos[:n] = np.arange(pos0, pos0 + n, dtype=np.int32)
        self.logits[:n] = out

    def free(self) -> None:
        if self.batch is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None


class GGUFModel:
    """A GGUF model run by llama.cpp as a :class:`~infolens.models.base.LanguageModel`.

    Parameters
    ----------
    path : str
        The ``.gguf`` file.
    n_ctx : int, optional
        Input positions per window (the KV cache size); default: the training context, at
        most :data:`DEFAULT_MAX_CONTEXT`.
    n_gpu_layers : int
        Layers offloaded to a GPU (``-1``: all).
    n_threads : int, optional
        CPU threads for llama.cpp (default: its own choice).
    n_batch : int
        Tokens per ``llama_decode`` call (at most ``n_ctx``).
    special_tokens : {"parse", "text"}
        A literal special-token string in a document: the special token or ordinary text.
    kv_type : {"f16", "f32"}
        Element type of the KV cache.
    flash_attn : {"off", "on", "auto"}
        llama.cpp's flash attention (see the module docstring).
    vocab_only : bool
        Load the tokeniser only (no weights, no context): ``tokenize``, ``decode`` and the
        ids work, ``logits`` does not (the ``tokenizer=`` of an ``openai:`` model).

    Notes
    -----
    Close it with :meth:`close` (or use it as a context manager) to free llama.cpp's memory
    at once; it is freed at garbage collection otherwise.
    """

    predicts_first = False
    byte_level = False

    def __init__(
        self,
        path: str,
        *,
        n_ctx: int | None = None,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        n_batch: int = DEFAULT_BATCH,
        special_tokens: str = "parse",
        kv_type: str = "f32",
        flash_attn: str = "off",
        vocab_only: bool = False,
    ) -> None:
        if special_tokens not in SPECIAL_TOKENS:
            raise InputError(
                f"gguf: special_tokens: expected one of {', '.join(SPECIAL_TOKENS)}, got {special_tokens!r}"
            )
        if kv_type not in KV_TYPES:
            raise InputError(
                f"gguf: kv_type: expected one of {', '.join(KV_TYPES)}, got {kv_type!r}"
            )
        if flash_attn not in FLASH_ATTN:
            raise InputError(
                f"gguf: flash_attn: expected one of {', '.join(FLASH_ATTN)}, got {flash_attn!r}"
            )
        self.kv_type, self.flash_attn = kv_type, flash_attn
        for key, value in (("n_ctx", n_ctx), ("n_batch", n_batch), ("n_threads", n_threads)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"gguf: {key}: expected an integer >= 1, got {value!r}")
        if not os.path.isfile(path):
            what = "a directory" if os.path.isdir(path) else "no such file"
            raise InputError(f"gguf:{path}: expected a GGUF model file, got {what}")
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic != b"GGUF":
            raise InputError(f"gguf:{path}: expected a GGUF file (magic b'GGUF'), got {magic!r}")
        lib = _llama_cpp()
        self._lib = lib
        self.name = f"gguf:{path}"
        self.path = path
        self.parse_special = special_tokens == "parse"
        self.vocab_only = bool(vocab_only)
        self._native = _Native(lib, path, n_gpu_layers, self.vocab_only)
        vocab = self._native.vocab
        self.vocab_size = int(lib.llama_vocab_n_tokens(vocab))
        train = int(lib.llama_model_n_ctx_train(self._native.model))
        if n_ctx is None:
            n_ctx = min(train, DEFAULT_MAX_CONTEXT) if train > 0 else DEFAULT_MAX_CONTEXT
        self.max_context: int | None = int(n_ctx)
        self.n_batch = max(1, min(int(n_batch), int(n_ctx)))
        self.n_threads = n_threads
        bos, eos = int(lib.llama_vocab_bos(vocab)), int(lib.llama_vocab_eos(vocab))
        self.bos_id: int | None = bos if bos >= 0 else (eos if eos >= 0 else None)
        #: The GGUF's ``add_bos_token`` (what llama.cpp's own tools do; infolens places BOS
        #: by its ``--bos`` policy).
        self.add_bos = bool(lib.llama_vocab_get_add_bos(vocab)) and bos >= 0
        self._eos = eos if eos >= 0 else None
        self._ctx: Any = None
        batches: list[_Batch] = []
        if not self.vocab_only:
            try:
                self._ctx = self._native.context(
                    int(n_ctx), self.n_batch, 1, n_threads, kv_type, flash_attn
                )
                batches.append(_Batch(lib, self.n_batch))
            except BaseException:
                self._native.close()
                raise
        self._batch = batches[0] if batches else None
        self._finalizer = weakref.finalize(self, _free, self._native, batches)
        self._pieces: list[bytes] | None = None
        self._piece_len = np.zeros(0, np.int64)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free llama.cpp's context, batch and model now (the adapter is unusable after)."""
        self._finalizer()

    def __enter__(self) -> GGUFModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ tokens

    @property
    def eos_id(self) -> int | None:
        """The end-of-sequence id (generation stops there), or ``None``."""
        return self._eos

    def _piece_table(self) -> list[bytes]:
        """Bytes of every token as ``llama_token_to_piece`` renders it (special tokens as
        their text when they are parsed)."""
        if self._pieces is None:
            lib, vocab = self._lib, self._native.vocab
            buf = ctypes.create_string_buffer(256)
            pieces = []
            for t in range(self.vocab_size):
                n = lib.llama_token_to_piece(vocab, t, buf, 256, 0, self.parse_special)
                if n < 0:
                    big = ctypes.create_string_buffer(-n)
                    n = lib.llama_token_to_piece(vocab, t, big, -n, 0, self.parse_special)
                    pieces.append(big.raw[:n])
                else:
                    pieces.append(buf.raw[:n])
            self._pieces = pieces
            self._piece_len = np.fromiter(map(len, pieces), np.int64, len(pieces))
        return self._pieces

    def tokenize(self, text: str | bytes) -> Tokenized:
        """Token ids (no special tokens added) and UTF-8 byte spans, by llama.cpp.

        Spans come from the tokens' pieces; a leading space that the tokeniser adds itself
        (SentencePiece's dummy prefix) is given to no byte of the document (the first span
        starts at 0). When the pieces do not spell the document (a normalising tokeniser),
        the spans are ``-1``.
        """
        if not isinstance(text, str):
            raise TypeError(f"{self.name}: tokenize expects str, got {type(text).__name__}")
        data = text.encode("utf-8")
        if not data:
            return Tokenized(np.zeros(0, np.int64), np.zeros((0, 2), np.int64))
        ids = self._tokenize_bytes(data)
        pieces = self._piece_table()
        ends = np.cumsum(self._piece_len[ids])
        spelled = b"".join(pieces[i] for i in ids.tolist())
        if spelled == data:
            shift = 0
        elif spelled == b" " + data:
            shift = 1
        else:
            return Tokenized(ids, np.full((ids.shape[0], 2), -1, np.int64))
        offsets = np.empty((ids.shape[0], 2), np.int64)
        offsets[:, 1] = ends - shift
        offsets[0, 0] = 0
        offsets[1:, 0] = offsets[:-1, 1]
        np.maximum(offsets, 0, out=offsets)
        return Tokenized(ids, offsets)

    def _tokenize_bytes(self, data: bytes) -> np.ndarray:
        lib = self._lib
        cap = len(data) // 2 + 16  # about 4 bytes a token; a text with more is tokenised again
        buf = (lib.llama_token * cap)()
        n = lib.llama_tokenize(
            self._native.vocab, data, len(data), buf, cap, False, self.parse_special
        )
        if n < 0:
            cap = -n
            buf = (lib.llama_token * cap)()
            n = lib.llama_tokenize(
                self._native.vocab, data, len(data), buf, cap, False, self.parse_special
            )
            if n < 0:
                raise InputError(f"{self.name}: llama.cpp could not tokenize the text ({n})")
        return np.ctypeslib.as_array(buf)[:n].astype(np.int64)

    def decode_token(self, token_id: int) -> str:
        """Text of one token (``llama_token_to_piece``); a partial UTF-8 character gives
        U+FFFD."""
        return self._piece_table()[int(token_id)].decode("utf-8", errors="replace")

    def decode(self, ids: Any) -> str:
        """Text of a sequence of token ids (``llama_detokenize``, special tokens kept)."""
        lib = self._lib
        arr = np.asarray([int(i) for i in ids], dtype=np.int32)
        if arr.size == 0:
            return ""
        toks = (lib.llama_token * arr.size)(*arr.tolist())
        cap = 8 * arr.size + 16
        while True:
            out = ctypes.create_string_buffer(cap)
            n = lib.llama_detokenize(self._native.vocab, toks, arr.size, out, cap, False, True)
            if n >= 0:
                return out.raw[:n].decode("utf-8", errors="replace")
            cap = -n

    # ------------------------------------------------------------------ logits

    def _decode(self, ctx: Any, batch: _Batch) -> None:
        rc = self._lib.llama_decode(ctx, batch.batch)
        if rc != 0:
            if rc == 1:
                raise ContextFull(f"{self.name}: no room left in llama.cpp's KV cache")
            raise RuntimeError(f"{self.name}: llama_decode returned {rc}")

    def _clear(self, ctx: Any) -> None:
        lib = self._lib
        lib.llama_memory_clear(lib.llama_get_memory(ctx), True)

    def _rows(self, ctx: Any, n: int) -> np.ndarray:
        """View of llama.cpp's output buffer: ``n`` rows of ``V`` float32 logits."""
        ptr = self._lib.llama_get_logits(ctx)
        return np.ctypeslib.as_array(ptr, shape=(n, self.vocab_size))

    def logits(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[np.ndarray]:
        """Stream float32 logits for the predicted positions of ``windows``.

        Window ``ids`` of length ``m`` are fed as ``ids[:-1]`` to a fresh sequence; the
        rows are the outputs at input positions ``start - 1 .. m - 2``, at most
        ``max_rows`` per yielded array (each a copy, owned by the caller).
        """
        if max_rows < 1:
            raise ValueError(f"max_rows: expected >= 1, got {max_rows}")
        check_windows(self, windows, " (pass n_ctx)")
        ctx, batch, nb = self._ctx, self._batch, self.n_batch
        if ctx is None or batch is None:
            raise ValueError(f"{self.name}: loaded with vocab_only (a tokeniser): no logits")
        for w in windows:
            inputs = np.asarray(w.ids[:-1], dtype=np.int32)
            first = w.start - 1  # first input position whose output is a row
            self._clear(ctx)
            for p0 in range(0, inputs.shape[0], nb):
                piece = inputs[p0 : p0 + nb]
                flags = np.arange(p0, p0 + piece.shape[0]) >= first
                n_out = int(flags.sum())
                batch.fill(piece, p0, flags.astype(np.int8))
                self._decode(ctx, batch)
                if n_out == 0:
                    continue
                rows = self._rows(ctx, n_out)
                for r0 in range(0, n_out, max_rows):
                    yield np.array(rows[r0 : r0 + max_rows])

    # ------------------------------------------------------------------ generation

    def start_decoder(self, prefix: np.ndarray, n: int) -> _GGUFDecoder:
        """A KV-cache :class:`~infolens.models.base.Decoder` over ``n`` copies of
        ``prefix``, in its own llama.cpp context (freed with it) whose cache the sequences
        share: ``n_ctx + (n - 1) x min(n_ctx, DECODER_ROOM)`` cells, the prefix stored
        once. When it is full, or a sequence reaches ``n_ctx``, ``append`` raises
        :class:`~infolens.models.base.ContextFull` (generation ends with reason
        ``context``)."""
        if self.vocab_only:
            raise ValueError(f"{self.name}: loaded with vocab_only (a tokeniser): no decoder")
        return _GGUFDecoder(self, np.asarray(prefix, dtype=np.int64), int(n))


def _free(native: _Native, batches: list[_Batch]) -> None:
    for b in batches:
        b.free()
    native.close()


class _GGUFDecoder:
    """``n`` sequences with a shared prefix: the prefix decoded once (sequence 0) and its
    cache copied to the others; each step decodes one token per sequence."""

    def __init__(self, m: GGUFModel, prefix: np.ndarray, n: int) -> None:
        if n < 1:
            raise ValueError(f"n: expected >= 1, got {n}")
        if prefix.shape[0] < 1:
            raise ValueError(f"{m.name}: cannot predict a token from an empty context")
        ctxlen = int(m.max_context or DEFAULT_MAX_CONTEXT)
        if prefix.shape[0] > ctxlen:
            raise ContextFull(
                f"{m.name}: a prompt of {prefix.shape[0]} tokens exceeds the context {ctxlen}"
            )
        self.m, self.n, self.ctxlen = m, n, ctxlen
        lib = m._lib
        nb = max(m.n_batch, n)
        cells = ctxlen + (n - 1) * min(ctxlen, DECODER_ROOM)
        self.ctx = m._native.context(cells, nb, n, m.n_threads, m.kv_type, m.flash_attn)
        self.batch = _Batch(lib, nb, 1)
        self._fin = weakref.finalize(self, _free_decoder, m._native, self.ctx, self.batch)
        ids = prefix.astype(np.int32)
        for p0 in range(0, ids.shape[0], nb):
            piece = ids[p0 : p0 + nb]
            flags = np.zeros(piece.shape[0], np.int8)
            if p0 + piece.shape[0] == ids.shape[0]:
                flags[-1] = 1
            self.batch.fill(piece, p0, flags)
            m._decode(self.ctx, self.batch)
        mem = lib.llama_get_memory(self.ctx)
        for k in range(1, n):
            lib.llama_memory_seq_cp(mem, 0, k, -1, -1)
        self._last = np.repeat(np.array(m._rows(self.ctx, 1)), n, axis=0)
        self.length = int(prefix.shape[0])
        self.batch.set_seq(np.arange(nb) % n)

    def next_logits(self) -> np.ndarray:
        """``[n, V]`` float32 logits of the next token of each sequence."""
        return self._last

    def append(self, ids: np.ndarray) -> None:
        """Extend sequence ``k`` by ``ids[k]``."""
        m = self.m
        if self.length >= self.ctxlen:
            raise ContextFull(f"{m.name}: context of {self.ctxlen} is full")
        tok = np.asarray(ids, dtype=np.int32).reshape(-1)
        if tok.shape[0] != self.n:
            raise ValueError(f"ids: expected {self.n} token ids, got {tok.shape[0]}")
        b = self.batch
        b.batch.n_tokens = self.n
        b.token[: self.n] = tok
        b.pos[: self.n] = self.length
        b.logits[: self.n] = 1
        m._decode(self.ctx, b)
        self._last = np.array(m._rows(self.ctx, self.n))
        self.length += 1

    def close(self) -> None:
        """Free the decoder's llama.cpp context now."""
        self._fin()


def _free_decoder(native: _Native, ctx: Any, batch: _Batch) -> None:
    batch.free()
    native.free_context(ctx)


def load_gguf(rest: str, **options: Any) -> GGUFModel:
    """Resolve the part of a ``gguf:`` spec after ``gguf:`` (see the module docstring).

    Parameters
    ----------
    rest : str
        ``PATH`` or ``PATH,key=value,...`` with keys from :data:`SPEC_KEYS`.
    **options
        The same keys as keyword arguments (a key given both ways is an error); ``None``
        values are ignored.

    Raises
    ------
    ModelSpecError
        An empty path, a repeated key or a bad value.
    InputError
        A missing or non-GGUF file, llama-cpp-python not installed, or llama.cpp refusing
        the file.
    """
    path, spec_opts = parse_spec(rest)
    if not path:
        raise ModelSpecError("--model gguf:PATH: expected a .gguf file after 'gguf:', got nothing")
    given = {k: v for k, v in options.items() if v is not None}
    for k in given:
        if k not in SPEC_KEYS and k != "vocab_only":
            raise ModelSpecError(
                f"--model gguf:{rest}: unknown option {k!r} (expected one of {', '.join(SPEC_KEYS)})"
            )
        if k in spec_opts:
            raise ModelSpecError(f"--model gguf:{rest}: {k} is given twice")
    return GGUFModel(path, **spec_opts, **given)
