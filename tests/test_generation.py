"""Generation (issue 11 item 3): seeded and reproducible, through the adapters' decoders,
sampling exactly the distribution of infolens.sampling.apply, with per-step log-probs and
entropies that equal the scoring definition."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from infolens import sampling
from infolens.generation import generate
from infolens.models import load_model
from infolens.models.base import Tokenized, Window, WindowDecoder


class Fixed:
    """A model whose every next-token distribution is softmax(z)."""

    name, bos_id, max_context, predicts_first, byte_level = "fixed", None, None, True, False

    def __init__(self, z: np.ndarray) -> None:
        self.z = z
        self.vocab_size = len(z)

    def tokenize(self, text: Any) -> Tokenized:
        return Tokenized(np.zeros(0, np.int64), np.zeros((0, 2), np.int64))

    def logits(self, windows: Any, *, max_rows: int) -> Any:
        n = sum(w.n_predictions for w in windows)
        for lo in range(0, n, max_rows):
            yield np.tile(self.z, (min(max_rows, n - lo), 1))

    def decode(self, ids: Any) -> str:
        return " ".join(str(int(i)) for i in ids)


Z = np.log(np.array([0.3, 0.2, 0.15, 0.12, 0.1, 0.06, 0.04, 0.02, 0.01]))


@pytest.mark.parametrize("params", [{}, {"temperature": 0.7, "top_k": 5},
                                    {"temperature": 1.5, "top_p": 0.8},
                                    {"min_p": 0.2, "temperature": 0.5}])  # fmt: skip
def test_token_frequencies_match_the_warped_distribution(params: dict) -> None:
    n = 20_000
    out = generate(Fixed(Z), "", n=n, max_new_tokens=1, seed=123, **params)
    counts = np.bincount([int(s.token_ids[0]) for s in out], minlength=len(Z))
    q = np.exp(sampling.apply(Z, **params) - np.logaddexp.reduce(sampling.apply(Z, **params)))
    assert (counts[q == 0] == 0).all()  # truncated tokens are never drawn
    keep = q > 0
    chi = stats.chisquare(counts[keep], n * q[keep] / q[keep].sum())
    assert chi.pvalue > 1e-3, (counts, n * q)
    # the reported log-probs are those of the warped and the raw distributions
    s = out[0]
    t = int(s.token_ids[0])
    assert s.logprob_sampling[0] == pytest.approx(np.log(q[t]), rel=1e-12)
    assert s.logprob_model[0] == pytest.approx(Z[t] - np.logaddexp.reduce(Z), rel=1e-12)
    h = -(q[keep] * np.log(q[keep])).sum()
    assert s.entropy_sampling[0] == pytest.approx(h, rel=1e-12)


def test_seeded_and_independent_of_the_batch() -> None:
    m = load_model("ngram")
    a = generate(m, ["the cat ", "a dog "], n=3, max_new_tokens=20, seed=7, temperature=1.3)
    b = generate(m, ["the cat ", "a dog "], n=3, max_new_tokens=20, seed=7, temperature=1.3)
    c = generate(m, ["the cat "], n=1, max_new_tokens=20, seed=7, temperature=1.3)
    d = generate(m, ["the cat "], n=1, max_new_tokens=20, seed=8, temperature=1.3)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert a[0].to_dict()["token_ids"] == c[0].to_dict()["token_ids"]  # sample (0, 0) alone
    assert a[0].to_dict()["token_ids"] != d[0].to_dict()["token_ids"]


def test_ngram_logprobs_equal_scoring_the_sample() -> None:
    from infolens.documents import Document
    from infolens.score import score_documents

    m = load_model("ngram")
    prompt = "information theory for AI engineers; "
    (s,) = generate(m, prompt, max_new_tokens=30, seed=3)
    text = prompt.encode() + bytes(int(i) for i in s.token_ids)
    rows: list[np.ndarray] = []
    score_documents(m, [Document("x", text)], compressors=False,
                    on_rows=lambda r: rows.append(r.surprisal_nats.copy()))  # fmt: skip
    surpr = np.concatenate(rows)[len(prompt.encode()):]
    np.testing.assert_allclose(-s.logprob_model, surpr, rtol=1e-12, atol=1e-12)


def test_greedy_stop_and_errors() -> None:
    m = load_model("ngram")
    (g,) = generate(m, "abcabcabcabc", max_new_tokens=6, greedy=True)
    assert g.text == "abcabc" and np.allclose(g.logprob_sampling, g.logprob_model)
    (s,) = generate(m, "abcabcabcabc", max_new_tokens=20, greedy=True, stop="ca")
    assert s.finish_reason == "stop" and s.text == "ab"
    for kw, msg in [({"temperature": 0}, "temperature"), ({"top_p": 1.5}, "top_p"),
                    ({"n": 0}, "n: expected"), ({"top_q": 3}, "top_q: not a sampling"),
                    ({"max_new_tokens": -1}, "max_new_tokens")]:  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            generate(m, "x", **kw)


def test_hf_kv_cache_decoder_equals_scoring_windows(tiny_hf: Any) -> None:
    import torch

    prefix = np.concatenate([[tiny_hf.bos_id], tiny_hf.tokenize("the quick brown fox").ids])
    kv = tiny_hf.start_decoder(prefix, 2)
    win = WindowDecoder(tiny_hf, prefix, 2)
    rng = np.random.default_rng(0)
    for _ in range(12):
        a, b = kv.next_logits(), win.next_logits()
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-4)
        nxt = rng.integers(0, tiny_hf.vocab_size, size=2)
        kv.append(nxt)
        win.append(nxt)
    assert kv.length == win.length == len(prefix) + 12


def test_hf_generate_reproducible_and_stops_at_the_context(tiny_hf: Any) -> None:
    a = generate(tiny_hf, "def main():", n=2, max_new_tokens=10, seed=5, top_k=20, temperature=0.9)
    b = generate(tiny_hf, "def main():", n=2, max_new_tokens=10, seed=5, top_k=20, temperature=0.9)
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    assert all(len(s.token_ids) == 10 or s.finish_reason == "eos" for s in a)
    assert all(np.isfinite(s.logprob_model).all() for s in a)
    # the tiny model's context is 64 positions: a long generation ends there
    (c,) = generate(tiny_hf, "x", max_new_tokens=200, seed=0, bos=True)
    assert c.finish_reason in ("context", "eos")
    if c.finish_reason == "context":
        assert len(c.token_ids) + 1 + len(tiny_hf.tokenize("x").ids) == tiny_hf.max_context + 1
    w = Window(np.zeros(3, np.int64), 1)
    assert w.n_predictions == 2
