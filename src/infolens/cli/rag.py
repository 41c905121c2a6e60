"""``infolens rag-gain``: how much each retrieved context tells a model about an answer.
Only options and formatting: the numbers come from :func:`infolens.rag.context_gain`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt
from infolens.errors import InputError
from infolens.models import DEFAULT_MODEL


def _contexts(path: str) -> list[str]:
    out: list[str] = []
    for i, line in enumerate(_lines(path), 1):
        row = _json(line, path, i)
        if isinstance(row, dict):
            row = row.get("text", row.get("context"))
        if not isinstance(row, str):
            raise InputError(
                f"CONTEXTS: line {i} of {path!r}: expected a string or an object with "
                '"text" (or "context")'
            )
        out.append(row)
    if not out:
        raise InputError(f"CONTEXTS: expected at least one context in {path!r}, got none")
    return out


def _records(path: str) -> list[dict[str, Any]]:
    out = []
    for i, line in enumerate(_lines(path), 1):
        row = _json(line, path, i)
        ok = isinstance(row, dict) and isinstance(row.get("question"), str)
        ok = ok and isinstance(row.get("answer"), str) and isinstance(row.get("contexts"), list)
        if not ok:
            raise InputError(
                f"FILE: line {i} of {path!r}: expected an object with \"question\", \"answer\" "
                'and "contexts" (a list of strings)'
            )
        out.append(row)
    if not out:
        raise InputError(f"FILE: expected at least one record in {path!r}, got none")
    return out


def _lines(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"FILE: expected a readable file, got {path!r} (not found)")
    return [ln for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _json(line: str, path: str, i: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(f"FILE: line {i} of {path!r} is not JSON ({e.msg})") from e


def _table(rec: dict[str, Any]) -> str:
    lines = [f"question  {rec['question']}", f"answer    {rec['answer']}", "",
             f"{'rank':>4}  {'gain bits':>10}  {'bits/token':>10}  context"]  # fmt: skip
    for rank, g in enumerate(rec["ranking"], 1):
        text = g["context"].replace("\n", " ")
        text = text if len(text) <= 60 else text[:57] + "..."
        lines.append(f"{rank:>4}  {fmt(g['gain_bits'], 3):>10}  {fmt(g['gain_bits_per_token'], 3):>10}  {text}")
    return "\n".join(lines)


# fmt: off
@main.command("rag-gain")
@click.argument("path", metavar="FILE")
@click.option("--model", "-m", "model_spec", default=None, metavar="SPEC",
              help=f"Model (default {DEFAULT_MODEL}: built in, offline).")
@click.option("--question", default=None, help="The question (FILE then holds the contexts).")
@click.option("--answer", default=None, help="The answer to score (with --question).")
@click.option("--template", default=None, help="Prompt with {context} and {question}.")
@click.option("--template-without", default=None, help="Prompt with {question} only.")
@click.option("--report", "report_path", default=None, metavar="FILE.html",
              help="Also write an HTML page with the answer tokens coloured by gain.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@debug_option
def rag_gain(path: str, model_spec: str | None, question: str | None, answer: str | None,
             template: str | None, template_without: str | None, report_path: str | None,
             as_json: bool) -> None:
    """Rank retrieved contexts by the information they give the model about the answer:
    log2 p(answer | context, question) - log2 p(answer | question), in bits.

    With --question and --answer, FILE is a JSON Lines file of contexts (strings, or
    objects with "text"); without, FILE holds evaluation records {"question", "answer",
    "contexts": [...]}, one per line. Only the answer's tokens are scored.

    \b
    Examples:
      infolens rag-gain --question "Who wrote Hamlet?" --answer Shakespeare ctx.jsonl
      infolens rag-gain eval.jsonl --model hf:gpt2 --json
    """
    from infolens import rag
    from infolens.models import load_model

    if (question is None) != (answer is None):
        raise InputError("--answer: expected --question and --answer together, or neither")
    if report_path is not None and Path(report_path).resolve() == Path(path).resolve():
        raise InputError(f"--report: expected a file other than the input, got {report_path!r}")
    records: list[dict[str, Any]] = (
        [{"question": question, "answer": answer, "contexts": _contexts(path)}]
        if question is not None else _records(path))
    model = load_model(model_spec or DEFAULT_MODEL)
    kw = {k: v for k, v in (("template", template), ("template_without", template_without))
          if v is not None}
    out = []
    for rec in records:
        gains = rag.context_gain(model, rec["question"], rec["answer"], rec["contexts"], **kw)
        ranking = sorted((g.to_dict() for g in gains), key=lambda g: -g["gain_bits"])
        out.append({"question": rec["question"], "answer": rec["answer"], "ranking": ranking})
    result = {"model": model.name, "unit": "bits", "records": out,
              "template": kw.get("template", rag.TEMPLATE),
              "template_without": kw.get("template_without", rag.TEMPLATE_WITHOUT)}
    if report_path is not None:
        from infolens.report.rag_report import write_rag_report

        write_rag_report(report_path, result)
    if as_json:
        echo_json(result)
    else:
        emit("\n\n".join(_table(r) for r in out)
             + "\n\nhow to read (docs/rag.md): gain > 0, the context made the answer more"
             "\nlikely; 0, it told the model nothing; < 0, it misled it.")
# fmt: on
