"""Per-token records of a scoring pass: the record, streaming JSONL and Parquet writers, a
reader for both.

One record per scored token says how surprised the model was by it and what it expected
instead. ``infolens score --tokens FILE.jsonl`` writes one JSON object per line::

    {"doc": "a.txt", "position": 3, "token": " cat", "bytes": [9, 13],
     "surprisal_bits": 7.81, "entropy_bits": 5.02, "rank": 12, "context": 3,
     "top": [[" dog", 0.21], [" man", 0.07], ...]}

* ``doc``: the document's name; ``position``: the token's index in the document (0-based);
* ``token``: the token's text; ``bytes``: its span ``[start, end)`` in the UTF-8 encoded
  document (``null`` where unknown);
* ``surprisal_bits``: ``-log2 p(token)``; ``entropy_bits``: the entropy of the model's
  predicted distribution at that position, in bits;
* ``rank``: 1 if the token was the model's top choice (1 + the number of tokens with a
  strictly higher probability);
* ``context``: how many tokens of context the prediction had in its window;
* ``top``: the most likely alternatives, ``[text, probability]``, most likely first.

Non-finite floats are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (strict
JSON, as everywhere in infolens) and read back as floats.

``--tokens FILE.parquet`` (:class:`ParquetTokenWriter`, chosen by the extension in
:func:`open_token_writer`) writes the same fields as columns; see
:mod:`infolens._tokens_parquet` for its schema, precision and checksums. The top-k and rank
computations live in :mod:`infolens._token_rows` and are re-exported here.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from infolens import _tokens_parquet as _pq
from infolens._atomic import atomic_output
from infolens._token_rows import (
    _row_columns,
    records_from_rows,
    row_texts,
    token_decoder,
    token_ranks,
    top_alternatives,
    top_ids_probs,
)

__all__ = [
    "TOKEN_FIELDS",
    "ParquetTokenWriter",
    "TokenRecord",
    "TokenWriter",
    "is_parquet",
    "open_token_writer",
    "read_tokens",
    "records_from_rows",
    "row_texts",
    "token_decoder",
    "token_ranks",
    "top_alternatives",
    "top_ids_probs",
]


@dataclass(slots=True)
class TokenRecord:
    """How surprised a model was by one token, and what it expected instead.

    Attributes
    ----------
    doc : str
        Name of the document.
    position : int
        Index of the token in the document, 0-based.
    token : str
        The token's text.
    bytes : tuple of int or None
        ``(start, end)`` byte span of the token in the UTF-8 encoded document.
    surprisal_bits : float
        ``-log2 p(token | context)``.
    entropy_bits : float
        Entropy of the predicted distribution at this position, in bits.
    rank : int
        1 if the token was the model's most likely prediction.
    context : int
        Number of context tokens the prediction had within its window.
    top : list of (str, float)
        The most likely alternatives and their probabilities, most likely first.

    Examples
    --------
    >>> r = TokenRecord("d", 0, "Hi", (0, 2), 3.5, 2.0, 4, 0, [(" there", 0.2)])
    >>> r.to_dict()["bytes"], r.to_dict()["top"], TokenRecord.from_dict(r.to_dict()) == r
    ([0, 2], [[' there', 0.2]], True)
    """

    doc: str
    position: int
    token: str
    bytes: tuple[int, int] | None
    surprisal_bits: float
    entropy_bits: float
    rank: int
    context: int = 0
    top: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict (the JSONL line's object).

        Returns
        -------
        dict
            Keys in :data:`TOKEN_FIELDS` order; ``bytes`` and ``top`` entries as lists.
        """
        d = asdict(self)
        d["bytes"] = None if self.bytes is None else [int(self.bytes[0]), int(self.bytes[1])]
        d["top"] = [[str(t), float(p)] for t, p in self.top]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TokenRecord:
        """Build a record from a dict as written by :class:`TokenWriter`.

        Parameters
        ----------
        d : mapping
            A JSONL line's object; ``"inf"``/``"nan"`` strings become floats.

        Returns
        -------
        TokenRecord
        """
        span = d.get("bytes")
        return cls(
            doc=str(d["doc"]),
            position=int(d["position"]),
            token=str(d["token"]),
            bytes=None if span is None else (int(span[0]), int(span[1])),
            surprisal_bits=float(d["surprisal_bits"]),  # "inf"/"nan" parse too
            entropy_bits=float(d["entropy_bits"]),
            rank=int(d["rank"]),
            context=int(d.get("context", 0)),
            top=[(str(t), float(p)) for t, p in d.get("top", ())],
        )


