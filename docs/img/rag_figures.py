"""Draw the figure of docs/rag.md: per-token context gains on the built-in model (offline).

Usage: ``python docs/img/rag_figures.py`` (writes docs/img/rag_token_gains.png; needs
matplotlib).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from infolens.models import load_model
from infolens.rag import context_gain

Q, A = "Which river flows through Vienna?", "The Danube"
CTX = [
    "Vienna lies on the Danube, the river that flows through the city.",
    "The Rhine flows through Basel; the Seine through Paris.",
    "Bananas are rich in potassium and grow in the tropics.",
]


def main() -> None:
    gains = context_gain(load_model("ngram"), Q, A, CTX)
    m = np.array([g.token_gains for g in gains])
    labels = [repr(ch)[1:-1] or " " for ch in " " + A]
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=120)
    lim = float(np.abs(m).max())
    im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(labels)), ["sp" if c == " " else c for c in labels])
    ax.set_yticks(range(len(CTX)), [f"{g.gain_bits:+.1f} bits  " + (c if len(c) < 40 else c[:37] + "...")
                                    for g, c in zip(gains, CTX)])  # fmt: skip
    ax.set_xlabel("answer tokens (bytes of ' The Danube')")
    fig.colorbar(im, ax=ax, label="gain (bits)")
    fig.tight_layout()
    fig.savefig("docs/img/rag_token_gains.png")
    for g, c in zip(gains, CTX):
        print(f"{g.gain_bits:+8.3f} bits  {c}")


if __name__ == "__main__":
    main()
