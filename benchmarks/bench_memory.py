"""Peak memory of ``infolens score`` on one large document, over the loaded model.

For each model (the built-in ``ngram`` and a tiny local Hugging Face GPT-2), a child
process loads the model, measures its resident size, resets the kernel's peak counter
(``VmHWM``), scores one generated document of the given size (library call, as the CLI
makes it) and reports the peak over the loaded model. The target (issue 10): at most 1 GB
over the loaded model, whatever the document's size.

    python benchmarks/bench_memory.py --ngram-mb 200 --hf-mb 200 --hf-context 1024 --hf-stride 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent

CHILD = r"""
import json, sys, time
if {torch_threads} and {spec!r}.startswith("hf:"):
    import torch
    torch.set_num_threads({torch_threads})
sys.path.insert(0, {bench!r})
from _mem import peak_rss, reset_peak, rss
from infolens.documents import read_documents
from infolens.models import load_model
from infolens.score import score_documents

model = load_model({spec!r})
model_rss = rss()
reset_peak()
t0 = time.perf_counter()
res = score_documents(model, read_documents([{path!r}], allow_bytes=model.byte_level),
                      compressors={compressors}, **{settings!r})
dt = time.perf_counter() - t0
print(json.dumps({{"model_rss": model_rss, "peak_over_model": peak_rss() - model_rss,
                  "seconds": dt, "tokens": res.metrics["tokens"]}}))
"""


def _document(path: Path, n_bytes: int) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from hf_fixtures import stdlib_text

    base = stdlib_text(60_000).encode()
    with open(path, "wb") as f:
        left = n_bytes
        while left > 0:
            f.write(base[:left])
            left -= len(base)


def run(spec: str, path: Path, compressors: bool, settings: dict, torch_threads: int) -> dict:
    code = CHILD.format(bench=str(HERE), spec=spec, path=str(path), compressors=compressors,
                        settings=settings, torch_threads=torch_threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ngram-mb", type=float, default=20)
    ap.add_argument("--hf-mb", type=float, default=2)
    ap.add_argument("--hf-context", type=int, default=64,
                    help="positions of the tiny GPT-2 (windows of this length)")
    ap.add_argument("--hf-stride", type=int, default=None,
                    help="window stride for the hf run (default: half the context)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch threads of the hf run (0: torch's default); on a shared "
                         "2-core machine 2 threads ran 4x slower than 1")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent / "tests"))
    from hf_fixtures import build_tiny_hf

    with tempfile.TemporaryDirectory() as d:
        tiny = build_tiny_hf(Path(d) / "tiny", context=args.hf_context)
        stride = args.hf_stride or args.hf_context // 2
        rows = []
        for label, spec, mb, comp, settings in (
            ("ngram (with compressor baselines)", "ngram", args.ngram_mb, True, {}),
            (f"tiny hf: GPT-2, 2 layers, context {args.hf_context}, stride {stride}",
             f"hf:{tiny}", args.hf_mb, False, {"stride": stride}),
        ):
            if mb <= 0:
                continue
            doc = Path(d) / f"doc-{label[:5]}.txt"
            _document(doc, int(mb * 1e6))
            t0 = time.perf_counter()
            r = run(spec, doc, comp, settings, args.torch_threads)
            rows.append((label, mb, r, time.perf_counter() - t0))
            os.unlink(doc)
    print("| model | document | tokens | model RSS | peak over the model | time |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, mb, r, _ in rows:
        print(f"| {label} | {mb:g} MB | {r['tokens']:,} | {r['model_rss'] / 2**20:,.0f} MiB "
              f"| {r['peak_over_model'] / 2**20:,.0f} MiB | {r['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
