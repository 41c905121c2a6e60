"""Saved base files (infolens.basefile): malformed headers and footers, file permissions."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from infolens.basefile import MAGIC, MAGIC_END, BaseFile, BaseFileWriter
from infolens.errors import InputError


def _write(path: Path, header: Any, footer: Any) -> Path:
    head = json.dumps(header).encode()
    foot = json.dumps(footer).encode()
    path.write_bytes(
        MAGIC + struct.pack("<Q", len(head)) + head + foot + struct.pack("<Q", len(foot))
        + MAGIC_END
    )  # fmt: skip
    return path


GOOD_HEADER = {"format": "infolens-base", "version": 1, "k": 4}
GOOD_FOOTER = {"records": 0, "documents": []}


def test_wellformed_minimal_file_reads(tmp_path: Path) -> None:
    f = BaseFile(_write(tmp_path / "ok.ilb", GOOD_HEADER, GOOD_FOOTER))
    assert (f.k, f.n_records, f.documents, f.records().shape) == (4, 0, [], (0,))


@pytest.mark.parametrize(
    "header",
    [
        [1, 2],
        "text",
        {"format": "infolens-base", "version": 1},  # no k
        {**GOOD_HEADER, "k": "4"},
        {**GOOD_HEADER, "k": 0},
        {**GOOD_HEADER, "k": None},
        {**GOOD_HEADER, "k": True},
    ],
)
def test_malformed_header_is_an_input_error(tmp_path: Path, header: Any) -> None:
    with pytest.raises(InputError, match=r"--base-file: .*(corrupt|expected format)"):
        BaseFile(_write(tmp_path / "bad.ilb", header, GOOD_FOOTER))


@pytest.mark.parametrize(
    "footer",
    [
        [],
        {"documents": []},  # no records
        {"records": 0},  # no documents
        {"records": "0", "documents": []},
        {"records": 0, "documents": {}},
        {"records": 1, "documents": [{"name": "a"}]},  # no tokens
        {"records": 1, "documents": [{"tokens": 1}]},  # no name
        {"records": 1, "documents": [["a", 1]]},
    ],
)
def test_malformed_footer_is_an_input_error(tmp_path: Path, footer: Any) -> None:
    with pytest.raises(InputError, match=r"--base-file: .* is corrupt \("):
        BaseFile(_write(tmp_path / "bad.ilb", GOOD_HEADER, footer))


def test_written_file_has_the_usual_permissions(tmp_path: Path) -> None:
    # written through a temporary file (mode 0600): the result gets 0666 less the umask
    path = tmp_path / "b.ilb"
    with BaseFileWriter(path, {"model": "x"}, k=2) as w:
        w.write(np.zeros((3, 5)), np.array([0, 1, 2]))
        w.end_document("d")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert BaseFile(path).documents == [{"name": "d", "tokens": 3}]
