"""Draw the figures of docs/sampling.md from the built-in byte-level model (offline).

Usage: ``python docs/img/sampling_figures.py`` (writes docs/img/sampling_*.png; needs
matplotlib). Every number drawn comes from infolens.sampling on one next-token
distribution: the built-in n-gram model's prediction of the byte after PROMPT.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from infolens import sampling
from infolens.models import Window, load_model

OUT = Path(__file__).resolve().parent
PROMPT = (
    "Information theory for AI engineers. Entropy, cross-entropy, KL divergence, "
    "perplexity and bits per byte are computed ex"
)


def next_token_logits(prompt: str = PROMPT) -> np.ndarray:
    """The built-in model's logits for the byte after ``prompt`` (shape [256])."""
    model = load_model("ngram")
    ids = np.asarray(model.tokenize(prompt).ids)
    window = Window(np.append(ids, 0), start=len(ids))  # predict the (placeholder) last id
    return np.asarray(next(iter(model.logits([window], max_rows=1)))[0], dtype=np.float64)


def label(i: int) -> str:
    c = chr(i)
    return repr(c)[1:-1] if c.isprintable() and c != " " else {32: "␣"}.get(i, f"\\x{i:02x}")


def entropy_figure(z: np.ndarray) -> None:
    temps = np.geomspace(0.01, 30, 400)
    c = sampling.entropy_curve(z, temps, base=2)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.semilogx(temps, c.entropy, color="C0")
    ax.axhline(np.log2(np.isfinite(z).sum()), color="0.5", ls=":", lw=1)
    ax.axhline(0, color="0.5", ls=":", lw=1)
    h1 = float(sampling.entropy_curve(z, 1.0, base=2).entropy)
    ax.plot([1], [h1], "o", color="C1")
    ax.annotate(f"T = 1: {h1:.2f} bits (the model)", (1, h1), (1.3, h1 - 0.9), fontsize=8)
    ax.text(0.011, np.log2(256) - 0.6, "T → ∞: log2 256 = 8 bits (uniform)", fontsize=8)
    ax.text(0.011, 0.25, "T → 0: 0 bits (argmax)", fontsize=8)
    ax.set_xlabel("temperature T")
    ax.set_ylabel("entropy of softmax(z / T), bits")
    ax.set_title("Next-byte entropy against temperature (built-in model)", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / "sampling_entropy.png", dpi=120)
    plt.close(fig)


STEPS = [
    ("top_k", {"top_k": 5}, "top-k 5"),
    ("top_p", {"top_p": 0.9}, "top-p 0.9"),
    ("min_p", {"min_p": 0.1}, "min-p 0.1"),
    ("typical_p", {"typical_p": 0.9}, "typical 0.9"),
    ("epsilon", {"epsilon": 0.01}, "epsilon 0.01"),
    ("eta", {"eta": 0.01}, "eta 0.01"),
    ("top_h", {"top_h": 0.5}, "top-H 0.5"),
    ("top_n_sigma", {"top_n_sigma": 1.0}, "top-nσ 1"),
]


def truncation_figure(z: np.ndarray) -> None:
    names, mass, kept, kl = [], [], [], []
    for step, kw, name in STEPS:
        _, (r,) = sampling.apply(z, order=[step], return_steps=True, base=2, **kw)
        names.append(name)
        mass.append(float(r.mass))
        kept.append(int(r.kept))
        kl.append(float(r.kl))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.4))
    y = np.arange(len(names))
    a1.barh(y, mass, color="C0")
    a1.set_yticks(y, names)
    a1.invert_yaxis()
    a1.set_xlim(0, 1)
    a1.set_xlabel("probability mass kept")
    for i, (m, k) in enumerate(zip(mass, kept)):
        a1.text(m + 0.01, i, f"{k} token{'s' if k != 1 else ''}", va="center", fontsize=7)
    a2.barh(y, kl, color="C3")
    a2.set_yticks(y, [])
    a2.invert_yaxis()
    a2.set_xlabel("KL(truncated ‖ model) = −log2 mass, bits")
    fig.suptitle("One truncation at a time, on the same next-byte distribution", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / "sampling_truncation.png", dpi=120)
    plt.close(fig)


CHAIN = {"temperature": 1.5, "top_k": 12, "top_p": 0.8, "min_p": 0.1}


def order_figure(z: np.ndarray) -> None:
    p0 = np.exp(z - z.max())
    p0 /= p0.sum()
    top = np.argsort(-p0)[:14]
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    w = 0.27
    x = np.arange(top.size)
    ax.bar(x - w, p0[top], w, label="model (T = 1)", color="0.6")
    for j, order in enumerate(("transformers", "llama.cpp")):
        out = sampling.apply(z, order=order, **CHAIN)
        q = np.exp(out - out[np.isfinite(out)].max())
        q /= q.sum()
        kept = int(np.isfinite(out).sum())
        ax.bar(
            x + j * w,
            q[top],
            w,
            label=f"{order} order: {kept} token{'s' if kept != 1 else ''}",
            color=f"C{j}",
        )
    ax.set_xticks(x, [label(int(i)) for i in top])
    ax.set_ylabel("probability")
    ax.set_title("T 1.5, top-k 12, top-p 0.8, min-p 0.1: temperature first or last", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "sampling_order.png", dpi=120)
    plt.close(fig)


def main() -> None:
    z = next_token_logits()
    entropy_figure(z)
    truncation_figure(z)
    order_figure(z)
    print("wrote", ", ".join(sorted(p.name for p in OUT.glob("sampling_*.png"))))


if __name__ == "__main__":
    main()
