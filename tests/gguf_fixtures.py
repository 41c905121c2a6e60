"""A tiny llama-architecture model in transformers and as GGUF files, built locally.

``build_tiny_llama(path)`` trains a SentencePiece BPE tokeniser (byte fallback) on Python's
own stdlib docstrings, builds a 2-layer ``LlamaForCausalLM`` with random weights (grouped
query attention: 4 query heads, 2 key/value heads) and saves both with transformers.
``write_gguf(hf_dir, out)`` writes the same weights and tokeniser as an F32 GGUF file with
the ``gguf`` package (what llama.cpp's ``convert_hf_to_gguf.py`` does for this
architecture: the same tensor names, the same rotary permutation of the query and key
weights, the SentencePiece vocabulary). Checked once by hand against the converter of
llama-cpp-python 0.3.36's sdist (``convert_hf_to_gguf.py --outtype f32``, run with
``PYTHONPATH=vendor/llama.cpp/gguf-py``): the same token ids and spans and bit-identical
logits; the converter is not needed at test time. ``quantize(src, dst, "Q8_0")`` makes a
quantised copy with llama.cpp's own quantiser (``llama_cpp.llama_model_quantize``).

The pytest fixtures (``tiny_llama_dir``, ``tiny_gguf``, ``tiny_gguf_q8``,
``tiny_gguf_q4k``) are built once per session; import them into a ``conftest.py`` or a
test module.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_fixtures import stdlib_text

LLAMA_VOCAB = 512
LLAMA_CONTEXT = 256


def build_tiny_llama(
    path: Path,
    *,
    seed: int = 0,
    vocab: int = LLAMA_VOCAB,
    context: int = LLAMA_CONTEXT,
    hidden: int = 256,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    model_vocab: int | None = None,
    text: str | None = None,
) -> Path:
    """Save a tiny random ``LlamaForCausalLM`` and a SentencePiece tokeniser to ``path``.

    The tokeniser has no text normalisation and keeps whitespace as it is
    (``normalization_rule_name="identity"``, ``remove_extra_whitespaces=False``), so that
    transformers and llama.cpp split any text the same way. ``model_vocab`` (at least the
    tokeniser's) widens the model's embedding and output head (a realistic vocabulary
    size for benchmarks; the extra ids are never produced by the tokeniser).
    """
    import io

    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    corpus = (text or stdlib_text()).splitlines()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(line for line in corpus if line.strip()),
        model_writer=buf,
        vocab_size=vocab,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        hard_vocab_limit=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (path / "tokenizer.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    _hf_tokenizer(sp).save_pretrained(path)
    n_vocab = int(sp.vocab_size())
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=max(n_vocab, model_vocab or 0),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=context,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a less flat distribution than the default init
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(path)
    return path


def _hf_tokenizer(sp: Any) -> Any:
    """The SentencePiece BPE model as a transformers fast tokeniser (what transformers'
    ``LlamaConverter`` builds, without needing protobuf to read the model): the same pieces,
    merges ranked by the merged piece's score, byte fallback, a ``▁`` prefix on the text."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    n = int(sp.vocab_size())
    vocab = {sp.IdToPiece(i): i for i in range(n)}
    normal = [
        p for i, p in enumerate(vocab) if not (sp.IsByte(i) or sp.IsControl(i) or sp.IsUnknown(i))
    ]
    merges = []
    for left in normal:
        for right in normal:
            merged = vocab.get(left + right)
            if merged is not None:
                merges.append((merged, vocab[left], vocab[right], left, right))
    merges.sort()
    bpe = models.BPE(
        vocab=vocab,
        merges=[(m[3], m[4]) for m in merges],
        unk_token="<unk>",
        fuse_unk=True,
        byte_fallback=True,
    )
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="first", split=False
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("\u2581", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """transformers' rotary layout (halves) to llama.cpp's (interleaved pairs), as
    ``convert_hf_to_gguf.py``'s ``LlamaModel.permute``."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _rope_theta(cfg: Any) -> float:
    theta = getattr(cfg, "rope_theta", None)
    rp = getattr(cfg, "rope_parameters", None)
    if theta is None and isinstance(rp, dict):
        theta = rp.get("rope_theta")
    return float(theta if theta is not None else 10000.0)


def write_gguf(hf_dir: Path, out: Path) -> Path:
    """Write the transformers llama in ``hf_dir`` as an F32 GGUF file ``out``."""
    import gguf
    import torch
    from transformers import LlamaForCausalLM

    hf_dir, out = Path(hf_dir), Path(out)
    model = LlamaForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    cfg = model.config
    vocab = gguf.SentencePieceVocab(hf_dir)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    for i in range(len(tokens), cfg.vocab_size):  # a model wider than its tokeniser
        tokens.append(f"<unused{i}>".encode())
        scores.append(-1e4)
        types.append(gguf.TokenType.UNUSED)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("infolens-tiny-llama")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(_rope_theta(cfg))
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(b + "attn_q.weight", _permute(sd[p + "self_attn.q_proj.weight"], nh))
        w.add_tensor(b + "attn_k.weight", _permute(sd[p + "self_attn.k_proj.weight"], nkv))
        w.add_tensor(b + "attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(b + "attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(b + "ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(b + "ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(b + "ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(b + "ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def quantize(src: Path, dst: Path, kind: str = "Q8_0") -> Path:
    """A quantised copy of a GGUF file, by llama.cpp's quantiser.

    ``kind`` names a ``LLAMA_FTYPE_MOSTLY_*`` constant of ``llama_cpp`` (``Q8_0``,
    ``Q4_K_M``, ...). Tensors whose rows are not a multiple of the block size stay in a
    fallback type, as llama.cpp decides.
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(
        str(src).encode(), str(dst).encode(), llama_cpp.byref(params)
    )
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({kind}) failed with {rc}")
    return Path(dst)


#: Set to 1 (``.ci/run`` does) to make a missing engine a failure instead of a skip.
REQUIRE_VAR = "INFOLENS_REQUIRE_ENGINES"


def need(module: str, reason: str) -> Any:
    """Import ``module``, or skip with ``reason`` (fail when ``$INFOLENS_REQUIRE_ENGINES``
    is 1: CI must run these tests)."""
    if os.environ.get(REQUIRE_VAR) == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=reason)


def _need_engine() -> None:
    need("llama_cpp", "llama-cpp-python is not installed (pip install 'infolens[gguf]')")
    need("gguf", "the gguf package (to write the test GGUF) is not installed")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random llama + SentencePiece tokeniser saved with transformers."""
    need("sentencepiece", "sentencepiece (to train the test tokeniser) is not installed")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_gguf(tiny_llama_dir: Path) -> Path:
    """The tiny llama as an F32 GGUF file."""
    _need_engine()
    return write_gguf(tiny_llama_dir, tiny_llama_dir / "model-f32.gguf")


@pytest.fixture(scope="session")
def tiny_gguf_q8(tiny_gguf: Path) -> Path:
    """Its Q8_0 copy."""
    return quantize(tiny_gguf, tiny_gguf.with_name("model-q8_0.gguf"), "Q8_0")


@pytest.fixture(scope="session")
def tiny_gguf_q4k(tiny_gguf: Path) -> Path:
    """Its Q4_K_M copy."""
    return quantize(tiny_gguf, tiny_gguf.with_name("model-q4_k_m.gguf"), "Q4_K_M")