#: The fields of a token record, in the order they are written.
TOKEN_FIELDS: tuple[str, ...] = (
    "doc",
    "position",
    "token",
    "bytes",
    "surprisal_bits",
    "entropy_bits",
    "rank",
    "context",
    "top",
)


def _json_float(x: Any) -> float | str:
    f = float(x)
    if math.isfinite(f):
        return f
    return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")


def as_record(record: TokenRecord | Mapping[str, Any]) -> TokenRecord:
    """``record`` itself if a :class:`TokenRecord`, else :meth:`TokenRecord.from_dict` of it.

    Parameters
    ----------
    record : TokenRecord or mapping
        A record.

    Returns
    -------
    TokenRecord

    Examples
    --------
    >>> as_record({"doc": "d", "position": 0, "token": "a", "bytes": [0, 1],
    ...            "surprisal_bits": "inf", "entropy_bits": 1, "rank": 3}).surprisal_bits
    inf
    """
    return record if isinstance(record, TokenRecord) else TokenRecord.from_dict(record)


class TokenWriter:
    """Write token records as JSONL, atomically: the file appears only on success.

    Lines go to a temporary file next to ``path``; on a clean exit it is renamed to
    ``path``, on an exception it is deleted (an existing ``path`` is left untouched).

    Parameters
    ----------
    path : str or Path
        Where the JSONL file goes. ``"-"`` is not supported (records can be large).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "tokens.jsonl"
    >>> with TokenWriter(out) as w:
    ...     w.write({"doc": "d", "position": 0, "token": "a", "bytes": [0, 1],
    ...              "surprisal_bits": 1.5, "entropy_bits": 2.0, "rank": 2, "context": 0,
    ...              "top": [["b", 0.5], ["a", 0.35]]})
    >>> [r.surprisal_bits for r in read_tokens(out)]
    [1.5]
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.count = 0
        self._file: Any = None
        self._out: Any = None

    def __enter__(self) -> TokenWriter:
        self._out = atomic_output(
            self.path, "w", option="--tokens", encoding="utf-8", newline="\n"
        )
        self._file = self._out.__enter__()
        return self

    def write(self, record: TokenRecord | Mapping[str, Any]) -> None:
        """Append one record as a JSON line.

        Parameters
        ----------
        record : TokenRecord or mapping
            The record; see :class:`TokenRecord` for the fields.
        """
        if self._file is None:
            raise RuntimeError("TokenWriter.write outside its 'with' block")
        d = as_record(record).to_dict()
        d["surprisal_bits"] = _json_float(d["surprisal_bits"])
        d["entropy_bits"] = _json_float(d["entropy_bits"])
        d["top"] = [[t, _json_float(p)] for t, p in d["top"]]
        self._file.write(json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
        self._file.write("\n")
        self.count += 1

    def write_dicts(self, records: Iterator[dict[str, Any]] | Sequence[dict[str, Any]]) -> None:
        """Append records that are already plain dicts in :data:`TOKEN_FIELDS` order.

        The fast path for :func:`records_from_rows` output: no normalisation, except that a
        record with a non-finite float goes through :meth:`write`.

        Parameters
        ----------
        records : iterable of dict
            Records with JSON-able values (lists or tuples for ``bytes`` and ``top``).

        Examples
        --------
        >>> import pathlib, tempfile
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
        >>> rec = {"doc": "d", "position": 0, "token": "a", "bytes": [0, 1],
        ...        "surprisal_bits": float("inf"), "entropy_bits": 1.0, "rank": 3,
        ...        "context": 0, "top": [("b", 0.5)]}
        >>> with TokenWriter(out) as w:
        ...     w.write_dicts([rec])
        >>> out.read_text().count('"surprisal_bits":"inf"'), w.count
        (1, 1)
        """
        if self._file is None:
            raise RuntimeError("TokenWriter.write_dicts outside its 'with' block")
        dumps = json.dumps
        for d in records:
            try:
                line = dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            except ValueError:
                self.write(d)
                continue
            self._file.write(line + "\n")
            self.count += 1

    def write_rows(
        self, batch: Any, data: bytes | None, decode: Callable[[int], str] = str, *, k: int = 5
    ) -> None:
        """Append the records of a :class:`infolens.score.RowBatch` (see
        :func:`records_from_rows` for ``data``, ``decode`` and ``k``)."""
        self.write_dicts(records_from_rows(batch, data, decode, k=k))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        out = self._out
        self._file = self._out = None
        if out is not None:
            out.__exit__(exc_type, exc, tb)


class ParquetTokenWriter:
    """Write token records as a Parquet file, atomically and streaming.

    The same fields as the JSONL of :class:`TokenWriter`, in compact column types
    (float32 bits and probabilities, uint32 integers, dictionary-encoded strings, zstd),
    one row group per 65,536 records written as they come; page checksums and a BLAKE2b
    digest of the whole file guard it. See :mod:`infolens._tokens_parquet` for the schema
    and ``docs/report.md`` for the precision. Needs pyarrow (``pip install
    'infolens[parquet]'``).

    Parameters
    ----------
    path : str or Path
        The ``.parquet`` file; it appears only when complete.
    row_group_rows : int
        Records per row group (and about the most held in memory).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "tokens.parquet"
    >>> with ParquetTokenWriter(out) as w:
    ...     w.write({"doc": "d", "position": 0, "token": "a", "bytes": [0, 1],
    ...              "surprisal_bits": 1.5, "entropy_bits": 2.0, "rank": 2, "context": 0,
    ...              "top": [["b", 0.5], ["a", 0.25]]})
    >>> [(r.token, r.surprisal_bits, r.top) for r in read_tokens(out)]
    [('a', 1.5, [('b', 0.5), ('a', 0.25)])]
    """

    def __init__(
        self, path: str | os.PathLike[str], *, row_group_rows: int = _pq.ROW_GROUP_ROWS
    ) -> None:
        self.path = Path(path)
        self.row_group_rows = row_group_rows
        self._sink: _pq.ParquetSink | None = None
        self._pending: list[TokenRecord] = []

    @property
    def count(self) -> int:
        """Records written so far."""
        return (0 if self._sink is None else self._sink.count) + len(self._pending)

    def __enter__(self) -> ParquetTokenWriter:
        self._sink = _pq.ParquetSink(self.path, self.row_group_rows).__enter__()
        return self

    def _sink_open(self, what: str) -> _pq.ParquetSink:
        if self._sink is None:
            raise RuntimeError(f"ParquetTokenWriter.{what} outside its 'with' block")
        return self._sink

    def _flush(self) -> None:
        if self._pending:
            recs, self._pending = self._pending, []
            self._sink_open("write").append(**_record_columns(recs))

    def write(self, record: TokenRecord | Mapping[str, Any]) -> None:
        """Append one record (see :class:`TokenRecord` for the fields)."""
        self._sink_open("write")
        self._pending.append(as_record(record))
        if len(self._pending) >= min(4096, self.row_group_rows):
            self._flush()

    def write_dicts(self, records: Iterator[dict[str, Any]] | Sequence[dict[str, Any]]) -> None:
        """Append records given as dicts (as :meth:`TokenWriter.write_dicts`)."""
        for d in records:
            self.write(d)

    def write_rows(
        self, batch: Any, data: bytes | None, decode: Callable[[int], str] = str, *, k: int = 5
    ) -> None:
        """Append the records of a :class:`infolens.score.RowBatch`, column by column: the
        values of :func:`records_from_rows`, without building a dict per token."""
        sink = self._sink_open("write_rows")
        self._flush()
        if int(batch.positions.shape[0]):
            sink.append(**_row_columns(batch, data, decode, k))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            if exc_type is None:
                self._flush()
        except BaseException as err:
            self._sink = None
            sink.__exit__(type(err), err, err.__traceback__)
            raise
        self._sink = None
        sink.__exit__(exc_type, exc, tb)


def is_parquet(path: str | os.PathLike[str]) -> bool:
    """Whether a tokens path names a Parquet file (by its extension, ``.parquet``).

    Examples
    --------
    >>> is_parquet("out.parquet"), is_parquet("OUT.PARQUET"), is_parquet("t.jsonl")
    (True, True, False)
    """
    return os.fspath(path).lower().endswith(".parquet")


def open_token_writer(path: str | os.PathLike[str]) -> TokenWriter | ParquetTokenWriter:
    """The writer for ``path``: :class:`ParquetTokenWriter` for ``.parquet``, else JSONL
    (:class:`TokenWriter`).

    Raises
    ------
    InputError
        ``.parquet`` without pyarrow installed (the line says how to install it).
    """
    if is_parquet(path):
        _pq.require_pyarrow("--tokens")
        return ParquetTokenWriter(path)
    return TokenWriter(path)


def read_tokens(path: str | os.PathLike[str]) -> Iterator[TokenRecord]:
    r"""Stream the records of a tokens file: JSONL, or Parquet (by the ``.parquet`` extension).

    A Parquet file is checked whole before its first record (format name and version, the
    BLAKE2b digest of the file, the schema) and read with page checksums verified; any
    damage is one :class:`~infolens.errors.InputError` line.

    Parameters
    ----------
    path : str or Path
        A file written by :class:`TokenWriter` (blank lines are skipped) or
        :class:`ParquetTokenWriter`.

    Yields
    ------
    TokenRecord

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.jsonl"
    >>> _ = path.write_text('{"doc": "d", "position": 0, "token": "a", "bytes": null, '
    ...                     '"surprisal_bits": "inf", "entropy_bits": 1.0, "rank": 9}\n\n')
    >>> [(r.token, r.bytes, r.surprisal_bits) for r in read_tokens(path)]
    [('a', None, inf)]
    """
    if is_parquet(path):
        yield from _read_parquet(path)
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield TokenRecord.from_dict(json.loads(line))


def _read_parquet(path: str | os.PathLike[str]) -> Iterator[TokenRecord]:
    for batch in _pq.read_batches(path):
        c = batch.to_pydict()
        for doc, pos, tok, span, s, h, rank, ctx, top in zip(
            c["doc"], c["position"], c["token"], c["bytes"], c["surprisal_bits"],
            c["entropy_bits"], c["rank"], c["context"], c["top"],
        ):  # fmt: skip
            yield TokenRecord(
                doc, pos, tok, None if span is None else (span[0], span[1]), s, h, rank, ctx,
                [(t["token"], t["p"]) for t in top],
            )  # fmt: skip


def _record_columns(records: Sequence[TokenRecord]) -> dict[str, Any]:
    """The columns of :class:`infolens._tokens_parquet.ParquetSink` for records."""
    spans = [r.bytes for r in records]
    return {
        "doc": [r.doc for r in records],
        "position": np.array([r.position for r in records], dtype=np.int64),
        "token": [r.token for r in records],
        "lo": np.array([-1 if sp is None else sp[0] for sp in spans], dtype=np.int64),
        "hi": np.array([-1 if sp is None else sp[1] for sp in spans], dtype=np.int64),
        "surprisal_bits": np.array([r.surprisal_bits for r in records], dtype=np.float64),
        "entropy_bits": np.array([r.entropy_bits for r in records], dtype=np.float64),
        "rank": np.array([r.rank for r in records], dtype=np.int64),
        "context": np.array([r.context for r in records], dtype=np.int64),
        "top_tokens": [t for r in records for t, _ in r.top],
        "top_p": np.array([p for r in records for _, p in r.top], dtype=np.float64),
        "top_k": np.array([len(r.top) for r in records], dtype=np.int64),
    }
