"""A tiny Hugging Face causal LM built locally (nothing downloaded), for tests.

``build_tiny_hf(path)`` trains a byte-level BPE tokeniser on text from Python's own stdlib
docstrings, builds a 2-layer GPT-2 (``n_embd`` 32) with random weights, and saves both to
``path``; load it with ``infolens.models.load_model(f"hf:{path}")``. Import the pytest
fixtures (``tiny_hf_dir``, ``tiny_hf``) into a ``conftest.py``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

TINY_VOCAB = 400
TINY_CONTEXT = 64


def stdlib_text(max_chars: int = 60_000) -> str:
    """Docstrings of a few stdlib modules: local, deterministic English-and-code text."""
    import collections
    import functools
    import itertools
    import json
    import pathlib
    import textwrap

    parts: list[str] = []
    for mod in (json, collections, functools, itertools, pathlib, textwrap):
        parts.append(inspect.getdoc(mod) or "")
        for _, obj in sorted(vars(mod).items()):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                parts.append(doc)
    text = "\n\n".join(parts)
    return text[:max_chars]


def build_tiny_hf(
    path: Path, *, seed: int = 0, bos: bool = True, context: int = TINY_CONTEXT, layers: int = 2
) -> Path:
    """Save a tiny GPT-2 (``layers`` layers, ``context`` positions) and its tokeniser to
    ``path`` and return ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([stdlib_text()], trainer=trainer)
    special = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"} if bos else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    eot = tok.token_to_id("<|endoftext|>")
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=context,
        n_embd=32,
        n_layer=layers,
        n_head=2,
        bos_token_id=eot,
        eos_token_id=eot,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():  # make the distribution less flat than the default init
        model.lm_head.weight.mul_(
            8.0
        ) if not config.tie_word_embeddings else model.transformer.wte.weight.mul_(8.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny saved GPT-2 + tokeniser (built once per session)."""
    return build_tiny_hf(tmp_path_factory.mktemp("tiny_hf"))


@pytest.fixture(scope="session")
def tiny_hf(tiny_hf_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny model loaded as an infolens adapter (float32, CPU, batch size 3)."""
    from infolens.models import load_model

    return load_model(f"hf:{tiny_hf_dir}", device="cpu", dtype="float32", batch_size=3)
