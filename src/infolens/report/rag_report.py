"""The ``infolens rag-gain --report`` page: each context's ranking and the answer's tokens
coloured by the gain each context gave them (blue: more likely, red: less)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infolens.report._common import write_atomic
from infolens.report.html import ColorScale, Column, Page, TipSchema, esc, section, sortable_table

__all__ = ["rag_page", "write_rag_report"]


def _colour(g: float, vmax: float) -> str:
    """A diverging background: blue for a positive gain, red for a negative one."""
    t = 0.0 if vmax <= 0 else max(-1.0, min(1.0, g / vmax))
    if t >= 0:
        r, gr, b = 255.0 - 200 * t, 255.0 - 130 * t, 255.0
    else:
        r, gr, b = 255.0, 255.0 + 170 * t, 255.0 + 170 * t
    return f"rgb({round(r)},{round(gr)},{round(b)})"


def _tokens(ranking: list[dict[str, Any]]) -> str:
    vmax = max((abs(x) for g in ranking for x in g["token_gains_bits"]), default=1.0) or 1.0
    rows = []
    for rank, g in enumerate(ranking, 1):
        spans = "".join(
            f'<span title="{esc(f"{x:+.3f} bits")}" style="background:{_colour(x, vmax)};'
            f'padding:1px 0;white-space:pre">{esc(t)}</span>'
            for t, x in zip(g["tokens"], g["token_gains_bits"])
        )
        gain = f"{g['gain_bits']:+.3f} bits"
        rows.append(f"<p><b>{rank}.</b> {esc(gain)} — "
                    f"<code>{spans}</code><br><small>{esc(g['context'])}</small></p>")  # fmt: skip
    legend = (f"<p><small>blue: the context made that answer token more likely; red: less; "
              f"full colour at ±{vmax:.2f} bits. Hover a token for its gain.</small></p>")  # fmt: skip
    return legend + "".join(rows)


def rag_page(result: dict[str, Any]) -> str:
    """The page's HTML for the data of ``infolens rag-gain --json``."""
    page = Page("infolens rag-gain", ColorScale(vmax=1.0), TipSchema((), ()))
    page.add(section("Prompts", f"<p>with a context: <code>{esc(result['template'])}</code><br>"
                     f"without: <code>{esc(result['template_without'])}</code><br>model: "
                     f"{esc(result['model'])}; gains in bits; only the answer is scored.</p>"))  # fmt: skip
    cols = [Column("rank", "rank", integer=True), Column("gain_bits", "gain (bits)"),
            Column("gain_bits_per_token", "bits per token"),
            Column("context", "context", numeric=False)]  # fmt: skip
    for i, rec in enumerate(result["records"]):
        rows = [{**g, "rank": r} for r, g in enumerate(rec["ranking"], 1)]
        body = sortable_table(f"ranking{i}", cols, rows) + _tokens(rec["ranking"])
        page.add(section(f"{rec['question']} → {rec['answer']}", body))
    return page.render()


def write_rag_report(path: str | Path, result: dict[str, Any]) -> None:
    """Write :func:`rag_page` to ``path`` atomically."""
    write_atomic(Path(path), rag_page(result))
