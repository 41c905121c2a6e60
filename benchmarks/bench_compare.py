"""Benchmark ``infolens compare``: memory and time against a naive full-logits comparison,
and the size and KL gap of saved base files.

Models: tiny-width random causal LMs (width 64, vocabulary 150k) whose output head
dominates, as in a real model's comparison. Run::

    python benchmarks/bench_compare.py            # all, prints a markdown table
    python benchmarks/bench_compare.py --one streaming   # one measurement (a subprocess)

Peak memory is each measurement's own process: the peak resident size (``VmHWM``, reset
through ``/proc/self/clear_refs`` after the models are built) minus the resident size at
that moment, so the models, the interpreter and the temporaries of building the models are
not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from _mem import peak_rss, reset_peak, rss

from infolens.models.base import Tokenized, Window

V = 150_000
WIDTH = 64
L = 2048
SCALE = 40.0  # logit scale (logit sd 5): mean base entropy of a few nats, like a real LM


class RandomLM:
    """Causal LM: h_t = normalised running mean of embeddings; logits = SCALE * h_t W^T."""

    bos_id = 0
    vocab_size = V
    max_context = None
    predicts_first = False
    byte_level = False
    batch_size = 1

    def __init__(self, name: str, seed: int, noise: float = 0.0) -> None:
        g = torch.Generator().manual_seed(0)
        self.emb = torch.randn(V, WIDTH, generator=g)
        self.head = torch.randn(V, WIDTH, generator=g) / WIDTH**0.5
        if noise:
            g2 = torch.Generator().manual_seed(seed)
            self.head = self.head + noise * torch.randn(V, WIDTH, generator=g2) / WIDTH**0.5
        self.name = name

    def tokenize(self, text: str | bytes) -> Tokenized:
        n = len(text)
        ids = np.random.default_rng(n).integers(1, V, size=n)
        return Tokenized(ids.astype(np.int64), np.zeros((n, 2), np.int64))

    def _hidden(self, ids: np.ndarray) -> torch.Tensor:
        e = self.emb[torch.as_tensor(ids)]
        h = e.cumsum(0) / torch.arange(1, len(ids) + 1)[:, None]
        return h / h.norm(dim=1, keepdim=True)

    def logits(self, windows: Sequence[Window], *, max_rows: int) -> Iterator[Any]:
        for w in windows:
            h = self._hidden(w.ids[:-1])[w.start - 1 :]
            for r in range(0, h.shape[0], max_rows):
                yield SCALE * (h[r : r + max_rows] @ self.head.T)

    def full(self, ids: np.ndarray) -> torch.Tensor:
        return SCALE * (self._hidden(ids) @ self.head.T)


def _doc(n: int) -> Any:
    from infolens.score import Document

    return Document("doc", "x" * n)


def one(mode: str, n: int, k: int) -> dict[str, Any]:
    torch.set_num_threads(2)
    base = RandomLM("base", 0)
    model = RandomLM("model", 1, noise=0.3)
    ids = base.tokenize("x" * (n + 1)).ids
    reset_peak()
    before = rss()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"mode": mode, "positions": n}
    if mode == "streaming":
        from infolens.compare import compare_documents

        s = compare_documents(model, base, [_doc(n + 1)], max_length=n, bos="none").to_dict()
        out["kl"] = s["kl_base_model"]
    elif mode == "naive":
        x = torch.as_tensor(ids[:-1])
        t = torch.as_tensor(ids[1:])
        lb = torch.log_softmax(base.full(x.numpy()), dim=1)
        lm = torch.log_softmax(model.full(x.numpy()), dim=1)
        pb = lb.exp()
        kl = (pb * (lb - lm)).sum(1)
        out["kl"] = float(kl.mean())
        out["same_top1"] = float((lb.argmax(1) == lm.argmax(1)).double().mean())
        out["nll"] = float(-lb[torch.arange(n), t].mean())
    elif mode == "basefile":
        from infolens.basefile import BaseFile
        from infolens.compare import compare_documents, save_base_distributions

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "b.ilb")
            info = save_base_distributions(base, [_doc(n + 1)], path, k=k, max_length=n, bos="none")
            exact: list[np.ndarray] = []
            coarse: list[np.ndarray] = []
            ent: list[np.ndarray] = []
            compare_documents(model, base, [_doc(n + 1)], max_length=n, bos="none",
                              on_rows=lambda r: (exact.append(r.stats["kl_base_model"]),
                                                 ent.append(r.stats["entropy_base"])))  # fmt: skip
            compare_documents(model, BaseFile(path), [_doc(n + 1)],
                              on_rows=lambda r: coarse.append(r.stats["kl_base_model"]))  # fmt: skip
            out.update(
                k=k,
                file_bytes=info["bytes"],
                bytes_per_token=info["bytes"] / info["records"],
                kl_exact=float(np.concatenate(exact).mean()),
                kl_coarse=float(np.concatenate(coarse).mean()),
                base_entropy=float(np.concatenate(ent).mean()),
            )
            out["gap"] = out["kl_coarse"] / out["kl_exact"]
    out["seconds"] = time.perf_counter() - t0
    out["peak_mib"] = (peak_rss() - before) / 2**20
    return out


def run(mode: str, n: int, k: int = 32) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", mode, "--n", str(n), "--k", str(k)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", default=None)
    ap.add_argument("--n", type=int, default=L)
    ap.add_argument("--k", type=int, default=32)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.n, a.k)))
        return
    print(f"vocabulary {V:,}, width {WIDTH}, L = {L}\n")
    print("| method | peak memory (MiB) | time (s) | mean KL (nats) |")
    print("|---|---:|---:|---:|")
    for mode in ("streaming", "naive"):
        # fresh processes; worst peak and best time of 3 (the peak varies with the allocator)
        rs = [run(mode, L) for _ in range(3)]
        peak = max(r["peak_mib"] for r in rs)
        secs = min(r["seconds"] for r in rs)
        print(f"| {mode} | {peak:.0f} (worst of 3) | {secs:.2f} (best of 3) | {rs[0]['kl']:.6f} |")
    print("\n| k | bytes per token | mean coarse KL / exact KL | mean base entropy (nats) |")
    print("|---:|---:|---:|---:|")
    for k in (8, 32, 128):
        r = run("basefile", 512, k)
        print(f"| {k} | {r['bytes_per_token']:.1f} | {r['gap']:.4f} | {r['base_entropy']:.2f} |")


if __name__ == "__main__":
    main()
