"""``infolens.uncertainty`` (issue 14 item 2): semantic entropy against hand computation
and a plain reimplementation of the reference code, greedy bidirectional clustering, the
embedding and NLI equivalences (a tiny classifier built here, nothing downloaded), the
white-box measures against the Sample fields, and ``infolens semantic-entropy``."""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from infolens.errors import InputError
from infolens.generation import generate
from infolens.models import load_model
from infolens.models.base import WindowDecoder
from infolens.uncertainty import (
    cluster_answers,
    embedding_equivalence,
    nli_equivalence,
    normalize_answer,
    prompt_information,
    semantic_entropy,
    sequence_uncertainties,
)

LN = math.log


# ----------------------------------------------------------------- semantic entropy
def test_hand_computed_set_with_duplicates() -> None:
    answers = ["Paris", "paris.", "Lyon", "Paris"]
    p = [0.4, 0.2, 0.3, 0.1]
    se = semantic_entropy(answers, [LN(x) for x in p])
    assert se.clusters == [[0, 1, 3], [2]]
    np.testing.assert_allclose(se.cluster_probabilities, [0.7, 0.3], rtol=1e-12)
    assert se.semantic_entropy == pytest.approx(-(0.7 * LN(0.7) + 0.3 * LN(0.3)), rel=1e-12)
    assert se.semantic_entropy_mc == pytest.approx(-(3 * LN(0.7) + LN(0.3)) / 4, rel=1e-12)
    assert se.discrete_semantic_entropy == pytest.approx(
        -(0.75 * LN(0.75) + 0.25 * LN(0.25)), rel=1e-12
    )
    assert se.predictive_entropy == pytest.approx(-sum(LN(x) for x in p) / 4, rel=1e-12)
    assert se.unit == "nats" and se.n_clusters == 2
    b = semantic_entropy(answers, [LN(x) for x in p], base=2)
    assert b.unit == "bits"
    for k in ("semantic_entropy", "semantic_entropy_mc", "discrete_semantic_entropy",
              "predictive_entropy"):  # fmt: skip
        assert getattr(b, k) == pytest.approx(getattr(se, k) / LN(2), rel=1e-12)


def test_duplicates_never_push_a_probability_above_one() -> None:
    # three copies of a sequence of probability 0.9: summed, 2.7; normalised, 1
    se = semantic_entropy(["A", "A", "A"], [LN(0.9)] * 3)
    assert se.cluster_probabilities == [1.0]
    assert se.semantic_entropy == 0.0 and se.semantic_entropy_mc == 0.0
    assert se.discrete_semantic_entropy == 0.0
    se = semantic_entropy(["A", "a", "B"], [-0.1, -0.1, -0.1])
    np.testing.assert_allclose(se.cluster_probabilities, [2 / 3, 1 / 3], rtol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 12))
        ans = [str(x) for x in rng.integers(0, 4, n)]
        lp = rng.normal(-3, 2, n) if rng.random() < 0.5 else np.zeros(n)  # 0: p = 1 each
        se = semantic_entropy(ans, lp)
        assert all(0 <= q <= 1 for q in se.cluster_probabilities)
        assert sum(se.cluster_probabilities) == pytest.approx(1, abs=1e-12)
        assert se.semantic_entropy >= 0 and se.semantic_entropy_mc >= -1e-12


def _reference(semantic_ids: list[int], lls: np.ndarray) -> tuple[float, float, float, float]:
    """A plain transcription of the reference's definitions (logsumexp_by_id with
    'sum_normalized', predictive_entropy_rao, predictive_entropy, cluster_assignment_entropy)
    plus the Monte-Carlo estimate over samples."""
    per_id = []
    for uid in sorted(set(semantic_ids)):
        idx = [i for i, x in enumerate(semantic_ids) if x == uid]
        norm = lls[idx] - np.log(np.sum(np.exp(lls)))
        per_id.append(np.log(np.sum(np.exp(norm))))
    per = np.array(per_id)
    rao = -np.sum(np.exp(per) * per)
    mc = -np.mean([per[s] for s in semantic_ids])
    naive = -np.sum(lls) / len(lls)
    prob = np.bincount(semantic_ids) / len(semantic_ids)
    disc = -(prob * np.log(prob)).sum()
    return float(rao), float(mc), float(naive), float(disc)


