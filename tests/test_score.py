"""Scoring (infolens.score) against a plain slow reference of docs/scoring.md, and the CLI."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from infolens.cli import main
from infolens.errors import InputError
from infolens.models.base import Tokenized
from infolens.models.hf import HFModel
from infolens.score import Document, read_documents, resolve_settings, score_documents
from test_windows import lm_eval_make_disjoint_window, lm_eval_rolling_windows

TEXT = (
    "Return a new list containing all items from the iterable in ascending order. "
    "A custom key function can be supplied to customize the sort order, and the reverse "
    "flag can be set to request the result in descending order. Naïve café — 數學 ✓. "
) * 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference_nll(hf_model, ids, L, S, bos, bos_id):
    """Item 2 of the definition, as plainly as possible: one forward per window on the
    full logits, log_softmax in float64, each token taken from the first window that can
    predict it."""
    t = [int(i) for i in ids]
    if bos == "first":
        x, per, prefix, lowest, off = [bos_id, *t], L, False, 1, 1
    elif bos == "none":
        x, per, prefix, lowest, off = t, L, False, 1, 0
    else:
        x, per, prefix, lowest, off = t, L - 1, True, 0, 0
    m = len(x)
    if m == 0:
        return 0.0, 0
    if m - 1 <= per:
        starts = [0]
    else:
        starts = []
        a = 0
        while a + per < m - 1:
            starts.append(a)
            a += S
        starts.append(m - 1 - per)
    done: set[int] = set()
    total = 0.0
    for a in starts:
        inp = x[a : a + per]
        if prefix:
            inp = [bos_id, *inp]
        with torch.no_grad():
            logits = hf_model(input_ids=torch.tensor([inp])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        assert logits.shape[0] <= L
        for i in range(len(inp)):
            p = a + i if prefix else a + i + 1
            if p < lowest or p >= m or p in done:
                continue
            done.add(p)
            total -= float(logp[i, x[p]])
    assert done == set(range(lowest, m)), "the definition predicts every token once"
    del off
    return total, len(done)


def _text_with_tokens(model, n):
    """A prefix of TEXT that tokenises to exactly n tokens."""
    for k in range(len(TEXT) + 1):
        if len(model.tokenize(TEXT[:k])) == n:
            return TEXT[:k]
    raise AssertionError(f"no prefix with {n} tokens")


@pytest.fixture(scope="module")
def docs_by_len(tiny_hf):
    return {n: _text_with_tokens(tiny_hf, n) for n in (1, 8, 9, 16, 17, 40)}


@pytest.mark.parametrize("bos", ["first", "none", "every"])
@pytest.mark.parametrize(("L", "S"), [(8, 8), (8, 4), (8, 1), (16, 5), (16, 16)])
def test_total_nll_equals_reference(tiny_hf, docs_by_len, bos, L, S):
    docs = [Document(f"n{n}", text) for n, text in docs_by_len.items()]
    res = score_documents(tiny_hf, docs, max_length=L, stride=S, bos=bos)
    total, count = 0.0, 0
    for d, doc in zip(res.documents, docs):
        ids = tiny_hf.tokenize(doc.text).ids
        ref, k = reference_nll(tiny_hf.model, ids, L, S, bos, tiny_hf.bos_id)
        assert d.metrics["tokens"] == k
        assert d.metrics["nll_nats"] == pytest.approx(ref, rel=2e-5, abs=1e-6)
        total += ref
        count += k
    assert res.metrics["tokens"] == count
    assert res.metrics["nll_nats"] == pytest.approx(total, rel=2e-5)
    assert res.metrics["perplexity"] == pytest.approx(math.exp(total / count), rel=2e-5)


def test_stride_L_equals_lm_eval_rolling_loglikelihood(tiny_hf, docs_by_len):
    L = 8
    text = docs_by_len[40]
    t = [int(i) for i in tiny_hf.tokenize(text).ids]
    loglik = 0.0
    for ctx, cont in map(
        lm_eval_make_disjoint_window, lm_eval_rolling_windows(t, tiny_hf.bos_id, L, 1)
    ):
        full = ctx + cont
        with torch.no_grad():
            logp = torch.log_softmax(
                tiny_hf.model(input_ids=torch.tensor([full[:-1]])).logits[0].double(), -1
            )
        k = len(cont)
        rows = logp[-k:]
        loglik += float(rows[torch.arange(k), torch.tensor(cont)].sum())
    res = score_documents(tiny_hf, [Document("d", text)], max_length=L, stride=L, bos="first")
    assert res.metrics["nll_nats"] == pytest.approx(-loglik, rel=1e-5)


def test_batch_size_and_chunking_invariance(tiny_hf, docs_by_len):
    docs = [Document(str(n), t) for n, t in docs_by_len.items()]
    base = score_documents(tiny_hf, docs, max_length=8, stride=3)
    for bs, rows, wb in [(1, 1, 1), (5, 7, 3), (16, 1000, 64)]:
        other = HFModel(tiny_hf.model, tiny_hf.tokenizer, tiny_hf.name, batch_size=bs, verify=False)
        r = score_documents(other, docs, max_length=8, stride=3, max_rows=rows, window_batch=wb)
        assert r.metrics["tokens"] == base.metrics["tokens"]
        assert r.metrics["nll_nats"] == pytest.approx(base.metrics["nll_nats"], rel=1e-5)
        for a, b in zip(r.documents, base.documents):
            assert a.metrics["nll_nats"] == pytest.approx(b.metrics["nll_nats"], rel=1e-5, abs=1e-6)


def test_bfloat16_close_to_float32(tiny_hf_dir, tiny_hf, docs_by_len):
    from infolens.models import load_model

    bf = load_model(f"hf:{tiny_hf_dir}", device="cpu", dtype="bfloat16")
    docs = [Document("d", docs_by_len[40])]
    a = score_documents(tiny_hf, docs, max_length=16).metrics
    b = score_documents(bf, docs, max_length=16).metrics
    assert b["tokens"] == a["tokens"]
    assert b["bits_per_token"] == pytest.approx(a["bits_per_token"], rel=0.02)
    assert b["mean_entropy_bits"] == pytest.approx(a["mean_entropy_bits"], rel=0.02)


def test_merge_shards_equals_one_pass(tiny_hf, docs_by_len):
    docs = [Document(str(n), t) for n, t in docs_by_len.items()]
    one = score_documents(tiny_hf, docs, max_length=8, stride=4)
    a = score_documents(tiny_hf, docs[::2], max_length=8, stride=4)
    b = score_documents(tiny_hf, docs[1::2], max_length=8, stride=4)
    merged = b.merge(a)
    # per-token numbers are the same floats whatever the grouping of windows is only
    # if the forward passes batch identically; compare the exact states of identical runs
    assert merged.stats.documents == one.stats.documents
    assert merged.metrics["nll_nats"] == pytest.approx(one.metrics["nll_nats"], rel=1e-6)
    # exactness of merging itself: state of the merge == state from the parts in any order
    again = a.merge(b)
    assert again.stats.same_state(merged.stats)
    assert again.to_dict()["perplexity"] == merged.to_dict()["perplexity"]


def test_merge_bit_for_bit_with_deterministic_model():
    model = FakeBytes()
    docs = [Document(f"d{k}", TEXT[k * 7 : k * 7 + 50 * k]) for k in range(6)]
    one = score_documents(model, docs, block_tokens=16)
    parts = [score_documents(model, docs[k::3], block_tokens=16) for k in range(3)]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    assert merged.stats.same_state(one.stats)
    assert merged.metrics == one.metrics


def test_empty_and_one_token_documents(tiny_hf):
    res = score_documents(tiny_hf, [Document("e", ""), Document("x", "x")], bos="none")
    e, x = res.documents
    assert e.metrics["tokens"] == 0 and e.metrics["perplexity"] is None
    assert x.metrics["tokens"] == 0  # t_1 is not predicted without BOS
    assert res.stats.empty_documents == 2
    assert res.to_dict()["perplexity"] is None


def test_per_token_callback(tiny_hf, docs_by_len):
    rows = []
    text = docs_by_len[40]
    res = score_documents(
        tiny_hf, [Document("d", text)], max_length=8, ranks=True, on_rows=rows.append
    )
    pos = np.concatenate([r.positions for r in rows])
    assert pos.tolist() == list(range(40))
    assert math.fsum(np.concatenate([r.surprisal_nats for r in rows]).tolist()) == pytest.approx(
        res.metrics["nll_nats"], rel=1e-12
    )
    data = text.encode()
    spans = np.concatenate([r.offsets for r in rows])
    assert b"".join(data[a:b] for a, b in spans).startswith(data[: spans[0][1]])
    assert all(r.rank is not None and (r.rank >= 1).all() for r in rows)


# ----------------------------------------------------------------- a byte-level fake


class FakeBytes:
    """Deterministic byte-level bigram model: predicts_first, unbounded context."""

    name = "fake-bytes"
    bos_id = None
    vocab_size = 256
    max_context = None
    predicts_first = True
    byte_level = True

    def __init__(self) -> None:
        self.table = np.random.default_rng(0).normal(0, 2, size=(257, 256))

    def tokenize(self, text):
        data = text if isinstance(text, bytes) else text.encode()
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        k = np.arange(ids.size, dtype=np.int64)
        return Tokenized(ids, np.stack([k, k + 1], axis=1).reshape(-1, 2))

    def logits(self, windows, *, max_rows):
        rows = []
        for w in windows:
            for j in range(w.start, len(w.ids)):
                rows.append(self.table[256 if j == 0 else w.ids[j - 1]])
        for lo in range(0, len(rows), max_rows):
            yield np.array(rows[lo : lo + max_rows])

    def reference(self, data: bytes) -> float:
        prev, total = 256, 0.0
        for b in data:
            row = self.table[prev]
            total += float(np.logaddexp.reduce(row) - row[b])
            prev = b
        return total


def test_predicts_first_and_compressors():
    m = FakeBytes()
    data = TEXT.encode()
    res = score_documents(m, [Document("d", TEXT)])
    assert res.settings.bos == "none" and res.settings.max_length is None
    assert res.metrics["tokens"] == len(data)  # every byte, the first from the empty context
    assert res.metrics["nll_nats"] == pytest.approx(m.reference(data), rel=1e-12)
    comp = res.to_dict()["compressors"]
    assert set(comp) == {"gzip_9", "bz2_9", "xz_9e"}
    assert 0 < comp["gzip_9"]["bits_per_byte"] < 8


# ----------------------------------------------------------------- settings and inputs


def test_settings_errors(tiny_hf):
    with pytest.raises(
        InputError, match=r"--max-length: 100 exceeds the context of model hf:.* \(64 positions\)"
    ):
        resolve_settings(tiny_hf, max_length=100)
    with pytest.raises(InputError, match="--stride"):
        resolve_settings(tiny_hf, max_length=8, stride=9)
    with pytest.raises(InputError, match="no BOS token"):
        resolve_settings(FakeBytes(), bos="first")
    s = resolve_settings(tiny_hf)
    assert (s.max_length, s.stride, s.bos) == (64, 32, "first")


def test_input_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff world")
    with pytest.raises(InputError, match=r"bad.txt: invalid UTF-8 at byte offset 6"):
        list(read_documents([str(bad)]))
    # byte-level models accept any bytes
    (doc,) = read_documents([str(bad)], allow_bytes=True)
    assert doc.text == b"hello \xff world"
    with pytest.raises(InputError, match=r"missing\.txt: no such file"):
        list(read_documents([str(tmp_path / "missing.txt")]))
    with pytest.raises(InputError, match="is a directory; pass --glob"):
        list(read_documents([str(tmp_path)]))
    if os.geteuid() != 0:
        locked = tmp_path / "locked.txt"
        locked.write_text("x")
        locked.chmod(0)
        with pytest.raises(InputError, match=r"locked\.txt: cannot read"):
            list(read_documents([str(locked)]))
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"text": "a"}\n\n{"body": "b"}\n')
    with pytest.raises(InputError, match=r"d.jsonl:3: expected a JSON object with field 'text'"):
        list(read_documents([str(jl)], jsonl_field="text"))
    jl.write_bytes(b'{"text": "a"}\n{"text": "\xc3("}\n')
    with pytest.raises(InputError, match=r"d.jsonl:2: invalid UTF-8 at byte offset 24"):
        list(read_documents([str(jl)], jsonl_field="text"))


def test_read_documents_forms(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.md").write_text("beta")
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"text": "x"}\n{"text": "y"}\n')
    got = list(read_documents([str(tmp_path)], glob="*.txt"))
    assert [d.text for d in got] == ["alpha"]
    got = list(read_documents([str(jl)], jsonl_field="text"))
    assert [(d.name.rsplit(":", 1)[1], d.text) for d in got] == [("1", "x"), ("2", "y")]
    import io

    (d,) = read_documents(["-"], stdin=io.BytesIO(b"from stdin"))
    assert (d.name, d.text) == ("<stdin>", "from stdin")


# ----------------------------------------------------------------- CLI


def test_cli_json_equals_library(tiny_hf_dir, tiny_hf, tmp_path, docs_by_len):
    f1 = tmp_path / "one.txt"
    f1.write_text(docs_by_len[40])
    f2 = tmp_path / "empty.txt"
    f2.write_text("")
    args = [
        "score",
        "--model",
        f"hf:{tiny_hf_dir}",
        "--max-length",
        "16",
        "--stride",
        "8",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--json",
        str(f1),
        str(f2),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    lib = score_documents(
        tiny_hf, read_documents([str(f1), str(f2)]), max_length=16, stride=8
    ).to_dict()
    for key in (
        "perplexity",
        "nll_nats",
        "tokens",
        "bits_per_token",
        "bytes",
        "bits_per_byte",
        "characters",
        "words",
        "word_perplexity",
        "mean_entropy_bits",
        "mean_surprisal_bits",
        "calibration_gap_bits",
        "perplexity_ci95_iid",
        "perplexity_ci95_batch_means",
        "model",
        "max_length",
        "stride",
        "bos",
        "documents",
        "compressors",
    ):
        assert key in out
    assert out["tokens"] == lib["tokens"]
    assert out["nll_nats"] == pytest.approx(lib["nll_nats"], rel=1e-6)
    assert (out["max_length"], out["stride"], out["bos"]) == (16, 8, "first")
    assert out["documents"][1]["tokens"] == 0 and out["documents"][1]["perplexity"] is None
    assert "empty.txt: empty document" in r.stderr


def test_cli_table_and_errors(tiny_hf_dir, tmp_path):
    f = tmp_path / "t.txt"
    f.write_text(TEXT)
    r = CliRunner().invoke(main, ["score", "--model", f"hf:{tiny_hf_dir}", "--quiet", str(f)])
    assert r.exit_code == 0, r.output
    assert "perplexity" in r.stdout and "bits per byte" in r.stdout
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok \xe9 no")
    r = CliRunner().invoke(main, ["score", "--model", f"hf:{tiny_hf_dir}", str(bad)])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"infolens: error: {bad}: invalid UTF-8 at byte offset 3 "
        "(only byte-level models such as 'ngram' accept arbitrary bytes)"
    ]
    r = CliRunner().invoke(
        main, ["score", "--model", f"hf:{tiny_hf_dir}", "--max-length", "65", str(f)]
    )
    assert r.exit_code == 2 and "exceeds the context" in r.stderr and "Traceback" not in r.stderr
    r = CliRunner().invoke(main, ["score", "--model", "hf:no-such-org/no-such-model", str(f)])
    assert r.exit_code == 2 and "--allow-download" in r.stderr
    r = CliRunner().invoke(main, ["score", "--dtype", "float32", str(f)])
    assert r.exit_code == 2 and "only apply to hf: models" in r.stderr


def test_cli_default_ngram_model(tmp_path):
    f = tmp_path / "r.md"
    f.write_bytes(TEXT.encode() + b"\xff tail")  # invalid UTF-8 is fine for byte-level models
    r = CliRunner().invoke(main, ["score", "--json", "--quiet", str(f)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["model"].startswith("ngram") and out["bos"] == "none" and out["max_length"] is None
    assert out["tokens"] == out["bytes"] == len(TEXT.encode()) + 6
    assert set(out["compressors"]) == {"gzip_9", "bz2_9", "xz_9e"}
    r = CliRunner().invoke(main, ["score", "--quiet", str(f)])
    assert "xz -9e" in r.stdout


@pytest.mark.parametrize("pattern", ["/tmp/*", ""])
def test_invalid_glob_is_an_input_error_naming_glob(tmp_path, pattern: str) -> None:
    (tmp_path / "a.txt").write_text("abc")
    with pytest.raises(InputError, match=r"^--glob .*: expected a relative pattern"):
        list(read_documents([str(tmp_path)], glob=pattern))


def test_bytes_documents_are_decoded_for_token_models(tiny_hf):
    as_str = score_documents(tiny_hf, [Document("a", TEXT)], max_length=16, stride=8)
    as_bytes = score_documents(tiny_hf, [Document("a", TEXT.encode())], max_length=16, stride=8)
    assert as_bytes.to_dict() == as_str.to_dict()
    with pytest.raises(InputError, match=r"^bad: invalid UTF-8 at byte offset 1 "):
        score_documents(tiny_hf, [Document("bad", b"a\xff")])
    with pytest.raises(TypeError, match="expects str"):
        tiny_hf.tokenize(b"abc")


def test_merge_with_and_without_compressors():
    from infolens.models import load_model

    m = load_model("ngram")
    a = score_documents(m, [Document("a", "abc abc abc")])
    b = score_documents(m, [Document("b", "xyz xyz")])
    merged = a.merge(b)
    assert merged.compressors is not None and merged.compressors.input_bytes == 18
    assert a.compressors is not None and a.compressors.input_bytes == 11  # not modified
    c = score_documents(m, [Document("c", "xyz")], compressors=False)
    with pytest.raises(ValueError, match="compressor totals or neither"):
        a.merge(c)


def test_binary_documents_have_no_word_figures():
    """Not valid UTF-8 => binary: scored as bytes, words and word perplexity null; the other
    documents keep theirs, and the corpus word figures are null as soon as one is binary."""
    from infolens.models import load_model
    from infolens.score import is_binary

    m = load_model("ngram")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    text = "to be or not to be"
    nul = b"a\x00b c"  # valid UTF-8 with a NUL byte: text by the documented rule
    assert [is_binary(x) for x in (png, text, nul, text.encode())] == [True, False, False, False]
    alone = score_documents(m, [Document("t", text)], compressors=False)
    mixed = score_documents(m, [Document("t", text), Document("p", png)], compressors=False)
    t, p = mixed.documents
    assert (t.binary, p.binary, mixed.binary_documents) == (False, True, 1)
    assert t.metrics == alone.documents[0].metrics  # a binary neighbour changes nothing
    assert t.metrics["words"] == len(text.split()) == 6
    assert t.metrics["word_perplexity"] == pytest.approx(math.exp(t.metrics["nll_nats"] / 6))
    assert p.metrics["words"] is None and p.metrics["word_perplexity"] is None
    assert p.metrics["bytes"] == p.metrics["tokens"] == len(png)  # one token per raw byte
    c = mixed.metrics
    assert c["words"] is None and c["word_perplexity"] is None
    assert c["bytes"] == len(text) + len(png)
    d = mixed.to_dict()
    assert d["binary_documents"] == 1 and [x["binary"] for x in d["documents"]] == [False, True]
    assert alone.to_dict()["binary_documents"] == 0 and alone.metrics["words"] == 6
    # merging a shard with a binary document keeps the rule
    merged = alone.merge(score_documents(m, [Document("p", png)], compressors=False))
    assert merged.binary_documents == 1 and merged.metrics["word_perplexity"] is None
    # valid UTF-8 given as bytes (and with a NUL) is text: words counted
    r = score_documents(m, [Document("n", nul), Document("u", text.encode())], compressors=False)
    assert r.binary_documents == 0 and r.metrics["words"] == 2 + 6
