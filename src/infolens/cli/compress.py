"""``infolens compress`` / ``infolens decompress``: lossless compression with a model's
predictions (constriction's range coder). Only options and formatting: the coding and
every number come from :mod:`infolens.codec`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from infolens.cli import main
from infolens.cli._common import debug_option, echo_json, emit, fmt
from infolens.errors import InputError

SUFFIX = ".ilz"


def _output(src: str, out: str | None, compressing: bool, force: bool) -> str:
    if out is None:
        if src == "-":
            out = "-"
        elif compressing:
            out = src + SUFFIX
        elif src.endswith(SUFFIX) and len(src) > len(SUFFIX):
            out = src[: -len(SUFFIX)]
        else:
            raise InputError(
                f"-o/--output: expected an output path for {src!r}, which does not end in "
                f"{SUFFIX!r}"
            )
    if out == "-" and compressing and sys.stdout.isatty():
        raise InputError("-o/--output: refusing to write compressed data to a terminal")
    if out != "-" and not force and Path(out).exists() and Path(out).is_file():
        raise InputError(f"-o/--output: {out!r} exists; give --force to replace it")
    if out != "-" and src != "-" and os.path.realpath(out) == os.path.realpath(src):
        raise InputError(f"-o/--output: expected a path other than the input, got {out!r}")
    return out


class _Bar:
    """Progress on stderr with the running bits per byte."""

    def __init__(self, enabled: bool, total: int | None, what: str) -> None:
        self.bar: Any = None
        self.done = 0
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover
                return
            self.bar = tqdm(total=total, desc=what, unit="B", unit_scale=True,
                            unit_divisor=1000, file=sys.stderr, leave=False,
                            dynamic_ncols=True, mininterval=0.2)  # fmt: skip

    def __call__(self, done: int, bits: float) -> None:
        if self.bar is None:
            return
        self.bar.update(done - self.done)
        self.done = done
        if done:
            self.bar.set_postfix_str(f"{bits / done:.4f} bits/byte (quantised model)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(d: dict[str, Any], verb: str) -> list[str]:
    lines = [
        f"{verb} {d['original_bytes']} bytes with {d['model']}: {d['compressed_bytes']} bytes "
        f"({fmt(d['bits_per_byte'])} bits/byte), header {d['header_bytes']} bytes, "
        f"{d['frames']} frame(s), {fmt(d['megabytes_per_second'], 3)} MB/s",
        f"  coded payload        {d['payload_bytes']:>12} bytes  "
        f"{fmt(d['payload_bits_per_byte'])} bits/byte",
        f"  quantised-model CE   {d['quantized_bytes']:>12.1f} bytes  "
        f"{fmt(d['quantized_bits_per_byte'])} bits/byte  (coder overhead "
        f"{d['coder_overhead_bytes']:.1f} bytes)",
        f"  float-model CE       {d['model_bytes']:>12.1f} bytes  "
        f"{fmt(d['model_bits_per_byte'])} bits/byte  (quantisation "
        f"{d['quantization_overhead_bytes']:+.1f} bytes)",
    ]
    for name, c in d.get("compressors", {}).items():
        lines.append(f"  {name:<20} {c['bytes']:>12} bytes  {fmt(c['bits_per_byte'])} bits/byte")
    return lines


@main.command("compress")
@click.argument("file", type=str)
@click.option(
    "-o",
    "--output",
    "output",
    type=str,
    default=None,
    help="Output path ('-': stdout). Default: FILE.ilz (stdout for stdin).",
)
@click.option(
    "--model",
    "model",
    type=str,
    default=None,
    help="Model spec (default: ngram, the built-in adaptive byte model).",
)
@click.option(
    "--context",
    type=int,
    default=None,
    help="Token models: tokens per independently coded segment (default min(max_context, 512)).",
)
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="Also report gzip -9, bzip2 -9, xz -9e, zstd -19, brotli -q 11 and PPMd "
    "order 6 and 16 on the same bytes.",
)
@click.option("-f", "--force", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="The summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@debug_option
def compress_cmd(file: str, output: str | None, model: str | None, context: int | None,
                 compare: bool, force: bool, as_json: bool, quiet: bool) -> None:  # fmt: skip
    """Compress FILE ('-': stdin) with a model's predictions and a range coder.

    The coded size is the model's cross-entropy on FILE (in bits, under the quantised
    distribution the coder uses) plus a few bytes; the summary shows both, the float
    cross-entropy 'infolens score' reports, and general-purpose compressors beside them.
    """
    from infolens.codec import compress

    out = _output(file, output, True, force)
    total = Path(file).stat().st_size if file != "-" and Path(file).is_file() else None
    bar = _Bar(not quiet and sys.stderr.isatty(), total, "compressing")
    try:
        stats = compress(file, out, model=model, context=context, compare=compare,
                         on_progress=bar)  # fmt: skip
    finally:
        bar.close()
    _report(stats.to_dict(), "compressed", out, as_json, quiet)


@main.command("decompress")
@click.argument("file", type=str)
@click.option(
    "-o",
    "--output",
    "output",
    type=str,
    default=None,
    help="Output path ('-': stdout). Default: FILE without .ilz (stdout for stdin).",
)
@click.option(
    "--model",
    "model",
    type=str,
    default=None,
    help="Model spec; default: the one the header names (it must be the same).",
)
@click.option("-f", "--force", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="The summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@debug_option
def decompress_cmd(file: str, output: str | None, model: str | None, force: bool,
                   as_json: bool, quiet: bool) -> None:  # fmt: skip
    """Decompress FILE ('-': stdin), written by 'infolens compress'.

    Everything is checked (header, each frame's CRC, the model's behaviour fingerprint on
    this machine, the length and SHA-256 of the result) before the output appears.
    """
    from infolens.codec import decompress, read_header

    out = _output(file, output, False, force)
    total = None
    if file != "-" and Path(file).is_file():
        try:
            total = int(read_header(file)["original_bytes"])
        except (InputError, OSError):
            total = None  # decompress names the problem
    bar = _Bar(not quiet and sys.stderr.isatty(), total, "decompressing")
    try:
        stats = decompress(file, out, model=model, on_progress=bar)
    finally:
        bar.close()
    _report(stats.to_dict(), "decompressed", out, as_json, quiet)


def _report(d: dict[str, Any], verb: str, out: str, as_json: bool, quiet: bool) -> None:
    to_err = out == "-"  # stdout carries the data
    if as_json:
        echo_json(d, err=to_err)
    elif not quiet:
        for line in _summary(d, verb):
            emit(line, err=to_err)
