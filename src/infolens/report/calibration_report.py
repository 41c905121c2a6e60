"""The ``infolens calibrate --report`` page: calibration numbers before and after the
fitted temperature, and the reliability diagrams."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from infolens.report import plots
from infolens.report._common import write_atomic
from infolens.report.html import (
    ColorScale,
    Column,
    Page,
    SummaryRow,
    TipSchema,
    figure,
    section,
    sortable_table,
    summary_table,
)

__all__ = ["calibration_page", "write_calibration_report"]

GLOSSES = {
    "ece": "expected calibration error: mean |accuracy - confidence| over confidence bins, "
    "weighted by their size (0 = calibrated)",
    "mce": "maximum calibration error: the worst bin's |accuracy - confidence|",
    "brier": "multiclass Brier score: mean squared error of the probability vector (0 best, 2 worst)",
    "nll_bits": "mean negative log-likelihood of the true token, bits",
    "temperature": "T minimising NLL: probabilities softmax(z / T); T > 1 means the model was overconfident",
}


def _matrix(r: dict[str, Any]) -> str:
    """One row per measure, one column per (temperature, positions) setting."""
    cols: list[tuple[str, dict[str, Any] | None]] = [("T = 1, all positions", r["before"])]
    if r.get("held_out") is not None:
        cols += [("fitted T, all", r.get("after")), ("fitted T, held out", r["held_out"])]
    fit = r.get("fit")
    if fit is not None:
        cols += [("fit sample, T = 1", fit["before"]), ("fit sample, fitted T", fit["after"]),
                 ("fit sample, cross-validated", fit["held_out"])]  # fmt: skip
    columns = [Column("measure", "measure", numeric=False)]
    columns += [Column(f"c{i}", label) for i, (label, _) in enumerate(cols)]
    columns.append(Column("help", "how to read it", numeric=False))
    rows = []
    for key, label in (("ece", "ECE"), ("mce", "MCE"), ("brier", "Brier"), ("nll_bits", "NLL (bits/token)")):
        row: dict[str, Any] = {"measure": label, "help": GLOSSES[key]}
        for i, (_, sc) in enumerate(cols):
            if sc is not None:
                row[f"c{i}"] = sc.get(key)
        rows.append(row)
    return sortable_table("calibration", columns, rows)


def _diagram_figure(rel: dict[str, Any], title: str) -> Any:
    plt = plots._pyplot()
    edges = rel["edges"]
    mids = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    acc = [a if a is not None else float("nan") for a in rel["accuracy"][: len(mids)]]
    conf = [c if c is not None else float("nan") for c in rel["mean_confidence"][: len(mids)]]
    with plt.rc_context(plots._STYLE):
        fig, ax = plt.subplots(figsize=(4.0, 3.4), layout="constrained")
        ax.plot([0, 1], [0, 1], color="#999", linewidth=1, label="calibrated")
        ax.bar(mids, acc, width=(edges[1] - edges[0]) * 0.9, color="#51127c", alpha=0.8,
               label="accuracy")  # fmt: skip
        ax.plot(mids, conf, "o", color="#fc8961", markersize=3, label="mean confidence")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1 probability)")
        ax.set_ylabel("accuracy (top-1 is the true token)")
        ax.set_title(title)
        ax.legend(loc="upper left", frameon=False)
    return fig


def calibration_page(r: dict[str, Any]) -> str:
    """The page's HTML for the result of :func:`infolens.calibrate.calibrate_documents`."""
    page = Page("infolens calibrate", ColorScale(vmax=1.0), TipSchema((), ()))
    before = r["before"]
    fit = r.get("fit")
    rows = [SummaryRow("model", "model", r["model"]),
            SummaryRow("tokens", "positions", before["tokens"]),
            SummaryRow("accuracy", "top-1 accuracy", before["accuracy"]),
            SummaryRow("temperature", "fitted temperature", r["temperature"],
                       help=GLOSSES["temperature"]),
            SummaryRow("fit_rows", "fit sample", None if fit is None else fit["rows"],
                       help="positions sampled uniformly to fit T on")]  # fmt: skip
    page.add(section("Calibration", summary_table(rows) + _matrix(r),
                     intro="The held-out column is the honest one: the fit never saw those "
                     "positions."))
    if plots.have_matplotlib():
        figs = figure("f-before", plots.to_svg(_diagram_figure(before["reliability"],
                                                               "T = 1, all positions"), salt="b"),
                      "Reliability diagram at T = 1: bars below the diagonal are overconfident.")
        after = r.get("held_out") or r.get("after")
        if after is not None:
            figs += figure("f-after", plots.to_svg(_diagram_figure(
                after["reliability"], f"T = {r['temperature']:.3g}, held-out"), salt="a"),
                "Reliability diagram at the fitted temperature, on positions the fit never saw.")
        elif fit is not None:
            figs += figure("f-after", plots.to_svg(_diagram_figure(
                fit["reliability_after"], f"T = {r['temperature']:.3g}, fit sample"), salt="a"),
                "Reliability diagram at the fitted temperature, on the fit sample (in-sample).")
        page.add(section("Reliability diagrams", figs))  # fmt: skip
    return page.render()


def write_calibration_report(path: str | Path, r: dict[str, Any]) -> None:
    """Write :func:`calibration_page` to ``path`` atomically (``-``: stdout)."""
    write_atomic(Path(path), calibration_page(r))