def test_rao_and_mc_against_a_plain_reimplementation() -> None:
    rng = np.random.default_rng(1)
    words = ["yes", "Yes.", "no", "NO", "maybe", "  yes "]
    for _ in range(30):
        n = int(rng.integers(1, 15))
        ans = [words[k] for k in rng.integers(0, len(words), n)]
        lls = rng.normal(-1.5, 1.0, n)  # length-normalised log-likelihoods, say
        keys: dict[str, int] = {}
        ids = [keys.setdefault(normalize_answer(a), len(keys)) for a in ans]
        rao, mc, naive, disc = _reference(ids, lls)
        se = semantic_entropy(ans, lls)
        assert se.semantic_entropy == pytest.approx(rao, rel=1e-10, abs=1e-12)
        assert se.semantic_entropy_mc == pytest.approx(mc, rel=1e-10, abs=1e-12)
        assert se.predictive_entropy == pytest.approx(naive, rel=1e-12)
        assert se.discrete_semantic_entropy == pytest.approx(disc, rel=1e-10, abs=1e-12)


def test_normalisation_for_exact_match() -> None:
    assert normalize_answer("  The   Eiffel\tTower !! ") == "the eiffel tower"
    assert normalize_answer("U.S.") == "u.s"
    assert normalize_answer("...") == ""
    assert normalize_answer("東京。") == "東京"
    assert cluster_answers(["Paris", "London", "paris.", "PARIS", "Paris France"]) == [
        [0, 2, 3], [1], [4]
    ]  # fmt: skip


def test_greedy_order_joins_the_first_representative() -> None:
    def near(a: str, b: str) -> bool:  # symmetric but not transitive
        return abs(len(a) - len(b)) <= 1

    assert cluster_answers(["aa", "aaa", "aaaa", "a"], near) == [[0, 1, 3], [2]]
    # "aaa" is near both representatives "aa" and "aaaa": it joins the first one
    assert cluster_answers(["aa", "aaaa", "aaa"], near) == [[0, 2], [1]]
    # compared with the representative only: "aaaa" is near "aaa" but not "aa"
    assert cluster_answers(["aa", "aaa", "aaaa"], near) == [[0, 1], [2]]


def test_equivalence_must_hold_both_ways() -> None:
    calls: list[tuple[str, str]] = []

    def implies(a: str, b: str) -> bool:  # "Paris" -> "Paris, France", not back
        calls.append((a, b))
        return b.startswith(a)

    se = semantic_entropy(["Paris", "Paris, France", "Paris"], [-1.0, -1.0, -1.0], implies)
    assert se.clusters == [[0, 2], [1]]
    assert ("Paris", "Paris, France") in calls and ("Paris, France", "Paris") in calls
    assert semantic_entropy(["x", "y"], [0.0, 0.0], lambda a, b: True).clusters == [[0, 1]]


def test_embedding_equivalence_with_a_toy_embedding() -> None:
    table = {"cat": [1.0, 0.0], "kitty": [0.99, 0.141], "dog": [0.0, 1.0], "pup": [0.3, 0.95]}
    calls: list[list[str]] = []

    def embed(xs: list[str]) -> np.ndarray:
        calls.append(list(xs))
        return np.array([table[x] for x in xs])

    eq = embedding_equivalence(embed, threshold=0.9)
    ans = ["cat", "dog", "kitty", "cat", "pup"]
    se = semantic_entropy(ans, [-1.0, -2.0, -1.5, -1.0, -0.5], eq)
    assert se.clusters == [[0, 2, 3], [1, 4]]
    assert calls == [["cat", "dog", "kitty", "pup"]]  # each distinct answer once, one call
    cos = 0.99 / math.hypot(0.99, 0.141)
    assert eq.similarity("cat", "kitty") == pytest.approx(cos, rel=1e-12)
    assert eq("kitty", "cat") and not eq("cat", "dog")
    assert semantic_entropy(ans, np.zeros(5), embedding_equivalence(embed, 0.999)).n_clusters == 4
    with pytest.raises(InputError, match="threshold"):
        embedding_equivalence(embed, threshold=1.5)
    with pytest.raises(InputError, match="embed"):
        semantic_entropy(["a", "b"], [0, 0], embedding_equivalence(lambda xs: np.zeros((1, 2))))


