"""Saved base files (infolens.basefile): checksums, validated fields, every corruption
refused with one line, file permissions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _faults import assert_corruptions_refused
from infolens._fileformat import ContainerWriter
from infolens.basefile import MAGIC, BaseFile, BaseFileWriter, record_dtype
from infolens.errors import InputError

GOOD_HEADER: dict[str, Any] = {
    "format": "infolens-base", "version": 2, "k": 4, "block_records": 2, "model": "m",
    "vocab_size": 10, "bos_id": None, "predicts_first": False, "max_length": None,
    "stride": None, "bos": "none", "probe_ids": [1, 2],
}  # fmt: skip
GOOD_FOOTER: dict[str, Any] = {"records": 0, "documents": []}


def _write(path: Path, header: Any, footer: Any, blocks: list[bytes] = ()) -> Path:  # type: ignore[assignment]
    with ContainerWriter(path, MAGIC, header) as w:
        for b in blocks:
            w.write_block(b)
        w.set_footer(footer)
    return path


def _small(path: Path, n: int = 5, k: int = 2, block_records: int = 2) -> Path:
    rng = np.random.default_rng(0)
    header = {"model": "m", "vocab_size": 10, "probe_ids": [1, 2]}
    with BaseFileWriter(path, header, k=k, block_records=block_records) as w:
        w.write(rng.normal(size=(n, 10)), rng.integers(0, 10, size=n))
        w.end_document("d1", tokens=3, crc32=7)
        w.end_document("d2", tokens=n - 3, crc32=8)
    return path


def test_wellformed_minimal_file_reads(tmp_path: Path) -> None:
    f = BaseFile(_write(tmp_path / "ok.ilb", GOOD_HEADER, GOOD_FOOTER))
    assert (f.k, f.n_records, f.documents, f.records().shape) == (4, 0, [], (0,))


def test_round_trip_equals_make_records(tmp_path: Path) -> None:
    from infolens.basefile import make_records

    rng = np.random.default_rng(1)
    logits, targets = rng.normal(size=(7, 10)), rng.integers(0, 10, size=7)
    path = tmp_path / "b.ilb"
    with BaseFileWriter(path, {"model": "m", "vocab_size": 10}, k=3, block_records=3) as w:
        w.write(logits[:4], targets[:4])
        w.write(logits[4:], targets[4:])
        w.end_document("d")
    f = BaseFile(path)
    want = make_records(logits, targets, 3)
    assert f.records().tobytes() == want.tobytes()
    assert f.read(2, 5).tobytes() == want[2:5].tobytes()
    assert [s for _, s in f._c.block_spans] == [3 * 40, 3 * 40, 1 * 40]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"k": "4"}, "k"),
        ({"k": 0}, "k"),
        ({"k": True}, "k"),
        ({"k": 2**31}, "k"),
        ({"vocab_size": -3}, "vocab_size"),
        ({"vocab_size": None}, "vocab_size"),
        ({"block_records": 0}, "block_records"),
        ({"bos_id": 10}, "bos_id"),
        ({"bos": "sometimes"}, "bos"),
        ({"max_length": 0}, "max_length"),
        ({"probe_ids": [1, 99]}, "probe_ids"),
        ({"probe_ids": "1,2"}, "probe_ids"),
        ({"predicts_first": 1}, "predicts_first"),
        ({"model": 3}, "model"),
    ],
)
def test_header_fields_are_type_and_range_checked(tmp_path: Path, change: Any, field: str) -> None:
    with pytest.raises(InputError, match=rf"--base-file .*header field '{field}': expected"):
        BaseFile(_write(tmp_path / "bad.ilb", {**GOOD_HEADER, **change}, GOOD_FOOTER))


def test_missing_header_field_and_wrong_version(tmp_path: Path) -> None:
    h = dict(GOOD_HEADER)
    del h["vocab_size"]
    with pytest.raises(InputError, match=r"header field 'vocab_size'"):
        BaseFile(_write(tmp_path / "a.ilb", h, GOOD_FOOTER))
    with pytest.raises(InputError, match=r"expected format 'infolens-base' version 2"):
        BaseFile(_write(tmp_path / "b.ilb", {**GOOD_HEADER, "version": 3}, GOOD_FOOTER))


@pytest.mark.parametrize(
    "footer",
    [
        {"documents": []},  # no records
        {"records": 0},  # no documents
        {"records": "0", "documents": []},
        {"records": 0, "documents": {}},
        {"records": 1, "documents": [{"name": "a"}]},  # no tokens
        {"records": 1, "documents": [{"tokens": 1}]},  # no name
        {"records": 1, "documents": [["a", 1]]},
        {"records": 1, "documents": [{"name": "a", "tokens": 1, "crc32": -1}]},
        {"records": 2, "documents": [{"name": "a", "tokens": 1}]},  # does not add up
    ],
)
def test_malformed_footer_is_an_input_error(tmp_path: Path, footer: Any) -> None:
    with pytest.raises(InputError, match=r"--base-file .*: footer"):
        BaseFile(_write(tmp_path / "bad.ilb", GOOD_HEADER, footer))


def test_block_sizes_must_match_the_records(tmp_path: Path) -> None:
    item = record_dtype(4).itemsize
    footer = {"records": 3, "documents": [{"name": "a", "tokens": 3}]}
    with pytest.raises(InputError, match=r"expected 2 blocks"):
        BaseFile(_write(tmp_path / "a.ilb", GOOD_HEADER, footer, [b"\0" * 3 * item]))
    with pytest.raises(InputError, match=r"footer block 1 .*expected 48 bytes"):
        BaseFile(_write(tmp_path / "b.ilb", GOOD_HEADER, footer,
                        [b"\0" * 2 * item, b"\0" * 2 * item]))  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [("ids", 10), ("ids", -2), ("target", 10), ("logp", 0.5), ("logp", np.nan),
     ("target_logp", 1.0), ("log_tail", np.nan), ("entropy", -1.0), ("entropy", np.inf)],
)  # fmt: skip
def test_record_values_out_of_range_are_refused(tmp_path: Path, field: str, value: Any) -> None:
    # a file crafted with valid checksums: the values are still range-checked
    rec = np.zeros(1, dtype=record_dtype(4))
    rec["logp"] = -1.0
    rec[field] = value
    footer = {"records": 1, "documents": [{"name": "a", "tokens": 1}]}
    f = BaseFile(_write(tmp_path / "a.ilb", GOOD_HEADER, footer, [rec.tobytes()]))
    with pytest.raises(InputError, match=rf"block 0: record field '{field}': expected"):
        f.records()


def test_version_1_files_get_advice(tmp_path: Path) -> None:
    path = tmp_path / "old.ilb"
    path.write_bytes(b"ILBASE01" + b"\0" * 64)
    with pytest.raises(InputError, match=r"older infolens .*write it again with --save-base"):
        BaseFile(path)


def test_every_flip_and_truncation_is_refused(tmp_path: Path) -> None:
    good = _small(tmp_path / "small.ilb")

    def read(p: Path) -> object:
        f = BaseFile(p)
        return f.header, f.documents, f.records().copy()

    tried = assert_corruptions_refused(good, read, tmp_path)
    size = good.stat().st_size
    assert tried == {"flips": 3 * size, "truncations": size}
    assert len(BaseFile(good)._c.block_spans) == 3  # the body really has several blocks


def test_a_corrupt_block_is_found_when_read_not_before(tmp_path: Path) -> None:
    good = _small(tmp_path / "s.ilb", n=6)
    f = BaseFile(good)
    off, _ = f._c.block_spans[2]
    data = bytearray(good.read_bytes())
    data[off + 3] ^= 0x10
    good.write_bytes(bytes(data))
    f = BaseFile(good)  # opens: only header and footer are read
    assert f.read(0, 4).shape == (4,)  # blocks 0 and 1 are fine
    with pytest.raises(InputError, match=rf"block 2 checksum mismatch \(bytes {off}-"):
        f.read(4, 6)


def test_written_file_has_the_usual_permissions(tmp_path: Path) -> None:
    # written through a temporary file (mode 0600): the result gets 0666 less the umask
    path = _small(tmp_path / "b.ilb")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert BaseFile(path).documents[0] == {"name": "d1", "tokens": 3, "crc32": 7}
