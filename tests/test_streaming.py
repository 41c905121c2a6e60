"""A document read from a large file is streamed (issue 10): read a piece at a time,
tokenised a run at a time, windows planned as tokens come. The numbers, the per-token rows
and the compressor sizes equal those of the same document held in memory; bad input is
refused with the same one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_fixtures import stdlib_text
from infolens.compare import compare_documents
from infolens.documents import Document, read_documents
from infolens.errors import InputError
from infolens.models import load_model
from infolens.score import score_documents

TEXT = stdlib_text(20_000) + " naïve café 數學 🙂\n" * 40


def _rows(model: Any, docs: Any, **kw: Any) -> tuple[dict, np.ndarray]:
    rows: list[np.ndarray] = []

    def on_rows(r: Any) -> None:
        rows.append(np.column_stack([np.full(len(r.positions), r.document), r.positions,
                                     r.offsets, r.token_ids, r.surprisal_nats]))  # fmt: skip

    out = score_documents(model, docs, on_rows=on_rows, **kw).to_dict()
    return out, np.concatenate(rows) if rows else np.zeros((0, 6))


def _files(tmp_path: Path, binary: bool) -> list[str]:
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "b.txt").write_text(TEXT[:3000], encoding="utf-8")
    names = ["a.txt", "empty.txt", "b.txt"]
    if binary:
        data = TEXT.encode()
        (tmp_path / "c.bin").write_bytes(data[:4001] + b"\xff\xfe\x00" + data[4001:9000])
        names.append("c.bin")
    return [str(tmp_path / n) for n in names]


@pytest.mark.parametrize("settings", [{}, {"max_length": 64, "stride": 16},
                                      {"max_length": 33, "stride": 33, "bos": "none"}])  # fmt: skip
def test_ngram_lazy_files_equal_in_memory(tmp_path: Path, settings: dict) -> None:
    model = load_model("ngram")
    paths = _files(tmp_path, binary=True)
    eager = list(read_documents(paths, allow_bytes=True))
    lazy = list(read_documents(paths, allow_bytes=True, stream_bytes=100))
    assert not any(d.lazy for d in eager) and [d.lazy for d in lazy] == [True, False, True, True]
    a, ra = _rows(model, eager, **settings)
    b, rb = _rows(model, lazy, **settings)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    np.testing.assert_array_equal(ra, rb)
    assert a["compressors"] is not None and a["binary_documents"] == 1
    # the byte-level offsets are the bytes themselves
    assert (ra[:, 3] - ra[:, 2] == 1).all()


def test_hf_lazy_file_equals_in_memory_with_small_pieces(tmp_path: Path, tiny_hf: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    paths = _files(tmp_path, binary=False)
    a, ra = _rows(tiny_hf, read_documents(paths), compressors=True)
    monkeypatch.setattr(tiny_hf, "tokenize_piece", 256)  # many splices per document
    monkeypatch.setattr("infolens.documents._CHUNK", 1000)  # many read pieces
    b, rb = _rows(tiny_hf, read_documents(paths, stream_bytes=100), compressors=True)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    np.testing.assert_array_equal(ra, rb)
    # spans are UTF-8 byte spans of the file
    data = Path(paths[0]).read_bytes()
    doc0 = rb[rb[:, 0] == 0]
    ids = tiny_hf.tokenize(TEXT).ids
    assert len(ids) == a["documents"][0]["tokens"]
    lo, hi = int(doc0[-1, 2]), int(doc0[-1, 3])
    assert data[lo:hi].decode() == tiny_hf.tokenizer.decode([int(doc0[-1, 4])])


def test_hf_refuses_invalid_utf8_of_a_lazy_file_naming_the_offset(tmp_path: Path, tiny_hf: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    p = tmp_path / "bad.txt"
    good = ("abc " * 1000).encode()
    p.write_bytes(good + b"\xc3(" + good)
    monkeypatch.setattr("infolens.documents._CHUNK", 1001)  # the bad byte inside a piece
    with pytest.raises(InputError, match=rf"bad.txt: invalid UTF-8 at byte offset {len(good)} "):
        score_documents(tiny_hf, read_documents([str(p)], stream_bytes=10))
    # the eager reader names the same offset
    with pytest.raises(InputError, match=rf"invalid UTF-8 at byte offset {len(good)} "):
        list(read_documents([str(p)]))


def test_a_file_that_changes_while_scored_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text(TEXT)
    model = load_model("ngram")

    def change(rows: Any) -> None:
        p.write_text(TEXT.upper())

    with pytest.raises(InputError, match=r"a.txt: the file changed while it was being scored"):
        score_documents(model, read_documents([str(p)], stream_bytes=10), compressors=True,
                        on_rows=change)  # fmt: skip


def test_lazy_document_reads_like_the_eager_one(tmp_path: Path) -> None:
    paths = _files(tmp_path, binary=True)
    for eager, lazy in zip(read_documents(paths, allow_bytes=True),
                           read_documents(paths, allow_bytes=True, stream_bytes=100)):  # fmt: skip
        assert lazy.text == eager.text and lazy.name == eager.name
        assert lazy.size_hint == Path(lazy.name).stat().st_size
    with pytest.raises(InputError, match=r"a.txt: [0-9,]+ bytes, larger than the maximum of 1,000"):
        list(read_documents(paths[:1], max_bytes=1000, stream_bytes=100))


def test_compare_on_lazy_files_equals_in_memory(tmp_path: Path) -> None:
    paths = _files(tmp_path, binary=False)
    model, base = load_model("ngram"), load_model("ngram:order=2")
    a = compare_documents(model, base, read_documents(paths), max_length=128, stride=64)
    b = compare_documents(model, base, read_documents(paths, stream_bytes=100), max_length=128,
                          stride=64)  # fmt: skip
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


def test_in_memory_document_pieces_and_equality() -> None:
    d = Document("d", "abcdef")
    assert list(d.pieces(4)) == ["abcd", "ef"] and not d.lazy
    assert d == Document("d", "abcdef") and d != Document("d", "abc")
    assert hash(d) == hash(Document("d", "abcdef"))
