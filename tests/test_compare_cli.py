"""``infolens compare`` and :func:`infolens.compare.compare_documents` on two tiny HF models,
against an independent computation (plain forward per window, scipy log_softmax)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.special import log_softmax, rel_entr

from hf_fixtures import stdlib_text
from infolens.basefile import BaseFile
from infolens.cli import main
from infolens.compare import compare_documents, save_base_distributions
from infolens.errors import InputError
from infolens.models import load_model
from infolens.pipeline import align_chunks
from infolens.score import Document
from infolens.windows import plan_windows

README = Path(__file__).resolve().parents[1] / "README.md"
L, S = 32, 16


@pytest.fixture(scope="module")
def perturbed_dir(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's GPT-2 with every weight perturbed by 5 % noise (same tokenizer)."""
    from transformers import GPT2LMHeadModel

    out = tmp_path_factory.mktemp("perturbed")
    for f in tiny_hf_dir.iterdir():
        if "token" in f.name or f.name.endswith(".txt"):
            shutil.copy(f, out / f.name)
    model = GPT2LMHeadModel.from_pretrained(tiny_hf_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * p.std() * torch.randn_like(p))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pair(tiny_hf_dir: Path, perturbed_dir: Path):  # type: ignore[no-untyped-def]
    base = load_model(f"hf:{tiny_hf_dir}", device="cpu", dtype="float32", batch_size=4)
    model = load_model(f"hf:{perturbed_dir}", device="cpu", dtype="float32", batch_size=8)
    return model, base


def _docs() -> list[Document]:
    text = stdlib_text(3000)
    return [Document("a", text[:500]), Document("b", text[700:760]), Document("empty", ""),
            Document("c", text[1000:1400])]  # fmt: skip


