"""Synthetic score results and token records for the report tests (no model needed)."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

_TOKEN = re.compile(r"\s*\S+?(?=\s|$|[.,;:!?])|\s*[.,;:!?]|\s+$", re.S)

DOCS: dict[str, str] = {
    "intro.txt": (
        "The quick brown fox jumps over the lazy dog. Information theory measures surprise "
        "in bits: a fair coin flip is one bit, and a certain event is zero bits.\n"
        "Language models assign probabilities to the next token; surprisal is -log2 p."
    ),
    "html<b>&.txt": (
        "Document text can contain markup such as <script>alert('x')</script> and "
        "<b>bold</b> & ampersands, which must be shown, never run."
    ),
    "unicode.txt": "Café naïve résumé — 日本語のテキスト 🙂 done.",
}


def text_100kb() -> str:
    """100,000 characters of the example documents, repeated (the page-load size)."""
    base = "".join(DOCS.values()) + "\n"
    return (base * (100_000 // len(base) + 1))[:100_000]


def tokenize(text: str, *, byte_level_non_ascii: bool = True) -> list[tuple[str, int, int]]:
    """Word-ish tokens with byte spans; non-ASCII words are split into single bytes.

    Splitting non-ASCII words into bytes makes characters straddle tokens, as with
    byte-level models, so the report's grouping of partial characters is exercised.
    """
    data = text.encode("utf-8")
    out: list[tuple[str, int, int]] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        piece = m.group(0).encode("utf-8")
        start = pos
        pos += len(piece)
        if byte_level_non_ascii and any(b >= 0x80 for b in piece):
            for i in range(start, pos):
                out.append((data[i : i + 1].decode("utf-8", errors="replace"), i, i + 1))
        else:
            out.append((m.group(0), start, pos))
    assert pos == len(data), (pos, len(data))
    return out


def synth(
    docs: dict[str, str] | None = None,
    *,
    seed: int = 0,
    max_length: int = 16,
    byte_level_non_ascii: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A score result and the token records, consistent with each other."""
    docs = DOCS if docs is None else docs
    rng = np.random.default_rng(seed)
    records: list[dict[str, Any]] = []
    per_doc = []
    vocab = [" the", " a", " of", " and", ".", ",", " to", " in", " is", " model"]
    for name, text in docs.items():
        toks = tokenize(text, byte_level_non_ascii=byte_level_non_ascii)
        n = len(toks)
        s = rng.gamma(1.5, 2.0, size=n)
        h = np.clip(s + rng.normal(0, 1.0, size=n), 0.05, None)
        doc_recs = []
        for i, (tok, lo, hi) in enumerate(toks):
            probs = np.sort(rng.dirichlet(np.ones(6)))[::-1][:5]
            rank = 1 + int(rng.integers(0, 20)) if s[i] > 1 else 1
            top = [[vocab[(i + j) % len(vocab)], float(probs[j])] for j in range(5)]
            if rank == 1:
                top[0] = [tok, float(probs[0])]
            doc_recs.append({
                "doc": name, "position": i, "token": tok, "bytes": [lo, hi],
                "surprisal_bits": float(s[i]), "entropy_bits": float(h[i]), "rank": rank,
                "context": i % max_length, "top": top,
            })  # fmt: skip
        records.extend(doc_recs)
        per_doc.append(_numbers(name, text, s, h))
    all_s = np.array([r["surprisal_bits"] for r in records])
    all_h = np.array([r["entropy_bits"] for r in records])
    corpus = _numbers("", "".join(docs.values()), all_s, all_h)
    corpus["bytes"] = sum(d["bytes"] for d in per_doc)
    corpus["characters"] = sum(d["characters"] for d in per_doc)
    corpus["words"] = sum(d["words"] for d in per_doc)
    corpus["bits_per_byte"] = float(all_s.sum() / corpus["bytes"])
    corpus["word_perplexity"] = float(2 ** (all_s.sum() / corpus["words"]))
    del corpus["name"]
    ppl = corpus["perplexity"]
    corpus["perplexity_ci95_iid"] = [ppl * 0.9, ppl * 1.1]
    result = {
        "model": "synthetic:test",
        "max_length": max_length,
        "stride": max_length,
        "bos": "first",
        **corpus,
        "documents": per_doc,
    }
    return result, records


def _numbers(name: str, text: str, s: np.ndarray, h: np.ndarray) -> dict[str, Any]:
    n = int(s.size)
    bits = float(s.sum())
    nb = len(text.encode("utf-8"))
    words = len(text.split())
    return {
        "name": name,
        "perplexity": float(2 ** (bits / n)),
        "nll_nats": bits * math.log(2),
        "tokens": n,
        "bits_per_token": bits / n,
        "bytes": nb,
        "bits_per_byte": bits / nb,
        "characters": len(text),
        "words": words,
        "word_perplexity": float(2 ** (bits / words)),
        "mean_entropy_bits": float(h.mean()),
        "mean_surprisal_bits": bits / n,
        "calibration_gap_bits": bits / n - float(h.mean()),
    }
