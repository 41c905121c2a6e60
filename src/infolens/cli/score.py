"""``infolens score``: perplexity, bits per byte and calibration of a model on documents.

The command only reads options, calls :func:`infolens.score.score_documents` and formats
the :class:`~infolens.score.ScoreResult` it returns; it does no arithmetic of its own.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable
from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import (
    TextKeeper,
    debug_option,
    document_table,
    echo_json,
    emit,
    fmt,
    note_empty_documents,
    windows_lines,
)
from infolens.cli._options import (
    Progress,
    check_hf_options,
    check_outputs,
    engine_options,
    input_bytes,
    load_model_option,
    ray_engine,
    run_options,
)
from infolens.documents import check_max_bytes
from infolens.errors import InputError
from infolens.models import DEFAULT_MODEL
from infolens.score import Document, RowBatch, read_documents, score_documents
from infolens.stream import DEFAULT_BLOCK_TOKENS
from infolens.tokens import is_parquet, open_token_writer, token_decoder

#: Bytes of text rendered as coloured tokens in ``--report`` (numbers cover everything).
RENDER_CAP = 250_000
#: The same for byte-level models (one token per byte).
BYTE_LEVEL_RENDER_CAP = 50_000
_COMPRESSOR_LABELS = {"gzip_9": "gzip -9", "bz2_9": "bz2 -9", "xz_9e": "xz -9e"}


class _TokenOutputs:
    """The ``on_rows`` callback: records to the ``--tokens`` file (JSONL or Parquet) and
    the rows to the ``--report`` as they stream (the report makes records only for the
    text it renders), and the scored bytes to the progress bar."""

    def __init__(
        self, model: Any, keeper: TextKeeper | None, writer: Any, report: Any, progress: Progress
    ) -> None:
        self.keeper = keeper
        self.writer = writer
        self.report = report
        self.progress = progress
        self.decode = token_decoder(model)
        self.report_texts: dict[str, str | bytes] = {}
        if report is not None:
            report.texts = self.report_texts  # looked up once per document, when it starts
        self.current = -1

    def __call__(self, batch: RowBatch) -> None:
        self.progress.rows(batch.document, batch.offsets)
        if self.keeper is None:
            return
        if batch.document != self.current:
            self.current = batch.document
            self.keeper.offer(self.report_texts, batch.document, batch.name)
        data = self.keeper.text(batch.document)
        if self.writer is not None:
            self.writer.write_rows(batch, data, self.decode)
        if self.report is not None:
            self.report.add_rows(batch, data, self.decode)


def _summary(d: dict[str, Any]) -> str:
    """The readable table: each figure with its unit, then how to read the rarer ones."""
    from infolens.report._common import INTERVAL_GLOSSES
    from infolens.report.score_report import SUMMARY_KEYS

    gloss = {key: how for key, _, how in SUMMARY_KEYS}
    n_docs, binary = d["documents_count"], d.get("binary_documents", 0)
    lines = [
        f"model       {d['model']}",
        *windows_lines(d),
        f"documents   {n_docs:,}"
        + (f" ({d['empty_documents']:,} with no tokens scored)" if d["empty_documents"] else ""),
    ]
    if binary:
        which = "the document is" if n_docs == 1 else f"{binary:,} of {n_docs:,} documents " + (
            "is" if binary == 1 else "are"
        )
        lines.append(
            f"note        {which} not UTF-8 text: scored as raw bytes; word figures omitted"
        )
    lines.append("")
    k = d["batch_means_blocks"]
    bm = f"batch means, {k:,} block{'' if k == 1 else 's'} of {d['batch_means_block_tokens']:,}"
    few = "(needs 2+ blocks)" if k < 2 and d["tokens"] else ""
    # (label, value, unit): the unit follows the number
    rows: list[tuple[str, Any, str]] = [
        ("tokens scored", d["tokens"], "tokens"),
        ("perplexity", d["perplexity"], "per token"),
        ("  stderr (iid tokens, llama.cpp)", d["perplexity_stderr_iid"], ""),
        ("  95% CI (iid tokens)", d["perplexity_ci95_iid"], ""),
        (f"  stderr ({bm})", d["perplexity_stderr_batch_means"], few),
        ("  95% CI (batch means)", d["perplexity_ci95_batch_means"], few),
        ("total NLL", d["nll_nats"], "nats"),
        ("bits per token", d["bits_per_token"], "bits/token"),
        ("bytes", d["bytes"], "bytes"),
        ("bits per byte", d["bits_per_byte"], "bits/byte"),
        ("characters", d["characters"], "code points"),
    ]
    if not binary:
        rows += [
            ("words", d["words"], "words"),
            ("word perplexity", d["word_perplexity"], "per word"),
        ]
    entropy = "mean entropy" + ("" if "entropy_is" not in d else " (upper bound)")
    rows += [
        (entropy, d["mean_entropy_bits"], "bits/token"),
        ("mean surprisal", d["mean_surprisal_bits"], "bits/token"),
        ("calibration gap", d["calibration_gap_bits"], "bits/token"),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    for label, value, unit in rows:
        if value is None:  # a unit after "-" only where it says why
            unit = unit if unit.startswith("(") else ""
        elif unit.startswith("("):
            unit = ""
        lines.append(f"{label:<{width}}{fmt(value)}" + (f" {unit}" if unit else ""))
    how = [
        ("perplexity", gloss["perplexity"]),
        ("iid CI", INTERVAL_GLOSSES["iid"]),
        ("batch-means CI", INTERVAL_GLOSSES["batch_means"]),
        ("bits per byte", gloss["bits_per_byte"]),
    ]
    if not binary:
        how.append(("word perplexity", gloss["word_perplexity"]))
    how.append(("calibration gap", gloss["calibration_gap_bits"]))
    lines += ["", "how to read (docs/scoring.md):"]
    w = max(len(k) for k, _ in how) + 2
    lines += [f"  {k + ':':<{w}}{v}" for k, v in how]
    comp = d.get("compressors")
    if comp:
        lines.append("")
        lines.append(
            "bits per byte beside general-purpose compressors (an upper bound on the entropy rate):"
        )
        lines.append(f"  {'model':<10}{fmt(d['bits_per_byte'])} bits/byte")
        for key, label in _COMPRESSOR_LABELS.items():
            lines.append(f"  {label:<10}{fmt(comp[key]['bits_per_byte'])} bits/byte")
    lines += document_table(
        d["documents"],
        [
            ("tokens", 10, lambda x: fmt(x["tokens"])),
            ("perplexity", 14, lambda x: fmt(x["perplexity"])),
            ("bits/token", 12, lambda x: fmt(x["bits_per_token"])),
            ("bits/byte", 11, lambda x: fmt(x["bits_per_byte"])),
        ],
    )
    return "\n".join(lines)


# fmt: off
@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "model_spec", default=None, metavar="SPEC",
              help="Model spec: 'ngram' (default), 'ngram:order=4', 'ngram:FILE', 'hf:PATH_OR_ID', "
              "'gguf:FILE[,n_ctx=N,...]' (docs/gguf.md), 'openai:URL#MODEL,tokenizer=SPEC' "
              "(docs/openai.md).")
@run_options()
@click.option("--block-tokens", type=int, default=DEFAULT_BLOCK_TOKENS, show_default=True,
              help="Batch-means block size for the correlation-aware interval.")
@click.option("--compressors/--no-compressors", default=None,
              help="Compare with gzip/bz2/xz (default: for byte-level models).")
@click.option("--tokens", "tokens_path", default=None, metavar="FILE.jsonl|FILE.parquet",
              help="Write one record per scored token: text, byte span, surprisal and "
              "entropy in bits, rank, context, top-5 alternatives; JSON Lines, or Parquet "
              "for a .parquet name (about 10x smaller; needs pyarrow).")
@click.option("--report", "report_path", default=None, metavar="FILE.html",
              help="Write a self-contained HTML report: text coloured by surprisal with "
              "tooltips, histograms, surprisal by position, per-document table.")
@click.option("--plots", "plots_dir", default=None, metavar="DIR",
              help="With --report: also write its figures as PNG files to DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar or notes on stderr. The bar (only when stderr is a "
              "terminal) counts bytes of the inputs scored out of their total size.")
@engine_options()
@debug_option
def score(
    paths: tuple[str, ...],
    model_spec: str | None,
    max_length: int | None,
    stride: int | None,
    bos: str | None,
    jsonl_field: str | None,
    glob: str | None,
    max_document_bytes: int,
    hf: dict[str, Any],
    block_tokens: int,
    compressors: bool | None,
    tokens_path: str | None,
    report_path: str | None,
    plots_dir: str | None,
    as_json: bool,
    quiet: bool,
    engine: str,
    ray_options: dict[str, Any],
) -> None:
    """Score documents PATH... (files, '-' for stdin, directories with --glob) with a model.

    Reports corpus-level perplexity (exp of total NLL / total tokens), bits per token and
    per byte, word perplexity, mean entropy and surprisal in bits and their gap, with two
    intervals for perplexity; see docs/scoring.md for the exact definitions.

    \b
    Examples:
      infolens score README.md                         # built-in byte-level ngram model
      infolens score --model hf:gpt2 --max-length 1024 --stride 512 wiki.txt
      infolens score --model hf:./my-model --jsonl text data.jsonl --json
      infolens score notes.md --tokens tokens.jsonl --report report.html --plots plots/
      infolens score corpus/ --glob '*.txt' --engine ray --workers 4 --json
    """
    spec = DEFAULT_MODEL if model_spec is None else model_spec  # '' is an error, not ngram
    check_hf_options(hf, [spec], shown=f", got --model {spec}")
    check_max_bytes(max_document_bytes)
    if block_tokens < 1:
        raise InputError(f"--block-tokens: expected >= 1, got {block_tokens}")
    if plots_dir is not None and report_path is None:
        raise InputError("--plots: only with --report FILE.html (the figures are the report's)")
    to_stderr = check_outputs(
        {"--tokens": tokens_path, "--report": report_path, "--plots": plots_dir},
        paths,
        directories=("--plots", "--tokens") if engine == "ray" else ("--plots",),
    )
    if plots_dir is not None:
        from infolens.report import plots

        if not plots.have_matplotlib():
            raise InputError("--plots: matplotlib is not installed (pip install 'infolens[report]')")
    if tokens_path is not None and is_parquet(tokens_path):
        from infolens._tokens_parquet import require_pyarrow

        require_pyarrow("--tokens")
    if engine == "ray":
        _score_on_ray(paths, spec, hf, max_length, stride, bos, jsonl_field, glob,
                      max_document_bytes, block_tokens, compressors, tokens_path, report_path,
                      plots_dir, as_json, quiet, to_stderr, ray_options)  # fmt: skip
        return
    model = load_model_option("--model", spec, hf)
    docs: Iterable[Document] = read_documents(
        paths, jsonl_field=jsonl_field, glob=glob, allow_bytes=bool(model.byte_level),
        max_bytes=max_document_bytes,
    )
    bar = not quiet and sys.stderr.isatty()
    progress = Progress(bar, "scoring", input_bytes(paths, glob) if bar else None)
    docs = progress.documents(docs)
    per_token = tokens_path is not None or report_path is not None
    with contextlib.ExitStack() as stack:
        # Both files are written atomically: each appears only when everything succeeded.
        writer = (
            stack.enter_context(open_token_writer(tokens_path)) if tokens_path is not None else None
        )
        report = None
        on_rows = None
        keeper = None
        if per_token:
            keeper = TextKeeper(docs)
            docs = keeper
            if report_path is not None:
                from infolens.report import ScoreReport

                # A byte-level model has one token per byte: cap the coloured text at
                # fewer bytes so the page stays light (about 50,000 tokens either way).
                cap = BYTE_LEVEL_RENDER_CAP if model.byte_level else RENDER_CAP
                report = ScoreReport(max_rendered_bytes=cap)
        if per_token or bar:
            on_rows = _TokenOutputs(model, keeper, writer, report, progress)
        try:
            # ranks for every token only for --tokens: the report ranks the tokens it shows
            result = score_documents(
                model, docs, max_length=max_length, stride=stride, bos=bos,
                block_tokens=block_tokens, compressors=compressors, progress=progress,
                ranks=tokens_path is not None, on_rows=on_rows,
            )
        finally:
            progress.close()
        out = result.to_dict()
        if report is not None:
            assert report_path is not None
            t0 = time.perf_counter()
            report.write(report_path, result=out, plots_dir=plots_dir)
            if not quiet and sys.stderr.isatty():
                click.echo(f"infolens: report written to {report_path} "
                           f"({time.perf_counter() - t0:.1f} s)", err=True)
    _print_result(out, as_json, quiet, to_stderr)
# fmt: on


def _print_result(out: dict[str, Any], as_json: bool, quiet: bool, to_stderr: bool) -> None:
    """The note on empty documents, then the JSON or the summary (both engines)."""
    if not quiet:
        note_empty_documents(out["documents"], "scored (perplexity null)")
    if as_json:
        echo_json(out, err=to_stderr)
    else:
        emit(_summary(out), err=to_stderr)


def _score_on_ray(
    paths: tuple[str, ...], spec: str, hf: dict[str, Any], max_length: int | None,
    stride: int | None, bos: str | None, jsonl_field: str | None, glob: str | None,
    max_document_bytes: int, block_tokens: int, compressors: bool | None,
    tokens_path: str | None, report_path: str | None, plots_dir: str | None,
    as_json: bool, quiet: bool, to_stderr: bool, ray_options: dict[str, Any],
) -> None:  # fmt: skip
    """``--engine ray``: the same result from :func:`infolens.distributed.score_documents_ray`
    (``--tokens`` names a directory of shards; ``--report`` has no per-token sections)."""
    from infolens.distributed import score_documents_ray

    opts = ray_engine(ray_options)
    if tokens_path is not None and is_parquet(tokens_path):
        raise InputError("--tokens: with --engine ray, a directory for JSONL shards, not a .parquet file")
    docs = read_documents(
        paths, jsonl_field=jsonl_field, glob=glob, allow_bytes=spec.split(":")[0] == "ngram",
        max_bytes=max_document_bytes,
    )  # fmt: skip
    notes = (lambda m: click.echo(m, err=True)) if not quiet else None
    result = score_documents_ray(
        spec, docs, model_options=hf if spec.startswith("hf:") else {}, max_length=max_length,
        stride=stride, bos=bos, block_tokens=block_tokens, compressors=compressors,
        tokens_dir=tokens_path, options=opts, notify=notes,
    )  # fmt: skip
    out = result.to_dict()
    if report_path is not None:
        from infolens.report import ScoreReport

        ScoreReport().write(report_path, result=out, plots_dir=plots_dir)
    _print_result(out, as_json, quiet, to_stderr)
