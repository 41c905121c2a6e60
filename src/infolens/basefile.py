r"""Saved base-model distributions for ``infolens compare --save-base`` / ``--base-file``.

When the base model and the compared model do not fit in memory together, the base model
is run once and, per scored token, its top-``k`` log-probabilities are saved with the
remaining tail mass. The compared model is then scored against the file.

File layout (little-endian, plain data, never pickle)::

    b"ILBASE01"  u64 header_len  header (UTF-8 JSON)
    records: n * (8k + 16) bytes, numpy structured dtype
        ids          int32[k]    the base model's top-k token ids, most likely first
        logp         float32[k]  their log-probabilities (nats)
        target       int32       the observed token
        target_logp  float32     its log-probability under the base model (exact)
        log_tail     float32     log of the probability mass outside the top k
        entropy      float32     entropy of the base distribution (nats, exact)
    footer (UTF-8 JSON: record count, documents)  u64 footer_len  b"ILBASEND"

Size: ``8k + 16`` bytes per token (``k = 32``: 272 bytes; llama.cpp stores 2 bytes times
the vocabulary, 300 kB per token for a 150k vocabulary).

KL against a saved base is computed on the coarse partition {top-k tokens, rest}: by the
data-processing inequality it is a **lower bound** on the true KL, reached when
``k = V``::

    D_k(b || m) = sum_{i in top-k} b_i log(b_i / m_i) + b_rest log(b_rest / m_rest)
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from infolens import _backend as B
from infolens._atomic import atomic_output
from infolens._kernels import fused_rows
from infolens.errors import InputError

MAGIC = b"ILBASE01"
MAGIC_END = b"ILBASEND"
FORMAT = "infolens-base"
VERSION = 1


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
    rec["target_logp"] = -st.surprisal_p
    rec["log_tail"] = _log_mass_outside(lp, top)
    rec["entropy"] = st.entropy_p
    return rec


class BaseFileWriter:
    """Write a base file atomically: to a temporary file renamed into place on success.

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

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any], k: int = 32) -> None:
        if k < 1:
            raise InputError(f"--top-k: expected >= 1, got {k}")
        self.path = Path(path)
        self.k = k
        self.header = {"format": FORMAT, "version": VERSION, "k": k, **header}
        self.n = 0
        self._doc_start = 0
        self.documents: list[dict[str, Any]] = []
        self._fh: Any = None
        self._out: Any = None

    def __enter__(self) -> BaseFileWriter:
        self._out = atomic_output(self.path, "wb")
        self._fh = self._out.__enter__()
        head = json.dumps(self.header).encode()
        self._fh.write(MAGIC + struct.pack("<Q", len(head)) + head)
        return self

    def write(self, logits: Any, targets: Any) -> None:
        """Append the records of a chunk of base logits ``[n, V]`` and targets ``[n]``."""
        rec = make_records(logits, targets, self.k)
        self._fh.write(rec.tobytes())
        self.n += rec.shape[0]

    def end_document(self, name: str, tokens: int | None = None, **extra: Any) -> None:
        """Close a document: its name, its record count (default: records since the last
        call; give it when later documents' records are already written) and ``extra``
        fields (e.g. ``crc32`` of its token ids) go to the footer."""
        if tokens is None:
            tokens = self.n - self._doc_start
        self.documents.append({"name": name, "tokens": int(tokens), **extra})
        self._doc_start += int(tokens)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        out, fh = self._out, self._fh
        self._out = self._fh = None
        assert out is not None and fh is not None
        if exc_type is None:
            try:
                foot = json.dumps({"records": self.n, "documents": self.documents}).encode()
                fh.write(foot + struct.pack("<Q", len(foot)) + MAGIC_END)
            except BaseException as err:
                out.__exit__(type(err), err, err.__traceback__)
                raise
        out.__exit__(exc_type, exc, tb)


