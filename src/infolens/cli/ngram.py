"""``infolens ngram``: fit and inspect the built-in byte-level model."""

from __future__ import annotations

import os
import time

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit
from infolens.cli._options import check_outputs
from infolens.errors import InputError
from infolens.models.ngram import DEFAULT_ORDER, MAX_ORDER


@main.group()
def ngram() -> None:
    """The built-in byte-level model (model spec 'ngram')."""


@ngram.command("fit")
@click.argument("files", nargs=-1, required=True)
@click.option("-o", "--output", required=True, help="Where to write the model (e.g. model.ilng; written atomically).")
@click.option(
    "--order",
    default=DEFAULT_ORDER,
    show_default=True,
    type=click.IntRange(0, MAX_ORDER),
    help="Longest context, in bytes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@debug_option
def fit(files: tuple[str, ...], output: str, order: int, as_json: bool) -> None:
    """Learn byte statistics from FILES (each one document) and save them to a model file.

    Score with it frozen as --model ngram:MODEL, or still adapting as
    --model ngram:MODEL,adapt=1.
    """
    from infolens.models.ngram import fit_ngram

    for f in files:
        if os.path.isdir(f):
            raise InputError(f"{f}: is a directory; expected a file")
        if not os.path.isfile(f):
            raise InputError(f"{f}: no such file")
    to_stderr = check_outputs({"--output": output}, files)
    t0 = time.perf_counter()
    model = fit_ngram(files, order=order)
    fit_s = time.perf_counter() - t0
    model_bytes = model.save(output)
    n_bytes = sum(os.path.getsize(f) for f in files)
    info = model.info()
    summary = {
        "output": output,
        "files": list(files),
        "bytes": n_bytes,
        "order": order,
        "contexts": info["contexts"],
        "restarts": info["restarts"],
        "model_bytes": model_bytes,
        "fit_seconds": fit_s,
        "fit_kB_per_s": n_bytes / 1e3 / fit_s if fit_s > 0 else float("inf"),
    }
    if as_json:
        echo_json(summary, err=to_stderr)
        return
    emit(
        f"wrote {output}: order {order}, {info['contexts']} contexts from {n_bytes} bytes "
        f"in {len(files)} file(s), {summary['model_bytes']} bytes, "
        f"{fit_s:.2f} s ({summary['fit_kB_per_s']:.0f} kB/s)",
        err=to_stderr,
    )


@ngram.command("info")
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@debug_option
def info(model: str, as_json: bool) -> None:
    """Describe a fitted model file."""
    from infolens.models.ngram import load_ngram_file

    d = load_ngram_file(model).info()
    d.pop("count_of_counts", None)
    if as_json:
        echo_json(d)
        return
    for k, v in d.items():
        emit(f"{k}: {v}")
