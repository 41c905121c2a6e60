"""The per-token record format and the HTML score report (no browser, no model)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _mini_dom import Node, parse
from _report_checks import (
    assert_self_contained,
    check_pngs,
    check_summary,
    check_summary_rows,
    token_boxes,
    tooltip_data,
)
from _report_synth import DOCS, synth, text_100kb
from infolens.report import ScoreReport, render_score_report
from infolens.report.html import format_number
from infolens.report.score_report import SUMMARY_KEYS
from infolens.tokens import (
    TokenRecord,
    TokenWriter,
    read_tokens,
    token_ranks,
    top_alternatives,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[dict], str]:
    result, records = synth()
    out = tmp_path_factory.mktemp("rep") / "report.html"
    render_score_report(result, records, DOCS, out)
    return result, records, out.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- page


def test_self_contained(report: tuple[dict, list, str]) -> None:
    page = report[2]
    assert_self_contained(page)
    assert page.count("<svg") == 3  # the figures are inline


def test_document_markup_is_escaped(report: tuple[dict, list, str]) -> None:
    page = report[2]
    assert "alert(" in page  # shown ...
    assert "<script>alert" not in page  # ... never run
    assert "&lt;script&gt;alert" in page
    assert len(re.findall(r"<script\b", page)) == 2  # the data block and the page's script
    assert "html&lt;b&gt;&amp;.txt" in page  # document names too
    tooltip_data(page)  # parses, and nothing in it can close its <script>
    assert not parse(page).find_all(lambda n: n.tag == "b" and n.text() == "bold")


def test_summary_numbers_equal_result(report: tuple[dict, list, str]) -> None:
    result, _, page = report
    dom = parse(page)
    check_summary(dom, result, [key for key, _, _ in SUMMARY_KEYS])
    row = dom.find(lambda n: n.tag == "tr" and n.attrs.get("data-key") == "perplexity")
    assert row is not None
    ci = row.find(lambda n: n.has_class("ci"))
    assert ci is not None
    assert [float(ci.attrs["data-lo"]), float(ci.attrs["data-hi"])] == result["perplexity_ci95_iid"]
    assert "95% CI (iid)" in page


def test_document_table_equals_result(report: tuple[dict, list, str]) -> None:
    result, _, page = report
    table = parse(page).by_id("documents")
    assert table is not None
    body = table.find(lambda n: n.tag == "tbody")
    assert body is not None
    trs = [c for c in body.children if isinstance(c, Node)]
    assert len(trs) == len(result["documents"])
    for tr, doc in zip(trs, result["documents"]):
        cells = [c for c in tr.children if isinstance(c, Node)]
        assert cells[0].text() == doc["name"]
        for c in cells[1:]:
            key = c.attrs["data-key"]
            assert float(c.attrs["data-value"]) == doc[key]
            assert c.text() == format_number(doc[key])


def test_rendered_text_is_the_documents(report: tuple[dict, list, str]) -> None:
    # Every byte of every document shows exactly once, characters split across byte-level
    # tokens included (they are grouped into one span).
    page = report[2]
    dom = parse(page)
    assert token_boxes(dom) == list(DOCS.values())
    note = dom.by_id("cap-notice")
    assert note is not None and note.attrs["data-capped"] == "0"


def test_tooltip_data_matches_records(report: tuple[dict, list, str]) -> None:
    _, records, page = report
    data = tooltip_data(page)
    first = [r for r in records if r["doc"] == "intro.txt"]  # ASCII: one span per token
    for i in (0, 5, len(first) - 1):
        vals, alts = data["tokens"][i][:2]
        r = first[i]
        assert vals == [
            round(r["surprisal_bits"], 2),
            round(r["entropy_bits"], 2),
            r["rank"],
            r["context"],
        ]
        assert [data["strings"][k] for k in alts[0][::2]] == [t for t, _ in r["top"]]
        assert alts[0][1::2] == [round(p * 100, 1) for _, p in r["top"]]


def test_cap_notice_and_numbers_cover_everything(tmp_path: Path) -> None:
    result, records = synth()
    out = render_score_report(result, records, DOCS, tmp_path / "r.html", max_rendered_bytes=120)
    dom = parse(out.read_text(encoding="utf-8"))
    note = dom.by_id("cap-notice")
    assert note is not None and note.attrs["data-capped"] == "1"
    assert "capped at 120 bytes" in note.text()
    assert f"all {len(records)} tokens" in note.text()
    shown = "".join(b.text() for b in dom.find_all(lambda n: n.has_class("tokens")))
    assert 0 < len(shown.encode()) <= 120
    assert DOCS["intro.txt"].startswith(shown)
    # the numbers still cover the whole corpus
    assert len(dom.find_all(lambda n: n.tag == "svg")) == 3
    table = dom.by_id("documents")
    assert table is not None and len(table.find_all(lambda n: n.tag == "tr")) == 1 + len(DOCS)


def test_without_document_text_token_texts_are_shown(tmp_path: Path) -> None:
    result, records = synth({"a": "one two three"})
    out = render_score_report(result, records, None, tmp_path / "r.html")
    dom = parse(out.read_text(encoding="utf-8"))
    assert token_boxes(dom) == ["one two three"]


def test_plots_dir_writes_pngs(tmp_path: Path) -> None:
    result, records = synth()
    render_score_report(result, records, DOCS, tmp_path / "r.html", plots_dir=tmp_path / "plots")
    check_pngs(
        tmp_path / "plots",
        ["entropy_histogram.png", "surprisal_by_position.png", "surprisal_histogram.png"],
    )


def test_memory_is_bounded(tmp_path: Path) -> None:
    # Aggregates stay fixed-size however many tokens stream through.
    rng = np.random.default_rng(1)
    rep = ScoreReport({"model": "m"}, {}, max_rendered_bytes=200, n_spans=10)
    n = 30_000
    s = rng.gamma(1.5, 2.0, n).tolist()
    for i in range(n):
        rep.add({"doc": f"d{i // 1000}", "position": i % 1000, "token": "ab", "bytes": None,
                 "surprisal_bits": s[i], "entropy_bits": 2.0, "rank": 1, "context": i % 1000,
                 "top": [["x", 0.5]]})  # fmt: skip
    page = rep.finish()
    assert rep.n_records == n
    assert len(rep.spans) <= 10
    assert len(rep.by_context.n) < 100
    assert sum(len(segs) for _, segs, _ in rep.text.docs) <= 100
    assert rep.capped and 'data-capped="1"' in page


def test_most_surprising_spans_do_not_overlap() -> None:
    result, records = synth()
    rep = ScoreReport(result, DOCS, span_tokens=4, n_spans=5)
    for r in records:
        rep.add(r)
    spans = sorted(rep.spans, reverse=True)
    assert len(spans) == 5
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            assert a.doc != b.doc or a.hi <= b.lo or b.hi <= a.lo
    # the best span is the best 4-token window of the corpus
    best = max(
        sum(r["surprisal_bits"] for r in records[i : i + 4])
        for i in range(len(records) - 3)
        if len({r["doc"] for r in records[i : i + 4]}) == 1
    )
    assert spans[0].score == pytest.approx(best)


def test_100kb_document_page_weight(tmp_path: Path) -> None:
    # Speed is measured in benchmarks/bench_report.py; here the page weight, which decides
    # how fast a browser can load it, is bounded deterministically.
    text = text_100kb()
    result, records = synth({"big.txt": text}, byte_level_non_ascii=False)
    out = render_score_report(result, records, {"big.txt": text}, tmp_path / "big.html")
    size = out.stat().st_size
    assert size < 3_000_000, size
    assert parse(out.read_text(encoding="utf-8")).by_id("cap-notice").attrs["data-capped"] == "0"  # type: ignore[union-attr]


def test_report_write_is_atomic(tmp_path: Path) -> None:
    result, records = synth()
    out = tmp_path / "r.html"
    out.write_text("old")

    def broken() -> Any:
        yield from records[:3]
        raise RuntimeError("scoring failed")

    with pytest.raises(RuntimeError):
        render_score_report(result, broken(), DOCS, out)
    assert out.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.html"]


# --------------------------------------------------------------------------- token records


def _rec(i: int, s: float = 1.25) -> dict[str, Any]:
    return {"doc": "d<1>", "position": i, "token": " é\n", "bytes": [i, i + 4],
            "surprisal_bits": s, "entropy_bits": 0.5 * i, "rank": i + 1, "context": i,
            "top": [[" a", 0.5], ["\"b\"", 0.25]]}  # fmt: skip


def test_tokens_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    recs = [_rec(0), TokenRecord.from_dict(_rec(1)), _rec(2, float("inf"))]
    with TokenWriter(path) as w:
        for r in recs:
            w.write(r)
    assert w.count == 3
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert list(json.loads(lines[0])) == [
        "doc", "position", "token", "bytes", "surprisal_bits", "entropy_bits", "rank", "context", "top",
    ]  # fmt: skip
    assert json.loads(lines[2])["surprisal_bits"] == "inf"  # strict JSON
    back = list(read_tokens(path))
    assert back[0] == TokenRecord.from_dict(_rec(0))
    assert back[0].bytes == (0, 4) and back[0].top == [(" a", 0.5), ('"b"', 0.25)]
    assert back[1].to_dict() == _rec(1)
    assert math.isinf(back[2].surprisal_bits)


def test_token_writer_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with pytest.raises(ValueError, match="boom"), TokenWriter(path) as w:
        w.write(_rec(0))
        raise ValueError("boom")
    assert not path.exists()
    assert os.listdir(tmp_path) == []
    path.write_text("previous\n")
    with pytest.raises(KeyError), TokenWriter(path) as w:
        w.write({"doc": "x"})  # missing fields
    assert path.read_text() == "previous\n"
    assert os.listdir(tmp_path) == ["t.jsonl"]


def _brute_top(logits: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    x = logits.astype(np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return [[(int(i), float(row[i])) for i in sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]]
            for row in p]  # fmt: skip


def test_top_alternatives_numpy_and_torch() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (7, 50)).astype(np.float32)
    logits[0, 3] = -np.inf
    want = _brute_top(logits, 5)
    got = top_alternatives(logits, k=5)
    for g, w in zip(got, want):
        assert [i for i, _ in g] == [i for i, _ in w]
        assert np.allclose([p for _, p in g], [p for _, p in w], rtol=1e-5)
    assert top_alternatives(logits, k=2, decode=lambda i: f"<{i}>")[1][0][0] == f"<{want[1][0][0]}>"
    assert len(top_alternatives(logits[:, :3], k=5)[0]) == 3
    torch = pytest.importorskip("torch")
    got_t = top_alternatives(torch.from_numpy(logits).to(torch.bfloat16).float(), k=5)
    for g, w in zip(got_t, want):
        assert [i for i, _ in g][:3] == [i for i, _ in w][:3]
    got_t = top_alternatives(torch.from_numpy(logits), k=5)
    for g, w in zip(got_t, want):
        assert [i for i, _ in g] == [i for i, _ in w]
        assert np.allclose([p for _, p in g], [p for _, p in w], rtol=1e-5)


def test_top_alternatives_ties_by_id_and_float64() -> None:
    # ties at the k-th place keep the smallest ids, on both paths; float64 stays float64
    tied = np.zeros((3, 300))
    tied[1, 250:] = 1.0  # 50 tied maxima: the first k of them by id
    tied[2, [7, 3, 200]] = 2.0
    want = [[0, 1, 2], [250, 251, 252], [3, 7, 200]]
    assert [[i for i, _ in r] for r in top_alternatives(tied, k=3)] == want
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1e-9, (4, 100))  # differences float32 cannot hold
    want_p = _brute_top(x, 5)
    torch = pytest.importorskip("torch")
    for tensor in (torch.from_numpy(tied), torch.from_numpy(tied).float()):
        assert [[i for i, _ in r] for r in top_alternatives(tensor, k=3)] == want
    for got in (top_alternatives(x, k=5), top_alternatives(torch.from_numpy(x), k=5)):
        for g, w in zip(got, want_p):
            assert [i for i, _ in g] == [i for i, _ in w]
            assert [p for _, p in g] == pytest.approx([p for _, p in w], rel=1e-14)


def test_token_ranks() -> None:
    logits = np.log(np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]]))
    assert token_ranks(logits, np.array([0, 1])).tolist() == [3, 2]
    torch = pytest.importorskip("torch")
    assert token_ranks(torch.from_numpy(logits), [1, 2]).tolist() == [1, 1]


def test_streaming_api_with_result_at_the_end(tmp_path: Path) -> None:
    # The score command's way: add records while scoring, give the result at the end.
    result, records = synth()
    texts: dict[str, str] = {}
    rep = ScoreReport(documents_text=texts)
    with TokenWriter(tmp_path / "t.jsonl") as w:
        for r in records:
            if r["doc"] not in texts:
                texts.clear()
                texts[r["doc"]] = DOCS[r["doc"]]
            w.write(r)
            rep.add(r)
    out = rep.write(tmp_path / "r.html", result=result)
    page = out.read_text(encoding="utf-8")
    ref = render_score_report(result, read_tokens(tmp_path / "t.jsonl"), DOCS, tmp_path / "s.html")
    assert page == ref.read_text(encoding="utf-8")
    n_bytes = sum(len(t.encode()) for t in DOCS.values())
    assert f'data-rendered-bytes="{n_bytes}"' in page


def test_score_confidence_interval_keys(tmp_path: Path) -> None:
    # infolens score's keys: perplexity_ci95_batch_means preferred, then _iid; extra
    # numbers (stderr, counts) are listed, None and dicts are not.
    result, records = synth({"a": "one two three"})
    result.update(perplexity_ci95_iid=[1.0, 2.0], perplexity_ci95_batch_means=[0.5, 3.0],
                  perplexity_stderr_iid=0.25, documents_count=1, compressors=None,
                  perplexity_stderr_batch_means=None)  # fmt: skip
    page = render_score_report(result, records, None, tmp_path / "r.html").read_text()
    dom = parse(page)
    row = dom.find(lambda n: n.tag == "tr" and n.attrs.get("data-key") == "perplexity")
    ci = row.find(lambda n: n.has_class("ci"))  # type: ignore[union-attr]
    assert ci is not None and (ci.attrs["data-lo"], ci.attrs["data-hi"]) == ("0.5", "3.0")
    assert "95% CI (batch means)" in page
    keys = [
        n.attrs["data-key"] for n in dom.find_all(lambda n: n.tag == "tr" and "data-key" in n.attrs)
    ]
    assert "perplexity_stderr_iid" in keys and "documents_count" in keys
    assert not {"compressors", "perplexity_ci95_iid", "perplexity_stderr_batch_means"} & set(keys)


def test_compare_report_byte_level_chooses_the_render_cap() -> None:
    from infolens.report._common import BYTE_LEVEL_RENDER_CAP, RENDER_CAP
    from infolens.report.compare_report import CompareReport

    assert CompareReport(byte_level=True).max_rendered_bytes == BYTE_LEVEL_RENDER_CAP
    assert CompareReport().max_rendered_bytes == RENDER_CAP
    assert CompareReport(byte_level=True, max_rendered_bytes=7).max_rendered_bytes == 7


# --------------------------------------------------------------------------- compare report


def _compare_rows(name: str, text: str, rng: np.random.Generator, v: int = 7) -> Any:
    """Synthetic :class:`infolens.compare.CompareRows`: one token per word, random logits."""
    from types import SimpleNamespace

    from infolens.compare import token_stats

    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+\s*", text)]
    n = len(spans)
    base = rng.normal(0, 2, (n, v))
    model = base + rng.normal(0, 1, (n, v))
    ids = rng.integers(0, v, n)
    return SimpleNamespace(
        name=name, stats=token_stats(base, model, ids), context=np.arange(n),
        positions=np.arange(n), offsets=np.array(spans), token_ids=ids,
        model_logits=model, base_logits=base, base_records=None,
    )  # fmt: skip


def test_compare_report_shows_the_result(tmp_path: Path) -> None:
    from infolens.report.compare_report import CompareReport, summary_rows

    rng = np.random.default_rng(5)
    docs = {"one.txt": "alpha beta gamma delta " * 20, "two.txt": "<b>bold</b> & more words " * 8}
    result: dict[str, Any] = {
        "model": "m<1>", "base": "b", "tokens": 0, "kl_base_model": 0.5, "kl_model_base": 0.4,
        "js": 0.1, "same_top1": 0.75, "ppl_model": 12.5, "ppl_base": 11.0,
        "kl_base_model_batch_means": {"low": 0.45, "high": 0.55, "stderr": 0.02},
        "kl_percentiles": {"50": 0.3, "99": 2.5, "max": 4.0},
        "delta_p": {"mean": -0.01, "rms": 0.2, "batch_means": {"low": -0.02, "high": 0.0}},
        "kl_is_lower_bound": True, "base_top_k": 4,
        "documents": [{"name": k, "tokens": 1, "kl_base_model": 0.5} for k in docs],
    }  # fmt: skip
    rows = [_compare_rows(name, text, rng) for name, text in docs.items()]
    result["tokens"] = sum(len(r.positions) for r in rows)
    cap = 150
    rep = CompareReport(dict(docs), decode_model=lambda i: f"<t{i}>", max_rendered_bytes=cap)
    for r in rows:
        rep.add(r)
    page = rep.write(tmp_path / "c.html", result=result).read_text(encoding="utf-8")
    assert_self_contained(page)
    dom = parse(page)
    want = summary_rows(result)
    assert {r.key for r in want} >= {"kl_base_model", "js", "tokens", "kl_p99", "delta_p_rms"}
    check_summary_rows(dom, want)
    row = next(r for r in want if r.key == "kl_base_model")
    assert (row.value, row.ci) == (0.5, (0.45, 0.55))
    assert "LOWER BOUND" in row.help
    # the lower-bound note, and the cap notice
    summary = dom.by_id("summary")
    assert summary is not None and "lower bounds" in summary.text()
    assert "top-4" in summary.text()
    note = dom.by_id("cap-notice")
    assert note is not None and note.attrs["data-capped"] == "1"
    assert 0 < int(note.attrs["data-rendered-bytes"]) <= cap
    assert f"capped at {cap} bytes" in note.text()
    assert f"all {result['tokens']} tokens" in note.text()
    (shown,) = token_boxes(dom)
    assert docs["one.txt"].startswith(shown) and 0 < len(shown.encode()) <= cap
    # the first token's tooltip: both KL directions of its row
    first = tooltip_data(page)["tokens"][0][0]
    st = rows[0].stats
    assert first[:2] == [
        round(float(st["kl_base_model"][0]), 4),
        round(float(st["kl_model_base"][0]), 4),
    ]
    table = dom.by_id("documents")
    assert table is not None and len(table.find_all(lambda n: n.tag == "tr")) == 1 + len(docs)


def test_numbers_cover_every_token_past_the_cap() -> None:
    # Rendering stops at the cap; the histograms, context bins and spans still count every
    # token, checked against direct computations over all the records.
    rng = np.random.default_rng(7)
    n = 20_000
    s = rng.gamma(1.5, 3.0, n)
    s[rng.integers(0, n, 40)] = 40.0  # overflow bin
    s[rng.integers(0, n, 5)] = np.nan
    h = rng.gamma(1.0, 2.0, n)
    ctx = rng.integers(0, 3000, n)
    recs = [{"doc": f"d{i // 3000}", "position": i % 3000, "token": "ab", "bytes": None,
             "surprisal_bits": float(s[i]), "entropy_bits": float(h[i]), "rank": 1,
             "context": int(ctx[i]), "top": []} for i in range(n)]  # fmt: skip
    rep = ScoreReport({"model": "m"}, {}, max_rendered_bytes=100, span_tokens=5, n_spans=3)
    for r in recs:
        rep.add(r)
    rep.finish(figures=False)
    assert rep.capped and rep.text.rendered_bytes <= 100 and rep.n_records == n
    fin = s[~np.isnan(s)]
    want, _ = np.histogram(fin[fin < 32], bins=np.linspace(0, 32, 129))
    assert rep.surprisal.counts.tolist() == want.tolist()
    assert rep.surprisal.over == int(np.sum(fin >= 32)) and rep.surprisal.total == fin.size
    assert rep.sum_s == pytest.approx(float(fin.sum()), rel=1e-12)
    assert rep.entropy.counts.sum() + rep.entropy.over == n
    # context bins: one bin per context below 32, then 8 per doubling
    bins = np.where(ctx < 32, ctx, 32 + np.floor(8 * np.log2(np.maximum(ctx, 32) / 32)))
    ok = np.isfinite(s)
    means = rep.by_context.means()
    assert means is not None
    keys = sorted(set(bins[ok].tolist()))
    assert len(means[0]) == len(keys)
    for j, b in enumerate(keys):
        sel = ok & (bins == b)
        assert means[0][j] == pytest.approx(ctx[sel].mean(), rel=1e-12)
        assert means[1][j] == pytest.approx(s[sel].mean(), rel=1e-12)
        assert means[2][j] == pytest.approx(h[sel].mean(), rel=1e-12)
    # the best span: the best 5-token window within a document, NaN counted as 0
    z = np.where(np.isnan(s), 0.0, s)
    best = max(z[i : i + 5].sum() for i in range(n - 4) if i // 3000 == (i + 4) // 3000)
    assert max(sp.score for sp in rep.spans) == pytest.approx(best, rel=1e-12)
    assert len(rep.spans) == 3


def test_add_rows_equals_adding_its_records(tmp_path: Path) -> None:
    # the command's path (row batches; records made only for the rendered text) against
    # the records themselves, with unknown spans, a cap crossed inside a batch and spans
    # that straddle batches
    from types import SimpleNamespace

    from infolens.tokens import records_from_rows

    rng = np.random.default_rng(11)
    text = ("Café naïve résumé. " * 40).encode("utf-8")
    v = 16
    decode = "abcdefghijklmnop".__getitem__
    batches = []
    for doc, n in (("one", 300), ("two", 5), ("three", 200)):
        lo = np.arange(n)
        offs = np.stack([lo, lo + 1], axis=1)
        offs[rng.random(n) < 0.1] = -1
        logits = rng.normal(0, 2, (n, v))
        ids = rng.integers(0, v, n)
        lp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        for a in range(0, n, 64):
            b = min(n, a + 64)
            batches.append(SimpleNamespace(
                document=len(batches), name=doc, positions=np.arange(a, b), token_ids=ids[a:b],
                offsets=offs[a:b], surprisal_nats=-lp[np.arange(a, b), ids[a:b]],
                entropy_nats=-(np.exp(lp[a:b]) * lp[a:b]).sum(axis=1), rank=None,
                logits=logits[a:b], context=np.arange(a, b) % 50))  # fmt: skip
    texts = {"one": text, "two": text[:5], "three": text}
    pages = []
    for mode in ("rows", "records"):
        rep = ScoreReport({"model": "m"}, texts, max_rendered_bytes=400, span_tokens=6, n_spans=4)
        for bt in batches:
            if mode == "rows":
                rep.add_rows(bt, texts[bt.name], decode)
            else:
                for r in records_from_rows(bt, texts[bt.name], decode):
                    rep.add(r)
        pages.append(rep.finish(figures=False))
        assert rep.capped and rep.n_records == 505
    assert pages[0] == pages[1]
    assert 'data-capped="1"' in pages[0]
