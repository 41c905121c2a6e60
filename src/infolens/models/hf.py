r"""Hugging Face causal language models (``hf:PATH_OR_ID``) via transformers.

Loading is **offline by default**: a local directory, or a model already in the local
Hugging Face cache. Without ``allow_download=True`` (``--allow-download``) no network
request is made (``local_files_only=True`` and the hub's offline switch are set while
loading) and a missing model is a one-line error saying so. ``trust_remote_code`` is off
unless asked for.

Tokenisation uses ``add_special_tokens=False``; infolens's BOS policy places the BOS token
(:mod:`infolens.windows`), so tokenisers that add BOS themselves are not double-BOS'd. A
literal special-token string in a document (``<|endoftext|>``) is parsed as that special
token by default (``special_tokens="parse"``, what lm-evaluation-harness does: the
tokeniser's ``split_special_tokens=False``), or tokenised as ordinary text with
``special_tokens="text"`` (``split_special_tokens=True``; ``--special-tokens text``). Byte
offsets come from the fast tokeniser's character offsets, converted to UTF-8 byte offsets.
The BOS id is the tokeniser's ``bos_token_id``, else its ``eos_token_id`` (the prefix token
lm-evaluation-harness uses).

**Memory.** :meth:`HFModel.logits` runs the base model (``model.base_model``) to get the last
hidden states ``[batch, T, H]``, gathers the rows to be predicted, and applies the output
head (``model.get_output_embeddings()``) to at most ``max_rows`` of them at a time, so the
peak is ``max_rows x V`` logits, never ``batch x T x V``. Final logit transformations of
the architecture are applied to each chunk:

* ``final_logit_softcapping`` ``c`` (Gemma 2/3): ``z -> c * tanh(z / c)``;
* ``logits_scaling`` (Granite): ``z -> z / logits_scaling``;
* ``logit_scale`` (Cohere): ``z -> z * logit_scale``;
* ``output_multiplier`` (text config): ``z -> z * output_multiplier``.

Any other transformation is detected when the model is loaded: the chunked head is compared
with the model's own ``forward`` on a short input, and a mismatch is an error rather than
silently wrong numbers.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from infolens.errors import InputError
from infolens.models._chunked import tokenize_in_pieces, tokenize_stream, utf8_byte_offsets
from infolens.models.base import ContextFull, Tokenized, Window, check_windows

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: What a literal special-token string in a document becomes: ``parse`` (the special
#: token, the default, as lm-evaluation-harness) or ``text`` (ordinary text tokens).
SPECIAL_TOKENS = ("parse", "text")
#: Context assumed when a config names none.
FALLBACK_CONTEXT = 2048


def char_to_byte_spans(text: str, spans: np.ndarray, piece: int = 1 << 20) -> np.ndarray:
    """Character spans ``[start, end)`` of ``text`` as UTF-8 byte spans, ``piece``
    characters at a time (so no ``len(text) + 1`` table is built for a long text).

    ``spans`` must be sorted by start and by end (a tokenizer's offsets are).

    Examples
    --------
    >>> char_to_byte_spans("aé€😀", np.array([[0, 1], [1, 3], [3, 4]])).tolist()
    [[0, 1], [1, 6], [6, 10]]
    """
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if text.isascii():
        return spans.copy()
    if (np.diff(spans, axis=0) < 0).any():  # unsorted spans: the whole table, simply
        return utf8_byte_offsets(text)[spans]
    out = np.empty_like(spans)
    base = 0
    for a in range(0, max(len(text), 1), piece):
        cum = utf8_byte_offsets(text[a : a + piece]) + base  # byte offset of char a + i
        hi = a + len(cum) - 1
        for col in (0, 1):
            c = spans[:, col]
            lo_i, hi_i = np.searchsorted(c, a, "left"), np.searchsorted(c, hi, "right")
            out[lo_i:hi_i, col] = cum[c[lo_i:hi_i] - a]
        base = int(cum[-1])
    return out


@contextlib.contextmanager
def _offline(enabled: bool) -> Iterator[None]:
    """Force the hub's offline mode while loading (no HTTP request can be made)."""
    if not enabled:
        yield
        return
    try:
        import huggingface_hub.constants as hc
    except ImportError:  # pragma: no cover
        yield
        return
    saved = hc.HF_HUB_OFFLINE
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    hc.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE = saved
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def _pick_device(device: str) -> str:
    import torch

    if device not in DEVICES:
        raise InputError(f"--device: expected one of {', '.join(DEVICES)}, got {device!r}")
    mps = getattr(torch.backends, "mps", None)
    available = {"cuda": torch.cuda.is_available(), "mps": bool(mps and mps.is_available())}
    if device == "auto":
        return next((d for d in ("cuda", "mps") if available[d]), "cpu")
    if device in available and not available[device]:
        raise InputError(f"--device {device}: no {device.upper()} device is available")
    return device


def _text_config(config: Any) -> Any:
    """The text part of a (possibly multimodal) config."""
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _pick_dtype(dtype: str, device: str, config: Any) -> Any:
    """``auto``: float32 on CPU; on accelerators the checkpoint's dtype if it is 16-bit."""
    import torch

    if dtype not in DTYPES:
        raise InputError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device == "cpu":
        return torch.float32
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored, None)
    if stored in (torch.bfloat16, torch.float16):
        return stored
    return torch.float32


