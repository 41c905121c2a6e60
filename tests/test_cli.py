"""CLI plumbing: one-line errors for bad input, tracebacks for bugs, ``--debug``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from infolens.cli import main
from infolens.errors import InputError


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["entropy", "--p", "0.5,0.5", "--base", "-1"], "--base: expected a positive number"),
        (["entropy", "--p", "0.5,0.6"], "--p: expected probabilities that sum to 1"),
        (["kl", "--p", "0.5,0.5", "--q", "1,2,3"], "shape mismatch"),
        (["kl", "--logits", "--p", "1,inf", "--q", "1,2"], "--p: expected finite values"),
        (["entropy", "--p", "0.5,0.5", "--q", "1"], "--q: entropy takes one distribution"),
        (["kl", "--logits", "--normalize", "--p", "1,2", "--q", "1,2"], "--normalize: not with"),
        (["tv", "--p", "0.5,0.5", "--q", "0.5,0.5", "--base", "2"], "--base: tv is"),
    ],
)
def test_measure_bad_input_is_one_line(args: list[str], message: str) -> None:
    res = invoke("measure", *args)
    assert res.exit_code == 2 and res.stdout == ""
    err = res.stderr.strip()
    assert err.splitlines() == [err] and err.startswith("infolens: error: ") and message in err
    assert "pass --normalize" in invoke("measure", "entropy", "--p", "0.5,0.6").stderr


def test_debug_shows_the_exception(tmp_path) -> None:
    missing = str(tmp_path / "nope.txt")
    res = invoke("score", missing)
    assert res.exit_code == 2 and "nope.txt: no such file" in res.stderr
    res = invoke("score", missing, "--debug")
    assert isinstance(res.exception, InputError)


def test_internal_value_error_is_not_reported_as_bad_input(tmp_path, monkeypatch) -> None:
    import infolens.cli.score as cli_score

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("internal bug")

    monkeypatch.setattr(cli_score, "score_documents", broken)
    (tmp_path / "a.txt").write_text("abc")
    res = invoke("score", str(tmp_path / "a.txt"))
    assert res.exit_code == 1 and isinstance(res.exception, ValueError)
    assert "infolens: error" not in res.stderr


def test_text_keeper_keys_by_index_so_a_file_given_twice_keeps_both() -> None:
    from infolens.cli._common import TextKeeper
    from infolens.score import Document

    keeper = TextKeeper([Document("a", "first"), Document("a", "second"), Document("b", "x")])
    assert [d.text for d in keeper] == ["first", "second", "x"]
    texts: dict[str, str | bytes] = {}
    assert keeper.offer(texts, 0, "a") == b"first" and texts == {"a": b"first"}
    texts.pop("a")  # the report takes it
    assert keeper.offer(texts, 1, "a") == b"second" and texts == {"a": b"second"}
    assert keeper.offer(texts, 2, "b") == b"x" and list(keeper.texts) == [2]


def test_document_table_and_empty_notes(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("abc abc")
    (tmp_path / "e.txt").write_text("")
    res = invoke("score", str(tmp_path / "a.txt"), str(tmp_path / "e.txt"))
    assert res.exit_code == 0
    assert "e.txt: empty document, 0 tokens scored (perplexity null)" in res.stderr
    table = res.stdout[res.stdout.index("\ndocument ") :].splitlines()[1:]
    assert table[0].split()[-4:] == ["tokens", "perplexity", "bits/token", "bits/byte"]
    assert table[2].split()[1:] == ["0", "-", "-", "-"]
    res = invoke(
        "compare", str(tmp_path / "a.txt"), str(tmp_path / "e.txt"),
        "--model", "ngram:order=2", "--base", "ngram",
    )  # fmt: skip
    assert res.exit_code == 0
    assert "e.txt: no token to predict, 0 tokens compared" in res.stderr
    assert res.stdout.rstrip().splitlines()[-1].split()[1:] == ["0"]
