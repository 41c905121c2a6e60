"""Tokenising a long text in pieces gives exactly the ids and spans of tokenising it whole
(infolens.models._chunked), for a byte-level BPE (GPT-2 style) and a SentencePiece-style
(Metaspace) tokenizer, on texts with every kind of whitespace, Unicode and code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_fixtures import stdlib_text
from infolens.models._chunked import tokenize_in_pieces


def _bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)  # fmt: skip
    tok.train_from_iterator([stdlib_text(30_000)], trainer=trainer)
    return tok


def _metaspace():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, show_progress=False, unk_token="<unk>",
                                      special_tokens=["<unk>"])  # fmt: skip
    tok.train_from_iterator([stdlib_text(30_000)], trainer=trainer)
    return tok


TOKENIZERS = {"bpe": _bpe(), "metaspace": _metaspace()}
#: Their special tokens (read whole: a piece must not cut one).
SPECIAL = {"bpe": ["<|endoftext|>"], "metaspace": ["<unk>"]}


def _encoder(tok):
    def encode(s: str) -> tuple[np.ndarray, np.ndarray]:
        enc = tok.encode(s, add_special_tokens=False)
        return (np.asarray(enc.ids, dtype=np.int64),
                np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2))  # fmt: skip

    return encode


TEXT = st.lists(
    st.sampled_from([*"abc xyz\n\n\t  é數€🙂.,;()<|>_=", "<|endoftext|>", "def f(x):\n    "]),
    max_size=200,
).map("".join)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# overlap >= 64: the splice margin (overlap / 4) exceeds the longest special token (13)
@given(text=TEXT, piece=st.integers(8, 80), overlap=st.integers(64, 128))
def test_pieces_equal_whole(name: str, text: str, piece: int, overlap: int) -> None:
    encode = _encoder(TOKENIZERS[name])
    ids, spans = tokenize_in_pieces(encode, text, piece=piece, overlap=overlap, agree=4,
                                    atomic=SPECIAL[name])  # fmt: skip
    whole_ids, whole_spans = encode(text)
    np.testing.assert_array_equal(ids, whole_ids)
    np.testing.assert_array_equal(spans, whole_spans)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_long_real_text_in_small_pieces(name: str) -> None:
    encode = _encoder(TOKENIZERS[name])
    text = stdlib_text(60_000)
    calls: list[int] = []

    def counting(s: str):
        calls.append(len(s))
        return encode(s)

    ids, spans = tokenize_in_pieces(counting, text, piece=2000, overlap=256)
    whole_ids, whole_spans = encode(text)
    np.testing.assert_array_equal(ids, whole_ids)
    np.testing.assert_array_equal(spans, whole_spans)
    assert len(text) > 30_000 and len(calls) >= len(text) // 2256  # really in pieces
    assert max(calls) <= 2000 + 4 * 256


def test_no_agreement_falls_back_to_the_whole_text() -> None:
    # a "tokenizer" whose every id depends on where its input starts: pieces never agree
    def encode(s: str):
        n = len(s)
        return (np.full(n, ord(s[0]) if s else 0, dtype=np.int64),
                np.stack([np.arange(n), np.arange(1, n + 1)], 1).astype(np.int64))  # fmt: skip

    text = "".join(chr(97 + i % 26) for i in range(500))
    ids, spans = tokenize_in_pieces(encode, text, piece=50, overlap=16)
    np.testing.assert_array_equal(ids, encode(text)[0])
    np.testing.assert_array_equal(spans, encode(text)[1])


def test_hf_adapter_tokenizes_long_text_in_pieces_as_whole(tiny_hf, monkeypatch) -> None:
    from infolens.models.hf import char_to_byte_spans, utf8_byte_offsets

    text = (stdlib_text(20_000) + " naïve café 數學 🙂 <|endoftext|> ") * 3
    whole = tiny_hf.tokenize(text)
    monkeypatch.setattr(tiny_hf, "tokenize_piece", 500)
    calls: list[int] = []
    real = tiny_hf.tokenizer.__class__.__call__

    def counting(self, s, *a, **k):
        calls.append(len(s))
        return real(self, s, *a, **k)

    monkeypatch.setattr(tiny_hf.tokenizer.__class__, "__call__", counting)
    pieces = tiny_hf.tokenize(text)
    np.testing.assert_array_equal(pieces.ids, whole.ids)
    np.testing.assert_array_equal(pieces.offsets, whole.offsets)
    assert len(calls) > 50 and max(calls) < 20_000
    # byte spans from characters, a piece at a time, equal the whole table's
    chars = np.array([[0, 3], [3, 40], [40, 41], [41, len(text)]])
    np.testing.assert_array_equal(char_to_byte_spans(text, chars, piece=7),
                                  utf8_byte_offsets(text)[chars])  # fmt: skip


def _split(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, cuts=st.lists(st.integers(0, 2000), max_size=12),
       piece=st.integers(8, 80), overlap=st.integers(64, 128))  # fmt: skip
def test_stream_of_any_pieces_equals_whole(name: str, text: str, cuts: list[int], piece: int,
                                           overlap: int) -> None:  # fmt: skip
    from infolens.models._chunked import tokenize_stream
    from infolens.models.hf import char_to_byte_spans

    encode = _encoder(TOKENIZERS[name])
    runs = list(tokenize_stream(encode, _split(text, cuts), piece=piece, overlap=overlap,
                                agree=4, byte_spans=True, atomic=SPECIAL[name]))  # fmt: skip
    ids = np.concatenate([r[0] for r in runs]) if runs else np.zeros(0, np.int64)
    spans = np.concatenate([r[1] for r in runs]) if runs else np.zeros((0, 2), np.int64)
    whole_ids, whole_chars = encode(text)
    np.testing.assert_array_equal(ids, whole_ids)
    np.testing.assert_array_equal(spans.reshape(-1, 2), char_to_byte_spans(text, whole_chars))


def test_stream_holds_a_bounded_text() -> None:
    # a 400,000-character text in 1,000-character pieces: no encode call sees more than
    # about piece + 2 * overlap characters, and runs are given out before the end is read
    from infolens.models._chunked import tokenize_stream

    encode = _encoder(TOKENIZERS["bpe"])
    text = stdlib_text(60_000)
    text = (text * (400_000 // len(text) + 1))[:400_000]
    read = [0]
    seen: list[int] = []

    def pieces():
        for lo in range(0, len(text), 1000):
            read[0] = lo + 1000
            yield text[lo : lo + 1000]

    def counting(s: str):
        seen.append(len(s))
        return encode(s)

    first_run_read = None
    ids = []
    for run_ids, _ in tokenize_stream(counting, pieces(), piece=4000, overlap=256):
        first_run_read = first_run_read or read[0]
        ids.append(run_ids)
    np.testing.assert_array_equal(np.concatenate(ids), encode(text)[0])
    assert max(seen) <= 4000 + 2 * 256
    assert first_run_read is not None and first_run_read < 20_000


def test_hf_tokenize_stream_equals_tokenize(tiny_hf, monkeypatch) -> None:
    text = (stdlib_text(5_000) + " naïve café 數學 🙂 <|endoftext|> ") * 3
    whole = tiny_hf.tokenize(text)
    monkeypatch.setattr(tiny_hf, "tokenize_piece", 300)
    runs = list(tiny_hf.tokenize_stream(_split(text, list(range(0, len(text), 777)))))
    assert len(runs) > 10
    np.testing.assert_array_equal(np.concatenate([r.ids for r in runs]), whole.ids)
    np.testing.assert_array_equal(np.concatenate([r.offsets for r in runs]), whole.offsets)