def test_bad_input_is_one_clear_error() -> None:
    cases = [
        (([], []), "answers: expected at least one"),
        (("abc", [0.0]), "answers: expected a list"),
        ((["a", 3], [0.0, 0.0]), r"answers\[1\]"),
        ((["a", "b"], [0.0]), "logprobs: expected 2 numbers"),
        ((["a", "b"], [0.0, float("nan")]), r"logprobs\[1\]"),
        ((["a", "b"], [0.0, float("inf")]), r"logprobs\[1\]"),
        ((["a", "b"], [-math.inf, -math.inf]), "all -inf"),
        ((["a", "b"], ["x", "y"]), "logprobs"),
    ]
    for args, msg in cases:
        with pytest.raises(InputError, match=msg):
            semantic_entropy(*args)
    with pytest.raises(InputError, match="equivalent"):
        semantic_entropy(["a"], [0.0], "fuzzy")
    with pytest.raises(InputError, match="equivalent: expected a function returning a bool"):
        semantic_entropy(["a", "b"], [0.0, 0.0], lambda a, b: 0.9)
    with pytest.raises(InputError, match="base"):
        semantic_entropy(["a"], [0.0], base=1)


def test_minus_infinity_is_an_answer_of_probability_zero() -> None:
    se = semantic_entropy(["a", "b", "a"], [LN(0.5), -math.inf, LN(0.5)])
    assert se.cluster_probabilities == [1.0, 0.0]
    assert se.semantic_entropy == 0.0  # 0 log 0 = 0
    assert se.semantic_entropy_mc == math.inf and se.predictive_entropy == math.inf
    assert se.discrete_semantic_entropy == pytest.approx(-(2 / 3 * LN(2 / 3) + LN(1 / 3) / 3))


