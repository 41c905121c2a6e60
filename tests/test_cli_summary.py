"""The terminal summary a newcomer reads, and the CLI's input guards: the windows line,
binary input, units and glosses, ``--max-document-bytes``, ``--model ''``,
``--special-tokens``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from infolens.cli import main
from infolens.documents import DEFAULT_MAX_DOCUMENT_BYTES
from infolens.report._common import INTERVAL_GLOSSES
from infolens.report.score_report import SUMMARY_KEYS

#: The first bytes of a PNG file: not valid UTF-8 (0x89 cannot start a character).
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 4
TEXT = "the quick brown fox jumps over the lazy dog. " * 4


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def one_line_error(res, exit_code: int = 2) -> str:  # type: ignore[no-untyped-def]
    assert res.exit_code == exit_code, res.output
    assert res.stdout == ""
    err = res.stderr.strip()
    assert err.splitlines() == [err] and err.startswith("infolens: error: ")
    return err


def value_of(summary: str, label: str) -> str:
    """The text after ``label`` on its summary line (label column, then the value)."""
    for line in summary.splitlines():
        if line.startswith(label + "  "):
            return line[len(label) :].strip()
    raise AssertionError(f"no line {label!r} in\n{summary}")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "b.png").write_bytes(PNG)
    return {"text": tmp_path / "a.txt", "png": tmp_path / "b.png"}


# ------------------------------------------------------------------ the windows line


def test_windows_line_of_a_model_without_context_limit(files) -> None:  # type: ignore[no-untyped-def]
    out = invoke("score", str(files["text"])).stdout
    assert out.splitlines()[1] == (
        "windows     none: one pass over each document (the model has no context limit), "
        "bos none"
    )
    assert "max_length -" not in out
    cmp = invoke("compare", str(files["text"]), "--model", "ngram:order=3", "--base", "ngram")
    assert cmp.exit_code == 0, cmp.output
    assert cmp.stdout.splitlines()[2] == (
        "windows     none: one pass over each document (neither model has a context limit), "
        "bos none"
    )


@pytest.mark.parametrize(("L", "S"), [(8, 3), (8, 8), (6, 1)])
def test_windows_line_states_the_context_each_token_had(files, tmp_path, L, S) -> None:  # type: ignore[no-untyped-def]
    tokens = tmp_path / "t.jsonl"
    res = invoke(
        "score", str(files["text"]), "--max-length", str(L), "--stride", str(S),
        "--tokens", str(tokens),
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[1] == f"windows     {L} input positions, stride {S}, bos none"
    low = L - S + 1
    said = f"{L}" if low == L else f"{low} to {L}"
    assert lines[2] == (
        f"            each token predicted once; past the first window with {said} "
        "positions of context"
    )
    # the claim, checked against the context of every scored token (--tokens)
    recs = [json.loads(x) for x in tokens.read_text().splitlines()]
    assert sorted(r["position"] for r in recs) == list(range(len(TEXT)))  # each token once
    later = [r["context"] for r in recs if r["context"] != r["position"]]  # past window 0
    assert later and min(later) == low and max(later) == L
    assert all(r["context"] <= L for r in recs)


# ------------------------------------------------------------------ binary input


def test_binary_input_is_noted_and_word_figures_omitted(files) -> None:  # type: ignore[no-untyped-def]
    res = invoke("score", str(files["png"]))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert (
        "note        the document is not UTF-8 text: scored as raw bytes; word figures omitted"
        in out.splitlines()
    )
    assert "word perplexity" not in out and "\nwords " not in out
    d = json.loads(invoke("score", str(files["png"]), "--json").stdout)
    assert d["binary_documents"] == 1 and d["documents"][0]["binary"] is True
    assert d["words"] is None and d["word_perplexity"] is None
    assert d["documents"][0]["words"] is None and d["documents"][0]["word_perplexity"] is None
    assert d["bytes"] == len(PNG) and d["tokens"] == len(PNG)  # one token per raw byte

    mixed = invoke("score", str(files["text"]), str(files["png"]))
    assert "note        1 of 2 documents is not UTF-8 text" in mixed.stdout


def test_text_input_keeps_word_figures_and_has_no_note(files) -> None:  # type: ignore[no-untyped-def]
    res = invoke("score", str(files["text"]))
    d = json.loads(invoke("score", str(files["text"]), "--json").stdout)
    assert "not UTF-8" not in res.stdout
    assert d["binary_documents"] == 0 and d["documents"][0]["binary"] is False
    assert d["words"] == len(TEXT.split())
    assert d["word_perplexity"] == pytest.approx(math.exp(d["nll_nats"] / len(TEXT.split())))
    assert value_of(res.stdout, "words") == f"{len(TEXT.split())} words"


# ------------------------------------------------------------------ units and glosses


def test_every_figure_has_its_unit_and_the_json_value(files) -> None:  # type: ignore[no-untyped-def]
    from infolens.cli._common import fmt

    args = ("score", str(files["text"]), "--no-compressors", "--block-tokens", "1000")
    out = invoke(*args).stdout
    d = json.loads(invoke(*args, "--json").stdout)
    expected = {
        "tokens scored": ("tokens", "tokens"),
        "perplexity": ("perplexity", "per token"),
        "total NLL": ("nll_nats", "nats"),
        "bits per token": ("bits_per_token", "bits/token"),
        "bytes": ("bytes", "bytes"),
        "bits per byte": ("bits_per_byte", "bits/byte"),
        "characters": ("characters", "code points"),
        "words": ("words", "words"),
        "word perplexity": ("word_perplexity", "per word"),
        "mean entropy": ("mean_entropy_bits", "bits/token"),
        "mean surprisal": ("mean_surprisal_bits", "bits/token"),
        "calibration gap": ("calibration_gap_bits", "bits/token"),
    }
    for label, (key, unit) in expected.items():
        assert value_of(out, label) == f"{fmt(d[key])} {unit}", label
    assert value_of(out, "  95% CI (iid tokens)") == fmt(d["perplexity_ci95_iid"])
    # one block of 1000 tokens: no batch-means interval, and the summary says why
    assert d["batch_means_blocks"] == 1 and d["perplexity_ci95_batch_means"] is None
    assert value_of(out, "  95% CI (batch means)") == "- (needs 2+ blocks)"
    assert "  stderr (batch means, 1 block of 1,000)  - (needs 2+ blocks)" in out
    two = invoke("score", str(files["text"]), "--block-tokens", "100")
    d = json.loads(invoke("score", str(files["text"]), "--block-tokens", "100", "--json").stdout)
    assert d["batch_means_blocks"] == 2
    assert value_of(two.stdout, "  95% CI (batch means)") == fmt(d["perplexity_ci95_batch_means"])


def test_rare_figures_are_glossed_with_the_reports_wording(files) -> None:  # type: ignore[no-untyped-def]
    out = invoke("score", str(files["text"])).stdout
    how = out[out.index("how to read") :]
    gloss = {key: text for key, _, text in SUMMARY_KEYS}
    for key in ("calibration_gap_bits", "word_perplexity", "perplexity", "bits_per_byte"):
        assert gloss[key] in how, key
    for text in INTERVAL_GLOSSES.values():
        assert text in how
    assert "  calibration gap: " in how and "  batch-means CI: " in how
    binary = invoke("score", str(files["png"])).stdout
    assert gloss["word_perplexity"] not in binary and gloss["calibration_gap_bits"] in binary


# ------------------------------------------------------------------ --max-document-bytes


def test_endless_input_stops_at_the_limit_in_one_line() -> None:
    res = subprocess.run(
        [sys.executable, "-c", "from infolens.cli import main; main()", "score", "/dev/zero",
         "--max-document-bytes", "1000000"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONUTF8": "1"},
    )  # fmt: skip
    assert res.returncode == 2 and res.stdout == ""
    err = res.stderr.strip()
    assert err.splitlines() == [err]
    assert err == (
        "infolens: error: /dev/zero: document larger than the maximum of 1,000,000 bytes "
        "(--max-document-bytes); an endless input such as /dev/zero?"
    )


def test_a_file_over_the_limit_is_refused_before_scoring(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import infolens.pipeline

    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_bytes(b"x" * 2000)
    small.write_bytes(b"y" * 1000)
    err = one_line_error(invoke("score", str(big), "--max-document-bytes", "1000"))
    assert err == (
        f"infolens: error: {big}: 2,000 bytes, larger than the maximum of 1,000 "
        "(--max-document-bytes)"
    )
    # exactly at the limit is read; the default is the library's
    d = json.loads(invoke("score", str(small), "--max-document-bytes", "1000", "--json").stdout)
    assert d["bytes"] == 1000
    assert DEFAULT_MAX_DOCUMENT_BYTES == 1 << 30
    assert "--max-document-bytes" in invoke("score", "--help").stdout
    # refused before any tokenisation (the first step of scoring a document)
    seen: list[int] = []
    real = infolens.pipeline.stream_documents

    def spy(model, sources, names, documents, *args, **kwargs):  # type: ignore[no-untyped-def]
        def taken():  # type: ignore[no-untyped-def]
            for doc in documents:
                seen.append(len(doc.text))
                yield doc

        return real(model, sources, names, taken(), *args, **kwargs)

    monkeypatch.setattr("infolens.score.stream_documents", spy)
    one_line_error(invoke("score", str(big), "--max-document-bytes", "1000"))
    assert seen == []
    for args in (
        ["--model", "ngram:order=3", "--base", "ngram"],
        ["--base", "ngram", "--save-base", str(tmp_path / "b.ilb")],
    ):
        res = invoke("compare", str(big), *args, "--max-document-bytes", "1000")
        assert "larger than the maximum of 1,000 (--max-document-bytes)" in one_line_error(res)
    assert not (tmp_path / "b.ilb").exists()


def test_max_document_bytes_below_one_is_refused(files) -> None:  # type: ignore[no-untyped-def]
    for cmd in (["score"], ["compare", "--model", "ngram", "--base", "ngram:order=3"]):
        err = one_line_error(invoke(*cmd, str(files["text"]), "--max-document-bytes", "0"))
        assert err == "infolens: error: --max-document-bytes: expected >= 1, got 0"


# ------------------------------------------------------------------ empty model specs


def test_empty_model_spec_is_an_error_not_the_default(files) -> None:  # type: ignore[no-untyped-def]
    path = str(files["text"])
    assert "got ''" in one_line_error(invoke("score", path, "--model", ""))
    assert one_line_error(invoke("score", path, "--model", "")).startswith(
        "infolens: error: --model: expected a spec"
    )
    err = one_line_error(invoke("compare", path, "--model", "", "--base", "ngram"))
    assert err.startswith("infolens: error: --model: expected a spec") and "got ''" in err
    err = one_line_error(invoke("compare", path, "--model", "ngram", "--base", ""))
    assert err.startswith("infolens: error: --base: expected a spec") and "got ''" in err
    err = one_line_error(invoke("compare", path, "--base", "", "--save-base", "x.ilb"))
    assert err.startswith("infolens: error: --base: expected a spec")


# ------------------------------------------------------------------ --special-tokens


def test_special_tokens_option(tiny_hf_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    literal = "<|endoftext|>"
    doc = tmp_path / "d.txt"
    doc.write_text(f"Return the value{literal} of the key.", encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(tiny_hf_dir)
    as_text = tok(literal, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert len(as_text) > 1
    spec = f"hf:{tiny_hf_dir}"
    tokens = {}
    for mode in (None, "parse", "text"):
        extra = [] if mode is None else ["--special-tokens", mode]
        res = invoke("score", str(doc), "--model", spec, "--device", "cpu", "--json", *extra)
        assert res.exit_code == 0, res.output
        tokens[mode] = json.loads(res.stdout)["tokens"]
    assert tokens[None] == tokens["parse"]  # parse is the default
    assert tokens["text"] - tokens["parse"] == len(as_text) - 1
    err = one_line_error(invoke("score", str(doc), "--special-tokens", "text"))
    assert "--special-tokens: only apply to hf: models" in err
    res = invoke("score", str(doc), "--model", spec, "--special-tokens", "literal")
    assert res.exit_code == 2 and "'literal' is not one of 'parse', 'text'" in res.stderr
