"""infolens.rag: context gain, reranking and retrieval information on the built-in model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infolens import score_text
from infolens.errors import InputError
from infolens.models import load_model
from infolens.models.ngram import fit_ngram
from infolens.rag import TEMPLATE, TEMPLATE_WITHOUT, context_gain, rerank, retrieval_information

Q, A = "Which river flows through Vienna?", "The Danube"
CTX = [
    "Vienna lies on the Danube, the river that flows through the city.",
    "Bananas are rich in potassium and grow in the tropics.",
    "The Danube",
]


def test_gain_equals_scoring_the_two_prompts_by_hand():
    model = load_model("ngram")
    gains = context_gain(model, Q, A, CTX)
    without = TEMPLATE_WITHOUT.format(question=Q)

    def logp_bits(prompt: str) -> float:  # log2 p(answer | prompt) from two full scorings
        full = score_text(prompt + " " + A, model, compressors=False)["nll_nats"]
        head = score_text(prompt, model, compressors=False)["nll_nats"]
        return -(full - head) / math.log(2)

    base = logp_bits(without)
    for g, c in zip(gains, CTX):
        want = logp_bits(TEMPLATE.format(context=c, question=Q)) - base
        assert g.gain_bits == pytest.approx(want, rel=1e-9, abs=1e-9)
        assert g.logprob_without_bits == pytest.approx(base, rel=1e-9)
        assert sum(g.token_gains) == pytest.approx(g.gain_bits, rel=1e-9, abs=1e-12)
        assert len(g.token_gains) == len(" " + A)  # bytes: one token each
        assert g.gain_bits_per_token == pytest.approx(g.gain_bits / len(" " + A))


def test_a_context_holding_the_answer_informs_it_and_an_ignored_one_gives_exactly_zero(tmp_path):
    adaptive = load_model("ngram")
    g = context_gain(adaptive, Q, A, CTX)
    # the adaptive model's match model copies "The Danube" from the context
    assert g[2].gain_bits > 10 and g[0].gain_bits > 5
    assert g[2].gain_bits > g[1].gain_bits
    # a frozen order-3 model sees only the last 3 bytes before each answer byte: the prompts
    # end alike ("er:"), so no context can change a prediction: the gain is exactly 0
    frozen = fit_ngram([b"Question: where? Answer: here. " * 20, b"The Danube is long."], order=3)
    for cg in context_gain(frozen, Q, A, CTX):
        assert cg.gain_bits == 0.0 and all(t == 0.0 for t in cg.token_gains)


def test_rerank_follows_the_gains_and_the_answer_free_proxy():
    model = load_model("ngram")
    gains = context_gain(model, Q, A, CTX)
    ranked = rerank(model, Q, CTX, answer=A)
    assert [r["index"] for r in ranked] == sorted(range(3), key=lambda i: -gains[i].gain_bits)
    assert [r["score_bits"] for r in ranked] == sorted((g.gain_bits for g in gains), reverse=True)
    free = rerank(model, Q, CTX)
    assert free[0]["criterion"] == "question likelihood gain"
    assert {r["index"] for r in free} == {0, 1, 2}
    assert free[0]["index"] == 0  # the passage that shares the question's words


def test_retrieval_information_in_bits():
    rng = np.random.default_rng(3)
    rel = rng.permutation(np.repeat([0, 1], 1500))  # half relevant: the median edge
    perfect = rel + 1e-3 * rng.standard_normal(3000)  # falls between the two groups
    r = retrieval_information(
        perfect, rel, bins=2, estimator="plugin", bootstrap=100, permutations=49
    )
    h = -sum(p * math.log2(p) for p in (rel.mean(), 1 - rel.mean()))
    assert r["bits"] == pytest.approx(h, rel=1e-9)  # the scores separate the labels
    assert r["relevance_entropy_bits"] == pytest.approx(h)
    assert r["p_value"] == pytest.approx(1 / 50)
    noise = retrieval_information(rng.standard_normal(3000), rel, bootstrap=0, permutations=99)
    assert abs(noise["bits"]) < 0.01 and noise["p_value"] > 0.01


def test_bad_input():
    model = load_model("ngram")
    for call, msg in (
        (lambda: context_gain(model, Q, A, []), "contexts: expected at least one"),
        (lambda: context_gain(model, Q, "", CTX, separator=""), "answer: expected a non-empty"),
        (lambda: context_gain(model, Q, A, [3]), r"contexts\[0\]: expected a string"),
        (lambda: context_gain(model, Q, A, CTX, template="{ctx}"), "template: expected a template"),
        (lambda: retrieval_information([1.0, 2.0], [1]), "relevant: expected 2 labels"),
        (lambda: retrieval_information([1.0, 2.0], [1, 0], bins=1), "bins: expected"),
    ):
        with pytest.raises(InputError, match=msg) as e:
            call()
        assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- CLI


def _run(*args: str):
    from click.testing import CliRunner

    from infolens.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_ranks_contexts_and_reads_evaluation_records(tmp_path):
    import json

    ctx = tmp_path / "ctx.jsonl"
    ctx.write_text("\n".join([json.dumps(CTX[0]), json.dumps({"text": CTX[1]}), json.dumps(CTX[2])]))
    res = _run("rag-gain", "--question", Q, "--answer", A, str(ctx), "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    gains = context_gain(load_model("ngram"), Q, A, CTX)
    want = sorted(gains, key=lambda g: -g.gain_bits)
    got = r["records"][0]["ranking"]
    assert [g["index"] for g in got] == [g.index for g in want]
    assert [g["gain_bits"] for g in got] == pytest.approx([g.gain_bits for g in want], rel=1e-12)
    assert r["unit"] == "bits" and r["template"] == TEMPLATE
    table = _run("rag-gain", "--question", Q, "--answer", A, str(ctx))
    assert table.exit_code == 0 and "gain bits" in table.output and "The Danube" in table.output
    ev = tmp_path / "eval.jsonl"
    ev.write_text(json.dumps({"question": Q, "answer": A, "contexts": CTX}) + "\n"
                  + json.dumps({"question": "Who wrote Hamlet?", "answer": "Shakespeare",
                                "contexts": ["Hamlet is by Shakespeare.", "Rain."]}))  # fmt: skip
    res = _run("rag-gain", str(ev), "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)["records"]) == 2


def test_cli_bad_input(tmp_path):
    ctx = tmp_path / "ctx.jsonl"
    ctx.write_text('"one"\n')
    for args, msg in (
        (["--question", Q, str(ctx)], "--answer: expected --question and --answer together"),
        ([str(ctx)], 'expected an object with "question"'),
        (["--question", Q, "--answer", A, str(tmp_path / "none.jsonl")], "FILE: expected a readable"),
    ):
        res = _run("rag-gain", *args)
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and msg in lines[0], res.output


def test_cli_report_colours_every_answer_token(tmp_path):
    import json
    import re

    from _report_checks import assert_self_contained

    ctx = tmp_path / "ctx.jsonl"
    evil = "<script>alert(1)</script> the Danube"
    ctx.write_text("\n".join(json.dumps(c) for c in [*CTX, evil]))
    out = tmp_path / "r.html"
    res = _run("rag-gain", "--question", Q, "--answer", A, str(ctx), "--report", str(out), "--json")
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert_self_contained(page)
    assert "<script>alert(1)</script>" not in page  # contexts are escaped
    titles = re.findall(r'<span title="([+-][0-9.]+) bits" style="background:rgb', page)
    ranking = json.loads(res.output)["records"][0]["ranking"]
    want = [f"{x:+.3f}" for g in ranking for x in g["token_gains_bits"]]
    assert titles == want and len(titles) == 4 * len(" " + A)
    res = _run("rag-gain", "--question", Q, "--answer", A, str(ctx), "--report", str(ctx))
    assert res.exit_code == 2 and "--report: expected a file other than the input" in res.output
