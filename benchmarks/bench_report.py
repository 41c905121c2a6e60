"""How fast the HTML report is built and loads in a browser, for a 100 KB document.

Run: ``python benchmarks/bench_report.py`` (needs Debian's ``chromium``).

Two pages: (a) the real pipeline, ``infolens score --report`` on 100 KB of CPython's help
topics with the built-in byte-level model (one token per byte; the coloured text is capped
for byte-level models, the numbers cover everything); (b) a 100 KB document of ~20k
word-like tokens (synthetic records as in the tests), the size a subword model gives.
For each: Python build time, page weight, and the page's own load time (``data-load-ms``:
``performance.now()`` at the first animation frame after the ``load`` event, i.e. from
navigation start to the first frame with layout done) in headless chromium, best and median
of 5 fresh browser starts.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def load_ms(path: Path, chromium: str) -> float:
    from _report_checks import CHROMIUM_FLAGS

    with tempfile.TemporaryDirectory() as prof:
        out = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, "--dump-dom", "--virtual-time-budget=3000",
             f"--user-data-dir={prof}", path.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
    key = 'data-load-ms="'
    i = out.index(key) + len(key)
    return float(out[i : out.index('"', i)])


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("bench_report: chromium not installed (apt-get install -y chromium)")
    from pydoc_data.topics import topics

    from click.testing import CliRunner

    from _report_synth import synth, text_100kb
    from infolens.cli import main as cli
    from infolens.report import render_score_report

    tmp = Path(tempfile.mkdtemp())
    text = "\n".join(topics[k] for k in sorted(topics))[:100_000]
    doc = tmp / "topics.txt"
    doc.write_text(text, encoding="utf-8")
    pages = []

    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["score", str(doc), "--quiet", "--report", str(tmp / "a.html")])
    assert res.exit_code == 0, res.output
    pages.append(("(a) `infolens score --report`, ngram, 100 KB (byte tokens)", tmp / "a.html",
                  time.perf_counter() - t0, "score + report"))  # fmt: skip

    big = text_100kb()
    result, records = synth({"big.txt": big}, byte_level_non_ascii=False)
    t0 = time.perf_counter()
    render_score_report(result, records, {"big.txt": big}, tmp / "b.html")
    pages.append((f"(b) 100 KB, {len(records):,} word-like tokens (synthetic records)",
                  tmp / "b.html", time.perf_counter() - t0, "report only"))  # fmt: skip

    print(
        "| page | Python build (s) | page weight (MB) | load in chromium, best / median of 5 (ms) |"
    )
    print("|---|---:|---:|---:|")
    for name, path, build, what in pages:
        times = [load_ms(path, chromium) for _ in range(5)]
        print(
            f"| {name} | {build:.2f} ({what}) | {path.stat().st_size / 1e6:.2f} | "
            f"{min(times):.0f} / {statistics.median(times):.0f} |"
        )


if __name__ == "__main__":
    main()
