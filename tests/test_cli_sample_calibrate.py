"""``infolens sample`` and ``infolens calibrate`` (issue 11 item 5): thin commands whose
numbers equal the library's and independent references; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from infolens import sampling
from infolens.calibration import expected_calibration_error, fit_temperature, top_label
from infolens.cli import main
from infolens.documents import Document
from infolens.generation import generate
from infolens.models import load_model
from infolens.models.base import WindowDecoder
from infolens.score import score_documents

PROMPT = "the cat sat on the mat; the dog sat on the log; the cat "


def _run(*args: str, input: bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), input=input)


def test_sample_json_matches_the_library_and_references() -> None:
    r = _run("sample", "-p", PROMPT, "-t", "0.7", "--top-p", "0.9", "--temperatures", "0,1,2",
             "-n", "3", "--max-new-tokens", "12", "--seed", "4", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    m = load_model("ngram")
    z = WindowDecoder(m, np.frombuffer(PROMPT.encode(), np.uint8), 1).next_logits()[0]
    curve = sampling.entropy_curve(z, [0, 1, 2], base=2)
    got = [t["entropy_bits"] for t in d["temperatures"]]
    np.testing.assert_allclose(got, curve.entropy, rtol=1e-12, atol=1e-12)
    p = np.exp(z - np.logaddexp.reduce(z))
    assert d["distribution"]["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum(), rel=1e-12)
    # the chain: temperature then top-p (transformers' order); top-p keeps the smallest set
    # of the tempered distribution with mass >= 0.9
    zt = z / 0.7
    pt = np.exp(zt - np.logaddexp.reduce(zt))
    order = np.argsort(-pt, kind="stable")
    k = int(np.searchsorted(np.cumsum(pt[order]), 0.9) + 1)
    steps = {s["name"]: s for s in d["steps"]}
    assert steps["top_p"]["kept"] == k
    assert steps["top_p"]["mass"] == pytest.approx(pt[order[:k]].sum(), rel=1e-9)
    assert steps["top_p"]["kl_bits"] == pytest.approx(-np.log2(pt[order[:k]].sum()), rel=1e-9)
    want = generate(m, PROMPT, n=3, max_new_tokens=12, seed=4, temperature=0.7, top_p=0.9)
    assert d["samples"] == [json.loads(json.dumps(s.to_dict())) for s in want]


def test_sample_table_report_and_errors(tmp_path: Path) -> None:
    r = _run("sample", "-p", PROMPT, "--report", str(tmp_path / "s.html"))
    assert r.exit_code == 0, r.output
    assert "each truncation alone" in r.output and "effective vocabulary" in r.output
    html = (tmp_path / "s.html").read_text()
    assert "<svg" in html and "Truncation steps" in html
    for args, msg in [(["-t", "0"], "temperature"), (["--top-p", "1.5"], "top_p"),
                      (["--top-n-sigma", "1"], "top_n_sigma"),
                      (["--temperatures", "a,b"], "--temperatures"), (["-n", "-1"], "-n")]:  # fmt: skip
        r = _run("sample", "-p", "x", *args)
        assert r.exit_code == 2, (args, r.output)
        line = r.output.strip().splitlines()
        assert len(line) == 1 and msg in line[0], (args, r.output)
    r = _run("sample", "-p", "x", "--order", "llama.cpp", "--top-n-sigma", "1.5", "--top-k", "5")
    assert r.exit_code == 0, r.output


def _all_rows(model, docs):  # type: ignore[no-untyped-def]
    logits, labels = [], []
    score_documents(model, docs, compressors=False,
                    on_rows=lambda b: (logits.append(np.asarray(b.logits, np.float64).copy()),
                                       labels.append(b.token_ids.copy())))  # fmt: skip
    return np.concatenate(logits), np.concatenate(labels)


def test_calibrate_equals_references(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "README.md").read_text()[:6000]
    p = tmp_path / "a.txt"
    p.write_text(text)
    r = _run("calibrate", str(p), "--json", "--fit-rows", "100000", "--cv", "3")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    z, y = _all_rows(load_model("ngram"), [Document(str(p), text)])
    conf, ok = top_label(logits=z, labels=y)
    assert d["before"]["tokens"] == len(y)
    assert d["before"]["ece"] == pytest.approx(expected_calibration_error(conf, ok), rel=1e-9)
    assert d["before"]["accuracy"] == pytest.approx(ok.mean(), rel=1e-12)
    # every position is in the sample: the fit is fit_temperature on all of them
    fit = fit_temperature(z, y, cv=3, seed=0)
    assert d["temperature"] == pytest.approx(fit.temperature, rel=1e-6)
    assert d["fit"]["held_out"]["nll_nats"] == pytest.approx(fit.held_out.nll, rel=1e-6)
    assert d["held_out"] is None  # no position left outside the sample
    # a sample smaller than the corpus: held-out numbers over the positions outside it
    r = _run("calibrate", str(p), "--json", "--fit-rows", "1000", "--report", str(tmp_path / "c.html"))
    d = json.loads(r.output)
    assert d["fit"]["rows"] == 1000 and d["held_out"]["tokens"] == len(y) - 1000
    assert d["after"]["tokens"] == len(y)
    assert "Reliability" in (tmp_path / "c.html").read_text()


def test_calibrate_stdin_table_and_errors() -> None:
    r = _run("calibrate", "-", input=b"abc abd abe abf " * 200)
    assert r.exit_code == 0, r.output
    assert "cross-validated" in r.output and "fitted temperature" in r.output
    r = _run("calibrate", "-", "--cv", "1", input=b"x")
    assert r.exit_code == 2 and r.output.strip() == "infolens: error: --cv: expected >= 2, got 1"