def _plain(model, base, docs):  # type: ignore[no-untyped-def]
    """Per-token values from each model's plain forward per window (no infolens kernels)."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("lb", "lm", "t", "doc")}
    for d, doc in enumerate(docs):
        ids = np.asarray(model.tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        for p in plan_windows(len(ids), L, S, "first"):
            w = np.concatenate([[base.bos_id], ids[p.lo : p.hi]]) if p.bos else ids[p.lo : p.hi]
            x = torch.as_tensor(w[:-1])[None]
            rows = slice(p.start - 1, len(w) - 1)
            with torch.no_grad():
                cols["lb"].append(
                    log_softmax(base.model(x).logits[0, rows].double().numpy(), axis=1)
                )
                cols["lm"].append(
                    log_softmax(model.model(x).logits[0, rows].double().numpy(), axis=1)
                )
            cols["t"].append(w[p.start :])
            cols["doc"].append(np.full(len(w) - p.start, d))
    lb, lm = np.concatenate(cols["lb"]), np.concatenate(cols["lm"])
    t, doc = np.concatenate(cols["t"]), np.concatenate(cols["doc"])
    pb, pm = np.exp(lb), np.exp(lm)
    i = np.arange(len(t))
    mix = (pb + pm) / 2
    top = lambda p, k: np.argsort(-p, axis=1, kind="stable")[:, :k]  # noqa: E731
    return {
        "doc": doc, "lb": lb, "lm": lm, "t": t,
        "nll_b": -lb[i, t], "nll_m": -lm[i, t],
        "kl": rel_entr(pb, pm).sum(1), "klr": rel_entr(pm, pb).sum(1),
        "js": 0.5 * rel_entr(pb, mix).sum(1) + 0.5 * rel_entr(pm, mix).sum(1),
        "dp": pm[i, t] - pb[i, t], "same": (pb.argmax(1) == pm.argmax(1)).astype(float),
        **{f"o{k}": np.array([len(set(a) & set(b)) / k for a, b in zip(top(pb, k), top(pm, k))])
           for k in (5, 10)},
    }  # fmt: skip


def test_every_summary_number_equals_plain_numpy(pair):  # type: ignore[no-untyped-def]
    model, base = pair
    docs = _docs()
    res = compare_documents(model, base, docs, max_length=L, stride=S, bos="first", max_rows=5)
    s = res.to_dict()
    r = _plain(model, base, docs)
    n = len(r["t"])
    tol = dict(rel=1e-6, abs=1e-9)
    assert s["tokens"] == n and s["documents_count"] == 4
    assert (s["model"], s["base"], s["max_length"], s["stride"], s["bos"]) == (
        model.name, base.name, L, S, "first")  # fmt: skip
    assert s["kl_is_lower_bound"] is False
    assert s["ppl_model"] == pytest.approx(math.exp(r["nll_m"].mean()), **tol)
    assert s["ppl_base"] == pytest.approx(math.exp(r["nll_b"].mean()), **tol)
    d = r["nll_m"] - r["nll_b"]
    assert s["ln_ppl_ratio"] == pytest.approx(d.mean(), rel=1e-5, abs=1e-8)
    assert s["ln_ppl_ratio_se"] == pytest.approx(d.std() / math.sqrt(n - 1), rel=1e-5)
    assert s["cor_ln_ppl"] == pytest.approx(np.corrcoef(r["nll_b"], r["nll_m"])[0, 1], **tol)
    for key, ref in (("kl_base_model", "kl"), ("kl_model_base", "klr"), ("js", "js")):
        assert s[key] == pytest.approx(r[ref].mean(), rel=1e-5, abs=1e-9), key
        assert s[f"{key}_se"] == pytest.approx(r[ref].std() / math.sqrt(n - 1), rel=1e-4), key
    for key, q in (("max", 100), ("99", 99), ("90", 90), ("50", 50), ("1", 1), ("min", 0)):
        assert s["kl_percentiles"][key] == pytest.approx(
            np.percentile(r["kl"], q), rel=1e-4, abs=1e-9
        )
    assert s["delta_p"]["mean"] == pytest.approx(r["dp"].mean(), rel=1e-5, abs=1e-9)
    assert s["delta_p"]["rms"] == pytest.approx(np.sqrt(np.mean(r["dp"] ** 2)), rel=1e-5)
    for key in ("99.9", "75", "25", "0.1"):
        assert s["delta_p"]["percentiles"][key] == pytest.approx(
            np.percentile(r["dp"], float(key)), rel=1e-4, abs=1e-8)  # fmt: skip
    assert s["same_top1"] == pytest.approx(r["same"].mean(), abs=1e-12)
    assert s["top5_overlap"] == pytest.approx(r["o5"].mean(), abs=1e-12)
    assert s["top10_overlap"] == pytest.approx(r["o10"].mean(), abs=1e-12)
    per = {x["name"]: x for x in s["documents"]}
    assert per["empty"]["tokens"] == 0
    for k, name in enumerate(("a", "b", "c")):
        sel = r["doc"] == [0, 1, 3][k]
        assert per[name]["tokens"] == int(sel.sum())
        assert per[name]["kl_base_model"] == pytest.approx(r["kl"][sel].mean(), rel=1e-5)
        assert per[name]["ppl_model"] == pytest.approx(math.exp(r["nll_m"][sel].mean()), rel=1e-6)


def test_self_comparison_is_exact(tiny_hf):  # type: ignore[no-untyped-def]
    s = compare_documents(tiny_hf, tiny_hf, _docs(), max_length=L, stride=S).to_dict()
    assert s["kl_base_model"] == 0.0 and s["kl_model_base"] == 0.0 and 0.0 <= s["js"] < 1e-15
    assert s["same_top1"] == 1.0 and s["ppl_ratio"] == 1.0 and s["top10_overlap"] == 1.0
    assert s["kl_percentiles"]["max"] == 0.0 and s["delta_p"]["rms"] == 0.0


def test_saved_base_is_a_lower_bound_reaching_exact_at_full_k(pair, tmp_path):  # type: ignore[no-untyped-def]
    model, base = pair
    docs = _docs()
    exact: list[np.ndarray] = []
    compare_documents(model, base, docs, max_length=L, stride=S,
                      on_rows=lambda rows: exact.append(rows.stats["kl_base_model"]))  # fmt: skip
    kl = np.concatenate(exact)
    gaps = []
    for k in (4, 32, base.vocab_size):
        path = tmp_path / f"b{k}.ilb"
        info = save_base_distributions(base, docs, path, k=k, max_length=L, stride=S)
        assert info["records"] == kl.size
        assert path.stat().st_size - info["records"] * (8 * k + 16) < 4096  # header + footer
        coarse: list[np.ndarray] = []
        res = compare_documents(model, BaseFile(path), docs, max_rows=7,
                                on_rows=lambda rows, c=coarse: c.append(rows.stats["kl_base_model"]))  # fmt: skip
        c = np.concatenate(coarse)
        assert res.kl_is_lower_bound and res.to_dict()["base_top_k"] == k
        assert np.all(c <= kl + 1e-6)  # float32 log-probabilities in the file
        gaps.append(c.mean() / kl.mean())
    assert gaps[0] < gaps[1] < 1.0 + 1e-6
    assert gaps[2] == pytest.approx(1.0, abs=1e-5)


def test_base_file_mismatch_and_truncation_errors(pair, tmp_path):  # type: ignore[no-untyped-def]
    model, base = pair
    docs = _docs()
    path = tmp_path / "b.ilb"
    save_base_distributions(base, docs, path, k=8, max_length=L, stride=S)
    # other tokens: refused at the first one that differs (or by the CRC of the ids at the
    # document's end, where only unscored tokens differ)
    with pytest.raises(InputError, match=r"the tokens of 'b' differ from the file's \(position 0\)"):
        compare_documents(model, BaseFile(path), [docs[0], Document("b", "other text"), *docs[2:]])
    with pytest.raises(InputError, match=r"document 1 'x' is the file's 'a'"):
        compare_documents(model, BaseFile(path), [Document("x", docs[0].text)])
    with pytest.raises(InputError, match=r"1 documents given, the file has 4"):
        compare_documents(model, BaseFile(path), docs[:1])
    with pytest.raises(InputError, match=r"--stride 4: .* was written with stride 16"):
        compare_documents(model, BaseFile(path), docs, stride=4)
    bad = tmp_path / "trunc.ilb"
    bad.write_bytes(path.read_bytes()[:-100])
    r = CliRunner().invoke(main, ["compare", "--model", f"hf:{tiny_hf_path(model)}",
                                  "--base-file", str(bad), str(README)])  # fmt: skip
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "truncated" in r.stderr


def tiny_hf_path(model) -> str:  # type: ignore[no-untyped-def]
    return model.name.removeprefix("hf:")


def test_vocabulary_mismatch_is_one_clear_line(tiny_hf_dir):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(
        main, ["compare", "--model", "ngram", "--base", f"hf:{tiny_hf_dir}", str(README)]
    )
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "must share a vocabulary" in line and "256" in line


def test_ngram_readme_example_and_report(tmp_path):
    args = ["compare", str(README), "--model", "ngram:order=3", "--base", "ngram:order=6"]
    r = CliRunner().invoke(main, [*args, "--json", "--report", str(tmp_path / "r.html"), "-q"])
    assert r.exit_code == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["tokens"] == len(README.read_bytes()) and 0 < s["kl_base_model"] < 1
    assert s["model"] == "ngram:order=3" and s["base"] == "ngram:order=6"
    html = (tmp_path / "r.html").read_text()
    for part in (
        'id="kl_histogram"',
        'id="kl_by_position"',
        'id="top-kl"',
        "base top",
        "model top",
    ):
        assert part in html
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "Mean    KLD(base‖Q)" in r.stdout and "Same top p" in r.stdout
    # the saved-base round trip through the CLI
    f = tmp_path / "b.ilb"
    r = CliRunner().invoke(
        main,
        ["compare", str(README), "--base", "ngram:order=6", "--save-base", str(f), "--top-k", "8"],
    )
    assert r.exit_code == 0 and f.stat().st_size > 80 * s["tokens"]
    r = CliRunner().invoke(
        main, ["compare", str(README), "--model", "ngram:order=3", "--base-file", str(f), "--json"]
    )
    s2 = json.loads(r.stdout)
    assert s2["kl_is_lower_bound"] is True and s2["kl_base_model"] <= s["kl_base_model"] + 1e-9


def test_align_chunks_resplits_and_checks_lengths():
    a = [np.arange(3), np.arange(3, 10)]
    b = [np.arange(1), np.arange(1, 2), np.arange(2, 8), np.arange(8, 10)]
    pairs = list(align_chunks(a, b))
    assert all(np.array_equal(x, y) for x, y in pairs)
    assert np.concatenate([x for x, _ in pairs]).tolist() == list(range(10))
    with pytest.raises(RuntimeError, match="base: yielded more rows"):
        list(align_chunks([np.arange(3)], [np.arange(4)]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--report", ""], "--report: expected a path, got ''"),
        (["--report", "{d}/no/r.html"], "--report: {d}/no: no such directory"),
        (["--report", "{d}/a.txt"], "--report: {d}/a.txt is also an input"),
        (["--report", "{d}"], "--report: {d} is a directory"),
    ],
)
def test_compare_output_checked_before_the_run(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "a.txt").write_text("abc abc abc")
    d = str(tmp_path)
    argv = ["compare", f"{d}/a.txt", "--model", "ngram:order=2", "--base", "ngram:order=3"]
    res = CliRunner().invoke(main, [*argv, *(a.format(d=d) for a in args)])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert message.format(d=d) in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "abc abc abc"


def test_save_base_refuses_an_input(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("abc abc abc")
    a = str(tmp_path / "a.txt")
    res = CliRunner().invoke(main, ["compare", a, "--base", "ngram", "--save-base", a])
    assert res.exit_code == 2 and "--save-base" in res.stderr and "also an input" in res.stderr
    assert (tmp_path / "a.txt").read_text() == "abc abc abc"


def test_bytes_documents_are_decoded_or_refused_once(pair) -> None:  # type: ignore[no-untyped-def]
    model, base = pair
    text = _docs()[0].text
    as_str = compare_documents(model, base, [Document("a", text)], max_length=L, stride=S)
    as_bytes = compare_documents(
        model, base, [Document("a", text.encode())], max_length=L, stride=S
    )
    assert as_bytes.to_dict()["kl_base_model"] == as_str.to_dict()["kl_base_model"]
    with pytest.raises(InputError, match=r"^bad: invalid UTF-8 at byte offset 3 "):
        compare_documents(model, base, [Document("bad", b"ok \xe9")], max_length=L, stride=S)