# ----------------------------------------------------------------- NLI
def _tiny_nli(id2label: dict[int, str], favour: int):  # type: ignore[no-untyped-def]
    """A 1-layer BERT classifier whose output is always ``favour`` (zero weights, one
    large bias), and a word-level tokenizer built here."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "paris", "lyon", "the", "capital", "is", "france"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                        num_labels=3, id2label=id2label,
                        label2id={v: k for k, v in id2label.items()})  # fmt: skip
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0 if i == favour else 0.0 for i in range(3)]))
    return model, fast


def test_nli_reads_the_entailment_id_from_the_config_and_caches_pairs() -> None:
    pytest.importorskip("transformers")
    labels = {0: "contradiction", 1: "neutral", 2: "ENTAILMENT"}
    model, tok = _tiny_nli(labels, favour=2)
    forwards = []
    model.register_forward_hook(lambda m, i, o: forwards.append(1))
    eq = nli_equivalence(model, tok, batch_size=16)
    assert eq.entailment_id == 2
    ans = ["paris", "the capital is paris", "paris", "lyon"]
    se = semantic_entropy(ans, [-1.0, -1.0, -1.0, -1.0], eq)
    assert se.clusters == [[0, 1, 2, 3]]  # argmax is always 2 = entailment
    # answer 1: (r, a) and (a, r) in one batch; answer 2: ("paris", "paris") once; answer 3: two
    assert len(forwards) == 3
    assert set(eq.cache) == {("paris", "the capital is paris"), ("the capital is paris", "paris"),
                             ("paris", "paris"), ("paris", "lyon"), ("lyon", "paris")}  # fmt: skip
    semantic_entropy(ans, [-1.0] * 4, eq)
    assert len(forwards) == 3  # everything cached
    eq1 = nli_equivalence(model, tok, batch_size=1)
    semantic_entropy(ans, [-1.0] * 4, eq1)
    assert len(forwards) == 3 + 5  # one forward per distinct ordered pair
    # the same outputs with entailment at id 0: never entailment, nothing merges
    model0, tok0 = _tiny_nli({0: "Entailment", 1: "neutral", 2: "contradiction"}, favour=2)
    eq0 = nli_equivalence(model0, tok0)
    assert eq0.entailment_id == 0
    assert semantic_entropy(ans, [-1.0] * 4, eq0).clusters == [[0], [1], [2], [3]]


def test_nli_label_lookup_and_errors() -> None:
    from infolens.uncertainty import _entailment_id

    assert _entailment_id(types.SimpleNamespace(id2label={}, label2id={"Entailment": 1})) == 1
    with pytest.raises(InputError, match="entailment"):
        _entailment_id(types.SimpleNamespace(id2label={0: "LABEL_0", 1: "LABEL_1"}, label2id={}))
    with pytest.raises(InputError, match="batch_size"):
        nli_equivalence(types.SimpleNamespace(config=None), lambda *a, **k: None, batch_size=0)


# ----------------------------------------------------------------- white box
PROMPT = "the cat sat on the mat; the dog sat on the log; the cat "


def test_sequence_uncertainties_by_hand() -> None:
    samples = generate(load_model("ngram"), PROMPT, n=4, max_new_tokens=10, seed=3, top_k=8)
    u = sequence_uncertainties(samples)
    seq = [float(np.sum(s.logprob_model)) for s in samples]
    np.testing.assert_allclose(u.sequence_logprob, seq, rtol=1e-12)
    np.testing.assert_allclose(
        u.perplexity, [math.exp(-np.mean(s.logprob_model)) for s in samples], rtol=1e-12
    )
    np.testing.assert_allclose(
        u.mean_token_entropy, [np.mean(s.entropy_model) for s in samples], rtol=1e-12
    )
    assert u.n_tokens == [len(s.token_ids) for s in samples]
    assert u.maximum_sequence_probability == pytest.approx(1 - math.exp(max(seq)), rel=1e-12)
    assert u.mean_token_entropy_overall == pytest.approx(np.mean(u.mean_token_entropy), rel=1e-12)
    b = sequence_uncertainties(samples, base=2)
    assert b.unit == "bits" and b.perplexity == u.perplexity
    np.testing.assert_allclose(b.sequence_logprob, np.array(seq) / LN(2), rtol=1e-12)
    with pytest.raises(InputError, match="samples"):
        sequence_uncertainties([])
    with pytest.raises(InputError, match=r"samples\[0\]"):
        sequence_uncertainties(["not a sample"])


def test_prompt_information_against_step_by_step_scoring() -> None:
    m = load_model("ngram")
    samples = generate(m, PROMPT, n=2, max_new_tokens=6, seed=5)
    got = prompt_information(m, samples)
    for s, g in zip(samples, got):
        ids = np.asarray(s.token_ids, np.int64)
        prompt_ids = np.frombuffer(PROMPT.encode(), np.uint8).astype(np.int64)
        with_p, without = [], []
        for t in range(len(ids)):
            for ctx, out in ((np.concatenate([prompt_ids, ids[:t]]), with_p), (ids[:t], without)):
                z = WindowDecoder(m, ctx, 1).next_logits()[0].astype(np.float64)
                out.append(z[ids[t]] - np.logaddexp.reduce(z))
        np.testing.assert_allclose(with_p, s.logprob_model, rtol=1e-9, atol=1e-12)
        assert g == pytest.approx(np.mean(np.array(with_p) - np.array(without)), rel=1e-9)
    assert prompt_information(m, samples, base=2) == pytest.approx([g / LN(2) for g in got])


# ----------------------------------------------------------------- CLI
def _run(*args: str):  # type: ignore[no-untyped-def]
    from infolens.cli import main

    return CliRunner().invoke(main, ["semantic-entropy", *args])


def test_cli_json_equals_the_library() -> None:
    r = _run("-p", PROMPT, "--samples", "6", "--max-new-tokens", "5", "--seed", "2",
             "--top-k", "3", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert {"model", "unit", "equivalence", "settings", "results"} <= set(d)
    (res,) = d["results"]
    for k in ("semantic_entropy", "semantic_entropy_mc", "discrete_semantic_entropy",
              "predictive_entropy", "clusters", "white_box", "prompt_information", "samples"):  # fmt: skip
        assert k in res, k
    m = load_model("ngram")
    samples = generate(m, PROMPT, n=6, max_new_tokens=5, seed=2, top_k=3)
    lls = [float(np.mean(s.logprob_model)) for s in samples]
    se = semantic_entropy([s.text for s in samples], lls)
    assert res["semantic_entropy"] == pytest.approx(se.semantic_entropy, rel=1e-12)
    assert res["semantic_entropy_mc"] == pytest.approx(se.semantic_entropy_mc, rel=1e-12)
    assert [c["indices"] for c in res["clusters"]] == se.clusters
    assert sum(c["probability"] for c in res["clusters"]) == pytest.approx(1.0)
    wb = sequence_uncertainties(samples)
    assert res["white_box"]["maximum_sequence_probability"] == pytest.approx(
        wb.maximum_sequence_probability, rel=1e-12
    )
    assert res["prompt_information"] == pytest.approx(prompt_information(m, samples), rel=1e-12)
    r2 = _run("-p", PROMPT, "--samples", "6", "--max-new-tokens", "5", "--seed", "2",
              "--top-k", "3", "--json", "--bits", "--logprob", "sum")  # fmt: skip
    d2 = json.loads(r2.output)
    se2 = semantic_entropy(
        [s.text for s in samples], [s.logprob_model.sum() for s in samples], base=2
    )
    assert d2["unit"] == "bits"
    assert d2["results"][0]["semantic_entropy"] == pytest.approx(se2.semantic_entropy, rel=1e-12)


def test_cli_table_prompts_file_and_errors(tmp_path: Path) -> None:
    r = _run("-p", PROMPT, "--samples", "5", "--max-new-tokens", "4")
    assert r.exit_code == 0, r.output
    for s in ("clusters", "semantic entropy (Rao", "Monte Carlo", "discrete semantic entropy",
              "predictive entropy", "maximum sequence probability", "nats"):  # fmt: skip
        assert s in r.output, s
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "the cat "}\n\n{"prompt": "the dog "}\n')
    r = _run("--prompts", str(f), "--samples", "3", "--max-new-tokens", "3", "--json")
    assert r.exit_code == 0, r.output
    assert [x["prompt"] for x in json.loads(r.output)["results"]] == ["the cat ", "the dog "]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    for args, msg in [([], "--prompt/--prompts"), (["-p", "x", "--prompts", str(f)], "both"),
                      (["-p", "x", "--samples", "0"], "--samples"),
                      (["-p", "x", "--max-new-tokens", "0"], "--max-new-tokens"),
                      (["-p", "x", "-t", "0"], "temperature"), (["-p", "x", "--top-p", "2"], "top_p"),
                      (["--prompts", str(bad)], "bad.jsonl:2"),
                      (["--prompts", str(tmp_path / "none.jsonl")], "none.jsonl"),
                      (["-p", "x", "--nli", str(tmp_path / "nope")], "--nli"),
                      (["-p", "x", "--device", "cpu"], "--device")]:  # fmt: skip
        r = _run(*args)
        assert r.exit_code == 2, (args, r.output)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (args, r.output)


def test_cli_nli_from_a_local_directory(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    model, tok = _tiny_nli({0: "neutral", 1: "entailment", 2: "contradiction"}, favour=1)
    model.save_pretrained(tmp_path / "nli")
    tok.save_pretrained(tmp_path / "nli")
    r = _run("-p", PROMPT, "--samples", "4", "--max-new-tokens", "4", "--top-k", "5",
             "--nli", str(tmp_path / "nli"), "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["equivalence"].startswith("nli:")
    assert d["results"][0]["n_clusters"] == 1  # always entailment: one meaning
    assert d["results"][0]["semantic_entropy"] == 0.0
    (tmp_path / "empty").mkdir()
    r = _run("-p", "x", "--nli", str(tmp_path / "empty"))
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "--nli" in r.output
