"""``--tokens FILE.parquet``: the same records as the JSONL, compact, streamed, guarded.

The reference for every value is the JSONL of the same run (itself checked against the
model in test_score_outputs.py): strings and integers equal, floats equal once rounded to
float32. pandas and polars read the file back; any changed byte or truncation is one
InputError line; without pyarrow the option is one line saying how to install it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from _faults import assert_corruptions_refused
from infolens.cli import main
from infolens.errors import InputError
from infolens.tokens import (
    TOKEN_FIELDS,
    ParquetTokenWriter,
    TokenRecord,
    open_token_writer,
    read_tokens,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TEXTS = {
    "a.txt": "The cat sat on the mat. The cat sat on the hat. The dog sat on the log.\n" * 3,
    "b.txt": "Café naïve — 日本語 🙂. Information is surprise; surprise is -log2 p.\n",
    "empty.txt": "",
}


def run_score(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["score", *args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def f32(x: float) -> float:
    return float(np.float32(x))


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict[str, Any]]:
    d = tmp_path_factory.mktemp("pq")
    paths = []
    for name, text in TEXTS.items():
        (d / name).write_text(text, encoding="utf-8")
        paths.append(str(d / name))
    outs = {}
    for ext in ("jsonl", "parquet"):
        code, stdout, err = run_score(*paths, "--tokens", str(d / f"t.{ext}"), "--json", "-q")
        assert code == 0, err
        outs[ext] = json.loads(stdout)
    assert outs["jsonl"] == outs["parquet"]  # the run is the same
    return d, paths, outs["jsonl"]


def test_parquet_round_trip_equals_the_jsonl(both: tuple[Path, list[str], dict]) -> None:
    d, _, out = both
    want = list(read_tokens(d / "t.jsonl"))
    got = list(read_tokens(d / "t.parquet"))
    assert len(got) == len(want) == out["tokens"]
    for g, w in zip(got, want):
        assert isinstance(g, TokenRecord)
        assert (g.doc, g.position, g.token, g.bytes, g.rank, g.context) == (
            w.doc, w.position, w.token, w.bytes, w.rank, w.context,
        )  # fmt: skip
        assert g.surprisal_bits == f32(w.surprisal_bits)
        assert g.entropy_bits == f32(w.entropy_bits)
        assert [t for t, _ in g.top] == [t for t, _ in w.top]
        assert [p for _, p in g.top] == [f32(p) for _, p in w.top]
    # the documented precision: float32 keeps 2^-24 relative
    s_w = np.array([w.surprisal_bits for w in want])
    s_g = np.array([g.surprisal_bits for g in got])
    assert np.all(np.abs(s_g - s_w) <= 2.0**-24 * np.abs(s_w))
    assert not np.array_equal(s_g, s_w)  # it is rounded (the check above is not vacuous)


def test_parquet_schema_metadata_and_size(both: tuple[Path, list[str], dict]) -> None:
    d, _, _ = both
    pf = pq.ParquetFile(d / "t.parquet")
    assert pf.schema_arrow.names == list(TOKEN_FIELDS)
    types = {f.name: f.type for f in pf.schema_arrow}
    assert types["surprisal_bits"] == pa.float32() and types["position"] == pa.uint32()
    assert pa.types.is_dictionary(types["doc"]) and pa.types.is_dictionary(types["token"])
    assert str(types["top"]) == "list<element: struct<token: string not null, p: float not null>>"
    meta = pf.metadata.metadata
    assert meta[b"infolens.format"] == b"infolens.tokens"
    assert meta[b"infolens.format_version"] == b"1"
    assert len(meta[b"infolens.blake2b"]) == 64
    ratio = (d / "t.jsonl").stat().st_size / (d / "t.parquet").stat().st_size
    assert ratio >= 5, ratio


def test_pandas_and_polars_read_it(both: tuple[Path, list[str], dict]) -> None:
    d, _, _ = both
    want = list(read_tokens(d / "t.jsonl"))
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(d / "t.parquet")
    assert list(df.columns) == list(TOKEN_FIELDS) and len(df) == len(want)
    assert df["doc"].astype(str).tolist() == [w.doc for w in want]
    assert df["token"].astype(str).tolist() == [w.token for w in want]
    assert df["position"].tolist() == [w.position for w in want]
    assert np.array_equal(df["surprisal_bits"].to_numpy(),
                          np.array([w.surprisal_bits for w in want], dtype=np.float32))  # fmt: skip
    assert [list(b) for b in df["bytes"]] == [list(w.bytes or ()) for w in want]
    assert [[t["token"] for t in top] for top in df["top"]] == [
        [t for t, _ in w.top] for w in want
    ]
    pl = pytest.importorskip("polars")
    lf = pl.read_parquet(d / "t.parquet")
    assert lf.columns == list(TOKEN_FIELDS) and lf.height == len(want)
    assert lf["rank"].to_list() == [w.rank for w in want]
    assert lf["context"].to_list() == [w.context for w in want]
    assert lf["entropy_bits"].to_list() == [f32(w.entropy_bits) for w in want]
    assert [[t["p"] for t in top] for top in lf["top"].to_list()] == [
        [f32(p) for _, p in w.top] for w in want
    ]


def _records(n: int, doc: str = "d") -> list[dict[str, Any]]:
    return [
        {"doc": doc, "position": i, "token": f"t{i % 7}", "bytes": None if i % 5 == 4 else [i, i + 1],
         "surprisal_bits": 0.5 + i, "entropy_bits": float("inf") if i == 3 else 1.25,
         "rank": 1 + i % 3, "context": i % 11, "top": [["a", 0.5], ["b", 0.25]][: i % 3]}
        for i in range(n)
    ]  # fmt: skip


def test_row_groups_stream_and_values_survive(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    recs = _records(350)
    with ParquetTokenWriter(out, row_group_rows=100) as w:
        for r in recs:
            w.write(r)
        assert w.count == 350
    assert pq.ParquetFile(out).metadata.num_row_groups == 4  # 100, 100, 100, 50
    back = list(read_tokens(out))
    assert [r.to_dict() for r in back] == [TokenRecord.from_dict(r).to_dict() for r in recs]


def test_writer_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), ParquetTokenWriter(out, row_group_rows=10) as w:
        for r in _records(25):
            w.write(r)
        raise RuntimeError("boom")
    assert out.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["t.parquet"]


def test_written_through_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "t.parquet"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with open_token_writer(fifo) as w:
        w.write_dicts(_records(30))
    reader.join(10)
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(got[0])
    assert [r.position for r in read_tokens(copy)] == list(range(30))


def test_page_checksums_are_written(tmp_path: Path) -> None:
    # pyarrow alone (without infolens' whole-file digest) sees a changed data page: flips
    # in the last bytes of a page (its compressed values; the CRC covers those) that a
    # reader without verification takes silently are all refused with verification.
    out = tmp_path / "t.parquet"
    rng = np.random.default_rng(0)
    recs = _records(200)
    for r in recs:
        r["surprisal_bits"] = float(rng.gamma(2.0, 2.0))
    with ParquetTokenWriter(out) as w:
        w.write_dicts(recs)
    col = pq.ParquetFile(out).metadata.row_group(0).column(4)
    assert col.path_in_schema == "surprisal_bits" and col.dictionary_page_offset is None
    end = col.data_page_offset + col.total_compressed_size
    good = out.read_bytes()
    want = pq.ParquetFile(out).read().column("surprisal_bits").to_pylist()
    bad = tmp_path / "bad.parquet"
    silent = 0
    for i in range(end - 64, end):
        data = bytearray(good)
        data[i] ^= 0x01
        bad.write_bytes(bytes(data))
        try:
            got = pq.ParquetFile(bad).read().column("surprisal_bits").to_pylist()
            silent += got != want
        except OSError:
            pass
        with pytest.raises(OSError, match=r"(?i)crc|checksum"):
            pq.ParquetFile(bad, page_checksum_verification=True).read()
    assert silent > 0  # without the checksums some of these would go unseen


def test_every_corruption_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    with ParquetTokenWriter(good) as w:
        w.write_dicts(_records(6, doc="x") + _records(4, doc="y"))

    def read(p: Path) -> None:
        list(read_tokens(p))

    tried = assert_corruptions_refused(good, read, tmp_path)
    size = good.stat().st_size
    assert tried == {"flips": 3 * size, "truncations": size}


def test_not_an_infolens_file_is_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    with pytest.raises(InputError, match="not a valid infolens tokens Parquet file") as e:
        list(read_tokens(other))
    assert "\n" not in str(e.value)


def test_without_pyarrow_one_line_before_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("abc")
    for mod in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, mod, None)  # import raises ImportError
    # a model that cannot load: the pyarrow check must come first
    code, out, err = run_score(str(tmp_path / "a.txt"), "--model", "ngram:/nonexistent.model",
                               "--tokens", str(tmp_path / "t.parquet"))  # fmt: skip
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()]
    assert "--tokens" in err and "pip install 'infolens[parquet]'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    # JSONL needs no pyarrow
    code, _, err = run_score(str(tmp_path / "a.txt"), "--tokens", str(tmp_path / "t.jsonl"), "-q")
    assert code == 0, err
