r"""Streaming, mergeable accumulators for scoring (sufficient statistics only).

Like torchmetrics' split, :meth:`ScoreStats.update` adds sufficient statistics and
:meth:`ScoreStats.compute` derives the reported values from them. The state is a fixed set
of integers, so it takes constant memory for any corpus, it serialises to JSON
(:meth:`ScoreStats.to_json`, :meth:`ScoreStats.from_json`) and two states combine with
:meth:`ScoreStats.merge`, for sharded or distributed runs (each worker scores whole
documents and ships its state; the driver merges).

**Exactness.** Float sums are kept as exact integers: every float64 ``x`` is an integer
multiple of ``2**-1126`` (see :class:`ExactSum`), so a sum of float64 values is held exactly
as a Python ``int`` of scaled units. Integer addition is associative and commutative, so a
merged state is *bit-for-bit* the state of one pass over the same documents in any order or
sharding, and :meth:`compute` rounds only once, at the end. (``math.fsum`` gives the same
correctly rounded totals, but its partials are not exposed for merging.)

Statistics per prediction with surprisal ``s = -ln p(token)`` and entropy ``h`` of the
predicted distribution (both in nats)::

    tokens N, sum s, sum s^2, sum h          (exact)
    histograms of s and h in bits            (fixed bins, integer counts)
    blocks of B consecutive predictions of one document (batch means, see compute())
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

LN2 = math.log(2.0)
#: ``x * 2**SCALE_BITS`` is an integer for every finite float64 ``x``.
SCALE_BITS = 1126
_SCALE = Fraction(1, 2**SCALE_BITS)
#: Histogram bins, in bits: ``[k * HIST_BIN_BITS, (k + 1) * HIST_BIN_BITS)``, the last one
#: open-ended (everything at or above ``(HIST_BINS - 1) * HIST_BIN_BITS``).
HIST_BIN_BITS = 0.25
HIST_BINS = 129  # 0 .. 32 bits in quarter bits, plus one overflow bin
#: Default batch-means block size (predictions per block, within a document).
DEFAULT_BLOCK_TOKENS = 128
_PIECE = 1024  # values per int64 group sum: 1024 * 2**53 < 2**63
_SHIFTS = 4096  # > the largest shift, 1024 + SCALE_BITS - 53


def exact_scaled_sum(values: Any) -> int:
    r"""Exact sum of finite float64 values, as an integer count of ``2**-1126`` units.

    Each value is split with ``frexp`` into a 53-bit integer mantissa ``m`` and exponent
    ``e`` (``x = m * 2**(e - 53)``, and ``e - 53 >= -1126`` for every float64, subnormals
    included); mantissas of equal exponent are added in ``int64`` (at most 1024 at a time,
    so no overflow) and shifted into one Python ``int``. No rounding happens anywhere.

    Parameters
    ----------
    values : array_like of float
        Finite values (NaN or infinities raise ``ValueError``).

    Returns
    -------
    int
        ``sum(values) * 2**1126``, exactly.

    Examples
    --------
    >>> exact_scaled_sum([0.1, 0.2, -0.3]) / 2**1126 == math.fsum([0.1, 0.2, -0.3])
    True
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return 0
    if not np.all(np.isfinite(x)):
        raise ValueError("exact_scaled_sum: expected finite values, got NaN or infinity")
    return _group_sums(x, np.zeros(x.size, dtype=np.int64), 1)[0]


