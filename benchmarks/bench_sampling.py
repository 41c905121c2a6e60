"""Benchmark infolens.sampling: a truncation chain and the entropy-temperature curve.

Seeded float32 logits, standard normal x 3, everything timed in one run (best of several
repeats) so machine noise hits all sides:

* the chain temperature 0.7, top-k 50, top-p 0.9, min-p 0.05 on torch CPU logits
  [64, 151936] (Qwen's vocabulary): ``sampling.apply`` against transformers'
  ``TemperatureLogitsWarper``, ``TopKLogitsWarper``, ``TopPLogitsWarper`` and
  ``MinPLogitsWarper`` applied in sequence; the outputs are asserted equal
  (``torch.equal``, ``-inf`` positions included) before timing;
* ``sampling.entropy_curve`` over 32 temperatures (0.1 to 2.0) on [1024, 50257]
  (numpy input) against a Python loop of ``torch.log_softmax(x / T)`` +
  ``-(p * log p).sum(-1)`` per temperature, in float32 (what such a loop usually is)
  and in float64 (the precision ``entropy_curve`` delivers); the results are compared
  (float64 loop: error < 1e-10 relative to max(H, 1e-3 nats); for smaller entropies the
  loop's ``log_softmax`` itself cancels).

Peak extra memory of ``entropy_curve``: ``tracemalloc`` (numpy reports its allocations to
it) and the resident set size sampled every ~0.5 ms (``_mem.rss``), each as peak minus
the value just before the call.

Usage: ``python benchmarks/bench_sampling.py [--repeats 3] [--rows 1024] [--temps 32]``
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from _mem import RssPeak

MB = 2**20


def best(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def memory(fn: Callable[[], Any]) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    traced = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    gc.collect()
    with RssPeak() as r:
        fn()
    return traced / MB, r.extra / MB


def machine() -> str:
    model = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")),
            "?",
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    import torch
    import transformers

    return (
        f"{model}, {len(os.sched_getaffinity(0))} usable CPUs, Python "
        f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--temps", type=int, default=32)
    args = ap.parse_args()

    import torch
    from transformers.generation import logits_process as L

    from infolens import sampling

    rows: list[tuple[str, str, str]] = []

    # -- the chain
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 151936, generator=g) * 3
    warpers = [
        L.TemperatureLogitsWarper(0.7),
        L.TopKLogitsWarper(50),
        L.TopPLogitsWarper(0.9),
        L.MinPLogitsWarper(0.05),
    ]

    def hf_chain() -> Any:
        s = z
        for w in warpers:
            s = w(None, s)
        return s

    def ours() -> Any:
        return sampling.apply(z, temperature=0.7, top_k=50, top_p=0.9, min_p=0.05)

    assert torch.equal(hf_chain(), ours()), "outputs differ"
    t_hf, t_ours = best(hf_chain, args.repeats), best(ours, args.repeats)
    rows.append(
        (
            "chain T, top-k, top-p, min-p, torch [64, 151936]: transformers warpers",
            f"{t_hf * 1e3:.0f} ms",
            "",
        )
    )
    rows.append(
        (
            "... `sampling.apply` (identical output)",
            f"{t_ours * 1e3:.0f} ms",
            f"{t_hf / t_ours:.1f}x faster",
        )
    )

    # -- the entropy curve
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.rows, 50257), dtype=np.float32) * 3).astype(np.float32)
    xt = torch.from_numpy(x)
    temps = np.linspace(0.1, 2.0, args.temps)

    def loop(dtype: Any) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                xx = xt.to(dtype)
                out = []
                for t in temps.tolist():
                    lp = torch.log_softmax(xx / t, dim=-1)
                    out.append(-(lp.exp() * lp).sum(-1))
                return torch.stack(out, -1)

        return run

    def curve() -> Any:
        return sampling.entropy_curve(x, temps).entropy

    h = curve()
    ref64 = loop(torch.float64)().numpy()
    # relative to max(H, 1e-3): below that the loop's own log_softmax cancels (an entropy
    # of 2e-15 nats comes out 3% off in float64)
    scale = np.maximum(ref64, 1e-3)
    err = float(np.max(np.abs(h - ref64) / scale))
    assert err < 1e-10, err
    err32 = float(np.max(np.abs(loop(torch.float32)().double().numpy() - ref64) / scale))
    t_curve = best(curve, args.repeats)
    t_l32 = best(loop(torch.float32), 1)
    t_l64 = best(loop(torch.float64), 1)
    traced, rss_extra = memory(curve)
    shape = f"[{args.rows}, 50257] x {args.temps} T"
    rows.append(
        (
            f"entropy over {shape}: loop of `torch.log_softmax`, float32",
            f"{t_l32:.2f} s",
            f"max rel. error {err32:.1e}",
        )
    )
    rows.append(("... the same loop in float64", f"{t_l64:.2f} s", ""))
    rows.append(
        (
            "... `sampling.entropy_curve` (float64)",
            f"{t_curve:.2f} s",
            f"{t_l32 / t_curve:.1f}x / {t_l64 / t_curve:.1f}x faster; max rel. error {err:.1e}",
        )
    )
    rows.append(
        (
            "... its peak extra memory: tracemalloc / RSS",
            f"{traced:.1f} / {rss_extra:.1f} MB",
            f"a [T, N, V] float32 array: {args.temps * args.rows * 50257 * 4 / MB:,.0f} MB",
        )
    )

    print(machine())
    print()
    print("| case | time | note |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
