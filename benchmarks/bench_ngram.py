"""Benchmark the built-in byte-level model against general-purpose compressors.

Measures, in one run on one core, the adaptive bits per byte (prequential code length) and
scoring speed (kB per second of process CPU time, robust on a shared machine; full 256-way log-distribution at every position) of each ``ngram``
variant, beside gzip -9, bzip2 -9, xz -9e (Python's gzip/bz2/lzma, same settings as the
command line tools) and PPMd (7-Zip's ``7zz``/``7z`` when installed). Also fitted mode:
fit on the first half, score the second half frozen / adapting.

Usage::

    python benchmarks/bench_ngram.py [FILE] [--quick]

Without FILE the text is CPython's help topics (``pydoc_data.topics``). Prints a Markdown
table (the numbers in docs/benchmarks.md come from it).
"""

from __future__ import annotations

import argparse
import bz2
import datetime
import gzip
import lzma
import os
import platform
import shutil
import subprocess
import tempfile
import time

import numpy as np

from infolens.models import load_model
from infolens.models.base import Window
from infolens.models.ngram import fit_ngram


def default_text() -> bytes:
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics)).encode("utf-8")


def score(model, data: bytes, max_rows: int = 4096) -> tuple[float, float]:
    """(bits per byte, kB/s) of ``model`` on ``data``, all 256 log-probabilities per row."""
    ids = np.frombuffer(data, np.uint8).astype(np.int64)
    t0 = time.process_time()
    total = 0.0
    pos = 0
    for chunk in model.logits([Window(ids=ids, start=0)], max_rows=max_rows):
        r = chunk.shape[0]
        total -= float(chunk[np.arange(r), ids[pos : pos + r]].sum())
        pos += r
    dt = time.process_time() - t0
    return total / np.log(2) / len(data), len(data) / 1e3 / dt


def compressors(data: bytes) -> list[tuple[str, float]]:
    n = len(data)
    rows = [
        ("gzip -9", len(gzip.compress(data, 9)) * 8 / n),
        ("bzip2 -9", len(bz2.compress(data, 9)) * 8 / n),
        ("xz -9e", len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) * 8 / n),
    ]
    exe = shutil.which("7zz") or shutil.which("7z")
    if exe:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "in.txt")
            with open(src, "wb") as f:
                f.write(data)
            for label, method in [
                ("7z PPMd (default: o=6, mem=16m)", "PPMd"),
                ("7z PPMd o=8 mem=256m", "PPMd:o=8:mem=256m"),
                ("7z PPMd o=16 mem=256m", "PPMd:o=16:mem=256m"),
            ]:
                arc = os.path.join(d, "out.7z")
                subprocess.run(
                    [exe, "a", f"-m0={method}", arc, src], check=True, capture_output=True
                )
                rows.append((label, (os.path.getsize(arc) - 130) * 8 / n))  # minus 7z header
                os.remove(arc)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?")
    ap.add_argument("--quick", action="store_true", help="fewer variants")
    args = ap.parse_args()
    data = open(args.file, "rb").read() if args.file else default_text()
    name = args.file or "pydoc_data.topics"
    cpu = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    print(
        f"text: {name}, {len(data)} bytes; {cpu}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}; {datetime.date.today()}"
    )
    print()
    print("| variant | bits/byte | kB/s (CPU time, 1 core) |")
    print("|---|---:|---:|")
    for label, bpb in compressors(data):
        print(f"| {label} | {bpb:.4f} | |")
    orders = [2, 4, 6, 8] if args.quick else list(range(9))
    for k in orders:
        bpb, speed = score(load_model(f"ngram:order={k},match=0"), data)
        print(f"| ngram order={k}, KN only (match=0) | {bpb:.4f} | {speed:.0f} |", flush=True)
    for k in [4, 5, 6, 7, 8] if not args.quick else [6]:
        bpb, speed = score(load_model(f"ngram:order={k}"), data)
        tag = " **(default)**" if k == 6 else ""
        print(f"| ngram order={k} + match + SSE{tag} | {bpb:.4f} | {speed:.0f} |", flush=True)

    half = len(data) // 2
    train, test = data[:half], data[half:]
    t0 = time.process_time()
    fitted = fit_ngram([train], order=6)
    fit_speed = len(train) / 1e3 / (time.process_time() - t0)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.npz")
        fitted.save(path)
        size = os.path.getsize(path)
        rows = [
            ("second half, adaptive from empty", "ngram"),
            ("second half, fitted on first half, frozen", f"ngram:{path}"),
            ("second half, fitted on first half, adapt=1", f"ngram:{path},adapt=1"),
        ]
        for label, spec in rows:
            bpb, speed = score(load_model(spec), test)
            print(f"| {label} | {bpb:.4f} | {speed:.0f} |", flush=True)
    xz_half = len(lzma.compress(test, preset=9 | lzma.PRESET_EXTREME)) * 8 / len(test)
    print(f"| second half, xz -9e | {xz_half:.4f} | |")
    print()
    print(f"fit (order 6): {fit_speed:.0f} kB/s; model file {size} bytes for {half} bytes of text")


if __name__ == "__main__":
    main()
