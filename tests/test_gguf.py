"""``gguf:`` models on llama.cpp (llama-cpp-python), against transformers on the same weights.

Nothing is mocked: a tiny random llama is saved with transformers, written as an F32 GGUF
file and quantised by llama.cpp itself (:mod:`gguf_fixtures`); llama.cpp and transformers
must give the same per-token log-probs for every window setting, and the quantised copies
are compared with their original through ``infolens compare``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gguf_fixtures import need
from hf_fixtures import stdlib_text
from infolens.cli import main
from infolens.errors import InputError
from infolens.models import load_model
from infolens.models.base import ContextFull, ModelSpecError, Window, WindowDecoder
from infolens.score import Document, score_documents

need("llama_cpp", "llama-cpp-python is not installed (pip install 'infolens[gguf]')")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = stdlib_text()[:2500] + "\n\tunicode: é€😀  two  spaces\n"


@pytest.fixture(scope="module")
def hf(tiny_llama_dir: Path):  # type: ignore[no-untyped-def]
    return load_model(f"hf:{tiny_llama_dir}", device="cpu", dtype="float32", batch_size=2)


@pytest.fixture(scope="module")
def gg(tiny_gguf: Path):  # type: ignore[no-untyped-def]
    m = load_model(f"gguf:{tiny_gguf},n_batch=48", n_threads=1)
    yield m
    m.close()


def _per_token(model, **settings):  # type: ignore[no-untyped-def]
    rows: dict[int, float] = {}
    ent: dict[int, float] = {}

    def keep(b):  # type: ignore[no-untyped-def]
        for p, s, h in zip(b.positions.tolist(), b.surprisal_nats, b.entropy_nats):
            assert p not in rows, "a token was predicted twice"
            rows[p], ent[p] = float(s), float(h)

    r = score_documents(model, [Document("d", TEXT)], on_rows=keep, compressors=False, **settings)
    order = sorted(rows)
    return r, order, np.array([rows[p] for p in order]), np.array([ent[p] for p in order])


def test_model_description(gg, hf, tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    assert (gg.vocab_size, gg.bos_id, gg.eos_id) == (hf.vocab_size, hf.bos_id, 2)
    assert gg.max_context == hf.max_context == 256  # the training context
    assert gg.name == f"gguf:{tiny_gguf}"


def test_tokenizer_is_the_gguf_one_and_matches_transformers(gg, hf) -> None:  # type: ignore[no-untyped-def]
    a, b = gg.tokenize(TEXT), hf.tokenize(TEXT)
    np.testing.assert_array_equal(a.ids, b.ids)
    data = TEXT.encode()
    # the pieces spell the document; the dummy-prefix space belongs to no byte
    assert b"".join(data[s:e] for s, e in a.offsets) == data
    # transformers gives every byte-fallback token of a character the character's span,
    # llama.cpp's pieces give each its byte: the same spans for ASCII tokens
    ascii_ = np.array([data[s:e].isascii() and e > s for s, e in b.offsets])
    ascii_[0] = False
    assert ascii_.sum() > 0.9 * len(b)
    np.testing.assert_array_equal(a.offsets[ascii_], b.offsets[ascii_])
    assert gg.decode(a.ids) == TEXT
    assert gg.tokenize("").ids.shape == (0,)
    with pytest.raises(TypeError, match="expects str"):
        gg.tokenize(b"bytes")


@pytest.mark.parametrize(
    "settings",
    [
        {"max_length": 64, "stride": 32, "bos": "first"},
        {"max_length": 48, "stride": 48, "bos": "first"},
        {"max_length": 40, "stride": 7, "bos": "every"},
        {"max_length": 100, "stride": 50, "bos": "none"},
        {"max_length": 256, "stride": 256, "bos": "first"},
    ],
    ids=lambda s: f"L{s['max_length']}-S{s['stride']}-{s['bos']}",
)
def test_same_log_probs_as_transformers(gg, hf, settings) -> None:  # type: ignore[no-untyped-def]
    rg, pg, sg, hg = _per_token(gg, **settings)
    rh, ph, sh, hh = _per_token(hf, **settings)
    assert pg == ph and len(pg) > 100
    np.testing.assert_allclose(sg, sh, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(hg, hh, rtol=1e-5, atol=1e-4)
    assert rg.metrics["perplexity"] == pytest.approx(rh.metrics["perplexity"], rel=1e-6)
    assert rg.metrics["tokens"] == rh.metrics["tokens"]


def test_rows_come_in_chunks_of_at_most_max_rows(gg) -> None:  # type: ignore[no-untyped-def]
    ids = gg.tokenize(TEXT).ids[:200]
    w = [Window(np.concatenate([[gg.bos_id], ids[:150]]), 1), Window(ids[50:200], 100)]
    chunks = list(gg.logits(w, max_rows=13))
    assert all(c.shape[0] <= 13 and c.shape[1] == gg.vocab_size for c in chunks)
    assert sum(c.shape[0] for c in chunks) == 150 + 50
    whole = np.concatenate(list(gg.logits(w, max_rows=1000)))
    np.testing.assert_array_equal(np.concatenate(chunks), whole)  # same numbers, any chunking
    with pytest.raises(ValueError, match="exceeds the context 256"):
        list(gg.logits([Window(np.zeros(300, np.int64), 1)], max_rows=8))
    with pytest.raises(ValueError, match="empty context"):
        list(gg.logits([Window(ids[:5], 0)], max_rows=8))


def test_decoder_equals_scoring_and_transformers_greedy(gg, hf) -> None:  # type: ignore[no-untyped-def]
    from infolens.generation import generate

    prefix = np.concatenate([[gg.bos_id], gg.tokenize("The JSON module").ids])
    d = gg.start_decoder(prefix, 3)
    ref = WindowDecoder(gg, prefix, 3)
    for step in ([5, 6, 7], [8, 8, 8], [100, 200, 300]):
        np.testing.assert_allclose(d.next_logits(), ref.next_logits(), rtol=1e-5, atol=1e-4)
        d.append(np.array(step))
        ref.append(np.array(step))
    assert d.length == ref.length == prefix.shape[0] + 3
    a = generate(gg, "The JSON module", n=2, max_new_tokens=8, greedy=True)
    b = generate(hf, "The JSON module", n=2, max_new_tokens=8, greedy=True)
    assert [s.token_ids.tolist() for s in a] == [s.token_ids.tolist() for s in b]
    np.testing.assert_allclose(a[0].logprob_model, b[0].logprob_model, rtol=1e-5, atol=1e-4)
    c = generate(gg, "The JSON module", n=3, max_new_tokens=6, seed=1)
    assert all(len(s.token_ids) >= 1 for s in c) and isinstance(c[0].text, str)


def test_decoder_stops_at_the_context(tiny_gguf) -> None:  # type: ignore[no-untyped-def]
    with load_model(f"gguf:{tiny_gguf},n_ctx=8") as m:
        d = m.start_decoder(np.arange(3, 9), 2)
        d.append(np.array([5, 5]))
        d.append(np.array([5, 5]))
        with pytest.raises(ContextFull):
            d.append(np.array([5, 5]))
        with pytest.raises(ContextFull):
            m.start_decoder(np.arange(3, 13), 1)


def _compare(model: str, base: str, doc: Path) -> dict:  # type: ignore[type-arg]
    r = CliRunner().invoke(main, ["compare", str(doc), "--model", model, "--base", base,
                                  "--max-length", "128", "--json", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_quantised_copies_against_the_transformers_original(
    tiny_gguf, tiny_gguf_q8, tiny_gguf_q4k, tiny_llama_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT, encoding="utf-8")
    base = f"hf:{tiny_llama_dir}"
    f32 = _compare(f"gguf:{tiny_gguf}", base, doc)
    q8 = _compare(f"gguf:{tiny_gguf_q8}", base, doc)
    q4 = _compare(f"gguf:{tiny_gguf_q4k}", base, doc)
    assert f32["tokens"] == q8["tokens"] == q4["tokens"] > 500
    assert f32["kl_base_model"] < 1e-8  # the same weights: the same distributions
    assert 1e-6 < q8["kl_base_model"] < 0.05
    assert q8["kl_base_model"] < q4["kl_base_model"] < 1.0
    assert tiny_gguf_q8.stat().st_size < tiny_gguf.stat().st_size / 3


def test_score_cli_and_spec_options(tiny_gguf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.txt"
    doc.write_text(TEXT, encoding="utf-8")
    r = CliRunner().invoke(main, ["score", str(doc), "--model", f"gguf:{tiny_gguf},n_ctx=64",
                                  "--json", "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["max_length"] == 64 and out["tokens"] > 500 and out["perplexity"] > 1


def test_bad_input_is_one_clear_line(tiny_gguf, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no such file"):
        load_model(f"gguf:{tmp_path / 'missing.gguf'}")
    notgguf = tmp_path / "x.gguf"
    notgguf.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(InputError, match=r"expected a GGUF file \(magic b'GGUF'\), got b'PK"):
        load_model(f"gguf:{notgguf}")
    with pytest.raises(ModelSpecError, match="n_ctx: expected an integer, got 'big'"):
        load_model(f"gguf:{tiny_gguf},n_ctx=big")
    with pytest.raises(ModelSpecError, match="unknown option 'dtype'"):
        load_model(f"gguf:{tiny_gguf}", dtype="float32")
    with pytest.raises(InputError, match="kv_type: expected one of f16, f32, got 'q8'"):
        load_model(f"gguf:{tiny_gguf},kv_type=q8")
    with pytest.raises(ModelSpecError, match=r"expected a \.gguf file"):
        load_model("gguf:")
    r = CliRunner().invoke(main, ["score", str(notgguf), "--model", f"gguf:{notgguf}"])
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1, r.output


def test_vocab_only_is_a_tokenizer(tiny_gguf, gg) -> None:  # type: ignore[no-untyped-def]
    with load_model(f"gguf:{tiny_gguf}", vocab_only=True) as t:
        np.testing.assert_array_equal(t.tokenize(TEXT).ids, gg.tokenize(TEXT).ids)
        with pytest.raises(ValueError, match="vocab_only"):
            list(t.logits([Window(np.arange(5), 1)], max_rows=4))


def _perplexity_cpp(path: Path, text: str, n_ctx: int, stride: int | None) -> tuple[float, int]:
    """``tools/perplexity/perplexity.cpp`` (llama.cpp's ``perplexity`` and
    ``perplexity_v2``) re-done on llama-cpp-python's ``Llama.eval``, as read from the source
    in llama-cpp-python's sdist: an independent check of :mod:`infolens.llamacpp_ppl`."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                          logits_all=True, type_k=0, type_v=0, flash_attn=False, n_threads=1,
                          verbose=False)  # fmt: skip
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)  # common_tokenize(.., true)
    nll, count = 0.0, 0

    def score(window: list[int], first: int) -> None:
        nonlocal nll, count
        llm.reset()
        llm.eval(window)
        for j in range(first, len(window) - 1):
            row = llm.scores[j].astype(np.float64)
            nll += float(np.logaddexp.reduce(row) - row[window[j + 1]])
            count += 1

    if stride is None:
        for c in range(len(tokens) // n_ctx):
            chunk = tokens[c * n_ctx : (c + 1) * n_ctx]
            chunk[0] = llm.token_bos()
            score(chunk, n_ctx // 2)
    else:
        for i in range((len(tokens) - n_ctx + stride - 1) // stride):
            score(tokens[i * stride : i * stride + n_ctx], n_ctx - stride - 1)
    llm.close()
    return float(np.exp(nll / count)), count


@pytest.mark.parametrize("n_ctx,stride", [(64, None), (100, None), (64, 16), (50, 49)])
def test_llama_perplexity_reproduces_perplexity_cpp(gg, hf, tiny_gguf, n_ctx, stride) -> None:  # type: ignore[no-untyped-def]
    from infolens.llamacpp_ppl import llama_perplexity

    ref, count = _perplexity_cpp(tiny_gguf, TEXT, n_ctx, stride)
    mine = llama_perplexity(gg, TEXT, n_ctx, stride=stride)
    assert mine.tokens == count
    assert mine.perplexity == pytest.approx(ref, rel=1e-5)
    # the transformers original under llama.cpp's recipe: the same number
    assert llama_perplexity(hf, TEXT, n_ctx, stride=stride).perplexity == pytest.approx(
        ref, rel=1e-5
    )
    with pytest.raises(InputError, match="needs at least"):
        llama_perplexity(gg, TEXT[:50], n_ctx, stride=stride)


def test_missing_engine_names_the_extra(tiny_gguf, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed
    with pytest.raises(
        InputError, match=r"needs llama-cpp-python \(pip install 'infolens\[gguf\]'\)"
    ):
        load_model(f"gguf:{tiny_gguf}")
    monkeypatch.setitem(sys.modules, "httpx", None)
    from infolens.models.openai import OpenAIModel

    with pytest.raises(InputError, match=r"needs httpx \(pip install 'infolens\[openai\]'\)"):
        OpenAIModel("http://127.0.0.1:9/v1", "m", object())


def test_decoder_shared_cache_fills_then_stops(tiny_gguf, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import infolens.models.gguf as gguf_mod

    monkeypatch.setattr(gguf_mod, "DECODER_ROOM", 4)
    with load_model(f"gguf:{tiny_gguf},n_ctx=256") as m:
        d = m.start_decoder(np.arange(3, 9), 3)  # 256 + 2 x 4 cells (llama.cpp pads to 512)
        steps = 0
        with pytest.raises(ContextFull):
            for _ in range(1000):
                d.append(np.array([5, 6, 7]))
                steps += 1
        assert 0 < steps < 250  # the shared cache, not n x n_ctx, bounded the run
