"""``infolens score --tokens/--report/--plots`` end to end: the built-in model and a tiny HF model.

Every scored token has one JSONL line; the lines add up to the JSON numbers; ranks and top-5
alternatives agree with an independent computation from the model's own logits; the report
is self-contained and shows the JSON numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from _mini_dom import parse
from _report_checks import (
    assert_self_contained,
    check_pngs,
    check_summary,
    token_boxes,
    tooltip_data,
)
from infolens.cli import main
from infolens.models import load_model
from infolens.models.base import Window
from infolens.report.score_report import SUMMARY_KEYS
from infolens.tokens import TOKEN_FIELDS, read_tokens
from infolens.windows import plan_windows

LN2 = math.log(2.0)

TEXTS = {
    "a.txt": "The cat sat on the mat. The cat sat on the hat. The dog sat on the log.\n",
    "b.txt": "Café naïve — 日本語 🙂. Information is surprise; surprise is -log2 p.\n",
    "empty.txt": "",
}


def run_score(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["score", *args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def write_corpus(d: Path, texts: dict[str, str]) -> list[str]:
    paths = []
    for name, text in texts.items():
        p = d / name
        p.write_text(text, encoding="utf-8")
        paths.append(str(p))
    return paths


def lines_by_doc(path: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.setdefault(d["doc"], []).append(d)
    return out


def check_sums(out: dict[str, Any], recs: dict[str, list[dict[str, Any]]]) -> None:
    assert sum(len(v) for v in recs.values()) == out["tokens"]
    total = sum(r["surprisal_bits"] * LN2 for v in recs.values() for r in v)
    assert total == pytest.approx(out["nll_nats"], rel=1e-9)
    for doc in out["documents"]:
        mine = recs.get(doc["name"], [])
        assert len(mine) == doc["tokens"]
        assert [r["position"] for r in mine] == sorted(r["position"] for r in mine)
        if mine:
            nll = sum(r["surprisal_bits"] * LN2 for r in mine)
            assert nll == pytest.approx(doc["nll_nats"], rel=1e-9)
            ent = sum(r["entropy_bits"] for r in mine) / len(mine)
            assert ent == pytest.approx(doc["mean_entropy_bits"], rel=1e-9)


def check_report_numbers(page: str, out: dict[str, Any]) -> None:
    assert_self_contained(page)
    check_summary(parse(page), out, [key for key, _, _ in SUMMARY_KEYS])


# --------------------------------------------------------------------------- ngram


@pytest.fixture(scope="module")
def ngram_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    d = tmp_path_factory.mktemp("ngram_out")
    paths = write_corpus(d, TEXTS)
    code, stdout, stderr = run_score(
        *paths, "--tokens", str(d / "t.jsonl"), "--report", str(d / "r.html"),
        "--plots", str(d / "plots"), "--json", "-q",
    )  # fmt: skip
    assert code == 0, stderr
    return d, json.loads(stdout), paths


def test_ngram_jsonl_sums_to_the_json(ngram_run: tuple[Path, dict, list[str]]) -> None:
    d, out, paths = ngram_run
    recs = lines_by_doc(d / "t.jsonl")
    check_sums(out, recs)
    assert paths[2] not in recs  # the empty document has no tokens
    for path in paths[:2]:
        data = Path(path).read_bytes()
        mine = recs[path]
        assert [r["position"] for r in mine] == list(range(len(data)))
        for r in mine:
            assert list(r) == list(TOKEN_FIELDS)
            lo = r["position"]
            assert r["bytes"] == [lo, lo + 1]
            assert r["token"] == data[lo : lo + 1].decode("utf-8", errors="replace")
            assert r["context"] == lo  # one window per document
            assert len(r["top"]) == 5


def test_ngram_ranks_and_top5_match_the_model(ngram_run: tuple[Path, dict, list[str]]) -> None:
    d, _, paths = ngram_run
    recs = lines_by_doc(d / "t.jsonl")
    model = load_model("ngram")
    for path in paths[:2]:
        data = Path(path).read_bytes()
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        lp = np.concatenate(list(model.logits([Window(ids, 0)], max_rows=4096)))
        for j in (0, 1, 7, len(ids) // 2, len(ids) - 1):
            r = recs[path][j]
            row = lp[j]
            assert r["rank"] == 1 + int(np.sum(row > row[ids[j]]))
            assert r["surprisal_bits"] == pytest.approx(-row[ids[j]] / LN2, rel=1e-12)
            p = np.exp(row - np.logaddexp.reduce(row))
            order = sorted(range(256), key=lambda i: (-p[i], i))[:5]
            assert [t for t, _ in r["top"]] == [model.decode_token(i) for i in order]  # type: ignore[attr-defined]
            assert [q for _, q in r["top"]] == pytest.approx([p[i] for i in order], rel=1e-12)


def test_ngram_report(ngram_run: tuple[Path, dict, list[str]]) -> None:
    d, out, paths = ngram_run
    page = (d / "r.html").read_text(encoding="utf-8")
    check_report_numbers(page, out)
    dom = parse(page)
    # the documents' text is shown (characters split across byte tokens grouped back)
    assert token_boxes(dom) == [TEXTS["a.txt"], TEXTS["b.txt"]]
    table = dom.by_id("documents")
    assert table is not None and len(table.find_all(lambda n: n.tag == "tr")) == 1 + len(TEXTS)
    # tooltip values of ASCII document a.txt: one span per token
    data = tooltip_data(page)
    recs = lines_by_doc(d / "t.jsonl")[paths[0]]
    for i in (0, 9, len(recs) - 1):
        vals = data["tokens"][i][0]
        r = recs[i]
        assert vals == [
            round(r["surprisal_bits"], 2),
            round(r["entropy_bits"], 2),
            r["rank"],
            r["context"],
        ]
    check_pngs(
        d / "plots",
        ["entropy_histogram.png", "surprisal_by_position.png", "surprisal_histogram.png"],
    )


def test_jsonl_reads_back(ngram_run: tuple[Path, dict, list[str]]) -> None:
    d, out, _ = ngram_run
    assert sum(1 for _ in read_tokens(d / "t.jsonl")) == out["tokens"]


def test_plots_needs_report(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc")
    code, _, err = run_score(str(tmp_path / "a.txt"), "--plots", str(tmp_path / "p"))
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and "--plots" in err and "--report" in err
    assert not (tmp_path / "p").exists()


def test_output_into_missing_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc")
    code, _, err = run_score(str(tmp_path / "a.txt"), "--tokens", str(tmp_path / "no" / "t.jsonl"))
    assert code == 2 and "--tokens" in err and "no such directory" in err


def test_failure_midway_leaves_nothing(tmp_path: Path) -> None:
    # 20 documents (more than a window batch: rows are written) then a missing file.
    paths = write_corpus(tmp_path, {f"d{i:02}.txt": f"document {i} " * 20 for i in range(20)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.html").write_text("old report")
    code, _, err = run_score(*paths, str(tmp_path / "missing.txt"),
                             "--tokens", str(out / "t.jsonl"), "--report", str(out / "r.html"))  # fmt: skip
    assert code == 2 and "missing.txt" in err
    assert sorted(p.name for p in out.iterdir()) == ["r.html"]  # no tokens file, no temp files
    assert (out / "r.html").read_text() == "old report"


# --------------------------------------------------------------------------- tiny HF model

HF_TEXT = (
    "Return a new dictionary initialized from an optional positional argument and a "
    "possibly empty set of keyword arguments. Café — naïve.\n"
)
L, S = 16, 8


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory, tiny_hf_dir: Path) -> tuple[Path, dict, str]:
    d = tmp_path_factory.mktemp("hf_out")
    (path,) = write_corpus(d, {"doc.txt": HF_TEXT})
    code, stdout, stderr = run_score(
        path, "--model", f"hf:{tiny_hf_dir}", "--device", "cpu", "--dtype", "float32",
        "--max-length", str(L), "--stride", str(S),
        "--tokens", str(d / "t.jsonl"), "--report", str(d / "r.html"), "--json", "-q",
    )  # fmt: skip
    assert code == 0, stderr
    return d, json.loads(stdout), path


def test_hf_jsonl(hf_run: tuple[Path, dict, str], tiny_hf: Any) -> None:
    import torch

    d, out, path = hf_run
    recs = lines_by_doc(d / "t.jsonl")
    check_sums(out, recs)
    mine = recs[path]
    tok = tiny_hf.tokenize(HF_TEXT)
    n = len(tok)
    assert n > 2 * L  # several windows
    assert [r["position"] for r in mine] == list(range(n))
    data = HF_TEXT.encode("utf-8")
    for r in mine:
        lo, hi = r["bytes"]
        assert [lo, hi] == tok.offsets[r["position"]].tolist()
        assert r["token"] == data[lo:hi].decode("utf-8", errors="replace")
    # context: the window's document tokens before the prediction
    for p in plan_windows(n, L, S, "first"):
        for j in range(p.target_lo, p.hi):
            assert mine[j]["context"] == j - p.lo
    # ranks and top-5 against the model's own forward pass on the first window
    ids = [tiny_hf.bos_id, *tok.ids[: L - 1].tolist()]
    with torch.no_grad():
        logits = tiny_hf.model(input_ids=torch.tensor([ids])).logits[0].double()
    probs = torch.softmax(logits, dim=-1).numpy()
    for j in (0, 3, L - 1):
        r = mine[j]
        row = probs[j]
        target = int(tok.ids[j])
        assert r["rank"] == 1 + int(np.sum(row > row[target]))
        assert r["surprisal_bits"] == pytest.approx(-math.log2(row[target]), rel=1e-5)
        top = np.argsort(-row, kind="stable")[:5]
        assert [q for _, q in r["top"]] == pytest.approx(row[top].tolist(), rel=1e-5, abs=1e-7)
        assert [t for t, _ in r["top"]] == [tiny_hf.tokenizer.decode([int(i)]) for i in top]


def test_hf_report(hf_run: tuple[Path, dict, str]) -> None:
    d, out, _ = hf_run
    page = (d / "r.html").read_text(encoding="utf-8")
    check_report_numbers(page, out)
    assert token_boxes(page) == [HF_TEXT]


@pytest.mark.parametrize("option", ["--tokens", "--report"])
def test_output_naming_an_input_is_refused(tmp_path: Path, option: str) -> None:
    c = tmp_path / "c.txt"
    c.write_text("keep me")
    code, out, err = run_score(str(c), option, str(c))
    assert code == 2 and out == ""
    assert (
        err.strip() == f"infolens: error: {option}: {c} is also an input; refusing to overwrite it"
    )
    assert c.read_text() == "keep me"
    code, _, err = run_score(str(c), "--report", str(tmp_path / "r.html"), "--plots", str(c))
    assert code == 2 and "--plots" in err and "not a directory" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokens", ""], "--tokens: expected a path, got ''"),
        (["--report", ""], "--report: expected a path, got ''"),
        (["--report", "{d}/no/r.html"], "--report: {d}/no: no such directory"),
        (["--report", "{d}/r.html", "--plots", "{d}/no/p"], "--plots: {d}/no: no such directory"),
        (["--tokens", "{d}/x", "--report", "{d}/./x"], "--tokens and --report: both name {d}/./x"),
    ],
)
def test_bad_output_paths_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "a.txt").write_text("abc")
    d = str(tmp_path)
    code, out, err = run_score(str(tmp_path / "a.txt"), *(a.format(d=d) for a in args))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and message.format(d=d) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_report_equals_the_report_of_its_tokens_file(
    ngram_run: tuple[Path, dict, list[str]], tmp_path: Path
) -> None:
    # The command feeds the report row batches (records made only for the rendered text,
    # ranks computed for those alone when --tokens is not given); rendering the --tokens
    # file record by record must give the same page (figures aside: their sums may differ
    # in the last bit with the chunking, which moves SVG coordinates by 1e-6).
    from infolens.report import render_score_report
    from infolens.report._common import BYTE_LEVEL_RENDER_CAP

    d, out, paths = ngram_run
    texts = {p: Path(p).read_text(encoding="utf-8") for p in paths}
    ref = render_score_report(out, read_tokens(d / "t.jsonl"), texts, tmp_path / "ref.html",
                              max_rendered_bytes=BYTE_LEVEL_RENDER_CAP)  # fmt: skip
    code, _, err = run_score(*paths, "--report", str(tmp_path / "only.html"), "-q")
    assert code == 0, err

    def strip(page: str) -> str:
        return re.sub(r"<svg.*?</svg>", "<svg/>", page, flags=re.S)

    want = strip(ref.read_text(encoding="utf-8"))
    assert want.count("<svg/>") == 3
    assert strip((d / "r.html").read_text(encoding="utf-8")) == want
    assert strip((tmp_path / "only.html").read_text(encoding="utf-8")) == want
