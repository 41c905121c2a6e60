"""The figure of docs/estimate.md: entropy-estimator bias against sample size for a
Zipfian vocabulary (the LLM-token regime).

A Zipf(1.1) distribution over 50,000 symbols (its exact entropy computed from the
probabilities); for each sample size N, 20 seeded samples, and the mean error of each
estimator (estimate - truth, nats). NSB is given the true alphabet size.

Usage: ``python docs/img/estimate_figures.py [docs/img/estimate_bias.png]``
"""

from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from infolens import estimate as E

K = 50_000
SIZES = [100, 300, 1000, 3000, 10_000, 30_000, 100_000]
SEEDS = 20


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "docs/img/estimate_bias.png"
    p = 1.0 / np.arange(1, K + 1) ** 1.1
    p /= p.sum()
    truth = float(-(p * np.log(p)).sum())
    rows = {est: [] for est in E.ENTROPY_ESTIMATORS}
    for n in SIZES:
        errs: dict[str, list[float]] = {est: [] for est in E.ENTROPY_ESTIMATORS}
        for s in range(SEEDS):
            c = np.bincount(np.random.default_rng(s).choice(K, n, p=p), minlength=K)
            for est in E.ENTROPY_ESTIMATORS:
                errs[est].append(E.entropy(counts=c, estimator=est, k=K) - truth)
        for est in E.ENTROPY_ESTIMATORS:
            rows[est].append(float(np.mean(errs[est])))
    print(f"# Zipf(1.1) over {K} symbols, H = {truth:.4f} nats; mean error over {SEEDS} seeds")
    print("| N | " + " | ".join(E.ENTROPY_ESTIMATORS) + " |")
    print("|---:|" + "---:|" * len(E.ENTROPY_ESTIMATORS))
    for i, n in enumerate(SIZES):
        print(f"| {n:,} | " + " | ".join(f"{rows[e][i]:+.3f}" for e in E.ENTROPY_ESTIMATORS) + " |")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for est in E.ENTROPY_ESTIMATORS:
        ax.plot(SIZES, rows[est], marker="o", label=est)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("samples N")
    ax.set_ylabel("mean error of the estimate (nats)")
    ax.set_title(f"Entropy estimators on a Zipf(1.1) vocabulary of {K:,} (H = {truth:.2f} nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
