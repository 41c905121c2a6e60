"""Benchmark ``gguf:`` scoring against a plain llama-cpp-python ``eval`` loop.

Run: ``python benchmarks/bench_gguf.py [--bytes 20000] [--max-length 512] [--stride S]
[--quant Q8_0]``

A random llama (hidden 512, 8 layers, 8 query / 4 key-value heads, FFN 1408, vocabulary
32,000, about 57 M parameters) with a SentencePiece tokeniser trained on Python's stdlib
docstrings is built locally (``tests/gguf_fixtures.py``), written as an F32 GGUF file and
quantised by llama.cpp (``--quant``, ``F32`` to keep it). A text of ``--bytes`` bytes is
scored with ``L = --max-length``, ``S = --stride`` (default ``L``: disjoint windows, the
``llama-perplexity`` layout without its second-half rule), BOS first.

* infolens: ``score_documents`` on ``gguf:FILE`` (logits only for the scored positions,
  chunks of rows through the fused kernel: surprisal and entropy of every row).
* baseline: ``llama_cpp.Llama(logits_all=True)``, one ``reset()`` + ``eval(window)`` per
  window, every logit of the window read back (``Llama.scores``) and the observed
  tokens' log-softmax taken in numpy (float32, max-shifted): the least a
  llama-cpp-python user writes to get the same perplexity (without the entropies).

Both use the same file, context, batch (``n_batch = L``), threads, float32 KV cache and
no flash attention (infolens's defaults). They are timed alternately, best of
``--repeat``. Ratio = infolens time / baseline time (target <= 1.15). Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build(workdir: Path, quant: str) -> Path:
    from gguf_fixtures import build_tiny_llama, quantize, write_gguf

    hf = build_tiny_llama(
        workdir / "hf", vocab=1000, hidden=512, layers=8, heads=8, kv_heads=4,
        intermediate=1408, model_vocab=32000, context=2048,
    )  # fmt: skip
    f32 = write_gguf(hf, workdir / "model-f32.gguf")
    if quant.upper() == "F32":
        return f32
    return quantize(f32, workdir / f"model-{quant.lower()}.gguf", quant.upper())


def baseline(
    path: Path, ids: np.ndarray, windows: list[Any], length: int, threads: int
) -> tuple[float, float]:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=length, n_batch=length, n_ubatch=length,
        logits_all=True, n_threads=threads, n_threads_batch=threads,
        type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
        flash_attn=False, verbose=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    nll = 0.0
    for w in windows:
        inputs = w.ids[:-1]
        llm.reset()
        llm.eval(inputs.tolist())
        rows = llm.scores[w.start - 1 : inputs.shape[0]]  # float32 [n, V], every logit
        top = rows.max(axis=1)
        lse = top + np.log(np.exp(rows - top[:, None]).sum(axis=1))
        nll += float((lse - rows[np.arange(rows.shape[0]), w.targets]).astype(np.float64).sum())
    dt = time.perf_counter() - t0
    llm.close()
    return dt, nll


def infolens_run(
    path: Path, text: str, length: int, stride: int, threads: int
) -> tuple[float, float, int]:
    from infolens.models import load_model
    from infolens.score import Document, score_documents

    m = load_model(f"gguf:{path},n_ctx={length},n_batch={length}", n_threads=threads)
    t0 = time.perf_counter()
    r = score_documents(m, [Document("d", text)], max_length=length, stride=stride,
                        bos="first", compressors=False)  # fmt: skip
    dt = time.perf_counter() - t0
    m.close()
    return dt, float(r.metrics["nll_nats"]), int(r.metrics["tokens"])


def main() -> None:
    import llama_cpp
    from llama_cpp import _logger

    _logger.set_verbose(False)
    llama_cpp.llama_backend_init()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=20_000)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--stride", type=int, default=0, help="S (default: L, disjoint windows)")
    ap.add_argument("--quant", default="Q8_0", help="Q8_0, Q4_K_M, F32, ...")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    from hf_fixtures import stdlib_text
    from infolens.models import load_model

    text = stdlib_text(200_000).encode()[: a.bytes].decode("utf-8", "ignore")
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp), a.quant)
        tok = load_model(f"gguf:{path}", vocab_only=True)
        ids = tok.tokenize(text).ids
        stride = a.stride or a.max_length
        windows = _windows(tok, ids, a.max_length, stride)
        tok.close()
        best_i, best_b = float("inf"), float("inf")
        pairs = []
        for _ in range(a.repeat):
            ti, nll_i, n_tok = infolens_run(path, text, a.max_length, stride, a.threads)
            tb, nll_b = baseline(path, ids, windows, a.max_length, a.threads)
            best_i, best_b = min(best_i, ti), min(best_b, tb)
            pairs.append(round(ti / tb, 3))
        size = path.stat().st_size
    out = {
        "bytes": len(text.encode()), "tokens": n_tok, "max_length": a.max_length, "stride": stride,
        "quant": a.quant, "file_mb": round(size / 2**20, 1), "threads": a.threads,
        "infolens_s": round(best_i, 3), "baseline_s": round(best_b, 3),
        "infolens_tok_s": round(n_tok / best_i), "baseline_tok_s": round(n_tok / best_b),
        "ratio": round(best_i / best_b, 3), "ratios_per_pair": pairs,
        "nll_rel_diff": abs(nll_i - nll_b) / abs(nll_b),
        "machine": _machine(),
    }  # fmt: skip
    print(json.dumps(out, indent=2) if a.json else _table(out))


def _windows(tok: Any, ids: np.ndarray, length: int, stride: int) -> list[Any]:
    """The windows infolens plans for this document (``L``, ``S``, BOS first)."""
    from infolens.models.base import Window
    from infolens.windows import plan_windows

    t = ids.astype(np.int64)
    out = []
    for p in plan_windows(len(ids), length, stride, "first"):
        w = np.concatenate([[tok.bos_id], t[p.lo : p.hi]]) if p.bos else t[p.lo : p.hi]
        out.append(Window(w.astype(np.int64), p.start))
    return out


def _machine() -> str:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")),
            "?",
        )
    except OSError:
        model = platform.processor() or "?"
    import llama_cpp

    return (f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"llama-cpp-python {llama_cpp.__version__}")  # fmt: skip


def _table(o: dict[str, Any]) -> str:
    return "\n".join([
        f"{o['bytes']:,} bytes, {o['tokens']:,} tokens, L = {o['max_length']}, S = {o['stride']}, {o['quant']} "
        f"({o['file_mb']} MB), {o['threads']} threads; {o['machine']}",
        "| run | time | tokens/s |", "|---|---:|---:|",
        f"| infolens `gguf:` | {o['infolens_s']} s | {o['infolens_tok_s']:,} |",
        f"| llama-cpp-python eval loop | {o['baseline_s']} s | {o['baseline_tok_s']:,} |",
        f"ratio {o['ratio']} (target <= 1.15; per pair {o['ratios_per_pair']}); NLL relative "
        f"difference {o['nll_rel_diff']:.2e}",
    ])  # fmt: skip


if __name__ == "__main__":
    main()
