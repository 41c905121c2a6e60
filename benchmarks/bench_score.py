"""Benchmark ``infolens score``: overhead over bare forward passes, and peak memory.

Run: ``python benchmarks/bench_score.py [--tokens 20000] [--part overhead|memory|both]``

(a) Overhead. A randomly initialised GPT-2-small-shaped model (vocab 50257, 12 layers,
    n_embd 768, context 1024) scores one document of ``--tokens`` random token ids with
    ``L = --max-length``, ``S = L`` (so each window's rows are all predictions), batch size 1.
    Baseline: the bare ``model(ids).logits`` forward passes over exactly the same windows.
    Ratio = pipeline time / bare time (target <= 1.15). The two are timed alternately,
    best of ``--repeat``.

(b) Peak memory. A tiny-width model (n_embd 64, 1 layer) with vocab 150,000 (the head
    dominates) scores one window of L = 2048 tokens. Baseline: the naive
    ``model(ids).logits`` then ``log_softmax`` and a gather. Each runs in a fresh
    subprocess; the figure is the increase of peak RSS over the process's RSS after the
    model is built, worst of ``--repeat`` processes (target: infolens under a quarter of
    naive).

Nothing is downloaded: the models are built from configs with random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np
from _mem import peak_rss, reset_peak, rss


class _StubTokenizer:
    """Enough of a tokenizer for HFModel when documents arrive as ids."""

    is_fast = False
    bos_token_id = 0
    eos_token_id = 0
    vocab_size = 50257
    model_max_length = 1024


def _pretokenized_model(model: Any, ids: np.ndarray, batch_size: int) -> Any:
    from infolens.models.base import Tokenized
    from infolens.models.hf import HFModel

    class Pretokenized(HFModel):
        def tokenize(self, text: str | bytes) -> Tokenized:  # the document's ids, given
            return Tokenized(ids, np.stack([np.arange(ids.size), np.arange(ids.size) + 1], 1))

    return Pretokenized(model, _StubTokenizer(), "hf:gpt2-small-random", batch_size=batch_size)


def overhead(n_tokens: int, max_length: int, repeat: int) -> dict[str, Any]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from infolens.score import Document, score_documents
    from infolens.windows import plan_windows

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    model = GPT2LMHeadModel(cfg).eval()
    ids = np.random.default_rng(0).integers(1, 50257, size=n_tokens).astype(np.int64)
    adapter = _pretokenized_model(model, ids, batch_size=1)
    plan = plan_windows(n_tokens, max_length, max_length, "first")
    inputs = [
        torch.as_tensor(
            np.concatenate([[0], ids[w.lo : w.hi]])[:-1] if w.bos else ids[w.lo : w.hi][:-1]
        )[None]
        for w in plan
    ]

    def bare() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in inputs:
                logits = model(input_ids=x, use_cache=False).logits
                del logits
        return time.perf_counter() - t0

    result: Any = None

    def pipeline() -> float:
        nonlocal result
        t0 = time.perf_counter()
        result = score_documents(
            adapter, [Document("random", "")], max_length=max_length, stride=max_length, bos="first"
        )
        return time.perf_counter() - t0

    pipeline()  # warm-up (also checks the run)
    bare_t, pipe_t = [], []
    for _ in range(repeat):
        bare_t.append(bare())
        pipe_t.append(pipeline())
    return {
        "tokens": n_tokens,
        "windows": len(plan),
        "max_length": max_length,
        "bare_forward_s": min(bare_t),
        "score_pipeline_s": min(pipe_t),
        "ratio": min(pipe_t) / min(bare_t),
        "tokens_per_s": n_tokens / min(pipe_t),
        "perplexity": result.metrics["perplexity"],
    }


def _memory_child(mode: str, vocab: int, length: int) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=length + 1, n_embd=64, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(cfg).eval()
    ids = np.random.default_rng(0).integers(1, vocab, size=length).astype(np.int64)
    if mode == "infolens":
        from infolens.score import Document, score_documents

        adapter = _pretokenized_model(model, ids, batch_size=1)
        adapter.max_context = length
    import gc

    gc.collect()
    # Peak = VmHWM after resetting it here. (ru_maxrss would not do: it survives exec, so a
    # child forked from a parent holding a large model starts with the parent's peak.)
    reset_peak()
    base = rss()
    t0 = time.perf_counter()
    if mode == "naive":
        with torch.inference_mode():
            x = torch.as_tensor(np.concatenate([[0], ids[:-1]]))[None]
            logits = model(input_ids=x, use_cache=False).logits
            logp = torch.log_softmax(logits.float(), dim=-1)
            nll = -logp[0, torch.arange(length), torch.as_tensor(ids)].double().sum().item()
    else:
        res = score_documents(adapter, [Document("random", "")], max_length=length, bos="first")
        nll = res.metrics["nll_nats"]
    elapsed = time.perf_counter() - t0
    peak = peak_rss()
    print(
        json.dumps(
            {
                "mode": mode,
                "peak_increase_bytes": peak - base,
                "base_rss_bytes": base,
                "nll_nats": nll,
                "seconds": elapsed,
            }
        )
    )


def memory(vocab: int, length: int, repeat: int) -> dict[str, Any]:
    """Peak RSS increase of each approach, worst of ``repeat`` fresh processes."""
    out: dict[str, Any] = {"vocab": vocab, "max_length": length, "repeat": repeat}
    for mode in ("naive", "infolens"):
        runs = []
        for _ in range(repeat):
            r = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--vocab",
                    str(vocab),
                    "--max-length",
                    str(length),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        out[mode] = max(runs, key=lambda x: x["peak_increase_bytes"])
        out[mode]["all_peak_increase_bytes"] = [x["peak_increase_bytes"] for x in runs]
    out["ratio"] = out["infolens"]["peak_increase_bytes"] / out["naive"]["peak_increase_bytes"]
    return out


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["overhead", "memory", "both"], default="both")
    ap.add_argument("--tokens", type=int, default=20_000)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3, help="timing rounds / memory processes")
    ap.add_argument("--vocab", type=int, default=150_000)
    ap.add_argument("--memory-length", type=int, default=2048)
    ap.add_argument("--child", choices=["naive", "infolens"])
    a = ap.parse_args()
    if a.child:
        _memory_child(a.child, a.vocab, a.max_length)
        return
    report: dict[str, Any] = {"machine": machine()}
    if a.part in ("overhead", "both"):
        report["overhead"] = overhead(a.tokens, min(a.max_length, 1024), a.repeat)
        print(json.dumps(report["overhead"]), flush=True)
    if a.part in ("memory", "both"):
        report["memory"] = memory(a.vocab, a.memory_length, a.repeat)
        print(json.dumps(report["memory"]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
