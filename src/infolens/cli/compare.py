"""``infolens compare``: a model against a base model, token by token (llama.cpp
``--kl-divergence`` and more).

The command only reads options, calls :func:`infolens.compare.compare_documents` (or
:func:`infolens.compare.save_base_distributions`) and formats what it returns.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from infolens.basefile import MAX_K
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
from infolens.documents import check_max_bytes, read_documents
from infolens.errors import InputError


def _pm(v: Any, se: Any, digits: int = 6, scale: float = 1.0, unit: str = "") -> str:
    if v is None:
        return "-"
    s = f"{v * scale:.{digits}f}"
    if se is not None:
        s += f" ± {se * scale:.{digits}f}"
    return s + unit


def _ci(bm: Any, digits: int = 6, scale: float = 1.0, unit: str = "") -> str:
    if not bm or bm.get("low") is None:
        return ""
    return (
        f"   [95% CI, batch means of {bm['blocks']:,} blocks: "
        f"{bm['low'] * scale:.{digits}f} – {bm['high'] * scale:.{digits}f}{unit}]"
    )


def summary_text(d: dict[str, Any]) -> str:
    """The readable table: llama.cpp ``--kl-divergence``'s sections, then infolens extras."""
    lb = d.get("kl_is_lower_bound")
    lines = [
        f"model       {d['model']}",
        f"base        {d['base']}"
        + (f"  (saved top-{d['base_top_k']} file {d['base_file']})" if lb and d["base_file"]
           else f"  (a server's top-{d['base_top_k']} log-probs)" if lb else ""),
        *windows_lines(d, unbounded="neither model has a context limit"),
        f"documents   {d['documents_count']:,}",
        f"tokens      {d['tokens']:,}",
    ]
    if not d["tokens"]:
        lines.append("no token scored: nothing to compare")
        return "\n".join(lines)
    w = 32
    lines += [
        "",
        "====== Perplexity statistics ======",
        f"{'Mean PPL(Q)':<{w}}: {_pm(d['ppl_model'], d['ppl_model_se'])}",
        f"{'Mean PPL(base)':<{w}}: {_pm(d['ppl_base'], d['ppl_base_se'])}",
        f"{'Cor(ln(PPL(Q)), ln(PPL(base)))':<{w}}: {_pm(d['cor_ln_ppl'], None, 2, 100, ' %')}",
        f"{'Mean ln(PPL(Q)/PPL(base))':<{w}}: {_pm(d['ln_ppl_ratio'], d['ln_ppl_ratio_se'])}"
        + _ci(d.get("ln_ppl_ratio_batch_means")),
        f"{'Mean PPL(Q)/PPL(base)':<{w}}: {_pm(d['ppl_ratio'], d['ppl_ratio_se'])}",
        f"{'Mean PPL(Q)-PPL(base)':<{w}}: {_pm(d['ppl_diff'], None)}",
        "",
        "====== KL divergence statistics (nats) ======"
        + ("  LOWER BOUNDS: base saved as top-k + rest" if lb else ""),
        f"{'Mean    KLD(base‖Q)':<{w}}: {_pm(d['kl_base_model'], d['kl_base_model_se'])}"
        + _ci(d.get("kl_base_model_batch_means")),
    ]
    labels = {"max": "Maximum", "min": "Minimum", "50": "Median"}
    for key, v in d["kl_percentiles"].items():
        label = labels.get(key, f"{key}%")
        lines.append(f"{label + ' KLD':<{w}}: {fmt(v, 6)}")
    lines += [
        f"{'Mean    KLD(Q‖base)':<{w}}: {_pm(d['kl_model_base'], d['kl_model_base_se'])}"
        + "   (exllamav2 model_diff's direction)",
        f"{'Mean    JS(base, Q)':<{w}}: {_pm(d['js'], d['js_se'])}",
        "",
        "====== Token probability statistics ======",
    ]
    dp = d["delta_p"]
    lines.append(
        f"{'Mean    Δp':<{w}}: {_pm(dp['mean'], dp['se'], 3, 100, ' %')}"
        + _ci(dp["batch_means"], 3, 100, " %")
    )
    for key, v in dp["percentiles"].items():
        label = labels.get(key, f"{key}%")
        lines.append(f"{label + ' Δp':<{w}}: {_pm(v, None, 3, 100, ' %')}")
    lines += [
        f"{'RMS Δp':<{w}}: {_pm(dp['rms'], None, 3, 100, ' %')}",
        f"{'Same top p':<{w}}: {_pm(d['same_top1'], d['same_top1_se'], 3, 100, ' %')}"
        + _ci(d.get("same_top1_batch_means"), 3, 100, " %"),
        f"{'Top-5 overlap':<{w}}: {_pm(d['top5_overlap'], None, 3, 100, ' %')}",
        f"{'Top-10 overlap':<{w}}: {_pm(d['top10_overlap'], None, 3, 100, ' %')}",
    ]
    if lb:
        lines += [
            "",
            f"note: the base was read from a top-{d['base_top_k']} "
            + ("file" if d["base_file"] else "server answer (docs/openai.md)")
            + ": KL and JS are computed on {top-k, rest} and are lower bounds of the exact "
            "values (docs/compare.md).",
        ]

    def cell(key: str, spec: str, scale: float = 1.0, unit: str = "") -> Any:
        return lambda x: "" if not x["tokens"] else f"{scale * x[key]:{spec}}{unit}"

    lines += document_table(
        d["documents"],
        [
            ("tokens", 10, lambda x: fmt(x["tokens"])),
            ("KLD", 12, cell("kl_base_model", ".6f")),
            ("PPL(Q)", 12, cell("ppl_model", ".4f")),
            ("PPL(base)", 12, cell("ppl_base", ".4f")),
            ("same top", 10, cell("same_top1", ".2f", 100, "%")),
        ],
    )
    return "\n".join(lines)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--model",
    "model_spec",
    default=None,
    metavar="SPEC",
    help="The compared model (llama.cpp's Q): 'ngram:order=3', 'hf:PATH_OR_ID', "
    "'gguf:FILE'...",
)
@click.option(
    "--base",
    "base_spec",
    default=None,
    metavar="SPEC",
    help="The reference model (same vocabulary and tokenizer).",
)
@click.option(
    "--base-file",
    default=None,
    metavar="FILE",
    help="Compare against base distributions saved with --save-base (KL is a lower bound).",
)
@click.option(
    "--save-base",
    default=None,
    metavar="FILE",
    help="Run only --base and save its top-k distributions to FILE.",
)
@click.option(
    "--top-k",
    type=int,
    default=None,
    metavar="K",
    help="With --save-base: tokens kept per position (default 32; 8K+16 bytes per token).",
)
@run_options(two_models=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--report",
    "report_path",
    default=None,
    metavar="FILE.html",
    help="Also write a self-contained HTML report.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress or notes on stderr.")