def _context(config: Any, tokenizer: Any) -> int:
    cfg = _text_config(config)
    for attr in (
        "max_position_embeddings",
        "n_positions",
        "n_ctx",
        "seq_length",
        "max_sequence_length",
    ):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    if isinstance(v, int) and 0 < v < 10**7:
        return v
    return FALLBACK_CONTEXT


class HFModel:
    """A transformers causal LM as a :class:`~infolens.models.base.LanguageModel`.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM (``AutoModelForCausalLM``), already on its device and in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokeniser (a fast one gives byte offsets; a slow one gives ``-1`` offsets).
    name : str
        Description, e.g. ``"hf:gpt2"``.
    batch_size : int
        Windows per forward pass.
    verify : bool
        Check the chunked head against the model's own ``forward`` (see module docstring).
    special_tokens : {"parse", "text"}
        A literal special-token string in a document (``<|endoftext|>``): ``parse`` makes
        it the special token (the default, as lm-evaluation-harness), ``text`` tokenises it
        as ordinary text (the tokeniser's ``split_special_tokens=True``).
    """

    predicts_first = False
    byte_level = False

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        *,
        batch_size: int = 8,
        verify: bool = True,
        special_tokens: str = "parse",
    ) -> None:
        import torch

        if batch_size < 1:
            raise InputError(f"--batch-size: expected >= 1, got {batch_size}")
        _check_special_tokens(special_tokens)
        self.special_tokens = special_tokens
        #: The tokeniser call's ``split_special_tokens`` (always passed: explicit).
        self.split_special_tokens = special_tokens == "text"
        #: Characters tokenised per call; longer texts go in pieces (same ids).
        self.tokenize_piece = 1 << 16
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = int(batch_size)
        self.head = model.get_output_embeddings()
        if self.head is None:
            raise InputError(f"{name}: the model has no output embeddings (not a causal LM head)")
        self.backbone = model.base_model
        if self.backbone is model:
            raise InputError(f"{name}: cannot separate the base model from the output head")
        weight = getattr(self.head, "weight", None)
        self.vocab_size = (
            int(weight.shape[0]) if weight is not None else int(model.config.vocab_size)
        )
        bos = getattr(tokenizer, "bos_token_id", None)
        if bos is None:
            bos = getattr(tokenizer, "eos_token_id", None)
        self.bos_id: int | None = None if bos is None else int(bos)
        self.max_context: int | None = _context(model.config, tokenizer)
        self.device = next(model.parameters()).device
        cfg = model.config
        text_cfg = _text_config(cfg)
        self._softcap = getattr(text_cfg, "final_logit_softcapping", None) or getattr(
            cfg, "final_logit_softcapping", None
        )
        self._divide = getattr(text_cfg, "logits_scaling", None)
        scale = getattr(model, "logit_scale", None)
        self._multiply = float(scale) if isinstance(scale, (int, float)) else None
        mult = getattr(text_cfg, "output_multiplier", None)
        if isinstance(mult, (int, float)):
            self._multiply = (self._multiply or 1.0) * float(mult)
        self._torch = torch
        if verify:
            self._verify()

    # ------------------------------------------------------------------ tokens

    def tokenize(self, text: str | bytes) -> Tokenized:
        """Token ids (no special tokens added) and UTF-8 byte spans.

        A literal special-token string in ``text`` is the special token, or ordinary text
        tokens with ``special_tokens="text"`` (the class docstring).

        ``text`` must be ``str`` (not byte-level: :func:`infolens.pipeline.stream_documents`
        decodes or refuses ``bytes`` documents before they get here).
        """
        if not isinstance(text, str):
            raise TypeError(f"{self.name}: tokenize expects str, got {type(text).__name__}")
        if not text:
            return Tokenized(np.zeros(0, np.int64), np.zeros((0, 2), np.int64))
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            encode = self._encoder()
            # a long text in pieces (same ids as whole: infolens.models._chunked), so the
            # tokenizer's own bookkeeping stays bounded
            ids, chars = tokenize_in_pieces(encode, text, piece=self.tokenize_piece,
                                            atomic=self._atomic())  # fmt: skip
            offsets = char_to_byte_spans(text, chars)
        else:
            enc = tok(
                text,
                add_special_tokens=False,
                split_special_tokens=self.split_special_tokens,
                verbose=False,
            )
            ids = np.asarray(enc["input_ids"], dtype=np.int64)
            offsets = np.full((ids.shape[0], 2), -1, dtype=np.int64)
        return Tokenized(ids, offsets)

    def _atomic(self) -> list[str]:
        """The strings the tokeniser reads whole (its special and added tokens), which a
        piece boundary must not cut; none when they are tokenised as text."""
        if self.split_special_tokens:
            return []
        tok = self.tokenizer
        added = getattr(tok, "added_tokens_decoder", None) or {}
        out = {str(getattr(v, "content", v)) for v in added.values()}
        out |= {str(x) for x in (getattr(tok, "all_special_tokens", None) or [])}
        return sorted(s for s in out if s)

    def _encoder(self) -> Any:
        tok = self.tokenizer

        def encode(s: str) -> tuple[np.ndarray, np.ndarray]:
            enc = tok(
                s,
                add_special_tokens=False,
                split_special_tokens=self.split_special_tokens,
                return_offsets_mapping=True,
                verbose=False,
            )
            return (
                np.asarray(enc["input_ids"], dtype=np.int64),
                np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2),
            )

        return encode

    def tokenize_stream(self, pieces: Iterable[str | bytes]) -> Iterator[Tokenized]:
        """:meth:`tokenize` of the concatenation of ``pieces`` (``str``), a run of tokens
        at a time, with absolute UTF-8 byte spans: the same ids and spans as tokenising the
        whole text (:func:`infolens.models._chunked.tokenize_stream`), holding about
        ``tokenize_piece`` characters at a time. A slow (non-fast) tokenizer has no offsets
        and is given the whole text."""
        if not getattr(self.tokenizer, "is_fast", False):
            yield self.tokenize("".join(pieces))  # type: ignore[arg-type]  # str pieces
            return
        for ids, spans in tokenize_stream(
            self._encoder(), pieces, piece=self.tokenize_piece, byte_spans=True,  # type: ignore[arg-type]
            atomic=self._atomic(),
        ):
            yield Tokenized(ids, spans)

    def decode_token(self, token_id: int) -> str:
        """Text of one token, as the tokeniser decodes it alone (for top alternatives).

        Parameters
        ----------
        token_id : int
            A token id.

        Returns
        -------
        str
            ``tokenizer.decode([token_id])``; a token holding part of a UTF-8 character
            decodes to U+FFFD.
        """
        return str(self.tokenizer.decode([int(token_id)], clean_up_tokenization_spaces=False))

    def decode(self, ids: Any) -> str:
        """Text of a sequence of token ids (``tokenizer.decode``, special tokens kept)."""
        return str(self.tokenizer.decode([int(i) for i in ids], clean_up_tokenization_spaces=False))

    @property
    def eos_id(self) -> int | None:
        """The tokeniser's end-of-sequence id (generation stops there), or ``None``."""
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return None if eos is None else int(eos)

    def start_decoder(self, prefix: np.ndarray, n: int) -> _HFDecoder:
        """A KV-cache :class:`~infolens.models.base.Decoder` over ``n`` copies of
        ``prefix``: the same backbone, head and final-logit transforms as :meth:`logits`."""
        return _HFDecoder(self, prefix, n)

    # ------------------------------------------------------------------ logits

    def _finish(self, logits: Any) -> Any:
        if self._divide:
            logits = logits / self._divide
        if self._multiply is not None:
            logits = logits * self._multiply
        if self._softcap:
            c = float(self._softcap)
            logits = self._torch.tanh(logits / c) * c
        return logits

    def _hidden(self, inputs: list[np.ndarray]) -> Any:
        """Last hidden states ``[B, T, H]`` for right-padded inputs."""
        torch = self._torch
        lens = [int(x.shape[0]) for x in inputs]
        t = max(lens)
        ids = torch.zeros((len(inputs), t), dtype=torch.long)
        for k, x in enumerate(inputs):
            ids[k, : lens[k]] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
        mask = None
        if min(lens) != t:
            mask = torch.zeros((len(inputs), t), dtype=torch.long)
            for k, n in enumerate(lens):
                mask[k, :n] = 1
            mask = mask.to(self.device)
        out = self.backbone(input_ids=ids.to(self.device), attention_mask=mask, use_cache=False)
        return out[0] if not hasattr(out, "last_hidden_state") else out.last_hidden_state

    def logits(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[Any]:
        """Stream logits for the predicted positions of ``windows``, ``<= max_rows`` rows each.

        Window ``ids`` of length ``m`` are fed as ``ids[:-1]``; the rows are the outputs at
        input positions ``start - 1 .. m - 2``. Yields torch tensors in the model's dtype.
        """
        torch = self._torch
        if max_rows < 1:
            raise ValueError(f"max_rows: expected >= 1, got {max_rows}")
        check_windows(self, windows)
        # Grad mode is thread-local: a generator must not yield inside ``no_grad`` (or
        # ``inference_mode``), or the caller's code runs with gradients off between yields,
        # and for good if the generator is abandoned. Each step enters and leaves it.
        for b0 in range(0, len(windows), self.batch_size):
            batch = windows[b0 : b0 + self.batch_size]
            with torch.no_grad():
                hidden = self._hidden([w.ids[:-1] for w in batch])
                rows = [hidden[k, w.start - 1 : w.ids.shape[0] - 1] for k, w in enumerate(batch)]
                h = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
                del hidden, rows
            for r0 in range(0, int(h.shape[0]), max_rows):
                with torch.no_grad():
                    chunk = self._finish(self.head(h[r0 : r0 + max_rows]))
                yield chunk

    # ------------------------------------------------------------------ checks

    def _verify(self) -> None:
        """Compare the chunked head with ``model(ids).logits`` on a short input."""
        torch = self._torch
        n = min(8, self.max_context or 8)
        gen = np.random.default_rng(0)
        ids = gen.integers(
            0,
            min(
                self.vocab_size,
                int(getattr(self.tokenizer, "vocab_size", self.vocab_size) or self.vocab_size),
            ),
            size=n + 1,
        )
        w = Window(ids.astype(np.int64), 1)
        mine = torch.cat(list(self.logits([w], max_rows=3))).float()
        with torch.no_grad():
            ref = (
                self.model(
                    input_ids=torch.as_tensor(ids[:-1][None], device=self.device), use_cache=False
                )
                .logits[0]
                .float()
            )
        if ref.shape != mine.shape:
            raise InputError(
                f"{self.name}: the model's output has shape {tuple(ref.shape)}, the chunked head "
                f"{tuple(mine.shape)}; this architecture is not supported"
            )
        err = float((ref - mine).abs().max())
        scale = 1.0 + float(ref.abs().max())
        tol = 1e-4 if next(self.model.parameters()).dtype == torch.float32 else 2e-2
        if not err <= tol * scale:
            raise InputError(
                f"{self.name}: the chunked output head differs from the model's forward by {err:.3g}; "
                f"this architecture transforms its logits in a way infolens does not know"
            )


def load_hf(
    path_or_id: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    batch_size: int = 8,
    allow_download: bool = False,
    trust_remote_code: bool = False,
    verify: bool = True,
    special_tokens: str = "parse",
) -> HFModel:
    """Load ``hf:PATH_OR_ID`` (see the module docstring for the offline rules).

    Parameters
    ----------
    path_or_id : str
        A local directory or a hub id already in the local cache (any hub id with
        ``allow_download``).
    dtype : {"auto", "float32", "bfloat16", "float16"}
        Weights and compute dtype; ``auto`` is float32 on CPU, else the checkpoint's dtype
        when it is 16-bit.
    device : {"auto", "cpu", "cuda", "mps"}
        ``auto``: CUDA, then MPS, then CPU.
    batch_size : int
        Windows per forward pass.
    allow_download : bool
        Permit fetching from the Hugging Face Hub.
    trust_remote_code : bool
        Run model code shipped with the checkpoint (off by default).
    verify : bool
        Check the chunked head against the model's own ``forward``.
    special_tokens : {"parse", "text"}
        A literal special-token string in a document: the special token (``parse``, the
        default, as lm-evaluation-harness) or ordinary text (``text``).

    Raises
    ------
    InputError
        One line: missing model (saying that infolens is offline by default), bad option, or
        an unsupported architecture.
    """
    if not path_or_id:
        raise InputError("--model hf:PATH_OR_ID: expected a local path or a model id after 'hf:'")
    _check_special_tokens(special_tokens)
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise InputError(
            f"hf:{path_or_id}: needs torch and transformers (pip install 'infolens[hf]'): {exc}"
        ) from None
    dev = _pick_device(device)
    local_dir = os.path.isdir(path_or_id)
    kw: dict[str, Any] = {"trust_remote_code": bool(trust_remote_code)}
    if not allow_download:
        kw["local_files_only"] = True
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with _offline(not allow_download):
            try:
                config = AutoConfig.from_pretrained(path_or_id, **kw)
            except Exception as exc:  # any failure reading the config is the folder's
                if not allow_download and not local_dir and isinstance(exc, (OSError, ValueError)):
                    raise InputError(
                        f"hf:{path_or_id}: not found locally (no such directory, and not in the "
                        f"Hugging Face cache); infolens does not download unless you pass --allow-download"
                    ) from None
                raise InputError(
                    f"hf:{path_or_id}: cannot load the model config: {_first_line(exc)}"
                ) from None
            torch_dtype = _pick_dtype(dtype, dev, config)
            # Whatever goes wrong inside transformers, safetensors or torch while reading a
            # checkpoint (truncated or corrupt weights, impossible sizes in the config, a
            # pickle-only file refused by weights_only) is this folder's fault: one line.
            try:
                tokenizer = AutoTokenizer.from_pretrained(path_or_id, **kw)
            except Exception as exc:
                raise InputError(
                    f"hf:{path_or_id}: cannot load the tokenizer: {_reason(exc)}"
                ) from None
            _check_tokenizer(tokenizer, path_or_id)
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    path_or_id, config=config, dtype=torch_dtype, **kw
                )
            except Exception as exc:
                raise InputError(
                    f"hf:{path_or_id}: cannot load the model weights: {_reason(exc)}"
                ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    model.to(dev)  # type: ignore[arg-type]
    model.eval()
    return HFModel(
        model,
        tokenizer,
        f"hf:{path_or_id}",
        batch_size=batch_size,
        verify=verify,
        special_tokens=special_tokens,
    )


def _check_special_tokens(special_tokens: str) -> None:
    if special_tokens not in SPECIAL_TOKENS:
        raise InputError(
            f"--special-tokens: expected one of {', '.join(SPECIAL_TOKENS)}, got {special_tokens!r}"
        )


def _check_tokenizer(tokenizer: Any, path_or_id: str) -> None:
    """A tokenizer that turns text into no tokens (transformers builds an empty one for a
    folder without tokenizer files) is an error, not a corpus of empty documents."""
    try:
        ids = tokenizer("infolens probe: hello", add_special_tokens=False)["input_ids"]
    except Exception as exc:
        raise InputError(f"hf:{path_or_id}: the tokenizer fails on text: {_reason(exc)}") from None
    if len(ids) == 0 or len(tokenizer) < 2:
        raise InputError(
            f"hf:{path_or_id}: expected a tokenizer (tokenizer.json, tokenizer.model or "
            f"vocab.json + merges.txt), got one with {len(tokenizer)} token(s) that turns text "
            f"into no tokens; is the tokenizer missing from the folder?"
        )


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of an exception, with the advice of torch's weights_only refusal
    shortened to what it means here."""
    line = _first_line(exc)
    if "weights_only" in str(exc):
        line = (
            "the checkpoint is a pickle that torch refuses to load safely (weights_only); "
            "convert it to safetensors"
        )
    return f"{type(exc).__name__}: {line}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _HFDecoder:
    """``n`` sequences with a shared prefix, extended with the backbone's KV cache."""

    def __init__(self, m: HFModel, prefix: np.ndarray, n: int) -> None:
        torch = m._torch
        self.m = m
        if prefix.shape[0] < 1:
            raise ValueError(f"{m.name}: cannot predict a token from an empty context")
        if m.max_context is not None and prefix.shape[0] > m.max_context:
            raise ContextFull(
                f"{m.name}: a prompt of {prefix.shape[0]} tokens exceeds the context {m.max_context}"
            )
        ids = torch.as_tensor(np.ascontiguousarray(prefix, dtype=np.int64))[None].repeat(n, 1)
        self.length = int(prefix.shape[0])
        # transformers >= 5.2x names the KV cache ``cache``; earlier ``past_key_values``
        params = inspect.signature(m.backbone.forward).parameters
        self.key = "cache" if "cache" in params else "past_key_values"
        with torch.no_grad():
            out = m.backbone(input_ids=ids.to(m.device), use_cache=True)
        self.past = out[self.key]
        self.h = out.last_hidden_state[:, -1]

    def next_logits(self) -> Any:
        with self.m._torch.no_grad():
            return self.m._finish(self.m.head(self.h))

    def append(self, ids: np.ndarray) -> None:
        m, torch = self.m, self.m._torch
        if m.max_context is not None and self.length >= m.max_context:
            raise ContextFull(f"{m.name}: context of {m.max_context} is full")
        x = torch.as_tensor(np.asarray(ids, dtype=np.int64).reshape(-1, 1), device=m.device)
        with torch.no_grad():
            out = m.backbone(input_ids=x, use_cache=True, **{self.key: self.past})
        self.past = out[self.key]
        self.h = out.last_hidden_state[:, -1]
        self.length += 1
