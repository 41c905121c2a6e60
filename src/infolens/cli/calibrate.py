"""``infolens calibrate``: next-token calibration of a model over documents, with a fitted
temperature and honest held-out numbers.

Only options and formatting: the numbers come from
:func:`infolens.calibrate.calibrate_documents`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt, windows_lines
from infolens.cli._options import (
    Progress,
    check_hf_options,
    check_outputs,
    load_model_option,
    run_options,
)
from infolens.documents import check_max_bytes, read_documents
from infolens.errors import InputError
from infolens.models import DEFAULT_MODEL


def _summary(r: dict[str, Any]) -> str:
    b = r["before"]
    lines = [f"model       {r['model']}", *windows_lines(r),
             f"documents   {r['documents_count']:,}", "",
             f"positions scored        {b['tokens']:,} tokens",
             f"top-1 accuracy          {fmt(b['accuracy'])}",
             f"mean confidence         {fmt(b['mean_confidence'])}",
             f"fitted temperature      {fmt(r['temperature'])}"
             + (f" (at the {r['temperature_bound']} bound)" if r.get("temperature_bound") else ""),
             ""]  # fmt: skip
    fit = r.get("fit")
    if r.get("held_out") is not None:
        cols = [("T = 1", b), ("fitted T", r.get("after")), ("fitted T, held out", r["held_out"])]
    elif fit is not None:  # every position in the sample, or no second pass
        cols = [("T = 1", b), ("fitted T, in-sample", r.get("after") or fit["after"]),
                ("cross-validated", fit["held_out"])]  # fmt: skip
    else:
        cols = [("T = 1", b)]
    head = f"{'':<22}" + "".join(f"{c:>20}" for c, _ in cols)
    lines.append(head)
    for key, label in (("ece", "ECE"), ("mce", "MCE"), ("brier", "Brier"), ("nll_bits", "NLL (bits/token)")):
        vals = "".join(f"{fmt(s.get(key)) if s else '-':>20}" for _, s in cols)
        lines.append(f"{label:<22}{vals}")
    if fit is not None:
        where = ("positions outside the fit sample" if r.get("held_out") is not None
                 else "cross-validation within the sample")  # fmt: skip
        lines += ["", f"T fitted on a sample of {fit['rows']:,} positions; held-out: {where}."]
    lines += ["", "how to read (docs/calibration.md):",
              "  ECE:    mean |accuracy - confidence| over 15 confidence bins, weighted by size; 0 is calibrated",
              "  MCE:    the worst bin's gap;  Brier: mean squared error of the probability vector",
              "  T > 1:  the model was overconfident (softmax(z / T) spreads it); the held-out",
              "          column is the honest one: the fit never saw those positions"]  # fmt: skip
    return "\n".join(lines)


# fmt: off
@main.command("calibrate")
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", "-m", "model_spec", default=None, metavar="SPEC",
              help=f"Model (default {DEFAULT_MODEL}: built in, offline).")
@run_options()
@click.option("--bins", "n_bins", type=int, default=15, show_default=True,
              help="Uniform confidence bins (torchmetrics' convention).")
@click.option("--cv", type=int, default=5, show_default=True, help="Folds of the cross-validation.")
@click.option("--fit-rows", type=int, default=50_000, show_default=True,
              help="Positions sampled (uniformly, seeded) to fit the temperature on; at most "
              "256 MiB of float32 logits are kept.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--report", "report_path", default=None, metavar="FILE.html",
              help="Also write an HTML page with the reliability diagrams.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr.")
@debug_option
def calibrate(paths: tuple[str, ...], model_spec: str | None, max_length: int | None,
              stride: int | None, bos: str | None, jsonl_field: str | None, glob: str | None,
              max_document_bytes: int, hf: dict[str, Any], n_bins: int, cv: int,
              fit_rows: int, seed: int, report_path: str | None, as_json: bool,
              quiet: bool) -> None:
    """Next-token calibration of a model on documents PATH...: is its top-1 confidence
    the probability that the top-1 token is right?

    Scores the same positions as `infolens score`, reports ECE, MCE, Brier and NLL at
    T = 1, fits a temperature on a sample of positions and reports the same numbers at
    the fitted T, in-sample and on positions the fit never saw (files are read twice;
    from standard input, cross-validated within the sample).

    \b
    Examples:
      infolens calibrate README.md
      infolens calibrate --model hf:gpt2 --max-length 1024 wiki.txt --report cal.html
    """
    from infolens.calibrate import calibrate_documents

    spec = DEFAULT_MODEL if model_spec is None else model_spec
    check_hf_options(hf, [spec], shown=f", got --model {spec}")
    check_max_bytes(max_document_bytes)
    for name, v, lo in (("--bins", n_bins, 1), ("--cv", cv, 2), ("--fit-rows", fit_rows, 1)):
        if v < lo:
            raise InputError(f"{name}: expected >= {lo}, got {v}")
    to_stderr = check_outputs({"--report": report_path}, paths)
    model = load_model_option("--model", spec, hf)

    def documents() -> Any:
        return read_documents(paths, jsonl_field=jsonl_field, glob=glob,
                              allow_bytes=bool(model.byte_level), max_bytes=max_document_bytes)

    bar = not quiet and sys.stderr.isatty()
    progress = Progress(bar, "calibrating", None, rows=False)
    rereadable = "-" not in paths
    try:
        r = calibrate_documents(model, documents if rereadable else documents(),
                                max_length=max_length, stride=stride, bos=bos, n_bins=n_bins,
                                cv=cv, fit_rows=fit_rows, seed=seed, progress=progress)
    finally:
        progress.close()
    if report_path is not None:
        from infolens.report.calibration_report import write_calibration_report

        write_calibration_report(report_path, r)
    if as_json:
        echo_json(r, err=to_stderr)
    else:
        emit(_summary(r), err=to_stderr)
# fmt: on