@engine_options()
@debug_option
def compare(
    paths: tuple[str, ...],
    model_spec: str | None,
    base_spec: str | None,
    base_file: str | None,
    save_base: str | None,
    top_k: int | None,
    max_length: int | None,
    stride: int | None,
    bos: str | None,
    jsonl_field: str | None,
    glob: str | None,
    max_document_bytes: int,
    hf: dict[str, Any],
    as_json: bool,
    report_path: str | None,
    quiet: bool,
    engine: str,
    ray_options: dict[str, Any],
) -> None:
    """Compare --model with --base on documents PATH..., token by token.

    Per scored token: KL(base‖model) (llama.cpp's KLD), KL(model‖base), JS, both
    surprisals and entropies, Δp = p_model − p_base of the observed token, top-1 agreement
    and top-5/10 overlap; summarised as llama.cpp --kl-divergence does (docs/compare.md).

    \b
    Examples:
      infolens compare README.md --model ngram:order=3 --base ngram:order=6
      infolens compare wiki.txt --model hf:./q4 --base hf:./f16 --report cmp.html
      infolens compare wiki.txt --base hf:./f16 --save-base f16.ilb --top-k 32
      infolens compare wiki.txt --model hf:./q4 --base-file f16.ilb --json
      infolens compare corpus/ --glob '*.txt' --model hf:./q4 --base hf:./f16 --engine ray
    """
    from infolens.compare import compare_documents, save_base_distributions

    check_hf_options(hf, [s for s in (model_spec, base_spec) if s])
    check_max_bytes(max_document_bytes)
    if top_k is not None and save_base is None:
        raise InputError("--top-k: only applies with --save-base")
    if top_k is not None and not 1 <= top_k <= MAX_K:
        raise InputError(f"--top-k: expected 1..{MAX_K}, got {top_k}")
    if save_base is not None:
        if base_spec is None:
            raise InputError(
                "--save-base: needs --base SPEC (the model whose distributions are saved)"
            )
        if model_spec is not None or base_file is not None or report_path is not None:
            raise InputError(
                "--save-base: runs only the base model; drop --model/--base-file/--report "
                "and compare later with --model SPEC --base-file FILE"
            )
    else:
        if model_spec is None:
            raise InputError(
                "--model: required (the compared model); or --save-base FILE with --base"
            )
        if (base_spec is None) == (base_file is None):
            raise InputError("expected exactly one of --base SPEC or --base-file FILE")
    to_stderr = check_outputs(
        {"--report": report_path, "--save-base": save_base},
        [*paths, *([base_file] if base_file is not None else [])],
    )

    if engine == "ray":
        if save_base is not None or base_file is not None:
            raise InputError(
                "--engine ray: compares a --model with a --base model; --save-base and "
                "--base-file run in one process"
            )
        assert model_spec is not None and base_spec is not None
        _compare_on_ray(paths, model_spec, base_spec, hf, max_length, stride, bos,
                        jsonl_field, glob, max_document_bytes, report_path, as_json, quiet,
                        to_stderr, ray_options)  # fmt: skip
        return

    bar = not quiet and sys.stderr.isatty()
    # --save-base reports no rows: its bar counts the documents the library has taken
    progress = Progress(bar, "saving" if save_base else "comparing",
                        input_bytes(paths, glob) if bar else None, rows=save_base is None)  # fmt: skip
    if save_base is not None:
        assert base_spec is not None
        base = load_model_option("--base", base_spec, hf)
        docs = progress.documents(read_documents(
            paths, jsonl_field=jsonl_field, glob=glob, allow_bytes=bool(base.byte_level),
            max_bytes=max_document_bytes,
        ))  # fmt: skip
        try:
            info = save_base_distributions(
                base, docs, save_base, k=32 if top_k is None else top_k,
                max_length=max_length, stride=stride, bos=bos, progress=progress,
            )  # fmt: skip
        finally:
            progress.close()
        if as_json:
            echo_json(info, err=to_stderr)
        else:
            emit(
                f"saved {info['records']:,} tokens of {len(info['documents']):,} documents "
                f"({info['model']}, top-{info['k']}) to {info['path']}: {info['bytes']:,} bytes, "
                f"{info['bytes_per_token']} bytes per token",
                err=to_stderr,
            )
        return

    assert model_spec is not None
    model = load_model_option("--model", model_spec, hf)
    base_obj: Any
    if base_file is not None:
        from infolens.basefile import BaseFile

        base_obj = BaseFile(base_file)
        allow_bytes = bool(model.byte_level)
    else:
        assert base_spec is not None
        base_obj = load_model_option("--base", base_spec, hf)
        allow_bytes = bool(model.byte_level and base_obj.byte_level)
    docs_iter: Any = progress.documents(
        read_documents(
            paths, jsonl_field=jsonl_field, glob=glob, allow_bytes=allow_bytes,
            max_bytes=max_document_bytes,
        )
    )  # fmt: skip
    report = None
    if report_path is not None:
        from infolens.report.compare_report import CompareReport

        texts: dict[str, str | bytes] = {}
        report = CompareReport(
            documents_text=texts,
            decode_model=getattr(model, "decode_token", None),
            decode_base=getattr(base_obj, "decode_token", None)
            or getattr(model, "decode_token", None),
            byte_level=bool(model.byte_level),
        )
        keeper = TextKeeper(docs_iter)
        docs_iter = keeper
        current = [-1]

        def on_rows(rows: Any) -> None:
            assert report is not None
            progress.rows(rows.document, rows.offsets)
            if rows.document != current[0]:  # the report looks the text up as it starts
                current[0] = rows.document
                keeper.offer(texts, rows.document, rows.name)
            report.add(rows)

    def bar_rows(rows: Any) -> None:
        progress.rows(rows.document, rows.offsets)

    try:
        result = compare_documents(
            model, base_obj, docs_iter, max_length=max_length, stride=stride, bos=bos,
            on_rows=on_rows if report is not None else bar_rows if bar else None,
            progress=progress,
        )  # fmt: skip
    finally:
        progress.close()
    _finish(result.to_dict(), report, report_path, as_json, quiet, to_stderr)


