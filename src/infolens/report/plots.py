"""Figures for reports: matplotlib (Agg, no display) rendered to inline SVG and to PNG files.

Every figure function takes pre-aggregated, fixed-size data (histogram counts, per-bin
means), never per-token arrays, so memory does not grow with the corpus.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Figure",
    "have_matplotlib",
    "histogram_figure",
    "line_figure",
    "to_png",
    "to_svg",
]

#: A matplotlib figure (typed loosely so this module imports without matplotlib).
Figure = Any

_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, uses the page's font
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}

#: Series colours (magma purple, orange, and a blue), cycled.
_COLORS = ("#51127c", "#fc8961", "#2c728e")


def have_matplotlib() -> bool:
    """True if matplotlib can be imported (figures are skipped otherwise).

    Returns
    -------
    bool

    Examples
    --------
    >>> isinstance(have_matplotlib(), bool)
    True
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _label(ax: Any, xlabel: str, ylabel: str, title: str, n_series: int) -> None:
    """Axis labels, the title if any and, for several series, a legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if n_series > 1:
        ax.legend(frameon=False)


def histogram_figure(
    edges: Sequence[float] | np.ndarray,
    series: Sequence[tuple[str, Sequence[float] | np.ndarray]],
    *,
    xlabel: str,
    ylabel: str = "tokens",
    title: str = "",
    logx: bool = False,
    colors: Sequence[str] = _COLORS,
) -> Figure:
    """A step histogram of pre-binned counts, one line per series.

    Parameters
    ----------
    edges : array, shape [n + 1]
        Bin edges.
    series : sequence of (label, counts)
        Counts per bin, shape ``[n]`` each.
    xlabel, ylabel, title : str
        Axis labels and title.
    logx : bool
        Logarithmic x axis (needs positive edges).
    colors : sequence of str
        Line colours, cycled.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = histogram_figure([0, 1, 2], [("tokens", [3, 1])], xlabel="bits")
    >>> to_svg(fig).startswith("<svg")
    True
    """
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 2.9), layout="constrained")
        e = np.asarray(edges, dtype=float)
        for i, (label, counts) in enumerate(series):
            c = np.asarray(counts, dtype=float)
            ax.stairs(
                c,
                e,
                label=label,
                color=colors[i % len(colors)],
                linewidth=1.4,
                fill=len(series) == 1,
                alpha=0.85 if len(series) == 1 else 1.0,
            )
        if logx:
            ax.set_xscale("log")
        _label(ax, xlabel, ylabel, title, len(series))
    return fig


def line_figure(
    x: Sequence[float] | np.ndarray,
    series: Sequence[tuple[str, Sequence[float] | np.ndarray]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    symlogx: bool = False,
    colors: Sequence[str] = _COLORS,
) -> Figure:
    """Lines with markers, one per series, over a shared x.

    Parameters
    ----------
    x : array, shape [n]
        X values.
    series : sequence of (label, y)
        Y values per series, shape ``[n]`` each (NaN leaves a gap).
    xlabel, ylabel, title : str
        Axis labels and title.
    symlogx : bool
        Symmetric-log x axis (linear below 1), for counts that start at 0.
    colors : sequence of str
        Line colours, cycled.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = line_figure([0, 1, 2], [("a", [1, 2, 4]), ("b", [2, 2, 2])], xlabel="x", ylabel="y")
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['a', 'b']
    >>> _pyplot().close(fig)
    """
    plt = _pyplot()
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 2.9), layout="constrained")
        xs = np.asarray(x, dtype=float)
        for i, (label, y) in enumerate(series):
            ax.plot(
                xs,
                np.asarray(y, dtype=float),
                marker="o",
                markersize=2.5,
                linewidth=1.3,
                label=label,
                color=colors[i % len(colors)],
            )
        if symlogx:
            ax.set_xscale("symlog", linthresh=1.0)
        _label(ax, xlabel, ylabel, title, len(series))
    return fig


_XML_HEAD = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)


def to_svg(fig: Figure, *, salt: str = "", close: bool = True) -> str:
    """Render a figure to an inline ``<svg>`` element string (no XML prolog, no metadata).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    salt : str
        Makes the SVG's internal ids unique when several figures share a page.
    close : bool
        Close the figure afterwards.

    Returns
    -------
    str
        ``<svg ...>...</svg>``, with no reference to anything outside itself.

    Examples
    --------
    >>> svg = to_svg(line_figure([0, 1], [("a", [1, 2])], xlabel="x", ylabel="y"), salt="f1")
    >>> svg.startswith('<svg role="img"'), "<?xml" in svg, "<metadata>" in svg
    (True, False, False)
    """
    plt = _pyplot()
    buf = io.StringIO()
    with plt.rc_context({**_STYLE, "svg.hashsalt": salt or None}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    if close:
        plt.close(fig)
    svg = _METADATA.sub("", _XML_HEAD.sub("", buf.getvalue(), count=1))
    # Let the page size the figure: keep the viewBox, make width responsive.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    return svg.replace("<svg", '<svg role="img" style="width:100%;height:auto"', 1)


def to_png(fig: Figure, path: str | Path, *, dpi: int = 150, close: bool = False) -> Path:
    """Write a figure as a PNG file (parent directories are created).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or Path
        Output file.
    dpi : int
        Resolution.
    close : bool
        Close the figure afterwards.

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> fig = line_figure([0, 1], [("a", [1, 2])], xlabel="x", ylabel="y")
    >>> p = to_png(fig, pathlib.Path(tempfile.mkdtemp()) / "sub" / "f.png", dpi=20, close=True)
    >>> p.read_bytes()[:4]
    b'\x89PNG'
    """
    from infolens._atomic import atomic_output

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(p, "wb", option="--plots") as f:  # whole or not at all
        fig.savefig(f, format="png", dpi=dpi)
    if close:
        _pyplot().close(fig)
    return p
