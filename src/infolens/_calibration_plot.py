"""The reliability-diagram figure (matplotlib, imported only when a figure is drawn)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(d: Any, ax: Any = None, title: str | None = None) -> Any:
    plt = _pyplot()
    if ax is None:
        fig, (ax, ax_n) = plt.subplots(
            2, 1, figsize=(5.2, 6.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
    else:
        fig, ax_n = ax.figure, None
    e = d.edges
    left, width = e[:-1], np.diff(e)
    acc, conf = d.accuracy, d.mean_confidence
    full = d.count[:-1] > 0
    ax.plot([0, 1], [0, 1], color="0.45", linestyle="--", linewidth=1, label="perfect calibration")
    ax.bar(
        left[full],
        acc[:-1][full],
        width=width[full],
        align="edge",
        facecolor="#4c72b0",
        edgecolor="white",
        linewidth=0.6,
        label="accuracy",
    )
    # the gap, from each bin's accuracy to its mean confidence (a tick marks the latter)
    lo = np.minimum(acc[:-1], conf[:-1])[full]
    hi = np.maximum(acc[:-1], conf[:-1])[full]
    ax.bar(
        left[full],
        hi - lo,
        bottom=lo,
        width=width[full],
        align="edge",
        facecolor="none",
        edgecolor="#c44e52",
        hatch="////",
        linewidth=0.8,
        label="gap to mean confidence",
    )
    ax.hlines(conf[:-1][full], left[full], (left + width)[full], color="#c44e52", linewidth=1.4)
    if d.count[-1] > 0:
        ax.plot(
            [1.0],
            [acc[-1]],
            marker="D",
            color="#c44e52",
            linestyle="none",
            clip_on=False,
            label=f"confidence exactly 1 ({int(d.count[-1]):,})",
        )
    s = d.summary()
    text = f"ECE {s.ece:.3f}   MCE {s.mce:.3f}\naccuracy {s.accuracy:.3f}   n = {s.n:,}"
    ax.text(0.03, 0.96, text, transform=ax.transAxes, va="top", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.88), fontsize=8, frameon=False)
    ax.set_title(title or f"Reliability diagram ({d.n_bins} {d.strategy} bins)", fontsize=10)
    if ax_n is not None:
        ax_n.bar(left, d.count[:-1], width=width, align="edge", color="0.55", edgecolor="white")
        ax_n.set_ylabel("predictions")
        ax_n.set_xlabel("confidence (top-label probability)")
        fig.tight_layout()
    else:
        ax.set_xlabel("confidence (top-label probability)")
    return fig
