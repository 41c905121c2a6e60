r"""Saved base-model distributions for ``infolens compare --save-base`` / ``--base-file``.

When the base model and the compared model do not fit in memory together, the base model
is run once and, per scored token, its top-``k`` log-probabilities are saved with the
remaining tail mass. The compared model is then scored against the file.

File layout: the checksummed container of :mod:`infolens._fileformat` (magic
``b"ILBASE02"``, a JSON header with ``k``, ``block_records``, the model, its vocabulary
and the settings; a JSON footer with the record count and the documents). The body is
``n`` records of ``8k + 16`` bytes (little-endian numpy structured dtype), in blocks of
``block_records`` records (about 1 MiB), each with its own BLAKE2b checksum::

    ids          int32[k]    the base model's top-k token ids, most likely first
    logp         float32[k]  their log-probabilities (nats)
    target       int32       the observed token
    target_logp  float32     its log-probability under the base model (exact)
    log_tail     float32     log of the probability mass outside the top k
    entropy      float32     entropy of the base distribution (nats, exact)

Size: ``8k + 16`` bytes per token (``k = 32``: 272 bytes; llama.cpp stores 2 bytes times
the vocabulary, 300 kB per token for a 150k vocabulary).

KL against a saved base is computed on the coarse partition {top-k tokens, rest}: by the
data-processing inequality it is a **lower bound** on the true KL, reached when
``k = V`` — up to the float32 rounding of the stored log-probabilities (relative 1e-8 or
so, in either direction)::

    D_k(b || m) = sum_{i in top-k} b_i log(b_i / m_i) + b_rest log(b_rest / m_rest)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infolens import _backend as B
from infolens._fileformat import Container, ContainerWriter, is_count
from infolens._kernels import fused_rows
from infolens.errors import InputError
from infolens.topk import overlap as _overlap
from infolens.topk import topk_ids as _topk_ids

MAGIC = b"ILBASE02"
FORMAT = "infolens-base"
VERSION = 2
#: Most entries per token a base file keeps (``--top-k``).
MAX_K = 4096
#: Bytes of records per checksummed block.
BLOCK_BYTES = 1 << 20
#: Header fields a writer may leave out (``model`` and ``vocab_size`` it must give).
HEADER_DEFAULTS: dict[str, Any] = {
    "bos_id": None, "predicts_first": False, "max_length": None, "stride": None,
    "bos": "none", "probe_ids": [],
}  # fmt: skip


def record_dtype(k: int) -> np.dtype:
    """The per-token record of a base file with top-``k`` entries (``8k + 16`` bytes).

    Parameters
    ----------
    k : int
        Entries of the base distribution kept per token.

    Returns
    -------
    numpy.dtype
        Little-endian structured dtype: ``ids``, ``logp`` (nats), ``target``,
        ``target_logp``, ``log_tail``, ``entropy`` (nats); see the module docstring.

    Examples
    --------
    >>> record_dtype(32).itemsize, record_dtype(32).names[:2]
    (272, ('ids', 'logp'))
    """
    return np.dtype(
        [
            ("ids", "<i4", (k,)),
            ("logp", "<f4", (k,)),
            ("target", "<i4"),
            ("target_logp", "<f4"),
            ("log_tail", "<f4"),
            ("entropy", "<f4"),
        ]
    )


def _f64(x: Any) -> np.ndarray:
    """Logits as a float64 numpy array (from numpy or torch, any device)."""
    if B.is_torch(x):
        import torch

        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _log_mass_outside(lp: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per row, the log of the probability mass of ``lp``'s entries not in ``ids``.

    Summed over the complement itself (log-sum-exp), not as ``1 - sum(top)``, so a small
    tail keeps its precision. ``-inf`` when ``ids`` covers the whole row.
    """
    rest = lp.copy()
    np.put_along_axis(rest, ids, -np.inf, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mr = rest.max(axis=1, keepdims=True)
        mr = np.where(np.isfinite(mr), mr, 0.0)
        return (np.log(np.exp(rest - mr).sum(axis=1, keepdims=True)) + mr)[:, 0]


def make_records(logits: Any, targets: Any, k: int) -> np.ndarray:
    """Base-file records for a chunk of base-model logits ``[n, V]`` and targets ``[n]``.

    Parameters
    ----------
    logits : array or tensor, shape [n, V]
        The base model's logits (or log-probabilities), numpy or torch.
    targets : int array or tensor, shape [n]
        The observed tokens.
    k : int
        Entries kept per token (a vocabulary smaller than ``k`` is padded with id ``-1``).

    Returns
    -------
    numpy.ndarray
        ``n`` records of :func:`record_dtype` ``(k)``; log-probabilities and entropy in
        nats, the top entries most likely first (ties: lowest id).

    Examples
    --------
    >>> rec = make_records(np.log([[0.7, 0.2, 0.1]]), np.array([1]), k=2)
    >>> rec["ids"].tolist(), np.exp(rec["log_tail"]).round(6).tolist()
    ([[0, 1]], [0.1])
    """
    x = _f64(logits)
    t = np.asarray(targets.cpu() if B.is_torch(targets) else targets).astype(np.int64)
    st = fused_rows(x, targets=t, names=("base logits", ""))
    lp = x - st.lse_p[:, None]
    n, v = lp.shape
    k_eff = min(k, v)
    top = (
        np.argpartition(lp, -k_eff, axis=1)[:, -k_eff:]
        if k_eff < v
        else np.tile(np.arange(v), (n, 1))
    )
    top_lp = np.take_along_axis(lp, top, axis=1)
    order = np.lexsort((top, -top_lp), axis=1)  # most likely first, ties: lowest id (argmax)
    top = np.take_along_axis(top, order, axis=1)
    top_lp = np.take_along_axis(top_lp, order, axis=1)
    rec = np.zeros(n, dtype=record_dtype(k))
    rec["ids"][:, :k_eff] = top
    rec["logp"][:, :k_eff] = top_lp
    if k_eff < k:  # vocabulary smaller than k: pad with impossible entries
        rec["ids"][:, k_eff:] = -1
        rec["logp"][:, k_eff:] = -np.inf
    rec["target"] = t
    assert st.surprisal_p is not None
    # clamped to their ranges (rounding can leave a log-mass at +1e-17), which readers check
    rec["target_logp"] = np.minimum(-st.surprisal_p, 0.0)
    rec["log_tail"] = np.minimum(_log_mass_outside(lp, top), 0.0)
    rec["entropy"] = np.maximum(st.entropy_p, 0.0)
    return rec


class BaseFileWriter:
    """Write a base file atomically: to a temporary file renamed into place on success.

    Records are buffered into blocks of ``block_records`` (about 1 MiB), each with its
    own checksum (:mod:`infolens._fileformat`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "base.ilb")
    >>> with BaseFileWriter(path, {"model": "demo", "vocab_size": 8}, k=4) as w:
    ...     w.write(np.zeros((3, 8)), np.array([0, 1, 2]))
    ...     w.end_document("doc1")
    >>> f = BaseFile(path)
    >>> f.n_records, f.k, f.documents
    (3, 4, [{'name': 'doc1', 'tokens': 3}])
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: dict[str, Any],
        k: int = 32,
        *,
        block_records: int | None = None,
    ) -> None:
        if not 1 <= k <= MAX_K:
            raise InputError(f"--top-k: expected 1..{MAX_K}, got {k}")
        self.path = Path(path)
        self.k = k
        self.block_records = block_records or max(1, BLOCK_BYTES // record_dtype(k).itemsize)
        self.header = {
            "format": FORMAT, "version": VERSION, "k": k,
            "block_records": self.block_records, **HEADER_DEFAULTS, **header,
        }  # fmt: skip
        _check_header(lambda msg: ValueError(f"BaseFileWriter: {msg}"), self.header)
        self.n = 0
        self._doc_start = 0
        self.documents: list[dict[str, Any]] = []
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._writer: ContainerWriter | None = None

    def __enter__(self) -> BaseFileWriter:
        self._writer = ContainerWriter(self.path, MAGIC, self.header, option="--save-base")
        self._writer.__enter__()
        return self

    def _flush(self, final: bool = False) -> None:
        """Write the pending records as full blocks (and, if ``final``, the rest)."""
        assert self._writer is not None
        if not self._pending:
            return
        buf = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        b = self.block_records
        full = (len(buf) // b) * b
        for lo in range(0, full, b):
            self._writer.write_block(buf[lo : lo + b].tobytes())
        rest = buf[full:]
        if final and len(rest):
            self._writer.write_block(rest.tobytes())
            rest = rest[:0]
        self._pending = [rest] if len(rest) else []
        self._pending_n = len(rest)

    def write(self, logits: Any, targets: Any) -> None:
        """Append the records of a chunk of base logits ``[n, V]`` and targets ``[n]``."""
        rec = make_records(logits, targets, self.k)
        self._pending.append(rec)
        self._pending_n += rec.shape[0]
        self.n += rec.shape[0]
        if self._pending_n >= self.block_records:
            self._flush()

    def end_document(self, name: str, tokens: int | None = None, **extra: Any) -> None:
        """Close a document: its name, its record count (default: records since the last
        call; give it when later documents' records are already written) and ``extra``
        fields (e.g. ``crc32`` of its token ids) go to the footer."""
        if tokens is None:
            tokens = self.n - self._doc_start
        self.documents.append({"name": name, "tokens": int(tokens), **extra})
        self._doc_start += int(tokens)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        w = self._writer
        assert w is not None
        if exc_type is None:
            try:
                self._flush(final=True)
                w.set_footer({"records": self.n, "documents": self.documents})
            except BaseException as err:
                self._writer = None
                w.__exit__(type(err), err, err.__traceback__)
                raise
        self._writer = None
        w.__exit__(exc_type, exc, tb)
        self.size = w.size  # bytes written (the path may be a stream)


class BaseFile:
    """Read a base file written by :class:`BaseFileWriter` (memory-mapped, validated).

    Opening checks the header and footer checksums, that the sizes add up (truncation),
    and every header and footer field's type and range. Each block of records is checked
    against its checksum, and its values against their ranges, the first time it is read
    (:meth:`read`), so a corrupt block is reported when it is reached, before any of its
    values is used.

    Parameters
    ----------
    path : str or Path
        The file. Anything that is not a complete, consistent base file raises
        :class:`~infolens.errors.InputError`: one line naming the file and the offset or
        field.

    Attributes
    ----------
    header : dict
        The writer's header (``k``, model, settings).
    k : int
        Entries per token.
    n_records : int
        Scored tokens in the file.
    documents : list of dict
        Per document, in order: ``name``, ``tokens`` and any extra fields.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "base.ilb")
    >>> with BaseFileWriter(path, {"model": "demo", "vocab_size": 3}, k=2) as w:
    ...     w.write(np.log([[0.7, 0.2, 0.1]]), np.array([2]))
    ...     w.end_document("doc1")
    >>> f = BaseFile(path)
    >>> f.k, f.n_records, f.read(0, 1)["target"].tolist()
    (2, 1, [2])
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        c = Container(
            path, MAGIC, "--base-file", "an infolens base file",
            older={b"ILBASE01": "written by an older infolens (base file version 1, "
                                "without checksums); write it again with --save-base"},
        )  # fmt: skip
        self._c = c
        h = c.header
        self.header = h
        if h.get("format") != FORMAT or h.get("version") != VERSION:
            raise c.error(
                f"header: expected format {FORMAT!r} version {VERSION}, got "
                f"{h.get('format')!r:.40} version {h.get('version')!r:.20}"
            )
        _check_header(c.error, h)
        self.k = int(h["k"])
        self.vocab_size = int(h["vocab_size"])
        self.dtype = record_dtype(self.k)
        self.block_records = int(h["block_records"])
        self.n_records, self.documents = _read_footer(c, c.footer)
        item = self.dtype.itemsize
        n_blocks = -(-self.n_records // self.block_records)
        if len(c.block_spans) != n_blocks:
            raise c.error(
                f"footer: expected {n_blocks} blocks for {self.n_records} records, got "
                f"{len(c.block_spans)}"
            )
        for i, (off, size) in enumerate(c.block_spans):
            want = min(self.block_records, self.n_records - i * self.block_records) * item
            if size != want:
                raise c.error(f"footer block {i} (byte {off}): expected {want} bytes, got {size}")
        self._offset = c.body_offset
        self._map: np.ndarray | None = None

    def _records(self) -> np.ndarray:
        if self._map is None:
            self._map = (
                np.memmap(
                    self.path, dtype=self.dtype, mode="r", offset=self._offset,
                    shape=(self.n_records,),
                )
                if self.n_records
                else np.zeros(0, dtype=self.dtype)
            )  # fmt: skip
        return self._map

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Records ``lo..hi-1`` (memory-mapped), their blocks checked first.

        Raises
        ------
        InputError
            A block's checksum does not match, or one of its values is out of range.
        """
        recs = self._records()
        b = self.block_records
        for i in range(lo // b, -(-min(hi, self.n_records) // b)):
            if i in self._c._verified:
                continue
            block = recs[i * b : (i + 1) * b]
            self._c.verify(i, block.view(np.uint8).data)
            _check_records(self._c, block, self.vocab_size, i)
        return recs[lo:hi]

    def records(self) -> np.ndarray:
        """All records, every block checked (:meth:`read` checks only what it returns)."""
        return self.read(0, self.n_records)


def _check_header(error: Callable[[str], Exception], h: dict[str, Any]) -> None:
    """Type- and range-check the header fields a reader uses."""
    from infolens.windows import BOS_POLICIES

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise error(f"header field {key!r}: expected {expected}, got {h.get(key)!r:.60}")

    need("k", is_count(h.get("k"), 1, MAX_K), f"an integer 1..{MAX_K}")
    need("block_records", is_count(h.get("block_records"), 1), "a positive integer")
    need("vocab_size", is_count(h.get("vocab_size"), 1, 1 << 31), "a positive integer")
    v = int(h["vocab_size"])
    need("model", isinstance(h.get("model"), str), "a string")
    bos_id = h.get("bos_id")
    need("bos_id", bos_id is None or is_count(bos_id, 0, v - 1), f"null or an id < {v}")
    need("predicts_first", isinstance(h.get("predicts_first"), bool), "true or false")
    need("max_length", h.get("max_length") is None or is_count(h.get("max_length"), 1),
         "null or a positive integer")  # fmt: skip
    need("stride", h.get("stride") is None or is_count(h.get("stride"), 1),
         "null or a positive integer")  # fmt: skip
    need("bos", h.get("bos") in BOS_POLICIES, f"one of {', '.join(BOS_POLICIES)}")
    probe = h.get("probe_ids")
    need("probe_ids", isinstance(probe, list) and all(is_count(i, 0, v - 1) for i in probe),
         f"a list of token ids < {v}")  # fmt: skip


def _check_records(c: Container, block: np.ndarray, vocab: int, i: int) -> None:
    """Range-check one block of records (ids, targets, log-probabilities, entropy)."""
    ids, lp = block["ids"], block["logp"]
    problems = [
        ("ids", ((ids < -1) | (ids >= vocab)).any(), f"ids in -1..{vocab - 1}"),
        ("target", ((block["target"] < 0) | (block["target"] >= vocab)).any(),
         f"ids in 0..{vocab - 1}"),
        ("logp", not (lp <= 0).all(), "log-probabilities <= 0"),
        ("target_logp", not (block["target_logp"] <= 0).all(), "a log-probability <= 0"),
        ("log_tail", not (block["log_tail"] <= 0).all(), "a log-probability <= 0"),
        ("entropy", not ((block["entropy"] >= 0) & np.isfinite(block["entropy"])).all(),
         "a finite entropy >= 0"),
    ]  # fmt: skip
    for field, bad, expected in problems:
        if bad:
            raise c.error(f"block {i}: record field {field!r}: expected {expected}")


def _read_footer(c: Container, footer: Any) -> tuple[int, list[dict[str, Any]]]:
    """The record count and the documents of a base file's footer, validated."""
    records = footer.get("records")
    docs = footer.get("documents")
    if not is_count(records) or not isinstance(docs, list):
        raise c.error("footer: expected fields 'records' (a count) and 'documents' (a list)")
    for j, d in enumerate(docs):
        if not (
            isinstance(d, dict)
            and isinstance(d.get("name"), str)
            and is_count(d.get("tokens"))
            and ("crc32" not in d or is_count(d["crc32"], 0, 0xFFFFFFFF))
        ):
            raise c.error(f"footer document {j}: expected name, tokens (and crc32), got {d!r:.80}")
    if sum(d["tokens"] for d in docs) != records:
        raise c.error(f"footer: document token counts do not add up to {records} records")
    return int(records), docs


def coarse_token_stats(rec: np.ndarray, model_logits: Any) -> dict[str, np.ndarray]:
    """Comparison statistics of a model against saved base records, per token.

    KL and JS are computed on the partition {base top-k, rest} and are lower bounds of the
    true values (equal when ``k >= V``), up to the float32 rounding of the stored base
    log-probabilities; the model's side is exact. Same keys as
    :func:`infolens.compare.token_stats`.

    Parameters
    ----------
    rec : numpy.ndarray
        Base-file records (:func:`make_records`, or :meth:`BaseFile.records`), shape [n].
    model_logits : array or tensor, shape [n, V]
        The compared model's logits at the same positions, numpy or torch.

    Returns
    -------
    dict of numpy.ndarray
        float64 arrays of shape ``[n]``, in nats: ``kl_base_model``, ``kl_model_base``,
        ``js``, ``nll_base``, ``nll_model``, ``entropy_base``, ``entropy_model``;
        ``delta_p`` (a probability difference), ``same_top1`` (bool), ``top5_overlap`` and
        ``top10_overlap`` (fractions).

    Examples
    --------
    With ``k = V`` the coarse KL is the exact one:

    >>> base, model = np.log([[0.7, 0.2, 0.1]]), np.log([[0.5, 0.3, 0.2]])
    >>> st = coarse_token_stats(make_records(base, np.array([0]), k=3), model)
    >>> st["kl_base_model"].round(4).tolist(), st["nll_model"].round(4).tolist()
    ([0.0851], [0.6931])
    """
    x = _f64(model_logits)
    t = rec["target"].astype(np.int64)
    st_m = fused_rows(x, targets=t, names=("model logits", ""))
    lq = x - st_m.lse_p[:, None]
    v = lq.shape[1]
    ids = rec["ids"].astype(np.int64)
    valid = ids >= 0
    ids_safe = np.where(valid, ids, 0)
    lb = np.where(valid, rec["logp"].astype(np.float64), -np.inf)
    lqk = np.where(valid, np.take_along_axis(lq, ids_safe, axis=1), -np.inf)
    lb_cells = np.concatenate([lb, rec["log_tail"].astype(np.float64)[:, None]], axis=1)
    lq_cells = np.concatenate([lqk, _log_mass_outside(lq, ids_safe)[:, None]], axis=1)
    st = fused_rows(lb_cells, lq_cells, js=True, names=("base-file", "model"))
    nll_model = st_m.surprisal_p
    assert nll_model is not None
    nll_base = -rec["target_logp"].astype(np.float64)
    out = {
        "kl_base_model": st.kl_pq,
        "kl_model_base": st.kl_qp,
        "js": st.js,
        "nll_base": nll_base,
        "nll_model": nll_model,
        "entropy_base": rec["entropy"].astype(np.float64),
        "entropy_model": st_m.entropy_p,
        "delta_p": np.exp(-nll_model) - np.exp(-nll_base),
        "same_top1": np.argmax(lq, axis=1) == ids[:, 0],
    }
    for kk in (5, 10):
        kk_eff = min(kk, v, ids.shape[1])
        out[f"top{kk}_overlap"] = _overlap(ids[:, :kk_eff], _topk_ids(lq, kk_eff))
    return out
