"""Make docs/img/calibration_reliability.png (run from the repository root:
``python docs/img/calibration_figures.py``; takes a few seconds, offline).

Three reliability diagrams: a synthetic overconfident 10-class classifier, the same after
temperature scaling (T fitted on a calibration split, scored on a separate test split),
and the built-in byte-level model's next-byte predictions on docs/measures.md.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from infolens.calibration import fit_temperature, reliability_diagram, top_label
from infolens.models import load_model
from infolens.models.base import Window

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img" / "calibration_reliability.png"


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose true temperature is 2.5: the model is too sure of itself."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 10)) * 3.0
    p = np.exp(z / 2.5 - (z / 2.5).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random((n, 1))
    y = np.minimum((u > p.cumsum(axis=1)).sum(axis=1), 9)
    return z, y


def main() -> None:
    z_cal, y_cal = overconfident(20_000, 1)
    z_test, y_test = overconfident(20_000, 2)
    t = fit_temperature(z_cal, y_cal, cv=None).temperature

    model = load_model("ngram")
    tok = model.tokenize((ROOT / "docs" / "measures.md").read_bytes())
    rows = np.concatenate(
        [np.asarray(r) for r in model.logits([Window(tok.ids, 0)], max_rows=4096)]
    )

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    c, ok = top_label(logits=z_test, labels=y_test)
    reliability_diagram(c, ok).plot(ax=axes[0], title="Overconfident classifier (T = 1)")
    c, ok = top_label(logits=z_test, labels=y_test, temperature=t)
    reliability_diagram(c, ok).plot(
        ax=axes[1], title=f"After temperature scaling (T = {t:.2f}, test split)"
    )
    c, ok = top_label(logits=rows, labels=tok.ids)
    reliability_diagram(c, ok).plot(
        ax=axes[2], title="Built-in byte model, next byte of docs/measures.md"
    )
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
