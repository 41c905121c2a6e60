"""What ``--report`` and ``--tokens`` cost on top of a plain ``infolens score`` run.

Run: ``python benchmarks/bench_report_cost.py [--mb 5] [--rounds 3] [--tokens-kb 500]``;
``PYTHONPATH=OLD/src python benchmarks/bench_report_cost.py --report-only`` times another
checkout of infolens (its compiled extensions copied in) the same way.

Input: a text of ``--mb`` MB (default 5,000,000 bytes) made deterministically from this
Python's own standard library: the ``.py`` files under ``sysconfig``'s ``stdlib`` path,
sorted by path (``test`` directories and ``site-packages`` left out), concatenated and cut
at the byte count (partial characters dropped). It is written to a temporary directory,
never to the repository; its SHA-256 is printed so runs can be compared.

(a) Time: ``python -m infolens score FILE -q`` (the built-in ``ngram`` model, compressors
on, as by default for a byte-level model) against the same with ``--report r.html``, and
with ``--tokens t.parquet``, in fresh processes, the three commands alternating for
``--rounds`` rounds. Wall time and CPU time (user + system of the child) per command:
best and median; the ratios are of the best times (the least disturbed by other jobs on a
shared machine).

(b) Size: ``--tokens t.jsonl`` and ``--tokens t.parquet`` on the first ``--tokens-kb`` kB
of the same text (the JSONL of the whole 5 MB would be about 1.5 GB); bytes per token
and the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


def stdlib_text(n_bytes: int) -> bytes:
    """The first ``n_bytes`` of the sorted standard library sources (whole characters)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out = bytearray()
    for p in sorted(root.rglob("*.py")):
        if "site-packages" in p.parts or "test" in p.parts:
            continue
        try:
            out += p.read_text(encoding="utf-8").encode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if len(out) >= n_bytes:
            break
    return out[:n_bytes].decode("utf-8", errors="ignore").encode("utf-8")


def run(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m infolens ARGS`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "infolens", *args], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=5.0, help="input size, MB (10^6 bytes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens-kb", type=float, default=500.0,
                    help="input size of the JSONL vs Parquet comparison, kB")
    ap.add_argument("--report-only", action="store_true",
                    help="time plain and --report only (e.g. an older infolens on PYTHONPATH)")  # fmt: skip
    opts = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="infolens-bench-"))
    text = stdlib_text(int(opts.mb * 1e6))
    doc = tmp / "stdlib.txt"
    doc.write_bytes(text)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"input: {len(text):,} bytes of the stdlib sources, "
          f"sha256 {hashlib.sha256(text).hexdigest()[:16]}")  # fmt: skip

    commands = {
        "plain": ["score", str(doc), "-q"],
        "--report": ["score", str(doc), "-q", "--report", str(tmp / "r.html")],
        "--tokens .parquet": ["score", str(doc), "-q", "--tokens", str(tmp / "t.parquet")],
    }
    if opts.report_only:
        del commands["--tokens .parquet"]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for r in range(opts.rounds):
        for name, args in commands.items():
            times[name].append(run(args))
            wall, cpu = times[name][-1]
            print(f"  round {r + 1}: {name:<18} wall {wall:7.2f} s  cpu {cpu:7.2f} s", flush=True)
    print()
    print("| command | wall, best / median (s) | CPU, best / median (s) | vs plain (best wall) | vs plain (best CPU) |")
    print("|---|---:|---:|---:|---:|")
    best_w = min(w for w, _ in times["plain"])
    best_c = min(c for _, c in times["plain"])
    for name, ts in times.items():
        w = [x for x, _ in ts]
        c = [y for _, y in ts]
        print(f"| `{name}` | {min(w):.2f} / {statistics.median(w):.2f} | "
              f"{min(c):.2f} / {statistics.median(c):.2f} | {min(w) / best_w:.2f}x | "
              f"{min(c) / best_c:.2f}x |")  # fmt: skip
    print(f"\nreport page: {(tmp / 'r.html').stat().st_size / 1e6:.2f} MB")
    if opts.report_only:
        return

    small = tmp / "small.txt"
    small.write_bytes(stdlib_text(int(opts.tokens_kb * 1e3)))
    sizes = {}
    for ext in ("jsonl", "parquet"):
        out = tmp / f"small.{ext}"
        subprocess.run([sys.executable, "-m", "infolens", "score", str(small), "-q",
                        "--tokens", str(out)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        sizes[ext] = out.stat().st_size
        out.unlink()
    n_tokens = small.stat().st_size  # the byte-level model: one token per byte
    print(f"\n--tokens on {n_tokens:,} bytes ({n_tokens:,} tokens):")
    print("| format | size (MB) | bytes per token |")
    print("|---|---:|---:|")
    for ext, size in sizes.items():
        print(f"| {ext} | {size / 1e6:.2f} | {size / n_tokens:.1f} |")
    print(f"JSONL / Parquet: {sizes['jsonl'] / sizes['parquet']:.1f}x")
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
