"""The ``infolens sample --report`` page: the next-token distribution against temperature
and through the truncation steps, and the samples (figures from the command's data)."""

from __future__ import annotations

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

__all__ = ["sample_page", "write_sample_report"]


def _tops(top: list[dict[str, Any]], k: int = 6) -> str:
    return "  ".join(f"{t['text']!r}: {t['prob']:.3f}" for t in top[:k])


def sample_page(d: dict[str, Any]) -> str:
    """The page's HTML for the data of ``infolens sample`` (``describe_next_token`` plus
    ``samples``)."""
    page = Page("infolens sample", ColorScale(vmax=1.0), TipSchema((), ()))
    dist = d["distribution"]
    page.add(section("The next-token distribution", summary_table([
        SummaryRow("prompt", "prompt", d["prompt"]),
        SummaryRow("model", "model", d["model"]),
        SummaryRow("entropy_bits", "entropy (bits)", dist["entropy_bits"],
                   help="H of the model's distribution at T = 1"),
        SummaryRow("effective_vocabulary", "effective vocabulary", dist["effective_vocabulary"],
                   help="exp(H in nats): the number of equally likely tokens with that entropy"),
        SummaryRow("top", "most probable", _tops(dist["top"])),
    ])))  # fmt: skip
    if plots.have_matplotlib():
        c = d["curve"]
        fig = plots.line_figure(c["temperature"], [("entropy", c["entropy_bits"])],
                                xlabel="temperature T", ylabel="entropy (bits)",
                                title="entropy of softmax(z / T)")  # fmt: skip
        steps = d["steps"]
        names = [f"{s['name']}={s['value']:g}" for s in steps]
        fig2 = plots.line_figure(list(range(len(steps))),
                                 [("mass kept", [s["mass_original"] for s in steps]),
                                  ("entropy after / before",
                                   [s["entropy_after_bits"] / s["entropy_before_bits"]
                                    if s["entropy_before_bits"] else float("nan")
                                    for s in steps])],
                                 xlabel=" | ".join(names), ylabel="fraction",
                                 title="what each step keeps")  # fmt: skip
        page.add(section("Figures", figure("f-entropy", plots.to_svg(fig, salt="e"),
                                           "Entropy against temperature: T → 0 is the argmax "
                                           "(0 bits unless tied), T = 1 the model, T > 1 flattens.")
                         + figure("f-steps", plots.to_svg(fig2, salt="s"),
                                  "Probability mass kept (of the model's distribution) and "
                                  "entropy kept, per step.")))  # fmt: skip
    temp_cols = [Column("temperature", "T"), Column("entropy_bits", "entropy (bits)"),
                 Column("effective_vocabulary", "effective vocabulary"),
                 Column("top", "most probable", numeric=False)]  # fmt: skip
    page.add(section("Temperatures", sortable_table("temps", temp_cols, [
        {**t, "top": _tops(t["top"])} for t in d["temperatures"]])))  # fmt: skip
    step_cols = [Column("step", "step", numeric=False), Column("kept", "tokens kept", integer=True),
                 Column("mass", "mass kept"), Column("entropy_before_bits", "H before (bits)"),
                 Column("entropy_after_bits", "H after (bits)"),
                 Column("effective_vocabulary_after", "effective vocabulary after"),
                 Column("kl_bits", "KL(after‖before) (bits)")]  # fmt: skip
    page.add(section("Truncation steps", sortable_table("steps", step_cols, [
        {**s, "step": f"{s['name']}={s['value']:g}"} for s in d["steps"]])))  # fmt: skip
    if d.get("samples"):
        cols = [Column("index", "#", integer=True), Column("tokens", "tokens", integer=True),
                Column("finish_reason", "end", numeric=False),
                Column("nll_bits", "NLL under the model (bits)"),
                Column("text", "text", numeric=False)]  # fmt: skip
        ln2 = 0.6931471805599453
        rows = [{"index": s["index"], "tokens": len(s["token_ids"]), "text": s["text"],
                 "finish_reason": s["finish_reason"], "nll_bits": s["nll_model_nats"] / ln2}
                for s in d["samples"]]  # fmt: skip
        page.add(section("Samples", sortable_table("samples", cols, rows)))
    return page.render()


def write_sample_report(path: str | Path, d: dict[str, Any], model: Any = None) -> None:
    """Write :func:`sample_page` to ``path`` atomically (``-``: stdout)."""
    write_atomic(Path(path), sample_page(d))