class BaseFile:
    """Read a base file written by :class:`BaseFileWriter` (memory-mapped, validated).

    Parameters
    ----------
    path : str or Path
        The file. Anything that is not a complete, consistent base file (wrong magic,
        truncated, malformed header or footer, sizes that do not add up) raises
        :class:`~infolens.errors.InputError`.

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
    >>> with BaseFileWriter(path, {"model": "demo"}, k=2) as w:
    ...     w.write(np.log([[0.7, 0.2, 0.1]]), np.array([2]))
    ...     w.end_document("doc1")
    >>> f = BaseFile(path)
    >>> f.k, f.n_records, f.records()["target"].tolist()
    (2, 1, [2])
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        name = str(path)
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as fh:
                magic = fh.read(8)
                if magic != MAGIC:
                    raise InputError(
                        f"--base-file: expected an infolens base file, got {name} (bad magic {magic!r})"
                    )
                (hlen,) = struct.unpack("<Q", fh.read(8))
                if 16 + hlen > size:
                    raise InputError(f"--base-file: {name} is truncated (header runs past the end)")
                self.header = json.loads(fh.read(hlen))
                fh.seek(size - 16)
                tail = fh.read(16)
                if len(tail) < 16 or tail[8:] != MAGIC_END:
                    raise InputError(
                        f"--base-file: {name} is truncated (no end marker); write it again"
                    )
                (flen,) = struct.unpack("<Q", tail[:8])
                fh.seek(size - 16 - flen)
                footer = json.loads(fh.read(flen))
        except OSError as exc:
            raise InputError(f"--base-file: cannot read {name}: {exc.strerror or exc}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError, struct.error) as exc:
            raise InputError(f"--base-file: {name} is corrupt ({exc})") from exc
        if not isinstance(self.header, dict):
            raise InputError(f"--base-file: {name} is corrupt (the header is not a JSON object)")
        if self.header.get("format") != FORMAT or self.header.get("version") != VERSION:
            raise InputError(
                f"--base-file: expected format {FORMAT} version {VERSION}, got "
                f"{self.header.get('format')!r} version {self.header.get('version')!r} in {name}"
            )
        k = self.header.get("k")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InputError(f"--base-file: {name} is corrupt (header k: {k!r})")
        self.k = k
        self.dtype = record_dtype(self.k)
        self.n_records, self.documents = _read_footer(footer, name)
        self._offset = 16 + hlen
        body = size - 16 - flen - self._offset
        if body != self.n_records * self.dtype.itemsize:
            raise InputError(
                f"--base-file: {name} is corrupt: expected {self.n_records} records of "
                f"{self.dtype.itemsize} bytes, got {body} bytes"
            )
        if sum(d["tokens"] for d in self.documents) != self.n_records:
            raise InputError(f"--base-file: {name} is corrupt: document token counts do not add up")

    def records(self) -> np.ndarray:
        """All records, memory-mapped (nothing is read until used)."""
        if self.n_records == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(
            self.path, dtype=self.dtype, mode="r", offset=self._offset, shape=(self.n_records,)
        )


def _read_footer(footer: Any, name: str) -> tuple[int, list[dict[str, Any]]]:
    """The record count and the documents of a base file's footer, validated."""

    def count(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    records = footer.get("records") if isinstance(footer, dict) else None
    docs = footer.get("documents") if isinstance(footer, dict) else None
    if not count(records) or not isinstance(docs, list):
        raise InputError(f"--base-file: {name} is corrupt (footer needs records and documents)")
    for d in docs:
        if not (isinstance(d, dict) and isinstance(d.get("name"), str) and count(d.get("tokens"))):
            raise InputError(f"--base-file: {name} is corrupt (footer document entry {d!r:.80})")
    return int(records), docs  # type: ignore[arg-type]


def coarse_token_stats(rec: np.ndarray, model_logits: Any) -> dict[str, np.ndarray]:
    """Comparison statistics of a model against saved base records, per token.

    KL and JS are computed on the partition {base top-k, rest} and are lower bounds of the
    true values (equal when ``k >= V``); everything else is exact. Same keys as
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
    from infolens.compare import _overlap, _topk_ids

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
