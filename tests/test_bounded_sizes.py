"""Document sizes and compressor baselines computed a piece at a time (bounded extra
memory) equal the one-shot definitions: ``len(text.split())`` and the one-shot
``gzip``/``bz2``/``lzma`` compressors."""

from __future__ import annotations

import bz2
import gzip
import lzma

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import infolens.compressors as comp
import infolens.documents as docs

# ASCII and Unicode whitespace (str.split() splits on both), and the \x1c-\x1f separators
ALPHABET = st.sampled_from(list("ab é\n\t\u00a0\u2028\u3000\x1cx"))


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=80), chunk=st.integers(1, 9))
def test_text_sizes_in_pieces_equal_split(text: str, chunk: int) -> None:
    old = docs._CHUNK
    docs._CHUNK = chunk
    try:
        assert docs.text_sizes(text) == (len(text.encode()), len(text), len(text.split()))
        raw = text.encode() + b"\xff\xc3"  # not UTF-8: counted after replacement
        ref = raw.decode("utf-8", errors="replace")
        assert docs.text_sizes(raw) == (len(raw), len(ref), len(ref.split()))
    finally:
        docs._CHUNK = old


DATA = {
    "empty": b"",
    "one byte": b"a",
    "noise": np.random.default_rng(0).bytes(300_000),
    "repetitive": b"hello world " * 50_000,
    "all bytes": bytes(range(256)) * 900,
}


@pytest.mark.parametrize("name", sorted(DATA))
def test_streamed_compressed_sizes_equal_one_shot(name: str, monkeypatch) -> None:
    data = DATA[name]
    monkeypatch.setattr(comp, "CHUNK", 4096)
    one_shot = {
        "gzip_9": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "bz2_9": len(bz2.compress(data, compresslevel=9)),
        "xz_9e": len(lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)),
    }
    assert comp.compressed_sizes(data) == one_shot
