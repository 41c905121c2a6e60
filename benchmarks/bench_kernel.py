"""Benchmark the core kernel: KL both ways, entropies and cross-entropies from logits.

Two float32 logit arrays [1024, 50257] (GPT-2 vocabulary; standard normal x 3, seeded).
Everything is timed in one run (best of several repeats) so machine noise hits all sides:

* infolens ``fused_rows(a, b)`` (compiled kernel) with 1 thread and with all cores;
* scipy: ``special.log_softmax``, then ``special.rel_entr(...).sum(-1)`` for both KLs and
  ``special.entr(p).sum(-1)`` (what ``stats.entropy`` sums) / ``-(p * log q).sum(-1)``;
* torch CPU (its default thread count): ``log_softmax``, ``F.kl_div(log_target=True,
  reduction='none').sum(-1)`` both ways, ``-(p * logp).sum(-1)``, ``-(p * logq).sum(-1)``;
* the floor: one vectorised ``np.exp`` pass over each input (numpy is single-threaded),
  allocating its result as usual, and again writing into a preallocated output;
* with Jensen-Shannon too: infolens ``fused_rows(a, b, js=True)`` (all of the above plus
  JS; one more pass per row) against scipy's ``special.softmax`` +
  ``spatial.distance.jensenshannon(p, q, axis=-1) ** 2`` (JS alone).

Peak extra memory, two ways: ``tracemalloc`` sees every numpy allocation (numpy reports
them to it) but not torch's; so a sampling thread also reads the resident set size from
``/proc/self/statm`` every ~0.5 ms during the call (big buffers are mmap'ed and given
back on free, so RSS follows them). Reported: peak minus the value just before the call.

Usage: ``python benchmarks/bench_kernel.py [--rows 1024] [--vocab 50257] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import subprocess
import time
import tracemalloc

import numpy as np
from _mem import RssPeak

MB = 2**20


def measure(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up (page in code, thread pools)
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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
    return {"time": min(times), "traced": traced / MB, "rss": r.extra / MB}


def machine() -> str:
    model = cores = "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                model = v.strip()
            if k.strip() == "CPU(s)":
                cores = v.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import scipy
    import torch

    from infolens import _native

    return (
        f"{model}, {cores} CPUs ({len(os.sched_getaffinity(0))} usable), "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"infolens kernel: {_native.isa()}, load average {os.getloadavg()[0]:.1f}, "
        f"{datetime.date.today().isoformat()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=50257)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from scipy import special
    from scipy.spatial import distance

    from infolens import _kernels

    if _kernels._native is None:
        raise SystemExit("infolens._native is not built: python setup.py build_ext --inplace")

    rng = np.random.default_rng(0)
    a = (rng.standard_normal((args.rows, args.vocab), dtype=np.float32) * 3).astype(np.float32)
    b = (rng.standard_normal((args.rows, args.vocab), dtype=np.float32) * 3).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ncores = len(os.sched_getaffinity(0))

    def infolens_threads(k: int, js: bool = False):
        def run():
            os.environ["INFOLENS_NUM_THREADS"] = str(k)
            return _kernels.fused_rows(a, b, js=js)

        return run

    def scipy_js():
        p = special.softmax(a, axis=-1)
        q = special.softmax(b, axis=-1)
        return distance.jensenshannon(p, q, axis=-1) ** 2

    def scipy_way():
        lp = special.log_softmax(a, axis=-1)
        lq = special.log_softmax(b, axis=-1)
        p, q = np.exp(lp), np.exp(lq)
        return (
            special.rel_entr(p, q).sum(-1),
            special.rel_entr(q, p).sum(-1),
            special.entr(p).sum(-1),
            special.entr(q).sum(-1),
            -(p * lq).sum(-1),
            -(q * lp).sum(-1),
        )

    def torch_way():
        with torch.no_grad():
            lp = torch.log_softmax(ta, dim=-1)
            lq = torch.log_softmax(tb, dim=-1)
            kl_pq = F.kl_div(lq, lp, log_target=True, reduction="none").sum(-1)
            kl_qp = F.kl_div(lp, lq, log_target=True, reduction="none").sum(-1)
            p, q = lp.exp(), lq.exp()
            return (
                kl_pq,
                kl_qp,
                -(p * lp).sum(-1),
                -(q * lq).sum(-1),
                -(p * lq).sum(-1),
                -(q * lp).sum(-1),
            )

    out = np.empty_like(a)

    def floor():
        return np.exp(a), np.exp(b)

    def floor_prealloc():
        np.exp(a, out=out)
        np.exp(b, out=out)

    # sanity: the kernel agrees with torch
    r = infolens_threads(ncores)()
    ref = torch_way()
    mine = (r.kl_pq, r.kl_qp, r.entropy_p, r.entropy_q, r.cross_pq, r.cross_qp)
    for got, want in zip(mine, ref):
        np.testing.assert_allclose(got, want.double().numpy(), rtol=2e-3)
    np.testing.assert_allclose(infolens_threads(ncores, js=True)().js, scipy_js(), rtol=2e-3)

    cases = [
        ("infolens `fused_rows`, 1 thread", infolens_threads(1), args.repeats),
        (f"infolens `fused_rows`, {ncores} threads", infolens_threads(ncores), args.repeats),
        ("scipy (`log_softmax` + `rel_entr` + `entr`)", scipy_way, 3),
        (f"torch CPU ({torch.get_num_threads()} threads)", torch_way, 3),
        ("floor: `np.exp` over a and b (allocates)", floor, args.repeats),
        ("floor: `np.exp` into a preallocated output", floor_prealloc, args.repeats),
        ("infolens `fused_rows(js=True)`, 1 thread", infolens_threads(1, True), args.repeats),
        (
            f"infolens `fused_rows(js=True)`, {ncores} threads",
            infolens_threads(ncores, True),
            args.repeats,
        ),
        ("scipy JS only (`softmax` + `jensenshannon` ** 2)", scipy_js, 2),
    ]
    res = {}
    for name, fn, reps in cases:
        res[name] = measure(fn, reps)
        print(f"  {name}: {res[name]['time'] * 1e3:.1f} ms", flush=True)

    names = [c[0] for c in cases]
    one, allc, sp, tt, fl, flp, js1, jsall, spjs = (res[n] for n in names)
    best_ref = min(sp["time"], tt["time"])
    print()
    print(f"Machine: {machine()}")
    print(f"Input: 2 x float32 [{args.rows}, {args.vocab}] ({2 * a.nbytes / MB:.0f} MiB)")
    print()
    print(
        "| method | time (ms) | vs infolens all cores | peak extra, tracemalloc (MiB) | peak extra, RSS (MiB) |"
    )
    print("|---|---:|---:|---:|---:|")
    for n in names:
        m = res[n]
        traced = "n/a (torch)" if n.startswith("torch") else f"{m['traced']:.1f}"
        print(
            f"| {n} | {m['time'] * 1e3:.1f} | {m['time'] / allc['time']:.2f}x | {traced} | {m['rss']:.1f} |"
        )
    print()
    print("| target | measured | met |")
    print("|---|---|---|")
    rows = [
        (
            ">= 2x faster than the faster of scipy/torch (all cores)",
            best_ref / allc["time"],
            ">= 2",
            best_ref / allc["time"] >= 2,
        ),
        ("same, infolens on 1 thread", best_ref / one["time"], ">= 2", best_ref / one["time"] >= 2),
        (
            "1 thread within 1.5x of the floor",
            one["time"] / fl["time"],
            "<= 1.5",
            one["time"] / fl["time"] <= 1.5,
        ),
        ("all cores below the floor", allc["time"] / fl["time"], "< 1", allc["time"] < fl["time"]),
        (
            "(1 thread vs the preallocated floor, for reference)",
            one["time"] / flp["time"],
            "",
            None,
        ),
        (
            "(all cores vs the preallocated floor, for reference)",
            allc["time"] / flp["time"],
            "",
            None,
        ),
    ]
    for label, ratio, want, ok in rows:
        met = "" if ok is None else ("yes" if ok else "**no**")
        print(f"| {label} | {ratio:.2f}x {('(' + want + ')') if want else ''} | {met} |")
    rows_js = [
        (
            "JS: infolens (everything + JS) vs scipy JS alone, all cores",
            spjs["time"] / jsall["time"],
        ),
        ("JS: same, infolens on 1 thread", spjs["time"] / js1["time"]),
        ("(cost of JS: `js=True` / plain, 1 thread)", js1["time"] / one["time"]),
    ]
    for label, ratio in rows_js:
        print(f"| {label} | {ratio:.2f}x | |")
    peak = max(one["traced"], allc["traced"], one["rss"], allc["rss"], js1["rss"], jsall["rss"])
    print(f"| peak extra memory < 64 MB | {peak:.1f} MiB | {'yes' if peak < 64 else '**no**'} |")


if __name__ == "__main__":
    main()
