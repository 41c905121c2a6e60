"""The transformers adapter (infolens.models.hf): tokens, byte offsets, chunked head, offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from infolens.errors import InputError
from infolens.models import LanguageModel, Window, load_model
from infolens.models.hf import HFModel, utf8_byte_offsets

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_is_a_language_model(tiny_hf):
    assert isinstance(tiny_hf, LanguageModel)
    assert tiny_hf.vocab_size == tiny_hf.model.get_output_embeddings().weight.shape[0]
    assert tiny_hf.max_context == 64
    assert tiny_hf.bos_id == tiny_hf.tokenizer.bos_token_id
    assert not tiny_hf.predicts_first and not tiny_hf.byte_level


def test_utf8_byte_offsets():
    text = "a\u00e9\u20ac\U0001f600 z"
    b = utf8_byte_offsets(text)
    assert b.tolist() == [len(text[:i].encode()) for i in range(len(text) + 1)]


def test_tokenize_byte_spans(tiny_hf):
    text = "Naïve café: 數學 ✓ — return the value.\n"
    tok = tiny_hf.tokenize(text)
    data = text.encode()
    assert tok.ids.dtype == np.int64 and tok.offsets.shape == (len(tok), 2)
    assert tiny_hf.tokenizer.decode(tok.ids.tolist()) == text
    # spans are byte offsets into the UTF-8 text, in order, covering it
    assert tok.offsets[0, 0] == 0 and tok.offsets[-1, 1] == len(data)
    assert (np.diff(tok.offsets[:, 0]) >= 0).all()
    assert data[tok.offsets[1, 0] : tok.offsets[2, 1]].decode(errors="replace")


def test_no_special_tokens_even_if_the_tokenizer_adds_bos(tiny_hf):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = tiny_hf.tokenizer.backend_tokenizer
    import copy

    b2 = copy.deepcopy(backend)
    bos = tiny_hf.tokenizer.bos_token
    b2.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tiny_hf.bos_id)]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=b2, bos_token=bos, eos_token=bos)
    assert tok("abc")["input_ids"][0] == tiny_hf.bos_id  # this tokenizer adds BOS itself
    m = HFModel(tiny_hf.model, tok, "hf:bos-adding", verify=False)
    ids = m.tokenize("abc").ids
    assert ids[0] != tiny_hf.bos_id and (ids == tiny_hf.tokenize("abc").ids).all()


def test_logits_chunks_match_full_forward(tiny_hf):
    rng = np.random.default_rng(1)
    windows = [
        Window(rng.integers(0, 300, size=20), 1),
        Window(rng.integers(0, 300, size=9), 4),
        Window(rng.integers(0, 300, size=33), 30),
    ]
    chunks = list(tiny_hf.logits(windows, max_rows=5))
    assert all(c.shape[0] <= 5 and c.shape[1] == tiny_hf.vocab_size for c in chunks)
    got = torch.cat(chunks).double()
    ref = []
    for w in windows:
        with torch.no_grad():
            out = tiny_hf.model(input_ids=torch.as_tensor(w.ids[:-1][None])).logits[0]
        ref.append(out[w.start - 1 :].double())
    ref_t = torch.cat(ref)
    assert got.shape == ref_t.shape == (19 + 5 + 3, tiny_hf.vocab_size)
    torch.testing.assert_close(got, ref_t, rtol=1e-4, atol=1e-4)


def test_empty_context_is_refused(tiny_hf):
    with pytest.raises(ValueError, match="empty context"):
        list(tiny_hf.logits([Window(np.arange(3), 0)], max_rows=4))


def test_softcapping_applied_and_unknown_transforms_detected(tiny_hf):
    m = HFModel(tiny_hf.model, tiny_hf.tokenizer, "hf:capped", verify=False)
    w = [Window(np.arange(10), 1)]
    raw = torch.cat(list(m.logits(w, max_rows=4)))
    m._softcap = 2.0
    capped = torch.cat(list(m.logits(w, max_rows=4)))
    torch.testing.assert_close(capped, 2.0 * torch.tanh(raw / 2.0))
    # GPT-2's forward ignores this config key, so the adapter's head no longer matches the
    # model's own output: loading must refuse rather than report wrong numbers
    cfg = tiny_hf.model.config
    cfg.final_logit_softcapping = 1.0
    try:
        with pytest.raises(InputError, match="transforms its logits"):
            HFModel(tiny_hf.model, tiny_hf.tokenizer, "hf:capped")
    finally:
        del cfg.final_logit_softcapping


def test_offline_missing_model_is_a_clear_error(monkeypatch):
    # no network request at all: any attempt to connect is recorded (and fails)
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(InputError, match=r"not found locally.*--allow-download"):
        load_model("hf:no-such-org/surely-not-a-model-1234", device="cpu")
    assert attempts == []


def test_bad_options(tiny_hf_dir, tmp_path):
    with pytest.raises(InputError, match="--dtype"):
        load_model(f"hf:{tiny_hf_dir}", dtype="float8")
    with pytest.raises(InputError, match="--batch-size"):
        load_model(f"hf:{tiny_hf_dir}", device="cpu", batch_size=0)
    with pytest.raises(InputError, match="cannot load the model config"):
        load_model(f"hf:{tmp_path}", device="cpu")  # an empty directory


def test_abandoned_logits_stream_leaves_grad_mode_alone(tiny_hf_dir) -> None:  # type: ignore[no-untyped-def]
    model = load_model(f"hf:{tiny_hf_dir}")
    ids = model.tokenize("the quick brown fox jumps over the lazy dog").ids[:12]
    stream = model.logits([Window(ids, 1)], max_rows=2)
    first = next(stream)  # abandoned after one chunk, as when a consumer raises
    assert first.shape[0] == 2
    assert torch.is_grad_enabled()
    del stream
    assert torch.is_grad_enabled()


def _text_mode(tiny_hf):  # type: ignore[no-untyped-def]
    return HFModel(
        tiny_hf.model, tiny_hf.tokenizer, "hf:tiny", verify=False, special_tokens="text"
    )


def test_literal_special_token_parsed_by_default_or_kept_as_text(tiny_hf):
    literal = "<|endoftext|>"
    special = tiny_hf.tokenizer.convert_tokens_to_ids(literal)
    before, after = "Return the value", " of the key.\n"
    text = before + literal + after
    data = text.encode()
    lo, hi = len(before.encode()), len(before.encode()) + len(literal)

    def plain(s: str) -> list[int]:  # pieces without any special string
        return tiny_hf.tokenizer(s, add_special_tokens=False)["input_ids"]

    head, tail = plain(before), plain(after)
    assert special not in head + tail
    assert tiny_hf.special_tokens == "parse"
    for model in (tiny_hf, _text_mode(tiny_hf)):
        tok = model.tokenize(text)
        ids, offs = tok.ids.tolist(), tok.offsets
        assert ids[: len(head)] == head and ids[len(ids) - len(tail) :] == tail
        mid = slice(len(head), len(ids) - len(tail))
        # the byte spans cover the text in order, the literal's tokens exactly its bytes
        assert offs[0, 0] == 0 and offs[-1, 1] == len(data)
        assert (offs[1:, 0] == offs[:-1, 1]).all()
        assert offs[mid][0, 0] == lo and offs[mid][-1, 1] == hi
        if model.special_tokens == "parse":  # lm-evaluation-harness's tokenisation
            assert ids[mid] == [special]
        else:
            assert len(ids[mid]) > 1 and special not in ids
            assert model.tokenizer.decode(ids[mid]) == literal
            assert data[lo:hi].decode() == literal


def test_special_tokens_through_load_model(tiny_hf_dir):
    m = load_model(f"hf:{tiny_hf_dir}", device="cpu", special_tokens="text")
    assert isinstance(m, HFModel) and m.special_tokens == "text"
    assert m.tokenizer.convert_tokens_to_ids("<|endoftext|>") not in m.tokenize(
        "a<|endoftext|>b"
    ).ids.tolist()
    with pytest.raises(InputError, match="--special-tokens: expected one of parse, text"):
        load_model(f"hf:{tiny_hf_dir}", special_tokens="split")