def _finish(out: dict[str, Any], report: Any, report_path: str | None, as_json: bool,
            quiet: bool, to_stderr: bool) -> None:  # fmt: skip
    """Both engines: the note on empty documents, the report, then the JSON or summary."""
    if not quiet:
        note_empty_documents(out["documents"], "compared")
    if report is not None:
        assert report_path is not None
        report.write(report_path, result=out)
        if not quiet:
            click.echo(f"infolens: wrote {report_path}", err=True)
    if as_json:
        echo_json(out, err=to_stderr)
    else:
        emit(summary_text(out), err=to_stderr)


def _compare_on_ray(
    paths: tuple[str, ...], model_spec: str, base_spec: str, hf: dict[str, Any],
    max_length: int | None, stride: int | None, bos: str | None, jsonl_field: str | None,
    glob: str | None, max_document_bytes: int, report_path: str | None, as_json: bool,
    quiet: bool, to_stderr: bool, ray_options: dict[str, Any],
) -> None:  # fmt: skip
    """``--engine ray``: :func:`infolens.distributed.compare_documents_ray`, the same result
    (the ``--report`` has the summary and document table, no per-token sections)."""
    from infolens.distributed import compare_documents_ray

    opts = ray_engine(ray_options)
    byte_level = all(s.split(":")[0] == "ngram" for s in (model_spec, base_spec))
    docs = read_documents(paths, jsonl_field=jsonl_field, glob=glob, allow_bytes=byte_level,
                          max_bytes=max_document_bytes)  # fmt: skip

    def options(spec: str) -> dict[str, Any]:
        return hf if spec.startswith("hf:") else {}

    result = compare_documents_ray(
        model_spec, base_spec, docs, model_options=options(model_spec),
        base_options=options(base_spec), max_length=max_length, stride=stride, bos=bos,
        options=opts, notify=(lambda m: click.echo(m, err=True)) if not quiet else None,
    )  # fmt: skip
    report = None
    if report_path is not None:
        from infolens.report.compare_report import CompareReport

        report = CompareReport(documents_text={}, decode_model=None, decode_base=None,
                               byte_level=byte_level)  # fmt: skip
    _finish(result.to_dict(), report, report_path, as_json, quiet, to_stderr)


__all__ = ["compare", "summary_text"]