def _group_sums(x: np.ndarray, groups: np.ndarray, n_groups: int) -> list[int]:
    """Exact sums (``2**-1126`` units) of finite ``x`` per group, in one vectorised pass.

    ``groups`` holds each value's group ``0..n_groups-1``, non-decreasing. Values are keyed
    by (group, run of :data:`_PIECE` consecutive values, exponent): mantissas of one key
    are added in ``int64`` (at most ``_PIECE`` of them: no overflow), and the key sums are
    shifted into Python ints. Integer sums are exact, so any grouping gives the same totals.
    """
    totals = [0] * n_groups
    if x.size == 0:
        return totals
    mant, expo = np.frexp(x)
    mi = np.ldexp(mant, 53).astype(np.int64)
    sh = expo.astype(np.int64) + (SCALE_BITS - 53)  # 0 .. 2097 for float64
    # one id per (group, piece): both are non-decreasing along x
    piece = np.arange(x.size, dtype=np.int64) // _PIECE
    new = np.empty(x.size, dtype=bool)
    new[0] = True
    new[1:] = (groups[1:] != groups[:-1]) | (piece[1:] != piece[:-1])
    run = np.cumsum(new) - 1
    run_group = groups[new]
    key = run * _SHIFTS + sh
    order = np.argsort(key, kind="stable")
    k_sorted = key[order]
    starts = np.flatnonzero(np.concatenate(([True], k_sorted[1:] != k_sorted[:-1])))
    sums = np.add.reduceat(mi[order], starts)
    keys = k_sorted[starts]
    for g, shift, v in zip(
        run_group[keys // _SHIFTS].tolist(), (keys % _SHIFTS).tolist(), sums.tolist()
    ):
        totals[g] += v << shift
    return totals


@dataclass
class ExactSum:
    """An exact, mergeable sum of float64 values (``nan``/``inf`` counted apart).

    ``value`` is the correctly rounded float of the exact sum; it is ``inf``/``nan`` as
    IEEE addition would make it if any non-finite value was added.

    Examples
    --------
    >>> a, b = ExactSum(), ExactSum()
    >>> a.add([0.1] * 10)
    >>> a.value, sum([0.1] * 10)
    (1.0, 0.9999999999999999)
    >>> b.add([1e100, 1.0, -1e100])
    >>> b.value
    1.0
    >>> a.merge(b)
    >>> a.value
    2.0
    >>> b.add([float("inf")])
    >>> b.value
    inf
    """

    units: int = 0  # exact finite sum in 2**-1126 units
    posinf: int = 0
    neginf: int = 0
    nan: int = 0

    def add(self, values: Any) -> None:
        x = np.asarray(values, dtype=np.float64).ravel()
        fin = np.isfinite(x)
        if not fin.all():
            self.posinf += int(np.count_nonzero(np.isposinf(x)))
            self.neginf += int(np.count_nonzero(np.isneginf(x)))
            self.nan += int(np.count_nonzero(np.isnan(x)))
            x = x[fin]
        self.units += exact_scaled_sum(x)

    def merge(self, other: ExactSum) -> None:
        self.units += other.units
        self.posinf += other.posinf
        self.neginf += other.neginf
        self.nan += other.nan

    @property
    def finite(self) -> bool:
        return not (self.posinf or self.neginf or self.nan)

    def fraction(self) -> Fraction:
        """The exact finite part as a fraction."""
        return Fraction(self.units) * _SCALE

    @property
    def value(self) -> float:
        if self.nan or (self.posinf and self.neginf):
            return math.nan
        if self.posinf:
            return math.inf
        if self.neginf:
            return -math.inf
        return self.units / 2**SCALE_BITS  # int / int is correctly rounded

    def to_json(self) -> dict[str, Any]:
        return {
            "units_hex": hex(self.units),
            "posinf": self.posinf,
            "neginf": self.neginf,
            "nan": self.nan,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ExactSum:
        return cls(int(d["units_hex"], 16), int(d["posinf"]), int(d["neginf"]), int(d["nan"]))


def _finite_part(x: np.ndarray, acc: ExactSum) -> np.ndarray:
    """The finite values of ``x``; the others are counted in ``acc`` (``inf``/``nan``)."""
    fin = np.isfinite(x)
    if fin.all():
        return x
    acc.add(x[~fin])
    return x[fin]


def _hist(values_bits: np.ndarray) -> np.ndarray:
    """Counts of ``values_bits`` in the fixed bins (NaN values are not counted)."""
    v = values_bits[~np.isnan(values_bits)]
    idx = np.floor(np.clip(v, 0.0, None) / HIST_BIN_BITS)
    idx = np.minimum(idx, HIST_BINS - 1).astype(np.int64)
    return np.bincount(idx, minlength=HIST_BINS).astype(np.int64)


@dataclass
class ScoreStats:
    r"""Mergeable sufficient statistics of a scoring pass (one document or a corpus).

    Call :meth:`update` with the surprisals and entropies (nats) of consecutive predictions
    of one document, :meth:`add_text` once per document with its sizes, and
    :meth:`end_document` when the document is done (it closes the open batch-means block).
    :meth:`merge` adds another state (both must have no open document); :meth:`compute`
    returns the reported numbers.

    Parameters
    ----------
    block_tokens : int
        ``B``, predictions per batch-means block. Blocks never span documents; a document's
        last block may be shorter.

    Examples
    --------
    >>> import math
    >>> st = ScoreStats(block_tokens=2)
    >>> st.update([math.log(2), math.log(4)], [0.7, 1.1])
    >>> st.add_text(n_bytes=2, characters=2, words=1)
    >>> st.end_document()
    >>> out = st.compute()
    >>> out["tokens"], round(out["perplexity"], 6), out["bits_per_byte"]
    (2, 2.828427, 1.5)
    >>> ScoreStats.from_json(st.to_json()).same_state(st)
    True
    """

    block_tokens: int = DEFAULT_BLOCK_TOKENS
    tokens: int = 0
    nll: ExactSum = field(default_factory=ExactSum)  # sum of s (nats)
    nll_sq: ExactSum = field(
        default_factory=ExactSum
    )  # sum of s^2 (nats^2), s^2 rounded to float64
    entropy: ExactSum = field(default_factory=ExactSum)  # sum of h (nats)
    bytes: int = 0
    characters: int = 0
    words: int = 0
    documents: int = 0
    empty_documents: int = 0  # documents with no predictions
    # batch means over closed blocks, in exact units: y_k = block sum (2**-1126 units),
    # n_k = block size. Kept: K, sum y_k^2, sum y_k n_k, sum n_k^2.
    blocks: int = 0
    block_y2: int = 0
    block_yn: int = 0
    block_n2: int = 0
    blocks_nonfinite: int = 0  # blocks holding an infinite or NaN surprisal
    hist_surprisal_bits: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, np.int64))
    hist_entropy_bits: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, np.int64))
    # the open block of the current document
    _open_units: int = 0
    _open_n: int = 0
    _open_bad: bool = False
    _doc_tokens: int = 0

    def __post_init__(self) -> None:
        if self.block_tokens < 1:
            raise ValueError(f"block_tokens: expected >= 1, got {self.block_tokens}")

    # ------------------------------------------------------------------ update

    def update(self, surprisal_nats: Any, entropy_nats: Any) -> None:
        """Add consecutive predictions of the current document.

        Parameters
        ----------
        surprisal_nats, entropy_nats : array_like of shape ``[k]``
            ``-ln p(token)`` and the entropy of each predicted distribution, in nats.
        """
        s = np.asarray(surprisal_nats, dtype=np.float64).ravel()
        h = np.asarray(entropy_nats, dtype=np.float64).ravel()
        if s.shape != h.shape:
            raise ValueError(f"entropy_nats: expected shape {s.shape}, got {h.shape}")
        if s.size == 0:
            return
        self.tokens += int(s.size)
        self._doc_tokens += int(s.size)
        with np.errstate(over="ignore", invalid="ignore"):
            sq = s * s
        self.hist_surprisal_bits += _hist(s / LN2)
        self.hist_entropy_bits += _hist(h / LN2)
        # blocks of the NLL (block 0 is the open one): the NLL total is the sum of the exact
        # block sums. One exact pass sums every block, then sum s^2, then sum h.
        B = self.block_tokens
        blk = (self._open_n + np.arange(s.size, dtype=np.int64)) // B
        n_blocks = int(blk[-1]) + 1
        counts = np.bincount(blk, minlength=n_blocks).tolist()
        fin = np.isfinite(s)
        bad = [False] * n_blocks
        if not fin.all():
            self.nll.add(s[~fin])  # counts the infinities and NaNs
            bad = (np.bincount(blk[~fin], minlength=n_blocks) > 0).tolist()
            s, blk = s[fin], blk[fin]
        sq = _finite_part(sq, self.nll_sq)
        h = _finite_part(h, self.entropy)
        sums = _group_sums(
            np.concatenate([s, sq, h]),
            np.concatenate(
                [blk, np.full(sq.size, n_blocks, np.int64), np.full(h.size, n_blocks + 1, np.int64)]
            ),
            n_blocks + 2,
        )
        units = sums[:n_blocks]
        self.nll_sq.units += sums[n_blocks]
        self.entropy.units += sums[n_blocks + 1]
        self.nll.units += sum(units)
        for u, n, b in zip(units, counts, bad):
            self._open_units += u
            self._open_n += n
            self._open_bad = self._open_bad or b
            if self._open_n == B:
                self._close_block()

    def _close_block(self) -> None:
        if self._open_n:
            if self._open_bad:
                self.blocks_nonfinite += 1
            else:
                y, n = self._open_units, self._open_n
                self.blocks += 1
                self.block_y2 += y * y
                self.block_yn += y * n
                self.block_n2 += n * n
        self._open_units, self._open_n, self._open_bad = 0, 0, False

    def add_text(self, n_bytes: int, characters: int, words: int) -> None:
        """Add the sizes of the current document's text (UTF-8 bytes, code points, words)."""
        self.bytes += int(n_bytes)
        self.characters += int(characters)
        self.words += int(words)

    def end_document(self) -> None:
        """Close the current document (and its open block)."""
        self._close_block()
        self.documents += 1
        if self._doc_tokens == 0:
            self.empty_documents += 1
        self._doc_tokens = 0

    # ------------------------------------------------------------------ merge

    def merge(self, other: ScoreStats) -> ScoreStats:
        """Add ``other``'s statistics to this state (in place) and return ``self``.

        Exact: any merge order or sharding gives the same state as one pass.
        """
        if other.block_tokens != self.block_tokens:
            raise ValueError(
                f"merge: expected block_tokens {self.block_tokens}, got {other.block_tokens}"
            )
        if self._open_n or other._open_n or self._doc_tokens or other._doc_tokens:
            raise ValueError("merge: a document is still open; call end_document() first")
        for name in (
            "tokens",
            "bytes",
            "characters",
            "words",
            "documents",
            "empty_documents",
            "blocks",
            "block_y2",
            "block_yn",
            "block_n2",
            "blocks_nonfinite",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.nll.merge(other.nll)
        self.nll_sq.merge(other.nll_sq)
        self.entropy.merge(other.entropy)
        self.hist_surprisal_bits = self.hist_surprisal_bits + other.hist_surprisal_bits
        self.hist_entropy_bits = self.hist_entropy_bits + other.hist_entropy_bits
        return self

    def copy(self) -> ScoreStats:
        return ScoreStats.from_json(self.to_json())

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-able data (big integers as hex strings)."""
        if self._open_n or self._doc_tokens:
            raise ValueError("to_json: a document is still open; call end_document() first")
        return {
            "format": "infolens.ScoreStats/1",
            "block_tokens": self.block_tokens,
            "tokens": self.tokens,
            "nll": self.nll.to_json(),
            "nll_sq": self.nll_sq.to_json(),
            "entropy": self.entropy.to_json(),
            "bytes": self.bytes,
            "characters": self.characters,
            "words": self.words,
            "documents": self.documents,
            "empty_documents": self.empty_documents,
            "blocks": self.blocks,
            "block_y2_hex": hex(self.block_y2),
            "block_yn_hex": hex(self.block_yn),
            "block_n2": self.block_n2,
            "blocks_nonfinite": self.blocks_nonfinite,
            "hist_bin_bits": HIST_BIN_BITS,
            "hist_surprisal_bits": self.hist_surprisal_bits.tolist(),
            "hist_entropy_bits": self.hist_entropy_bits.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScoreStats:
        if d.get("format") != "infolens.ScoreStats/1":
            raise ValueError(
                f"ScoreStats.from_json: expected format 'infolens.ScoreStats/1', got {d.get('format')!r}"
            )
        if d.get("hist_bin_bits") != HIST_BIN_BITS:
            raise ValueError(
                f"ScoreStats.from_json: expected hist_bin_bits {HIST_BIN_BITS}, got {d.get('hist_bin_bits')!r}"
            )
        return cls(
            block_tokens=int(d["block_tokens"]),
            tokens=int(d["tokens"]),
            nll=ExactSum.from_json(d["nll"]),
            nll_sq=ExactSum.from_json(d["nll_sq"]),
            entropy=ExactSum.from_json(d["entropy"]),
            bytes=int(d["bytes"]),
            characters=int(d["characters"]),
            words=int(d["words"]),
            documents=int(d["documents"]),
            empty_documents=int(d["empty_documents"]),
            blocks=int(d["blocks"]),
            block_y2=int(d["block_y2_hex"], 16),
            block_yn=int(d["block_yn_hex"], 16),
            block_n2=int(d["block_n2"]),
            blocks_nonfinite=int(d["blocks_nonfinite"]),
            hist_surprisal_bits=np.asarray(d["hist_surprisal_bits"], dtype=np.int64),
            hist_entropy_bits=np.asarray(d["hist_entropy_bits"], dtype=np.int64),
        )

    def same_state(self, other: ScoreStats) -> bool:
        """True if both states are identical (every exact integer and count)."""
        return self.to_json() == other.to_json()

    # ------------------------------------------------------------------ compute

    def compute(self, z: float = 1.959963984540054) -> dict[str, Any]:
        r"""The reported numbers (see ``docs/scoring.md``). ``None`` where undefined.

        With ``N`` predictions, ``NLL = sum s`` (nats), ``mu = NLL / N``:

        * ``perplexity = exp(mu)``; ``bits_per_token = mu / ln 2``;
          ``bits_per_byte = NLL / (ln 2 * bytes)``; ``word_perplexity = exp(NLL / words)``;
        * ``mean_entropy_bits = sum h / (N ln 2)``, ``mean_surprisal_bits = mu / ln 2``,
          ``calibration_gap_bits = (sum s - sum h) / (N ln 2)``;
        * iid (llama.cpp): ``var = sum s^2 / N - mu^2``, ``se = sqrt(var / (N - 1))``,
          ``perplexity_stderr_iid = PPL * se``;
        * batch means over blocks ``k`` with sums ``y_k`` and sizes ``n_k`` (``K`` blocks):
          ``se^2 = K / (K - 1) * sum (y_k - mu n_k)^2 / N^2`` (the ratio / cluster estimator;
          with equal blocks it is the usual variance of the batch means over ``K``),
          ``perplexity_stderr_batch_means = PPL * se``;
        * ``perplexity_stderr_*`` is the **delta-method** standard error of ``PPL`` (llama.cpp's
          ``+/-`` figure), a perplexity, not nats;
        * ``perplexity_ci95_*`` is **not** ``PPL -/+ z * stderr``: it is the interval on the log
          scale, ``[exp(max(mu - z se, 0)), exp(mu + z se)]`` with ``z = 1.96``, the normal
          interval of the mean NLL mapped through ``exp``. It is asymmetric around ``PPL``,
          always contains it and is never below 1 (a perplexity is at least 1: the NLL end is
          clamped at 0 nats, which only happens when ``mu < z se``); for large ``N`` it
          approaches ``PPL * (1 -/+ z se)``. (Were float rounding to make ``mu`` slightly
          negative, the lower NLL end is ``mu`` itself, so the interval still holds ``PPL``.)
        """
        n = self.tokens
        ln2 = LN2
        nll = self.nll.value
        out: dict[str, Any] = {
            "tokens": n,
            "nll_nats": nll,
            "perplexity": None,
            "bits_per_token": None,
            "bytes": self.bytes,
            "bits_per_byte": (nll / (ln2 * self.bytes)) if self.bytes else None,
            "characters": self.characters,
            "words": self.words,
            "word_perplexity": _exp(nll / self.words) if self.words else None,
            "mean_entropy_bits": None,
            "mean_surprisal_bits": None,
            "calibration_gap_bits": None,
            "perplexity_stderr_iid": None,
            "perplexity_ci95_iid": None,
            "perplexity_stderr_batch_means": None,
            "perplexity_ci95_batch_means": None,
            "batch_means_blocks": self.blocks,
            "batch_means_block_tokens": self.block_tokens,
        }
        if n == 0:
            return out
        mu = nll / n
        ppl = _exp(mu)
        out["perplexity"] = ppl
        out["bits_per_token"] = mu / ln2
        out["mean_surprisal_bits"] = mu / ln2
        out["mean_entropy_bits"] = self.entropy.value / (n * ln2)
        if self.nll.finite and self.entropy.finite:
            gap = float((self.nll.fraction() - self.entropy.fraction()) / n)
            out["calibration_gap_bits"] = gap / ln2
        else:
            out["calibration_gap_bits"] = out["mean_surprisal_bits"] - out["mean_entropy_bits"]
        if not (self.nll.finite and self.nll_sq.finite):
            return out
        mu_q = self.nll.fraction() / n
        if n >= 2:
            var = self.nll_sq.fraction() / n - mu_q * mu_q
            se = math.sqrt(max(0.0, float(var / (n - 1))))
            out["perplexity_stderr_iid"] = ppl * se
            out["perplexity_ci95_iid"] = _log_scale_interval(mu, se, z)
        k = self.blocks
        if k >= 2 and self.blocks_nonfinite == 0:
            # sum (y_k - mu n_k)^2 with y in units: y = Y * 2**-1126
            scale2 = _SCALE * _SCALE
            ss = (
                Fraction(self.block_y2) * scale2
                - 2 * mu_q * Fraction(self.block_yn) * _SCALE
                + mu_q * mu_q * self.block_n2
            )
            var_bm = Fraction(k, k - 1) * ss / (n * n)
            se_bm = math.sqrt(max(0.0, float(var_bm)))
            out["perplexity_stderr_batch_means"] = ppl * se_bm
            out["perplexity_ci95_batch_means"] = _log_scale_interval(mu, se_bm, z)
        return out


def _log_scale_interval(mu: float, se: float, z: float) -> list[float]:
    """``[exp(max(mu - z se, min(mu, 0))), exp(mu + z se)]``: a perplexity interval >= 1.

    ``mu`` is the mean NLL and ``se`` its standard error (nats); the NLL interval is the
    symmetric normal one, its lower end clamped at 0 nats (``min(mu, 0)`` keeps ``exp(mu)``
    inside should rounding ever make ``mu`` negative).
    """
    return [_exp(max(mu - z * se, min(mu, 0.0))), _exp(mu + z * se)]


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
